"""``gpuprune synth``: write a synthetic Snudda network directory (:mod:`gpuprune.synth`)."""

import argparse

from gpuprune.cli.progress import RowProgress
from gpuprune.synth import generate_network


def _grid_argument(text):
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or NX,NY,NZ, got {text!r}") from None
    if len(values) not in (1, 3) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected N or NX,NY,NZ of positive ints, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def add_parser(subparsers):
    """Add the ``synth`` command and its options to ``subparsers``."""
    p = subparsers.add_parser(
        "synth", help="write a synthetic Snudda network directory",
        description="Write a synthetic Snudda network directory (putative synapses before pruning).")
    p.add_argument("out_dir", metavar="OUTDIR", help="network directory to write")
    p.add_argument("--neurons", type=int, default=200, help="number of neurons (default 200)")
    p.add_argument("--synapses-per-neuron", type=float, default=100,
                   help="mean putative synapses onto each neuron (default 100)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--hyper-voxels", type=_grid_argument, default=None, metavar="N|NX,NY,NZ",
                   help="hyper voxel grid (default: grows with --neurons)")
    p.add_argument("--population-units", type=int, default=3, help="SPN population units (default 3)")
    p.add_argument("--max-rows-in-memory", type=int, default=2_000_000,
                   help="synapse rows built at once (default 2000000)")
    p.add_argument("--workers", type=int, default=None,
                   help="writer processes (default: one per core from 2 M rows on)")
    p.add_argument("--no-gap-junctions", action="store_true", help="write no gap junctions")
    p.add_argument("--no-projection", action="store_true", help="write no projection-synapse file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing network directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args):
    """Generate the network of ``args``; print a summary. Returns 0.

    Raises
    ------
    InputError
        On a bad argument or an existing non-empty directory without ``--overwrite``.
    """
    with RowProgress(quiet=args.quiet, terminal_only=False) as bar:
        s = generate_network(
            args.out_dir, num_neurons=args.neurons, synapses_per_neuron=args.synapses_per_neuron, seed=args.seed,
            hyper_voxels=args.hyper_voxels, gap_junctions=not args.no_gap_junctions,
            projection=not args.no_projection, population_units=args.population_units,
            max_rows_in_memory=args.max_rows_in_memory, progress=bar, overwrite=args.overwrite,
            workers=args.workers)
    rate = (s["num_synapses"] + s["num_projection_synapses"]) / max(s["seconds"], 1e-9)
    print(f"Wrote {s['network_path']}: {s['num_neurons']:,} neurons, {s['num_synapses']:,} putative "
          f"synapses in {len(s['voxel_files'])} hyper voxel files, {s['num_gap_junctions']:,} gap junctions, "
          f"{s['num_projection_synapses']:,} projection synapses, {s['num_interleaved_pairs']:,} pairs whose "
          f"two channel types interleave across hyper voxels; max_channel_type_id "
          f"{s['max_channel_type_id']}, prune seed {s['prune_seed']}; {s['seconds']:.1f} s "
          f"({rate / 1e6:.2f} M rows/s).")
    return 0
