"""A source checkout that shadows a plain (non-editable) install still finds the installed build of
``gpuprune.io._lzf`` (``python -m pytest`` in a fresh clone after ``pip install .``)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gpuprune

try:
    from gpuprune.io import _lzf
except ImportError:
    _lzf = None

CHECK = ("import sys; from gpuprune.io import reader, writer; m = sys.modules.get('gpuprune.io._lzf'); "
         "print(m.__file__ if m else None); print(reader._lzf_decompress_into is not None, "
         "writer._lzf_compress is not None)")


def clone_without_build(tmp_path):
    """The package's sources as a fresh clone has them: no compiled extension."""
    clone = tmp_path / "clone"
    shutil.copytree(Path(gpuprune.__file__).parent, clone / "gpuprune",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return clone


def run(clone, *path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (clone, *path)))}
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=clone, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")


@pytest.mark.skipif(_lzf is None, reason="gpuprune.io._lzf not built here: nothing to install")
def test_source_checkout_loads_the_installed_extension(tmp_path):
    clone = clone_without_build(tmp_path)
    site = tmp_path / "site"  # an installed distribution: its files and its RECORD
    built = Path(_lzf.__file__)
    (site / "gpuprune" / "io").mkdir(parents=True)
    shutil.copy(built, site / "gpuprune" / "io" / built.name)
    info = site / f"gpuprune-{gpuprune.__version__}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: gpuprune\nVersion: {gpuprune.__version__}\n")
    (info / "RECORD").write_text(f"gpuprune/io/{built.name},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
    where, found = run(clone, site)[:2]
    assert found == "True True"
    assert Path(where) == site / "gpuprune" / "io" / built.name


def test_installs_without_the_build_are_passed_over(tmp_path, monkeypatch):
    """An egg-info listing only the sources (what a build leaves in the checkout), or an install made
    without a C compiler: no module, so the reader and the writer use h5py."""
    import importlib.metadata

    from gpuprune.io import extension

    info = tmp_path / "gpuprune.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: gpuprune\nVersion: 0.1.0\n")
    (info / "SOURCES.txt").write_text("gpuprune/io/_lzf.c\ngpuprune/io/reader.py\n")
    dist = importlib.metadata.PathDistribution(info)
    monkeypatch.setattr(importlib.metadata, "distributions", lambda **kw: iter([dist]))
    assert extension._from_installed() is None
