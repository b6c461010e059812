"""Fitting speed: Snudda's OptimisePruning against gpuprune's batched in-memory evaluation, in one run.

    python benchmarks/bench_tune.py [--data ../shared/data] [--snudda-evals 3] [--skip-snudda]
                                    [--large-network NET | --large-neurons 1000]
                                    [--device cpu|gpu|emulated] [--sets 60 ...]

Measures, on striatum_300's dSPN -> iSPN GABA (185,594 putative rows, 18,208 pairs):

1. OptimisePruning.opt_helper_func: seconds per evaluation (prune to a temp HDF5 file, reload, score);
2. gpuprune: evaluations per second for the same vectors: Snudda's fitness as a fit computes it (kept
   rows of the pairs in a bin only, when the target has no synapses-per-pair terms), the statistics of
   every pair, and kept rows alone; batched (P = 60, a 15 x 4 population; on a device also larger
   batches, ``--sets``), and that both fitnesses agree (snudda mode with ``optimise_pruning``);
3. the rate on the largest pathway of a real network (``--large-network``, e.g. net1000) or a generated one;
4. a complete 4-parameter fit (popsize 15, 50 generations, tol = 0 so that all 50 run);
5. model bytes per putative row and the process's peak memory.

Speed targets (issue 12): >= 1,000 evaluations/s on one core for (2); on a GPU >= 50,000/s batched;
(4) under 10 s on the CPU.
Run it by hand (it is not a test); set OMP/MKL threads to 1 for a one-core figure.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, no BLAS thread contention
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpuprune.stats import load_targets  # noqa: E402
from gpuprune.tune import Tuner  # noqa: E402
from gpuprune.tune.fit import score, target_bins  # noqa: E402

PATHWAY = ("dSPN", "iSPN", "GABA")
EXP = [(0, 50e-6, 3 / 47), (0, 100e-6, 3 / 66)]  # Planert 2010, as Snudda's examples use
NAMES = ["f1", "soft_max", "mu2", "a3"]


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vectors(n, seed=0):
    r = np.random.default_rng(seed)
    return np.column_stack([r.uniform(0, 1, n), r.uniform(0, 5, n), r.uniform(0, 5, n), r.uniform(0, 1, n)])


def time_snudda(net, x, extra):
    from snudda.detect import SnuddaPrune
    from snudda.optimise.optimise_pruning import OptimisePruning

    cwd = os.getcwd()
    os.chdir(net.parent)  # Snudda opens the config at the relative path detect recorded
    try:
        t0 = time.perf_counter()
        SnuddaPrune(network_path=str(net), keep_files=True).prune()
        setup = time.perf_counter() - t0
        os.makedirs(net / "temp", exist_ok=True)
        info = {"pre_type": PATHWAY[0], "post_type": PATHWAY[1], "con_type": PATHWAY[2], "exp_data": EXP,
                "mean_num_synapses_per_pair": None, "std_num_synapses_per_pair": None,
                "percentile20_pair": None, "extra_pruning_parameters": extra, "network_path": str(net),
                "param_names": NAMES, "min_z": None, "max_z": None}
        OptimisePruning.op = None
        OptimisePruning.opt_helper_func(x[0], info)  # warm-up: opens the merge files
        t0 = time.perf_counter()
        fit = [OptimisePruning.opt_helper_func(v, info) for v in x]
        per_eval = (time.perf_counter() - t0) / len(x)
        OptimisePruning.op = None
    finally:
        os.chdir(cwd)
    return per_eval, np.array(fit), setup


def rate(tuner, target, x, kind, repeat=5, pathway=None):
    """Evaluations per second of (1) the batched fitness (kept rows of the binned pairs, statistics, fitness:
    what a fit runs), (2) kept rows of every pair with the statistics of every pair, (3) kept rows alone."""
    values = {n: x[:, i] for i, n in enumerate(NAMES)}
    batch = tuner.batch(values, pathway or target.pathway)
    bins = target_bins(target, kind)

    def per_second(fn):
        fn()  # warm: caches, tables, device compilation
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        return len(x) * repeat / (time.perf_counter() - t0)

    fit = per_second(lambda: score(tuner, target, values, kind))
    stats = per_second(lambda: tuner.statistics(batch, bins, target.pathway, self_pairs=kind == "snudda"))
    alone = per_second(lambda: tuner.evaluate(batch, target.pathway))
    return fit, stats, alone


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("GPUPRUNE_TEST_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--snudda-evals", type=int, default=3)
    ap.add_argument("--skip-snudda", action="store_true")
    ap.add_argument("--large-neurons", type=int, default=1000)
    ap.add_argument("--large-synapses", type=int, default=2000, help="putative rows per neuron of the large net")
    ap.add_argument("--large-network", help="a real network (detect output) for the large-pathway rate, e.g. one "
                    "built with ../shared/tools (read in place, never written); default: a generated one")
    ap.add_argument("--device", choices=("cpu", "gpu", "emulated"), default="cpu")
    ap.add_argument("--sets", type=int, nargs="+", default=None,
                    help="batch sizes P to time (default 60; on a device 60, 1024 and 8192)")
    ap.add_argument("--tiles", type=int, nargs="+", default=[256, 32],
                    help="on a device: also time the largest P with this many sets per kernel thread")
    args = ap.parse_args(argv)
    sets = args.sets or ([60] if args.device == "cpu" else [60, 1024, 8192])
    print(f"machine: {os.cpu_count()} cores visible, device {args.device}; numbers from one run")
    work = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    try:
        net = work / "striatum_300"
        shutil.copytree(Path(args.data) / "striatum_300", net, ignore=shutil.ignore_patterns("expected"))
        x = vectors(60)
        t0 = time.perf_counter()
        philox = Tuner(net, ",".join(PATHWAY), device=args.device)
        build = time.perf_counter() - t0
        m = philox.model()
        (target,) = load_targets({"pathway": ",".join(PATHWAY), "bins": [list(b) for b in EXP]})
        print(f"\n{','.join(PATHWAY)}: {m.num_putative:,} putative rows, {m.pair_src.size:,} pairs, "
              f"{m.num_rows:,} rows pass the distance test; model built in {build:.2f} s")
        print(f"model: {m.nbytes():,} bytes = {m.nbytes() / m.num_putative:.1f} bytes per putative row "
              f"({m.nbytes() / max(m.num_rows, 1):.1f} per stored row); peak RSS so far {peak_mb():.0f} MB")
        if args.device != "cpu":
            from gpuprune.device import memory

            dev = memory.tune_resident_bytes(m.num_rows, m.num_groups)
            print(f"resident on the device: {dev:,} bytes = {dev / m.num_putative:.1f} per putative row, plus "
                  f"{memory.tune_output_bytes(m.num_groups, 1):,} bytes of kept counts per parameter set")

        full, stats, alone = rate(philox, target, x, "snudda")
        print(f"gpuprune philox, P = 60: {full:,.0f} evaluations/s of the fitness (binned pairs); every pair: "
              f"{stats:,.0f}/s with statistics, {alone:,.0f}/s kept rows alone")
        for p in sets:
            if p == 60:
                continue
            full_p, stats_p, alone_p = rate(philox, target, vectors(p, seed=p), "snudda", repeat=3)
            print(f"gpuprune philox, P = {p}: {full_p:,.0f} evaluations/s of the fitness; every pair: "
                  f"{stats_p:,.0f}/s with statistics, {alone_p:,.0f}/s kept rows alone")
        if args.device != "cpu":  # threads per group: one (each row read once per batch) or one per tile of sets
            p = max(sets)
            for tile in args.tiles:
                for ev in [*philox.evaluators.values(), *(e for e, _ in philox._binned_models.values())]:
                    ev.sets_per_thread = tile
                full_t, stats_t, alone_t = rate(philox, target, vectors(p, seed=p), "snudda", repeat=3)
                print(f"  P = {p}, {tile} sets per thread: {full_t:,.0f} evaluations/s of the fitness; every "
                      f"pair: {stats_t:,.0f}/s with statistics, {alone_t:,.0f}/s kept rows alone")
            for ev in [*philox.evaluators.values(), *(e for e, _ in philox._binned_models.values())]:
                ev.sets_per_thread = None

        block = philox.network.rules.pathways[philox.codes[philox.pathways[0]]][0]
        extra = {"dist_pruning": block.dist_pruning.source if block.dist_pruning else None,
                 "cluster_pruning": block.cluster_pruning}
        compat = Tuner(net, ",".join(PATHWAY), rng="snudda", optimise_pruning=extra, device=args.device)
        full_c, _, _ = rate(compat, target, x, "snudda")
        print(f"gpuprune snudda mode as OptimisePruning prunes: {full_c:,.0f} evaluations/s")

        if not args.skip_snudda:
            xs = x[:args.snudda_evals]
            per_eval, snudda_fit, setup = time_snudda(net, xs, extra)
            ours = score(compat, target, {n: xs[:, i] for i, n in enumerate(NAMES)}, "snudda")
            rel = np.max(np.abs(ours - snudda_fit) / np.maximum(np.abs(snudda_fit), 1e-300))
            print(f"OptimisePruning: {per_eval:.2f} s per evaluation ({1 / per_eval:.2f}/s; its SnuddaPrune "
                  f"setup {setup:.1f} s); gpuprune/OptimisePruning = {full_c * per_eval:,.0f}x; "
                  f"fitness max relative difference {rel:.1e}")

        t0 = time.perf_counter()
        res = philox.fit(target, params=NAMES, popsize=15, maxiter=50, tol=0, seed=1, progress=False)
        fit_s = time.perf_counter() - t0
        print(f"4-parameter fit (15 x 4 population, 50 generations): {fit_s:.2f} s, "
              f"{res.fits[0].evaluations} evaluations ({res.fits[0].evaluations / fit_s:,.0f}/s)")

        from gpuprune.synth import generate_network

        if args.large_network:
            big, gen = Path(args.large_network), None
        else:
            big = work / "large"
            t0 = time.perf_counter()
            generate_network(big, num_neurons=args.large_neurons, synapses_per_neuron=args.large_synapses, seed=1)
            gen = time.perf_counter() - t0
        probe = Tuner(big, "dSPN,dSPN,GABA")
        rows = {",".join(n): int(c) for n, c in _pathway_rows(probe).items()}
        largest = max(rows, key=rows.get)
        t0 = time.perf_counter()
        tb = Tuner(big, largest, device=args.device)
        mb = tb.model()
        build_b = time.perf_counter() - t0
        (tt,) = load_targets({"pathway": largest, "bins": [[0, 50e-6, 0.1], [0, 100e-6, 0.05]]})
        fb, sb, ab = rate(tb, tt, x, "snudda", repeat=3)
        what = f"{big} ({probe.network.num_neurons} neurons)" if gen is None else \
            f"generated {args.large_neurons} neurons in {gen:.1f} s"
        print(f"\nlarge: {what}; largest pathway {largest}: "
              f"{mb.num_putative:,} putative rows, {mb.pair_src.size:,} pairs, built in {build_b:.1f} s, "
              f"{mb.nbytes() / mb.num_putative:.1f} bytes per putative row")
        print(f"large, P = 60: {fb:,.0f} evaluations/s of the fitness (binned pairs); every pair: {sb:,.0f}/s with "
              f"statistics, {ab:,.0f}/s kept rows alone")
        print(f"\npeak RSS of this process: {peak_mb():.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pathway_rows(tuner):
    """Putative synapse rows per config pathway (from the lookup-derived per-dest counts, no row read)."""
    from gpuprune.format import KINDS
    from gpuprune.io.reader import close_files, read_chunk

    net = tuner.network
    names = net.rules.pathway_names
    counts = dict.fromkeys(names.values(), 0)
    files = net.spec()["files"]["synapses"]
    for chunk in net.plan("synapses", 2_000_000):  # one streamed pass over the putative rows
        rows, _ = read_chunk(files, KINDS["synapses"], chunk)
        t = net.neuron_type
        key = (t[rows[:, 0]].astype(np.int64) * 64 + t[rows[:, 1]]) * 65536 + rows[:, 6]
        k, c = np.unique(key, return_counts=True)
        for kk, cc in zip(k.tolist(), c.tolist(), strict=True):  # per distinct pathway, not per row
            code = (kk // 65536 // 64, kk // 65536 % 64, kk % 65536)
            if code in names:
                counts[names[code]] += cc
    close_files()
    return counts


if __name__ == "__main__":
    main()
