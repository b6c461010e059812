"""snudda mode reproduces SnuddaPrune's output byte for byte on every fixture network and config."""

import pytest
from conftest import SNUDDA_CASES, data_path
from helpers import assert_same_rows

import gpuprune


@pytest.mark.parametrize("network,config,expected", SNUDDA_CASES,
                         ids=[f"{n}:{c}" for n, c, _ in SNUDDA_CASES])
def test_equals_snudda(network, config, expected, tmp_path):
    net = data_path(network)
    out = tmp_path / "out.hdf5"
    result = gpuprune.prune(net, config_file=net / config, rng="snudda", output_file=out, device="cpu")
    assert_same_rows(out, net / "expected" / expected)
    assert result.rng == "snudda" and result.device == "cpu"


def test_equals_snudda_with_many_chunks_and_workers(tmp_path):
    net = data_path("striatum_300")
    out = tmp_path / "out.hdf5"
    gpuprune.prune(net, rng="snudda", output_file=out, device="cpu", row_budget=20_000, workers=2)
    assert_same_rows(out, net / "expected" / "network-synapses-default.hdf5")


def test_snudda_mode_refused_on_gpu(tmp_path):
    with pytest.raises(gpuprune.DeviceError, match="CPU only"):
        gpuprune.prune(data_path("prune3"), rng="snudda", device="gpu", output_file=tmp_path / "o.hdf5")
