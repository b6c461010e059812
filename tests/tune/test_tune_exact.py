"""The in-memory evaluation equals a real prune with the same parameters and seed, group by group."""

import json

import h5py
import numpy as np
import pytest
from conftest import copy_network

import gpuprune
from gpuprune.synth import generate_network
from gpuprune.tune import Tuner, fitted_config


def prune_counts(net, tuner, pathway, params, rng, seed, tmp_path, tag):
    """Kept rows per (src, dest) of ``pathway`` after ``gpuprune.prune`` with ``params`` in the config."""
    config = fitted_config(tuner.network.config, tuner.network.rules, [(pathway, params)])
    cfg = tmp_path / f"config-{tag}.json"
    cfg.write_text(json.dumps(config))
    out = tmp_path / f"out-{tag}.hdf5"
    gpuprune.prune(net, config_file=str(cfg), rng=rng, random_seed=seed, output_file=str(out), workers=1,
                   device="cpu")
    kind = "gap_junctions" if pathway[2] == "gap_junction" else "synapses"
    with h5py.File(out, "r") as f:
        rows = f[f"network/{kind}"][()]
    pre_t, post_t, ch = tuner.codes[pathway]
    types = tuner.network.neuron_type
    sel = (types[rows[:, 0]] == pre_t) & (types[rows[:, 1]] == post_t)
    if kind == "synapses":
        sel &= rows[:, 6] == ch
    n = tuner.network.num_neurons
    return np.unique(rows[sel, 1].astype(np.int64) * n + rows[sel, 0], return_counts=True)


def random_params(rng, blocks, size):
    names = ["f1", "soft_max", "mu2", "a3"] + (["pruning_other.f1", "pruning_other.mu2"] if blocks > 1 else [])
    hi = {"f1": 1, "a3": 1, "soft_max": 8, "mu2": 5}
    return [{k: float(np.round(rng.uniform(0.05, hi[k.split(".")[-1]]), 4)) for k in rng.permutation(names)[:3]}
            for _ in range(size)]


def check_pathway(net, pathway, rng_mode, seeds, tmp_path, vectors=3, row_budget=None):
    options = {} if row_budget is None else {"row_budget": row_budget}
    tuner = Tuner(net, pathway, seeds=seeds, rng=rng_mode, **options)
    pw = tuner.pathways[0]
    r = np.random.default_rng(abs(hash(pathway)) % 2**32)
    sets = random_params(r, len(tuner.blocks[pw]), vectors)
    for seed in seeds:
        m = tuner.model(pw, seed)
        key = m.pair_dest * tuner.network.num_neurons + m.pair_src  # snudda mode may split a pair's groups
        for i, params in enumerate(sets):
            # one parameter set at a time, and the same inside a batch of all of them
            batch = {k: np.array([s.get(k, params.get(k, np.nan)) for s in sets]) for k in params}
            one = tuner.pair_counts({k: [v] for k, v in params.items()}, pw, seed)[0]
            full = {k: [v] for k, v in params.items()}
            ref_key, ref_count = prune_counts(net, tuner, pw, params, rng_mode, seed, tmp_path, f"{seed}-{i}")
            kept = one > 0
            assert np.array_equal(key[kept], ref_key), (pw, params)
            assert np.array_equal(one[kept], ref_count), (pw, params)
            if not any(np.isnan(v).any() for v in batch.values()):
                assert np.array_equal(tuner.pair_counts(batch, pw, seed)[i], one)
            assert tuner.evaluate(full, pw, seed).shape == (1, m.num_groups)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "net"
    generate_network(path, num_neurons=160, synapses_per_neuron=120, seed=5)
    return path


GENERATED_PATHWAYS = ["FS,dSPN,GABA",  # cluster pruning + distance
                      "dSPN,iSPN,GABA",  # pruning_other
                      "iSPN,ChIN,GABA",  # distance in r
                      "ChIN,dSPN,AMPA_NMDA",
                      "FS,FS,gap_junction",
                      "dSPN,FS,GABA"]  # list key in the config, projection file


@pytest.mark.parametrize("pathway", GENERATED_PATHWAYS)
@pytest.mark.parametrize("mode", ["philox", "snudda"])
def test_generated_network_equals_prune(generated, pathway, mode, tmp_path):
    check_pathway(generated, pathway, mode, [7, 2 ** 40 + 3], tmp_path, vectors=2, row_budget=2000)


@pytest.mark.parametrize("pathway", ["dSPN,iSPN,GABA", "FS,dSPN,GABA"])
@pytest.mark.parametrize("mode", ["philox", "snudda"])
def test_striatum_equals_prune(pathway, mode, tmp_path):
    net = copy_network("striatum_300", tmp_path)
    check_pathway(net, pathway, mode, [2471459376], tmp_path, vectors=2)


@pytest.mark.parametrize("mode", ["philox", "snudda"])
def test_prune3_equals_prune(mode, tmp_path):
    net = copy_network("prune3", tmp_path)
    for pathway in ("ballanddoublestick,ballanddoublestick,GABA", "ballanddoublestick,ballanddoublestick,AMPA"):
        check_pathway(net, pathway, mode, [1003, 2698621808], tmp_path, vectors=2)


def test_snudda_mode_equals_snudda_output(tmp_path):
    """With the config's own parameters, snudda mode gives Snudda's own output file's pairs."""
    from conftest import data_path

    net = copy_network("striatum_300", tmp_path)
    tuner = Tuner(net, ["dSPN,iSPN,GABA", "FS,dSPN,GABA"], rng="snudda")
    with h5py.File(data_path("striatum_300", "expected", "network-synapses-default.hdf5"), "r") as f:
        rows = f["network/synapses"][()]
    n_neurons = tuner.network.num_neurons
    for pw in tuner.pathways:
        pre_t, post_t, ch = tuner.codes[pw]
        t = tuner.network.neuron_type
        sel = (t[rows[:, 0]] == pre_t) & (t[rows[:, 1]] == post_t) & (rows[:, 6] == ch)
        key, count = np.unique(rows[sel, 1].astype(np.int64) * n_neurons + rows[sel, 0], return_counts=True)
        m = tuner.model(pw)
        kept = tuner.pair_counts({}, pw)[0]
        mk = m.pair_dest * n_neurons + m.pair_src
        assert np.array_equal(mk[kept > 0], key) and np.array_equal(kept[kept > 0], count)


@pytest.mark.slow
def test_snudda_mode_equals_snuddaprune_with_random_parameters(tmp_path, monkeypatch):
    """Random parameter vectors written into a config, pruned by Snudda's own SnuddaPrune (PyPI snudda): its
    output's kept rows per pair equal the in-memory evaluation in snudda mode."""
    pytest.importorskip("snudda")
    from snudda.detect import SnuddaPrune

    net = copy_network("prune3", tmp_path)
    monkeypatch.chdir(tmp_path)  # Snudda opens files at the relative paths detect recorded
    tuner = Tuner(net, ["ballanddoublestick,ballanddoublestick,GABA", "ballanddoublestick,ballanddoublestick,AMPA"],
                  rng="snudda")
    n_neurons = tuner.network.num_neurons
    rng = np.random.default_rng(19)
    for i in range(2):
        fitted = [(pw, {"f1": float(rng.uniform(0.3, 1)), "soft_max": float(rng.uniform(1, 6)),
                        "mu2": float(rng.uniform(0.5, 4)), "a3": float(rng.uniform(0.5, 1))}) for pw in tuner.pathways]
        cfg = net / f"network-config-random-{i}.json"
        cfg.write_text(json.dumps(fitted_config(tuner.network.config, tuner.network.rules, fitted)))
        SnuddaPrune(network_path=str(net), config_file=str(cfg), keep_files=True).prune()
        with h5py.File(net / "network-synapses.hdf5", "r") as f:
            rows = f["network/synapses"][()]
        for pw, params in fitted:
            pre_t, post_t, ch = tuner.codes[pw]
            t = tuner.network.neuron_type
            sel = (t[rows[:, 0]] == pre_t) & (t[rows[:, 1]] == post_t) & (rows[:, 6] == ch)
            key, count = np.unique(rows[sel, 1].astype(np.int64) * n_neurons + rows[sel, 0], return_counts=True)
            m = tuner.model(pw)
            kept = tuner.pair_counts({k: [v] for k, v in params.items()}, pw)[0]
            mk = m.pair_dest * n_neurons + m.pair_src
            assert np.array_equal(mk[kept > 0], key) and np.array_equal(kept[kept > 0], count), (pw, params)
            assert count.sum() > 0
