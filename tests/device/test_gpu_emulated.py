"""The GPU backend's own code path on an emulated device (runs everywhere, no GPU needed).

``GpuPool(..., emulate=True)`` plans chunks against a device memory budget,
uploads, launches the kernels of ``kernels/prune.cu`` with their real
arguments (compiled for the host and run over the same grid), compacts and
downloads; its philox-mode output must equal the CPU path byte for byte.
"""

import json
import logging

import numpy as np
import pytest
from gpu_helpers import (
    assert_same_bytes,
    device_state,
    network_path,
    pathway_counts,
    read_output,
    striatum_chunk_rows,
)

import gpuprune
from gpuprune import engine, plan
from gpuprune.device import abi, cupy_backend, kernels, memory, pool
from gpuprune.device import emulated as _emulate
from gpuprune.device import program as _device
from gpuprune.errors import DeviceError, InputError
from gpuprune.format import GAP_JUNCTIONS, SYNAPSES
from gpuprune.io.network import Network

pytestmark = pytest.mark.skipif(_emulate.host_compiler() is None, reason="no C++ compiler for the emulated GPU")


def _prune_gpu(case, out, **options):
    net = network_path(case[0])
    options.setdefault("workers", 1)  # on the GPU path: input reader threads
    return gpuprune.prune(net, config_file=net / case[1], rng="philox", device="gpu", output_file=out, **options)


def test_chunks_planned_to_fit_a_small_device(cpu_reference, emulated_gpu, tmp_path):
    case = ("striatum_300", "network-config-cluster.json")
    memory = 12 << 20
    pools = emulated_gpu(emulated_memory=memory)
    result = _prune_gpu(case, tmp_path / "gpu.hdf5")
    assert_same_bytes(cpu_reference(case)[0], read_output(tmp_path / "gpu.hdf5"))
    pool = pools[0]
    dev = pool.devices[0].dev
    assert result.chunks > 10  # the plan used the device's budget, not the CPU's
    assert dev.launches["gp_build_keys"] == result.chunks  # so no chunk needed splitting
    assert pool.counters == {"cpu_parts": 0, "oom_splits": 0}
    assert dev.peak <= memory  # the plan's estimate covers what the device path allocated
    assert pool.row_budget("synapses") == pool.devices[0].max_rows["synapses"] > 0


def test_chunks_split_to_fit_a_small_device(cpu_reference, emulated_gpu, tmp_path):
    case = ("striatum_300", "network-config-cluster.json")
    memory = 12 << 20
    pools = emulated_gpu(emulated_memory=memory)
    result = _prune_gpu(case, tmp_path / "gpu.hdf5", row_budget=10 ** 7)  # chunks far too big for the device
    assert_same_bytes(cpu_reference(case)[0], read_output(tmp_path / "gpu.hdf5"))
    pool = pools[0]
    dev = pool.devices[0].dev
    assert dev.launches["gp_build_keys"] > 4 * result.chunks  # chunks were split by dest range
    assert pool.counters == {"cpu_parts": 0, "oom_splits": 0}
    assert dev.peak <= memory


def test_neuron_too_big_for_the_device_runs_on_the_cpu(cpu_reference, emulated_gpu, tmp_path, caplog):
    case = ("prune3", "network-config-test-1.json")
    # 30 synapse rows fit, but every dest neuron has 36; the 16 gap junctions per neuron fit
    pools = emulated_gpu(emulated_memory=16000)
    with caplog.at_level(logging.WARNING, logger="gpuprune"):
        _prune_gpu(case, tmp_path / "gpu.hdf5")
    assert_same_bytes(cpu_reference(case)[0], read_output(tmp_path / "gpu.hdf5"))
    assert pools[0].counters == {"cpu_parts": 10, "oom_splits": 0}
    assert pools[0].devices[0].dev.launches["gp_gather"] > 0  # gap junctions ran on the device
    assert "pruning them on the CPU" in caplog.text


def test_out_of_memory_splits_instead_of_failing(cpu_reference, emulated_gpu, tmp_path, monkeypatch):
    case = ("striatum_300", "network-config.json")
    # plan with a far too small estimate of the device memory a row needs: allocations fail
    monkeypatch.setattr(_device.RuleTables, "bytes_per_row", lambda self, kind: 16)
    pools = emulated_gpu(emulated_memory=24 << 20)
    _prune_gpu(case, tmp_path / "gpu.hdf5")
    assert_same_bytes(cpu_reference(case)[0], read_output(tmp_path / "gpu.hdf5"))
    assert pools[0].counters["oom_splits"] > 0
    assert pools[0].counters["cpu_parts"] == 0  # a failed attempt's memory is free before the retry


def test_several_devices_give_the_same_result(cpu_reference, emulated_gpu, tmp_path):
    case = ("striatum_300_pop", "network-config.json")
    pools = emulated_gpu(gpus=3)
    result = _prune_gpu(case, tmp_path / "gpu.hdf5", row_budget=100_000)
    assert result.workers == 3
    assert_same_bytes(cpu_reference(case)[0], read_output(tmp_path / "gpu.hdf5"))
    assert all(w.dev.launches.get("gp_gather", 0) > 0 for w in pools[0].devices)


def test_several_reader_threads_give_the_same_result(cpu_reference, emulated_gpu, tmp_path):
    case = ("striatum_300", "network-config-cluster.json")
    pools = emulated_gpu()
    _prune_gpu(case, tmp_path / "gpu.hdf5", row_budget=30_000, workers=3)
    assert len(pools[0].read_threads) == 3
    assert_same_bytes(cpu_reference(case)[0], read_output(tmp_path / "gpu.hdf5"))


def _config_with(tmp_path, source_case, edit):
    net = network_path(source_case[0])
    config = json.loads((net / source_case[1]).read_text())
    for region in config["regions"].values():
        for con in region.get("connectivity", {}).values():
            for data in con.values():
                for key in ("pruning", "pruning_other"):
                    if isinstance(data.get(key), dict):
                        edit(data[key])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return net, path


def _compare_with_cpu(net, config, tmp_path, **options):
    cpu = gpuprune.prune(net, config_file=config, rng="philox", device="cpu", output_file=tmp_path / "c.hdf5",
                         workers=1, **options)
    gpu = gpuprune.prune(net, config_file=config, rng="philox", device="gpu", output_file=tmp_path / "g.hdf5",
                         workers=1, **options)
    assert_same_bytes(read_output(tmp_path / "c.hdf5"), read_output(tmp_path / "g.hdf5"))
    assert pathway_counts(cpu) == pathway_counts(gpu)
    return cpu


def test_expressions_in_r_use_per_row_tables(emulated_gpu, tmp_path):
    def edit(block):
        if block.get("dist_pruning"):
            block["dist_pruning"] = "exp(-(2*r)**2) * (d > 20e-6)"
            block["cluster_pruning"] = True

    net, config = _config_with(tmp_path, ("striatum_300", "network-config.json"), edit)
    emulated_gpu()
    result = _compare_with_cpu(net, config, tmp_path, row_budget=300_000)
    assert 0 < result.synapses_after < result.synapses_before


@pytest.mark.parametrize("dense", [True, False])
def test_distance_values_outside_0_1_warn_as_on_the_cpu(emulated_gpu, tmp_path, monkeypatch, caplog, dense):
    """An expression above 1 near the soma: the device path warns the CPU's line (dense and per-row tables)."""
    if not dense:
        monkeypatch.setattr(memory, "DENSE_TABLE_FACTOR", 0)
        monkeypatch.setattr(memory, "DENSE_TABLE_SLACK", 0)

    def edit(block):
        if block.get("dist_pruning"):
            block["dist_pruning"] = "2*exp(-d/100e-6)"

    net, config = _config_with(tmp_path, ("striatum_300", "network-config.json"), edit)
    lines = {}
    for device in ("cpu", "gpu"):
        caplog.clear()
        if device == "gpu":
            emulated_gpu()
        with caplog.at_level("WARNING", logger="gpuprune"):
            gpuprune.prune(net, config_file=config, device=device, workers=1, output_file=tmp_path / f"{device}.hdf5")
        lines[device] = sorted(r.getMessage() for r in caplog.records if "distance expression" in r.getMessage())
    assert lines["cpu"] and len(lines["gpu"]) == len(lines["cpu"])
    assert all("2*exp(-d/100e-6)" in m and "keep every one" in m for m in lines["gpu"])
    assert read_output(tmp_path / "cpu.hdf5")["network/synapses"].tobytes() == \
        read_output(tmp_path / "gpu.hdf5")["network/synapses"].tobytes()


def test_sparse_distances_use_per_row_tables(emulated_gpu, tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "DENSE_TABLE_FACTOR", 0)
    monkeypatch.setattr(memory, "DENSE_TABLE_SLACK", 0)
    emulated_gpu()
    case = ("prune3", "network-config-test-5.json")
    net = network_path(case[0])
    result = _compare_with_cpu(net, net / case[1], tmp_path)
    assert result.synapses_after == 100  # Snudda's test: distance pruning keeps exactly 100


def test_relative_distance_error_is_the_cpu_error(emulated_gpu, tmp_path, monkeypatch):
    net_path = network_path("prune3")
    pruner = gpuprune.Pruner(net_path, config_file=net_path / "network-config-test-5.json")
    pruner.network.max_soma_distance_dend = pruner.network.max_soma_distance_dend * 1e-3  # r > 1
    with pytest.raises(InputError) as cpu_error:
        pruner.prune(tmp_path / "c.hdf5", device="cpu", workers=1)
    emulated_gpu()
    with pytest.raises(InputError) as gpu_error:
        pruner.prune(tmp_path / "g.hdf5", device="gpu")
    assert str(gpu_error.value) == str(cpu_error.value)
    assert "max_soma_distance_dend" in str(gpu_error.value)
    assert not (tmp_path / "g.hdf5").exists()


# -- the device engine on single chunks --------------------------------------------------------


@pytest.fixture(scope="module")
def striatum_chunk():
    """All synapse rows onto dest neurons 40..59 of striatum_300 (several files, unsorted across them)."""
    return striatum_chunk_rows()


def _on_device(state, kind, rows, lo, hi):
    dev = state.dev
    dist = {k: dev.upload(v) for k, v in _device.distance_tables(state.ctx, kind, rows).items()}
    return _device.prune_on_device(state, kind, dev.upload(rows.reshape(-1)), dist, rows, lo, hi)


@pytest.mark.parametrize("share", [True, False])
def test_device_chunk_equals_engine_chunk(striatum_chunk, share):
    net, part, rows = striatum_chunk
    state, ctx = device_state(net, share_parameter_id=share)
    expected = engine.prune_chunk(ctx, SYNAPSES, rows, part.dest_lo, part.dest_hi)
    got = _on_device(state, SYNAPSES, rows, part.dest_lo, part.dest_hi)
    assert got.rows.dtype == np.int32 and got.rows.tobytes() == expected.rows.tobytes()
    assert np.array_equal(got.stats, expected.stats) and got.num_putative == expected.num_putative
    assert state.dev.in_use < 2 ** 20  # chunk temporaries were freed; the run's tables stay


def test_device_chunk_of_shuffled_files_and_empty_chunk(striatum_chunk):
    net, part, rows = striatum_chunk
    state, ctx = device_state(net)
    # rows of one pair spread over many "files": any file order gives a stable sort
    blocks = np.array_split(rows, 7)
    mixed = np.concatenate(blocks[::-1])
    expected = engine.prune_chunk(ctx, SYNAPSES, mixed, part.dest_lo, part.dest_hi)
    got = _on_device(state, SYNAPSES, mixed, part.dest_lo, part.dest_hi)
    assert got.rows.tobytes() == expected.rows.tobytes()
    empty = _on_device(state, GAP_JUNCTIONS, np.zeros((0, 11), np.int32), 0, 1)
    assert empty.rows.shape == (0, 11) and empty.num_putative == 0 and not empty.stats.any()


@pytest.mark.parametrize("column, value", [(1, 10_000), (0, -1), (6, 70_000)])
def test_bad_rows_give_the_engine_error(striatum_chunk, column, value):
    net, part, rows = striatum_chunk
    state, ctx = device_state(net)
    bad = rows.copy()
    bad[5, column] = value
    with pytest.raises(InputError) as cpu:
        engine.prune_chunk(ctx, SYNAPSES, bad, part.dest_lo, part.dest_hi)
    with pytest.raises(InputError) as gpu:
        _on_device(state, SYNAPSES, bad, part.dest_lo, part.dest_hi)
    assert str(gpu.value) == str(cpu.value)


def test_split_chunk_partitions_rows(striatum_chunk):
    net, _, _ = striatum_chunk
    sources = net.sources["synapses"]
    for chunk in net.plan("synapses", 300_000):
        parts = plan.split(sources, chunk, 20_000, 1000)
        assert parts[0][0].dest_lo >= chunk.dest_lo and parts[-1][0].dest_hi <= chunk.dest_hi
        assert all(a.dest_hi <= b.dest_lo for (a, _), (b, _) in zip(parts[:-1], parts[1:], strict=True))
        assert sum(p.num_rows for p, _ in parts) == chunk.num_rows
        for p, fits in parts:
            assert fits == (p.num_rows <= 20_000)
            assert fits or p.dest_hi - p.dest_lo == 1  # only a lone neuron may exceed the budget
            assert p.num_rows == sum(r1 - r0 for _, r0, r1, _, _ in p.slices) > 0
    chunk = net.plan("synapses", 10 ** 9)[0]
    parts = plan.split(sources, chunk, 10 ** 9, 64)
    assert all(p.dest_hi - p.dest_lo <= 64 for p, _ in parts)  # key width limits the dest span


# -- the emulator itself --------------------------------------------------------------------------


def test_launch_arguments_are_checked_like_cupy_needs_them():
    dev, other = _emulate.EmulatedBackend(0), _emulate.EmulatedBackend(1)
    k0, k1 = dev.empty(4, np.uint32), dev.empty(4, np.uint32)
    dev.launch("gp_neuron_keys", 4, abi.Args({"num_neurons": 4, "seed": 7, "key0": k0, "key1": k1}))
    from gpuprune import rng

    assert np.array_equal(dev.download(k0), rng.neuron_keys(7, np.arange(4))[0])
    bad_calls = [
        ({"num_neurons": 4, "seed": 7, "key0": dev.empty(4, np.int32), "key1": k1}, "uint32"),  # wrong dtype
        ({"num_neurons": 4, "seed": 7, "key0": np.zeros(4, np.uint32), "key1": k1}, "uploaded"),  # host array
        ({"num_neurons": 4, "seed": 7, "key0": other.empty(4, np.uint32), "key1": k1}, "mixing devices"),
    ]
    for fields, message in bad_calls:
        with pytest.raises((TypeError, ValueError), match=message):
            dev.launch("gp_neuron_keys", 4, abi.Args(fields))
    with pytest.raises(TypeError, match="one gpuprune.device.abi.Args"):
        dev.launch("gp_neuron_keys", 4, (np.int64(4), np.uint64(7), k0, k1))  # positional lists are gone
    with pytest.raises(KeyError, match="no field"):
        abi.Args()["seeds"] = 7


def test_emulated_memory_is_limited():
    dev = _emulate.EmulatedBackend(memory=1000)
    a = dev.empty(100, np.int64)
    with pytest.raises(_emulate.EmulatedOutOfMemory):
        dev.empty(100, np.int64)
    del a
    dev.empty(100, np.int64)  # freed memory is available again
    assert dev.peak == 800


@pytest.mark.parametrize("memory, message", [(4500, "holds no chunk row"), (2000, "do not fit")])
def test_device_too_small_is_an_error(memory, message):
    net = Network(network_path("prune3"))
    ctx = engine.PruneContext.from_network(net, mode="philox")
    with pytest.raises(DeviceError, match=message):
        pool.GpuPool(ctx, net, emulate=True, emulated_memory=memory)


def test_kernel_signatures_are_parsed():
    names = _emulate.kernel_names(kernels.kernel_source())
    assert names == ["gp_neuron_keys", "gp_build_keys", "gp_group_starts", "gp_group_init", "gp_row_rules",
                     "gp_group_limits", "gp_cluster_counts", "gp_cluster_select", "gp_gather", "gp_stats",
                     "gp_tune_kept"]
    # every kernel takes the one struct generated from the field list of gpuprune/device/abi.py
    assert abi.FIELDS["n"] == "gp_i64" and abi.FIELDS["order"] == "const gp_i64*"
    assert abi.pointer_dtype(abi.FIELDS["order"]) == np.int64
    with pytest.raises(ValueError, match="cannot emulate"):
        _emulate.kernel_names('extern "C" __global__ void k(float* x) {}')


# -- device selection and options --------------------------------------------------------------


def test_gpu_without_a_device_is_a_one_line_error(tmp_path):
    if cupy_backend.device_count() > 0:
        pytest.skip("a GPU is present")
    net = network_path("prune3")
    with pytest.raises(DeviceError) as exc:
        gpuprune.prune(net, device="gpu", output_file=tmp_path / "o.hdf5")
    assert "\n" not in str(exc.value) and "no GPU" in str(exc.value)
    result = gpuprune.prune(net, device="auto", output_file=tmp_path / "o.hdf5", workers=1)
    assert result.device == "cpu"
    with pytest.raises(DeviceError, match="CPU only"):
        pool.GpuPool(engine.PruneContext.from_network(Network(net), mode="snudda"), Network(net), emulate=True)


@pytest.mark.parametrize("text, size", [(1024, 1024), ("12G", 12 << 30), ("500M", 500 << 20), ("1.5GiB", 3 << 29),
                                        ("64kb", 64 << 10), ("4096", 4096)])
def test_parse_memory_size(text, size):
    assert memory.parse_memory_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", True])
def test_parse_memory_size_rejects(text):
    with pytest.raises(InputError):
        memory.parse_memory_size(text)
