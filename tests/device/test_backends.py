"""The device suite: one test, every backend (numpy, emulated, cupy).

``--device gpu`` must give the bytes ``--device cpu`` gives in philox mode, on the emulated device
(runs everywhere: the kernels compiled for the host) and on a real GPU (``cupy`` params carry the
``gpu`` marker and skip without CuPy and a device); the ``numpy`` param runs the CPU path itself
against its reference (the same code run twice must agree).
"""

import numpy as np
import pytest
from gpu_helpers import (
    PHILOX_CASES,
    Backend,
    assert_same_bytes,
    backend,  # noqa: F401 - the fixture
    case_id,
    check_large_synthetic,
    cupy_devices,
    device_backend,  # noqa: F401 - the fixture
    network_path,
    pathway_counts,
    read_output,
)

import gpuprune
from gpuprune import engine, rng
from gpuprune.device import emulated as _emulate
from gpuprune.device import program as _device
from gpuprune.io.network import Network


@pytest.mark.parametrize("case", PHILOX_CASES, ids=case_id)
def test_matches_cpu(case, backend, cpu_reference, tmp_path):  # noqa: F811
    net = network_path(case[0])
    result = gpuprune.prune(net, config_file=net / case[1], rng="philox", device=backend.device,
                            output_file=tmp_path / "out.hdf5", workers=1)
    expected, counts = cpu_reference(case)
    assert result.device == backend.device
    assert_same_bytes(expected, read_output(tmp_path / "out.hdf5"))
    assert pathway_counts(result) == counts
    if backend.name == "emulated":
        if case == PHILOX_CASES[0]:  # the whole file, too, is the CPU's byte for byte
            gpuprune.prune(net, config_file=net / case[1], rng="philox", device="cpu", workers=1,
                           output_file=tmp_path / "cpu.hdf5")
            assert (tmp_path / "out.hdf5").read_bytes() == (tmp_path / "cpu.hdf5").read_bytes()
        dev = backend.pools[0].devices[0].dev
        assert dev.launches["gp_gather"] == result.chunks  # every chunk went through the kernels
        assert backend.pools[0].counters == {"cpu_parts": 0, "oom_splits": 0}


@pytest.mark.parametrize("name, neurons, min_rows, min_chunks, options", [
    # emulated: small (the kernels run on the host); on a GPU the large check, >= 1e7 rows
    pytest.param("emulated", 400, 200_000, 12, {"workers": 2},
                 marks=pytest.mark.skipif(_emulate.host_compiler() is None, reason="no C++ compiler")),
    pytest.param("cupy", 12_000, 10_000_000, 40, {},
                 marks=[pytest.mark.gpu, pytest.mark.slow,
                        pytest.mark.skipif(cupy_devices() == 0, reason="needs CuPy and a CUDA device")]),
])
def test_synthetic_network_in_many_chunks(name, neurons, min_rows, min_chunks, options, monkeypatch, tmp_path):
    Backend(name, monkeypatch)
    check_large_synthetic(tmp_path, neurons=neurons, min_rows=min_rows, min_chunks=min_chunks, **options)


def test_neuron_keys_equal_numpy(device_backend):  # noqa: F811
    net = Network(network_path("striatum_300"))
    ctx = engine.PruneContext.from_network(net, mode="philox")
    dev = device_backend.new_device()
    with dev.device_scope():
        state = _device.DeviceState(dev, _device.RuleTables(ctx), ctx)
        dev.synchronize_device()
        k0, k1 = rng.neuron_keys(ctx.seed, np.arange(net.num_neurons))
        assert np.array_equal(dev.download(state.key0), k0)
        assert np.array_equal(dev.download(state.key1), k1)
