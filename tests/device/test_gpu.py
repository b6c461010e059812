"""On a real GPU: ``--device gpu`` gives the bytes ``--device cpu`` gives (philox mode).

Marked ``gpu``; skipped unless CuPy imports and sees a CUDA device.
"""

import numpy as np
import pytest
from gpu_helpers import (
    PHILOX_CASES,
    assert_same_bytes,
    case_id,
    check_large_synthetic,
    network_path,
    pathway_counts,
    read_output,
)

import gpuprune
from gpuprune import engine, rng
from gpuprune.device import cupy_backend, pool
from gpuprune.device import program as _device
from gpuprune.io.network import Network


def _gpu_count():
    try:
        import cupy
    except Exception:  # noqa: BLE001 - no CuPy, or a broken CUDA install
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001
        return 0


GPUS = _gpu_count()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(GPUS == 0, reason="needs CuPy and a CUDA device")]


def test_device_count_and_auto():
    assert cupy_backend.device_count() == GPUS
    assert gpuprune.Pruner(network_path("prune3"))._device("auto", "philox") == "gpu"


@pytest.mark.parametrize("case", PHILOX_CASES, ids=case_id)
def test_gpu_matches_cpu(case, cpu_reference, tmp_path):
    net = network_path(case[0])
    result = gpuprune.prune(net, config_file=net / case[1], rng="philox", device="gpu",
                            output_file=tmp_path / "gpu.hdf5")
    assert result.device == "gpu"
    expected, counts = cpu_reference(case)
    assert_same_bytes(expected, read_output(tmp_path / "gpu.hdf5"))
    assert pathway_counts(result) == counts


@pytest.mark.slow
def test_gpu_matches_cpu_on_ten_million_rows_in_many_chunks(tmp_path):
    """The issue's large check: >= 1e7 putative rows (synthetic), pruned on the GPU in >= 40 chunks."""
    check_large_synthetic(tmp_path, neurons=12_000, min_rows=10_000_000, min_chunks=40)


def test_small_budget_and_all_gpus_give_the_same_result(cpu_reference, monkeypatch, tmp_path):
    case = ("striatum_300", "network-config-cluster.json")
    pools, real = [], pool.GpuPool

    def make(ctx, net, **kw):
        pools.append(real(ctx, net, memory_limit="16M", **kw))
        return pools[-1]

    monkeypatch.setattr(pool, "GpuPool", make)
    net = network_path(case[0])
    gpuprune.prune(net, config_file=net / case[1], device="gpu", output_file=tmp_path / "gpu.hdf5")
    assert_same_bytes(cpu_reference(case)[0], read_output(tmp_path / "gpu.hdf5"))
    assert pools[0].workers == GPUS and pools[0].counters["oom_splits"] == 0


def test_device_philox_and_keys_equal_numpy():
    import cupy

    net = Network(network_path("striatum_300"))
    ctx = engine.PruneContext.from_network(net, mode="philox")
    dev = cupy_backend.CupyBackend(0)
    with dev.device_scope():
        state = _device.DeviceState(dev, _device.RuleTables(ctx), ctx)
        cupy.cuda.Device().synchronize()
        k0, k1 = rng.neuron_keys(ctx.seed, np.arange(net.num_neurons))
        assert np.array_equal(dev.download(state.key0), k0)
        assert np.array_equal(dev.download(state.key1), k1)
