"""The ``gpuprune`` command: one argparse tree, a subcommand per module of this package.

Each command is a module ``gpuprune/cli/<name>.py`` with two functions:

``add_parser(subparsers)``
    adds its subparser (``subparsers.add_parser("<name>", help=..., description=...)``) and
    its options, and returns the subparser;
``run(args)``
    runs the command with the parsed arguments and returns the exit status.

:data:`COMMANDS` lists them in the order ``gpuprune --help`` shows them.  A new command (``fit``,
``report``, ...) is a new module and one more name in that list; nothing else changes.

Errors a user can fix (bad input, :class:`~gpuprune.errors.InputError` and
:class:`~gpuprune.errors.DeviceError`) print one line on stderr and exit with status 2, as do
argparse's usage errors; any other failure exits with status 1.
"""

import argparse
import importlib
import logging
import os
import sys

from gpuprune import __version__
from gpuprune.errors import DeviceError, GpuPruneError, InputError, Interrupted

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1

#: the command modules of gpuprune.cli, in --help order
COMMANDS = (
    "prune",
    "synth",
    "demo",
    "fit",
    "report",
)


def build_parser():
    """The ``gpuprune`` argument parser, with a subparser per module of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="gpuprune", description="Fast synapse pruning for Snudda networks.")
    parser.add_argument("--version", action="version", version=f"gpuprune {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        command = importlib.import_module(f"gpuprune.cli.{name}")
        command.add_parser(subparsers).set_defaults(run=command.run)
    return parser


def main(argv=None):
    """Entry point of the ``gpuprune`` command; returns the exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="gpuprune: %(levelname)s: %(message)s")
    try:
        return args.run(args)
    except (InputError, DeviceError) as exc:
        print(f"gpuprune: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except GpuPruneError as exc:
        print(f"gpuprune: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except Interrupted as exc:  # SIGINT, SIGTERM or SIGHUP during a prune: says whether the output is new
        print(f"gpuprune: {exc.message()}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("gpuprune: interrupted; no output was written", file=sys.stderr)
        return 128 + 2  # as the shell reports a process ended by SIGINT
    except Exception as exc:  # one line, never a traceback, unless asked for
        if os.environ.get("GPUPRUNE_DEBUG"):
            raise
        print(f"gpuprune: error: {type(exc).__name__}: {exc} (set GPUPRUNE_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
