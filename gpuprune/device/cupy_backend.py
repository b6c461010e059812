"""The device backend on a CUDA device, through CuPy (optional: without CuPy, ``device_count()`` is 0).

Kernels are compiled once per device (``cupy.memoize(for_each_device=True)``) from
:func:`gpuprune.device.kernels.kernel_source`; every launch passes the one :data:`abi.ARGS` struct
by value, as a 0-d NumPy structured array (:func:`abi.numpy_dtype`, C alignment; pointers as uint64).
"""

import contextlib
import functools

import numpy as np

from gpuprune.device import abi, kernels, memory
from gpuprune.errors import DeviceError

try:  # the GPU backend is optional: without CuPy, device_count() is 0
    import cupy
except Exception:  # noqa: BLE001 - a broken CUDA install must not break the CPU path
    cupy = None


def device_count():
    """Number of CUDA devices CuPy sees; 0 without CuPy or a device (never raises)."""
    if cupy is None:
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - no driver, no device, ...
        return 0


def _memoize_for_each_device(fn):
    return cupy.memoize(for_each_device=True)(fn) if cupy is not None else functools.lru_cache(None)(fn)


@_memoize_for_each_device
def compiled_module():
    """The compiled kernels for the current device."""
    return cupy.RawModule(code=kernels.kernel_source(), options=kernels.compile_options())


def nvml_handle(pynvml, device_id):
    """The NVML handle of CUDA device ``device_id``, by PCI bus id (NVML numbers devices in PCI order)."""
    bus_id = cupy.cuda.Device(device_id).pci_bus_id
    try:
        return pynvml.nvmlDeviceGetHandleByPciBusId(bus_id)
    except Exception:  # noqa: BLE001 - older bindings want bytes
        return pynvml.nvmlDeviceGetHandleByPciBusId(bus_id.encode())


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
        return int(pynvml.nvmlDeviceGetMemoryInfo(nvml_handle(pynvml, device_id)).free)
    except Exception:  # noqa: BLE001
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


class PinnedOutOfMemory(MemoryError):
    """``cupyx.empty_pinned`` failed (CUDA's cudaErrorMemoryAllocation): handled like device OOM."""


def pack_args(args):
    """The :data:`abi.ARGS` struct of ``args`` as a 0-d NumPy structured array (null for missing pointers).

    CuPy passes a one-element ``numpy.ndarray`` kernel argument by value, its bytes as they are
    (``CNumpyArray`` in ``cupy/cuda/function.pyx``, the way CuPy's custom-struct examples pass one); a
    ``numpy.void`` scalar goes through CuPy's scalar conversion instead, which CuPy 13 refuses.
    """
    packed = np.zeros((), dtype=abi.numpy_dtype())
    for name, ctype in abi.FIELDS.items():
        value = args.get(name)
        if value is None:
            continue
        target = packed
        *outer, leaf = name.split(".")
        for part in outer:
            target = target[part]
        target[leaf] = int(value.data.ptr) if ctype.endswith("*") else value
    return packed


class CupyBackend:
    """The :class:`gpuprune.device.backend.DeviceBackend` of one CUDA device.

    Parameters
    ----------
    device_id : int
    """

    name = "cupy"
    PinnedOutOfMemory = PinnedOutOfMemory

    def __init__(self, device_id):
        if cupy is None:
            raise DeviceError("the GPU backend needs CuPy (pip install 'gpuprune[gpu]')")
        self.device_id = int(device_id)
        # CuPy's OutOfMemoryError subclasses MemoryError; thrust's workspace failure inside argsort
        # (CuPy >= 14.1) is a bare MemoryError from std::bad_alloc: catch both
        self.OutOfMemory = MemoryError
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

    def synchronize_device(self):
        with cupy.cuda.Device(self.device_id):
            cupy.cuda.Device().synchronize()

    def empty(self, n, dtype):
        return cupy.empty(int(n), dtype=dtype)

    def zeros(self, n, dtype):
        return cupy.zeros(int(n), dtype=dtype)

    def pinned_empty(self, shape, dtype):
        """A pinned host array; a failed allocation raises :class:`PinnedOutOfMemory`."""
        import cupyx

        try:
            return cupyx.empty_pinned(shape, dtype=dtype)
        except cupy.cuda.runtime.CUDARuntimeError as exc:
            if "cudaErrorMemoryAllocation" in str(exc) or getattr(exc, "status", None) == 2:
                raise PinnedOutOfMemory(f"{self.description}: pinned host memory: {exc}") from None
            raise

    def upload(self, host, stream=None, keepalive=None, pinned=False):
        """Copy ``host`` to the device; with ``stream``, asynchronously from a pinned buffer.

        The pinned buffer is appended to ``keepalive``, which the caller holds until the stream has
        passed the copy.  ``pinned=True``: ``host`` already is one (:meth:`pinned_empty`), no extra copy.
        """
        host = np.ascontiguousarray(host)
        out = cupy.empty(host.shape, dtype=host.dtype)
        if stream is None:
            out.set(host)
            return out
        buffer = host
        if not pinned:
            buffer = self.pinned_empty(host.shape, host.dtype)
            buffer[...] = host
        out.set(buffer, stream=stream)
        keepalive.append(buffer)
        return out

    def download(self, arr):
        return arr.get()

    def argsort(self, key):
        return cupy.argsort(key)  # thrust stable_sort_by_key: a radix sort, stable

    def flatnonzero(self, mask):
        return cupy.flatnonzero(mask)

    def max_int(self, arr):
        return int(arr.max()) if arr.size else 0

    def memory_budget(self, limit=None, fraction=None):
        """Bytes a pool may plan to use: a share of the free memory (NVML, else CUDA), capped by ``limit``."""
        with cupy.cuda.Device(self.device_id):
            free = _nvml_free_bytes(self.device_id)
            if free is None:
                free = int(cupy.cuda.runtime.memGetInfo()[0])
            free += int(cupy.get_default_memory_pool().free_bytes())  # cached by CuPy, reusable
        budget = int(free * (memory.MEMORY_FRACTION if fraction is None else fraction))
        return budget if limit is None else min(budget, int(limit))

    def release_cached(self):
        with cupy.cuda.Device(self.device_id):
            cupy.get_default_memory_pool().free_all_blocks()

    def launch(self, name, n_threads, args):
        n_threads = int(n_threads)
        if n_threads <= 0:
            return
        grid = (n_threads + kernels.BLOCK_SIZE - 1) // kernels.BLOCK_SIZE
        compiled_module().get_function(name)((grid,), (kernels.BLOCK_SIZE,), (pack_args(args),))


__all__ = ["CupyBackend", "PinnedOutOfMemory", "compiled_module", "device_count", "nvml_handle", "pack_args"]
