"""Pruning a block of merged rows held in memory, and Snudda's split of a merge file into blocks.

Used by :class:`gpuprune.compat.snudda.output.PruneFiles` (``prune_synapses_helper``,
``find_ranges``).  The block is pruned by the engine with no Python loop per row, group or neuron.
"""

import numpy as np

from gpuprune import engine
from gpuprune.errors import InputError

#: Rows per block when pruning a merge file (Snudda's ``chunk_size`` in ``prune_synapses``).
PRUNE_BLOCK_ROWS = 1_000_000


def _one_run(n):
    """Lookup runs that make the engine keep a block's row order: one run over all rows."""
    z = np.zeros(1, dtype=np.int64)
    return z, z, z, np.array([n], dtype=np.int64)


def prune_block(ctx, kind, rows):
    """Prune a block of rows with the engine; return the kept rows (in output order).

    In snudda mode the block's row order is the merge order: groups are runs
    of equal (src, dest, type) and each dest neuron's stream restarts where
    the dest changes, as in Snudda's ``prune_synapses_helper``.  A block whose
    dest column falls somewhere is cut there, so that a dest neuron seen again
    later restarts its stream as Snudda's does.  In philox mode the block is
    pruned as one chunk.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int32)
    if rows.ndim != 2 or rows.shape[1] != kind.width:
        raise InputError(f"{kind.name} must be an int32 matrix with {kind.width} columns, got shape "
                         f"{rows.shape}")
    if rows.shape[0] == 0:
        return rows[:0].copy()
    if ctx.mode != engine.SNUDDA:
        dest = rows[:, 1]
        return engine.prune_chunk(ctx, kind, rows, int(dest.min()), int(dest.max()) + 1).rows
    cuts = np.flatnonzero(rows[1:, 1] < rows[:-1, 1]) + 1
    bounds = np.concatenate(([0], cuts, [rows.shape[0]]))
    kept = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):  # one pass per descent of dest, normally one
        seg = rows[a:b]
        lo, hi = int(seg[0, 1]), int(seg[-1, 1]) + 1
        kept.append(engine.prune_chunk(ctx, kind, seg, lo, hi, lookup_runs=_one_run(b - a)).rows)
    return kept[0] if len(kept) == 1 else np.concatenate(kept)


# -- block ranges ----------------------------------------------------------------------------------


def _next_other_dest(matrix, pos, end, dest):
    """First row in ``[pos, end)`` whose dest differs from ``dest`` (``end`` if none); reads in windows."""
    window = 1024
    while pos < end:
        stop = min(end, pos + window)
        differ = np.flatnonzero(np.asarray(matrix[pos:stop, 1]) != dest)
        if differ.size:
            return pos + int(differ[0])
        pos, window = stop, window * 2
    return end


def block_ranges(matrix, num_blocks, start_pos=0, num_rows=None):
    """Snudda's ``find_ranges``: split rows into ``num_blocks`` ranges that never split a dest neuron.

    Block starts are ``start_pos + k * floor(num_rows / num_blocks)``; each is
    moved forward past the rows whose dest equals the dest of the row before
    it.  Starts beyond the end are dropped, duplicates removed, and the list
    padded with None so that there are always ``num_blocks`` ranges.  The last
    range ends at ``start_pos + num_rows``.

    Returns
    -------
    list of tuple
        ``(start, end)`` pairs; unused ranges are ``(x, None)`` or ``(None, None)``.
    """
    num_blocks = int(num_blocks)
    if num_blocks < 1:
        raise InputError(f"the number of workers must be at least 1, got {num_blocks}")
    if num_rows is None:
        num_rows = matrix.shape[0] - start_pos
    end = start_pos + num_rows
    size = max(1, num_rows // num_blocks)
    starts = [start_pos + k * size for k in range(num_blocks + 1)]
    # Snudda's last start is start_pos + size * num_blocks, which floor division can leave short of the
    # end, losing the trailing rows when their dest differs; the last range here always reaches the end.
    if num_rows >= num_blocks:
        starts[-1] = end
    for k in range(1, len(starts)):  # one pass per block, reading only near its start
        b = starts[k]
        if b < end:
            starts[k] = _next_other_dest(matrix, b, end, np.asarray(matrix[b - 1, 1]).item())
    starts = list(dict.fromkeys(x for x in starts if x <= end))
    starts += [None] * (num_blocks + 1 - len(starts))
    return list(zip(starts[:-1], starts[1:], strict=True))
