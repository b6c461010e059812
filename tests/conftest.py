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


def data_path(*parts):
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test data not found: {path} (set GPUPRUNE_TEST_DATA to the shared/data folder)")
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
