"""The GPU backend: CUDA kernels through CuPy, a device memory budget, and a chunk pool.

Kernel sources live in ``kernels/`` (installed as the package data
``gpuprune.kernels``) and are read as text: :func:`kernel_source` puts a
generated ``#define`` block (constants taken from the Python modules, so there
is one source of truth) and a hash of the headers in front of ``prune.cu``,
which includes the headers through ``-I``; CuPy's disk cache keys on that text,
so an edited header recompiles.  Modules are built once per device
(``cupy.memoize(for_each_device=True)``) with ``--fmad=false``.

:class:`GpuPool` has the interface of the pools in :mod:`gpuprune.stream`
(``submit(files, kind_name, chunk)`` -> future of :class:`engine.ChunkResult`,
``workers``, ``shutdown()``).  Per device it stages the next chunk (read,
pinned host buffer, asynchronous upload on a copy stream) while the current
one is pruned on a compute stream; chunks that do not fit the device's memory
budget are split by dest range.  ``emulate=True`` runs the same path on the
emulated device of :mod:`gpuprune._emulate` (no GPU needed).
"""

import concurrent.futures
import contextlib
import functools
import hashlib
import importlib.resources
import logging
import os
import re
import threading
import time

import numpy as np

from gpuprune import engine, plan, rng
from gpuprune.device import program as _device
from gpuprune.errors import DeviceError, InputError, snudda_cpu_only_message
from gpuprune.execution.base import SubmitPool
from gpuprune.execution.pools import default_workers
from gpuprune.format import GAP_JUNCTIONS, KINDS, SYNAPSES
from gpuprune.io.reader import ReadThreads, read_chunk
from gpuprune.rules.params import GAP_JUNCTION_CHANNEL

try:  # the GPU backend is optional: without CuPy, device_count() is 0
    import cupy
except Exception:  # noqa: BLE001 - a broken CUDA install must not break the CPU path
    cupy = None

log = logging.getLogger("gpuprune")

#: the kernel file; the headers it includes are found through ``-I``.
MAIN_KERNEL = "prune.cu"
#: headers whose text is hashed into the source (CuPy's cache does not see ``-I`` files).
KERNEL_HEADERS = ("gp_common.cuh", "philox.cuh", "prune_rules.cuh")
#: threads per block of every launch.
BLOCK_SIZE = 256
#: NVRTC/nvcc options besides ``-I``: no fused multiply-add, so host and device agree bit for bit.
COMPILE_OPTIONS = ("--fmad=false",)
#: share of the free device memory a pool plans to use.
MEMORY_FRACTION = 0.8
#: most threads that decode the input for a GPU pool by default (LZF decoding runs without the GIL)
READ_THREADS = 8

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b?)\s*$", re.I)


def kernel_dir():
    """The folder holding the kernel sources.

    An installed gpuprune carries them as the package ``gpuprune.kernels`` (``kernels/`` mapped into
    the wheel).  Run from a source checkout (``python -m pytest`` puts the checkout's ``gpuprune/``
    first on ``sys.path``, which has no ``kernels`` subpackage) they are the checkout's top-level
    ``kernels/`` folder.
    """
    candidates = []
    try:
        path = importlib.resources.files("gpuprune.kernels")
        candidates.append(os.fspath(path) if isinstance(path, os.PathLike) else str(path))
    except ModuleNotFoundError:
        pass
    candidates.append(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                   "kernels"))
    for path in candidates:
        if os.path.isfile(os.path.join(path, MAIN_KERNEL)):
            return path
    raise DeviceError(f"kernel sources not found in {' or '.join(candidates)} (broken installation?)")


def _read_kernel(name):
    with open(os.path.join(kernel_dir(), name)) as fh:
        return fh.read()


def kernel_defines():
    """Compile-time constants of the kernels, by name (the generated ``#define`` block)."""
    return {
        "GP_KEY_TAG": f"0x{rng.KEY_TAG:08X}u",
        "GP_GROUP_ROW": f"0x{rng.GROUP_ROW:08X}u",
        "GP_GAP_JUNCTION_TYPE": str(GAP_JUNCTION_CHANNEL),
        "GP_COL_SRC": "0",
        "GP_COL_DEST": "1",
        "GP_COL_X": "2",  # voxel x, y, z in columns 2..4 (cluster pruning, as the NumPy engine)
        "GP_COL_TYPE": "6",
        "GP_COL_DIST": "8",
        "GP_COL_PARAM": "12",
        "GP_HAS_SOFT_MAX": f"{_device.FLAG_HAS_SOFT_MAX}u",
        "GP_HAS_MU2": f"{_device.FLAG_HAS_MU2}u",
        "GP_HAS_A3": f"{_device.FLAG_HAS_A3}u",
        "GP_CLUSTER": f"{_device.FLAG_CLUSTER}u",
        "GP_ROW_DRAW": f"{_device.FLAG_ROW_DRAW}u",
        "GP_DIST_DENSE": str(_device.DIST_DENSE),
        "GP_DIST_PER_ROW": str(_device.DIST_PER_ROW),
        "GP_ERR_NEURON": f"{_device.ERR_NEURON}u",
        "GP_ERR_TYPE": f"{_device.ERR_TYPE}u",
    }


def define_block():
    """The ``#define`` lines of :func:`kernel_defines`."""
    return "\n".join(f"#define {k} {v}" for k, v in kernel_defines().items())


def header_hash():
    """SHA-256 of the kernel headers' names and text."""
    h = hashlib.sha256()
    for name in KERNEL_HEADERS:
        h.update(name.encode() + b"\0" + _read_kernel(name).encode() + b"\0")
    return h.hexdigest()


def kernel_source():
    """The text CuPy compiles: header hash, ``#define`` block, then ``prune.cu``."""
    return (f"// gpuprune kernels; headers sha256 {header_hash()}\n"
            f"{define_block()}\n"
            f"#line 1 \"{MAIN_KERNEL}\"\n"
            f"{_read_kernel(MAIN_KERNEL)}")


def compile_options():
    """NVRTC options: the kernel folder for the headers, and :data:`COMPILE_OPTIONS`."""
    return ("-I" + kernel_dir(), *COMPILE_OPTIONS)


def device_count():
    """Number of CUDA devices CuPy sees; 0 without CuPy or a device (never raises)."""
    if cupy is None:
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - no driver, no device, ...
        return 0


def parse_memory_size(value):
    """Bytes from an int or a size such as ``"12G"``, ``"12GiB"``, ``"500M"`` (``--gpu-memory``).

    K, M, G, T are powers of 1024 (the units GPU memory is sold in).
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        size = int(value)
    else:
        m = _SIZE.match(str(value))
        if m is None:
            raise InputError(f"cannot read GPU memory size {value!r} (give bytes, or e.g. 12G, 500M)")
        size = int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))
    if size <= 0:
        raise InputError(f"GPU memory size must be positive, got {value!r}")
    return size


def _memoize_for_each_device(fn):
    return cupy.memoize(for_each_device=True)(fn) if cupy is not None else functools.lru_cache(None)(fn)


@_memoize_for_each_device
def _module():
    """The compiled kernels for the current device."""
    return cupy.RawModule(code=kernel_source(), options=compile_options())


def _nvml_free_bytes(device_id):
    """Free memory of a CUDA device from NVML (None if pynvml is missing or fails)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001
        return None
    try:
        bus_id = cupy.cuda.Device(device_id).pci_bus_id
        try:
            handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus_id)
        except Exception:  # noqa: BLE001 - older bindings want bytes
            handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus_id.encode())
        return int(pynvml.nvmlDeviceGetMemoryInfo(handle).free)
    except Exception:  # noqa: BLE001
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


class CupyBackend:
    """The device backend of :mod:`gpuprune._device` on a CUDA device, through CuPy.

    Parameters
    ----------
    device_id : int
    """

    name = "cupy"

    def __init__(self, device_id):
        if cupy is None:
            raise DeviceError("the GPU backend needs CuPy (pip install 'gpuprune[gpu]')")
        self.device_id = int(device_id)
        self.OutOfMemory = cupy.cuda.memory.OutOfMemoryError
        with cupy.cuda.Device(self.device_id):
            props = cupy.cuda.runtime.getDeviceProperties(self.device_id)
        name = props["name"]
        self.description = f"GPU {self.device_id} ({name.decode() if isinstance(name, bytes) else name})"

    def activate(self):
        cupy.cuda.Device(self.device_id).use()

    def device_scope(self):
        return cupy.cuda.Device(self.device_id)

    def new_stream(self):
        return cupy.cuda.Stream(non_blocking=True)

    def stream_scope(self, stream):
        return stream

    def record(self, stream):
        return stream.record()

    def wait_event(self, stream, event):
        stream.wait_event(event)

    def synchronize(self, stream):
        stream.synchronize()

    def empty(self, n, dtype):
        return cupy.empty(int(n), dtype=dtype)

    def zeros(self, n, dtype):
        return cupy.zeros(int(n), dtype=dtype)

    def upload(self, host, stream=None, keepalive=None):
        """Copy ``host`` to the device; with ``stream``, asynchronously from a pinned buffer.

        The pinned buffer is appended to ``keepalive``, which the caller holds until
        the stream has passed the copy.
        """
        host = np.ascontiguousarray(host)
        out = cupy.empty(host.shape, dtype=host.dtype)
        if stream is None:
            out.set(host)
            return out
        import cupyx

        pinned = cupyx.empty_pinned(host.shape, dtype=host.dtype)
        pinned[...] = host
        out.set(pinned, stream=stream)
        keepalive.append(pinned)
        return out

    def synchronize_device(self):
        with cupy.cuda.Device(self.device_id):
            cupy.cuda.Device().synchronize()

    def download(self, arr):
        return arr.get()

    def argsort(self, key):
        return cupy.argsort(key)  # thrust stable_sort_by_key: a radix sort, stable

    def flatnonzero(self, mask):
        return cupy.flatnonzero(mask)

    def max_int(self, arr):
        return int(arr.max()) if arr.size else 0

    def memory_budget(self, limit=None, fraction=MEMORY_FRACTION):
        """Bytes a pool may plan to use: a share of the free memory (NVML, else CUDA), capped by ``limit``."""
        with cupy.cuda.Device(self.device_id):
            free = _nvml_free_bytes(self.device_id)
            if free is None:
                free = int(cupy.cuda.runtime.memGetInfo()[0])
            free += int(cupy.get_default_memory_pool().free_bytes())  # cached by CuPy, reusable
        budget = int(free * fraction)
        return budget if limit is None else min(budget, int(limit))

    def release_cached(self):
        with cupy.cuda.Device(self.device_id):
            cupy.get_default_memory_pool().free_all_blocks()

    def launch(self, name, n_threads, args):
        n_threads = int(n_threads)
        if n_threads <= 0:
            return
        grid = (n_threads + BLOCK_SIZE - 1) // BLOCK_SIZE
        _module().get_function(name)((grid,), (BLOCK_SIZE,), args)


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
        self.slots = threading.Semaphore(_device.STAGED_CHUNKS)
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
            rows = (budget - pool.tables.fixed_bytes(kind)) // pool.tables.bytes_per_row(kind)
            self.max_rows[kind.name] = max(0, int(rows))
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

    def stage(self, files, kind, part, fits):
        while not self.slots.acquire(timeout=0.05):  # at most STAGED_CHUNKS sub-chunks resident
            if self.pool.closing.is_set():
                raise concurrent.futures.CancelledError("the GPU pool is shutting down")
        try:
            t0 = time.perf_counter()
            rows, _ = read_chunk(files, kind, part, threads=self.pool.read_threads)
            staged = _Staged(part, fits, rows, time.perf_counter() - t0, self.slots.release)
        except BaseException:
            self.slots.release()
            raise
        if fits:
            try:
                dist = _device.distance_tables(self.pool.ctx, kind, rows)
                with self.dev.device_scope():
                    copy = self.stream("copy")
                    staged.d_rows = self.dev.upload(rows.reshape(-1), copy, staged.keepalive)
                    staged.d_dist = {k: self.dev.upload(v, copy, staged.keepalive) for k, v in dist.items()}
                    staged.event = self.dev.record(copy)
            except self.dev.OutOfMemory:  # the compute thread splits it
                staged.drop_device()
                staged.upload_failed = True
            except BaseException:
                staged.release()
                raise
        return staged

    # -- prune: runs on this device's compute thread ----------------------------------------

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
                    pass  # handled below, once the failed attempt's arrays are gone
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
            except self.dev.OutOfMemory:
                pass  # split further below, once this attempt's arrays are gone
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
    """Prune chunks on one or more GPUs (or emulated GPUs), as a :mod:`gpuprune.stream` pool.

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
        (:data:`MEMORY_FRACTION`) of the free memory NVML reports.
    emulate : bool
        Run on emulated devices (:mod:`gpuprune._emulate`): the same kernels compiled
        for the host.  For tests and CI.
    emulated_memory : int, optional
        Memory of each emulated device (default :data:`gpuprune._emulate.DEFAULT_MEMORY`).
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
                 read_threads=None):
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
        limit = None if memory_limit is None else parse_memory_size(memory_limit)
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


__all__ = ["BLOCK_SIZE", "CupyBackend", "GpuPool", "compile_options", "device_count", "kernel_defines",
           "kernel_dir", "kernel_source", "parse_memory_size"]
