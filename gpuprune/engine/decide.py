"""Step 3 of pruning a chunk, decide: which rows of each group the rules keep (DESIGN §3).

The rules run in Snudda's order, each a function ``rule(state, draws)`` of
:data:`RULES` that updates a :class:`Decision` (per-group ``live`` flags,
per-row ``keep`` flags and kept counts): a3, f1 with the distance rule,
soft_max, mu2, cluster pruning.  Each compares draws against parameters with
one of the threshold functions below; those are the whole semantics of a rule
at its boundary (a draw equal to the threshold), and a tuner evaluating
parameter sets in memory can call them on its own draws.

:func:`decide` runs every rule on a segmented chunk with a draw provider
(:mod:`gpuprune.engine.draws`).
"""

from dataclasses import dataclass

import numpy as np

from gpuprune.engine.cluster import cluster_select
from gpuprune.engine.context import PHILOX, SNUDDA
from gpuprune.engine.groups import group_sums
from gpuprune.errors import InputError

#: draw for every row of a chunk (not only those that need it) when they are at least this fraction.
DRAW_ALL_FRACTION = 0.75


# -- thresholds: the comparison each rule makes -------------------------------------------------

def a3_drops(r_a3, a3):
    """a3: a group is dropped whole when its draw exceeds ``a3`` (a draw equal to ``a3`` keeps it)."""
    return r_a3 > a3


def f1_passes(r_f1, f1):
    """f1: a row passes when its draw is below ``f1`` (a draw equal to ``f1`` fails)."""
    return r_f1 < f1


def distance_passes(r_dist, p):
    """Distance rule: a row passes when its draw is below ``p(d)`` (equal fails)."""
    return r_dist < p


def soft_max_passes(r_sm, p_keep):
    """soft_max: a kept row stays when its draw is below ``p_keep(n)`` (equal fails)."""
    return r_sm < p_keep


def mu2_drops(r_mu2, p_mu):
    """mu2: a group is dropped whole when ``p_mu(n)`` is below its draw (equal keeps it)."""
    return p_mu < r_mu2


# -- the state the rules update ---------------------------------------------------------------------

def parameter_index(ctx, groups):
    """Each group's parameter-set index (-1: no rule covers its pathway, the group is dropped)."""
    other = ctx.population_unit[groups.g_src] != ctx.population_unit[groups.g_dest]
    return ctx.rules.parameter_index(ctx.neuron_type[groups.g_src], ctx.neuron_type[groups.g_dest],
                                     groups.g_typ, other)


@dataclass
class Decision:
    """What the rules have decided so far for one chunk.

    Attributes
    ----------
    p : ndarray
        Each group's parameter-set index, 0 where it has none (masked by ``has``).
    live : ndarray of bool
        Groups still alive (not dropped whole by a3, mu2, or for lack of parameters).
    keep : ndarray of bool
        Rows kept so far, in group order.
    n_keep : ndarray of int64
        Kept rows per group (0 for dead groups once mu2 has run).
    """

    ctx: object
    rows: np.ndarray  # the chunk's rows, chunk order
    groups: object  # Groups
    p: np.ndarray
    has: np.ndarray
    live: np.ndarray
    keep: np.ndarray = None
    n_keep: np.ndarray = None
    r_mu2: np.ndarray = None  # per group, drawn with r_a3 (None: no group has a3 or mu2)
    dist_pass: np.ndarray = None  # per row, where the distance rule ran (None: it did not)
    c8: np.ndarray = None  # column 8 in group order, where a group has a distance rule

    @classmethod
    def start(cls, ctx, rows, groups, pidx):
        has = pidx >= 0
        state = cls(ctx, rows, groups, p=np.where(has, pidx, 0), has=has, live=has.copy())
        state.keep = np.repeat(state.live, groups.sizes)
        return state

    @property
    def rules(self):
        return self.ctx.rules

    def groups_with(self, flags):
        """Per-group mask: live groups whose parameter set has ``flags`` (an array over sets)."""
        if not self.rules.parameter_sets:
            return np.zeros(self.groups.n_groups, dtype=bool)
        return self.live & flags[self.p]


# -- the rules, in order ----------------------------------------------------------------------------

def check_distances(state, draws):
    """Every row of a distance-pruned group needs a relative distance ``r`` in 0..1."""
    rules, g = state.rules, state.groups
    if not rules.parameter_sets:
        return
    g_dist = state.has & (rules.dist_index[state.p] >= 0)
    if g_dist.any():
        state.c8 = g.column(state.rows, 8)
        check_relative_distance(state.ctx, np.minimum.reduceat(state.c8, g.starts)[g_dist],
                                np.maximum.reduceat(state.c8, g.starts)[g_dist], g.g_dest[g_dist])


def apply_a3(state, draws):
    """a3 drops whole groups; its draw comes with mu2's (one pair per group)."""
    rules, p = state.rules, state.p
    if not rules.parameter_sets:
        state.keep = np.repeat(state.live, state.groups.sizes)
        return
    gd = np.flatnonzero(state.has & (rules.has_a3[p] | rules.has_mu2[p]))
    if gd.size:
        r_a3_sel, r_mu2_sel = draws.group(state.groups.starts[gd])
        state.r_mu2 = np.zeros(state.groups.n_groups)
        state.r_mu2[gd] = r_mu2_sel
        drop = rules.has_a3[p[gd]] & a3_drops(r_a3_sel, rules.a3[p[gd]])
        state.live[gd[drop]] = False
    state.keep = np.repeat(state.live, state.groups.sizes)


def apply_f1_distance(state, draws):
    """f1 and the distance rule, per row, on one pair of draws; then count the kept rows."""
    ctx, rules, g = state.ctx, state.rules, state.groups
    sizes, p, n = g.sizes, state.p, g.n_rows
    keep = state.keep
    need_g = state.groups_with(rules.needs_row_draw)
    if need_g.any():
        # Parameter tables with one more entry (index -1) for rows that need no draw: always pass.
        f1_x = np.append(rules.f1, 2.0)
        dist_x = np.append(rules.dist_index, -1).astype(np.int32)
        if ctx.mode == PHILOX and int(sizes[need_g].sum()) >= DRAW_ALL_FRACTION * n:
            # Draw for every row: contiguous counters beat gathering the few rows to skip.
            idx = None
            rp = np.repeat(np.where(need_g, p, -1).astype(np.int32), sizes)
        else:
            idx = g.rows_of(need_g)
            rp = np.repeat(p[need_g].astype(np.int32), sizes[need_g])
        dist_of = dist_x[rp]
        any_dist = bool((dist_of >= 0).any())
        r_f1, r_dist = draws.rows(idx, both=any_dist)
        ok = f1_passes(r_f1, f1_x[rp])
        if any_dist:
            state.dist_pass = np.ones(n, dtype=bool)
            for e, expr in enumerate(rules.expressions):  # once per distinct expression
                sel = np.flatnonzero(dist_of == e)
                if sel.size == 0:
                    continue
                at = sel if idx is None else idx[sel]
                prob = distance_probability(ctx, expr, state.c8[at], lambda at=at: g.dest[at])
                rules.check_probabilities(e, prob, lambda i, at=at: metres(state.c8[at[i]]))
                passed = distance_passes(r_dist[sel], prob)
                state.dist_pass[at] = passed
                ok[sel] &= passed
        if idx is None:
            keep &= ok
        else:
            keep[idx] = ok
    state.keep = keep
    state.n_keep = group_sums(keep, g.starts)


def apply_soft_max(state, draws):
    """soft_max thins groups with more than ``soft_max`` kept rows, with ``p_keep(n)``."""
    rules, g, p = state.rules, state.groups, state.p
    g_sm = state.groups_with(rules.has_soft_max)
    if not g_sm.any():
        return
    g_sm &= state.n_keep > rules.soft_max[p]
    if g_sm.any():
        p_keep, _ = state.ctx.probability_tables(int(state.n_keep.max()))
        at = g.rows_of(g_sm)
        thr = np.repeat(p_keep[p[g_sm], state.n_keep[g_sm]], g.sizes[g_sm])
        at_kept = state.keep[at]
        at, thr = at[at_kept], thr[at_kept]
        state.keep[at] = soft_max_passes(draws.rows_sm(at), thr)
        state.n_keep = group_sums(state.keep, g.starts)


def apply_mu2(state, draws):
    """mu2 drops whole groups with ``p_mu(n)`` of their kept count; dead groups then count 0 rows."""
    if state.r_mu2 is not None:
        g_mu = np.flatnonzero(state.live & state.rules.has_mu2[state.p])
        if g_mu.size:
            _, p_mu = state.ctx.probability_tables(int(state.n_keep.max()))
            drop = mu2_drops(state.r_mu2[g_mu], p_mu[state.p[g_mu], state.n_keep[g_mu]])
            if drop.any():
                dropped = g_mu[drop]
                state.live[dropped] = False
                state.keep[state.groups.rows_of(dropped)] = False
    state.n_keep = np.where(state.live, state.n_keep, 0)


def apply_cluster(state, draws):
    """Cluster pruning keeps each group's ``n_keep`` most clustered rows among those that passed distance."""
    ctx, g, rows = state.ctx, state.groups, state.rows
    g_cl = state.groups_with(state.rules.cluster) & (state.n_keep > 0)
    if g_cl.any():
        at = g.rows_of(g_cl)
        cand_pos = at if state.dist_pass is None else at[state.dist_pass[at]]
        chosen = cluster_select(ctx, lambda q: rows[g.chunk_rows(q), 2:5].astype(np.int64), cand_pos,
                                g.group_of(cand_pos), state.n_keep, stable=ctx.mode != SNUDDA)
        state.keep[at] = False
        state.keep[chosen] = True


#: the rules in the order they run, each ``(name, rule)`` with ``rule(state, draws)``; the name is
#: what a trace sees after the rule (None: not traced, it only checks the input).
RULES = (
    (None, check_distances),
    ("a3", apply_a3),
    ("f1", apply_f1_distance),
    ("soft_max", apply_soft_max),
    ("mu2", apply_mu2),
    ("cluster", apply_cluster),
)


def decide(ctx, rows, groups, pidx, draws, trace=None):
    """Run :data:`RULES` on a segmented chunk; returns the :class:`Decision` (``keep`` in group order).

    ``trace(name, keep)``, if given, is called with the row mask (group order) once the groups
    without parameters are dropped (name ``"rule"``) and after each named rule; it must not keep
    ``keep``, which changes afterwards.
    """
    state = Decision.start(ctx, rows, groups, pidx)
    if trace is not None:
        trace("rule", state.keep)
    for name, rule in RULES:
        rule(state, draws)
        if trace is not None and name is not None:
            trace(name, state.keep)
    return state


# -- the distance rule's probabilities ------------------------------------------------------------

def check_relative_distance(ctx, g_c8_min, g_c8_max, g_dest):
    """Every row of a distance-pruned group needs 0 <= r = d / max_soma_distance_dend <= 1.

    Division is monotonic, so a group's smallest and largest column-8 values
    decide; r is computed exactly as Snudda does (float64 d over the widened
    float32 maximum).
    """
    if ctx.max_soma_distance_dend is None or g_dest.size == 0:
        return
    msd = ctx.max_soma_distance_dend[g_dest]
    with np.errstate(divide="ignore", invalid="ignore"):
        r_lo = metres(g_c8_min) / msd
        r_hi = metres(g_c8_max) / msd
    bad = ~((r_lo >= 0) & (r_hi <= 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"relative dendrite distance r = d / max_soma_distance_dend must lie in 0..1, but synapses "
            f"onto neuron {int(g_dest[i])} have d = {int(g_c8_min[i])}..{int(g_c8_max[i])} um and "
            f"max_soma_distance_dend = {msd[i]!r} m", ctx.worklog_path)


def metres(col8):
    """Column 8 (integer um) to float64 metres, the way Snudda computes ``d``."""
    return col8 * 1e-6


def distance_probability(ctx, expr, col8, dest_of):
    """p(d) per row: NumPy on distinct arguments (philox) or numexpr as Snudda (snudda).

    ``dest_of()`` returns the rows' dest neurons; it is only called when ``r`` is needed.
    """
    if ctx.mode == SNUDDA or expr.uses_r:  # per row: with r, every (d, dest) pair is its own argument
        d = metres(col8)
        r = d / ctx.max_soma_distance_dend[dest_of()] if expr.uses_r else None
        return expr.evaluate_numexpr(d, r) if ctx.mode == SNUDDA else expr.evaluate(d, r)
    lo, hi = int(col8.min()), int(col8.max())
    if hi - lo < 4 * col8.size + 4096:  # dense table over the values' range
        table = expr.evaluate(metres(np.arange(lo, hi + 1, dtype=np.int64)))
        return table[col8 - lo]
    values, inverse = np.unique(col8, return_inverse=True)
    return expr.evaluate(metres(values.astype(np.int64)))[inverse]
