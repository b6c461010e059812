#!/usr/bin/env python3
"""Time a full ``gpuprune report`` (numbers, figures, HTML, JSON) and say where the time goes.

    python benchmarks/bench_report.py NETWORK [--repeat 2] [--workers N]

NETWORK must be prunable (a Snudda or ``gpuprune synth`` network).  In one run:

1. baseline: ``gpuprune.prune`` of the network (CPU, philox), which also writes the pruned file
   the report reads;
2. the report, best of ``--repeat``: its phases (open, read_pruned, funnel = the prune again in
   memory with the trace hook, check against the file, statistics, figures, write) and the total,
   with the ratio to the baseline prune;
3. the target: a full report of net1000 in at most 15 s on 2 cores.

Example (the issue's net1000, synthetic)::

    gpuprune synth /tmp/net1000 --neurons 1000 --synapses-per-neuron 6600 --seed 1
    python benchmarks/bench_report.py /tmp/net1000
"""

import argparse
import os
import platform
import resource
import tempfile
import time

import gpuprune
from gpuprune.report import report

TARGET_S = 15.0


def cpu_seconds():
    """User + system CPU seconds of this process and its finished children (the figure workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("network")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", type=int, help="prune workers and figure processes (default: one per core)")
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores available, load average "
          f"{os.getloadavg()[0]:.1f} (shared machines: timings vary with the load)")

    t0 = time.perf_counter()
    res = gpuprune.prune(args.network, device="cpu", workers=args.workers)
    prune_s = time.perf_counter() - t0
    rows = res.synapses_before + res.gap_junctions_before
    print(f"baseline gpuprune.prune: {rows:,} putative rows -> {res.synapses_after + res.gap_junctions_after:,} "
          f"in {prune_s:.2f} s")

    best = None
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            t0, c0 = time.perf_counter(), cpu_seconds()
            rep = report(args.network)
            c1 = cpu_seconds()
            rep.save(out, workers=args.workers)
            total, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        if best is None or total < best[0]:
            best = (total, dict(rep.timings), len(rep.pathways), cpu, c1 - c0)
    total, phases, n_path, cpu, cpu_numbers = best
    print(f"report ({n_path} pathways, {n_path + 1} figures), best of {args.repeat}: {total:.2f} s wall "
          f"= {total / prune_s:.1f}x the prune; CPU {cpu:.2f} s (numbers {cpu_numbers:.2f} s, figures and "
          f"files {cpu - cpu_numbers:.2f} s)")
    for name, s in phases.items():
        print(f"  {name:12s} {s:6.2f} s  {100 * s / total:5.1f} %")
    print(f"target <= {TARGET_S:.0f} s on 2 cores: {'met' if total <= TARGET_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
