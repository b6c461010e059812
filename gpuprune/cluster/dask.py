"""Prune on a Dask cluster: one task per chunk, results streamed back in order.

Workers read their chunks from the shared filesystem and return the kept rows; the parent writes
them in chunk order, holding at most :attr:`SubmitPool.IN_FLIGHT_PER_WORKER` results per worker
thread, so its memory does not grow with the network.  Tasks are pure: a worker that is lost
mid-run has its tasks rerun elsewhere by the scheduler and the output is byte-identical.
"""

import os
import time
import uuid

from gpuprune.cluster.remote import remote_prune, require
from gpuprune.errors import InputError, WorkerError
from gpuprune.execution.base import SubmitPool

#: seconds to wait for a scheduler before giving up (before any work)
CONNECT_TIMEOUT_S = 10


def connect(scheduler=None, scheduler_file=None, timeout=None):
    """A :class:`distributed.Client` of the scheduler at ``scheduler`` (an address) or in ``scheduler_file``.

    Raises
    ------
    InputError
        The ``dask`` extra is not installed, or ``scheduler_file`` does not appear within ``timeout``.
    WorkerError
        The scheduler cannot be reached within ``timeout`` seconds.
    """
    distributed = require("distributed", "dask", "--scheduler")
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    if scheduler_file is not None:  # distributed would wait for it forever; a starting cluster writes it late
        deadline = time.monotonic() + timeout
        while not os.path.exists(scheduler_file):
            if time.monotonic() > deadline:
                raise InputError(f"no Dask scheduler file here after {timeout} s", scheduler_file)
            time.sleep(0.1)
    where = scheduler or f"the scheduler file {scheduler_file}"
    try:
        return distributed.Client(scheduler, scheduler_file=scheduler_file, timeout=timeout,
                                  set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WorkerError(f"cannot reach the Dask scheduler at {where} within {timeout} s ({reason}); "
                          "nothing was pruned") from None


def _hold(rctx):
    return rctx


class DaskPool(SubmitPool):
    """Chunk tasks on a :class:`distributed.Client` (or its ``get_executor()``).

    The :class:`RemoteContext` goes to the cluster once, as the result of one task that every chunk
    task depends on: each worker fetches it once and keeps it, and, as a task rather than scattered
    data, the scheduler can recompute it if every worker holding it is lost.
    """

    def __init__(self, rctx, client):
        require("distributed", "dask", "client=")
        client = getattr(client, "_client", client)  # a ClientExecutor from client.get_executor()
        self.client, self.rctx = client, rctx
        self.run_id = uuid.uuid4().hex[:12]
        self.workers = max(1, sum(client.nthreads().values()))
        self.held = client.submit(_hold, rctx, key=f"gpuprune-context-{self.run_id}", pure=False)

    def submit(self, files, kind_name, chunk):
        key = f"gpuprune-{self.run_id}-{kind_name}-{chunk.dest_lo}-{chunk.dest_hi}"
        return _Result(self.client.submit(remote_prune, self.held, files, kind_name, chunk, key=key, pure=False),
                       kind_name, chunk)

    def shutdown(self):
        self.held.release()


class _Result:
    """A Dask future whose failure on a lost worker (beyond the scheduler's retries) reads as one line."""

    def __init__(self, fut, kind_name, chunk):
        self.fut, self.kind_name, self.chunk = fut, kind_name, chunk

    def result(self):
        from distributed.scheduler import KilledWorker

        try:
            return self.fut.result()
        except KilledWorker:
            raise WorkerError(f"Dask workers kept dying while pruning {self.kind_name} of dest neurons "
                              f"{self.chunk.dest_lo}..{self.chunk.dest_hi - 1}; no output was written") from None
        finally:
            self.fut.release()
