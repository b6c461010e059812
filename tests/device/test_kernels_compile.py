"""The kernel sources compile: nvcc for sm_80 and sm_90, NVRTC (what CuPy uses), the host (emulator).

Also checks the generated PTX for what the design promises: no fused multiply-add
(``--fmad=false``), no transcendental or approximate floating-point instruction,
and no shared memory, barrier or warp primitive (so the host emulation is exact).
"""

import ctypes
import ctypes.util
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from gpuprune.device import abi, kernels
from gpuprune.device import emulated as _emulate

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found: CUDA toolkit not installed")
ARCHS = ("sm_80", "sm_90")
#: the only cross-thread operations the kernels may use: integer atomics whose result is order-independent
ALLOWED_ATOMICS = {"atom.global.or.b32", "atom.global.min.u64", "atom.global.add.u64",
                   "red.global.add.u64", "red.global.or.b32", "red.global.min.u64"}


def _nvcc(tmp_path, source, *args):
    src = tmp_path / "source.cu"
    src.write_text(source)
    proc = subprocess.run([NVCC, f"-I{kernels.kernel_dir()}", *kernels.COMPILE_OPTIONS, *args, str(src)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc


def _kernel_files(suffix):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(kernels.kernel_dir(), f"*{suffix}")))


def test_kernel_files_are_where_the_package_looks():
    assert _kernel_files(".cu") == [kernels.MAIN_KERNEL]
    assert set(kernels.KERNEL_HEADERS) <= set(_kernel_files(".cuh"))
    assert set(_emulate.kernel_names(kernels.kernel_source())) == set(
        re.findall(r'extern "C" __global__ void (\w+)', open(os.path.join(kernels.kernel_dir(), "prune.cu")).read()))


@needs_nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", _kernel_files(".cu"))
def test_cu_files_compile_with_nvcc(tmp_path, name, arch):
    text = open(os.path.join(kernels.kernel_dir(), name)).read()
    source = kernels.define_block() + "\n" + text
    _nvcc(tmp_path, source, f"-arch={arch}", "-cubin", "-Werror", "all-warnings", "-o", "out.cubin")
    assert (tmp_path / "out.cubin").stat().st_size > 0


def test_standalone_defines_match_the_generated_block():
    """kernels/gp_defines.cuh (read only by standalone builds) holds exactly the generated block."""
    text = open(os.path.join(kernels.kernel_dir(), "gp_defines.cuh")).read()
    assert kernels.define_block() in text
    assert sorted(re.findall(r"^#define (GP_\w+)", text, re.M)) == sorted(kernels.kernel_defines())


@needs_nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", _kernel_files(".cu"))
def test_cu_files_compile_standalone(tmp_path, name, arch):
    """A plain ``nvcc -Ikernels kernels/prune.cu`` works too (the block comes from gp_defines.cuh)."""
    proc = subprocess.run([NVCC, f"-I{kernels.kernel_dir()}", *kernels.COMPILE_OPTIONS, f"-arch={arch}", "--ptx",
                           "-o", str(tmp_path / "out.ptx"), os.path.join(kernels.kernel_dir(), name)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@needs_nvcc
@pytest.mark.parametrize("name", kernels.KERNEL_HEADERS)
def test_headers_compile_on_their_own(tmp_path, name):
    _nvcc(tmp_path, f'{kernels.define_block()}\n#include "{name}"\n', "-arch=sm_80", "-c", "-o", "out.o")


@needs_nvcc
def test_ptx_has_no_fma_transcendentals_or_cross_thread_primitives(tmp_path):
    _nvcc(tmp_path, kernels.kernel_source(), "-arch=compute_80", "-ptx", "-o", "out.ptx")
    ptx = (tmp_path / "out.ptx").read_text()
    entries = re.findall(r"\.entry (\w+)\(", ptx)
    assert set(entries) == set(_emulate.kernel_names(kernels.kernel_source()))
    instructions = re.findall(r"^\s+([a-z][\w.]*)", ptx, re.M)
    assert not [i for i in instructions if i.startswith("fma.")], "fused multiply-add in the PTX"
    forbidden = [i for i in instructions
                 if i.split(".")[0] in ("ex2", "lg2", "sin", "cos", "rcp", "rsqrt", "tanh")
                 or ".approx" in i or ".ftz" in i]
    assert not forbidden, forbidden
    assert all(i in ("div.rn.f64", "sqrt.rn.f64") for i in instructions if i.split(".")[0] in ("div", "sqrt")
               and i.endswith("f64"))
    assert ".shared" not in ptx and not [i for i in instructions if i.split(".")[0] in ("bar", "shfl", "vote")]
    atomics = {i for i in instructions if i.split(".")[0] in ("atom", "red")}
    assert atomics <= ALLOWED_ATOMICS, atomics


def _find_nvrtc():
    """libnvrtc from the nvidia-cuda-nvrtc wheel, the CUDA toolkit or the loader path (None if absent)."""
    candidates = []
    for entry in sys.path:
        candidates += glob.glob(os.path.join(entry, "nvidia", "*", "lib", "libnvrtc.so*"))
        candidates += glob.glob(os.path.join(entry, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*"))
    for root in (os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root:
            candidates += glob.glob(os.path.join(root, "lib64", "libnvrtc.so*"))
    found = ctypes.util.find_library("nvrtc")
    if found:
        candidates.append(found)
    for path in candidates:
        if "builtins" in path or ".alt." in path:
            continue
        for builtins in glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so*")):
            if ".alt." not in builtins:
                try:
                    ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    pass
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
def test_kernel_source_compiles_with_nvrtc_as_cupy_does(arch):
    lib = _find_nvrtc()
    if lib is None:
        message = "NVRTC not found (pip install nvidia-cuda-nvrtc, or a CUDA toolkit with libnvrtc)"
        if os.environ.get("CI") == "true":  # CI installs it: a loader failure there must not pass as a skip
            pytest.fail(message)
        pytest.skip(message)
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), kernels.kernel_source().encode(), b"gpuprune.cu", 0,
                                  None, None) == 0
    options = [o.encode() for o in kernels.compile_options()] + [f"-arch={arch}".encode()]
    status = lib.nvrtcCompileProgram(prog, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert status == 0, log.value.decode()
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(prog, ptx)
    assert set(re.findall(r"\.entry (\w+)\(", ptx.value.decode())) == set(
        _emulate.kernel_names(kernels.kernel_source()))
    lib.nvrtcDestroyProgram(ctypes.byref(prog))


def test_emulator_source_compiles_without_warnings(tmp_path):
    compiler = _emulate.host_compiler()
    if compiler is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "emulate.cpp"
    src.write_text(_emulate.emulator_source())
    proc = subprocess.run([compiler, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c++",
                           f"-I{kernels.kernel_dir()}", str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_an_edited_header_changes_the_source(tmp_path, monkeypatch):
    before = kernels.kernel_source()
    copy = tmp_path / "kernels"
    shutil.copytree(kernels.kernel_dir(), copy)
    monkeypatch.setattr(kernels, "kernel_dir", lambda: str(copy))
    assert kernels.kernel_source() == before
    with open(copy / "philox.cuh", "a") as fh:
        fh.write("\n// edited\n")
    after = kernels.kernel_source()
    assert after != before and after.splitlines()[1:] == before.splitlines()[1:]  # only the hash line


def test_the_generated_block_follows_python(monkeypatch):
    """Constants and struct fields come from gpuprune/device/abi.py: an edit there changes the source."""
    before = kernels.kernel_source()
    monkeypatch.setattr(abi, "ERR_UNSORTED", 8)
    assert "#define GP_ERR_UNSORTED 8u" in kernels.kernel_source() and kernels.kernel_source() != before
    monkeypatch.undo()
    assert kernels.kernel_source() == before
    assert "gp_i64 n_groups;" in abi.struct_text() and "const gp_i64* order;" in abi.struct_text()


def test_struct_layouts_agree():
    """CuPy passes the struct as a NumPy aligned dtype, the emulator as ctypes: same offsets and size."""
    import ctypes

    def offsets(dtype, prefix=""):
        out = {}
        for name, (sub, off) in dtype.fields.items():
            if sub.fields:
                out.update({k: off + v for k, v in offsets(sub, f"{prefix}{name}.").items()})
            else:
                out[prefix + name] = off
        return out

    def c_offsets(struct, prefix=""):
        out = {}
        for name, ctype in struct._fields_:
            off = getattr(struct, name).offset
            if isinstance(ctype, type) and issubclass(ctype, ctypes.Structure):
                out.update({k: off + v for k, v in c_offsets(ctype, f"{prefix}{name}.").items()})
            else:
                out[prefix + name] = off
        return out

    dtype, struct = abi.numpy_dtype(), abi.ctypes_struct()
    assert dtype.itemsize == ctypes.sizeof(struct)
    assert offsets(dtype) == c_offsets(struct)
    assert list(offsets(dtype)) == list(abi.FIELDS)


def test_cupy_argument_is_a_one_element_array_with_the_emulator_bytes():
    """CuPy passes a one-element numpy.ndarray by value as its raw bytes (CuPy 13 and 14; a numpy.void scalar
    only from 14): the packed struct is one, and holds the bytes the emulator's ctypes struct holds."""
    import ctypes
    import types

    import numpy as np

    from gpuprune.device import cupy_backend
    from gpuprune.device.emulated import EmulatedBackend

    args = abi.Args({"n": 123456789, "seed": 2**63 + 5, "width": 13, "cluster_threshold": 0.25, "tune.n_sets": 60,
                     "tune.sets_per_thread": 7, "tune.n_blocks": 2, "rules.table_stride": 33})
    fake = types.SimpleNamespace(data=types.SimpleNamespace(ptr=0xDEADBEEF00))
    packed = cupy_backend.pack_args(abi.Args({**args, "tune.kept": fake}))
    assert isinstance(packed, np.ndarray) and packed.size == 1 and packed.dtype == abi.numpy_dtype()
    assert int(packed["tune"]["kept"]) == 0xDEADBEEF00 and int(packed["tune"]["sets_per_thread"]) == 7
    struct, _ = EmulatedBackend(0).pack_args("k", args)
    assert cupy_backend.pack_args(args).tobytes() == ctypes.string_at(ctypes.addressof(struct), ctypes.sizeof(struct))
