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


def test_source_checkout_without_any_build_falls_back_to_h5py(tmp_path):
    clone = clone_without_build(tmp_path)
    empty = tmp_path / "site"
    info = empty / "gpuprune-0.0.0.dist-info"  # an install without the extension (no C compiler)
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gpuprune\nVersion: 0.0.0\n")
    (info / "RECORD").write_text(f"{info.name}/METADATA,,\n")
    where, found = run(clone, empty)[:2]
    assert (where, found) == ("None", "False False")
