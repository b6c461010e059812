#!/usr/bin/env python3
"""GPU benchmark: on-device rows/s, and end to end against the CPU path and plain read + write.

    python benchmarks/bench_gpu.py NETWORK [--repeat 3] [--record]
    python benchmarks/bench_gpu.py NETWORK --emulate        # smoke test of this script without a GPU

1. Correctness first: every chunk pruned on the device equals the NumPy engine's result, and
   ``gpuprune.prune(device="gpu")`` writes the same bytes as ``device="cpu"`` (philox mode).
2. Kernels alone: sort + segment + draw + decide + compact of chunks already uploaded, timed with
   CUDA events up to the copy of the kept rows, after a warm-up run (target on an H100: >= 3e9
   rows/s); the transfers (upload of the rows) are timed and reported separately.
3. End to end: ``gpuprune.prune`` on the GPU and on the CPU, and the time to merely read every input
   row and write the kept rows (target: the GPU path within 90 % of that rate).
With ``--emulate`` the device is the emulated one (kernels compiled for the host): the numbers then
say nothing about a GPU, and are not recorded.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_prune import machine, record, same_rows

import gpuprune
from gpuprune import engine
from gpuprune.device import cupy_backend, pool
from gpuprune.device import program as _device
from gpuprune.format import KINDS
from gpuprune.io import reader as stream
from gpuprune.io.network import Network
from gpuprune.io.writer import OutputWriter


def device_rows_per_second(network, emulate, repeat):
    """Rows/s of the device engine on uploaded chunks; checks each chunk against the NumPy engine.

    On a GPU the kernel section alone is timed with CUDA events on the compute stream: the events
    bracket the launches of each chunk up to its last kernel, before the kept rows are copied back;
    the copies (upload of the rows, download of the kept rows) are timed separately.

    Returns
    -------
    (rows, kernel rows/s, transfer seconds, description)
    """
    net = Network(network)
    ctx = engine.PruneContext.from_network(net)
    gpu_pool = pool.GpuPool(ctx, net, emulate=emulate)
    worker = gpu_pool.devices[0]
    dev, state = worker.dev, worker.state
    staged = []
    try:
        for kind in KINDS.values():
            files = net.spec()["files"][kind.name]
            for chunk in net.plan(kind.name, gpu_pool.row_budget(kind.name)):
                rows, _ = stream.read_chunk(files, kind, chunk)
                dist = _device.distance_tables(ctx, kind, rows)
                with dev.device_scope():
                    d_rows = dev.upload(rows.reshape(-1))
                    d_dist = {k: dev.upload(v) for k, v in dist.items()}
                staged.append((kind, chunk, rows, d_rows, d_dist))

        def run_all():
            out = []
            with dev.device_scope():
                for kind, chunk, rows, d_rows, d_dist in staged:
                    out.append(_device.prune_on_device(state, kind, d_rows, d_dist, rows, chunk.dest_lo,
                                                       chunk.dest_hi))
            return out

        for (kind, chunk, rows, _, _), res in zip(staged, run_all(), strict=True):  # correctness + warm-up
            ref = engine.prune_chunk(ctx, kind, rows, chunk.dest_lo, chunk.dest_hi)
            assert np.array_equal(ref.rows, res.rows), f"{kind.name} chunk {chunk.index}: device != CPU engine"
        n = sum(rows.shape[0] for _, _, rows, _, _ in staged)
        best = float("inf")
        for _ in range(repeat):
            if emulate:
                t0 = time.perf_counter()
                run_all()
                seconds = time.perf_counter() - t0
            else:
                seconds = _kernel_seconds(dev, state, staged)
            best = min(best, seconds)
        transfer = _transfer_seconds(dev, staged, emulate)
        return n, n / best, transfer, dev.description
    finally:
        gpu_pool.shutdown()
        stream.close_files()


def _kernel_seconds(dev, state, staged):
    """Seconds of the kernels alone: CUDA events around each chunk's launches, downloads excluded.

    ``prune_on_device`` downloads its results at the end; the download is taken out by recording
    the end event from the backend's ``download`` hook, before the first device-to-host copy."""
    import cupy

    total = 0.0
    real_download = dev.download
    for kind, chunk, rows, d_rows, d_dist in staged:
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        marks = []

        def download(arr, _end=end, _marks=marks):
            if not _marks and arr.size > 1:  # the kept rows: the kernels of the chunk are launched
                _end.record()
                _marks.append(True)
            return real_download(arr)

        dev.download = download
        try:
            with dev.device_scope():
                start.record()
                _device.prune_on_device(state, kind, d_rows, d_dist, rows, chunk.dest_lo, chunk.dest_hi)
        finally:
            dev.download = real_download
        if not marks:
            end.record()
        end.synchronize()
        total += cupy.cuda.get_elapsed_time(start, end) / 1e3
    return total


def _transfer_seconds(dev, staged, emulate):
    """Seconds to upload every staged chunk's rows once more (host to device, from pageable memory)."""
    t0 = time.perf_counter()
    with dev.device_scope():
        for _, _, rows, _, _ in staged:
            dev.upload(rows.reshape(-1))
        dev.synchronize_device()
    return time.perf_counter() - t0


def read_write_seconds(network, out):
    """Time to read every input row and write the rows a philox prune keeps (no pruning).

    Reads decode on as many threads as the GPU pool's reader uses by default, so the
    comparison is with the same reader."""
    net = Network(network)
    kept = gpuprune.prune(network, output_file=out, device="cpu")
    import h5py

    with h5py.File(out, "r") as f:
        rows = {k: f[f"network/{k}"][()] for k in KINDS}
    threads = stream.ReadThreads(min(pool.READ_THREADS, stream.default_workers()))
    t0 = time.perf_counter()
    try:
        for kind in KINDS.values():
            files = net.spec()["files"][kind.name]
            for chunk in net.plan(kind.name, 1_000_000):
                stream.read_chunk(files, kind, chunk, threads=threads)
    finally:
        threads.shutdown()
        stream.close_files()
    with OutputWriter(out, net.worklog_path, net.config) as w:
        for k, r in rows.items():
            w.append(k, r)
    return time.perf_counter() - t0, kept


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("network")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--emulate", action="store_true", help="emulated device (no GPU needed; numbers meaningless)")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args(argv)
    network = Path(args.network).resolve()
    if not args.emulate and cupy_backend.device_count() == 0:
        print("no GPU: nothing to measure (use --emulate to check this script)")
        return 1
    info = machine()
    n, device_rate, transfer_s, description = device_rows_per_second(network, args.emulate, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rw_s, cpu = read_write_seconds(network, tmp / "rw.hdf5")
        if args.emulate:
            from unittest import mock

            real = pool.GpuPool
            patches = [mock.patch.object(pool, "GpuPool", lambda ctx, net, **kw: real(ctx, net, emulate=True, **kw)),
                       mock.patch.object(gpuprune.api, "_gpu_available", lambda: True)]
            for p in patches:
                p.start()
        try:
            gpu_times, cpu_times = [], []
            for _ in range(args.repeat):
                gpu_times.append(gpuprune.prune(network, output_file=tmp / "gpu.hdf5", device="gpu").timings["total"])
                cpu_times.append(gpuprune.prune(network, output_file=tmp / "cpu.hdf5", device="cpu").timings["total"])
        finally:
            if args.emulate:
                for p in patches:
                    p.stop()
        assert same_rows(tmp / "gpu.hdf5", tmp / "cpu.hdf5"), "GPU output differs from the CPU's"
    rows = cpu.synapses_before + cpu.gap_junctions_before
    lines = [
        f"network: {network.name}: {rows:,} putative rows; device: {description}",
        f"kernels alone (sort+segment+draw+decide+compact, CUDA events, uploaded chunks, best of {args.repeat}): "
        f"{device_rate / 1e9:.3f} G rows/s ({n:,} rows)",
        f"transfers: upload of every row {transfer_s:.3f} s = {n / transfer_s / 1e6:.0f} M rows/s",
        f"end to end GPU: {min(gpu_times):.3f} s = {rows / min(gpu_times) / 1e6:.1f} M rows/s; "
        f"CPU ({cpu.workers} workers): {min(cpu_times):.3f} s = {rows / min(cpu_times) / 1e6:.1f} M rows/s; "
        f"GPU/CPU speed-up {min(cpu_times) / min(gpu_times):.1f}x",
        f"read all rows + write the kept rows (no pruning): {rw_s:.3f} s = {rows / rw_s / 1e6:.1f} M rows/s; "
        f"GPU end to end reaches {100 * rw_s / min(gpu_times):.0f} % of that rate",
    ]
    print("\n".join(lines))
    if args.record and not args.emulate:
        record(f"bench_gpu.py {network.name}", info, f"GPU: {description}", "\n".join(f"- {x}" for x in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
