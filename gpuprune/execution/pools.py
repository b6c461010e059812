"""Execution pools: run chunk tasks in-process, on local worker processes, or on any Executor.

Each keeps the :class:`gpuprune.execution.base.Pool` contract: ``run(jobs)`` yields results in order,
``shutdown()`` stops the workers and removes what the pool made.
"""

import concurrent.futures
import concurrent.futures.process
import multiprocessing
import os
import shutil
import tempfile

import numpy as np

from gpuprune import engine
from gpuprune.errors import WorkerError
from gpuprune.execution import parts
from gpuprune.execution.base import Pool, SubmitPool
from gpuprune.execution.tasks import init_worker, prune_range_task, prune_task, worker_pid
from gpuprune.format import KINDS, PROJECTION_HID
from gpuprune.io import leftovers
from gpuprune.io.reader import close_files, default_workers, read_chunk

#: seconds a worker killed at shutdown gets to exit before the pool stops waiting for it
KILL_WAIT_S = 5.0


def contiguous_groups(chunks, n_groups):
    """Split ``chunks`` (in order) into at most ``n_groups`` runs of consecutive chunks with similar rows."""
    if not chunks:
        return []
    cum = np.cumsum([c.num_rows for c in chunks])
    cuts = set()
    for target in cum[-1] * np.arange(1, n_groups) / n_groups:
        i = int(np.searchsorted(cum, target, side="left"))  # first run end at or past the target
        before = cum[i - 1] if i > 0 else 0
        cuts.add(i if i > 0 and target - before <= cum[i] - target else i + 1)
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(chunks)), len(chunks)]
    return [chunks[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _worker_died(what="pruning"):
    return WorkerError(f"a worker process ended abruptly (killed, or out of memory?) while {what}; "
                       "no output was written")


class LocalPool(Pool):
    """A process pool on this machine whose workers hold the prune context (sent once, not per task).

    Work goes out as runs of consecutive chunks (:data:`RUNS_PER_WORKER` per worker, taken in order
    as workers free up): every run boundary costs a second decompression of the compressed chunk
    each file has there, so runs are long.  Each run appends its chunks' kept rows to a part file in
    ``scratch_dir``; the parent follows the parts in order (DESIGN §5) and writes each chunk as soon
    as it is in, so memory stays bounded by the chunk size and little is left to write when the
    workers finish.

    Workers die with the parent and ignore SIGINT (:func:`gpuprune.execution.tasks.init_worker`);
    :meth:`shutdown` before the run is complete (an error, a signal) kills them instead of waiting
    for the chunks they are on.  The parts folder is locked while the pool lives
    (:mod:`gpuprune.io.leftovers`), so a later run removes it only if this process was killed.
    """

    RUNS_PER_WORKER = 2

    def __init__(self, ctx, workers, scratch_dir=None):
        methods = multiprocessing.get_all_start_methods()
        # fork starts in milliseconds and needs no re-import; the parent holds no open HDF5 file here.
        mp = multiprocessing.get_context("fork" if "fork" in methods else None)
        self.executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=mp, initializer=init_worker, initargs=(ctx, os.getpid()))
        self.workers = workers
        self.stats_shape = (4, engine.pathway_code_size(ctx))
        self.scratch, self._held, self._submitted, self._parts = None, leftovers.Held(), [], 0
        try:
            self.executor.submit(worker_pid).result()  # start the workers before any output file is open
            folder = os.path.abspath(scratch_dir or tempfile.gettempdir())
            with leftovers.folder_lock(folder):  # made and locked in one step for the sweep of a later run
                self.scratch = tempfile.mkdtemp(prefix=".gpuprune-parts-", dir=folder)
                self._held.hold(self.scratch)
        except concurrent.futures.process.BrokenProcessPool:
            self.shutdown()
            raise _worker_died("starting") from None
        except BaseException:
            self.shutdown()
            raise

    def run(self, jobs):
        """Yield ``(kind_name, chunk, ChunkResult)`` for ``jobs`` = [(kind_name, files, chunks), ...], in order.

        Every run of every job is submitted at once, so workers never wait for the parent between kinds.
        A worker that dies (killed, out of memory) is a :class:`WorkerError`, whether the pool learns
        it while submitting or while following a part file.
        """
        what = "pruning"
        try:
            runs = []
            for kind_name, files, chunks in jobs:
                for run in contiguous_groups(list(chunks), self.RUNS_PER_WORKER * self.workers):
                    self._parts += 1
                    path = os.path.join(self.scratch, f"part-{self._parts}.bin")
                    runs.append((kind_name, files, run, path))
            for kind_name, files, run, path in runs:
                fut = self.executor.submit(prune_range_task, files, kind_name, run, path)
                self._submitted.append((kind_name, run, path, fut))
            for kind_name, run, path, fut in list(self._submitted):
                what = f"pruning {kind_name} of dest neurons {run[0].dest_lo}..{run[-1].dest_hi - 1}"
                for chunk, res in parts.follow(path, fut, run, KINDS[kind_name].width, self.stats_shape):
                    yield kind_name, chunk, res
                os.remove(path)
        except concurrent.futures.process.BrokenProcessPool:
            raise _worker_died(what) from None

    def _kill_workers(self):
        """End the workers now (their chunks are abandoned): SIGKILL, then wait for them to be reaped."""
        procs = list((getattr(self.executor, "_processes", None) or {}).values())
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in procs:
            p.join(KILL_WAIT_S)

    def shutdown(self):
        try:
            if any(not fut.done() for *_, fut in self._submitted):
                self._kill_workers()
            self.executor.shutdown(wait=True, cancel_futures=True)
        finally:
            if self.scratch is not None:
                shutil.rmtree(self.scratch, ignore_errors=True)
            self._held.release()


class ExecutorPool(SubmitPool):
    """Tasks on a user's :class:`concurrent.futures.Executor` (the context travels with each task)."""

    def __init__(self, ctx, executor, workers):
        self.ctx, self.executor, self.workers = ctx, executor, workers

    def submit(self, files, kind_name, chunk):
        return self.executor.submit(prune_task, files, self.ctx, kind_name, chunk)


class InlinePool(SubmitPool):
    """Run tasks in this process, one at a time (small networks, debugging)."""

    workers = 1

    def __init__(self, ctx):
        self.ctx = ctx

    def submit(self, files, kind_name, chunk):
        fut = concurrent.futures.Future()
        try:
            fut.set_result(prune_task(files, self.ctx, kind_name, chunk))
        except BaseException as exc:  # re-raised by result(), in chunk order
            fut.set_exception(exc)
        return fut

    def shutdown(self):
        close_files()


__all__ = ["PROJECTION_HID", "read_chunk", "prune_task", "prune_range_task", "LocalPool", "ExecutorPool",
           "InlinePool", "default_workers", "close_files", "contiguous_groups"]
