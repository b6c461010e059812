"""``gpuprune demo``: build a small example network, prune it, show what pruning did.

The example is a synthetic striatal network (:mod:`gpuprune.synth`) written
to a working directory and reused on later runs.  The demo prunes it on the
best device available, prints the per-pathway table and ends with the
connectivity report (:mod:`gpuprune.report`: DIR/report/index.html, figures
when matplotlib is installed, report.json).
"""

import argparse
import os
import sys
import time

from gpuprune import synth
from gpuprune.api import prune
from gpuprune.errors import InputError
from gpuprune.report.api import demo_report

DEFAULT_DIR = "gpuprune-demo"
DEMO_NEURONS = 300
DEMO_SYNAPSES_PER_NEURON = 600
DEMO_SEED = 20261125


def main(argv=None):
    """Run the demo; returns the exit status."""
    ap = argparse.ArgumentParser(prog="gpuprune demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=DEFAULT_DIR, help=f"working directory (default ./{DEFAULT_DIR})")
    ap.add_argument("--neurons", type=int, default=DEMO_NEURONS)
    ap.add_argument("--synapses-per-neuron", type=int, default=DEMO_SYNAPSES_PER_NEURON)
    ap.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    ap.add_argument("--rebuild", action="store_true", help="build the example network again")
    args = ap.parse_args(argv)

    network = os.path.abspath(os.path.join(args.dir, "network"))
    marker = os.path.join(network, "log", "network-detect-worklog.hdf5")
    t0 = time.perf_counter()
    if args.rebuild or not os.path.exists(marker):
        print(f"building an example network of {args.neurons} neurons in {network} ...")
        os.makedirs(args.dir, exist_ok=True)
        synth.generate_network(network, num_neurons=args.neurons, synapses_per_neuron=args.synapses_per_neuron,
                               seed=DEMO_SEED, overwrite=True)
    else:
        print(f"reusing the example network in {network} (--rebuild to make it again)")
    t1 = time.perf_counter()
    result = prune(network, device=args.device)
    print()
    print(result.table())
    n = result.synapses_before + result.gap_junctions_before
    print(f"\npruned {n:,} putative rows on the {result.device} in {result.timings['total']:.2f} s "
          f"({n / max(result.timings['total'], 1e-9) / 1e6:.1f} M rows/s); output: {result.output_file}")

    demo_report(network, args.dir)
    print(f"demo done in {time.perf_counter() - t0:.1f} s (network built in {t1 - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as exc:
        print(f"gpuprune demo: error: {exc}", file=sys.stderr)
        sys.exit(2)
