"""The GPU pool: chunks pruned on one or more devices (CUDA through CuPy, or emulated).

:class:`GpuPool` is a :class:`gpuprune.execution.base.SubmitPool` (``submit(files, kind_name,
chunk)`` -> future of :class:`engine.ChunkResult`, ``workers``, ``shutdown()``).  Per device it
stages the next chunk (read, pinned host buffer, asynchronous upload on a copy stream) while the
current one is pruned on a compute stream; chunks that do not fit the device's memory budget
(:mod:`gpuprune.device.memory`) are split by dest range (:func:`gpuprune.plan.split`).  A failed
device or pinned allocation splits the range and retries; before anything a kernel may still read
is dropped, the compute stream is synchronised.  ``emulate=True`` runs the same path on the
emulated device of :mod:`gpuprune.device.emulated` (no GPU needed).
"""

import concurrent.futures
import logging
import threading
import time

import numpy as np

from gpuprune import engine, plan
from gpuprune.device import memory
from gpuprune.device import program as _device
from gpuprune.device.cupy_backend import CupyBackend, device_count
from gpuprune.errors import DeviceError, snudda_cpu_only_message
from gpuprune.execution.base import SubmitPool
from gpuprune.format import GAP_JUNCTIONS, KINDS, SYNAPSES
from gpuprune.io.reader import ReadThreads, default_workers, read_chunk

log = logging.getLogger("gpuprune")

#: most threads that decode the input for a GPU pool by default (LZF decoding runs without the GIL)
READ_THREADS = 8


class _Staged:
    """One sub-chunk read and (if it fits) uploaded, waiting to be pruned."""

    def __init__(self, part, fits, rows, read_s, release):
        self.part, self.fits, self.rows, self.read_s = part, fits, rows, read_s
        self.upload_failed = False
        self.d_rows = self.d_dist = self.event = None
        self.keepalive = []  # pinned host buffers of uploads in flight
        self._release = release

    def drop_device(self):
        self.d_rows = self.d_dist = self.event = None
        self.keepalive = []

    def release(self):
        self.drop_device()
        if self._release is not None:
            self._release()
            self._release = None


class _DeviceWorker:
    """One device of a pool: its backend, tables, streams, compute thread and row budget."""

    def __init__(self, pool, backend, memory_limit):
        self.pool, self.dev = pool, backend
        self.compute = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"gpuprune-{backend.name}{getattr(backend, 'device_id', '')}",
            initializer=backend.activate)
        self.slots = threading.Semaphore(memory.STAGED_CHUNKS)
        self._streams = threading.local()
        try:
            self.state = self.compute.submit(self._make_state).result()
        except backend.OutOfMemory:
            raise DeviceError(f"{backend.description}: the run's parameter and neuron tables do not fit in "
                              "its memory; free GPU memory or use --device cpu") from None
        if memory_limit is not None:
            memory_limit -= self.state.nbytes
        budget = backend.memory_budget(memory_limit)
        self.budget = budget
        self.max_rows = {}
        for kind in (SYNAPSES, GAP_JUNCTIONS):
            self.max_rows[kind.name] = memory.max_chunk_rows(
                kind, budget, pool.tables.fixed_bytes(kind), pool.tables.bytes_per_row(kind),
                host_available=pool.host_memory)
        if min(self.max_rows.values()) < 1:
            raise DeviceError(f"{backend.description}: a memory budget of {budget:,} bytes holds no chunk "
                              "row; free GPU memory, raise --gpu-memory, or use --device cpu")

    def _make_state(self):
        state = _device.DeviceState(self.dev, self.pool.tables, self.pool.ctx, self.pool.lock)
        self.dev.synchronize_device()  # the tables were made on the default stream
        return state

    def stream(self, name):
        """This thread's stream ``name`` (streams are made in the thread that uses them)."""
        s = getattr(self._streams, name, None)
        if s is None:
            s = self.dev.new_stream()
            setattr(self._streams, name, s)
        return s

    # -- stage: runs on the pool's reader thread --------------------------------------------

    def _pinned_rows(self, kind, part):
        """A pinned host buffer to read a part's rows into (uploaded from without a copy); None if
        pinned memory is short (the rows are then read into pageable memory)."""
        try:
            return self.dev.pinned_empty((part.num_rows, kind.width), np.int32)
        except self.dev.PinnedOutOfMemory:
            return None

    def stage(self, files, kind, part, fits):
        while not self.slots.acquire(timeout=0.05):  # at most STAGED_CHUNKS sub-chunks resident
            if self.pool.closing.is_set():
                raise concurrent.futures.CancelledError("the GPU pool is shutting down")
        try:
            t0 = time.perf_counter()
            buffer = self._pinned_rows(kind, part) if fits else None
            rows, _ = read_chunk(files, kind, part, threads=self.pool.read_threads, out=buffer)
            staged = _Staged(part, fits, rows, time.perf_counter() - t0, self.slots.release)
        except BaseException:
            self.slots.release()
            raise
        if fits:
            try:
                dist = _device.distance_tables(self.pool.ctx, kind, rows)
                with self.dev.device_scope():
                    copy = self.stream("copy")
                    staged.d_rows = self.dev.upload(rows.reshape(-1), copy, staged.keepalive,
                                                    pinned=buffer is not None)
                    staged.d_dist = {k: self.dev.upload(v, copy, staged.keepalive) for k, v in dist.items()}
                    staged.event = self.dev.record(copy)
            except (self.dev.OutOfMemory, self.dev.PinnedOutOfMemory):  # the compute thread splits it
                self.dev.synchronize(self.stream("copy"))  # no copy still reads what is dropped
                staged.drop_device()
                staged.upload_failed = True
            except BaseException:
                self.dev.synchronize(self.stream("copy"))
                staged.release()
                raise
        return staged

    # -- prune: runs on this device's compute thread ----------------------------------------

    def _quiesce(self):
        """Wait for this thread's compute stream: nothing a launched kernel reads may be dropped before."""
        with self.dev.device_scope():
            self.dev.synchronize(self.stream("compute"))

    def finish(self, kind, chunk, futures):
        results, error = [], None
        for fut in futures:
            try:
                staged = fut.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after every slot is back
                error = error or exc
                continue
            try:
                if error is None:
                    results.append(self._prune_staged(kind, chunk, staged))
            except BaseException as exc:  # noqa: BLE001
                error = exc
                self._quiesce()  # kernels of the failed chunk may still read its rows
            finally:
                staged.release()
        if error is not None:
            raise error
        return _merge(results, self.pool.tables.code_size, kind)

    def _prune_staged(self, kind, chunk, staged):
        part = staged.part
        t0 = time.perf_counter()
        if not staged.fits:
            self.pool._count("cpu_parts")
            log.warning("%s: the %d %s rows onto neuron %d exceed the GPU memory budget; pruning them on "
                        "the CPU", self.dev.description, part.num_rows, kind.name, part.dest_lo)
            result = engine.prune_chunk(self.pool.ctx, kind, staged.rows, part.dest_lo, part.dest_hi)
        else:
            result = None
            if not staged.upload_failed:
                try:
                    with self.dev.device_scope(), self.dev.stream_scope(self.stream("compute")):
                        self.dev.wait_event(self.stream("compute"), staged.event)
                        result = _device.prune_on_device(self.state, kind, staged.d_rows, staged.d_dist,
                                                         staged.rows, part.dest_lo, part.dest_hi,
                                                         (chunk.dest_lo, chunk.dest_hi))
                except self.dev.OutOfMemory:
                    self._quiesce()  # handled below, once the failed attempt's kernels are done
            if result is None:
                staged.drop_device()
                result = self._after_out_of_memory(kind, chunk, part.dest_lo, part.dest_hi, staged.rows)
        result.read_s = staged.read_s
        result.compute_s = time.perf_counter() - t0
        return result

    def _after_out_of_memory(self, kind, chunk, lo, hi, rows):
        """Prune ``rows`` (onto ``[lo, hi)``) in two halves by dest range after an allocation failed."""
        self.dev.release_cached()
        self.pool._count("oom_splits")
        if hi - lo <= 1:
            self.pool._count("cpu_parts")
            log.warning("%s: out of memory on the %d %s rows onto neuron %d; pruning them on the CPU",
                        self.dev.description, rows.shape[0], kind.name, lo)
            return engine.prune_chunk(self.pool.ctx, kind, rows, lo, hi)
        log.warning("%s: out of memory on %d %s rows; splitting dest neurons %d..%d", self.dev.description,
                    rows.shape[0], kind.name, lo, hi - 1)
        dest = rows[:, 1]
        cut = int(np.median(dest)) if rows.shape[0] else (lo + hi) // 2
        mid = min(hi - 1, max(lo + 1, cut))
        results = []
        for a, b in ((lo, mid), (mid, hi)):
            sub = rows[(dest >= a) & (dest < b)]  # keeps file order
            result = None
            try:
                with self.dev.device_scope(), self.dev.stream_scope(self.stream("compute")):
                    dist = {k: self.dev.upload(v) for k, v in
                            _device.distance_tables(self.pool.ctx, kind, sub).items()}
                    result = _device.prune_on_device(self.state, kind, self.dev.upload(sub.reshape(-1)), dist,
                                                     sub, a, b, (chunk.dest_lo, chunk.dest_hi))
                    del dist
            except (self.dev.OutOfMemory, self.dev.PinnedOutOfMemory):
                self._quiesce()  # split further below, once this attempt's kernels are done
            results.append(result if result is not None else self._after_out_of_memory(kind, chunk, a, b, sub))
        return _merge(results, self.pool.tables.code_size, kind)


def _merge(results, code_size, kind):
    """One ChunkResult from the results of consecutive dest ranges."""
    if len(results) == 1:
        return results[0]
    rows = [r.rows for r in results]
    stats = np.zeros((4, code_size), dtype=np.int64)
    for r in results:
        stats += r.stats
    merged = engine.ChunkResult(np.concatenate(rows) if rows else np.zeros((0, kind.width), np.int32),
                                stats, sum(r.num_putative for r in results))
    merged.read_s = sum(r.read_s for r in results)
    merged.compute_s = sum(r.compute_s for r in results)
    return merged


class GpuPool(SubmitPool):
    """Prune chunks on one or more GPUs (or emulated GPUs), as a :class:`SubmitPool`.

    Parameters
    ----------
    ctx : engine.PruneContext
        Philox mode only (snudda mode runs on the CPU).
    net : network.Network
        Gives the per-dest row counts used to split chunks that do not fit a device.
    gpus : int, optional
        Devices to use: the first ``gpus`` visible ones (default all).  Chunks go to
        devices in turn; the result does not depend on how many there are.
    memory_limit : int or str, optional
        Cap on the device memory the pool plans to use, per device (``--gpu-memory``;
        bytes or e.g. ``"8G"``).  The budget is otherwise a share
        (:data:`gpuprune.device.memory.MEMORY_FRACTION`) of the free memory NVML reports.
    emulate : bool
        Run on emulated devices (:mod:`gpuprune.device.emulated`): the same kernels compiled
        for the host.  For tests and CI.
    emulated_memory : int, optional
        Memory of each emulated device (default :data:`gpuprune.device.emulated.DEFAULT_MEMORY`).
    host_memory : int, optional
        Host memory the staged chunks may plan with (default: what the OS reports available);
        chunk rows are also capped by :data:`gpuprune.device.memory.MAX_CHUNK_ROWS`.
    read_threads : int, optional
        Threads that decode the input's LZF chunks in parallel while the staging thread
        reads them raw (default one per available core, at most :data:`READ_THREADS`).

    Notes
    -----
    ``submit`` splits a chunk into dest ranges that fit the device's budget (a dest
    neuron whose rows alone do not fit is pruned by the NumPy engine, with a
    warning); a reader thread reads each range and uploads it on a copy stream
    while the device prunes the previous one.  A failed allocation splits the
    range and retries, so a chunk never ends the run with an out-of-memory error.
    """

    def __init__(self, ctx, net, *, gpus=None, memory_limit=None, emulate=False, emulated_memory=None,
                 read_threads=None, host_memory=None):
        if ctx.mode != engine.PHILOX:
            raise DeviceError(snudda_cpu_only_message())
        if read_threads is None:
            read_threads = min(READ_THREADS, default_workers())
        if int(read_threads) < 1:
            raise DeviceError(f"read_threads must be at least 1, got {read_threads}")
        self.ctx, self.net = ctx, net
        self.tables = _device.RuleTables(ctx)
        self.lock = threading.Lock()
        self.counters = {"cpu_parts": 0, "oom_splits": 0}
        self.host_memory = host_memory
        limit = None if memory_limit is None else memory.parse_memory_size(memory_limit)
        if emulate:
            from gpuprune.device.emulated import DEFAULT_MEMORY, EmulatedBackend

            n = 1 if gpus is None else int(gpus)
            backends = [EmulatedBackend(i, emulated_memory or DEFAULT_MEMORY) for i in range(n)]
        else:
            visible = device_count()
            if visible == 0:
                raise DeviceError("no GPU available: the GPU backend needs CuPy and a CUDA device "
                                  "(pip install 'gpuprune[gpu]')")
            n = visible if gpus is None else int(gpus)
            if not 1 <= n <= visible:
                raise DeviceError(f"asked for {gpus} GPUs but {visible} are visible")
            backends = [CupyBackend(i) for i in range(n)]
        if n < 1:
            raise DeviceError(f"gpus must be at least 1, got {gpus}")
        self.closing = threading.Event()
        self.reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gpuprune-stage")
        self.read_threads = ReadThreads(read_threads)
        self.devices = []
        try:
            for b in backends:
                self.devices.append(_DeviceWorker(self, b, limit))
        except BaseException:
            self.shutdown()
            raise
        self.workers = len(self.devices)
        self._next = 0
        log.info("GPU pool: %s", ", ".join(f"{w.dev.description} budget {w.budget / 2**20:.0f} MiB, "
                                           f"{w.max_rows['synapses']:,} synapse rows per chunk"
                                           for w in self.devices))

    def _count(self, what):
        with self.lock:
            self.counters[what] += 1

    def row_budget(self, kind_name):
        """Most rows of ``kind_name`` one chunk may have to be pruned on every device in one piece."""
        return min(w.max_rows[kind_name] for w in self.devices)

    def submit(self, files, kind_name, chunk):
        """Prune ``chunk`` on the next device; returns a future of its :class:`engine.ChunkResult`."""
        kind = KINDS[kind_name]
        worker = self.devices[self._next % len(self.devices)]
        self._next += 1
        parts = plan.split(self.net.sources[kind_name], chunk, worker.max_rows[kind_name],
                           self.tables.max_dest_span())
        staged = [self.reader.submit(worker.stage, files, kind, part, fits) for part, fits in parts]
        return worker.compute.submit(worker.finish, kind, chunk, staged)

    def shutdown(self):
        """Stop: pending chunks are cancelled, running ones finish; no thread is left behind."""
        self.closing.set()
        for w in self.devices:
            w.compute.shutdown(wait=False, cancel_futures=True)
        self.reader.shutdown(wait=True, cancel_futures=True)
        self.read_threads.shutdown()
        for w in self.devices:
            w.compute.shutdown(wait=True)


__all__ = ["READ_THREADS", "GpuPool"]
