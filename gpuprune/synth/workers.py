"""Building the rows of the files a process owns, in one process or in several.

LZF compression is the bottleneck, so worker processes each own a disjoint set of files (file
index modulo the number of workers): each plans all pairs (cheap) but builds and compresses only
the rows of its own files, block of dests after block.
"""

import multiprocessing
import os
import queue as queue_module
import traceback

import numpy as np

from gpuprune.format import GAP_JUNCTIONS, SYNAPSES
from gpuprune.synth.config import GAP_JUNCTION_CHANNEL
from gpuprune.synth.layout import make_plan
from gpuprune.synth.pairs import dest_block, plan_gap_junction_pairs
from gpuprune.synth.rows import gap_junction_rows, synapse_rows
from gpuprune.synth.voxel_files import OwnedFiles

AUTO_WORKERS_MIN_ROWS = 2_000_000  # below this, one process
AUTO_WORKERS_MAX = 16


def worker_count(workers, estimated_rows, num_files):
    """Processes to use: ``workers``, or by default one below AUTO_WORKERS_MIN_ROWS rows, else one per core."""
    if workers is None:
        if estimated_rows < AUTO_WORKERS_MIN_ROWS:
            return 1
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = min(cores or 1, AUTO_WORKERS_MAX)
    return max(1, min(int(workers), num_files + 1))


def generate_rows(plan, owned, budget, report=None):
    """Write the rows of the owned files, block of dests after block; return what the work log needs.

    ``owned`` is a bool per file index (hyper voxel files, then the projection file); ``report``
    is called with the rows written after each block.
    """
    listed, targets = [], []
    slot_offset = row_offset = gj_slot_offset = gj_row_offset = interleaved = 0
    with OwnedFiles(plan, owned) as files:
        d0 = 0
        while d0 < plan.num_neurons:  # one loop per block of dest neurons
            d1, pairs = dest_block(plan, d0, budget, slot_offset)
            rows, fi, keys, channel, hv_dests, proj_dests = synapse_rows(plan, pairs, row_offset, owned)
            files.write(SYNAPSES, rows, fi, keys, channel)
            written = len(rows)
            slot_offset += pairs["num_slots"]
            row_offset += int(pairs["g_rows"].sum())
            interleaved += pairs["num_interleaved"]
            listed.append(hv_dests)
            targets.append(proj_dests)
            del pairs, rows, fi, keys, channel
            if plan.gap_junctions:
                gj = plan_gap_junction_pairs(plan, d0, d1, gj_slot_offset)
                rows, fi, keys, hv_dests = gap_junction_rows(plan, gj, gj_row_offset, owned)
                channel = np.full(len(rows), GAP_JUNCTION_CHANNEL, dtype=np.int64)
                files.write(GAP_JUNCTIONS, rows, fi, keys, channel)
                written += len(rows)
                gj_slot_offset += gj["num_slots"]
                gj_row_offset += int(gj["rows"].sum())
                listed.append(hv_dests)
            d0 = d1
            if report is not None:
                report(written)
        counts = files.finish(np.concatenate(targets))
    return {"counts": counts, "listed": np.unique(np.concatenate(listed)), "interleaved": interleaved}


def _worker(spec, worker, num_workers, budget, queue):
    """Process entry point: write the files ``worker`` owns (file index % num_workers)."""
    try:
        plan = make_plan(**spec)
        owned = np.arange(plan.num_files + 1) % num_workers == worker
        result = generate_rows(plan, owned, budget, report=lambda n: queue.put(("progress", worker, n)))
        queue.put(("done", worker, result))
    except BaseException:
        queue.put(("error", worker, traceback.format_exc()))


def run_workers(spec, num_workers, budget, report):
    """Run generate_rows in worker processes that own disjoint sets of files; merge their results."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    queue = context.Queue()
    processes = [context.Process(target=_worker, args=(spec, i, num_workers, budget, queue), daemon=True)
                 for i in range(num_workers)]
    for proc in processes:
        proc.start()
    results = {}
    try:
        while len(results) < num_workers:
            try:
                kind, worker, payload = queue.get(timeout=1.0)
            except queue_module.Empty:
                dead = [i for i, proc in enumerate(processes)
                        if i not in results and proc.exitcode not in (None, 0)]
                if dead:
                    code = processes[dead[0]].exitcode
                    raise RuntimeError(f"synth worker {dead[0]} died with exit code {code}") from None
                continue
            if kind == "progress":
                if report is not None:
                    report(payload)
            elif kind == "done":
                results[worker] = payload
            else:
                raise RuntimeError(f"synth worker {worker} failed:\n{payload}")
    finally:
        for proc in processes:
            if proc.is_alive() and len(results) < num_workers:
                proc.terminate()
            proc.join()
    return {"counts": sum(r["counts"] for r in results.values()),
            "listed": np.unique(np.concatenate([r["listed"] for r in results.values()])),
            "interleaved": results[0]["interleaved"]}
