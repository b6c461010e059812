"""The emulated device backend: NumPy arrays for device memory, the host build for kernels.

- Every launch is checked against the :data:`abi.ARGS` field list: pointer fields must be device
  arrays of this backend with the field's dtype (C-contiguous, writable unless const), or None.
- Allocations are counted against an emulated memory size; ``argsort`` and ``flatnonzero``
  reserve their temporaries by the byte model of :mod:`gpuprune.device.memory`; an allocation
  beyond the size raises :class:`EmulatedOutOfMemory`, as CuPy would.
- ``inject(op, nbytes)`` (a settable callable, default none) may return True to fail one
  allocation or upload (``op`` in empty, zeros, upload, pinned, argsort, flatnonzero);
  ``wrong_sort`` makes ``argsort`` return a wrong order without error (CuPy <= 14.0 after its
  workspace allocation failed).
- Streams: a launch leaves its arrays *in flight* on the current stream until that stream is
  synchronised (``synchronize``, ``synchronize_device``, or a ``download`` on it).  Freeing an
  array that was allocated on another stream while it is in flight is what lets a GPU reuse the
  block under a running kernel: it is recorded in ``freed_in_flight``.

The kernels use no shared memory, barriers or warp primitives, only integer atomics whose result
does not depend on thread order, so running the grid sequentially gives the bytes a GPU gives.
"""

import contextlib
import itertools
import threading
import weakref

import numpy as np

from gpuprune.device import abi, kernels, memory
from gpuprune.device.emulated.library import EmulatorLibrary

#: device memory of an emulated device when none is given (bytes).
DEFAULT_MEMORY = 1 << 30


class EmulatedOutOfMemory(MemoryError):
    """An allocation exceeded the emulated device's memory (CuPy raises ``OutOfMemoryError``)."""


class EmulatedPinnedOutOfMemory(MemoryError):
    """An injected failure of a pinned host allocation (CuPy: ``CUDARuntimeError``)."""


class DeviceArray(np.ndarray):
    """A NumPy array standing for memory on an emulated device (``owner`` is its backend)."""

    def __array_finalize__(self, obj):
        self.owner = getattr(obj, "owner", None)
        self.token = getattr(obj, "token", None)
        self.stream = getattr(obj, "stream", None)


class _Event:
    """Stands for a CUDA event: the emulated device finishes work when it is issued."""


class _Stream:
    """Stands for a CUDA stream: the arrays of the launches not yet synchronised."""

    def __init__(self, name):
        self.name = name
        self.in_flight = set()

    def __repr__(self):
        return f"<emulated stream {self.name}>"


class EmulatedBackend:
    """The :class:`gpuprune.device.backend.DeviceBackend` of an emulated GPU.

    Parameters
    ----------
    index : int
        Device number (for names and messages).
    memory : int
        Emulated device memory in bytes.
    block_size : int, optional
        Threads per block (default :data:`gpuprune.device.kernels.BLOCK_SIZE`, as on a GPU).
    """

    name = "emulated"
    OutOfMemory = EmulatedOutOfMemory
    PinnedOutOfMemory = EmulatedPinnedOutOfMemory

    def __init__(self, index=0, memory=DEFAULT_MEMORY, block_size=None):
        self.index = int(index)
        self.memory = int(memory)
        self.block_size = int(block_size or kernels.BLOCK_SIZE)
        self.library = EmulatorLibrary.get()
        self.in_use = 0
        self.peak = 0
        self.launches = {}
        self.inject = None
        self.wrong_sort = False
        self.freed_in_flight = []
        self._lock = threading.Lock()
        self._tokens = itertools.count()
        self._default = _Stream("default")
        self._streams = [self._default]
        self._current = threading.local()

    def __repr__(self):
        return f"EmulatedBackend({self.index}, memory={self.memory})"

    @property
    def description(self):
        return f"emulated GPU {self.index} ({self.memory / 2**20:.1f} MiB)"

    # -- memory ------------------------------------------------------------------------------

    def _maybe_fail(self, op, nbytes):
        if self.inject is not None and self.inject(op, nbytes):
            if op == "pinned":
                raise EmulatedPinnedOutOfMemory(f"emulated GPU {self.index}: injected failure of a pinned "
                                                f"allocation of {nbytes:,} bytes")
            raise EmulatedOutOfMemory(f"emulated GPU {self.index}: injected failure of {op} ({nbytes:,} bytes)")

    def _reserve(self, nbytes, transient=0):
        with self._lock:
            if self.in_use + nbytes + transient > self.memory:
                raise EmulatedOutOfMemory(
                    f"emulated GPU {self.index}: out of memory allocating {nbytes + transient:,} bytes "
                    f"({self.in_use:,} of {self.memory:,} in use)")
            self.in_use += nbytes
            self.peak = max(self.peak, self.in_use + transient)

    def _release(self, nbytes, token, stream):
        with self._lock:
            self.in_use -= nbytes
            for s in self._streams:
                if token in s.in_flight:
                    s.in_flight.discard(token)
                    if s is not stream:
                        self.freed_in_flight.append((token, stream.name, s.name))

    def _adopt(self, host, transient=0, stream=None):
        self._reserve(host.nbytes, transient)
        arr = np.ascontiguousarray(host).view(DeviceArray)
        arr.owner, arr.token = self, next(self._tokens)
        arr.stream = stream or self.current_stream()
        weakref.finalize(arr, self._release, host.nbytes, arr.token, arr.stream)
        return arr

    def empty(self, n, dtype):
        nbytes = int(n) * np.dtype(dtype).itemsize
        self._maybe_fail("empty", nbytes)
        self._reserve(0, nbytes)  # fail before allocating, as a GPU would
        return self._adopt(np.empty(int(n), dtype=dtype))

    def zeros(self, n, dtype):
        nbytes = int(n) * np.dtype(dtype).itemsize
        self._maybe_fail("zeros", nbytes)
        self._reserve(0, nbytes)
        return self._adopt(np.zeros(int(n), dtype=dtype))

    def pinned_empty(self, shape, dtype):
        """A host array standing for pinned memory (fails only by injection)."""
        self._maybe_fail("pinned", int(np.prod(shape)) * np.dtype(dtype).itemsize)
        return np.empty(shape, dtype=dtype)

    def upload(self, host, stream=None, keepalive=None, pinned=False):
        """Copy a host array to the device (``stream``, ``keepalive``, ``pinned`` as in the CuPy backend)."""
        if stream is not None and not pinned:
            keepalive.append(self.pinned_empty(host.shape, host.dtype))
        self._maybe_fail("upload", host.nbytes)
        self._reserve(0, host.nbytes)
        return self._adopt(np.array(host, copy=True, order="C"), stream=stream)

    def download(self, arr):
        self._check_array(arr, "download")
        self.current_stream().in_flight.clear()  # a blocking copy: the stream has passed every launch
        return np.array(arr, copy=True).view(np.ndarray)

    def argsort(self, key):
        """Stable argsort (CuPy: a thrust radix sort); reserves :mod:`memory`'s sort temporaries."""
        self._check_array(key, "argsort")
        self._maybe_fail("argsort", memory.SORT_TEMP_BYTES_PER_KEY * key.size)
        self._reserve(0, (memory.SORT_TEMP_BYTES_PER_KEY + memory.SORT_OUTPUT_BYTES_PER_KEY) * key.size)
        order = np.argsort(key.view(np.ndarray), kind="stable").astype(np.int64)
        if self.wrong_sort and order.size > 1:
            order = order[::-1].copy()
        return self._adopt(order)

    def flatnonzero(self, mask):
        self._check_array(mask, "flatnonzero")
        self._maybe_fail("flatnonzero", memory.NONZERO_BYTES_PER_ELEMENT * mask.size)
        self._reserve(0, memory.NONZERO_BYTES_PER_ELEMENT * mask.size)
        return self._adopt(np.flatnonzero(mask.view(np.ndarray)).astype(np.int64))

    def max_int(self, arr):
        self._check_array(arr, "max")
        return int(arr.view(np.ndarray).max()) if arr.size else 0

    def memory_budget(self, limit=None, fraction=None):
        free = self.memory - self.in_use
        budget = int(free * (memory.MEMORY_FRACTION if fraction is None else fraction))
        return budget if limit is None else min(budget, int(limit))

    def release_cached(self):
        pass

    # -- streams and device context ----------------------------------------------------------

    def activate(self):
        pass

    def device_scope(self):
        return contextlib.nullcontext()

    def new_stream(self):
        s = _Stream(f"{len(self._streams)}")
        with self._lock:
            self._streams.append(s)
        return s

    def current_stream(self):
        return getattr(self._current, "stream", None) or self._default

    @contextlib.contextmanager
    def stream_scope(self, stream):
        saved = getattr(self._current, "stream", None)
        self._current.stream = stream
        try:
            yield stream
        finally:
            self._current.stream = saved

    def record(self, stream):
        return _Event()

    def wait_event(self, stream, event):
        if not isinstance(event, _Event):
            raise TypeError(f"not an event of the emulated device: {event!r}")

    def synchronize(self, stream):
        (stream or self._default).in_flight.clear()

    def synchronize_device(self):
        for s in self._streams:
            s.in_flight.clear()

    # -- kernels ------------------------------------------------------------------------------

    def _check_array(self, arr, what):
        if not isinstance(arr, DeviceArray):
            raise TypeError(f"{what}: expected a device array of {self!r}, got {type(arr).__name__} "
                            "(host arrays must be uploaded first)")
        if arr.owner is not self:
            raise ValueError(f"{what}: array lives on {arr.owner!r}, not on {self!r} (mixing devices)")

    def pack_args(self, name, args):
        """The ``ctypes`` struct of ``args``, every field checked as CuPy and the kernel need it."""
        struct = abi.ctypes_struct()()
        tokens = []
        for field, value in args.items():
            ctype = abi.FIELDS[field]
            where = f"{name}({field})"
            *outer, leaf = field.split(".")
            target = struct
            for part in outer:
                target = getattr(target, part)
            if value is None:
                continue
            if ctype.endswith("*"):
                self._check_array(value, where)
                if value.dtype != abi.pointer_dtype(ctype):
                    raise TypeError(f"{where}: expects {abi.pointer_dtype(ctype)}*, got a {value.dtype} array")
                if not value.flags.c_contiguous:
                    raise TypeError(f"{where}: array is not C-contiguous")
                if not ctype.startswith("const") and not value.flags.writeable:
                    raise TypeError(f"{where}: array is read-only")
                setattr(target, leaf, value.ctypes.data)
                tokens.append(value.token)
            else:
                setattr(target, leaf, value.item() if isinstance(value, np.generic) else value)
        return struct, tokens

    def launch(self, name, n_threads, args):
        """Run kernel ``name`` over ``ceil(n_threads / block_size)`` blocks, checking every field."""
        if name not in self.library.launchers:
            raise KeyError(f"no kernel {name!r} in prune.cu")
        if not isinstance(args, abi.Args):
            raise TypeError(f"{name}: kernels take one gpuprune.device.abi.Args, got {type(args).__name__}")
        struct, tokens = self.pack_args(name, args)
        n_threads = int(n_threads)
        self.launches[name] = self.launches.get(name, 0) + 1
        if n_threads <= 0:
            return
        self.current_stream().in_flight.update(tokens)
        grid = (n_threads + self.block_size - 1) // self.block_size
        self.library.launchers[name](grid, self.block_size, struct)


__all__ = ["DEFAULT_MEMORY", "DeviceArray", "EmulatedBackend", "EmulatedOutOfMemory", "EmulatedPinnedOutOfMemory"]
