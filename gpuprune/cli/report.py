"""``gpuprune report NETWORK``: the connectivity report of a pruned network (figures, index.html, report.json)."""

import os

from gpuprune.cli.args import integer


def _um(text):
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of micrometres: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0 um, got {text}")
    return value * 1e-6




def add_parser(subparsers):
    """Add the ``report`` command to the ``gpuprune`` parser's subparsers; returns the subparser."""
    p = subparsers.add_parser(
        "report", help="connectivity of a pruned network against measured data (figures, HTML, JSON)",
        description="Prune NETWORK again in memory with the same config, seed and randomness to count what "
                    "each rule removed, then compare connection probability against soma distance (all pairs, "
                    "Wilson 95% intervals), synapses per pair and degrees before and after pruning with the "
                    "bundled measurements. Writes DIR/index.html (self-contained), DIR/report.json and, "
                    "with matplotlib, one PNG per pathway.")
    p.add_argument("network", help="network directory (Snudda detect output, pruned)")
    p.add_argument("--output", help="report directory (default NETWORK/report)")
    p.add_argument("--pruned", help="pruned file (default NETWORK/network-synapses.hdf5)")
    p.add_argument("--config", help="pruning config the file was pruned with (default NETWORK/network-config.json)")
    p.add_argument("--seed", type=integer, help="prune seed the file was pruned with (default: the config's)")
    p.add_argument("--rng", choices=("philox", "snudda"), default="philox",
                   help="randomness the file was pruned with (default philox)")
    p.add_argument("--bin-width", type=_um, default=20e-6, metavar="UM", help="distance bin width (default 20 um)")
    p.add_argument("--max-distance", type=_um, default=500e-6, metavar="UM",
                   help="largest distance shown (default 500 um)")
    p.add_argument("--slab", type=_um, metavar="UM", help="2D distances, only pairs with |dz| <= UM "
                                                          "(Snudda's striatum analysis: 70)")
    p.add_argument("--centre-margin", type=_um, metavar="UM",
                   help="only postsynaptic neurons at least UM inside the somata's bounding box (edge effects)")
    p.add_argument("--targets", help="measurements to compare with: a targets JSON file (as gpuprune fit takes) "
                                      "or a bundled dataset name (default: every bundled measurement)")
    p.add_argument("--no-plots", action="store_true", help="tables and JSON only")
    p.add_argument("--quiet", action="store_true", help="print no table")
    p.set_defaults(func=run)
    return p


def run(args):
    """Run the command; returns the exit status."""
    from gpuprune.report import report

    rep = report(args.network, args.pruned, config_file=args.config, rng=args.rng, random_seed=args.seed,
                 bin_width=args.bin_width, max_distance=args.max_distance, slab=args.slab,
                 centre_margin=args.centre_margin, targets=args.targets,
                 progress=not args.quiet)  # a tqdm bar
    out = rep.save(args.output or os.path.join(args.network, "report"), plots=False if args.no_plots else None)
    if not args.quiet:
        print(rep.table())
        print()
    if out["hint"] and not args.no_plots:
        print(out["hint"])
    print(f"wrote {out['html']} ({len(out['figures'])} figure(s)) and {out['json']}")
    return 0
