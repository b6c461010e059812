"""``gpuprune fit``: fit pruning parameters of one or more pathways to measured connection probabilities.

A command module: :func:`add_parser` adds the subcommand to the ``gpuprune`` tree and :func:`run`
executes it; :func:`main` runs it on its own (one-line errors, exit status 2 for bad input).
"""

import argparse

from gpuprune.cli.args import integer
from gpuprune.errors import InputError


def _bound(text):
    """``name=lo:hi`` -> (name, (lo, hi))."""
    try:
        name, rng = text.split("=", 1)
        lo, hi = rng.split(":", 1)
        return name.strip(), (float(lo), float(hi))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bounds must look like f1=0:1, got {text!r}") from None




def add_parser(subparsers):
    p = subparsers.add_parser(
        "fit", help="fit pruning parameters to measured connectivity",
        description="Fit f1, soft_max, mu2 and/or a3 of one or more pathways so that the pruned network's "
                    "connection probability per soma-distance bin (and, if given, synapses per pair) matches "
                    "the targets; print target vs achieved per bin and write the fitted config.")
    p.add_argument("network", help="network directory (Snudda detect output)")
    p.add_argument("--pathway", action="append", help="Pre,Post,ConType, e.g. FS,dSPN,GABA (repeatable; "
                                                      "default: every pathway the targets name)")
    p.add_argument("--target", required=True, help="targets JSON file, or the name of a bundled data set "
                                                   "(e.g. planert2010_dSPN_iSPN)")
    p.add_argument("--params", nargs="+", default=["f1"], help="parameters to fit (default f1); prefix "
                                                               "pruning_other. for that block")
    p.add_argument("--bounds", nargs="+", type=_bound, default=None,
                   help="name=lo:hi per parameter (default OptimisePruning's: f1, a3 0:1; soft_max, mu2 0:5)")
    p.add_argument("--output", help="write the config with the fitted parameters here")
    p.add_argument("--config", help="pruning config (default NETWORK/network-config.json)")
    p.add_argument("--seeds", nargs="+", type=integer, help="prune seeds to average over (default the config's)")
    p.add_argument("--rng", choices=("philox", "snudda"), default="philox")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="cpu")
    p.add_argument("--fitness", choices=("corrected", "snudda", "binomial"), default="corrected")
    p.add_argument("--popsize", type=int, default=15, help="population per parameter (default 15)")
    p.add_argument("--maxiter", type=int, default=50, help="generations (default 50)")
    p.add_argument("--random-state", type=integer, default=None, help="seed of the optimiser")
    p.add_argument("--slab", type=float, default=None, help="2D distances, pairs with |dz| <= SLAB (metres)")
    p.add_argument("--min-z", type=float, default=None,
                   help="slice cut: count only synapses with z >= MIN_Z (metres), as OptimisePruning's min_z")
    p.add_argument("--max-z", type=float, default=None, help="slice cut: count only synapses with z <= MAX_Z")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args):
    from gpuprune.stats import load_targets, parse_pathway
    from gpuprune.tune import Tuner

    targets = load_targets(args.target)
    if args.pathway:
        wanted = [parse_pathway(p, "--pathway") for p in args.pathway]
        missing = [",".join(w) for w in wanted if w not in {t.pathway for t in targets}]
        if missing:
            raise InputError(f"the targets have nothing for pathway {', '.join(missing)}", args.target)
        targets = [t for t in targets if t.pathway in wanted]
    pathways = list(dict.fromkeys(t.pathway for t in targets))
    bounds = "default" if not args.bounds else dict(args.bounds)
    if isinstance(bounds, dict):
        extra = sorted(set(bounds) - set(args.params))
        if extra:
            raise InputError(f"--bounds given for {', '.join(extra)}, which --params does not fit")
    tuner = Tuner(args.network, pathways, seeds=args.seeds, rng=args.rng, device=args.device,
                  config_file=args.config, min_z=args.min_z, max_z=args.max_z)
    result = tuner.fit(targets, params=args.params, bounds=bounds, fitness=args.fitness, popsize=args.popsize,
                       maxiter=args.maxiter, seed=args.random_state, slab=args.slab, progress=not args.quiet)
    print(result.table())
    if args.output:
        print(f"wrote {result.export_config(args.output)}")
    return 0
