"""``gpuprune demo``: build a small example network, prune it, show what pruning did.

The example is a synthetic striatal network (:mod:`gpuprune.synth`) written
to a working directory and reused on later runs.  The demo prunes it on the
best device available, prints the per-pathway table and ends with the
connectivity report (:mod:`gpuprune.report`: DIR/report/index.html, figures
when matplotlib is installed, report.json).
"""

import os
import time

from gpuprune.api import prune
from gpuprune.format import WORKLOG
from gpuprune.report.api import demo_report
from gpuprune.synth import generate_network

DEFAULT_DIR = "gpuprune-demo"
DEMO_NEURONS = 300
DEMO_SYNAPSES_PER_NEURON = 600
DEMO_SEED = 20261125


def add_parser(subparsers):
    """Add the ``demo`` command and its options to ``subparsers``."""
    p = subparsers.add_parser("demo", help="build a small example network, prune it, show the result",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"working directory (default ./{DEFAULT_DIR})")
    p.add_argument("--neurons", type=int, default=DEMO_NEURONS)
    p.add_argument("--synapses-per-neuron", type=int, default=DEMO_SYNAPSES_PER_NEURON)
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    p.add_argument("--rebuild", action="store_true", help="build the example network again")
    return p


def run(args):
    """Run the demo's steps in order; returns the exit status.

    Each step is a function of ``args`` and of what the steps before it made, so that a step
    (a report, say) is one more function and one more line here.
    """
    t0 = time.perf_counter()
    network = build_network(args)
    t1 = time.perf_counter()
    result = prune_network(args, network)
    report(args, network, result)
    print(f"demo done in {time.perf_counter() - t0:.1f} s (network built in {t1 - t0:.1f} s)")
    return 0


def build_network(args):
    """Build the example network in ``args.dir``, or reuse the one there; return its path."""
    network = os.path.abspath(os.path.join(args.dir, "network"))
    marker = os.path.join(network, WORKLOG)
    if args.rebuild or not os.path.exists(marker):
        print(f"building an example network of {args.neurons} neurons in {network} ...")
        os.makedirs(args.dir, exist_ok=True)
        generate_network(network, num_neurons=args.neurons, synapses_per_neuron=args.synapses_per_neuron,
                         seed=DEMO_SEED, overwrite=True)
    else:
        print(f"reusing the example network in {network} (--rebuild to make it again)")
    return network


def prune_network(args, network):
    """Prune the network on ``args.device``; print the per-pathway table and the speed; return the result."""
    result = prune(network, device=args.device)
    print()
    print(result.table())
    n = result.synapses_before + result.gap_junctions_before
    print(f"\npruned {n:,} putative rows on the {result.device} in {result.timings['total']:.2f} s "
          f"({n / max(result.timings['total'], 1e-9) / 1e6:.1f} M rows/s); output: {result.output_file}")
    return result


def report(args, network, result):
    """End with the connectivity report of the pruned network (DIR/report); return its paths."""
    return demo_report(network, args.dir)
