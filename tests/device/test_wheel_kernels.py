"""The built wheel ships the kernel sources and the compiled LZF decoder, and an installed gpuprune finds them."""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import gpuprune
from gpuprune.device import kernels

REPO = Path(__file__).resolve().parents[2]


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_installed_wheel_finds_the_kernels(tmp_path):
    src = tmp_path / "src"  # build from a copy: a build leaves build/ and egg-info folders behind
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__",
                                                             "tests", "benchmarks", "venv", "*.so"))
    wheel_dir = tmp_path / "wheel"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheel_dir, src])
    (wheel,) = wheel_dir.glob("gpuprune-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in (kernels.MAIN_KERNEL, *kernels.KERNEL_HEADERS, "emulate.h"):
        assert f"gpuprune/kernels/{name}" in names, names
    assert any(n.startswith("gpuprune/io/_lzf.") and n.endswith((".so", ".pyd")) for n in names), names  # compiled

    # a fresh environment with only the wheel installed; NumPy and h5py come from this one's
    # site-packages through a .pth line (which, unlike site-packages itself, runs no .pth files,
    # so the editable install of the source tree stays out of the way)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel])
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    deps = {str(Path(m.__file__).resolve().parents[1]) for m in (np, h5py)}
    Path(purelib, "gpuprune-test-deps.pth").write_text("\n".join(sorted(deps)) + "\n")

    script = textwrap.dedent("""
        import os, sys
        import gpuprune
        from gpuprune.device import cupy_backend, kernels, memory, pool
        from gpuprune.io import reader as stream
        assert stream._lzf_decompress_into is not None  # the wheel's compiled LZF decoder imports
        folder = kernels.kernel_dir()
        assert os.path.realpath(folder).startswith(os.path.realpath(sys.prefix)), folder
        assert os.path.realpath(gpuprune.__file__).startswith(os.path.realpath(sys.prefix)), gpuprune.__file__
        print(folder)
        print(kernels.header_hash())
        print(len(kernels.kernel_source()))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = _run([python, "-c", script], cwd=tmp_path, env=env).stdout.split()
    assert out[0].startswith(str(venv)) and out[0].endswith(os.path.join("gpuprune", "kernels"))
    assert out[1] == kernels.header_hash()  # the same headers as the source tree
    assert int(out[2]) == len(kernels.kernel_source())
    assert gpuprune.__file__.startswith(str(REPO))  # (this process still uses the source tree)
