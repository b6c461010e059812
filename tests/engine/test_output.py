"""The output file: layout of DESIGN §2, atomic replacement, compression options."""

import json

import h5py
import numpy as np
import pytest
from conftest import data_path

import gpuprune
from gpuprune.api import PathwayStats


def test_layout_matches_snudda(tmp_path):
    net = data_path("striatum_300")
    out = tmp_path / "o.hdf5"
    result = gpuprune.prune(net, output_file=out, rng="snudda", device="cpu")
    expected = net / "expected" / "network-synapses-default.hdf5"
    with h5py.File(out, "r") as f, h5py.File(expected, "r") as g:
        assert set(f.keys()) == set(g.keys())
        assert set(f["meta"].keys()) == set(g["meta"].keys())
        assert set(f["network"].keys()) == set(g["network"].keys())
        assert set(f["network/neurons"].keys()) == set(g["network/neurons"].keys())
        for name in ("num_synapses", "num_gap_junctions"):
            assert f["network"][name].dtype == np.uint64 and f["network"][name].shape == ()
            assert f["network"][name][()] == g["network"][name][()]
        syn = f["network/synapses"]
        assert syn.dtype == np.int32 and syn.compression == "lzf" and syn.chunks == (10000, 13)
        assert f["network/gap_junctions"].shape[1] == 11
        assert json.loads(f["config"][()]) == json.loads((net / "network-config.json").read_text())
        assert np.array_equal(f["network/neurons/neuron_id"][()], g["network/neurons/neuron_id"][()])
    assert result.synapses_after == 43117 and result.synapses_before == 1011652


def test_pathway_table(tmp_path):
    net = data_path("striatum_300")
    r = gpuprune.prune(net, output_file=tmp_path / "o.hdf5", device="cpu")
    assert all(isinstance(p, PathwayStats) for p in r.pathways)
    assert sum(p.putative_rows for p in r.pathways) == r.synapses_before + r.gap_junctions_before
    assert sum(p.kept_rows for p in r.pathways) == r.synapses_after + r.gap_junctions_after
    fs_dspn = next(p for p in r.pathways if (p.pre, p.post, p.name) == ("FS", "dSPN", "GABA"))
    assert fs_dspn.putative_pairs >= fs_dspn.connected_pairs > 0
    with h5py.File(tmp_path / "o.hdf5", "r") as f:
        syn = f["network/synapses"][()]
        names = [x.decode().split("_")[0] for x in f["network/neurons/name"][()]]
    pre = np.array(names)[syn[:, 0]]
    post = np.array(names)[syn[:, 1]]
    sel = (pre == "FS") & (post == "dSPN")
    assert fs_dspn.kept_rows == int(sel.sum())
    assert fs_dspn.connected_pairs == len({(a, b) for a, b in syn[sel][:, :2].tolist()})
    text = r.table()
    assert "FS" in text and "dSPN" in text and "connected" in text
    assert {"total", "plan", "prune", "read", "compute"} <= set(r.timings)


@pytest.mark.parametrize("compression", ["gzip", None])
def test_compression_options(tmp_path, compression):
    net = data_path("prune3")
    a = tmp_path / "a.hdf5"
    gpuprune.prune(net, output_file=a, compression=compression, device="cpu")
    with h5py.File(a, "r") as f:
        assert f["network/synapses"].compression == compression
    # the rows read back equal those of the default (lzf) output, dataset for dataset
    b = tmp_path / "lzf.hdf5"
    gpuprune.prune(net, output_file=b, device="cpu")
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name in ("network/synapses", "network/gap_junctions"):
            assert fa[name].shape[0] > 0
            assert np.array_equal(fa[name][()], fb[name][()]), name


def test_bad_compression(tmp_path):
    with pytest.raises(gpuprune.InputError, match="compression"):
        gpuprune.prune(data_path("prune3"), output_file=tmp_path / "a.hdf5", compression="zstd")


def test_loads_in_snudda(tmp_path):
    snudda_load = pytest.importorskip("snudda.utils.load", reason="snudda is not installed")
    out = tmp_path / "o.hdf5"
    gpuprune.prune(data_path("prune3"), output_file=out, device="cpu")
    sl = snudda_load.SnuddaLoad(str(out))
    assert sl.data["num_synapses"] == 360
    # with a config that prunes, SnuddaLoad sees exactly the kept rows
    net = data_path("prune3")
    pruned = tmp_path / "pruned.hdf5"
    r = gpuprune.prune(net, config_file=net / "network-config-test-1.json", output_file=pruned, device="cpu")
    assert 0 < r.synapses_after < 360 and 0 < r.gap_junctions_after
    sl = snudda_load.SnuddaLoad(str(pruned))
    assert sl.data["num_synapses"] == r.synapses_after
    assert sl.data["num_gap_junctions"] == r.gap_junctions_after
    with h5py.File(pruned, "r") as f:
        assert np.array_equal(sl.data["synapses"][()], f["network/synapses"][()])


def test_set_config_prunes_with_the_new_parameters(tmp_path):
    """A Pruner takes an edited config without re-reading the network, and equals a fresh open of it."""
    import copy

    from gpuprune.api import Pruner
    from gpuprune.errors import ConfigError

    net = data_path("striatum_300")
    pruner = Pruner(net)
    sources = pruner.network.sources
    before = pruner.prune(tmp_path / "before.hdf5", device="cpu", workers=1)
    config = copy.deepcopy(pruner.config)
    pruning = config["regions"]["Striatum"]["connectivity"]["FS,dSPN"]["GABA"]["pruning"]
    pruning["f1"] = 0.05
    pruning.pop("softMax", None)
    pruner.set_config(config)
    assert pruner.network.sources is sources  # the files were not indexed again
    after = pruner.prune(tmp_path / "after.hdf5", device="cpu", workers=1)

    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(config))
    fresh = gpuprune.prune(net, config_file=edited, output_file=tmp_path / "fresh.hdf5", device="cpu",
                           workers=1, random_seed=pruner.network.random_seed)
    with h5py.File(tmp_path / "after.hdf5", "r") as f, h5py.File(tmp_path / "fresh.hdf5", "r") as g:
        assert np.array_equal(f["network/synapses"][()], g["network/synapses"][()])
        assert json.loads(f["config"][()]) == config

    def kept(result):
        return {(p.pre, p.post, p.name): p.kept_rows for p in result.pathways}

    key = ("FS", "dSPN", "GABA")
    assert kept(after)[key] < kept(before)[key]
    assert {k: v for k, v in kept(after).items() if k != key} == {k: v for k, v in kept(before).items() if k != key}
    assert fresh.synapses_after == after.synapses_after

    # a bad config is refused and the current one stays
    bad = copy.deepcopy(config)
    bad["regions"]["Striatum"]["connectivity"]["FS,dSPN"]["GABA"]["pruning"]["f1"] = "lots"
    with pytest.raises(ConfigError):
        pruner.set_config(bad)
    with pytest.raises(ConfigError, match="dict or a file path"):
        pruner.set_config(42)
    deep = copy.deepcopy(config)
    nest = deep["regions"]["Striatum"]
    for _ in range(10_000):  # deeper than copy.deepcopy or json can recurse
        nest["x"] = {}
        nest = nest["x"]
    with pytest.raises(ConfigError, match="deeper than"):
        pruner.set_config(deep)
    cycle = copy.deepcopy(config)
    cycle["regions"]["Striatum"]["self"] = cycle
    with pytest.raises(ConfigError, match="deeper than"):
        pruner.set_config(cycle)
    assert pruner.config == config
