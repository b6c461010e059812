"""Shared fixtures: the real Snudda networks of ../shared/data, copied before any test writes."""

import os
import shutil
import stat
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GPUPRUNE_TEST_DATA", ROOT.parent / "shared" / "data"))

#: (network, config, Snudda's output for it) for every fixture of ../shared/data
SNUDDA_CASES = (
    [("prune3", "network-config.json", "network-synapses-default.hdf5")]
    + [("prune3", f"network-config-test-{i}.json", f"network-synapses-test-{i}.hdf5") for i in range(1, 10)]
    + [
        ("striatum_300", "network-config.json", "network-synapses-default.hdf5"),
        ("striatum_300", "network-config-cluster.json", "network-synapses-cluster.hdf5"),
        ("striatum_300", "network-config-seed42.json", "network-synapses-seed42.hdf5"),
        ("striatum_300_pop", "network-config.json", "network-synapses-default.hdf5"),
    ]
)


#: the one skip reason of every test that needs a fixture network (rules and both randomness modes
#: are still exercised on generated networks without them: tests/api, tests/synth, tests/test_golden.py)
NO_FIXTURES = f"needs the Snudda fixture networks of shared/data, not found at {DATA} (set GPUPRUNE_TEST_DATA)"


def data_path(*parts):
    path = DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI", "").lower() == "true":  # CI must never go green by skipping the real networks
            pytest.fail(f"CI: fixture data missing: {path}")
        pytest.skip(NO_FIXTURES)
    return path


def copy_network(name, dest):
    """Copy a fixture network (without its expected outputs) to ``dest`` with write permission."""
    src = data_path(name)
    target = Path(dest) / name
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("expected"))
    for p in [target, *target.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return target


@pytest.fixture
def prune3(tmp_path):
    return copy_network("prune3", tmp_path)


@pytest.fixture
def striatum(tmp_path):
    return copy_network("striatum_300", tmp_path)


@pytest.fixture(scope="session")
def data():
    return data_path()


# -- GPU backend (tests/device/) --------------


@pytest.fixture(scope="session", autouse=True)
def _host_build_cache(tmp_path_factory):
    """Host builds of the kernels (emulator, host twins) go to a temp folder, made once per session."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPUPRUNE_CACHE_DIR", str(tmp_path_factory.mktemp("gpuprune-build")))
        yield


@pytest.fixture(scope="session")
def cpu_reference(tmp_path_factory):
    """``reference(case)`` -> (row arrays, pathway counts) of ``device="cpu"`` in philox mode, once per case."""
    import functools

    from gpu_helpers import case_id, network_path, pathway_counts, read_output

    import gpuprune

    out_dir = tmp_path_factory.mktemp("cpu-reference")

    @functools.cache
    def reference(case, **options):
        net = network_path(case[0])
        out = out_dir / f"{case_id(case)}.hdf5"
        result = gpuprune.prune(net, config_file=net / case[1], rng="philox", device="cpu", output_file=out,
                                workers=1, **options)
        return read_output(out), pathway_counts(result)

    return reference


@pytest.fixture
def emulated_gpu(monkeypatch):
    """``configure(**pool_options)``: ``device="gpu"`` then runs on emulated GPUs; returns the pools made."""
    from gpuprune import api
    from gpuprune.device import pool as gpu_pool

    def configure(**options):
        pools, real = [], gpu_pool.GpuPool

        def make(ctx, net, **kw):
            pool = real(ctx, net, emulate=True, **{**options, **kw})
            pools.append(pool)
            return pool

        monkeypatch.setattr(gpu_pool, "GpuPool", make)
        monkeypatch.setattr(api, "_gpu_available", lambda: True)
        return pools

    return configure


# -- CI: a skip is a failure unless it needs a GPU ---------------------------------------------------

#: the only skips allowed when CI=true: tests that need a CUDA device (CI has none), and the test
#: that checks behaviour *without* a GPU when one is present
CI_ALLOWED_SKIPS = ("needs CuPy and a CUDA device", "no GPU: needs CuPy and a CUDA device", "a GPU is present",
                    # CI runs as root, which ignores file modes; the injected-error test covers that path
                    "root writes into a read-only folder")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (``CI=true``), turn a skip whose reason is not GPU-only into a failure.

    A suite must not go green because a fixture folder, Snudda, ipyparallel, a compiler or NVRTC went
    missing: those skips are fine on a developer's laptop, never in CI.
    """
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() != "true" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not any(allowed in reason for allowed in CI_ALLOWED_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"CI=true: skipped for a reason that is not GPU-only: {reason}"
