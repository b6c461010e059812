"""``gpuprune fit`` from the command line (cli/fit.py main)."""

import json

import pytest

from gpuprune.cli.main import main as cli_main
from gpuprune.synth import generate_network

pytest.importorskip("scipy")


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "net"
    generate_network(path, num_neurons=120, synapses_per_neuron=100, seed=4, gap_junctions=False)
    return path


def test_fit_writes_config_and_table(network, tmp_path, capsys):
    targets = tmp_path / "t.json"
    targets.write_text(json.dumps({"pathway": "FS,dSPN,GABA", "bins": [[0, 200e-6, 0.3], [200e-6, 400e-6, 0.1]],
                                   "mean_synapses": 2}))
    out = tmp_path / "fitted.json"
    rc = cli_main(["fit", str(network), "--pathway", "FS,dSPN,GABA", "--target", str(targets), "--params", "f1", "mu2",
                       "--bounds", "f1=0.1:1", "--popsize", "4", "--maxiter", "3", "--output", str(out),
                       "--random-state", "1", "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "FS,dSPN,GABA" in text and "target" in text and "achieved" in text and "wrote" in text
    config = json.loads(out.read_text())
    block = next(iter(config["regions"].values()))["connectivity"]["FS,dSPN"]["GABA"]["pruning"]
    assert 0.1 <= block["f1"] <= 1 and 0 <= block["mu2"] <= 5


def test_fit_with_a_slice_cut(network, capsys):
    rc = cli_main(["fit", str(network), "--target", "planert2010_dSPN_iSPN", "--params", "f1", "--popsize", "4",
                   "--maxiter", "2", "--random-state", "1", "--min-z", "-1", "--max-z", "1", "--quiet"])
    assert rc == 0 and "dSPN,iSPN,GABA" in capsys.readouterr().out


@pytest.mark.parametrize("args, match", [
    (["--pathway", "FS,XYZ,GABA", "--target", "gittis_FS_dSPN"], "nothing for pathway"),
    (["--target", "no-such-file.json"], "not found"),
    (["--target", "gittis_FS_dSPN", "--params", "f9"], "unknown parameter"),
    (["--target", "gittis_FS_dSPN", "--params", "f1", "--bounds", "f1=0:3"], "bounds"),
    (["--target", "gittis_FS_dSPN", "--params", "f1", "--bounds", "mu2=0:3"], "which --params does not fit"),
    (["--target", "gittis_FS_dSPN", "--min-z", "1e-3", "--max-z", "0"], "min_z <= max_z"),
    (["--target", "gittis_FS_dSPN", "--max-z", "1e-3"], "cluster pruning"),
])
def test_bad_input_one_line(network, args, match, capsys):
    assert cli_main(["fit", str(network), *args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpuprune: error:") and match in err and "\n" not in err
