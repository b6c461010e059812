"""Execution pools: run chunk tasks in-process, on local worker processes, or on any Executor."""

import concurrent.futures
import concurrent.futures.process
import multiprocessing
import os
import shutil
import tempfile
import time

import numpy as np

from gpuprune import engine
from gpuprune.errors import InputError, WorkerError
from gpuprune.execution.base import SubmitPool
from gpuprune.execution.malloc import tune_malloc
from gpuprune.format import KINDS, PROJECTION_HID
from gpuprune.io.reader import close_files, read_chunk

#: seconds between looks at a part file that a worker is still writing
PART_POLL_S = 0.002

def prune_task(files, ctx, kind_name, chunk):
    """Read and prune one chunk (runs in a worker, or in-process).

    Returns the :class:`engine.ChunkResult` with ``read_s`` and ``compute_s`` set.
    """
    ctx = _worker_ctx if ctx is None else ctx
    kind = KINDS[kind_name]
    t0 = time.perf_counter()
    rows, runs = read_chunk(files, kind, chunk, with_lookup=ctx.mode == engine.SNUDDA)
    t1 = time.perf_counter()
    result = engine.prune_chunk(ctx, kind, rows, chunk.dest_lo, chunk.dest_hi, lookup_runs=runs)
    result.read_s = t1 - t0
    result.compute_s = time.perf_counter() - t1
    return result


def _init_worker(ctx):
    global _worker_ctx
    _worker_ctx = ctx
    tune_malloc()


def _noop():
    return os.getpid()


def default_workers():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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


_PART_MAGIC = 0x67707275  # "gpru": start of every chunk record in a part file
_PART_HEADER = 4 * 8 + 2 * 8  # int64 (magic, kept rows, putative rows, stats size), float64 (read_s, compute_s)


def prune_range_task(files, kind_name, chunks, part_path):
    """Prune consecutive chunks in one worker, appending one record per chunk to a part file.

    Consecutive chunks share the HDF5 chunks at their boundaries; reading them in
    one process lets HDF5's chunk cache decompress those once.  Each record is
    flushed when its chunk is done, so the parent can write it out while this
    worker goes on (:meth:`LocalPool.run`).
    """
    with open(part_path, "wb") as fh:
        for chunk in chunks:
            res = prune_task(files, None, kind_name, chunk)
            np.array([_PART_MAGIC, res.rows.shape[0], res.num_putative, res.stats.size], dtype=np.int64).tofile(fh)
            np.array([res.read_s, res.compute_s], dtype=np.float64).tofile(fh)
            np.ascontiguousarray(res.stats, dtype=np.int64).tofile(fh)
            np.ascontiguousarray(res.rows).tofile(fh)
            fh.flush()
    return len(chunks)


def _read_exact(fh, nbytes, fut, path):
    """``nbytes`` from a part file a worker is still writing; re-raises the worker's error if it fails."""
    parts, missing = [], nbytes
    while missing:
        data = fh.read(missing)
        if data:
            parts.append(data)
            missing -= len(data)
            continue
        if fut.done():
            fut.result()  # the worker's exception, if it failed
            if not fh.read(1):  # finished, and still short: cannot happen unless the file was tampered with
                raise InputError(f"part file ended {missing} bytes early", path)
            fh.seek(-1, os.SEEK_CUR)
            continue
        time.sleep(PART_POLL_S)
    return b"".join(parts)


def _follow_part(path, fut, chunks, width, stats_shape):
    """Yield ``(chunk, ChunkResult)`` from a part file as its worker writes it."""
    while not os.path.exists(path):  # the task may still be queued
        if fut.done():
            fut.result()
            if not os.path.exists(path):
                raise InputError("a worker finished without writing its part file", path)
        time.sleep(PART_POLL_S)
    with open(path, "rb") as fh:
        for chunk in chunks:
            head = _read_exact(fh, _PART_HEADER, fut, path)
            magic, kept, putative, n_stats = np.frombuffer(head, dtype=np.int64, count=4)
            if magic != _PART_MAGIC or n_stats != np.prod(stats_shape):
                raise InputError("part file is corrupt", path)
            read_s, compute_s = np.frombuffer(head, dtype=np.float64, count=2, offset=32)
            stats = np.frombuffer(_read_exact(fh, 8 * int(n_stats), fut, path), dtype=np.int64).reshape(stats_shape)
            body = _read_exact(fh, 4 * int(kept) * width, fut, path)
            rows = np.frombuffer(body, dtype=np.int32).reshape(int(kept), width).copy()
            yield chunk, engine.ChunkResult(rows, stats.copy(), int(putative), float(read_s), float(compute_s))
    fut.result()


class LocalPool:
    """A process pool on this machine whose workers hold the prune context (sent once, not per task).

    Work goes out as runs of consecutive chunks (:data:`RUNS_PER_WORKER` per
    worker, taken in order as workers free up): every run boundary costs a second
    decompression of the compressed chunk each file has there, so runs are long.
    Each run appends its chunks' kept rows to a part file in ``scratch_dir``; the
    parent follows the parts in order (DESIGN §5) and writes each chunk as soon as
    it is in, so memory stays bounded by the chunk size and little is left to write
    when the workers finish.
    """

    RUNS_PER_WORKER = 2

    def __init__(self, ctx, workers, scratch_dir=None):
        from concurrent.futures import ProcessPoolExecutor

        methods = multiprocessing.get_all_start_methods()
        # fork starts in milliseconds and needs no re-import; the parent holds no open HDF5 file here.
        mp = multiprocessing.get_context("fork" if "fork" in methods else None)
        self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=mp,
                                            initializer=_init_worker, initargs=(ctx,))
        self.executor.submit(_noop).result()  # start the workers before any output file is open
        self.workers = workers
        self.stats_shape = (4, engine.pathway_code_size(ctx))
        self.scratch = tempfile.mkdtemp(prefix=".gpuprune-parts-", dir=scratch_dir)
        self._parts = 0

    def run(self, jobs):
        """Yield ``(kind_name, chunk, ChunkResult)`` for ``jobs`` = [(kind_name, files, chunks), ...], in order.

        Every run of every job is submitted at once, so workers never wait for
        the parent between kinds.
        """
        submitted = []
        for kind_name, files, chunks in jobs:
            for run in contiguous_groups(list(chunks), self.RUNS_PER_WORKER * self.workers):
                self._parts += 1
                path = os.path.join(self.scratch, f"part-{self._parts}.bin")
                fut = self.executor.submit(prune_range_task, files, kind_name, run, path)
                submitted.append((kind_name, run, path, fut))
        for kind_name, run, path, fut in submitted:
            try:
                for chunk, res in _follow_part(path, fut, run, KINDS[kind_name].width, self.stats_shape):
                    yield kind_name, chunk, res
            except concurrent.futures.process.BrokenProcessPool:
                raise WorkerError(f"a worker process ended abruptly (killed, or out of memory?) while pruning "
                                  f"{kind_name} of dest neurons {run[0].dest_lo}..{run[-1].dest_hi - 1}; no "
                                  "output was written") from None
            os.remove(path)

    def shutdown(self):
        self.executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.scratch, ignore_errors=True)

class ExecutorPool(SubmitPool):
    """Tasks on a user's :class:`concurrent.futures.Executor` (the context travels with each task)."""

    def __init__(self, ctx, executor, workers):
        self.ctx, self.executor, self.workers = ctx, executor, workers

    def submit(self, files, kind_name, chunk):
        return self.executor.submit(prune_task, files, self.ctx, kind_name, chunk)

    def shutdown(self):
        pass


class InlinePool(SubmitPool):
    """Run tasks in this process, one at a time (small networks, debugging)."""

    workers = 1

    def __init__(self, ctx):
        self.ctx = ctx

    def submit(self, files, kind_name, chunk):
        from concurrent.futures import Future

        fut = Future()
        try:
            fut.set_result(prune_task(files, self.ctx, kind_name, chunk))
        except BaseException as exc:  # re-raised by result(), in chunk order
            fut.set_exception(exc)
        return fut

    def shutdown(self):
        close_files()


__all__ = ["PROJECTION_HID", "read_chunk", "prune_task", "LocalPool", "ExecutorPool",
           "InlinePool", "default_workers", "close_files"]
