"""Local pool vs Dask vs MPI, 1 and 2 workers, on one synthetic network in one run.

    python benchmarks/bench_distributed.py [--neurons 2000] [--synapses 400] [--row-budget 50000]

Every configuration runs in a fresh child process (so the parent's peak RSS is its own) and prints
throughput, the per-task overhead ((wall x workers - read - compute) / chunks) and the parent's peak
memory; all outputs must be byte-identical.  Then a model of the nodes a 1e10-row network needs, from
the measured per-row costs (see the printed assumptions).
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)
#: (label, how, workers)
CONFIGS = [("local", "local", 1), ("local", "local", 2), ("dask", "dask", 1), ("dask", "dask", 2),
           ("mpi", "mpi", 1), ("mpi", "mpi", 2)]


def _one(how, workers, net, out, budget):
    """Child process: one prune, JSON on the last stdout line (rank 0 only under MPI)."""
    import gpuprune

    opts = {"row_budget": budget, "device": "cpu", "output_file": out}
    cluster = client = None
    if how == "local":
        opts["workers"] = workers
    elif how == "dask":
        import distributed

        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
        client = distributed.Client(cluster)
        opts["client"] = client
    else:
        opts["mpi"] = True
    walls = []
    for _ in range(2):  # the first run pays the workers' start-up (imports, opening the files); report both
        t0 = time.perf_counter()
        r = gpuprune.prune(net, **opts)
        walls.append(time.perf_counter() - t0)
    first, wall = walls
    if client is not None:
        client.close()
        cluster.close()
    if r is None:  # a serving MPI rank
        return
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"wall": wall, "first": first, "rows": r.synapses_before + r.gap_junctions_before,
                      "kept": r.synapses_after + r.gap_junctions_after, "chunks": r.chunks,
                      "read": r.timings["read"], "compute": r.timings["compute"], "rss": rss}))


def _run(how, workers, net, out, budget):
    cmd = [sys.executable, HERE, "--one", how, str(workers), net, out, str(budget)]
    if how == "mpi":
        mpiexec = shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec, "-n", str(workers + 1)] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise SystemExit(f"{how} x{workers} failed:\n{proc.stderr[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    with open(out, "rb") as fh:
        res["sha"] = hashlib.sha256(fh.read()).hexdigest()
    return res


def _write_cost(net, pruned, out):
    """Seconds per kept row for the single writer (rank 0 / the parent): rewrite ``pruned``'s rows."""
    import h5py

    from gpuprune.io.network import Network
    from gpuprune.io.writer import OutputWriter

    n = Network(net)
    with h5py.File(pruned, "r") as f:
        rows = {k: f["network"][k][()] for k in ("synapses", "gap_junctions")}
    t0 = time.perf_counter()
    with OutputWriter(out, n.worklog_path, n.config) as w:
        w.append("synapses", rows["synapses"])
        w.append("gap_junctions", rows["gap_junctions"])
    return (time.perf_counter() - t0) / max(1, sum(len(v) for v in rows.values()))


def model(per_row_s, write_row_s, in_bytes_per_row, keep, rows=1e10, targets_h=(0.25, 1, 4), bandwidths=(10, 100),
          workers_per_node=32):
    """Print nodes needed for ``rows`` in ``targets_h`` hours at each aggregate read bandwidth (GB/s)."""
    print(f"\nmodel: {rows:.0e} rows; measured {per_row_s * 1e9:.0f} ns/row per worker (read+prune), "
          f"{write_row_s * 1e9:.0f} ns per kept row at the writer, {in_bytes_per_row:.1f} input bytes/row, "
          f"keep {100 * keep:.1f} %, {workers_per_node} CPU workers/node")
    write_h = rows * keep * write_row_s / 3600
    print(f"  the single writer alone needs {write_h:.2f} h (a floor for any node count)")
    for bw in bandwidths:
        read_h = rows * in_bytes_per_row / (bw * 1e9) / 3600
        for t in targets_h:
            if t <= max(read_h, write_h):
                print(f"  {bw:>4} GB/s, {t} h: impossible (reading takes {read_h:.2f} h, writing {write_h:.2f} h)")
                continue
            nodes = rows * per_row_s / (t * 3600 * workers_per_node)
            print(f"  {bw:>4} GB/s, {t} h: {max(1, int(-(-nodes // 1)))} node(s) "
                  f"(compute-bound; reading alone {read_h:.2f} h)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=2000)
    ap.add_argument("--synapses", type=int, default=400, help="putative rows per neuron")
    ap.add_argument("--row-budget", type=int, default=50_000)
    ap.add_argument("--workers-per-node", type=int, default=32, help="CPU workers per node in the model")
    ap.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        how, workers, net, out, budget = args.one
        return _one(how, int(workers), net, out, int(budget))

    from gpuprune.synth import generate_network

    tmp = tempfile.mkdtemp(prefix="bench-distributed-")
    try:
        net = os.path.join(tmp, "net")
        generate_network(net, num_neurons=args.neurons, synapses_per_neuron=args.synapses, seed=3)
        in_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(net) for f in fs
                       if f.endswith(".hdf5") and "worklog" not in f)
        print(f"network: {args.neurons} neurons, input {in_bytes / 1e6:.1f} MB; row budget {args.row_budget:,}; "
              f"{os.cpu_count()} CPUs")
        print(f"{'pool':6} {'workers':>7} {'chunks':>6} {'1st s':>6} {'wall s':>7} {'M rows/s':>8} "
              f"{'overhead ms/task':>16} {'parent MB':>9}")
        results = {}
        for label, how, workers in CONFIGS:
            r = _run(how, workers, net, os.path.join(tmp, f"{how}-{workers}.hdf5"), args.row_budget)
            results[(how, workers)] = r
            over = (r["wall"] * workers - r["read"] - r["compute"]) / r["chunks"]
            print(f"{label:6} {workers:>7} {r['chunks']:>6} {r['first']:>6.2f} {r['wall']:>7.2f} "
                  f"{r['rows'] / r['wall'] / 1e6:>8.2f} {1e3 * over:>16.1f} {r['rss'] / 2**20:>9.0f}")
        shas = {r["sha"] for r in results.values()}
        print("outputs byte-identical:", len(shas) == 1)
        base = results[("local", 1)]
        per_row = (base["read"] + base["compute"]) / base["rows"]
        write_row = _write_cost(net, os.path.join(tmp, "local-1.hdf5"), os.path.join(tmp, "rewrite.hdf5"))
        model(per_row, write_row, in_bytes / base["rows"], base["kept"] / base["rows"],
              workers_per_node=args.workers_per_node)
        return 0 if len(shas) == 1 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
