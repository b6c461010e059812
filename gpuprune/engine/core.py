"""Prune one chunk: order -> segment -> decide -> compact (NumPy reference backend).

A chunk is every putative row onto a range of dest neurons, read from the
source files in DESIGN §4 order (projection file, then hyper voxel files by
ascending id).  :func:`prune_chunk` is four named steps, all vectorised (no
Python loop per row, group or neuron):

1. order (:func:`~gpuprune.engine.groups.order_rows`): the permutation into group order;
2. segment (:func:`~gpuprune.engine.groups.segment`): groups are runs of equal (dest, src, type);
3. decide (:func:`~gpuprune.engine.decide.decide`): the rules of DESIGN §3 on the draws of the
   mode's provider (:mod:`gpuprune.engine.draws`), probabilities from host-side tables;
4. compact (:func:`compact`): gather the kept rows, give each its group's parameter id, and count
   rows and pairs per pathway (:func:`pathway_stats`).
"""

import numpy as np

from gpuprune import rng as _rng
from gpuprune.engine.context import SNUDDA, ChunkResult, pathway_code_size
from gpuprune.engine.decide import decide, parameter_index
from gpuprune.engine.draws import draws_for
from gpuprune.engine.groups import group_key, group_sums, is_sorted, order_rows, segment, take, unpack_key
from gpuprune.errors import InputError
from gpuprune.format import GAP_JUNCTION_CHANNEL


def grouping_columns(ctx, kind, rows, dest_lo, dest_hi):
    """The rows' (src, dest, type) as contiguous arrays, checked against the chunk and the network.

    Gap junctions have no channel-type column; they all count as type 3.
    """
    n = rows.shape[0]
    src, dest = np.ascontiguousarray(rows[:, 0]), np.ascontiguousarray(rows[:, 1])
    is_syn = kind.kind_id == _rng.KIND_SYNAPSE
    typ = np.ascontiguousarray(rows[:, 6]) if is_syn else np.full(n, GAP_JUNCTION_CHANNEL, dtype=np.int32)
    if int(dest.min()) < dest_lo or int(dest.max()) >= dest_hi or int(src.min()) < 0 \
            or int(src.max()) >= ctx.num_neurons:
        raise InputError(f"{kind.name} rows disagree with the lookup tables: rows of the slice for dest "
                         f"neurons {dest_lo}..{dest_hi - 1} name neurons outside that range or outside "
                         f"0..{ctx.num_neurons - 1}")
    if is_syn and (int(typ.min()) < 0 or int(typ.max()) >= 2 ** 16):
        raise InputError("synapse channel types must lie in 0 .. 2**16-1")
    return src, dest, typ


def compact(ctx, kind, rows, groups, keep):
    """Step 4, compact: the kept rows in group order, and the kept count per group.

    Synapses of one group share the parameter id of its first row unless
    ``ctx.share_parameter_id`` is false.
    """
    kept = np.flatnonzero(keep)
    out = rows[groups.chunk_rows(kept)]
    kept_g = group_sums(keep, groups.starts)
    if kind.kind_id == _rng.KIND_SYNAPSE and ctx.share_parameter_id:
        out[:, 12] = np.repeat(rows[groups.chunk_rows(groups.starts), 12], kept_g)
    return out, kept_g


def pathway_stats(ctx, groups, keep, kept_g, dest_lo, dest_hi):
    """(4, n_codes) int64: putative rows, kept rows, putative pairs, connected pairs per pathway code."""
    codes = ctx.pathway_codes
    stats = np.zeros((4, codes.size), dtype=np.int64)
    nt = ctx.neuron_type

    def encode(src, dest, typ):
        return codes.encode(nt[src], nt[dest], typ)

    code_g = encode(groups.g_src, groups.g_dest, groups.g_typ)
    size = stats.shape[1]
    stats[0] = np.bincount(code_g, weights=groups.sizes, minlength=size).astype(np.int64)
    stats[1] = np.bincount(code_g, weights=kept_g, minlength=size).astype(np.int64)
    key, order = groups.key, groups.order
    if ctx.mode == SNUDDA and key is not None and not is_sorted(take(key, order)):
        # runs of one (pair, type) may be split in merge order: count pairs on the sorted key
        ks = np.sort(take(key, order))
        first = ks[np.concatenate(([True], ks[1:] != ks[:-1]))]
        stats[2] = np.bincount(encode(*unpack_key(ctx, first, dest_lo, dest_hi)), minlength=size)
        kk = np.unique(take(key, order)[keep])
        stats[3] = np.bincount(encode(*unpack_key(ctx, kk, dest_lo, dest_hi)), minlength=size)
    else:
        stats[2] = np.bincount(code_g, minlength=size)
        stats[3] = np.bincount(code_g[kept_g > 0], minlength=size)
    return stats


def prune_chunk(ctx, kind, rows, dest_lo, dest_hi, lookup_runs=None, draws=None, trace=None):
    """Prune all rows onto dest neurons ``[dest_lo, dest_hi)``.

    Parameters
    ----------
    ctx : PruneContext
    kind : format.Kind
    rows : ndarray of int32, shape (n, width)
        The chunk's rows, concatenated in source-file order (DESIGN §4).
    dest_lo, dest_hi : int
        The chunk's dest range; every row's dest must lie in it.
    lookup_runs : tuple of ndarray, optional
        (unique_id, hyper voxel id, start, length) of the chunk's lookup runs;
        required in snudda mode.
    draws : callable, optional
        ``draws(starts, sizes, pos)`` returns a draw provider (see
        :mod:`gpuprune.engine.draws`) that supplies the random numbers instead
        of the mode's generator (tests, tuning).
    trace : callable, optional
        For the report's funnel: ``trace(starts, sizes, g_src, g_dest, g_typ)``
        returns a callable ``step(name, keep)`` that is called with the row
        mask (group order) after each rule: ``"rule"`` (groups with parameters),
        ``"a3"``, ``"f1"`` (with distance), ``"soft_max"``, ``"mu2"``,
        ``"cluster"``.  It must not keep ``keep``, which changes afterwards.

    Returns
    -------
    ChunkResult
    """
    n = rows.shape[0]
    if n == 0:
        return ChunkResult(rows[:0].copy(), np.zeros((4, pathway_code_size(ctx)), dtype=np.int64), 0)
    src, dest, typ = grouping_columns(ctx, kind, rows, dest_lo, dest_hi)
    key = group_key(ctx, dest, src, typ, dest_lo, dest_hi)
    order = order_rows(ctx, kind.name, key, src, dest, typ, lookup_runs)
    groups = segment(key, order, src, dest, typ)
    pidx = parameter_index(ctx, groups)
    if draws is not None:
        draws = draws(groups.starts, groups.sizes, groups.pos)
    else:
        draws = draws_for(ctx, kind.kind_id, groups, pidx, dest_lo, dest_hi)
    if trace is not None:
        trace = trace(groups.starts, groups.sizes, groups.g_src, groups.g_dest, groups.g_typ)
    keep = decide(ctx, rows, groups, pidx, draws, trace).keep
    out, kept_g = compact(ctx, kind, rows, groups, keep)
    return ChunkResult(out, pathway_stats(ctx, groups, keep, kept_g, dest_lo, dest_hi), n)
