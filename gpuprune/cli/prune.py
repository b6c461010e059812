"""``gpuprune prune``: prune a Snudda network directory and print the per-pathway table."""


from gpuprune.api import prune
from gpuprune.cli.args import integer
from gpuprune.cli.progress import RowProgress
from gpuprune.execution.malloc import tune_malloc


def add_parser(subparsers):
    """Add the ``prune`` command and its options to ``subparsers``."""
    p = subparsers.add_parser("prune", help="prune a Snudda network directory",
                              description="Prune the putative synapses of a Snudda network and write "
                                          "NETWORK/network-synapses.hdf5 (or --output).")
    p.add_argument("network", help="network directory (Snudda detect output)")
    p.add_argument("--config", help="pruning config (default NETWORK/network-config.json)")
    p.add_argument("--seed", type=integer, help="master prune seed (default: the config's "
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
    where = p.add_mutually_exclusive_group()  # several machines: gpuprune.cluster.dask / .mpi
    where.add_argument("--scheduler", help="prune on the Dask cluster of this scheduler (tcp://HOST:PORT)")
    where.add_argument("--scheduler-file", help="prune on the Dask cluster of this scheduler file (dask-mpi, ...)")
    where.add_argument("--mpi", action="store_true", help="under mpiexec -n N: rank 0 writes, the others prune")
    return p


def run(args):
    """Prune ``args.network``; print the table, the speed and the output file. Returns 0."""
    tune_malloc()  # this process is ours: let big temporaries be reused (see execution/malloc.py)
    client = None
    if args.scheduler or args.scheduler_file:  # connect (or fail in one line) before any work
        from gpuprune.cluster.dask import connect

        client = connect(args.scheduler, args.scheduler_file)
    try:
        with RowProgress("pruning", quiet=args.quiet) as bar:  # drawn on a terminal only
            result = prune(args.network, config_file=args.config, random_seed=args.seed, rng=args.rng,
                           device=args.device, output_file=args.output, workers=args.workers,
                           row_budget=args.row_budget,
                           compression=None if args.compression == "none" else args.compression, progress=bar,
                           gpus=args.gpus, gpu_memory=args.gpu_memory, client=client, mpi=args.mpi)
    finally:
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
