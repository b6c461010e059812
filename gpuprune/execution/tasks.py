"""The work a pool runs: prune one chunk, or a run of chunks into a part file; and the worker set-up.

Worker processes stop with their parent: on Linux the kernel kills them when it dies
(``PR_SET_PDEATHSIG``), so a parent killed by Slurm or ``kill -9`` leaves no worker holding the
inputs open.  Workers ignore SIGINT: a Ctrl-C goes to the whole process group, and the parent alone
decides what to stop and what to clean up (no worker prints a ``KeyboardInterrupt`` traceback).
"""

import ctypes
import ctypes.util
import os
import signal
import sys
import time

from gpuprune import engine
from gpuprune.errors import InputError
from gpuprune.execution import parts
from gpuprune.execution.malloc import tune_malloc
from gpuprune.format import KINDS
from gpuprune.io.reader import blame_rows, read_chunk

_PR_SET_PDEATHSIG = 1
_worker_ctx = None


def prune_task(files, ctx, kind_name, chunk):
    """Read and prune one chunk (runs in a worker, or in-process).

    Returns the :class:`engine.ChunkResult` with ``read_s`` and ``compute_s`` set.  A chunk whose rows
    disagree with the lookup tables is an :class:`InputError` naming the hyper voxel file they came from.
    """
    ctx = _worker_ctx if ctx is None else ctx
    kind = KINDS[kind_name]
    t0 = time.perf_counter()
    rows, runs = read_chunk(files, kind, chunk, with_lookup=ctx.mode == engine.SNUDDA)
    t1 = time.perf_counter()
    try:
        result = engine.prune_chunk(ctx, kind, rows, chunk.dest_lo, chunk.dest_hi, lookup_runs=runs)
    except InputError as exc:
        path = None if exc.path is not None else blame_rows(files, kind, chunk, rows, ctx.num_neurons)
        if path is None:
            raise
        raise InputError(exc.problem, path) from None
    result.read_s = t1 - t0
    result.compute_s = time.perf_counter() - t1
    return result


def prune_range_task(files, kind_name, chunks, part_path):
    """Prune consecutive chunks in one worker, appending one record per chunk to a part file.

    Consecutive chunks share the HDF5 chunks at their boundaries; reading them in one process lets
    the reader decode those once.  Each record is flushed when its chunk is done, so the parent can
    write it out while this worker goes on (:meth:`LocalPool.run`).
    """
    with open(part_path, "wb") as fh:
        for chunk in chunks:
            parts.write_record(fh, prune_task(files, None, kind_name, chunk))
    return len(chunks)


def die_with_parent(parent_pid):
    """Have the kernel kill this process when its parent dies (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        ok = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent_pid:  # the parent died before the request was in place
        os._exit(1)
    return ok


def init_worker(ctx, parent_pid):
    """Initializer of a local worker process: hold ``ctx``; stop with the parent; leave SIGINT to it."""
    global _worker_ctx
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # not the parent's handlers, inherited through fork
        signal.signal(sig, signal.SIG_DFL)
    die_with_parent(parent_pid)
    _worker_ctx = ctx
    tune_malloc()


def worker_pid():
    """A worker's pid (the first task a pool runs, to start its workers)."""
    return os.getpid()
