#!/usr/bin/env python3
"""Scale sweep: end-to-end and compute-only rows/s and peak host memory against network size.

    python benchmarks/sweep.py [--sizes 1e5 1e6 1e7] [--big] [--workdir DIR] [--snudda-python PY] [--record]

For each size a synthetic network (gpuprune.synth) is generated once (reused from --workdir on
later runs), then, in this order:
1. correctness: philox output identical with 1 and N workers; with Snudda (small sizes only),
   gpuprune's snudda mode equal to SnuddaPrune's file;
2. ``gpuprune prune`` as a separate process (warm-up, then timed), its peak resident memory sampled
   over the whole process tree (parent and workers) from /proc;
3. compute-only rows/s: the engine on chunks already in memory (one core);
4. the GPU path, when a device is present;
5. SnuddaPrune at sizes up to --snudda-max-rows.
Ratios are printed against SnuddaPrune (same run) and against the 1e5 row point; ``--record``
appends a table to benchmarks/RESULTS.md.  ``--big`` adds 1e8 and 1e9 rows.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_prune import compute_only, machine, record, run_snudda, same_rows

import gpuprune
import gpuprune.io.network
from gpuprune import synth

HERE = Path(__file__).resolve().parent
SYN_PER_NEURON = 1000  # about what Snudda's striatum gives (6.4 M rows for 1000 neurons)


def tree_rss_bytes(pid):
    """Resident memory of a process and all its descendants (Linux /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class DeviceMemorySampler:
    """Peak memory used on CUDA device 0 above what was in use before (NVML, sampled every 10 ms).

    The NVML handle is found by the device's PCI bus id (NVML numbers devices in PCI order, CUDA
    may not), and CuPy's memory pools are emptied before the base is sampled, so that memory cached
    from a warm-up run does not hide the peak."""

    def __enter__(self):
        import cupy
        import pynvml

        from gpuprune.device import cupy_backend

        cupy.cuda.Device(0).synchronize()
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()
        pynvml.nvmlInit()
        self._nvml, self._handle = pynvml, cupy_backend.nvml_handle(pynvml, 0)
        self._base = self._used()
        self.peak, self._done = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _used(self):
        return self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used

    def _sample(self):
        while not self._done.is_set():
            self.peak = max(self.peak, self._used() - self._base)
            self._done.wait(0.01)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self._nvml.nvmlShutdown()
        return False


def run_measured(cmd):
    """Run a command; return (seconds, peak RSS of its process tree in bytes)."""
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_bytes(proc.pid))
            done.wait(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    code = proc.wait()
    seconds = time.perf_counter() - t0
    done.set()
    th.join()
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with status {code}")
    return seconds, peak[0]


def network_for(rows, workdir):
    """A synthetic network of about ``rows`` putative rows (generated once, then reused)."""
    neurons = max(20, int(round(rows / SYN_PER_NEURON)))
    for _ in range(3):  # small networks have fewer rows per neuron (partners repeat): rescale
        path = Path(workdir) / f"synth-{neurons}"
        marker = path / "log" / "network-detect-worklog.hdf5"
        if not marker.exists():
            print(f"  generating {neurons:,} neurons x {SYN_PER_NEURON} synapses ...", flush=True)
            summary = synth.generate_network(path, num_neurons=neurons, synapses_per_neuron=SYN_PER_NEURON,
                                             seed=1, overwrite=True)
            made = summary["num_synapses"] + summary["num_projection_synapses"] + summary["num_gap_junctions"]
        else:
            made = sum(gpuprune.io.network.Network(path).num_rows(k) for k in ("synapses", "gap_junctions"))
        if 0.8 * rows <= made <= 1.25 * rows:
            break
        neurons = max(20, int(round(neurons * rows / made)))
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    ap.add_argument("--big", action="store_true", help="also 1e8 and 1e9 rows")
    ap.add_argument("--workdir", default=None, help="where networks are generated and kept")
    ap.add_argument("--snudda-python", default=None)
    ap.add_argument("--snudda-max-rows", type=float, default=2e6)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes] + ([10 ** 8, 10 ** 9] if args.big else [])
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gpuprune-sweep-"))
    info = machine()
    gpu = gpuprune.api._gpu_available()
    print(f"machine: {info['cpu']}, {info['cores']} cores; GPU: {'yes' if gpu else 'none'}; work dir {workdir}")
    results = []
    for size in sizes:
        net = network_for(size, workdir)
        out = workdir / "out.hdf5"
        r1 = gpuprune.prune(net, output_file=out, device="cpu", workers=1)
        rows = r1.synapses_before + r1.gap_junctions_before
        r2 = gpuprune.prune(net, output_file=workdir / "out2.hdf5", device="cpu")
        assert same_rows(out, workdir / "out2.hdf5"), "philox output differs between 1 and N workers"
        cmd = [sys.executable, "-m", "gpuprune", "prune", str(net), "--device", "cpu", "--quiet",
               "--output", str(out)]
        run_measured(cmd)  # warm-up (page cache, imports)
        seconds, peak = run_measured(cmd)
        compute_rate, _ = compute_only(net, None)
        row = {"rows": rows, "cli_s": seconds, "rate": rows / seconds, "peak_gb": peak / 2 ** 30,
               "compute_rate": compute_rate, "workers": r2.workers, "api_s": r2.timings["total"]}
        if gpu:
            gpuprune.prune(net, output_file=workdir / "gpu.hdf5", device="gpu")  # warm-up (kernel compile)
            with DeviceMemorySampler() as mem:
                g = gpuprune.prune(net, output_file=workdir / "gpu.hdf5", device="gpu")
            assert same_rows(out, workdir / "gpu.hdf5"), "GPU output differs from the CPU's"
            row["gpu_s"] = g.timings["total"]
            row["gpu_peak_gb"] = mem.peak / 2 ** 30
        if (args.snudda_python or _snudda_here()) and rows <= args.snudda_max_rows:
            with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                s, snudda_out = run_snudda(net, args.snudda_python, tmp)
                mine = Path(tmp) / "mine.hdf5"
                gpuprune.prune(net, output_file=mine, rng="snudda", device="cpu")
                assert same_rows(mine, snudda_out), "snudda mode differs from SnuddaPrune"
                row["snudda_s"] = s
        results.append(row)
        print(_line(row), flush=True)
    table = _table(results)
    print("\n" + table)
    if args.record:
        record(f"sweep.py (synthetic networks, {SYN_PER_NEURON} synapses/neuron)", info,
               f"GPU: {'yes' if gpu else 'none'}", table)
    return 0


def _snudda_here():
    try:
        import snudda.detect.prune  # noqa: F401
    except ImportError:
        return False
    return True


def _line(r):
    s = (f"  {r['rows']:>13,} rows: CLI {r['cli_s']:.2f} s = {r['rate'] / 1e6:.2f} M rows/s, peak "
         f"{r['peak_gb']:.2f} GB, engine {r['compute_rate'] / 1e6:.2f} M rows/s/core")
    if "snudda_s" in r:
        s += f", SnuddaPrune {r['snudda_s']:.1f} s ({r['snudda_s'] / r['cli_s']:.0f}x)"
    if "gpu_s" in r:
        s += f", GPU {r['gpu_s']:.2f} s"
    return s


def _table(results):
    base = results[0]["rate"] if results else 1
    lines = ["| putative rows | gpuprune CLI (s) | M rows/s | rate vs smallest | peak RSS (GB) "
             "| engine M rows/s/core | SnuddaPrune (s) | speed-up | GPU (s) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        sn = r.get("snudda_s")
        cells = [f"{r['rows']:,}", f"{r['cli_s']:.2f}", f"{r['rate'] / 1e6:.2f}", f"{r['rate'] / base:.2f}",
                 f"{r['peak_gb']:.2f}", f"{r['compute_rate'] / 1e6:.2f}",
                 "" if sn is None else f"{sn:.1f}", "" if sn is None else f"{sn / r['cli_s']:.0f}x",
                 f"{r['gpu_s']:.2f} (peak {r['gpu_peak_gb']:.2f} GB on device)" if "gpu_s" in r
                 else "not measured (no GPU)"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
