"""The batched evaluation on the GPU (CuPy) gives the same integers as on the CPU."""

import numpy as np
import pytest
from conftest import copy_network

from gpuprune.synth import generate_network
from gpuprune.tune import Evaluator, Tuner

cupy = pytest.importorskip("cupy", reason="needs CuPy and a CUDA device")
pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def _device():
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("needs CuPy and a CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError:
        pytest.skip("needs CuPy and a CUDA device")


def _compare(tuner, pathway, rng):
    names = ["f1", "soft_max", "mu2", "a3"]
    hi = {"f1": 1, "a3": 1, "soft_max": 6, "mu2": 5}
    values = {k: rng.uniform(0.02, hi[k], 97) for k in names}
    batch = tuner.batch(values, pathway)
    model = tuner.model(pathway)
    cpu = Evaluator(model, np).kept_gp(batch)
    gpu = Evaluator(model, cupy).kept_gp(batch).get()
    assert gpu.dtype == cpu.dtype and np.array_equal(gpu, cpu)
    assert cpu.sum() > 0


@pytest.mark.parametrize("mode", ["philox", "snudda"])
def test_gpu_evaluation_equals_cpu_striatum(tmp_path, mode):
    net = copy_network("striatum_300", tmp_path)
    tuner = Tuner(net, ["dSPN,iSPN,GABA", "FS,dSPN,GABA"], rng=mode)
    rng = np.random.default_rng(5)
    for pw in tuner.pathways:
        _compare(tuner, pw, rng)


def test_gpu_tuner_statistics_equal_cpu(tmp_path):
    path = tmp_path / "net"
    generate_network(path, num_neurons=300, synapses_per_neuron=120, seed=9)
    cpu = Tuner(path, "dSPN,iSPN,GABA", device="cpu")
    gpu = Tuner(path, "dSPN,iSPN,GABA", device="gpu")
    values = {"f1": np.linspace(0.1, 1, 33), "mu2": np.linspace(0.5, 4, 33)}
    bins = [[0, 100e-6], [100e-6, 300e-6]]
    a, b = cpu.statistics(values, bins), gpu.statistics(values, bins)
    for k in ("connected", "total", "pairs", "histogram"):
        assert np.array_equal(a[k], b[k]), k
