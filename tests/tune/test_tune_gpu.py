"""The batched evaluation on a real GPU (kernel gp_tune_kept through CuPy) gives the CPU's integers.

The same comparisons run on the emulated device in every CI job (tests/tune/test_tune_device.py).
"""

import numpy as np
import pytest
from conftest import copy_network
from test_tune_device import assert_same_statistics_and_fit, random_batches

from gpuprune.synth import generate_network
from gpuprune.tune import Evaluator, Tuner
from gpuprune.tune.device import DeviceEvaluator, device_backend

cupy = pytest.importorskip("cupy", reason="needs CuPy and a CUDA device")
pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def _device():
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("needs CuPy and a CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError:
        pytest.skip("needs CuPy and a CUDA device")


@pytest.mark.parametrize("mode", ["philox", "snudda"])
def test_gpu_kernel_equals_cpu_striatum(tmp_path, mode):
    net = copy_network("striatum_300", tmp_path)
    tuner = Tuner(net, ["dSPN,iSPN,GABA", "FS,dSPN,GABA", "iSPN,dSPN,GABA"], rng=mode)
    backend, _ = device_backend("gpu")
    rng = np.random.default_rng(5)
    for pw in tuner.pathways:
        model = tuner.model(pw)
        cpu, gpu = Evaluator(model), DeviceEvaluator(model, backend)
        for batch in random_batches(tuner, pw, rng, 97):
            got = gpu.kept(batch)
            assert isinstance(got, cupy.ndarray)
            got = got.get()
            want = cpu.kept(batch)
            assert got.dtype == want.dtype and np.array_equal(got, want), (pw, mode)
        big = next(random_batches(tuner, pw, rng, 4096))  # a large batch, one launch
        want = cpu.kept(big)
        assert np.array_equal(gpu.kept(big).get(), want)
        tiled = DeviceEvaluator(model, backend, sets_per_thread=32)  # 128 threads per group
        assert np.array_equal(tiled.kept(big).get(), want)


def test_gpu_tuner_statistics_and_fit_equal_cpu(tmp_path):
    pytest.importorskip("scipy")
    path = tmp_path / "net"
    generate_network(path, num_neurons=300, synapses_per_neuron=120, seed=9)
    gpu = Tuner(path, "dSPN,iSPN,GABA", device="gpu")
    assert gpu.device == "gpu"
    assert_same_statistics_and_fit(Tuner(path, "dSPN,iSPN,GABA", device="cpu"), gpu)
    # snudda mode: a pair's rows may lie in several groups (here ChIN -> dSPN), summed on the device
    split = tmp_path / "split"
    generate_network(split, num_neurons=160, synapses_per_neuron=120, seed=5)
    cpu_s = Tuner(split, "ChIN,dSPN,AMPA_NMDA", device="cpu", rng="snudda", row_budget=2000)
    gpu_s = Tuner(split, "ChIN,dSPN,AMPA_NMDA", device="gpu", rng="snudda", row_budget=2000)
    assert cpu_s.model().num_groups > cpu_s.model().pair_src.size
    assert_same_statistics_and_fit(cpu_s, gpu_s, fit=False)


def test_gpu_kernel_with_a_z_cut_equals_cpu(tmp_path):
    net = copy_network("striatum_300", tmp_path)
    probe = Tuner(net, "dSPN,iSPN,GABA")
    z = float(np.median(probe.neurons.position[:, 2]))
    tuner = Tuner(net, "dSPN,iSPN,GABA", min_z=z - 40e-6, max_z=z + 40e-6)
    model = tuner.model()
    backend, _ = device_backend("gpu")
    batch = next(random_batches(tuner, tuner.pathways[0], np.random.default_rng(6), 257))
    kept, counted = DeviceEvaluator(model, backend).evaluate_pg(batch)
    assert np.array_equal(kept.get(), Evaluator(model).kept(batch))
    assert np.array_equal(counted.get(), Evaluator(model).kept(batch, counted=True))
