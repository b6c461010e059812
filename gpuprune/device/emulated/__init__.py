"""An emulated CUDA device: the kernels of ``kernels/prune.cu`` compiled for the host.

A sibling of the CuPy backend that the real backend never imports; it runs the GPU path without a
GPU, so that every CI run exercises it (chunk planning against a device budget, uploads, kernel
launches with their real argument struct, compaction, downloads, out-of-memory handling):

- :mod:`.library`: the *same kernel source* CuPy compiles is built for the host after
  ``kernels/emulate.h``, with one generated launcher per kernel that walks the 1-D grid;
- :mod:`.backend`: :class:`EmulatedBackend`, NumPy arrays standing for device memory, counted
  against an emulated memory size by the byte model of :mod:`gpuprune.device.memory`, with failure
  injection and an "in flight until synchronised" model of streams.
"""

from gpuprune.device.emulated.backend import (
    DEFAULT_MEMORY,
    DeviceArray,
    EmulatedBackend,
    EmulatedOutOfMemory,
    EmulatedPinnedOutOfMemory,
)
from gpuprune.device.emulated.library import (
    CXX_FLAGS,
    EmulatorLibrary,
    cache_dir,
    compile_shared_library,
    emulator_source,
    host_compiler,
    kernel_names,
)

__all__ = ["CXX_FLAGS", "DEFAULT_MEMORY", "DeviceArray", "EmulatedBackend", "EmulatedOutOfMemory",
           "EmulatedPinnedOutOfMemory", "EmulatorLibrary", "cache_dir", "compile_shared_library",
           "emulator_source", "host_compiler", "kernel_names"]
