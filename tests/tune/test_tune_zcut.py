"""A slice cut (``min_z``/``max_z``, as OptimisePruning's): the statistics count only kept synapses in a z range.

Checked against a real prune's output (kept rows inside the range per pair, brute force), on the
emulated device's kernel, and against ``OptimisePruning.opt_helper_func`` with the same cut.
"""

import json

import h5py
import numpy as np
import pytest
from conftest import copy_network

import gpuprune
from gpuprune.device.emulated import EmulatedBackend
from gpuprune.errors import InputError
from gpuprune.stats import load_targets
from gpuprune.synth import generate_network
from gpuprune.tune import Tuner, fitted_config
from gpuprune.tune.device import DeviceEvaluator
from gpuprune.tune.fit import score

PATHWAY = "dSPN,iSPN,GABA"


@pytest.fixture(scope="module")
def striatum(tmp_path_factory):
    return copy_network("striatum_300", tmp_path_factory.mktemp("zcut"))


def z_slab(tuner, half_width=40e-6):
    z = float(np.median(tuner.neurons.position[:, 2]))
    return z - half_width, z + half_width


def inside_counts_of_prune(tuner, params, seed, tmp_path, z_range):
    """Kept rows inside ``z_range`` per model pair, from ``gpuprune.prune``'s output (brute force)."""
    pw = tuner.pathways[0]
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(fitted_config(tuner.network.config, tuner.network.rules, [(pw, params)])))
    out = tmp_path / "out.hdf5"
    gpuprune.prune(tuner.network.path, config_file=str(cfg), rng=tuner.rng, random_seed=seed, output_file=str(out),
                   workers=1, device="cpu")
    with h5py.File(out, "r") as f:
        rows = f["network/synapses"][()]
        voxel_size, origo = f["meta/voxel_size"][()], f["meta/simulation_origo"][()]
    pre_t, post_t, ch = tuner.codes[pw]
    types = tuner.network.neuron_type
    z = (rows[:, 2:5] * voxel_size + origo)[:, 2]  # SnuddaLoad's synapse_coords
    sel = (types[rows[:, 0]] == pre_t) & (types[rows[:, 1]] == post_t) & (rows[:, 6] == ch)
    sel &= (z >= z_range[0]) & (z <= z_range[1])
    m = tuner.model(pw, seed)
    n = tuner.network.num_neurons
    keys, counts = np.unique(rows[sel, 1].astype(np.int64) * n + rows[sel, 0], return_counts=True)
    model_keys = m.pair_dest * n + m.pair_src
    out_counts = np.zeros(model_keys.size, dtype=np.int64)
    at = np.searchsorted(model_keys, keys)
    assert np.array_equal(model_keys[at], keys)  # every kept pair is a putative pair of the model
    out_counts[at] = counts
    return out_counts


@pytest.mark.parametrize("mode", ["philox", "snudda"])
def test_counted_rows_equal_a_prune_cut_by_z(striatum, mode, tmp_path):
    probe = Tuner(striatum, PATHWAY, rng=mode)
    z_range = z_slab(probe)
    seed = 2471459376
    tuner = Tuner(striatum, PATHWAY, rng=mode, seeds=[seed], min_z=z_range[0], max_z=z_range[1])
    m = tuner.model()
    assert 0.2 < m.row_inside.mean() < 0.8
    for i, params in enumerate([{"f1": 0.6, "soft_max": 2.5, "mu2": 1.5}, {"f1": 0.9, "a3": 0.7, "soft_max": 4.0}]):
        want = inside_counts_of_prune(tuner, params, seed, tmp_path / str(i), z_range)
        got = tuner.pair_counts({k: [v] for k, v in params.items()}, counted=True)[0]
        assert np.array_equal(got, want), params
        kept = tuner.pair_counts({k: [v] for k, v in params.items()})[0]
        assert np.all(got <= kept) and got.sum() < kept.sum()  # the rules still see every row


def test_cut_on_the_emulated_device_equals_numpy(striatum):
    probe = Tuner(striatum, PATHWAY)
    lo, hi = z_slab(probe)
    tuner = Tuner(striatum, [PATHWAY, "iSPN,dSPN,GABA"], min_z=lo, max_z=hi)
    rng = np.random.default_rng(8)
    backend = EmulatedBackend(0)
    for pw in tuner.pathways:
        model = tuner.model(pw)
        values = {"f1": rng.uniform(0, 1, 41), "soft_max": rng.uniform(0, 6, 41), "mu2": rng.uniform(0.1, 5, 41),
                  "a3": rng.uniform(0, 1, 41)}
        batch = tuner.batch(values, pw)
        dev = DeviceEvaluator(model, backend)
        kept, counted = dev.evaluate_pg(batch)
        assert np.array_equal(np.asarray(kept), tuner.evaluate(batch, pw))
        assert np.array_equal(np.asarray(counted), tuner.evaluate(batch, pw, counted=True))
    emu = Tuner(striatum, PATHWAY, device="emulated", min_z=lo, max_z=hi)
    bins = [[0, 50e-6], [0, 100e-6]]
    values = {"f1": np.linspace(0.1, 1, 9)}
    a, b = tuner.statistics(values, bins), emu.statistics(values, bins)
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k


def test_bad_cut_is_refused(tmp_path):
    path = tmp_path / "net"
    generate_network(path, num_neurons=120, synapses_per_neuron=60, seed=5)
    with pytest.raises(InputError, match="min_z <= max_z"):
        Tuner(path, PATHWAY, min_z=1e-3, max_z=0.0)
    with pytest.raises(InputError, match="must be numbers"):
        Tuner(path, PATHWAY, min_z="low")
    with pytest.raises(InputError, match="not gap junctions"):
        Tuner(path, "FS,FS,gap_junction", max_z=1e-3)
    with pytest.raises(InputError, match="cluster pruning"):
        Tuner(path, "FS,dSPN,GABA", max_z=1e-3)  # the generated config prunes FS -> dSPN by clusters


@pytest.mark.slow
def test_cut_fitness_equals_opt_helper_func(tmp_path, monkeypatch):
    """OptimisePruning with min_z/max_z on striatum_300 (Snudda prunes it first: about 45 s)."""
    pytest.importorskip("snudda")
    from test_tune_optimise_pruning import opt_helper_fitness, snudda_pruned

    net = snudda_pruned("striatum_300", tmp_path, monkeypatch)
    probe = Tuner(net, PATHWAY)
    lo, hi = z_slab(probe)
    block = probe.blocks[probe.pathways[0]][0]
    extra = {"dist_pruning": block.dist_pruning.source if block.dist_pruning else None, "cluster_pruning": False}
    exp = [(0, 50e-6, 0.2), (0, 100e-6, 0.1), (50e-6, 150e-6, 0.05)]
    names = ["f1", "mu2", "a3", "soft_max"]
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.uniform(0.2, 1, 2), rng.uniform(0.5, 5, 2), rng.uniform(0.3, 1, 2),
                         rng.uniform(0.5, 5, 2)])
    expected = opt_helper_fitness(net, PATHWAY, exp, extra, names, x, synapses=(2.0, 1.0, 1.0), min_z=lo, max_z=hi)
    (target,) = load_targets({"pathway": PATHWAY, "bins": [list(b) for b in exp], "mean_synapses": 2.0,
                              "std_synapses": 1.0, "p20_synapses": 1.0})
    values = {n: x[:, i] for i, n in enumerate(names)}
    tuner = Tuner(net, PATHWAY, rng="snudda", optimise_pruning=extra, min_z=lo, max_z=hi)
    np.testing.assert_allclose(score(tuner, target, values, kind="snudda"), expected, rtol=1e-9, atol=0)
    uncut = Tuner(net, PATHWAY, rng="snudda", optimise_pruning=extra)
    assert not np.allclose(score(uncut, target, values, kind="snudda"), expected)  # the cut matters
