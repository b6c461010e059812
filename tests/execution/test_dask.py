"""Dask: byte-identical to one process on a LocalCluster of 2 worker processes, a killed worker costs nothing,
an unreachable scheduler and a missing extra are one-line errors before any work."""

import os
import signal
import sys

import numpy as np
import pytest
from conftest import data_path
from distributed_helpers import CASES, leftovers, need, network, reference_bytes

import gpuprune
from gpuprune import engine
from gpuprune.cli.main import main
from gpuprune.cluster import dask as gdask
from gpuprune.cluster.dask import DaskPool
from gpuprune.cluster.remote import RemoteContext
from gpuprune.errors import InputError, WorkerError
from gpuprune.execution.pools import InlinePool
from gpuprune.io.network import Network


@pytest.fixture(scope="module")
def client():
    distributed = need("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=40)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()



@pytest.mark.parametrize("name,rng,budget", CASES)
def test_same_bytes_as_one_process(client, tmp_path, name, rng, budget):
    client.wait_for_workers(2)
    out = tmp_path / "dask.hdf5"
    result = gpuprune.prune(network(name), rng=rng, device="cpu", output_file=out, client=client,
                            row_budget=budget)
    assert result.chunks >= 4 and result.workers == 2
    assert out.read_bytes() == reference_bytes(name, rng)
    assert leftovers(tmp_path) == []


def test_executor_of_client_works_too(client, tmp_path):
    out = tmp_path / "dask.hdf5"
    gpuprune.prune(network("prune3"), device="cpu", output_file=out, client=client.get_executor(),
                   row_budget=60)
    assert out.read_bytes() == reference_bytes("prune3", "philox")


def test_killed_worker_reruns_elsewhere(client, tmp_path):
    """SIGKILL one worker process after the first chunk is written: its tasks rerun, the bytes do not change."""
    client.wait_for_workers(2)
    pids = sorted(client.run(os.getpid).values())
    killed = []

    def kill_once(done, total):
        if not killed:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(done)

    out = tmp_path / "dask.hdf5"
    result = gpuprune.prune(network("synth"), device="cpu", output_file=out, client=client,
                            row_budget=500, progress=kill_once)
    assert result.chunks > 10 and killed and killed[0] < result.synapses_before  # it died mid-run
    assert out.read_bytes() == reference_bytes("synth", "philox")
    assert pids[0] not in client.run(os.getpid).values()


def test_unreachable_scheduler_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    need("distributed")
    monkeypatch.setattr(gdask, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(WorkerError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        gdask.connect("tcp://127.0.0.1:9")
    out = tmp_path / "o.hdf5"
    assert main(["prune", str(data_path("prune3")), "--output", str(out), "--quiet",
                 "--scheduler", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot reach the Dask scheduler" in err
    assert main(["prune", str(data_path("prune3")), "--output", str(out), "--quiet",
                 "--scheduler-file", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing.json" in err
    assert os.listdir(tmp_path) == []


def test_missing_extra_names_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(InputError, match=r'pip install "gpuprune\[dask\]"'):
        gdask.connect("tcp://127.0.0.1:9")
    assert main(["prune", str(data_path("prune3")), "--output", str(tmp_path / "o.hdf5"), "--quiet",
                 "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert 'pip install "gpuprune[dask]"' in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_emulated_gpu_on_each_worker(client):
    """device="gpu" on the workers (emulated: the same kernels built for the host): the CPU's rows, and each
    worker keeps its one GPU pool (compiled kernels) for all its tasks."""
    client.wait_for_workers(2)
    net = Network(network("synth"))
    ctx = engine.PruneContext.from_network(net, mode="philox")
    spec = net.spec()["files"]
    jobs = [(k, spec[k], net.plan(k, 500)) for k in ("synapses", "gap_junctions")]
    pool = DaskPool(RemoteContext(ctx, net.sources, "gpu", {"emulate": True}), client)
    try:
        got = list(pool.run(jobs))
        held = client.run(lambda dask_worker, key=pool.held.key: key in dask_worker.data
                          and dask_worker.data[key]._gpu is not None)
    finally:
        pool.shutdown()
    want = list(InlinePool(ctx).run(jobs))
    assert len(got) == len(want) > 10
    for (k1, c1, r1), (k2, c2, r2) in zip(got, want, strict=True):
        assert (k1, c1) == (k2, c2)
        assert np.array_equal(r1.rows, r2.rows) and np.array_equal(r1.stats, r2.stats)
    assert all(held.values())
