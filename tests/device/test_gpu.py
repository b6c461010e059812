"""Checks only a real GPU can make (device count, every visible GPU); the comparisons with the CPU that
run on every backend are in test_backends.py.

Marked ``gpu``; skipped unless CuPy imports and sees a CUDA device.
"""

import pytest
from gpu_helpers import (
    assert_same_bytes,
    cupy_devices,
    network_path,
    read_output,
)

import gpuprune
from gpuprune.device import cupy_backend, pool

GPUS = cupy_devices()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(GPUS == 0, reason="needs CuPy and a CUDA device")]


def test_device_count_and_auto():
    assert cupy_backend.device_count() == GPUS
    assert gpuprune.Pruner(network_path("prune3"))._device("auto", "philox") == "gpu"


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
