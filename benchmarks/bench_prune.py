#!/usr/bin/env python3
"""Time gpuprune against Snudda's SnuddaPrune on one network, in the same run.

    python benchmarks/bench_prune.py NETWORK [--snudda-python PY] [--repeat 3] [--record]

1. Correctness first: gpuprune's snudda mode must reproduce SnuddaPrune's output byte for byte
   (when Snudda runs in this benchmark), and philox mode must give the same bytes with 1 and N workers.
2. gpuprune end to end (``gpuprune.prune()``: open, plan, read, prune, write), philox mode, best of
   ``--repeat`` after a warm-up run, and compute-only rows/s (the engine on chunks already in memory).
3. SnuddaPrune end to end (constructor + prune() with a fresh merge + destructor, on a copy of the
   network), when ``snudda`` imports here or ``--snudda-python`` names an interpreter that has it.
4. Prints rows/s and the ratios; ``--record`` appends them, with the machine, to benchmarks/RESULTS.md.
"""

import argparse
import datetime
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

import gpuprune
from gpuprune import engine
from gpuprune.execution.malloc import tune_malloc
from gpuprune.format import KINDS
from gpuprune.io import reader as stream
from gpuprune.io.network import Network

HERE = Path(__file__).resolve().parent
TIMING_TOOL = HERE.parent.parent / "shared" / "tools" / "prune_timing.py"


def machine():
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": stream.default_workers(), "python": platform.python_version(),
            "numpy": np.__version__, "h5py": h5py.__version__, "host": platform.node(),
            "reader": ("direct LZF (gpuprune.io._lzf)" if stream.DIRECT_READ and stream._lzf_decompress_into is not None
                       else "h5py")}


def same_rows(a, b):
    with h5py.File(a, "r") as f, h5py.File(b, "r") as g:
        return all(np.array_equal(f[k][()], g[k][()]) for k in ("network/synapses", "network/gap_junctions"))


def copy_network(src, dest):
    skip = shutil.ignore_patterns("network-synapses*.hdf5", "temp", "pruning_merge_info.json", "expected")
    shutil.copytree(src, dest, ignore=skip)
    return dest


def run_snudda(network, python, workdir):
    """SnuddaPrune on a copy of ``network``; returns (seconds, output file)."""
    net = copy_network(network, Path(workdir) / "snudda-net")
    if python is None:
        from snudda.detect.prune import SnuddaPrune

        t0 = time.perf_counter()
        sp = SnuddaPrune(network_path=str(net), keep_files=True, verbose=False)
        sp.prune()
        sp.close_log_file()
        del sp
        seconds = time.perf_counter() - t0
    else:
        out = Path(workdir) / "snudda-timing.json"
        subprocess.run([python, str(TIMING_TOOL), str(net), "--fresh", "--json", str(out)], check=True,
                       stdout=subprocess.DEVNULL)
        seconds = json.loads(out.read_text().splitlines()[-1])["total_s"]
    return seconds, net / "network-synapses.hdf5"


def compute_only(network, workers):
    """Rows/s of the engine alone on chunks already in memory (one core)."""
    net = Network(network)
    ctx = engine.PruneContext.from_network(net)
    n, seconds = 0, 0.0
    for kind in KINDS.values():
        files = net.spec()["files"][kind.name]
        for chunk in net.plan(kind.name, 1_000_000):
            rows, _ = stream.read_chunk(files, kind, chunk)
            t0 = time.perf_counter()
            engine.prune_chunk(ctx, kind, rows, chunk.dest_lo, chunk.dest_hi)
            seconds += time.perf_counter() - t0
            n += rows.shape[0]
    stream.close_files()
    return n / seconds, seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("network")
    ap.add_argument("--snudda-python", help="interpreter with snudda installed (default: this one, if it has it)")
    ap.add_argument("--no-snudda", action="store_true", help="skip SnuddaPrune")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--record", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    network = Path(args.network).resolve()
    tune_malloc()
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores; numpy {info['numpy']}, h5py {info['h5py']}; "
          f"input reader: {info['reader']}")

    with tempfile.TemporaryDirectory(dir=network.parent) as work:
        work = Path(work)
        have_snudda = False
        if not args.no_snudda:
            if args.snudda_python:
                have_snudda = True
            else:
                try:
                    import snudda.detect.prune  # noqa: F401
                    have_snudda = True
                except ImportError:
                    print("snudda not importable here and no --snudda-python: SnuddaPrune not timed")

        # 1. correctness before timing
        ref = work / "philox-1.hdf5"
        r1 = gpuprune.prune(network, output_file=ref, device="cpu", workers=1)
        n_rows = r1.synapses_before + r1.gap_junctions_before
        par = work / "philox-n.hdf5"
        gpuprune.prune(network, output_file=par, device="cpu", workers=args.workers)
        assert same_rows(ref, par), "philox output differs between 1 and N workers"
        snudda_s = None
        if have_snudda:
            snudda_s, snudda_out = run_snudda(network, args.snudda_python, work)
            ours = work / "snudda-mode.hdf5"
            gpuprune.prune(network, output_file=ours, rng="snudda", device="cpu", workers=args.workers)
            assert same_rows(ours, snudda_out), "snudda mode differs from SnuddaPrune's output"
            print(f"check: snudda mode == SnuddaPrune output ({n_rows:,} putative rows)")
        print("check: philox output identical for 1 and N workers")

        # 2. timing (the correctness runs above warmed the page cache)
        times = []
        for _ in range(args.repeat):
            res = gpuprune.prune(network, output_file=work / "t.hdf5", device="cpu", workers=args.workers)
            times.append(res.timings["total"])
        best = min(times)
        rate_compute, _ = compute_only(network, args.workers)
        snudda_mode = gpuprune.prune(network, output_file=work / "s.hdf5", rng="snudda", device="cpu",
                                     workers=args.workers).timings["total"]

    lines = [
        f"network: {network.name}: {r1.synapses_before:,} putative synapses, {r1.gap_junctions_before:,} "
        f"gap junctions -> {r1.synapses_after:,} / {r1.gap_junctions_after:,} kept",
        f"gpuprune philox, {res.workers} workers: {best:.3f} s end to end (best of {args.repeat}: "
        f"{', '.join(f'{t:.3f}' for t in times)}) = {n_rows / best / 1e6:.2f} M rows/s",
        f"gpuprune snudda mode, {res.workers} workers: {snudda_mode:.3f} s = {n_rows / snudda_mode / 1e6:.2f} M rows/s",
        f"gpuprune engine only (one core, chunks in memory): {rate_compute / 1e6:.2f} M rows/s",
    ]
    if snudda_s is not None:
        lines.append(f"SnuddaPrune: {snudda_s:.1f} s end to end = {n_rows / snudda_s / 1e3:.0f} k rows/s")
        lines.append(f"ratio: gpuprune philox {snudda_s / best:.1f}x faster than SnuddaPrune; "
                     f"snudda mode {snudda_s / snudda_mode:.1f}x")
    print("\n".join(lines))
    if args.record:
        record(f"bench_prune.py {network.name}", info, "CPU path (no GPU)", "\n".join(f"- {x}" for x in lines))
    return 0


def record(title, info, setting, body):
    """Append a dated section with the machine to benchmarks/RESULTS.md."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    with open(HERE / "RESULTS.md", "a") as fh:
        fh.write(f"\n### {stamp} — {title}\n\nMachine: {info['cpu']}, {info['cores']} cores, Python "
                 f"{info['python']}, NumPy {info['numpy']}, h5py {info['h5py']}; input reader: {info['reader']}; "
                 f"{setting}.\n\n{body}\n")


if __name__ == "__main__":
    sys.exit(main())
