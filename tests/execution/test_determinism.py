"""philox output is byte-identical for any chunking, worker count and file order."""

import shutil

import h5py
import numpy as np
import pytest
from conftest import copy_network, data_path
from helpers import assert_same_rows

import gpuprune
from gpuprune.api import Pruner


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.hdf5"
    r = gpuprune.prune(data_path("striatum_300"), output_file=out, device="cpu", workers=1, row_budget=10 ** 8)
    assert r.chunks == 2  # one chunk of synapses, one of gap junctions
    return out


@pytest.mark.parametrize("budget,workers", [(200_000, 1), (7_000, 2), (50_000, 2)])
def test_row_budgets_and_workers(reference, tmp_path, budget, workers):
    out = tmp_path / "o.hdf5"
    r = gpuprune.prune(data_path("striatum_300"), output_file=out, device="cpu", workers=workers,
                       row_budget=budget)
    if budget == 7_000:
        assert r.chunks > 100
    assert_same_rows(out, reference)


def test_whole_output_file_is_byte_identical(reference, tmp_path):
    """Not only the arrays: the file itself (metadata, chunk layout, compressed bytes) does not depend
    on the chunking or the number of workers."""
    out = tmp_path / "o.hdf5"
    gpuprune.prune(data_path("striatum_300"), output_file=out, device="cpu", workers=2, row_budget=7_000)
    assert out.read_bytes() == reference.read_bytes()


def test_file_read_order(reference, tmp_path):
    pruner = Pruner(data_path("striatum_300"))
    hids = [sf.hid for sf in pruner.network.sources["synapses"]]
    order = np.random.default_rng(3).permutation(hids).tolist()
    out = tmp_path / "o.hdf5"
    pruner.prune(out, device="cpu", workers=1, row_budget=100_000, file_order=order)
    assert_same_rows(out, reference)


def test_shuffled_completion_order_in_work_log(reference, tmp_path):
    """A network whose detect completed the hyper voxels in another order prunes the same."""
    net = copy_network("striatum_300", tmp_path)
    with h5py.File(net / "log" / "network-detect-worklog.hdf5", "r+") as f:
        n = int(f["num_completed"][0])
        perm = np.random.default_rng(7).permutation(n)
        for key in ("completed", "num_hypervoxel_synapses", "num_hypervoxel_gap_junctions",
                    "voxel_overflow_counter"):
            values = f[key][()]
            values[:n] = values[:n][perm]
            f[key][...] = values
    out = tmp_path / "o.hdf5"
    gpuprune.prune(net, output_file=out, device="cpu", workers=2, row_budget=60_000)
    assert_same_rows(out, reference)


def test_output_sorted_and_groups_in_file_order(reference):
    with h5py.File(reference, "r") as f:
        syn = f["network/synapses"][()]
    key = (syn[:, 1].astype(np.int64) * 1000 + syn[:, 0]) * 100 + syn[:, 6]
    assert np.all(np.diff(key) >= 0)


def test_moved_network_uses_local_config(reference, tmp_path):
    """Recorded paths point elsewhere; the network directory's own config is used."""
    dest = tmp_path / "moved"
    shutil.copytree(data_path("striatum_300"), dest, ignore=shutil.ignore_patterns("expected"))
    out = tmp_path / "o.hdf5"
    gpuprune.prune(dest, output_file=out, device="cpu", workers=1)
    assert_same_rows(out, reference)


def test_any_executor(reference, tmp_path):
    """Chunks can run on any concurrent.futures.Executor (here threads) with the same result."""
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "o.hdf5"
    with ThreadPoolExecutor(max_workers=3) as ex:
        r = gpuprune.prune(data_path("striatum_300"), output_file=out, device="cpu", executor=ex,
                           row_budget=150_000)
    assert r.chunks > 3
    assert_same_rows(out, reference)
