"""Host builds of the kernel source: the emulator's shared library and its launchers.

The source is :func:`gpuprune.device.kernels.kernel_source` (what CuPy compiles) after
``kernels/emulate.h``, which defines CUDA's qualifiers away and makes ``blockIdx``/``threadIdx``
ordinary per-thread variables; for every ``extern "C" __global__`` kernel a generated launcher
walks the same 1-D grid the GPU would run.  Every kernel takes the one :data:`abi.ARGS` struct,
passed by value through ctypes (:func:`abi.ctypes_struct`).
"""

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading

from gpuprune.device import abi, kernels
from gpuprune.errors import DeviceError

#: flags for the host build: no FMA contraction, no fast math, so IEEE results match the device.
CXX_FLAGS = ("-std=c++17", "-O2", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math")
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)
#: the one parameter every kernel takes
KERNEL_PARAMETER = "const gp_args a"


def kernel_names(source):
    """The ``extern "C" __global__`` kernels of a CUDA source, in source order.

    Each must take exactly :data:`KERNEL_PARAMETER` (the argument struct), else ValueError.
    """
    names = []
    for match in _KERNEL.finditer(source):
        params = " ".join(match.group(2).split())
        if params != KERNEL_PARAMETER:
            raise ValueError(f"kernel {match.group(1)}: cannot emulate parameters {params!r} "
                             f"(every kernel takes {KERNEL_PARAMETER!r}, generated from gpuprune/device/abi.py)")
        names.append(match.group(1))
    return names


def emulator_source():
    """C++ source of the emulated device: ``emulate.h``, the kernel source, one launcher per kernel."""
    source = kernels.kernel_source()
    parts = ['#include "emulate.h"', source, "", "// launchers: walk the grid as the GPU would"]
    for name in kernel_names(source):
        parts.append(f'extern "C" void gp_emu_{name}(unsigned int gp_emu_grid, unsigned int gp_emu_block, '
                     f"const gp_args a) {{\n"
                     f"    gp_emu_run_grid(gp_emu_grid, gp_emu_block, [&]() {{ {name}(a); }});\n}}")
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
    """The kernels compiled for the host, with their launchers (built once per process)."""

    _lock = threading.Lock()
    _instance = None

    def __init__(self):
        self.names = kernel_names(kernels.kernel_source())
        self.path = compile_shared_library(emulator_source(), "gpuprune-emulate", include_dirs=(kernels.kernel_dir(),))
        self.lib = ctypes.CDLL(self.path)
        self.launchers = {}
        for name in self.names:
            fn = getattr(self.lib, f"gp_emu_{name}")
            fn.restype = None
            fn.argtypes = [ctypes.c_uint, ctypes.c_uint, abi.ctypes_struct()]
            self.launchers[name] = fn

    @property
    def signatures(self):
        """Kernel names (kept for callers that counted kernels by their signatures)."""
        return dict.fromkeys(self.names, (KERNEL_PARAMETER,))

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


__all__ = ["CXX_FLAGS", "EmulatorLibrary", "cache_dir", "compile_shared_library", "emulator_source",
           "host_compiler", "kernel_names"]
