"""The gpuprune command line."""

import subprocess
import sys

from conftest import data_path
from helpers import assert_same_rows

from gpuprune.cli.main import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "gpuprune", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_prune_prints_table_and_writes_output(prune3):
    p = run("prune", prune3, "--device", "cpu")
    assert p.returncode == 0, p.stderr
    assert "GABA" in p.stdout and "putative" in p.stdout and "kept" in p.stdout
    assert (prune3 / "network-synapses.hdf5").exists()


def test_snudda_mode_matches_snudda(prune3, tmp_path):
    out = tmp_path / "o.hdf5"
    cfg = data_path("prune3", "network-config-test-1.json")
    code = main(["prune", str(prune3), "--config", str(cfg), "--rng", "snudda", "--output", str(out), "--quiet"])
    assert code == 0
    assert_same_rows(out, data_path("prune3", "expected", "network-synapses-test-1.hdf5"))


def test_seed_option(prune3, tmp_path):
    cfg = data_path("prune3", "network-config-test-1.json")
    a, b, c = (tmp_path / f"{x}.hdf5" for x in "abc")
    assert main(["prune", str(prune3), "--config", str(cfg), "--seed", "7", "--output", str(a), "--quiet"]) == 0
    assert main(["prune", str(prune3), "--config", str(cfg), "--seed", "7", "--output", str(b), "--quiet",
                 "--workers", "2", "--row-budget", "10"]) == 0
    assert main(["prune", str(prune3), "--config", str(cfg), "--seed", "8", "--output", str(c), "--quiet"]) == 0
    assert_same_rows(a, b)
    assert a.read_bytes() != c.read_bytes()


def test_bad_input_is_one_line_exit_2(tmp_path):
    p = run("prune", tmp_path / "missing")
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "not found" in p.stderr and "Traceback" not in p.stderr


def test_bad_config_exit_2(prune3):
    (prune3 / "network-config.json").write_text("{")
    p = run("prune", prune3)
    assert p.returncode == 2 and "network-config.json" in p.stderr and "Traceback" not in p.stderr


def test_gpu_without_gpu_is_one_line_error(prune3):
    p = run("prune", prune3, "--device", "gpu")
    errors = [line for line in p.stderr.splitlines() if "error:" in line]
    assert p.returncode == 2 and len(errors) == 1 and "no GPU available" in errors[0]
    assert "Traceback" not in p.stderr


def test_gap_junction_distance_refused(prune3):
    p = run("prune", prune3, "--config", data_path("prune3", "network-config-test-10.json"))
    assert p.returncode == 2 and "gap junction" in p.stderr


def test_usage_error():
    p = run("prune")
    assert p.returncode == 2 and "usage" in p.stderr


def test_version():
    p = run("--version")
    assert p.returncode == 0 and "gpuprune" in p.stdout
