"""The gpuprune command line."""

import subprocess
import sys

import pytest
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


def test_synth_command(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", str(out), "--neurons", "40", "--synapses-per-neuron", "10", "--seed", "5",
                 "--no-gap-junctions"]) == 0
    captured = capsys.readouterr()
    assert "putative synapses" in captured.out and "%" in captured.err  # the bar draws on any stream
    # an existing directory without --overwrite is bad input: one line, exit status 2, nothing drawn
    assert main(["synth", str(out), "--neurons", "40"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and str(out) in err
    assert main(["synth", str(out), "--neurons", "40", "--overwrite", "--no-projection", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "putative synapses" in captured.out


def test_synth_bad_grid_is_usage_error(tmp_path):
    p = run("synth", tmp_path / "net", "--hyper-voxels", "2,2")
    assert p.returncode == 2 and "expected N or NX,NY,NZ" in p.stderr and "Traceback" not in p.stderr


def test_prune_quiet_draws_nothing(prune3, capsys):
    assert main(["prune", str(prune3), "--device", "cpu", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_help_of_every_command():
    from gpuprune.cli.main import COMMANDS, build_parser

    p = run("--help")
    assert p.returncode == 0 and all(name in p.stdout for name in COMMANDS)
    for name, flag in (("prune", "--row-budget"), ("synth", "--synapses-per-neuron"), ("demo", "--rebuild")):
        p = run(name, "--help")
        assert p.returncode == 0 and f"gpuprune {name}" in p.stdout and flag in p.stdout, p.stderr
    # one tree: every command is a subparser of the one parser
    choices = build_parser()._subparsers._group_actions[0].choices
    assert tuple(choices) == COMMANDS


def test_demo_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    work = tmp_path / "demo"
    args = ["demo", "--dir", str(work), "--neurons", "40", "--synapses-per-neuron", "20", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if "matplotlib is not installed" in line]
    assert len(skipped) == 1 and skipped[0].startswith("figures skipped") and "gpuprune[plot]" in skipped[0]
    assert "building an example network" in out and "GABA" in out and "demo done" in out
    assert (work / "report" / "index.html").stat().st_size > 0 and (work / "report" / "report.json").exists()
    assert main(args) == 0  # the second run reuses the network
    assert "reusing the example network" in capsys.readouterr().out


def test_demo_ends_with_the_report(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason='matplotlib is not installed (pip install "gpuprune[plot]")')
    work = tmp_path / "demo"
    assert main(["demo", "--dir", str(work), "--neurons", "40", "--synapses-per-neuron", "20",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "report:" in out and "figures skipped" not in out
    pngs = list((work / "report").glob("*.png"))
    assert pngs and all(p.stat().st_size > 0 for p in pngs)
