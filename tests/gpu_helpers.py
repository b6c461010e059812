"""Helpers of the GPU-backend tests (emulated and real devices)."""

from pathlib import Path

import h5py
import pytest
from conftest import DATA

#: every fixture network and config: philox mode must prune each identically on CPU and GPU
PHILOX_CASES = (
    [("prune3", "network-config.json")]
    + [("prune3", f"network-config-test-{i}.json") for i in range(1, 10)]
    + [("striatum_300", "network-config.json"), ("striatum_300", "network-config-cluster.json"),
       ("striatum_300", "network-config-seed42.json"), ("striatum_300_pop", "network-config.json")]
)
DATASETS = ("network/synapses", "network/gap_junctions")


def case_id(case):
    name = case[1].removeprefix("network-config").removesuffix(".json").strip("-")
    return f"{case[0]}-{name or 'default'}"


def network_path(name):
    """A fixture network, read in place (the GPU tests never write into it)."""
    path = Path(DATA) / name
    if not path.is_dir():
        pytest.skip(f"test data not found: {path} (set GPUPRUNE_TEST_DATA to the shared/data folder)")
    return path


def read_output(path):
    """The row datasets of an output file."""
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in DATASETS}


def pathway_counts(result):
    return [(p.pre, p.post, p.name, p.putative_rows, p.kept_rows, p.putative_pairs, p.connected_pairs)
            for p in result.pathways]


def assert_same_bytes(expected, actual):
    """The synapse and gap junction arrays are byte-identical (dtype, shape and bytes)."""
    for k in DATASETS:
        a, b = expected[k], actual[k]
        assert (a.dtype, a.shape) == (b.dtype, b.shape), k
        assert a.tobytes() == b.tobytes(), f"{k}: {int((a != b).any(axis=1).sum())} rows differ"


def check_large_synthetic(tmp_path, neurons, min_rows, min_chunks, **gpu_options):
    """A synthetic network of ``neurons`` (1000 putative synapses each, at least ``min_rows`` rows in
    all), pruned on the GPU in at least ``min_chunks`` chunks, gives the CPU's bytes (DESIGN §4:
    philox draws do not depend on the chunking)."""
    import gpuprune
    from gpuprune import synth

    net = tmp_path / "synthetic"
    summary = synth.generate_network(net, num_neurons=neurons, synapses_per_neuron=1000, seed=7)
    total = summary["num_synapses"] + summary["num_projection_synapses"] + summary["num_gap_junctions"]
    assert total >= min_rows
    cpu = gpuprune.prune(net, rng="philox", device="cpu", output_file=tmp_path / "cpu.hdf5")
    gpu = gpuprune.prune(net, rng="philox", device="gpu", output_file=tmp_path / "gpu.hdf5",
                         row_budget=max(1000, total // (2 * min_chunks)), **gpu_options)
    assert gpu.device == "gpu" and gpu.chunks >= min_chunks
    assert cpu.synapses_after > 0 and cpu.gap_junctions_after > 0
    assert_same_bytes(read_output(tmp_path / "cpu.hdf5"), read_output(tmp_path / "gpu.hdf5"))
    assert pathway_counts(gpu) == pathway_counts(cpu)
    assert (tmp_path / "gpu.hdf5").read_bytes() == (tmp_path / "cpu.hdf5").read_bytes()  # the whole file
    return gpu


def cupy_devices():
    """CUDA devices CuPy sees; 0 without CuPy, without a device, or when the query raises."""
    try:
        import cupy
    except Exception:  # noqa: BLE001 - no CuPy, or a broken CUDA install
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001
        return 0


class Backend:
    """One backend of the device suite: ``numpy`` (the CPU engine), ``emulated`` or ``cupy``.

    ``device`` is what to pass to ``gpuprune.prune``; ``pools`` collects the GPU pools made;
    ``new_device(memory)`` gives a device backend object for single-chunk tests (None for numpy).
    """

    def __init__(self, name, monkeypatch, **pool_options):
        from gpuprune import api
        from gpuprune.device import pool

        self.name, self.pools = name, []
        self.device = "cpu" if name == "numpy" else "gpu"
        if name == "emulated":
            real = pool.GpuPool

            def make(ctx, net, **kw):
                p = real(ctx, net, emulate=True, **{**pool_options, **kw})
                self.pools.append(p)
                return p

            monkeypatch.setattr(pool, "GpuPool", make)
            monkeypatch.setattr(api, "_gpu_available", lambda: True)
        elif name == "cupy":
            real = pool.GpuPool

            def make(ctx, net, **kw):
                p = real(ctx, net, **{**pool_options, **kw})
                self.pools.append(p)
                return p

            monkeypatch.setattr(pool, "GpuPool", make)

    def new_device(self, memory=None):
        if self.name == "emulated":
            from gpuprune.device import emulated

            return emulated.EmulatedBackend(memory=memory or emulated.DEFAULT_MEMORY)
        if self.name == "cupy":
            from gpuprune.device import cupy_backend

            return cupy_backend.CupyBackend(0)
        return None


def _host_compiler():
    from gpuprune.device import emulated

    return emulated.host_compiler()


#: the backends of the device suite; cupy tests carry the ``gpu`` marker and skip without a device
BACKENDS = [
    "numpy",
    pytest.param("emulated", marks=pytest.mark.skipif(_host_compiler() is None, reason="no C++ compiler")),
    pytest.param("cupy", marks=[pytest.mark.gpu,
                                pytest.mark.skipif(cupy_devices() == 0, reason="needs CuPy and a CUDA device")]),
]
DEVICE_BACKENDS = BACKENDS[1:]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """The backend a device-suite test runs on (one test, every backend)."""
    return Backend(request.param, monkeypatch)


@pytest.fixture(params=DEVICE_BACKENDS)
def device_backend(request, monkeypatch):
    """The same, for tests that need a device (emulated or CuPy)."""
    return Backend(request.param, monkeypatch)


def striatum_chunk_rows():
    """``(network, chunk, rows)``: all synapse rows onto dest neurons 40..59 of striatum_300 (several files,
    unsorted across them), for the device engine's single-chunk tests."""
    from gpuprune import plan
    from gpuprune.format import SYNAPSES
    from gpuprune.io.network import Network
    from gpuprune.io.reader import close_files, read_chunk

    net = Network(network_path("striatum_300"))
    chunk = next(c for c in net.plan("synapses", 10 ** 9) if c.dest_lo == 0)
    part = plan.split(net.sources["synapses"], chunk, 10 ** 9, 20)[2][0]
    rows, _ = read_chunk(net.spec()["files"]["synapses"], SYNAPSES, part)
    close_files()
    return net, part, rows


def device_state(net, memory=None, **ctx_options):
    """``(DeviceState, PruneContext)`` of ``net`` in philox mode on a fresh emulated device."""
    from gpuprune import engine
    from gpuprune.device import emulated, program

    ctx = engine.PruneContext.from_network(net, mode="philox", **ctx_options)
    dev = emulated.EmulatedBackend(memory=emulated.DEFAULT_MEMORY if memory is None else memory)
    return program.DeviceState(dev, program.RuleTables(ctx), ctx), ctx
