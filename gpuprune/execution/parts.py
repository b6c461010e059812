"""Part files: the records a local worker appends as it prunes a run of chunks, and the parent's
reader that follows them while they are still being written.

One record per chunk: a header of int64 (magic, kept rows, putative rows, stats size) and float64
(read_s, compute_s), then the stats (int64) and the kept rows (int32), all native byte order (the
file never leaves the machine, and lives only as long as the run).
"""

import os
import time

import numpy as np

from gpuprune import engine
from gpuprune.errors import InputError

#: seconds between looks at a part file that a worker is still writing
PART_POLL_S = 0.002
_PART_MAGIC = 0x67707275  # "gpru": start of every chunk record in a part file
_PART_HEADER = 4 * 8 + 2 * 8


def write_record(fh, res):
    """Append the :class:`engine.ChunkResult` ``res`` to the open part file ``fh`` and flush it."""
    np.array([_PART_MAGIC, res.rows.shape[0], res.num_putative, res.stats.size], dtype=np.int64).tofile(fh)
    np.array([res.read_s, res.compute_s], dtype=np.float64).tofile(fh)
    np.ascontiguousarray(res.stats, dtype=np.int64).tofile(fh)
    np.ascontiguousarray(res.rows).tofile(fh)
    fh.flush()


def _read_exact(fh, nbytes, fut, path):
    """``nbytes`` from a part file a worker is still writing; re-raises the worker's error if it fails."""
    chunks, missing = [], nbytes
    while missing:
        data = fh.read(missing)
        if data:
            chunks.append(data)
            missing -= len(data)
            continue
        if fut.done():
            fut.result()  # the worker's exception, if it failed
            if not fh.read(1):  # finished, and still short: cannot happen unless the file was tampered with
                raise InputError(f"part file ended {missing} bytes early", path)
            fh.seek(-1, os.SEEK_CUR)
            continue
        time.sleep(PART_POLL_S)
    return b"".join(chunks)


def follow(path, fut, chunks, width, stats_shape):
    """Yield ``(chunk, ChunkResult)`` from the part file of the task ``fut`` as its worker writes it."""
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
