"""The ``gpuprune`` command.

Errors a user can fix (bad input) print one line on stderr and exit with
status 2; any other failure exits with status 1.
"""

import argparse
import logging
import os
import sys
import time

from gpuprune import __version__
from gpuprune.errors import DeviceError, GpuPruneError, InputError

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


class ProgressBar:
    """A one-line progress bar on stderr (only drawn on a terminal)."""

    def __init__(self, label, stream=None, width=30):
        self.label, self.width = label, width
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.t0 = time.perf_counter()
        self._last = 0.0

    def __call__(self, done, total):
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        frac = done / total if total else 1.0
        filled = int(frac * self.width)
        rate = done / max(now - self.t0, 1e-9)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{100 * frac:5.1f}%  {done:,}/{total:,} rows  {rate / 1e6:.1f} M rows/s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _seed(text):
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _add_prune(sub):
    p = sub.add_parser("prune", help="prune a Snudda network directory",
                       description="Prune the putative synapses of a Snudda network and write "
                                   "NETWORK/network-synapses.hdf5 (or --output).")
    p.add_argument("network", help="network directory (Snudda detect output)")
    p.add_argument("--config", help="pruning config (default NETWORK/network-config.json)")
    p.add_argument("--seed", type=_seed, help="master prune seed (default: the config's "
                                              "random_seed.prune, else 1003)")
    p.add_argument("--rng", choices=("philox", "snudda"), default="philox",
                   help="randomness: philox (default; identical on CPU and GPU) or snudda "
                        "(reproduces SnuddaPrune bit for bit, CPU only)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    p.add_argument("--output", help="output file (default NETWORK/network-synapses.hdf5)")
    p.add_argument("--workers", type=int, help="CPU worker processes; on the GPU, threads decoding the input "
                   "(default: one per core)")
    p.add_argument("--row-budget", type=int, help="rows per chunk (default: automatic)")
    p.add_argument("--compression", choices=("lzf", "gzip", "none"), default="lzf")
    p.add_argument("--gpus", type=int, help="GPU path: number of visible GPUs to use (default all)")
    p.add_argument("--gpu-memory", help="GPU path: device memory to plan with per GPU, e.g. 12G or 500M "
                                        "(default: most of the free memory)")
    p.add_argument("--quiet", action="store_true", help="print no table")
    where = p.add_mutually_exclusive_group()  # several machines: gpuprune.execution.dask / .mpi
    where.add_argument("--scheduler", help="prune on the Dask cluster of this scheduler (tcp://HOST:PORT)")
    where.add_argument("--scheduler-file", help="prune on the Dask cluster of this scheduler file (dask-mpi, ...)")
    where.add_argument("--mpi", action="store_true", help="under mpiexec -n N: rank 0 writes, the others prune")
    p.set_defaults(func=_cmd_prune)


def _cmd_prune(args):
    from gpuprune.api import prune
    from gpuprune.execution.malloc import tune_malloc

    tune_malloc()  # this process is ours: let big temporaries be reused (see _malloc.py)
    bar = None if args.quiet else ProgressBar("pruning")
    client = None
    if args.scheduler or args.scheduler_file:  # connect (or fail in one line) before any work
        from gpuprune.execution.dask import connect

        client = connect(args.scheduler, args.scheduler_file)
    result = prune(args.network, config_file=args.config, random_seed=args.seed, rng=args.rng,
                   device=args.device, output_file=args.output, workers=args.workers,
                   row_budget=args.row_budget,
                   compression=None if args.compression == "none" else args.compression, progress=bar,
                   gpus=args.gpus, gpu_memory=args.gpu_memory, client=client, mpi=args.mpi)
    if client is not None:
        client.close()
    if result is None:  # an MPI rank that pruned for rank 0
        return 0
    if not args.quiet:
        print(result.table())
        t = result.timings
        n = result.synapses_before + result.gap_junctions_before
        print(f"\n{result.device} ({result.rng}, seed {result.random_seed}, {result.workers} worker(s), "
              f"{result.chunks} chunk(s)): {t['total']:.2f} s, {n / max(t['total'], 1e-9) / 1e6:.2f} M rows/s")
        print(f"wrote {result.output_file}")
    return 0


def _add_synth(sub):
    p = sub.add_parser("synth", help="write a synthetic Snudda network directory", add_help=False)
    p.set_defaults(func=None, passthrough="synth")


def _add_demo(sub):
    p = sub.add_parser("demo", help="build a small example network, prune it, show the result", add_help=False)
    p.set_defaults(func=None, passthrough="demo")


def build_parser():
    parser = argparse.ArgumentParser(prog="gpuprune", description="Fast synapse pruning for Snudda networks.")
    parser.add_argument("--version", action="version", version=f"gpuprune {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prune(sub)
    _add_synth(sub)
    _add_demo(sub)
    return parser


def main(argv=None):
    """Entry point of the ``gpuprune`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="gpuprune: %(levelname)s: %(message)s")
    try:
        if getattr(args, "passthrough", None) == "synth":
            from gpuprune import synth

            return synth.main(rest) or 0
        if getattr(args, "passthrough", None) == "demo":
            from gpuprune.cli import demo

            return demo.main(rest) or 0
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.func(args)
    except (InputError, DeviceError) as exc:
        print(f"gpuprune: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except GpuPruneError as exc:
        print(f"gpuprune: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("gpuprune: interrupted; no output was written", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # one line, never a traceback, unless asked for
        if os.environ.get("GPUPRUNE_DEBUG"):
            raise
        print(f"gpuprune: error: {type(exc).__name__}: {exc} (set GPUPRUNE_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
