"""The ``gpuprune`` command: :mod:`gpuprune.cli.main` builds the argparse tree from the command modules
(``prune``, ``synth``, ``demo``), each with ``add_parser(subparsers)`` and ``run(args)``."""

from gpuprune.cli.main import (  # noqa: F401
    COMMANDS,
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    build_parser,
    main,
)
