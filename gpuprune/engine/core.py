"""Prune one chunk: order -> segment -> draw -> decide -> compact (NumPy reference backend).

A chunk is every putative row onto a range of dest neurons, read from the
source files in DESIGN §4 order (projection file, then hyper voxel files by
ascending id).  The steps, all vectorised (no Python loop per row, group or
neuron):

1. order: philox mode sorts rows by the packed key (dest, src, type), stably,
   so rows of a group keep file order; snudda mode reproduces Snudda's heap
   merge by sorting lookup runs by (unique_id, hyper voxel id).
2. segment: a group is a run of equal keys in that order.
3. draw: philox mode computes Philox draws from (seed, dest, src, type, k);
   snudda mode indexes each dest neuron's PCG64 stream at offsets from a
   cumulative sum of ``3n + 2`` per group with parameters.
4. decide: a3, f1 + distance, soft_max, mu2, cluster pruning (DESIGN §3),
   with probabilities from host-side tables.
5. compact: gather kept rows, give each its group's parameter id.
"""

from dataclasses import dataclass

import numpy as np

from gpuprune import rng as _rng
from gpuprune.engine.pathway import PathwayCodes
from gpuprune.errors import InputError

PHILOX = "philox"
SNUDDA = "snudda"
MODES = (PHILOX, SNUDDA)

#: at most this many int64 entries in one batch of cluster-pruning distance matrices.
CLUSTER_BATCH_ENTRIES = 1 << 22
#: draw for every row of a chunk (not only those that need it) when they are at least this fraction.
DRAW_ALL_FRACTION = 0.75
#: Snudda's cluster radius (metres).
CLUSTER_DISTANCE = 10e-6


@dataclass
class PruneContext:
    """Everything a worker needs to prune chunks of one network (picklable)."""

    rules: object  # rules.PruningRules
    neuron_type: np.ndarray
    population_unit: np.ndarray
    max_soma_distance_dend: object  # float64 array or None
    num_neurons: int
    max_channel_type_id: int
    voxel_size: float
    seed: int
    mode: str = PHILOX
    share_parameter_id: bool = True
    worklog_path: str = ""
    #: snudda mode: the per-neuron seeds (default ``SeedSequence(seed).generate_state(num_neurons)``)
    neuron_seeds: object = None

    @classmethod
    def from_network(cls, net, mode=PHILOX, share_parameter_id=True):
        if mode not in MODES:
            raise InputError(f"unknown randomness mode {mode!r}; choose one of {', '.join(MODES)}")
        return cls(rules=net.rules, neuron_type=net.neuron_type, population_unit=net.population_unit,
                   max_soma_distance_dend=net.max_soma_distance_dend, num_neurons=net.num_neurons,
                   max_channel_type_id=net.max_channel_type_id or 1, voxel_size=net.voxel_size,
                   seed=net.random_seed, mode=mode, share_parameter_id=share_parameter_id,
                   worklog_path=net.worklog_path)

    def probability_tables(self, n_max):
        """soft_max/mu2 tables for n up to at least ``n_max`` (grown on demand, cached)."""
        cached = getattr(self, "_tables", None)
        if cached is None or cached[0].shape[1] <= n_max:
            size = max(64, 1 << int(n_max).bit_length())
            self._tables = self.rules.probability_tables(size)
        return self._tables

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_tables", None)
        return state


@dataclass
class ChunkResult:
    """Kept rows of one chunk (output order) and per-pathway counts.

    ``stats`` is an int64 array (4, n_pathway_codes): putative rows, kept rows,
    putative pairs, connected pairs, indexed by ``pathway_code``; ``read_s`` and
    ``compute_s`` are the seconds a worker spent reading and pruning the chunk.
    """

    rows: np.ndarray
    stats: np.ndarray
    num_putative: int
    read_s: float = 0.0
    compute_s: float = 0.0


def pathway_code_size(ctx):
    return PathwayCodes.from_context(ctx).size


def _pathway_code(ctx, src, dest, typ):
    return PathwayCodes.from_context(ctx).encode(ctx.neuron_type[src], ctx.neuron_type[dest], typ)


def _bits(n):
    return max(1, int(n).bit_length())


def _group_key(ctx, dest, src, typ, dest_lo, dest_hi):
    """Packed uint64 key (dest - dest_lo, src, type), or None if it needs more than 64 bits."""
    b_t = 16  # channel types are checked to be below 2**16
    b_s = _bits(ctx.num_neurons - 1)
    b_d = _bits(max(dest_hi - dest_lo - 1, 0))
    if b_t + b_s + b_d > 64:
        return None
    key = (dest - dest_lo).astype(np.uint64) << np.uint64(b_s + b_t)
    key |= src.astype(np.uint64) << np.uint64(b_t)
    key |= typ.astype(np.uint64)
    return key


def _sorted_order(key, dest, src, typ):
    """Stable order by (dest, src, type); None if already sorted, else timsort (fast on sorted runs)."""
    if key is None:
        order = np.lexsort((typ, src, dest))
        return None if bool(np.all(np.diff(order) == 1)) and order[0] == 0 else order
    if _is_sorted(key):
        return None
    return np.argsort(key, kind="stable")


def merge_order(lookup_runs):
    """Snudda's heap-merge order of rows, from the chunk's lookup runs.

    ``lookup_runs`` is (uid, hid, start, length) arrays, ``start`` being the
    run's first row in the concatenated chunk.  Runs are merged by
    (unique_id, hyper voxel id), as Snudda's heap does.
    """
    uid, hid, start, length = lookup_runs
    o = np.lexsort((hid, uid))
    start, length = start[o], length[o]
    total = int(length.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(length) - length  # position of each run in the merged order
    return np.repeat(start - first, length) + np.arange(total, dtype=np.int64)


def _take(a, idx):
    """``a[idx]``, with ``idx`` None meaning every row (no copy)."""
    return a if idx is None else a[idx]


def _group_sums(flags, starts):
    """Number of set flags in each group (groups start at ``starts``, in order)."""
    c = np.cumsum(flags, dtype=np.int64)
    ends = np.append(starts[1:], flags.size) - 1
    before = np.where(starts > 0, c[starts - 1], 0)
    return c[ends] - before


def _expand(starts, sizes):
    """Positions of all rows of the groups with the given starts and sizes (ascending)."""
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(sizes) - sizes
    return np.repeat(starts - first, sizes) + np.arange(total, dtype=np.int64)


class _PhiloxDraws:
    """Philox draws for the groups and rows of one chunk (DESIGN §4).

    Counter words are gathered block by block inside the generator loop, so
    that the per-row gathers run in cache.
    """

    def __init__(self, ctx, kind_id, s_src, s_dest, s_typ, pos, dest_lo, dest_hi):
        k0, k1 = _rng.neuron_keys(ctx.seed, np.arange(dest_lo, dest_hi, dtype=np.int64))
        self.k0, self.k1 = k0.astype(np.uint32), k1.astype(np.uint32)
        self.dest_lo = dest_lo
        self.kind_bits = np.uint32(kind_id << 16)
        self.s_src, self.s_dest, self.s_typ, self.pos = s_src, s_dest, s_typ, pos

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


class _SnuddaDraws:
    """Snudda's draws: each dest neuron's PCG64 stream, ``3n + 2`` numbers per group with parameters."""

    def __init__(self, ctx, g_dest, sizes, pidx, pos, gid):
        from gpuprune.rng.pcg64 import pcg64_uniform_streams

        cost = np.where(pidx >= 0, 3 * sizes + 2, 0).astype(np.int64)
        # Groups of one dest are contiguous (merge order is dest-major).
        dests, first, per_dest = np.unique(g_dest, return_index=True, return_counts=True)
        lengths = np.add.reduceat(cost, first) if first.size else np.zeros(0, dtype=np.int64)
        stream_base = np.cumsum(lengths) - lengths
        excl = np.cumsum(cost) - cost
        # index of each group's first number in `self.u`
        self.offset = excl + np.repeat(stream_base - excl[first], per_dest)
        self.u = pcg64_uniform_streams(_neuron_seed_table(ctx)[dests], lengths)
        self.sizes = sizes.astype(np.int64)
        self.pos, self.gid = pos, gid

    def group(self, starts):
        g = self.gid[starts]
        end = self.offset[g] + 3 * self.sizes[g]
        return self.u[end + 1], self.u[end]  # r_a3 = pool[-1], r_mu2 = pool[-2]

    def rows(self, idx, both):
        g = _take(self.gid, idx)
        base = self.offset[g] + _take(self.pos, idx)
        return self.u[base], (self.u[base + self.sizes[g]] if both else None)

    def rows_sm(self, idx):
        g = _take(self.gid, idx)
        return self.u[self.offset[g] + 2 * self.sizes[g] + _take(self.pos, idx)]


def _neuron_seed_table(ctx):
    if ctx.neuron_seeds is None:
        ctx.neuron_seeds = np.random.SeedSequence(ctx.seed).generate_state(ctx.num_neurons)
    return ctx.neuron_seeds


def _check_relative_distance(ctx, g_c8_min, g_c8_max, g_dest):
    """Every row of a distance-pruned group needs 0 <= r = d / max_soma_distance_dend <= 1.

    Division is monotonic, so a group's smallest and largest column-8 values
    decide; r is computed exactly as Snudda does (float64 d over the widened
    float32 maximum).
    """
    if ctx.max_soma_distance_dend is None or g_dest.size == 0:
        return
    msd = ctx.max_soma_distance_dend[g_dest]
    with np.errstate(divide="ignore", invalid="ignore"):
        r_lo = _metres(g_c8_min) / msd
        r_hi = _metres(g_c8_max) / msd
    bad = ~((r_lo >= 0) & (r_hi <= 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"relative dendrite distance r = d / max_soma_distance_dend must lie in 0..1, but synapses "
            f"onto neuron {int(g_dest[i])} have d = {int(g_c8_min[i])}..{int(g_c8_max[i])} um and "
            f"max_soma_distance_dend = {msd[i]!r} m", ctx.worklog_path)


def _metres(col8):
    """Column 8 (integer um) to float64 metres, the way Snudda computes ``d``."""
    return col8 * 1e-6


def _distance_probability(ctx, expr, col8, dest_of):
    """p(d) per row: NumPy on distinct arguments (philox) or numexpr as Snudda (snudda).

    ``dest_of()`` returns the rows' dest neurons; it is only called when ``r`` is needed.
    """
    if ctx.mode == SNUDDA or expr.uses_r:  # per row: with r, every (d, dest) pair is its own argument
        d = _metres(col8)
        r = d / ctx.max_soma_distance_dend[dest_of()] if expr.uses_r else None
        return expr.evaluate_numexpr(d, r) if ctx.mode == SNUDDA else expr.evaluate(d, r)
    lo, hi = int(col8.min()), int(col8.max())
    if hi - lo < 4 * col8.size + 4096:  # dense table over the values' range
        table = expr.evaluate(_metres(np.arange(lo, hi + 1, dtype=np.int64)))
        return table[col8 - lo]
    values, inverse = np.unique(col8, return_inverse=True)
    return expr.evaluate(_metres(values.astype(np.int64)))[inverse]


def _cluster_select(ctx, coords_of, cand_pos, cand_group, n_keep_of_group, stable):
    """Cluster pruning for many groups at once, batched by candidate count.

    Parameters
    ----------
    coords_of : callable
        Maps chunk-order row positions to (k, 3) int64 voxel coordinates.
    cand_pos, cand_group : ndarray
        Candidate rows (positions, grouped and ascending within a group) and their group.
    n_keep_of_group : ndarray
        Rows to keep per group (indexed by group id).
    stable : bool
        Ties by lower index (philox) or NumPy's default argsort order (snudda).

    Returns
    -------
    ndarray
        Positions of the rows to keep.
    """
    threshold = CLUSTER_DISTANCE / ctx.voxel_size
    groups, first, m_of = np.unique(cand_group, return_index=True, return_counts=True)
    kept = []
    for m in np.unique(m_of):  # one pass per distinct candidate count, not per group
        sel = np.flatnonzero(m_of == m)
        per_batch = max(1, CLUSTER_BATCH_ENTRIES // int(m * m))
        for b in range(0, sel.size, per_batch):
            s = sel[b:b + per_batch]
            pos = cand_pos[first[s][:, None] + np.arange(m)]  # (G, m)
            coords = coords_of(pos.reshape(-1)).reshape(s.size, m, 3)
            counts = np.zeros((s.size, m), dtype=np.int64)
            rows_per_block = max(1, CLUSTER_BATCH_ENTRIES // max(1, s.size * m))
            for r0 in range(0, m, rows_per_block):  # blocks of rows for very large groups
                sub = coords[:, r0:r0 + rows_per_block]
                sq = np.zeros((s.size, sub.shape[1], m), dtype=np.int64)
                for a in range(3):
                    diff = sub[:, :, None, a] - coords[:, None, :, a]
                    sq += diff * diff
                counts[:, r0:r0 + rows_per_block] = (np.sqrt(sq.astype(np.float64)) < threshold).sum(axis=2)
            order = np.argsort(-counts, axis=1, kind="stable" if stable else None)
            take = np.arange(m)[None, :] < n_keep_of_group[groups[s]][:, None]
            kept.append(np.take_along_axis(pos, order, axis=1)[take])
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


def prune_chunk(ctx, kind, rows, dest_lo, dest_hi, lookup_runs=None, draws=None, trace=None):
    """Prune all rows onto dest neurons ``[dest_lo, dest_hi)``.

    Parameters
    ----------
    ctx : PruneContext
    kind : network.Kind
    rows : ndarray of int32, shape (n, width)
        The chunk's rows, concatenated in source-file order (DESIGN §4).
    dest_lo, dest_hi : int
        The chunk's dest range; every row's dest must lie in it.
    lookup_runs : tuple of ndarray, optional
        (unique_id, hyper voxel id, start, length) of the chunk's lookup runs;
        required in snudda mode.
    draws : callable, optional
        For tests: ``draws(starts, sizes, pos)`` returns an object with the
        methods ``group(starts)``, ``rows(idx, both)`` and ``rows_sm(idx)`` that
        supplies the random numbers instead of the mode's generator.
    trace : callable, optional
        For the report's funnel: ``trace(starts, sizes, g_src, g_dest, g_typ)``
        returns a callable ``step(name, keep)`` that is called with the row
        mask (chunk order) after each rule: ``"rule"`` (groups with parameters),
        ``"a3"``, ``"f1"`` (with distance), ``"soft_max"``, ``"mu2"``,
        ``"cluster"``.  It must not keep ``keep``, which changes afterwards.

    Returns
    -------
    ChunkResult
    """
    n = rows.shape[0]
    is_syn = kind.kind_id == _rng.KIND_SYNAPSE
    stats = np.zeros((4, pathway_code_size(ctx)), dtype=np.int64)
    if n == 0:
        return ChunkResult(rows[:0].copy(), stats, 0)
    # contiguous copies of the columns that drive grouping (row columns are strided)
    src, dest = np.ascontiguousarray(rows[:, 0]), np.ascontiguousarray(rows[:, 1])
    typ = np.ascontiguousarray(rows[:, 6]) if is_syn else np.full(n, 3, dtype=np.int32)
    if int(dest.min()) < dest_lo or int(dest.max()) >= dest_hi or int(src.min()) < 0 \
            or int(src.max()) >= ctx.num_neurons:
        raise InputError(f"{kind.name} rows disagree with the lookup tables: rows of the slice for dest "
                         f"neurons {dest_lo}..{dest_hi - 1} name neurons outside that range or outside "
                         f"0..{ctx.num_neurons - 1}")
    if is_syn and (int(typ.min()) < 0 or int(typ.max()) >= 2 ** 16):
        raise InputError("synapse channel types must lie in 0 .. 2**16-1")

    # 1. order (None: the rows are in order already, e.g. one sorted file)
    key = _group_key(ctx, dest, src, typ, dest_lo, dest_hi)
    if ctx.mode == SNUDDA:
        if lookup_runs is None:
            raise ValueError("snudda mode needs the chunk's lookup runs")
        order = merge_order(lookup_runs)
        if order.size != n:
            raise InputError(f"{kind.name} lookup runs cover {order.size} rows but the slices hold {n}")
        if bool(np.all(np.diff(order) == 1)) and order[0] == 0:
            order = None
    else:
        order = _sorted_order(key, dest, src, typ)
    if order is None:
        s_src, s_dest, s_typ = src, dest, typ
    else:
        s_src, s_dest, s_typ = src[order], dest[order], typ[order]

    # 2. segment: a group is a run of equal (dest, src, type) in this order
    if key is not None:
        ks = _take(key, order)
        new = ks[1:] != ks[:-1]
    else:
        new = (s_src[1:] != s_src[:-1]) | (s_dest[1:] != s_dest[:-1]) | (s_typ[1:] != s_typ[:-1])
    starts = np.flatnonzero(np.concatenate(([True], new)))
    sizes = np.diff(np.append(starts, n))
    if sizes.max() >= 2 ** 32 - 1:
        raise InputError("a group has 2**32-1 rows or more")
    pos = np.arange(n, dtype=np.int32) - np.repeat(starts.astype(np.int32), sizes)
    g_src, g_dest, g_typ = s_src[starts], s_dest[starts], s_typ[starts]
    n_groups = starts.size

    rules = ctx.rules
    other = ctx.population_unit[g_src] != ctx.population_unit[g_dest]
    pidx = rules.parameter_index(ctx.neuron_type[g_src], ctx.neuron_type[g_dest], g_typ, other)
    has = pidx >= 0
    p = np.where(has, pidx, 0)  # safe index; masked by `has`
    live = has.copy()
    no_rules = not rules.parameter_sets
    if trace is not None:
        trace = trace(starts, sizes, g_src, g_dest, g_typ)
        trace("rule", np.repeat(has, sizes))

    if draws is not None:
        draws = draws(starts, sizes, pos)
    elif ctx.mode == SNUDDA:
        gid = np.repeat(np.arange(n_groups), sizes)
        draws = _SnuddaDraws(ctx, g_dest, sizes, pidx, pos, gid)
    else:
        draws = _PhiloxDraws(ctx, kind.kind_id, s_src, s_dest, s_typ, pos, dest_lo, dest_hi)

    # Distance rule: r must be valid for every group with dist_pruning.
    g_dist = np.zeros(n_groups, dtype=bool) if no_rules else has & (rules.dist_index[p] >= 0)
    c8 = None
    if g_dist.any():
        c8 = _take(rows[:, 8], order)
        _check_relative_distance(ctx, np.minimum.reduceat(c8, starts)[g_dist],
                                 np.maximum.reduceat(c8, starts)[g_dist], g_dest[g_dist])

    # a3 and mu2 draws, per group
    r_mu2 = None
    if not no_rules:
        gd = np.flatnonzero(has & (rules.has_a3[p] | rules.has_mu2[p]))
        if gd.size:
            r_a3_sel, r_mu2_sel = draws.group(starts[gd])
            r_mu2 = np.zeros(n_groups)
            r_mu2[gd] = r_mu2_sel
            drop = rules.has_a3[p[gd]] & (r_a3_sel > rules.a3[p[gd]])
            live[gd[drop]] = False

    # f1 and distance, per row
    keep = np.repeat(live, sizes)
    if trace is not None:
        trace("a3", keep)
    dist_pass = None
    need_g = np.zeros(n_groups, dtype=bool) if no_rules else live & rules.needs_row_draw[p]
    if need_g.any():
        # Parameter tables with one more entry (index -1) for rows that need no draw: always pass.
        f1_x = np.append(rules.f1, 2.0)
        dist_x = np.append(rules.dist_index, -1).astype(np.int32)
        if ctx.mode == PHILOX and int(sizes[need_g].sum()) >= DRAW_ALL_FRACTION * n:
            # Draw for every row: contiguous counters beat gathering the few rows to skip.
            idx = None
            rp = np.repeat(np.where(need_g, p, -1).astype(np.int32), sizes)
        else:
            idx = _expand(starts[need_g], sizes[need_g])
            rp = np.repeat(p[need_g].astype(np.int32), sizes[need_g])
        dist_of = dist_x[rp]
        any_dist = bool((dist_of >= 0).any())
        r_f1, r_dist = draws.rows(idx, both=any_dist)
        ok = r_f1 < f1_x[rp]
        if any_dist:
            dist_pass = np.ones(n, dtype=bool)
            for e, expr in enumerate(rules.expressions):  # once per distinct expression
                sel = np.flatnonzero(dist_of == e)
                if sel.size == 0:
                    continue
                at = sel if idx is None else idx[sel]
                prob = _distance_probability(ctx, expr, c8[at], lambda at=at: s_dest[at])
                passed = r_dist[sel] < prob
                dist_pass[at] = passed
                ok[sel] &= passed
        if idx is None:
            keep &= ok
        else:
            keep[idx] = ok

    n_keep = _group_sums(keep, starts)
    if trace is not None:
        trace("f1", keep)

    # soft_max
    g_sm = np.zeros(n_groups, dtype=bool) if no_rules else \
        live & rules.has_soft_max[p] & (n_keep > rules.soft_max[p])
    if g_sm.any():
        p_keep, _ = ctx.probability_tables(int(n_keep.max()))
        at = _expand(starts[g_sm], sizes[g_sm])
        thr = np.repeat(p_keep[p[g_sm], n_keep[g_sm]], sizes[g_sm])
        at_kept = keep[at]
        at, thr = at[at_kept], thr[at_kept]
        keep[at] = draws.rows_sm(at) < thr
        n_keep = _group_sums(keep, starts)
    if trace is not None:
        trace("soft_max", keep)

    # mu2
    if r_mu2 is not None:
        g_mu = np.flatnonzero(live & rules.has_mu2[p])
        if g_mu.size:
            _, p_mu = ctx.probability_tables(int(n_keep.max()))
            drop = p_mu[p[g_mu], n_keep[g_mu]] < r_mu2[g_mu]
            if drop.any():
                dropped = g_mu[drop]
                live[dropped] = False
                keep[_expand(starts[dropped], sizes[dropped])] = False
    n_keep = np.where(live, n_keep, 0)
    if trace is not None:
        trace("mu2", keep)

    # cluster pruning: keep the n most clustered candidates
    g_cl = np.zeros(n_groups, dtype=bool) if no_rules else live & rules.cluster[p] & (n_keep > 0)
    if g_cl.any():
        at = _expand(starts[g_cl], sizes[g_cl])
        cand_pos = at if dist_pass is None else at[dist_pass[at]]
        cand_group = np.searchsorted(starts, cand_pos, side="right") - 1
        chosen = _cluster_select(ctx, lambda q: rows[_take(order, q) if order is not None else q, 2:5]
                                 .astype(np.int64), cand_pos, cand_group, n_keep, stable=ctx.mode != SNUDDA)
        keep[at] = False
        keep[chosen] = True
    if trace is not None:
        trace("cluster", keep)

    # 5. compact
    kept = np.flatnonzero(keep)
    out = rows[_take(order, kept) if order is not None else kept]
    kept_g = _group_sums(keep, starts)
    if is_syn and ctx.share_parameter_id:
        first_rows = _take(order, starts) if order is not None else starts
        out[:, 12] = np.repeat(rows[first_rows, 12], kept_g)

    # per-pathway statistics
    code_g = _pathway_code(ctx, g_src, g_dest, g_typ)
    size = stats.shape[1]
    stats[0] = np.bincount(code_g, weights=sizes, minlength=size).astype(np.int64)
    stats[1] = np.bincount(code_g, weights=kept_g, minlength=size).astype(np.int64)
    if ctx.mode == SNUDDA and key is not None and not _is_sorted(_take(key, order)):
        # runs of one (pair, type) may be split in merge order: count pairs on the sorted key
        ks = np.sort(_take(key, order))
        stats[2] = np.bincount(_pathway_code(ctx, *_unpack_key(ctx, ks[np.concatenate(([True], ks[1:] != ks[:-1]))],
                                                                 dest_lo, dest_hi)), minlength=size)
        kk = np.unique(_take(key, order)[keep])
        stats[3] = np.bincount(_pathway_code(ctx, *_unpack_key(ctx, kk, dest_lo, dest_hi)), minlength=size)
    else:
        stats[2] = np.bincount(code_g, minlength=size)
        stats[3] = np.bincount(code_g[kept_g > 0], minlength=size)
    return ChunkResult(out, stats, n)


def _is_sorted(a):
    return a.size < 2 or bool(np.all(a[1:] >= a[:-1]))


def _unpack_key(ctx, key, dest_lo, dest_hi):
    """Inverse of :func:`_group_key`: (src, dest, type) arrays."""
    b_t = 16
    b_s = _bits(ctx.num_neurons - 1)
    typ = (key & np.uint64((1 << b_t) - 1)).astype(np.int64)
    src = ((key >> np.uint64(b_t)) & np.uint64((1 << b_s) - 1)).astype(np.int64)
    dest = (key >> np.uint64(b_s + b_t)).astype(np.int64) + dest_lo
    return src, dest, typ
