"""Each rule of DESIGN §3 on hand-made groups with fixed draws, checked against hand-computed results."""

import math

import numpy as np
import pytest

from gpuprune import engine, rng
from gpuprune.errors import InputError
from gpuprune.format import GAP_JUNCTIONS, SYNAPSES
from gpuprune.rules import PruningRules

DIST = {"A$$B": {"GABA": {"channel_model_id": 10}, "gap_junction": {"channel_model_id": 3}},
        "A$$A": {"GABA": {"channel_model_id": 10}}}
# neurons: 0, 1 of type A (unit 1), 2 of type B (unit 1), 3 of type B (unit 2)
TYPES = np.array([0, 0, 1, 1], dtype=np.int32)
UNITS = np.array([1, 1, 1, 2])


def context(pruning, other=None, gj=None, voxel_size=1e-6, mode="philox"):
    con = {"GABA": {"pruning": pruning}}
    if other is not None:
        con["GABA"]["pruning_other"] = other
    if gj is not None:
        con["gap_junction"] = {"pruning": gj}
    rules = PruningRules({"regions": {"R": {"connectivity": {"A,B": con}}}}, "cfg.json", ["A", "B"], DIST)
    return engine.PruneContext(rules=rules, neuron_type=TYPES, population_unit=UNITS,
                               max_soma_distance_dend=np.full(4, 1e-3), num_neurons=4, max_channel_type_id=12,
                               voxel_size=voxel_size, seed=1, mode=mode)


def synapses(n, src=0, dest=2, col8=None, coords=None, param=None, typ=10):
    rows = np.zeros((n, 13), dtype=np.int32)
    rows[:, 0], rows[:, 1], rows[:, 6] = src, dest, typ
    rows[:, 8] = 50 if col8 is None else col8
    if coords is not None:
        rows[:, 2:5] = coords
    rows[:, 12] = np.arange(100, 100 + n) if param is None else param
    return rows


class Fixed:
    """Draws given per group (a3, mu2) and per row (f1, dist, sm), in group / chunk order."""

    def __init__(self, a3=(0.0,), mu2=(0.0,), f1=None, dist=None, sm=None):
        self.a3, self.mu2 = np.asarray(a3, float), np.asarray(mu2, float)
        self.f1, self.dist, self.sm = f1, dist, sm
        self.seen = {}

    def __call__(self, starts, sizes, pos):
        self.starts = starts
        n = int(sizes.sum())
        self.f1 = np.zeros(n) if self.f1 is None else np.asarray(self.f1, float)
        self.dist = np.zeros(n) if self.dist is None else np.asarray(self.dist, float)
        self.sm = np.zeros(n) if self.sm is None else np.asarray(self.sm, float)
        return self

    def group(self, starts):
        g = np.searchsorted(self.starts, starts)
        return self.a3[g], self.mu2[g]

    def rows(self, idx, both):
        self.seen["rows"] = idx
        i = slice(None) if idx is None else idx
        return self.f1[i], (self.dist[i] if both else None)

    def rows_sm(self, idx):
        self.seen["sm"] = idx
        return self.sm[idx]


def run(ctx, rows, draws, kind=SYNAPSES, lo=0, hi=4):
    return engine.prune_chunk(ctx, kind, rows, lo, hi, draws=draws).rows


def test_f1_keeps_rows_with_draw_below_f1():
    out = run(context({"f1": 0.5}), synapses(4), Fixed(f1=[0.1, 0.6, 0.49, 0.5]))
    assert out[:, 12].tolist() == [100, 100]  # rows 0 and 2, taking row 0's parameter id
    assert out.shape[0] == 2


def test_parameter_id_of_first_row_even_if_it_is_dropped():
    out = run(context({"f1": 0.5}), synapses(3, param=[7, 8, 9]), Fixed(f1=[0.9, 0.1, 0.2]))
    assert out[:, 12].tolist() == [7, 7]


def test_step_distance_rule():
    ctx = context({"dist_pruning": "1*(d >= 110e-6)"})
    out = run(ctx, synapses(4, col8=[100, 130, 120, 109]), Fixed(dist=[0.99] * 4))
    assert sorted(out[:, 8].tolist()) == [120, 130]
    # d = 110 * 1e-6 (as Snudda computes it) is just below the literal 110e-6
    assert run(ctx, synapses(1, col8=110), Fixed(dist=[0.0])).shape[0] == 0


def test_smooth_distance_rule():
    p = math.exp(-1.0)  # exp(-d/100e-6) at d = 100 um
    ctx = context({"dist_pruning": "exp(-d/100e-6)", "f1": 0.8})
    out = run(ctx, synapses(3, col8=100), Fixed(f1=[0.1, 0.1, 0.81], dist=[p - 1e-9, p + 1e-9, 0.0]))
    assert out.shape[0] == 1  # row 1 fails distance, row 2 fails f1


def test_a3_drops_whole_group():
    ctx = context({"a3": 0.6})
    assert run(ctx, synapses(3), Fixed(a3=[0.6])).shape[0] == 3  # drop only if r_a3 > a3
    assert run(ctx, synapses(3), Fixed(a3=[0.61])).shape[0] == 0


def test_soft_max():
    ctx = context({"soft_max": 2})
    p_keep = 2 * 2 / ((1 + math.exp(-(5 - 2) / 5)) * 5)
    draws = Fixed(sm=[0.1, 0.9, p_keep - 1e-9, p_keep, 0.0])
    out = run(ctx, synapses(5), draws)
    assert out.shape[0] == 3
    assert np.sort(out[:, 12]).tolist() == [100, 100, 100]
    # only rows that were still kept need an r_sm draw
    draws = Fixed(f1=[0.0, 0.0, 0.0, 0.99, 0.0], sm=[0.0] * 5)
    run(context({"soft_max": 2, "f1": 0.9}), synapses(5), draws)
    assert draws.seen["sm"].tolist() == [0, 1, 2, 4]


def test_soft_max_not_applied_at_or_below_limit():
    draws = Fixed(sm=[1.0] * 2)
    assert run(context({"soft_max": 2}), synapses(2), draws).shape[0] == 2
    assert "sm" not in draws.seen


def test_mu2():
    ctx = context({"mu2": 3})
    p_mu = 1 / (1 + math.exp(-8 / 3 * (2 - 3)))
    assert run(ctx, synapses(2), Fixed(mu2=[p_mu - 1e-9])).shape[0] == 2  # drop if p_mu < r_mu2
    assert run(ctx, synapses(2), Fixed(mu2=[p_mu + 1e-9])).shape[0] == 0


def test_mu2_counts_rows_left_after_soft_max_and_f1():
    ctx = context({"mu2": 3, "f1": 0.5})
    p_mu_1 = 1 / (1 + math.exp(-8 / 3 * (1 - 3)))
    # two rows, f1 keeps one: p_mu(1) ~ 0.0048
    assert run(ctx, synapses(2), Fixed(f1=[0.1, 0.9], mu2=[p_mu_1 + 1e-6])).shape[0] == 0
    assert run(ctx, synapses(2), Fixed(f1=[0.1, 0.9], mu2=[p_mu_1 - 1e-6])).shape[0] == 1


def test_cluster_keeps_most_clustered_rows_ties_by_lower_index():
    ctx = context({"f1": 0.5, "cluster_pruning": True}, voxel_size=1e-6)  # radius 10 voxels
    coords = [[0, 0, 0], [3, 0, 0], [50, 0, 0], [6, 0, 0]]
    # f1 keeps 2 rows (2 and 3); cluster pruning keeps the 2 with most neighbours: 0, 1 (3 ties, lower first)
    out = run(ctx, synapses(4, coords=coords, param=[1, 2, 3, 4]), Fixed(f1=[0.9, 0.9, 0.1, 0.1]))
    assert out[:, 2].tolist() == [0, 3]


def test_cluster_radius_is_strict():
    ctx = context({"f1": 0.5, "cluster_pruning": True}, voxel_size=5e-6)  # radius 10e-6/5e-6 = 2.0 exactly
    coords = [[0, 0, 0], [2, 0, 0], [1, 1, 0], [30, 0, 0]]  # |0-1| = 2 (not < 2), |1-2| = |0-2| = 1.41
    out = run(ctx, synapses(4, coords=coords), Fixed(f1=[0.1, 0.9, 0.9, 0.9]))
    # counts: [2, 2, 3, 1]: keep the one row with the most neighbours, row 2
    assert out[:, 2:4].tolist() == [[1, 1]]
    # with the Snudda radius for 1 um voxels (10e-6/1e-6 = 10.000000000000002) distance 10 counts
    ctx = context({"f1": 0.5, "cluster_pruning": True}, voxel_size=1e-6)
    coords = [[0, 0, 0], [10, 0, 0], [30, 0, 0], [40, 0, 0]]
    out = run(ctx, synapses(4, coords=coords), Fixed(f1=[0.9, 0.9, 0.1, 0.9]))
    assert out[:, 2].tolist() == [0]  # counts [2, 2, 2, 2]: lowest index


def test_cluster_candidates_are_rows_passing_the_distance_test():
    ctx = context({"f1": 0.5, "dist_pruning": "1*(d >= 100e-6)", "cluster_pruning": True})
    coords = [[0, 0, 0], [1, 0, 0], [40, 0, 0], [41, 0, 0], [42, 0, 0]]
    col8 = [50, 50, 150, 150, 150]  # rows 0, 1 fail the distance test despite being clustered
    out = run(ctx, synapses(5, coords=coords, col8=col8), Fixed(f1=[0.1, 0.1, 0.1, 0.9, 0.9]))
    assert out[:, 2].tolist() == [40]


def test_group_without_parameters_is_dropped():
    ctx = context({"f1": 1})
    rows = np.concatenate([synapses(2, src=2, dest=0), synapses(2, src=0, dest=2)])  # B->A has no rule
    out = engine.prune_chunk(ctx, SYNAPSES, rows, 0, 4, draws=Fixed(a3=[0, 0], mu2=[0, 0])).rows
    assert out[:, 0].tolist() == [0, 0]


def test_pruning_other_for_different_units():
    ctx = context({"f1": 1}, other={"f1": 0.0})
    rows = np.concatenate([synapses(2, src=0, dest=2), synapses(2, src=0, dest=3)])
    out = engine.prune_chunk(ctx, SYNAPSES, rows, 0, 4, draws=Fixed(a3=[0, 0], mu2=[0, 0])).rows
    assert out[:, 1].tolist() == [2, 2]  # unit 1 -> unit 2 uses pruning_other (f1 = 0)


def test_groups_split_by_channel_type_and_sorted():
    ctx = context({"f1": 1})
    rows = np.concatenate([synapses(2, typ=11), synapses(1, typ=10), synapses(1, src=1, typ=10)])
    res = engine.prune_chunk(ctx, SYNAPSES, rows, 0, 4)
    # only channel 10 has a rule; output sorted by (dest, src, type)
    assert res.rows[:, [0, 6]].tolist() == [[0, 10], [1, 10]]


def test_gap_junctions_use_type_3():
    ctx = context({"f1": 1}, gj={"f1": 0.5})
    rows = np.zeros((3, 11), dtype=np.int32)
    rows[:, 0], rows[:, 1] = 0, 2
    rows[:, 2] = [5, 6, 7]  # tells the rows apart
    out = engine.prune_chunk(ctx, GAP_JUNCTIONS, rows, 0, 4, draws=Fixed(f1=[0.4, 0.6, 0.1])).rows
    assert out.shape == (2, 11)
    assert out[:, 2].tolist() == [5, 7]  # the gap-junction block (f1 0.5), not the GABA one (f1 1), applied
    assert (out[:, [0, 1]] == [0, 2]).all() and (out[:, 3:] == 0).all()


def test_relative_distance_out_of_range_is_error():
    ctx = context({"dist_pruning": "1 - r"})
    ctx.max_soma_distance_dend = np.full(4, 100e-6)
    with pytest.raises(InputError, match="max_soma_distance_dend"):
        run(ctx, synapses(2, col8=[50, 150]), Fixed())


def test_rows_outside_dest_range_are_error():
    with pytest.raises(InputError, match="lookup tables"):
        run(context({}), synapses(2, dest=3), Fixed(), lo=0, hi=3)


def test_real_draws_are_used_by_default_and_reproducible():
    ctx = context({"f1": 0.5})
    a = engine.prune_chunk(ctx, SYNAPSES, synapses(64), 0, 4).rows
    b = engine.prune_chunk(ctx, SYNAPSES, synapses(64), 0, 4).rows
    assert np.array_equal(a, b) and 10 < a.shape[0] < 54
    # exactly the rows whose Philox draw (DESIGN §4 counter: src, k, type | kind << 16, 0; key of dest)
    # is below f1, computed here from the generator alone
    k0, k1 = rng.neuron_keys(1, np.array([2]))
    r_f1, _ = rng.philox_uniform(0, np.arange(64), 10 | rng.KIND_SYNAPSE << 16, 0, k0[0], k1[0])
    assert a[:, 12].tolist() == [100] * int((r_f1 < 0.5).sum())  # group shares row 0's parameter id
    kept = engine.prune_chunk(ctx, SYNAPSES, synapses(64, param=np.arange(64)), 0, 4,
                              ).rows
    assert kept.shape[0] == int((r_f1 < 0.5).sum())


def test_f1_count_within_binomial_bound():
    """20,000 rows (100 groups of 200) with f1 = 0.3: the kept count is within 5 sd of 6,000."""
    ctx = context({"f1": 0.3})
    rows = np.concatenate([synapses(200, src=s % 2, dest=2 + s // 50, typ=10) for s in range(4)] * 25)
    n = engine.prune_chunk(ctx, SYNAPSES, rows, 0, 4).rows.shape[0]
    assert abs(n - 0.3 * rows.shape[0]) < 5 * math.sqrt(rows.shape[0] * 0.3 * 0.7), n


# -- every rule at its exact threshold (a draw equal to the table entry), so < / <= mix-ups fail -------

def below(x):
    return float(np.nextafter(x, -np.inf))


def above(x):
    return float(np.nextafter(x, np.inf))


def test_f1_at_threshold():
    f1 = 0.3  # not a power of two: the table entry is the float64 nearest 0.3
    ctx = context({"f1": f1})
    out = run(ctx, synapses(3, param=[1, 2, 3]), Fixed(f1=[f1, below(f1), above(f1)]), )
    assert out.shape[0] == 1  # only the draw below f1 passes (keep if r < f1)
    assert engine.f1_passes(np.array([below(f1), f1]), f1).tolist() == [True, False]


def test_distance_at_threshold():
    ctx = context({"dist_pruning": "exp(-d/100e-6)"})
    p = float(ctx.rules.expressions[0].evaluate(np.array([130 * 1e-6]))[0])
    out = run(ctx, synapses(2, col8=130), Fixed(dist=[p, below(p)]))
    assert out.shape[0] == 1  # r == p(d) fails, the next float below passes
    assert engine.distance_passes(np.array([below(p), p]), p).tolist() == [True, False]


def test_a3_at_threshold():
    a3 = 0.3
    ctx = context({"a3": a3})
    assert run(ctx, synapses(3), Fixed(a3=[a3])).shape[0] == 3  # r == a3 keeps the group
    assert run(ctx, synapses(3), Fixed(a3=[above(a3)])).shape[0] == 0
    assert engine.a3_drops(np.array([a3, above(a3)]), a3).tolist() == [False, True]


def test_soft_max_at_threshold():
    ctx = context({"soft_max": 2})
    p_keep = float(ctx.probability_tables(5)[0][0, 5])  # 5 kept rows, soft_max 2
    out = run(ctx, synapses(5), Fixed(sm=[p_keep, below(p_keep), p_keep, below(p_keep), p_keep]))
    assert out.shape[0] == 2  # r == p_keep(n) drops the row
    assert engine.soft_max_passes(np.array([below(p_keep), p_keep]), p_keep).tolist() == [True, False]


def test_mu2_at_threshold():
    ctx = context({"mu2": 3})
    p_mu = float(ctx.probability_tables(2)[1][0, 2])  # 2 kept rows, mu2 3
    assert run(ctx, synapses(2), Fixed(mu2=[p_mu])).shape[0] == 2  # drop only if p_mu < r_mu2
    assert run(ctx, synapses(2), Fixed(mu2=[above(p_mu)])).shape[0] == 0
    assert engine.mu2_drops(np.array([p_mu, above(p_mu)]), p_mu).tolist() == [False, True]


def test_soft_max_applies_only_above_the_limit_exactly():
    ctx = context({"soft_max": 3})
    assert run(ctx, synapses(3), Fixed(sm=[1.0] * 3)).shape[0] == 3  # n == soft_max: not thinned
    assert run(ctx, synapses(4), Fixed(sm=[1.0] * 4)).shape[0] == 0  # n = soft_max + 1: thinned


# -- the steps and draw providers on their own (as a tuner uses them) ---------------------------

def test_steps_on_their_own_equal_prune_chunk():
    ctx = context({"f1": 0.6, "soft_max": 3, "mu2": 2, "a3": 0.8})
    rows = np.concatenate([synapses(7, src=s % 2, dest=2 + s % 2, typ=10) for s in range(6)])
    src, dest, typ = engine.grouping_columns(ctx, SYNAPSES, rows, 0, 4)
    key = engine.group_key(ctx, dest, src, typ, 0, 4)
    groups = engine.segment(key, engine.order_rows(ctx, "synapses", key, src, dest, typ, None), src, dest, typ)
    pidx = engine.parameter_index(ctx, groups)
    draws = engine.PhiloxDraws(ctx, SYNAPSES.kind_id, groups, 0, 4)
    state = engine.decide(ctx, rows, groups, pidx, draws)
    out, _ = engine.compact(ctx, SYNAPSES, rows, groups, state.keep)
    assert np.array_equal(out, engine.prune_chunk(ctx, SYNAPSES, rows, 0, 4).rows)
    assert state.n_keep.sum() == out.shape[0]


def test_trace_sees_each_rule_in_order():
    ctx = context({"f1": 0.5, "a3": 0.5})
    seen = []

    def trace(starts, sizes, g_src, g_dest, g_typ):
        return lambda name, keep: seen.append((name, int(keep.sum())))

    rows = synapses(4)
    engine.prune_chunk(ctx, SYNAPSES, rows, 0, 4, draws=Fixed(a3=[0.1], f1=[0.1, 0.9, 0.1, 0.9]), trace=trace)
    assert seen == [("rule", 4), ("a3", 4), ("f1", 2), ("soft_max", 2), ("mu2", 2), ("cluster", 2)]


def test_distance_values_outside_0_1_warn_once_naming_the_pathway(caplog):
    ctx = context({"dist_pruning": "2*exp(-d/100e-6)"})  # above 1 near the soma
    with caplog.at_level("WARNING", logger="gpuprune"):
        run(ctx, synapses(3, col8=[10, 20, 500]), Fixed(dist=[0.5] * 3))
        run(ctx, synapses(3, col8=[10, 20, 500]), Fixed(dist=[0.5] * 3))
    warnings = [r for r in caplog.records if "distance expression" in r.getMessage()]
    assert len(warnings) == 1
    assert "A,B GABA" in warnings[0].getMessage() and "cfg.json" in warnings[0].getMessage()


def test_distance_values_inside_0_1_do_not_warn(caplog):
    ctx = context({"dist_pruning": "exp(-d/100e-6)"})
    with caplog.at_level("WARNING", logger="gpuprune"):
        run(ctx, synapses(3, col8=[10, 20, 500]), Fixed(dist=[0.5] * 3))
    assert "distance expression" not in caplog.text


def test_distance_nan_warns(caplog):
    ctx = context({"dist_pruning": "sqrt(d - 1e-4)"})  # NaN below 100 um, 0.01 at 200 um
    with caplog.at_level("WARNING", logger="gpuprune"):
        out = run(ctx, synapses(2, col8=[50, 200]), Fixed(dist=[0.0, 0.0]))
    assert "nan" in caplog.text
    assert out[:, 8].tolist() == [200]  # r < NaN is false: never kept
