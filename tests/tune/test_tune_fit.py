"""Fit quality on a generated network, export, and bad input (each refused before any work)."""

import json

import numpy as np
import pytest

import gpuprune
from gpuprune.errors import InputError
from gpuprune.stats import pair_counts, pruned_connectivity
from gpuprune.synth import generate_network
from gpuprune.tune import Tuner

pytest.importorskip("scipy")

PATHWAY = "dSPN,iSPN,GABA"
BINS = [[0, 100e-6], [100e-6, 200e-6], [200e-6, 300e-6], [300e-6, 400e-6]]
KNOWN = {"f1": 0.35, "mu2": 2.5, "a3": 1.0}


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "net"
    generate_network(path, num_neurons=400, synapses_per_neuron=150, seed=3, gap_junctions=False)
    return path


@pytest.fixture(scope="module")
def target(network, tmp_path_factory):
    """Targets from a real prune with f1 = 0.35, mu2 = 2.5, a3 = 1 (seed 1), with its n of N; and that config."""
    tmp = tmp_path_factory.mktemp("target")
    tuner = Tuner(network, PATHWAY)
    from gpuprune.tune import fitted_config

    cfg = tmp / "cfg.json"
    cfg.write_text(json.dumps(fitted_config(tuner.network.config, tuner.network.rules,
                                            [(tuner.pathways[0], KNOWN)])))
    out = tmp / "out.hdf5"
    gpuprune.prune(network, config_file=str(cfg), random_seed=1, output_file=str(out), workers=1, device="cpu")
    c = pruned_connectivity(out, "dSPN", "iSPN", BINS, channel=tuner.codes[tuner.pathways[0]][2])
    # the fitness counts bins with inclusive ends: the same pairs here (no soma lies exactly on an edge)
    spec = {"pathway": PATHWAY, "n": c.connected.tolist(), "N": c.total.tolist(),
            "bins": [[s, e, float(k / n)] for (s, e), k, n in zip(BINS, c.connected, c.total, strict=True)],
            "mean_synapses": c.synapses["mean"], "std_synapses": c.synapses["std"]}
    return spec, str(cfg)


def test_one_parameter_fit_recovers_f1(network, target):
    target, config = target
    tuner = Tuner(network, PATHWAY, seeds=[11, 12, 13], config_file=config)  # mu2, a3 as in the target's prune
    result = tuner.fit(target, params=["f1"], popsize=10, maxiter=30, seed=0, fitness="binomial")
    fit = result.fits[0]
    assert abs(fit.params["f1"] - 0.35) <= 0.05, fit.table()


def test_two_parameter_fit_within_intervals(network, target, tmp_path):
    target, config = target
    tuner = Tuner(network, PATHWAY, seeds=[21, 22], config_file=config)
    result = tuner.fit(target, params=["f1", "mu2"], popsize=15, maxiter=40, seed=1, fitness="binomial")
    fit = result.fits[0]
    lo, hi = fit.target.interval
    p = fit.probability
    assert np.all((p >= lo) & (p <= hi)), fit.table()
    assert "target" in result.table()
    # the exported config prunes to what the fit reports for one seed
    path = result.export_config(tmp_path / "fitted.json")
    config = json.loads(open(path).read())
    block = config["regions"][next(iter(config["regions"]))]["connectivity"]["dSPN,iSPN"]["GABA"]["pruning"]
    assert block["f1"] == fit.params["f1"] and block["mu2"] == fit.params["mu2"]
    assert config["random_seed"] == tuner.network.config["random_seed"]
    out = tmp_path / "out.hdf5"
    gpuprune.prune(network, config_file=str(path), random_seed=21, output_file=str(out), workers=1, device="cpu")
    one = Tuner(network, PATHWAY, seeds=[21], config_file=str(path))
    neurons = one.neurons
    src, dest, count = pair_counts(out, neurons.ids_of("dSPN"), neurons.ids_of("iSPN"),
                                   channel=one.codes[one.pathways[0]][2])
    n = one.pair_counts({})[0]
    assert int(n.sum()) == int(count.sum()) and int((n > 0).sum()) == src.size


def test_snudda_default_bounds_and_fitness(network, target):
    target, _ = target
    tuner = Tuner(network, PATHWAY)
    result = tuner.fit(target, params=["f1", "soft_max", "mu2", "a3"], popsize=4, maxiter=3, seed=2,
                       fitness="snudda")
    assert set(result.fits[0].params) == {"f1", "soft_max", "mu2", "a3"}
    assert result.fits[0].evaluations >= 16


@pytest.mark.parametrize("kwargs, match", [
    ({"pathways": "dSPN,XYZ,GABA"}, "unknown pathway"),
    ({"pathways": "dSPN,iSPN"}, "Pre,Post,ConType"),
    ({"pathways": PATHWAY, "rng": "mt"}, "randomness mode"),
    ({"pathways": PATHWAY, "device": "tpu"}, "unknown device"),
    ({"pathways": PATHWAY, "seeds": []}, "no seed given"),
    ({"pathways": PATHWAY, "seeds": [3, -1]}, "random seed must lie"),
])
def test_bad_tuner_input(network, kwargs, match):
    with pytest.raises(InputError, match=match):
        Tuner(network, **kwargs)


def test_bad_fit_input(network, target):
    target, _ = target
    tuner = Tuner(network, PATHWAY)
    with pytest.raises(InputError, match="bounds"):
        tuner.fit(target, params=["f1"], bounds=[(0, 2)])
    with pytest.raises(InputError, match="bounds"):
        tuner.fit(target, params=["mu2"], bounds=[(-1, 2)])
    with pytest.raises(InputError, match="unknown parameter"):
        tuner.fit(target, params=["f2"])
    with pytest.raises(InputError, match="malformed"):
        tuner.fit({"pathway": PATHWAY, "bins": [[50e-6, 0, 0.1]]}, params=["f1"])
    with pytest.raises(InputError, match="not one this Tuner holds"):
        tuner.fit({"pathway": "FS,dSPN,GABA", "bins": [[0, 50e-6, 0.1]]}, params=["f1"])
    with pytest.raises(InputError, match="mu2 values must be > 0"):
        tuner.evaluate({"mu2": [1.0, 0.0]})
    with pytest.raises(InputError, match="f1 values must lie in"):
        tuner.evaluate({"f1": [1.5]})
    with pytest.raises(InputError, match="must be numbers"):
        tuner.evaluate({"f1": "high"})
    with pytest.raises(InputError, match="1-D sequence"):
        tuner.evaluate({"f1": [[0.1, 0.2], [0.3, 0.4]]})
    with pytest.raises(InputError, match="seed 99 is not one"):
        tuner.evaluate({"f1": [0.5]}, seed=99)
    with pytest.raises(InputError, match="unknown fitness"):
        tuner.fit(target, params=["f1"], fitness="chi2")


def test_pathway_without_rows(tmp_path):
    """A pathway in the config with no putative rows in the network: a clear error."""
    path = tmp_path / "net"
    generate_network(path, num_neurons=40, synapses_per_neuron=20, seed=2, gap_junctions=False)
    with pytest.raises(InputError, match="no putative rows"):
        Tuner(path, "FS,FS,gap_junction")


@pytest.mark.parametrize("mode", ["philox", "snudda"])
def test_fitness_from_binned_pairs_equals_every_pair(network, mode):
    """Without synapse-count targets a fit evaluates only the pairs in a bin: the same fitness, exactly."""
    from gpuprune.stats import load_targets
    from gpuprune.tune.fit import score, target_bins
    from gpuprune.tune.fitness import fitness

    tuner = Tuner(network, PATHWAY, rng=mode, seeds=[1, 2])
    (target,) = load_targets({"pathway": PATHWAY, "bins": [[0, 50e-6, 0.3], [25e-6, 100e-6, 0.1]]})
    rng = np.random.default_rng(7)
    values = {"f1": rng.uniform(0, 1, 40), "soft_max": rng.uniform(0, 5, 40), "mu2": rng.uniform(0.1, 5, 40)}
    for kind in ("corrected", "snudda", "binomial"):
        bins = target_bins(target, kind)
        every = [fitness(tuner.statistics(values, bins, seed=s, self_pairs=kind == "snudda"), target, kind)
                 for s in tuner.seeds]
        assert np.array_equal(score(tuner, target, values, kind), np.mean(every, axis=0)), kind
    for s in tuner.seeds:
        full = tuner.statistics(values, target_bins(target), seed=s)
        part = tuner.statistics(values, target_bins(target), seed=s, binned_only=True)
        assert np.array_equal(full["connected"], part["connected"]) and np.array_equal(full["total"], part["total"])
        assert np.all(part["pairs"] <= full["pairs"])
    sub = tuner._binned(tuner.pathways[0], 1, target_bins(target), None, False)[0].model
    assert 0 < sub.pair_src.size < tuner.model(seed=1).pair_src.size


def test_bins_without_putative_pairs(network):
    """A bin beyond every putative pair: the binned model has no group; nothing connects (NaN, as in Snudda, when
    the bin holds no pair at all)."""
    from gpuprune.stats import load_targets
    from gpuprune.tune.fit import score, target_bins

    for device in ("cpu", "emulated"):
        tuner = Tuner(network, PATHWAY, device=device)
        m, pos = tuner.model(), tuner.neurons.position
        reach = float(np.max(np.linalg.norm(pos[m.pair_src] - pos[m.pair_dest], axis=1)))
        (target,) = load_targets({"pathway": PATHWAY, "bins": [[reach + 1e-6, 1.0, 0.1]]})
        values = {"f1": [0.2, 0.8]}
        stats = tuner.statistics(values, target_bins(target), binned_only=True)
        binned = tuner._binned(tuner.pathways[0], tuner.seeds[0], target_bins(target), None, False)[0]
        assert binned.model.num_groups == 0
        assert stats["connected"].shape == (2, 1) and stats["connected"].sum() == 0
        total = int(stats["total"][0])
        want = [0.1 ** 2 * 1e4] * 2 if total else [np.nan] * 2
        np.testing.assert_allclose(score(tuner, target, values), want)
