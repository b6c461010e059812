import sys

from gpuprune.cli.main import main

sys.exit(main())
