"""Every kernel rule pinned at its exact threshold, through the emulated kernels and the NumPy engine.

A parameter (f1, a3) or a probability-table entry (soft_max's p_keep, mu2's p_mu) is set equal to
the Philox draw of one row or group, then one ulp off; the device and the engine must agree on the
whole chunk, and on the pinned row: f1 keeps only r < f1, a3 drops only r > a3, soft_max keeps only
r < p_keep(n), mu2 drops only p_mu(n) < r (issue 11, item 6: `<` vs `<=` must not pass unnoticed).
"""

import numpy as np
import pytest
from gpu_helpers import network_path

from gpuprune import engine, rng
from gpuprune.device import emulated as _emulate
from gpuprune.device import program as _device
from gpuprune.format import SYNAPSES
from gpuprune.io.network import Network
from gpuprune.io.reader import close_files, read_chunk

pytestmark = pytest.mark.skipif(_emulate.host_compiler() is None, reason="no C++ compiler for the emulated GPU")
TAG = 11  # conductance: never read by the rules; holds each row's index


def _setup(config):
    path = network_path("prune3")
    net = Network(path, config_file=path / config)
    (chunk,) = net.plan("synapses", 10 ** 12)
    rows, _ = read_chunk(net.spec()["files"]["synapses"], SYNAPSES, chunk)
    close_files()
    rows[:, TAG] = np.arange(rows.shape[0], dtype=np.int32)
    ctx = engine.PruneContext.from_network(net, mode="philox")
    return net, chunk, rows, ctx


def _target(ctx, rows, chunk, rule):
    """The first group in sorted order that has parameters (for soft_max: more rows than soft_max):
    (p, its first row, its rows, their draws)."""
    typ = rows[:, 6]
    key = engine.group_key(ctx, rows[:, 1], rows[:, 0], typ, chunk.dest_lo, chunk.dest_hi)
    order = np.argsort(key, kind="stable")
    r = ctx.rules
    for i in order:
        src, dest, t = int(rows[i, 0]), int(rows[i, 1]), int(typ[i])
        other = int(ctx.population_unit[src] != ctx.population_unit[dest])
        p = int(r.lut[ctx.neuron_type[src], ctx.neuron_type[dest], t, other]) if t < r.lut.shape[2] else -1
        size = int(((rows[:, 0] == src) & (rows[:, 1] == dest) & (typ == t)).sum())
        if p >= 0 and (rule != "soft_max" or size > r.soft_max[p]):
            break
    k0, k1 = rng.neuron_keys(ctx.seed, np.array([dest]))
    s, tw = np.array([src], np.uint32), rng.type_word(np.array([t], np.uint32), SYNAPSES.kind_id)
    pos = np.zeros(1, np.uint32)  # the group's first row in sorted (= file) order
    r_f1, _ = rng.row_draws(k0, k1, s, pos, tw)
    r_sm = rng.row_draws(k0, k1, s, pos, tw, second=True)
    r_a3, r_mu2 = rng.group_draws(k0, k1, s, tw)
    group = np.flatnonzero((rows[:, 0] == src) & (rows[:, 1] == dest) & (typ == t))
    return p, int(i), group, {"f1": r_f1[0], "soft_max": r_sm[0], "a3": r_a3[0], "mu2": r_mu2[0]}


def _both(ctx, rows, chunk):
    """Kept row indexes from the engine and from the emulated kernels (must be the same bytes)."""
    expected = engine.prune_chunk(ctx, SYNAPSES, rows, chunk.dest_lo, chunk.dest_hi)
    state = _device.DeviceState(_emulate.EmulatedBackend(), _device.RuleTables(ctx), ctx)
    dev = state.dev
    dist = {k: dev.upload(v) for k, v in _device.distance_tables(ctx, SYNAPSES, rows).items()}
    got = _device.prune_on_device(state, SYNAPSES, dev.upload(rows.reshape(-1)), dist, rows, chunk.dest_lo,
                                  chunk.dest_hi)
    assert got.rows.tobytes() == expected.rows.tobytes()
    assert np.array_equal(got.stats, expected.stats)
    return set(expected.rows[:, TAG].tolist())


def _with_tables(ctx, p, which, value):
    """ctx whose soft_max (p_keep) or mu2 (p_mu) table of parameter set p is ``value`` for every n."""
    real = type(ctx).probability_tables

    def tables(self, n_max):
        p_keep, p_mu = (a.copy() for a in real(self, n_max))
        (p_keep if which == "soft_max" else p_mu)[p, :] = value
        return p_keep, p_mu

    ctx.probability_tables = tables.__get__(ctx)
    return ctx


@pytest.mark.parametrize("config, rule", [("network-config-test-1.json", "f1"), ("network-config-test-4.json", "a3"),
                                          ("network-config-test-2.json", "soft_max"),
                                          ("network-config-test-3.json", "mu2")])
def test_rule_at_its_exact_threshold(config, rule):
    kept = {}
    for offset in ("equal", "below", "above"):
        net, chunk, rows, ctx = _setup(config)
        p, row, group, draws = _target(ctx, rows, chunk, rule)
        r = draws[rule]
        value = {"equal": r, "below": np.nextafter(r, -1.0), "above": np.nextafter(r, 2.0)}[offset]
        if rule == "f1":
            ctx.rules.f1[p] = value
        elif rule == "a3":
            ctx.rules.a3[p] = value
        else:
            ctx = _with_tables(ctx, p, rule, value)
        kept[offset] = _both(ctx, rows, chunk)
    if rule == "f1":  # keep iff r_f1 < f1
        assert row not in kept["equal"] and row not in kept["below"] and row in kept["above"]
    elif rule == "a3":  # drop the group iff r_a3 > a3
        assert set(group) <= kept["equal"] and not set(group) & kept["below"] and set(group) <= kept["above"]
    elif rule == "soft_max":  # keep iff r < p_keep(n)
        assert row not in kept["equal"] and row not in kept["below"] and row in kept["above"]
    else:  # drop the group iff p_mu(n) < r_mu2
        assert set(group) & kept["equal"] and not set(group) & kept["below"] and set(group) & kept["above"]
