"""Draw providers: the random numbers the rules of one chunk compare against (DESIGN §4).

A draw provider is made for one segmented chunk and answers three questions,
each for a subset of its groups or rows:

``group(starts)``
    ``(r_a3, r_mu2)``, one pair per group (given by its first position).
``rows(idx, both)``
    ``(r_f1, r_dist)`` per row at positions ``idx`` (None: every row);
    ``r_dist`` is None unless ``both``.
``rows_sm(idx)``
    ``r_sm`` (soft_max) per row at positions ``idx``.

:class:`PhiloxDraws` (philox mode) computes them from (seed, dest, src, type,
k) with no state; :class:`SnuddaDraws` (snudda mode) indexes each dest
neuron's PCG64 stream as Snudda consumes it.  Any object with these methods
can stand in for them (tests pass fixed draws; a tuner may reuse one provider
to evaluate many parameter sets on the same draws).  :func:`draws_for` makes
the provider of the context's mode.
"""

import numpy as np

from gpuprune import rng as _rng
from gpuprune.engine.context import SNUDDA
from gpuprune.engine.groups import take


class PhiloxDraws:
    """Philox draws for the groups and rows of one chunk (DESIGN §4).

    Counter words are gathered block by block inside the generator loop, so
    that the per-row gathers run in cache.

    Parameters
    ----------
    ctx : PruneContext
    kind_id : int
        ``rng.KIND_SYNAPSE`` or ``rng.KIND_GAP_JUNCTION``.
    groups : Groups
        The segmented chunk.
    dest_lo, dest_hi : int
        The chunk's dest range.
    """

    def __init__(self, ctx, kind_id, groups, dest_lo, dest_hi):
        k0, k1 = _rng.neuron_keys(ctx.seed, np.arange(dest_lo, dest_hi, dtype=np.int64))
        self.k0, self.k1 = k0.astype(np.uint32), k1.astype(np.uint32)
        self.dest_lo = dest_lo
        self.kind_bits = np.uint32(kind_id << 16)
        self.s_src, self.s_dest, self.s_typ, self.pos = groups.src, groups.dest, groups.typ, groups.pos

    def _draw(self, idx, row, word3, both):
        """Draws for the rows (or group starts) ``idx`` (None: every row), counter word 1 = ``row``."""
        n = self.s_src.size if idx is None else idx.size

        # Words that are the same for every draw stay scalars (they broadcast in the first round);
        # non-negative int32 columns are reinterpreted as uint32 without a copy.
        c1_all = None if row is None else np.uint32(row)
        c3 = np.uint32(word3)

        def lanes(s, e):
            i = slice(s, e) if idx is None else idx[s:e]
            d = self.s_dest[i] - self.dest_lo
            tword = self.s_typ[i].view(np.uint32)
            if self.kind_bits:
                tword = tword | self.kind_bits
            c1 = c1_all if c1_all is not None else self.pos[i].view(np.uint32)
            return self.s_src[i].view(np.uint32), c1, tword, c3, self.k0[d], self.k1[d]

        return _rng.philox_uniform_blocks(n, lanes, both)

    def group(self, starts):
        return self._draw(starts, _rng.GROUP_ROW, 0, True)

    def rows(self, idx, both):
        return self._draw(idx, None, 0, both)

    def rows_sm(self, idx):
        return self._draw(idx, None, 1, False)[0]


class SnuddaDraws:
    """Snudda's draws: each dest neuron's PCG64 stream, ``3n + 2`` numbers per group with parameters.

    Parameters
    ----------
    ctx : PruneContext
    groups : Groups
        The segmented chunk (merge order: groups of one dest are contiguous).
    pidx : ndarray of int32
        Each group's parameter-set index (-1: no parameters, so no numbers drawn).
    """

    def __init__(self, ctx, groups, pidx):
        from gpuprune.rng.pcg64 import pcg64_uniform_streams

        sizes = groups.sizes
        g_dest = groups.g_dest
        cost = np.where(pidx >= 0, 3 * sizes + 2, 0).astype(np.int64)
        dests, first, per_dest = np.unique(g_dest, return_index=True, return_counts=True)
        lengths = np.add.reduceat(cost, first) if first.size else np.zeros(0, dtype=np.int64)
        stream_base = np.cumsum(lengths) - lengths
        excl = np.cumsum(cost) - cost
        # index of each group's first number in `self.u`
        self.offset = excl + np.repeat(stream_base - excl[first], per_dest)
        self.u = pcg64_uniform_streams(ctx.neuron_seed_table()[dests], lengths)
        self.sizes = sizes.astype(np.int64)
        self.pos = groups.pos
        self.gid = np.repeat(np.arange(groups.n_groups), sizes)

    def group(self, starts):
        g = self.gid[starts]
        end = self.offset[g] + 3 * self.sizes[g]
        return self.u[end + 1], self.u[end]  # r_a3 = pool[-1], r_mu2 = pool[-2]

    def rows(self, idx, both):
        g = take(self.gid, idx)
        base = self.offset[g] + take(self.pos, idx)
        return self.u[base], (self.u[base + self.sizes[g]] if both else None)

    def rows_sm(self, idx):
        g = take(self.gid, idx)
        return self.u[self.offset[g] + 2 * self.sizes[g] + take(self.pos, idx)]


def draws_for(ctx, kind_id, groups, pidx, dest_lo, dest_hi):
    """The draw provider of ``ctx.mode`` for a segmented chunk."""
    if ctx.mode == SNUDDA:
        return SnuddaDraws(ctx, groups, pidx)
    return PhiloxDraws(ctx, kind_id, groups, dest_lo, dest_hi)
