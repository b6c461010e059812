"""Work planning: cut dest neurons into ranges whose rows fit a budget (DESIGN §5).

One planner serves every consumer: the CPU pools (``Network.plan``), the GPU pool's split of a
chunk that does not fit the device (``split``), and SnuddaPrune's merge and prune blocks.  The rows
of a dest range are one contiguous slice of each hyper voxel file, found from the lookup tables
alone (``SourceFile.dests`` / ``row_start`` / ``lut_start``): no row is read to plan.
"""

from dataclasses import dataclass

import numpy as np

from gpuprune.errors import InputError


@dataclass
class Chunk:
    """A dest-neuron range ``[dest_lo, dest_hi)`` and its slice of each file (file order)."""

    index: int
    dest_lo: int
    dest_hi: int
    num_rows: int
    slices: tuple  # ((file_index, row_lo, row_hi, lut_lo, lut_hi), ...), non-empty slices only


def cut(counts, max_rows, max_span=None):
    """Bounds (relative to the first dest) of consecutive ranges of at most ``max_rows`` rows.

    ``counts[i]`` is the number of rows onto dest ``i``.  A dest whose rows alone exceed
    ``max_rows`` gets a range of its own; ``max_span`` also caps the dests per range.  One
    ``searchsorted`` per range: no loop per neuron.
    """
    if max_rows < 1:
        raise InputError(f"row budget must be at least 1, got {max_rows}")
    n = len(counts)
    cum = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    span = n if max_span is None else max(1, int(max_span))
    bounds = [0]
    while bounds[-1] < n:  # one iteration per range
        b = bounds[-1]
        e = int(np.searchsorted(cum, cum[b] + int(max_rows), side="right")) - 1
        bounds.append(min(n, max(e, b + 1), b + span))
    return np.asarray(bounds, dtype=np.int64), cum


def ranges(sources, counts, lo, max_rows, *, max_span=None, order=None, index=None):
    """Plan dest neurons ``[lo, lo + len(counts))`` of one kind into :class:`Chunk`\\ s.

    Parameters
    ----------
    sources : list of io.network.SourceFile
        The kind's files; ``Chunk.slices`` index into this list.
    counts : ndarray of int64
        Rows onto each dest of the range.
    lo : int
        The first dest neuron.
    max_rows, max_span : int
        Row budget and most dests per chunk (see :func:`cut`).
    order : sequence of int, optional
        File indexes in the order a chunk lists (and so reads) its slices; default all files in
        index order.
    index : int, optional
        Give every chunk this index (sub-chunks of one planned chunk); default 0, 1, 2, ...

    Returns
    -------
    list of Chunk
        The non-empty ranges in dest order.
    """
    bounds, cum = cut(counts, max_rows, max_span)
    absolute = bounds + int(lo)
    order = range(len(sources)) if order is None else list(order)
    # One searchsorted per file over all bounds: no loop per neuron or per chunk here.
    pos = {fi: np.searchsorted(sources[fi].dests, absolute, side="left") for fi in order}
    chunks = []
    for c in range(bounds.size - 1):  # one iteration per chunk
        n = int(cum[bounds[c + 1]] - cum[bounds[c]])
        if n == 0:
            continue
        slices = []
        for fi in order:
            sf, p = sources[fi], pos[fi]
            i0, i1 = p[c], p[c + 1]
            if i1 > i0:
                slices.append((fi, int(sf.row_start[i0]), int(sf.row_start[i1]),
                               int(sf.lut_start[i0]), int(sf.lut_start[i1])))
        chunks.append(Chunk(len(chunks) if index is None else index, int(absolute[c]), int(absolute[c + 1]), n,
                            tuple(slices)))
    return chunks


def rows_per_dest(sources, lo, hi, files=None):
    """Rows onto each dest of ``[lo, hi)`` summed over ``files`` (file indexes; default all)."""
    counts = np.zeros(max(0, hi - lo), dtype=np.int64)
    for fi in range(len(sources)) if files is None else files:
        sf = sources[fi]
        i0, i1 = np.searchsorted(sf.dests, [lo, hi])
        counts[sf.dests[i0:i1] - lo] += np.diff(sf.row_start[i0:i1 + 1])
    return counts


def split(sources, chunk, max_rows, max_span):
    """Cut a planned chunk into dest ranges of at most ``max_rows`` rows and ``max_span`` neurons.

    Returns
    -------
    list of (Chunk, bool)
        Sub-chunks in dest order, each with whether it fits ``max_rows`` (a single dest neuron with
        more rows than that does not).  Sub-chunks keep the chunk's index and list their slices in
        the chunk's file order.
    """
    if chunk.num_rows <= max_rows and chunk.dest_hi - chunk.dest_lo <= max_span:
        return [(chunk, True)]
    files = [s[0] for s in chunk.slices]
    counts = rows_per_dest(sources, chunk.dest_lo, chunk.dest_hi, files)
    parts = ranges(sources, counts, chunk.dest_lo, max(int(max_rows), 1), max_span=max_span, order=files,
                   index=chunk.index)
    return [(p, p.num_rows <= max_rows) for p in parts]
