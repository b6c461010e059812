"""Issue 10 on the emulated device: failures a GPU would hit, injected where they happen.

Every allocation and upload of a run can fail (device memory, pinned host memory); the output must
still be the CPU's byte for byte, and nothing a launched kernel may still read is ever freed
before its stream is synchronised.  Also: a wrong sort cannot pass, the soft_max/mu2 tables stay
consistent after a failed upload, the byte model is the one the emulator reserves by, and chunk
sizing on a large device is capped (several chunks, not one).
"""

import numpy as np
import pytest
from gpu_helpers import assert_same_bytes, device_state, network_path, read_output, striatum_chunk_rows

import gpuprune
from gpuprune import engine
from gpuprune.device import abi, memory, pool
from gpuprune.device import emulated as _emulate
from gpuprune.device import program as _device
from gpuprune.errors import DeviceError
from gpuprune.format import SYNAPSES

pytestmark = pytest.mark.skipif(_emulate.host_compiler() is None, reason="no C++ compiler for the emulated GPU")
CASE = ("striatum_300", "network-config.json")
REAL_POOL = pool.GpuPool


def _pools_with(monkeypatch, configure, **options):
    """``device="gpu"`` runs on an emulated pool; ``configure(pool)`` runs once the pool exists."""
    made = []

    def make(ctx, net, **kw):
        p = REAL_POOL(ctx, net, emulate=True, **options, **kw)
        configure(p)
        made.append(p)
        return p

    monkeypatch.setattr(pool, "GpuPool", make)
    monkeypatch.setattr(gpuprune.api, "_gpu_available", lambda: True)
    return made


class FailOnce:
    """Fail the ``k``-th allocation or upload (counting every op), once; count them all."""

    def __init__(self, k=None, ops=None):
        self.k, self.ops, self.calls, self.failed = k, ops, 0, None

    def __call__(self, op, nbytes):
        if self.ops is not None and op not in self.ops:
            return False
        self.calls += 1
        if self.failed is None and self.calls == self.k:
            self.failed = op
            return True
        return False


def _prune(net, out, **kw):
    return gpuprune.prune(net, config_file=net / CASE[1], rng="philox", output_file=out, workers=1, **kw)


@pytest.mark.slow
def test_injected_failure_at_every_allocation_and_upload(cpu_reference, monkeypatch, tmp_path):
    net = network_path(CASE[0])
    expected = cpu_reference(CASE)[0]
    counter = FailOnce()
    pools = _pools_with(monkeypatch, lambda p: setattr(p.devices[0].dev, "inject", counter))
    _prune(net, tmp_path / "count.hdf5", device="gpu", row_budget=200_000)
    total = counter.calls
    assert total > 30 and not pools[0].devices[0].dev.freed_in_flight
    failed_ops = set()
    required = {"empty", "upload", "argsort", "flatnonzero", "pinned"}
    # every 40th op, then the first op of each required kind the sampling missed (the op count
    # depends on the chunking, so a fixed stride alone need not land on each kind)
    injections = [FailOnce(k) for k in range(1, total + 1, max(1, total // 40))]
    injections += [None] * len(required)
    for inject in injections:
        if inject is None:
            missing = sorted(required - failed_ops)
            if not missing:
                break
            inject = FailOnce(1, ops={missing[0]})
        pools = _pools_with(monkeypatch, lambda p, i=inject: setattr(p.devices[0].dev, "inject", i))
        _prune(net, tmp_path / "gpu.hdf5", device="gpu", row_budget=200_000)
        assert_same_bytes(expected, read_output(tmp_path / "gpu.hdf5"))
        dev = pools[0].devices[0].dev
        assert dev.freed_in_flight == [], f"failure {inject.k} ({inject.failed}): freed while a kernel may read it"
        failed_ops.add(inject.failed)
        if inject.failed != "pinned":  # a pinned read buffer that fails is replaced by pageable memory
            assert pools[0].counters["oom_splits"] + pools[0].counters["cpu_parts"] >= 1
    assert {"empty", "upload", "argsort", "flatnonzero", "pinned"} <= failed_ops


def test_without_the_synchronisation_the_model_sees_the_race(monkeypatch, tmp_path):
    """The check above has teeth: with the error path's stream synchronisation taken out, some
    injected failure frees a staged upload while the chunk's kernels may still read it."""
    net = network_path(CASE[0])
    monkeypatch.setattr(pool._DeviceWorker, "_quiesce", lambda self: None)
    for k in range(1, 60, 7):
        inject = FailOnce(k)
        pools = _pools_with(monkeypatch, lambda p, i=inject: setattr(p.devices[0].dev, "inject", i))
        _prune(net, tmp_path / "gpu.hdf5", device="gpu", row_budget=200_000)
        if pools[0].devices[0].dev.freed_in_flight:
            return
    pytest.fail("no injected failure freed an array in flight without the synchronisation")


def test_pinned_memory_failure_splits_the_chunk(cpu_reference, monkeypatch, tmp_path):
    """No pinned memory at all: rows are read into pageable memory, uploads fail and are retried."""
    net = network_path(CASE[0])
    failed = []
    pools = _pools_with(monkeypatch, lambda p: setattr(p.devices[0].dev, "inject",
                                                       lambda op, n: op == "pinned" and not failed.append(op)))
    _prune(net, tmp_path / "gpu.hdf5", device="gpu")
    assert failed and pools[0].counters["oom_splits"] >= 1 and pools[0].counters["cpu_parts"] == 0
    assert_same_bytes(cpu_reference(CASE)[0], read_output(tmp_path / "gpu.hdf5"))
    assert pools[0].devices[0].dev.freed_in_flight == []


def test_the_stream_model_sees_a_block_freed_under_a_running_kernel():
    dev = _emulate.EmulatedBackend()
    copy, compute = dev.new_stream(), dev.new_stream()
    keep = []
    k0 = dev.upload(np.zeros(4, np.uint32), copy, keep)
    k1 = dev.upload(np.zeros(4, np.uint32), copy, keep)
    with dev.stream_scope(compute):
        dev.launch("gp_neuron_keys", 4, abi.Args({"num_neurons": 4, "seed": 1, "key0": k0, "key1": k1}))
    del k0  # allocated on the copy stream, still read on the compute stream
    assert len(dev.freed_in_flight) == 1
    dev.synchronize(compute)
    del k1
    assert len(dev.freed_in_flight) == 1


@pytest.fixture(scope="module")
def chunk():
    return striatum_chunk_rows()


def _run(state, rows, part):
    dev = state.dev
    dist = {k: dev.upload(v) for k, v in _device.distance_tables(state.ctx, SYNAPSES, rows).items()}
    return _device.prune_on_device(state, SYNAPSES, dev.upload(rows.reshape(-1)), dist, rows, part.dest_lo,
                                   part.dest_hi)


def test_a_wrong_sort_never_passes(chunk):
    net, part, rows = chunk
    state, _ = device_state(net)
    state.dev.wrong_sort = True  # CuPy <= 14.0 after thrust's workspace allocation failed
    with pytest.raises(DeviceError, match="out of order"):
        _run(state, rows, part)
    state.dev.wrong_sort = False
    assert _run(state, rows, part).num_putative == rows.shape[0]


def test_tables_stay_consistent_after_a_failed_upload(chunk):
    net, part, rows = chunk
    state, ctx = device_state(net)
    before = state.p_keep, state.p_mu, state.table_stride
    uploads = FailOnce(2, ops={"upload"})  # the second of the two table uploads
    state.dev.inject = uploads
    with pytest.raises(_emulate.EmulatedOutOfMemory):
        state.probability_tables(5000)
    assert (state.p_keep, state.p_mu, state.table_stride) == before  # nothing half-assigned
    state.dev.inject = None
    expected = engine.prune_chunk(ctx, SYNAPSES, rows, part.dest_lo, part.dest_hi)
    assert _run(state, rows, part).rows.tobytes() == expected.rows.tobytes()
    n_sets = max(1, state.tables.n_sets)
    assert state.p_keep.size == state.p_mu.size == n_sets * state.table_stride  # stride matches the tables


def test_the_byte_model_covers_what_a_chunk_allocates(chunk):
    """The emulator reserves by memory.py; the program's peak stays within the model, and near it."""
    net, part, rows = chunk
    # every row its own group: the most per-group arrays a chunk can have
    rows = rows.copy()
    assert rows.shape[0] < 2 ** 16
    rows[:, 6] = np.arange(rows.shape[0])  # a channel type per row (no parameters: every group dropped)
    state, _ = device_state(net)
    dev = state.dev
    dist = {k: dev.upload(v) for k, v in _device.distance_tables(state.ctx, SYNAPSES, rows).items()}
    d_rows = dev.upload(rows.reshape(-1))
    base = dev.in_use
    dev.peak = base
    _device.prune_on_device(state, SYNAPSES, d_rows, dist, rows, part.dest_lo, part.dest_hi)
    n, t = rows.shape[0], state.tables
    used = dev.peak - base
    model = n * (memory.WORK_BYTES_PER_ROW + 4 * SYNAPSES.width + memory.CLUSTER_BYTES_PER_ROW * t.any_cluster) \
        + t.fixed_bytes(SYNAPSES)
    assert used <= model, f"the program allocates {used:,} bytes, the model plans {model:,}"
    assert used >= 0.5 * n * memory.WORK_BYTES_PER_ROW, "the model plans far more than the program allocates"
    assert memory.WORK_BYTES_PER_ROW == sum(b for _, b in memory.WORK_ALLOCATIONS)


def test_large_device_plans_several_chunks(cpu_reference, monkeypatch, tmp_path):
    net = network_path(CASE[0])
    monkeypatch.setattr(memory, "MAX_CHUNK_ROWS", 150_000)
    pools = _pools_with(monkeypatch, lambda p: None, emulated_memory=64 << 30)
    result = _prune(net, tmp_path / "gpu.hdf5", device="gpu", row_budget=10 ** 9)
    p = pools[-1]
    assert p.devices[0].max_rows["synapses"] == 150_000  # the cap, not 80 % of 64 GiB
    assert p.devices[0].dev.launches["gp_build_keys"] >= 6  # so reading, upload and compute overlap
    assert result.chunks >= 1
    assert_same_bytes(cpu_reference(CASE)[0], read_output(tmp_path / "gpu.hdf5"))


def test_host_memory_bounds_the_chunk(monkeypatch):
    kind = SYNAPSES
    rows = memory.max_chunk_rows(kind, 1 << 40, 0, 100, host_available=1 << 30)
    assert rows == int((1 << 30) * memory.HOST_MEMORY_FRACTION) // (memory.STAGED_CHUNKS
                                                                     * memory.host_bytes_per_row(kind))
    assert memory.max_chunk_rows(kind, 1 << 40, 0, 100, host_available=1 << 50) == memory.MAX_CHUNK_ROWS

