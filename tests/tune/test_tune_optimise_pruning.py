"""``Tuner(optimise_pruning=...)`` gives the fitness Snudda's ``OptimisePruning.opt_helper_func`` computes."""

import os

import numpy as np
import pytest
from conftest import copy_network

from gpuprune.stats import Target, load_targets
from gpuprune.tune import Tuner
from gpuprune.tune.fit import score

pytest.importorskip("snudda")

EXP_DATA = [(0, 50e-6, 0.5), (0, 100e-6, 0.4), (40e-6, 150e-6, 0.2), (100e-6, 300e-6, 0.1)]


def snudda_pruned(name, tmp_path, monkeypatch):
    """A copy of fixture ``name`` that SnuddaPrune has pruned, keeping the merge files OptimisePruning reads."""
    from snudda.detect import SnuddaPrune

    net = copy_network(name, tmp_path)
    monkeypatch.chdir(tmp_path)  # Snudda opens the config at the relative path detect recorded
    SnuddaPrune(network_path=str(net), keep_files=True).prune()
    os.makedirs(net / "temp", exist_ok=True)
    return net


def opt_helper_fitness(net, pathway, exp_data, extra, names, x, synapses=(None, None, None), min_z=None, max_z=None):
    """``OptimisePruning.opt_helper_func`` for each row of ``x`` (values of ``names``)."""
    from snudda.optimise.optimise_pruning import OptimisePruning

    pre, post, con_type = pathway.split(",")
    info = {"pre_type": pre, "post_type": post, "con_type": con_type, "exp_data": exp_data,
            "mean_num_synapses_per_pair": synapses[0], "std_num_synapses_per_pair": synapses[1],
            "percentile20_pair": synapses[2], "extra_pruning_parameters": extra, "network_path": str(net),
            "param_names": list(names), "min_z": min_z, "max_z": max_z}
    OptimisePruning.op = None
    try:
        return np.array([OptimisePruning.opt_helper_func(v, info) for v in x])
    finally:
        OptimisePruning.op = None


@pytest.fixture
def snudda_network(tmp_path, monkeypatch):
    return snudda_pruned("prune3", tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("con_type", ["GABA", "AMPA"])
def test_fitness_equals_opt_helper_func(snudda_network, con_type):
    pathway = f"ballanddoublestick,ballanddoublestick,{con_type}"
    extra = {"dist_pruning": None, "cluster_pruning": False}
    names = ["f1", "mu2", "a3", "soft_max"]
    rng = np.random.default_rng(11)
    x = np.column_stack([rng.uniform(0.2, 1, 5), rng.uniform(0.5, 5, 5), rng.uniform(0.3, 1, 5),
                         rng.uniform(0.5, 5, 5)])
    expected = opt_helper_fitness(snudda_network, pathway, EXP_DATA, extra, names, x, synapses=(2.0, 1.0, 1.0))
    assert np.all(np.isfinite(expected)) and np.unique(expected).size > 1
    tuner = Tuner(snudda_network, pathway, rng="snudda", optimise_pruning=extra)
    (target,) = load_targets({"pathway": pathway, "bins": [list(b) for b in EXP_DATA],
                              "mean_synapses": 2.0, "std_synapses": 1.0, "p20_synapses": 1.0})
    assert isinstance(target, Target)
    got = score(tuner, target, {n: x[:, i] for i, n in enumerate(names)}, kind="snudda")
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0)
