"""The in-memory pathway model: what a prune of one pathway needs that does not depend on f1, soft_max,
mu2 and a3 (DESIGN §7).

With the distance expression and the seed fixed, every draw of DESIGN §4 and every row's distance-test
outcome are fixed, so they are computed once here.  Rows that fail the distance test can never be kept
and are left out; what remains is, per row, ``r_f1`` and ``r_sm`` and its group, and per group its
pair, its parameter block (``pruning`` or ``pruning_other``), ``r_a3`` and ``r_mu2``.  Cluster pruning
changes which rows of a group are kept, never how many (it keeps the ``n`` most clustered of the rows
that passed the distance test, and the ``n`` kept rows are among them), so it needs nothing here.

The rows are read once, chunk by chunk, with the same planner and reader as ``prune``; the draws come
from the engine's own providers (philox: ``gpuprune.rng`` row/group draws; snudda: the engine's
per-dest PCG64 streams with their ``3n + 2`` offsets over every group that has parameters).
"""

from dataclasses import dataclass

import numpy as np

from gpuprune import rng as _rng
from gpuprune.engine import (
    SNUDDA,
    PruneContext,
    check_relative_distance,
    distance_probability,
    draws_for,
    group_key,
    grouping_columns,
    order_rows,
    segment,
)
from gpuprune.errors import InputError
from gpuprune.format import KINDS
from gpuprune.io.reader import close_files, read_chunk
from gpuprune.rules import GAP_JUNCTION_CHANNEL

#: rows read per chunk while building a model
BUILD_ROW_BUDGET = 2_000_000


@dataclass
class PathwayModel:
    """One pathway under one seed, ready for batched evaluation.

    Groups are sorted by pair (dest, src); rows by group, then ascending ``r_f1`` (a row's place in its
    group does not matter to the counts).
    """

    pathway: tuple  # (pre, post, con_type)
    seed: int
    mode: str
    num_putative: int  # putative rows of the pathway
    group_src: np.ndarray
    group_dest: np.ndarray
    group_block: np.ndarray  # int8: 0 pruning, 1 pruning_other
    group_size: np.ndarray  # putative rows per group
    r_a3: np.ndarray
    r_mu2: np.ndarray
    row_group: np.ndarray  # int32, rows that passed the distance test only
    r_f1: np.ndarray
    r_sm: np.ndarray
    pair_of_group: np.ndarray  # index into pair_src / pair_dest
    pair_src: np.ndarray
    pair_dest: np.ndarray
    #: per stored row: its synapse lies within the z range (``Tuner(min_z=, max_z=)``); None: no cut
    row_inside: np.ndarray = None
    z_range: tuple = (None, None)

    @property
    def num_groups(self):
        return self.group_src.size

    @property
    def num_rows(self):
        return self.row_group.size

    def nbytes(self):
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))

    def row_bounds(self):
        """``(bounds, n_max)``: int64 (groups + 1,) first stored row of each group (rows are sorted by group),
        and the most stored rows of any group."""
        bounds = np.searchsorted(self.row_group, np.arange(self.num_groups + 1)).astype(np.int64)
        return bounds, int(np.max(np.diff(bounds), initial=0))

    def subset(self, pairs):
        """The model of the pairs ``pairs`` (sorted indices into ``pair_src``) alone: groups are pruned
        independently, so its evaluation is the full one's restricted to those pairs."""
        pairs = np.asarray(pairs, dtype=np.int64)
        keep_pair = np.zeros(self.pair_src.size, dtype=bool)
        keep_pair[pairs] = True
        groups = np.flatnonzero(keep_pair[self.pair_of_group])
        new_group = np.full(self.num_groups, -1, dtype=np.int64)
        new_group[groups] = np.arange(groups.size)
        new_pair = np.full(self.pair_src.size, -1, dtype=np.int64)
        new_pair[pairs] = np.arange(pairs.size)
        rows = np.flatnonzero(keep_pair[self.pair_of_group[self.row_group]])  # order kept: by group, then r_f1
        return PathwayModel(
            pathway=self.pathway, seed=self.seed, mode=self.mode, num_putative=int(self.group_size[groups].sum()),
            group_src=self.group_src[groups], group_dest=self.group_dest[groups], group_block=self.group_block[groups],
            group_size=self.group_size[groups], r_a3=self.r_a3[groups], r_mu2=self.r_mu2[groups],
            row_group=new_group[self.row_group[rows]].astype(np.int32), r_f1=self.r_f1[rows], r_sm=self.r_sm[rows],
            pair_of_group=new_pair[self.pair_of_group[groups]], pair_src=self.pair_src[pairs],
            pair_dest=self.pair_dest[pairs], row_inside=None if self.row_inside is None else self.row_inside[rows],
            z_range=self.z_range)


def build_model(net, pathway, codes, blocks, draw_rules, seed, mode, row_budget=BUILD_ROW_BUDGET, z_range=None):
    """Read the pathway's rows and compute its fixed draws and distance-test outcomes.

    Parameters
    ----------
    net : io.network.Network
    pathway : tuple
        (pre, post, con_type) names.
    codes : tuple
        (pre type id, post type id, channel model id).
    blocks : sequence of rules.ParameterSet
        ``pruning`` and, if the pathway uses it, ``pruning_other`` (their distance expressions are used).
    draw_rules : rules.PruningRules
        Which groups have parameters, i.e. consume snudda-mode random numbers (ignored in philox mode).
    z_range : (min_z, max_z), optional
        Count only synapses whose z coordinate (metres: voxel z * voxel size + simulation origin z, as
        SnuddaLoad computes ``synapse_coords``) lies in ``[min_z, max_z]`` (either may be None), as
        ``OptimisePruning``'s slice cut; pruning itself still sees every row.
    """
    pre_t, post_t, channel = codes
    kind = KINDS["gap_junctions" if channel == GAP_JUNCTION_CHANNEL else "synapses"]
    ctx = PruneContext.from_network(net, mode=mode)
    ctx.seed = _rng.check_seed(seed)
    ctx.rules = draw_rules
    is_post = net.neuron_type == post_t
    post_before = np.concatenate(([0], np.cumsum(is_post)))
    files = net.spec()["files"][kind.name]
    parts = []
    try:
        for chunk in net.plan(kind.name, row_budget):
            if post_before[chunk.dest_hi] == post_before[chunk.dest_lo]:
                continue  # no post neuron of the pathway in this range
            rows, runs = read_chunk(files, kind, chunk, with_lookup=mode == SNUDDA)
            parts.append(_chunk_part(ctx, kind, rows, runs, chunk, codes, blocks, _cut(net, z_range)))
    finally:
        close_files()
    return _assemble(pathway, ctx.seed, mode, parts, net.path, z_range)


def _cut(net, z_range):
    """``rows -> bool`` per row: synapse z within ``z_range`` (None without a cut)."""
    if z_range is None or z_range == (None, None):
        return None
    lo, hi = z_range
    voxel_size, origo_z = net.voxel_size, float(net.simulation_origo[2])

    def inside(rows):
        z = rows[:, 4].astype(np.float64) * voxel_size + origo_z  # as SnuddaLoad's synapse_coords
        ok = np.ones(z.shape, dtype=bool)
        if lo is not None:
            ok &= ~(z < lo)
        if hi is not None:
            ok &= ~(z > hi)
        return ok
    return inside


def _chunk_part(ctx, kind, rows, runs, chunk, codes, blocks, cut=None):
    pre_t, post_t, channel = codes
    # the engine's own steps (order, segment) and draw provider: the model sees what a prune sees
    src, dest, typ = grouping_columns(ctx, kind, rows, chunk.dest_lo, chunk.dest_hi)
    key = group_key(ctx, dest, src, typ, chunk.dest_lo, chunk.dest_hi)
    groups = segment(key, order_rows(ctx, kind.name, key, src, dest, typ, runs), src, dest, typ)
    starts, sizes = groups.starts, groups.sizes
    g_src, g_dest, g_typ = groups.g_src, groups.g_dest, groups.g_typ
    sel = np.flatnonzero((ctx.neuron_type[g_src] == pre_t) & (ctx.neuron_type[g_dest] == post_t) & (g_typ == channel))
    if sel.size == 0:
        return None
    other = ctx.population_unit[g_src[sel]] != ctx.population_unit[g_dest[sel]]
    block = (other & (len(blocks) > 1)).astype(np.int8)
    at = np.repeat(starts[sel] - np.cumsum(sizes[sel]) + sizes[sel], sizes[sel]) + np.arange(int(sizes[sel].sum()))
    row_sel_group = np.repeat(np.arange(sel.size), sizes[sel])
    pidx = None
    if ctx.mode == SNUDDA:  # which groups consume numbers of their dest's stream
        other_all = ctx.population_unit[g_src] != ctx.population_unit[g_dest]
        pidx = ctx.rules.parameter_index(ctx.neuron_type[g_src], ctx.neuron_type[g_dest], g_typ, other_all)
        if np.any(pidx[sel] < 0):
            raise InputError("the fitted pathway must have parameters in the rules that drive the draws")
    draws = draws_for(ctx, kind.kind_id, groups, pidx, chunk.dest_lo, chunk.dest_hi)
    r_a3, r_mu2 = draws.group(starts[sel])
    r_f1, r_dist = draws.rows(at, both=True)
    r_sm = draws.rows_sm(at)
    # the distance test, fixed during a fit: per block, with the block's expression
    passed = np.ones(at.size, dtype=bool)
    c8 = rows[groups.chunk_rows(at), 8]
    row_block = block[row_sel_group]
    for b, ps in enumerate(blocks):  # at most two blocks
        expr = ps.dist_pruning
        if expr is None or kind.kind_id != _rng.KIND_SYNAPSE:
            continue
        rsel = np.flatnonzero(row_block == b)
        gsel = np.flatnonzero(block == b)
        if rsel.size == 0:
            continue
        g_first = np.cumsum(sizes[sel]) - sizes[sel]
        c8_min = np.minimum.reduceat(c8, g_first)[gsel]
        c8_max = np.maximum.reduceat(c8, g_first)[gsel]
        check_relative_distance(ctx, c8_min, c8_max, g_dest[sel][gsel])
        dests = groups.dest[at][rsel]
        prob = distance_probability(ctx, expr, c8[rsel], lambda dests=dests: dests)
        passed[rsel] = r_dist[rsel] < prob
    keep = np.flatnonzero(passed)
    inside = None if cut is None else cut(rows[groups.chunk_rows(at[keep])])
    return (g_src[sel], g_dest[sel], block, sizes[sel], r_a3, r_mu2, row_sel_group[keep], r_f1[keep], r_sm[keep],
            inside)


def _assemble(pathway, seed, mode, parts, where, z_range=None):
    parts = [p for p in parts if p is not None]
    if not parts:
        raise InputError(f"pathway {','.join(pathway)} has no putative rows in this network", where)
    offsets = np.cumsum([0] + [p[0].size for p in parts])[:-1]
    cat = [np.concatenate([p[i] for p in parts]) for i in range(6)]
    row_group = np.concatenate([p[6] + o for p, o in zip(parts, offsets, strict=True)])
    r_f1 = np.concatenate([p[7] for p in parts])
    r_sm = np.concatenate([p[8] for p in parts])
    inside = None if parts[0][9] is None else np.concatenate([p[9] for p in parts])
    g_src, g_dest, block, size, r_a3, r_mu2 = cat
    # groups by pair (snudda mode may split one pair's rows into several groups); stable
    pair_key = g_dest.astype(np.int64) * (int(g_src.max()) + 1) + g_src
    gorder = np.argsort(pair_key, kind="stable")
    rank = np.empty_like(gorder)
    rank[gorder] = np.arange(gorder.size)
    new_group = rank[row_group]
    # rows by group, then by r_f1: the rows f1 keeps are a prefix of their group (what soft_max revisits)
    rorder = np.lexsort((r_f1, new_group))
    keys, pair_of_group = np.unique(pair_key[gorder], return_inverse=True)
    first = np.searchsorted(pair_key[gorder], keys)
    return PathwayModel(
        pathway=tuple(pathway), seed=seed, mode=mode, num_putative=int(size.sum()),
        group_src=g_src[gorder].astype(np.int64), group_dest=g_dest[gorder].astype(np.int64),
        group_block=block[gorder], group_size=size[gorder].astype(np.int64),
        r_a3=r_a3[gorder], r_mu2=r_mu2[gorder], row_group=new_group[rorder].astype(np.int32),
        r_f1=r_f1[rorder], r_sm=r_sm[rorder], pair_of_group=pair_of_group.astype(np.int64).reshape(-1),
        pair_src=g_src[gorder][first].astype(np.int64), pair_dest=g_dest[gorder][first].astype(np.int64),
        row_inside=None if inside is None else inside[rorder],
        z_range=(None, None) if z_range is None else tuple(z_range))
