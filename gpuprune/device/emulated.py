"""An emulated GPU: the device engine's own code path, run on the host.

The GPU backend (:mod:`gpuprune.cuda`) drives the kernels of ``kernels/prune.cu``
through a small backend object.  :class:`EmulatedBackend` implements that object
without a GPU, so that every CI run exercises the GPU path (chunk planning
against a device budget, uploads, kernel launches with their real arguments,
compaction, downloads):

- the *same kernel source* that CuPy compiles (:func:`gpuprune.cuda.kernel_source`)
  is compiled for the host with a C++ compiler, after ``kernels/emulate.h``,
  which defines CUDA's qualifiers away and makes ``blockIdx``/``threadIdx``
  ordinary per-thread variables;
- for every ``extern "C" __global__`` kernel a generated launcher walks the
  same 1-D grid the GPU would run, block by block and thread by thread;
- NumPy stands in for the few CuPy array calls (``argsort`` (stable),
  ``flatnonzero``, reductions, copies);
- every launch is checked against the kernel's C signature: pointer arguments
  must be device arrays of this backend with the parameter's dtype, scalars
  must be NumPy scalars of the parameter's exact type (what CuPy needs to
  pass them correctly);
- allocations are counted against an emulated device memory size, and an
  allocation beyond it raises :class:`EmulatedOutOfMemory`, as CuPy would.

The kernels use no shared memory, barriers or warp primitives, only integer
atomics whose result does not depend on thread order, so running the grid
sequentially gives the bytes a GPU gives.
"""

import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from gpuprune.errors import DeviceError

#: device memory of an emulated device when none is given (bytes).
DEFAULT_MEMORY = 1 << 30
#: flags for the host build: no FMA contraction, no fast math, so IEEE results match the device.
CXX_FLAGS = ("-std=c++17", "-O2", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math")
#: C types of kernel parameters and their NumPy dtypes.
C_TYPES = {
    "gp_u8": np.uint8,
    "gp_i32": np.int32,
    "gp_u32": np.uint32,
    "gp_i64": np.int64,
    "gp_u64": np.uint64,
    "double": np.float64,
}
_CTYPES = {
    np.uint8: ctypes.c_uint8,
    np.int32: ctypes.c_int32,
    np.uint32: ctypes.c_uint32,
    np.int64: ctypes.c_int64,
    np.uint64: ctypes.c_uint64,
    np.float64: ctypes.c_double,
}
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)
_PARAM = re.compile(r"^(const\s+)?(\w+)\s*(\*)?\s*(?:__restrict__\s+)?(\w+)$")


class EmulatedOutOfMemory(MemoryError):
    """An allocation exceeded the emulated device's memory (CuPy raises ``OutOfMemoryError``)."""


@dataclass(frozen=True)
class Param:
    """One kernel parameter: name, NumPy dtype, and whether it is a (const) pointer."""

    name: str
    dtype: type
    pointer: bool
    const: bool


def kernel_signatures(source):
    """The ``extern "C" __global__`` kernels of a CUDA source and their parameters.

    Returns
    -------
    dict
        Kernel name -> tuple of :class:`Param`, in source order.
    """
    kernels = {}
    for match in _KERNEL.finditer(source):
        params = []
        for text in match.group(2).split(","):
            text = " ".join(text.split())
            m = _PARAM.match(text)
            if m is None or m.group(2) not in C_TYPES:
                raise ValueError(f"kernel {match.group(1)}: cannot emulate parameter {text!r} "
                                 f"(use one of {', '.join(C_TYPES)}, or a pointer to one)")
            params.append(Param(m.group(4), C_TYPES[m.group(2)], m.group(3) is not None,
                                m.group(1) is not None))
        kernels[match.group(1)] = tuple(params)
    return kernels


def _c_param(p):
    ctype = next(k for k, v in C_TYPES.items() if v is p.dtype)
    return f"{'const ' if p.const else ''}{ctype}{'*' if p.pointer else ''} {p.name}"


def emulator_source():
    """C++ source of the emulated device: ``emulate.h``, the kernel source, one launcher per kernel."""
    from gpuprune.device import cuda

    source = cuda.kernel_source()
    parts = ['#include "emulate.h"', source, "", "// launchers: walk the grid as the GPU would"]
    for name, params in kernel_signatures(source).items():
        args = ", ".join(p.name for p in params)
        decl = ", ".join(["unsigned int gp_emu_grid", "unsigned int gp_emu_block"] + [_c_param(p) for p in params])
        parts.append(f'extern "C" void gp_emu_{name}({decl}) {{\n'
                     f"    gp_emu_run_grid(gp_emu_grid, gp_emu_block, [&]() {{ {name}({args}); }});\n}}")
    return "\n".join(parts) + "\n"


def host_compiler():
    """The C++ compiler for host builds: ``$CXX``, else g++, c++ or clang++ on the PATH (None if none)."""
    cxx = os.environ.get("CXX")
    if cxx:
        return shutil.which(cxx) or cxx
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


def cache_dir():
    """Where host builds are kept: ``$GPUPRUNE_CACHE_DIR``, else a per-user folder in the temp dir."""
    path = os.environ.get("GPUPRUNE_CACHE_DIR")
    if not path:
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        path = os.path.join(tempfile.gettempdir(), f"gpuprune-cache-{uid}")
    os.makedirs(path, exist_ok=True)
    return path


def compile_shared_library(source, name, *, compiler=None, flags=CXX_FLAGS, include_dirs=(),
                           language="c++"):
    """Compile ``source`` into a shared library, cached by a hash of everything that goes in.

    Parameters
    ----------
    source : str
    name : str
        Prefix of the library's file name.
    compiler : str, optional
        Default :func:`host_compiler`.
    flags : sequence of str
    include_dirs : sequence of str
        ``-I`` folders; the files in them are hashed too, so an edited header rebuilds.
    language : str
        ``-x`` language (``"c++"``, or ``"cu"`` for nvcc).

    Returns
    -------
    str
        Path of the library.
    """
    compiler = compiler or host_compiler()
    if compiler is None:
        raise DeviceError("the emulated GPU needs a C++ compiler (g++, c++ or clang++ on the PATH, or $CXX)")
    h = hashlib.sha256()
    for item in (compiler, language, *flags, source):
        h.update(item.encode() + b"\0")
    for folder in include_dirs:
        for entry in sorted(os.listdir(folder)):
            if entry.endswith((".h", ".cuh", ".cu")):
                with open(os.path.join(folder, entry), "rb") as fh:
                    h.update(entry.encode() + b"\0" + fh.read())
    out = os.path.join(cache_dir(), f"{name}-{h.hexdigest()[:20]}.so")
    if os.path.exists(out):
        return out
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        src = os.path.join(tmp, "source.cpp")
        with open(src, "w") as fh:
            fh.write(source)
        lib = os.path.join(tmp, "lib.so")
        cmd = [compiler, *flags, *(f"-I{d}" for d in include_dirs), "-x", language, src, "-o", lib]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DeviceError(f"host build of {name} failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        os.replace(lib, out)  # atomic: concurrent builds of the same source agree
    return out


class EmulatorLibrary:
    """The kernels compiled for the host, with their signatures (built once per process)."""

    _lock = threading.Lock()
    _instance = None

    def __init__(self):
        from gpuprune.device import cuda

        source = emulator_source()
        self.signatures = kernel_signatures(cuda.kernel_source())
        self.path = compile_shared_library(source, "gpuprune-emulate", include_dirs=(cuda.kernel_dir(),))
        self.lib = ctypes.CDLL(self.path)
        self.launchers = {}
        for name, params in self.signatures.items():
            fn = getattr(self.lib, f"gp_emu_{name}")
            fn.restype = None
            fn.argtypes = [ctypes.c_uint, ctypes.c_uint] + [
                ctypes.c_void_p if p.pointer else _CTYPES[p.dtype] for p in params]
            self.launchers[name] = fn

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


class DeviceArray(np.ndarray):
    """A NumPy array standing for memory on an emulated device (``owner`` is its backend)."""

    def __array_finalize__(self, obj):
        self.owner = getattr(obj, "owner", None)


class _Event:
    """Stands for a CUDA event: the emulated device finishes work when it is issued."""


class EmulatedBackend:
    """The device backend of :mod:`gpuprune._device` on an emulated GPU.

    Parameters
    ----------
    index : int
        Device number (for names and messages).
    memory : int
        Emulated device memory in bytes.
    block_size : int, optional
        Threads per block (default :data:`gpuprune.cuda.BLOCK_SIZE`, as on a GPU).
    """

    name = "emulated"
    OutOfMemory = EmulatedOutOfMemory

    def __init__(self, index=0, memory=DEFAULT_MEMORY, block_size=None):
        from gpuprune.device import cuda

        self.index = int(index)
        self.memory = int(memory)
        self.block_size = int(block_size or cuda.BLOCK_SIZE)
        self.library = EmulatorLibrary.get()
        self.in_use = 0
        self.peak = 0
        self.launches = {}
        self._lock = threading.Lock()

    def __repr__(self):
        return f"EmulatedBackend({self.index}, memory={self.memory})"

    @property
    def description(self):
        return f"emulated GPU {self.index} ({self.memory / 2**20:.1f} MiB)"

    # -- memory ------------------------------------------------------------------------------

    def _reserve(self, nbytes, transient=0):
        with self._lock:
            if self.in_use + nbytes + transient > self.memory:
                raise EmulatedOutOfMemory(
                    f"emulated GPU {self.index}: out of memory allocating {nbytes + transient:,} bytes "
                    f"({self.in_use:,} of {self.memory:,} in use)")
            self.in_use += nbytes
            self.peak = max(self.peak, self.in_use + transient)

    def _release(self, nbytes):
        with self._lock:
            self.in_use -= nbytes

    def _adopt(self, host, transient=0):
        self._reserve(host.nbytes, transient)
        arr = np.ascontiguousarray(host).view(DeviceArray)
        arr.owner = self
        weakref.finalize(arr, self._release, host.nbytes)
        return arr

    def empty(self, n, dtype):
        self._reserve(0, int(n) * np.dtype(dtype).itemsize)  # fail before allocating, as a GPU would
        return self._adopt(np.empty(int(n), dtype=dtype))

    def zeros(self, n, dtype):
        self._reserve(0, int(n) * np.dtype(dtype).itemsize)
        return self._adopt(np.zeros(int(n), dtype=dtype))

    def upload(self, host, stream=None, keepalive=None):
        """Copy a host array to the device (``stream`` and ``keepalive`` as in the CuPy backend)."""
        self._reserve(0, host.nbytes)
        return self._adopt(np.array(host, copy=True, order="C"))

    def download(self, arr):
        self._check_array(arr, "download")
        return np.array(arr, copy=True).view(np.ndarray)

    def argsort(self, key):
        """Stable argsort (CuPy: a thrust radix sort, with a key copy and double buffers)."""
        self._check_array(key, "argsort")
        self._reserve(0, 3 * 8 * key.size + 8 * key.size)
        return self._adopt(np.argsort(key.view(np.ndarray), kind="stable").astype(np.int64))

    def flatnonzero(self, mask):
        self._check_array(mask, "flatnonzero")
        self._reserve(0, 16 * mask.size)
        return self._adopt(np.flatnonzero(mask.view(np.ndarray)).astype(np.int64))

    def max_int(self, arr):
        self._check_array(arr, "max")
        return int(arr.view(np.ndarray).max()) if arr.size else 0

    def memory_budget(self, limit=None, fraction=None):
        from gpuprune.device import cuda

        free = self.memory - self.in_use
        budget = int(free * (cuda.MEMORY_FRACTION if fraction is None else fraction))
        return budget if limit is None else min(budget, int(limit))

    def release_cached(self):
        pass

    # -- streams and device context (nothing to order on the host) ---------------------------

    def activate(self):
        pass

    def device_scope(self):
        return contextlib.nullcontext()

    def new_stream(self):
        return None

    def stream_scope(self, stream):
        return contextlib.nullcontext()

    def record(self, stream):
        return _Event()

    def wait_event(self, stream, event):
        if not isinstance(event, _Event):
            raise TypeError(f"not an event of the emulated device: {event!r}")

    def synchronize(self, stream):
        pass

    def synchronize_device(self):
        pass

    # -- kernels ------------------------------------------------------------------------------

    def _check_array(self, arr, what):
        if not isinstance(arr, DeviceArray):
            raise TypeError(f"{what}: expected a device array of {self!r}, got {type(arr).__name__} "
                            "(host arrays must be uploaded first)")
        if arr.owner is not self:
            raise ValueError(f"{what}: array lives on {arr.owner!r}, not on {self!r} (mixing devices)")

    def launch(self, name, n_threads, args):
        """Run kernel ``name`` over ``ceil(n_threads / block_size)`` blocks, checking every argument."""
        params = self.library.signatures.get(name)
        if params is None:
            raise KeyError(f"no kernel {name!r} in prune.cu")
        if len(args) != len(params):
            raise TypeError(f"{name}: {len(params)} parameters, {len(args)} arguments")
        values = []
        for p, a in zip(params, args, strict=True):
            where = f"{name}({p.name})"
            if p.pointer:
                self._check_array(a, where)
                if a.dtype != p.dtype:
                    raise TypeError(f"{where}: expects {np.dtype(p.dtype)}*, got a {a.dtype} array")
                if not a.flags.c_contiguous:
                    raise TypeError(f"{where}: array is not C-contiguous")
                if not p.const and not a.flags.writeable:
                    raise TypeError(f"{where}: array is read-only")
                values.append(a.ctypes.data)
            else:
                if type(a) is not p.dtype:
                    raise TypeError(f"{where}: expects a numpy.{np.dtype(p.dtype).name} scalar, got "
                                    f"{type(a).__name__} {a!r} (CuPy would pass it with another C type)")
                values.append(a.item())
        n_threads = int(n_threads)
        self.launches[name] = self.launches.get(name, 0) + 1
        if n_threads <= 0:
            return
        grid = (n_threads + self.block_size - 1) // self.block_size
        self.library.launchers[name](grid, self.block_size, *values)
