"""Every number of a report, as one JSON-ready dict (the figures, tables and HTML only read it).

Per pathway (pre type, post type, connection type): the funnel (rows and pairs after each
rule), connection probability against soma distance before and after pruning over all
pre x post pairs with Wilson 95 % intervals (:mod:`gpuprune.stats`), the bundled
measurements with the model's value over the same distance range, synapses per connected
pair and in/out-degree distributions.
"""

import os
import time

import h5py
import numpy as np

from gpuprune import engine
from gpuprune.errors import InputError
from gpuprune.format import COUNT, GAP_JUNCTION_CHANNEL, GAP_JUNCTIONS, OUTPUT_FILE, SYNAPSES
from gpuprune.io.network import Network
from gpuprune.report.funnel import STEPS, run_funnel
from gpuprune.stats import (
    Bins,
    count_all_pairs,
    dataset_names,
    load_targets,
    self_pair_count,
    target_from_dataset,
)
from gpuprune.stats import pathway_connectivity as connectivity

#: report.json format version
VERSION = 1
#: default distance bins (metres): Snudda's analysis uses 20 um bins
BIN_WIDTH = 20e-6
MAX_DISTANCE = 500e-6


def _floats(a):
    return [None if not np.isfinite(x) else float(x) for x in np.asarray(a, dtype=np.float64)]


def _json_ready(value):
    """NaN and inf (e.g. the mean of no pairs) as None, NumPy scalars as Python numbers, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def bundled_targets():
    """Every bundled measurement (:mod:`gpuprune.stats.targets`) as a list of (name, Target)."""
    return [(name, target_from_dataset(name)) for name in dataset_names()]


def read_pruned(path, num_neurons):
    """Kept rows per (src, dest, channel) of a pruned file: {kind: (key, count)} with sorted unique keys."""
    if not os.path.exists(path):
        raise InputError("pruned file not found (run gpuprune prune first, or give --pruned)", path)
    try:
        with h5py.File(path, "r") as f:
            n = f["network/neurons/neuron_id"].shape[0]
            if n != num_neurons:
                raise InputError(f"pruned file has {n} neurons but the network has {num_neurons}: it belongs to "
                                 "another network", path)
            position = f["network/neurons/position"][()]
            out = {}
            for kind in (SYNAPSES, GAP_JUNCTIONS):
                rows = f[kind.matrix]
                if int(f[COUNT[kind.name]][()]) != rows.shape[0]:
                    raise InputError(f"{COUNT[kind.name]} disagrees with {kind.matrix}", path)
                cols = rows[:, :2].astype(np.int64) if rows.shape[0] else np.zeros((0, 2), dtype=np.int64)
                typ = rows[:, 6].astype(np.int64) if kind is SYNAPSES and rows.shape[0] else \
                    np.full(cols.shape[0], GAP_JUNCTION_CHANNEL, dtype=np.int64)
                if cols.size and (cols.min() < 0 or cols.max() >= num_neurons):
                    raise InputError(f"{kind.matrix} names neurons outside 0..{num_neurons - 1}", path)
                out[kind.name] = np.unique(_group_key(cols[:, 0], cols[:, 1], typ, num_neurons), return_counts=True)
    except (OSError, KeyError) as exc:
        raise InputError(f"not a readable pruned network file ({exc})", path) from None
    return out, position


def _group_key(src, dest, typ, n):
    return (np.asarray(dest, dtype=np.int64) * n + src) * (1 << 16) + typ


def _check_against_file(funnel, pruned, n, path):
    """The funnel's last step must be the pruned file, group by group."""
    for kind, (key_f, count_f) in pruned.items():
        g = funnel.groups[kind]
        on = g.kept > 0
        key = _group_key(g.src[on], g.dest[on], g.channel[on], n)
        o = np.argsort(key)
        if not (np.array_equal(key[o], key_f) and np.array_equal(g.kept[on][o], count_f)):
            raise InputError(f"the pruned file's {kind} differ from a prune of this network with this config, seed "
                             "and randomness mode (another network or config? give --seed/--rng as pruned)", path)


def _degree_hist(ids, counts_of):
    """Histogram (index = degree) of the degree of every neuron in ``ids`` (zeros included)."""
    deg = counts_of[ids] if ids.size else np.zeros(0, dtype=np.int64)
    return np.bincount(deg).tolist() if deg.size else []


class _Clock:
    """Adds the seconds since the last call to ``timings[name]`` (nothing when ``timings`` is None)."""

    def __init__(self, timings):
        self.timings, self.t = timings, time.perf_counter()

    def __call__(self, name):
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[name] = self.timings.get(name, 0.0) + now - self.t
            self.t = now


class _Totals:
    """All-pairs denominators, cached per (pre type, post type, bins), self-pairs removed."""

    def __init__(self, positions, slab):
        self.positions, self.slab, self.cache = positions, slab, {}

    def __call__(self, pre_ids, post_ids, pre, post, bins):
        key = (pre, post, tuple(bins.start), tuple(bins.end), bins.inclusive)
        if key not in self.cache:
            total = count_all_pairs(self.positions[pre_ids], self.positions[post_ids], bins, self.slab)
            self.cache[key] = total - self_pair_count(pre_ids, post_ids) * bins.count(np.zeros(1))
        return self.cache[key]


def _pathway(net, codes, code, funnel, positions, post_ok, bins, totals, targets):
    pre_t, post_t, ch = (int(v) for v in codes.decode(int(code)))
    kind = GAP_JUNCTIONS.name if ch == GAP_JUNCTION_CHANNEL else SYNAPSES.name
    names = net.rules.describe(pre_t, post_t, ch)
    name = names[2] if names is not None else ("gap_junction" if kind == GAP_JUNCTIONS.name else f"channel {ch}")
    g = funnel.groups[kind]
    sel = g.code == code
    src, dest, put, kept = g.src[sel], g.dest[sel], g.putative[sel], g.kept[sel]
    pre_ids = np.flatnonzero(net.neuron_type == pre_t)
    post_ids = np.flatnonzero((net.neuron_type == post_t) & post_ok)
    centre = post_ok[dest]
    tot = totals(pre_ids, post_ids, pre_t, post_t, bins)
    before = connectivity(positions, pre_ids, post_ids, src[centre], dest[centre], put[centre], bins,
                          slab=totals.slab, total=tot)
    after = connectivity(positions, pre_ids, post_ids, src[centre], dest[centre], kept[centre], bins,
                         slab=totals.slab, total=tot)
    n = net.num_neurons
    on = kept > 0
    out_deg = np.bincount(src[on], minlength=n)
    in_deg = np.bincount(dest[on], minlength=n)
    exps = []
    for label, t in targets if kind == SYNAPSES.name else []:
        if t.pathway[:2] != (net.type_names[pre_t], net.type_names[post_t]) \
                or (names is not None and t.pathway[2] != name):
            continue
        model = connectivity(positions, pre_ids, post_ids, src[centre], dest[centre], kept[centre], t.bins,
                             slab=totals.slab, total=totals(pre_ids, post_ids, pre_t, post_t, t.bins))
        lo, hi = t.interval
        p_mod = model.probability
        exps.append({"name": label, "reference": t.reference,
                     "bins": [[float(s), float(e)] for s, e in zip(t.bins.start, t.bins.end, strict=True)],
                     "P": _floats(t.probability), "n": None if t.n is None else np.asarray(t.n).tolist(),
                     "N": None if t.N is None else np.asarray(t.N).tolist(), "ci95": [_floats(lo), _floats(hi)],
                     "model": model.as_dict(), "outside": [bool(x) for x in (p_mod < lo) | (p_mod > hi)]})
    return {
        "code": int(code), "pre": net.type_names[pre_t], "post": net.type_names[post_t], "name": name, "kind": kind,
        "channel": ch, "has_rule": names is not None,
        "funnel": {"rows": funnel.rows[:, code].tolist(), "pairs": funnel.pairs[:, code].tolist()},
        "putative_rows": int(put.sum()), "kept_rows": int(kept.sum()),
        "putative_pairs": int(src.size), "connected_pairs": int(on.sum()),
        "before": before.as_dict(), "after": after.as_dict(),
        "synapses_per_pair": {"before": np.bincount(put).tolist(), "after": np.bincount(kept[on]).tolist()},
        "out_degree": _degree_hist(pre_ids, out_deg), "in_degree": _degree_hist(post_ids, in_deg),
        "experiments": exps, "flag": any(any(x["outside"]) for x in exps),
    }


def compute(network_path, pruned_file=None, *, config_file=None, rng="philox", random_seed=None,
            bin_width=BIN_WIDTH, max_distance=MAX_DISTANCE, slab=None, centre_margin=None, targets=None,
            progress=None, timings=None):
    """Compute the report of a pruned network (see :func:`gpuprune.report.report`); returns a JSON-ready dict.

    ``timings``, a dict, receives the seconds of each phase: open, read_pruned, funnel, check, statistics.
    """
    clock = _Clock(timings)
    net = Network(network_path, config_file=config_file, random_seed=random_seed)
    clock("open")
    pruned_file = os.path.abspath(pruned_file or os.path.join(net.path, OUTPUT_FILE))
    pruned, positions = read_pruned(pruned_file, net.num_neurons)
    clock("read_pruned")
    ctx = engine.PruneContext.from_network(net, mode=rng)
    funnel = run_funnel(net, ctx, progress=progress)
    clock("funnel")
    _check_against_file(funnel, pruned, net.num_neurons, pruned_file)
    clock("check")
    positions = np.asarray(positions, dtype=np.float64)
    post_ok = np.ones(net.num_neurons, dtype=bool)
    if centre_margin:
        lo, hi = positions.min(axis=0) + centre_margin, positions.max(axis=0) - centre_margin
        post_ok = np.all((positions >= lo) & (positions <= hi), axis=1)
        if not post_ok.any():
            raise InputError(f"no neuron lies {centre_margin * 1e6:g} um inside the network's bounding box: "
                             "use a smaller centre margin", network_path)
    bins = Bins.regular(bin_width, max_distance)
    totals = _Totals(positions, slab)
    codes = funnel.codes
    explicit = targets is not None
    targets = bundled_targets() if targets is None else \
        [(', '.join(t.pathway), t) for t in load_targets(targets)]
    pathways = [_pathway(net, codes, c, funnel, positions, post_ok, bins, totals, targets)
                for c in np.flatnonzero(funnel.rows[0])]
    if not pathways:
        raise InputError("no putative synapses or gap junctions: nothing to report", network_path)
    if explicit and not any(p["experiments"] for p in pathways):
        raise InputError("no pathway of the network matches the targets given: "
                         f"{', '.join(sorted({name for name, _ in targets}))}", network_path)
    if not any(p["has_rule"] for p in pathways):
        raise InputError("no pathway has pruning rules in the config: nothing to report", net.config_path)
    clock("statistics")
    return _json_ready({
        "version": VERSION, "network": net.path, "pruned_file": pruned_file, "config": net.config_path,
        "rng": rng, "seed": int(ctx.seed), "steps": list(STEPS),
        "options": {"bin_width": bin_width, "max_distance": max_distance, "slab": slab,
                    "centre_margin": centre_margin, "distance": "2d" if slab else "3d"},
        "totals": {k: {"putative": int(funnel.rows[0][[p["code"] for p in pathways if p["kind"] == k]].sum()),
                       "kept": int(funnel.kept_rows[k])} for k in (SYNAPSES.name, GAP_JUNCTIONS.name)},
        "pathways": pathways,
    })
