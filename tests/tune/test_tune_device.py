"""The device evaluation (kernel gp_tune_kept) on the emulated device: byte-identical to the NumPy one.

The emulated device runs the kernel source CuPy compiles, built for the host, through the same
argument struct, so these run in every CI job; tests/tune/test_tune_gpu.py repeats the comparison on
a real GPU.
"""

import numpy as np
import pytest
from conftest import copy_network

from gpuprune.device import memory
from gpuprune.device.emulated import EmulatedBackend
from gpuprune.errors import DeviceError
from gpuprune.synth import generate_network
from gpuprune.tune import Evaluator, Tuner
from gpuprune.tune.device import KERNEL, DeviceEvaluator

HI = {"f1": 1.0, "a3": 1.0, "soft_max": 8.0, "mu2": 5.0}


def random_batches(tuner, pathway, rng, size):
    """Batches over every parameter of every block, then over random subsets (the others from the config)."""
    names = ["f1", "soft_max", "mu2", "a3"]
    if len(tuner.blocks[pathway]) > 1:
        names += [f"pruning_other.{k}" for k in names]
    subsets = [names, names, list(rng.permutation(names)[:2]), list(rng.permutation(names)[:1])]
    for sub in subsets:
        values = {k: rng.uniform(0.0, HI[k.split(".")[-1]], size) for k in sub}
        for k in list(values)[:1]:  # values at the ends of the range (mu2 must be > 0)
            values[k][:2] = [1e-3 if k.endswith("mu2") else 0.0, HI[k.split(".")[-1]]]
        yield tuner.batch(values, pathway)


@pytest.fixture(scope="module")
def striatum(tmp_path_factory):
    return copy_network("striatum_300", tmp_path_factory.mktemp("dev"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "net"
    generate_network(path, num_neurons=300, synapses_per_neuron=120, seed=9)  # two populations: pruning_other
    return path


@pytest.mark.parametrize("mode", ["philox", "snudda"])
def test_emulated_kernel_equals_numpy_striatum(striatum, mode):
    tuner = Tuner(striatum, ["dSPN,iSPN,GABA", "FS,dSPN,GABA", "iSPN,dSPN,GABA"], rng=mode)
    backend = EmulatedBackend(0)
    rng = np.random.default_rng(11)
    for pw in tuner.pathways:
        model = tuner.model(pw)
        cpu, dev = Evaluator(model), DeviceEvaluator(model, backend)
        tiled = DeviceEvaluator(model, backend, sets_per_thread=5)  # 8 threads per group for 37 sets
        for batch in random_batches(tuner, pw, rng, 37):
            before = backend.launches.get(KERNEL, 0)
            got = dev.kept(batch)
            assert backend.launches[KERNEL] == before + 1  # one launch scores the whole batch
            want = cpu.kept(batch)
            assert got.dtype == want.dtype == np.int32 and got.shape == want.shape
            assert np.array_equal(np.asarray(got), want), (pw, mode)
            assert np.array_equal(np.asarray(tiled.kept(batch)), want)
            assert want.sum() > 0
        empty = tuner.batch({"f1": []}, pw)
        assert dev.kept(empty).shape == cpu.kept(empty).shape == (0, model.num_groups)


@pytest.mark.parametrize("mode", ["philox", "snudda"])
def test_emulated_kernel_equals_numpy_two_blocks(generated, mode):
    tuner = Tuner(generated, "dSPN,iSPN,GABA", rng=mode, seeds=[3, 4])
    pw = tuner.pathways[0]
    assert len(tuner.blocks[pw]) == 2 and set(np.unique(tuner.model(pw, 3).group_block)) == {0, 1}
    rng = np.random.default_rng(2)
    backend = EmulatedBackend(0)
    for seed in tuner.seeds:
        model = tuner.model(pw, seed)
        cpu, dev = Evaluator(model), DeviceEvaluator(model, backend)
        for batch in random_batches(tuner, pw, rng, 29):
            assert np.array_equal(np.asarray(dev.kept(batch)), cpu.kept(batch))


def test_batch_split_over_launches_when_memory_is_short(generated):
    """A batch larger than the device's free memory runs in several launches with the same result."""
    tuner = Tuner(generated, "dSPN,iSPN,GABA")
    model = tuner.model()
    batch = next(random_batches(tuner, tuner.pathways[0], np.random.default_rng(4), 300))
    want = Evaluator(model).kept(batch)
    roomy = DeviceEvaluator(model, EmulatedBackend(0))
    g, width = model.num_groups, roomy.n_max + 1
    out = memory.tune_output_bytes(g, batch.size)
    per_set = memory.tune_launch_bytes(g, 1, 2, width)
    resident = memory.tune_resident_bytes(model.num_rows, g)
    backend = EmulatedBackend(0, memory=resident + int((out + 20 * per_set) / memory.MEMORY_FRACTION) + 4096)
    small = DeviceEvaluator(model, backend)
    got = small.kept(batch)
    assert backend.launches[KERNEL] > 1
    with pytest.raises(DeviceError, match="evaluate smaller batches"):
        small.kept(next(random_batches(tuner, tuner.pathways[0], np.random.default_rng(4), 10 * batch.size)))
    assert np.array_equal(np.asarray(got), want)
    assert np.array_equal(np.asarray(roomy.kept(batch)), want)


def test_results_are_not_overwritten_by_the_next_batch(generated):
    tuner = Tuner(generated, "dSPN,iSPN,GABA", device="emulated")
    first = tuner.evaluate({"f1": [0.2, 0.9]})
    copy = np.array(first)
    tuner.evaluate({"f1": [0.5, 0.6]})
    assert np.array_equal(first, copy)


def assert_same_statistics_and_fit(cpu, other, pathway="dSPN,iSPN,GABA", fit=True):
    """Statistics of a batch, and a short fit, equal on the CPU Tuner and on ``other`` (a device Tuner)."""
    values = {"f1": np.linspace(0.1, 1, 33), "mu2": np.linspace(0.5, 4, 33)}
    if len(cpu.blocks[cpu.pathways[0]]) > 1:
        values["pruning_other.a3"] = np.linspace(0, 1, 33)
    bins = [[0, 100e-6], [100e-6, 300e-6]]
    a, b = cpu.statistics(values, bins), other.statistics(values, bins)
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k
    if fit:
        target = {"pathway": pathway, "bins": [[0, 100e-6, 0.3], [100e-6, 300e-6, 0.1]]}
        fa = cpu.fit(target, params=["f1", "mu2"], popsize=5, maxiter=4, seed=1, progress=False).fits[0]
        fb = other.fit(target, params=["f1", "mu2"], popsize=5, maxiter=4, seed=1, progress=False).fits[0]
        assert fa.params == fb.params and fa.fitness == fb.fitness


def test_emulated_tuner_statistics_and_fit_equal_cpu(generated):
    pytest.importorskip("scipy")
    emu = Tuner(generated, "dSPN,iSPN,GABA", device="emulated")
    assert emu.device == "emulated"
    assert_same_statistics_and_fit(Tuner(generated, "dSPN,iSPN,GABA", device="cpu"), emu)


def test_model_larger_than_the_device_is_refused(generated):
    model = Tuner(generated, "dSPN,iSPN,GABA").model()
    with pytest.raises(DeviceError, match="needs .* bytes"):
        DeviceEvaluator(model, EmulatedBackend(0, memory=1024))


def test_split_groups_summed_per_pair(tmp_path):
    """Snudda mode may put one pair's rows in several groups: pair counts sum them, on either backend."""
    path = tmp_path / "net"
    generate_network(path, num_neurons=160, synapses_per_neuron=120, seed=5)
    values = {"f1": np.linspace(0.1, 1, 7), "mu2": np.linspace(0.5, 4, 7)}
    for device in ("cpu", "emulated"):
        tuner = Tuner(path, "ChIN,dSPN,AMPA_NMDA", rng="snudda", device=device, row_budget=2000)
        m = tuner.model()
        assert m.num_groups > m.pair_src.size
        n = np.asarray(tuner.evaluate(values))
        want = np.zeros((n.shape[0], m.pair_src.size), dtype=np.int64)
        for p in range(n.shape[0]):
            want[p] = np.bincount(m.pair_of_group, weights=n[p], minlength=m.pair_src.size)
        got = tuner.pair_counts(values)
        assert got.dtype == np.int32 and np.array_equal(np.asarray(got), want)


def test_free_memory_asked_once_per_larger_batch(generated):
    """On a GPU the free memory comes from NVML (milliseconds): a fit's equal-sized batches ask once."""
    backend = EmulatedBackend(0)
    asked = []
    real = backend.memory_budget
    backend.memory_budget = lambda *a, **k: asked.append(1) or real(*a, **k)
    tuner = Tuner(generated, "dSPN,iSPN,GABA")
    dev = DeviceEvaluator(tuner.model(), backend)
    at_start = len(asked)
    for seed in range(5):
        dev.kept(next(random_batches(tuner, tuner.pathways[0], np.random.default_rng(seed), 60)))
    assert len(asked) == at_start + 1
    dev.kept(next(random_batches(tuner, tuner.pathways[0], np.random.default_rng(9), 61)))
    assert len(asked) == at_start + 2
