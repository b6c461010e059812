"""MPI (``mpiexec -n 3`` from the mpich wheel): byte-identical to one process; a rank that dies ends the run
with one gpuprune line and no output; a missing extra is a one-line error naming it."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import data_path
from distributed_helpers import CASES, leftovers, need, network, reference_bytes

import gpuprune
from gpuprune.cli.main import main
from gpuprune.errors import InputError

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_driver.py")


def mpiexec():
    need("mpi4py")
    found = shutil.which("mpiexec") or shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mpiexec not found in CI (pip install mpich)")
        pytest.skip("mpiexec not found (pip install mpich mpi4py)")
    return found


def launch(n, *args, env=None, timeout=240):
    return subprocess.run([mpiexec(), "-n", str(n), sys.executable, DRIVER, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_same_bytes_as_one_process(tmp_path):
    """All cases in one launch of 3 ranks (through the Python API): rank 0 writes, ranks 1 and 2 prune."""
    runs = [(network(name), rng, budget, str(tmp_path / f"{name}-{rng}.hdf5")) for name, rng, budget in CASES]
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    proc = launch(3, "api", tmp_path / "runs.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reported = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(reported) == len(CASES) and all(r["workers"] == 2 and r["chunks"] >= 4 for r in reported)
    for (name, rng, _), (_, _, _, out) in zip(CASES, runs, strict=True):
        assert open(out, "rb").read() == reference_bytes(name, rng), (name, rng)
    assert leftovers(tmp_path) == []


def test_command_line(tmp_path):
    out = tmp_path / "o.hdf5"
    proc = launch(3, "prune", network("prune3"), "--mpi", "--device", "cpu", "--row-budget", 60,
                  "--output", out, "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_bytes() == reference_bytes("prune3", "philox")


def test_dead_rank_is_one_line_and_no_output(tmp_path):
    out = tmp_path / "o.hdf5"
    proc = launch(3, "prune", network("striatum_300"), "--mpi", "--device", "cpu", "--row-budget", 20_000,
                  "--output", out, "--quiet", env={"GPUPRUNE_TEST_KILL_RANK": "2"})
    assert proc.returncode != 0
    ours = [line for line in proc.stderr.splitlines() if line.startswith("gpuprune:")]
    assert ours == ["gpuprune: error: an MPI rank ended abruptly (killed, or out of memory?), so mpiexec stopped "
                    "the run; no output was written"], proc.stderr[-3000:]
    assert os.listdir(tmp_path) == []


def test_one_process_is_a_clear_error(tmp_path, capsys):
    need("mpi4py")
    assert main(["prune", str(data_path("prune3")), "--mpi", "--output", str(tmp_path / "o.hdf5"), "--quiet"]) == 2
    assert "mpiexec -n N" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_missing_extra_names_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    with pytest.raises(InputError, match=r'pip install "gpuprune\[mpi\]"'):
        gpuprune.prune(data_path("prune3"), output_file=tmp_path / "o.hdf5", mpi=True)
    assert main(["prune", str(data_path("prune3")), "--mpi", "--output", str(tmp_path / "o.hdf5"), "--quiet"]) == 2
    assert 'pip install "gpuprune[mpi]"' in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
