"""``gpuprune demo``: build a small example network, prune it, show what pruning did.

The example is a synthetic striatal network (:mod:`gpuprune.synth`) written
to a working directory and reused on later runs.  The demo prunes it on the
best device available, prints the per-pathway table and, when matplotlib is
installed, draws synapses per connected pair and connection probability
against soma distance, before and after pruning.
"""

import os
import time

import numpy as np

from gpuprune.api import prune
from gpuprune.format import SYNAPSES, WORKLOG
from gpuprune.io.network import Network
from gpuprune.io.reader import close_files, read_chunk
from gpuprune.synth import generate_network

DEFAULT_DIR = "gpuprune-demo"
DEMO_NEURONS = 300
DEMO_SYNAPSES_PER_NEURON = 600
DEMO_SEED = 20261125
FIGURE = "pruning.png"


def _pairs(rows):
    """Unique (src, dest) pairs of a synapse matrix and their synapse counts."""
    if rows.shape[0] == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.unique(rows[:, :2].astype(np.int64), axis=0, return_counts=True)


def _putative_synapses(network_path):
    """Every putative synapse row of a network, in pruning order."""
    net = Network(network_path)
    files = net.spec()["files"][SYNAPSES.name]
    parts = [read_chunk(files, SYNAPSES, c)[0] for c in net.plan(SYNAPSES.name, 10 ** 7)]
    close_files()
    return np.concatenate(parts) if parts else np.zeros((0, SYNAPSES.width), dtype=np.int32)


def connection_profile(positions, pairs, bins):
    """Fraction of ordered neuron pairs connected, per soma-distance bin."""
    n = positions.shape[0]
    d_all = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)[~np.eye(n, dtype=bool)]
    total = np.histogram(d_all, bins)[0]
    d = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=-1) if pairs.size else np.zeros(0)
    connected = np.histogram(d, bins)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, connected / total, np.nan)


def draw_figure(path, before, after, positions):
    """Synapses per connected pair and connection probability vs distance, before/after pruning."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (pairs_b, n_b), (pairs_a, n_a) = _pairs(before), _pairs(after)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    top = max(int(n_b.max()) if n_b.size else 1, 1)
    edges = np.arange(1, min(top, 60) + 2) - 0.5
    ax1.hist(n_b, edges, alpha=0.6, label=f"putative ({pairs_b.shape[0]:,} pairs)")
    ax1.hist(n_a, edges, alpha=0.6, label=f"pruned ({pairs_a.shape[0]:,} pairs)")
    ax1.set_xlabel("synapses per connected pair")
    ax1.set_ylabel("pairs")
    ax1.set_yscale("log")
    ax1.legend()
    bins = np.linspace(0, 400e-6, 21)
    centres = 0.5 * (bins[1:] + bins[:-1]) * 1e6
    ax2.plot(centres, connection_profile(positions, pairs_b, bins), "o-", label="putative")
    ax2.plot(centres, connection_profile(positions, pairs_a, bins), "o-", label="pruned")
    ax2.set_xlabel("soma distance (µm)")
    ax2.set_ylabel("connection probability")
    ax2.legend()
    fig.suptitle("gpuprune demo: what pruning does")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    draw(args, network, result)
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


def draw(args, network, result):
    """Draw the before/after figure into ``args.dir``, or say in one line why not; return its path or None."""
    figure = os.path.abspath(os.path.join(args.dir, FIGURE))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print('figure skipped: matplotlib is not installed (pip install "gpuprune[plot]" or '
              "pip install matplotlib, then run gpuprune demo again)")
        return None
    import h5py

    before = _putative_synapses(network)
    with h5py.File(result.output_file, "r") as f:
        after = f[SYNAPSES.matrix][()]
        positions = f["network/neurons/position"][()]
    draw_figure(figure, before, after, positions)
    print(f"figure: {figure}")
    return figure
