"""Every pool keeps the one Pool contract: ``run(jobs)`` yields ``(kind_name, chunk, ChunkResult)`` in order,
with the same results whatever runs the chunks."""

import concurrent.futures

import pytest
from conftest import data_path

from gpuprune import engine
from gpuprune.device.pool import GpuPool
from gpuprune.execution.base import Pool, SubmitPool
from gpuprune.execution.pools import ExecutorPool, InlinePool, LocalPool, default_workers
from gpuprune.io import reader
from gpuprune.io.network import Network


@pytest.fixture(scope="module")
def setup():
    net = Network(data_path("prune3"))
    ctx = engine.PruneContext.from_network(net, mode=engine.PHILOX)
    spec = net.spec()["files"]
    jobs = [(k, spec[k], net.plan(k, 40)) for k in ("synapses", "gap_junctions")]
    return net, ctx, jobs


def results(pool, jobs):
    try:
        return [(k, c.index, c.dest_lo, r.rows.tobytes(), r.stats.tobytes()) for k, c, r in pool.run(jobs)]
    finally:
        pool.shutdown()


def test_every_pool_is_a_pool():
    for cls in (InlinePool, ExecutorPool, LocalPool, SubmitPool, GpuPool):
        assert Pool in cls.__mro__, cls  # declared, not duck-typed (issubclass refuses data members)


def test_pools_yield_the_same_results_in_order(setup):
    net, ctx, jobs = setup
    expected = results(InlinePool(ctx), jobs)
    assert [(k, i) for k, i, *_ in expected] == [(k, c.index) for k, _, chunks in jobs for c in chunks]
    assert len(expected) > 4
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        assert results(ExecutorPool(ctx, ex, 3), jobs) == expected
    local = LocalPool(ctx, 2)
    assert isinstance(local, Pool)
    assert results(local, jobs) == expected


def test_default_workers_is_shared_by_io_and_execution():
    assert default_workers is reader.default_workers
    assert default_workers() >= 1
    assert isinstance(default_workers(), int)
