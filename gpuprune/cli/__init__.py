"""The ``gpuprune`` command."""

from gpuprune.cli.main import (  # noqa: F401
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    ProgressBar,
    build_parser,
    main,
)
