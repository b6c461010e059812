"""``benchmarks/gpu_session.sh dry-run`` on a plain copy of the tree: a GPU session can start.

The copy holds what a ``git clone`` holds (tracked files, plus untracked ones git does not ignore,
so uncommitted work is tested too): no install, no build outputs, no ``gpuprune.kernels`` package.
The dry run stubs CuPy (no device), runs the preflight on the emulated device (import from the
copy, kernels found in the copy and compiled, one tiny prune equal to the CPU) and collects every
``gpu`` test from the copy (issue 10, item 1).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_session_dry_run_on_a_plain_clone(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    clone = tmp_path / "clone"
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / name)
    assert not list(clone.glob("gpuprune/kernels")) and (clone / "kernels" / "prune.cu").is_file()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OUT")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # python3 = this interpreter
    env["OUT"] = str(tmp_path / "out")
    env["GPUPRUNE_TEST_DATA"] = str(DATA)  # the copy is not beside ../shared
    proc = subprocess.run(["bash", "benchmarks/gpu_session.sh", "dry-run"], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    preflight = (tmp_path / "out" / "preflight.txt").read_text()
    assert f"kernels {clone.resolve() / 'kernels'}" in preflight  # found in the copy, not an install
    assert "preflight ok: tiny prune" in preflight and "GPU == CPU" in preflight
    collected = (tmp_path / "out" / "pytest-gpu.txt").read_text()
    assert "error" not in collected.lower().split("\n")[-2] and "test_gpu.py" in collected
    assert "gpu_session dry-run: ok" in proc.stdout
    bench = (tmp_path / "out" / "bench_tune.txt").read_text()
    assert "sets per thread" in bench and "4-parameter fit" in bench


@pytest.mark.slow
def test_preflight_stops_at_once_with_one_clear_line(tmp_path):
    """A tree whose kernels cannot be found: the preflight fails in its first steps, in one line."""
    clone = tmp_path / "clone"
    shutil.copytree(REPO / "gpuprune", clone / "gpuprune", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copytree(REPO / "benchmarks", clone / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(clone)
    proc = subprocess.run([sys.executable, "benchmarks/gpu_preflight.py", "--emulate", "--source-tree"], cwd=clone,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("preflight FAILED")]
    assert line.startswith("preflight FAILED: import:") or line.startswith("preflight FAILED: compile")
