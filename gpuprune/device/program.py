"""The device engine: one chunk pruned by the kernels of ``kernels/prune.cu``.

The algorithm is written once against a backend (:class:`gpuprune.device.backend.DeviceBackend`):
:class:`gpuprune.device.cupy_backend.CupyBackend` on a GPU,
:class:`gpuprune.device.emulated.EmulatedBackend` (NumPy arrays, the same kernels compiled for the
host) everywhere else.  It follows the NumPy engine (:func:`gpuprune.engine.prune_chunk`) step for
step, so philox-mode output is byte-identical:

1. key: pack (dest - dest_lo, src, type) into one uint64 per row;
2. order: a stable argsort of the keys (one radix sort on a GPU);
3. segment: group starts where the sorted key changes (and a check that it never decreases);
4. decide: a3, f1 + distance, soft_max, mu2, cluster pruning, in kernels that compare Philox draws
   with parameters and host-built probability tables;
5. compact: gather the kept rows, with the group's parameter id.

Every kernel takes the one argument struct of :mod:`gpuprune.device.abi`, filled here as an
:class:`abi.Args`; the allocations are those :data:`gpuprune.device.memory.WORK_ALLOCATIONS` counts.
"""

import threading

import numpy as np

from gpuprune import engine
from gpuprune.device import abi, memory
from gpuprune.device.abi import (
    DIST_DENSE,
    DIST_PER_ROW,
    ERR_NEURON,
    ERR_TYPE,
    ERR_UNSORTED,
    FLAG_CLUSTER,
    FLAG_HAS_A3,
    FLAG_HAS_MU2,
    FLAG_HAS_SOFT_MAX,
    FLAG_ROW_DRAW,
    NO_GROUP,
    TYPE_BITS,
)
from gpuprune.engine.decide import metres
from gpuprune.engine.groups import bits as _bits
from gpuprune.engine.pathway import PathwayCodes
from gpuprune.errors import DeviceError, InputError
from gpuprune.rng.philox import KIND_SYNAPSE


def _nonempty(a):
    """``a``, or a one-element zero array of its dtype (kernels never read it then)."""
    a = np.ascontiguousarray(a)
    return a if a.size else np.zeros(1, dtype=a.dtype)


class RuleTables:
    """Host-side parameter and neuron tables of one run, as the kernels read them.

    Parameters
    ----------
    ctx : engine.PruneContext
    """

    def __init__(self, ctx):
        rules = ctx.rules
        self.lut = np.ascontiguousarray(rules.lut, dtype=np.int32).reshape(-1)
        self.lut_types = int(rules.lut.shape[0])
        self.lut_channels = int(rules.lut.shape[2])
        n_sets = len(rules.parameter_sets)
        flags = np.zeros(n_sets, dtype=np.uint8)
        if n_sets:
            flags |= np.where(rules.has_soft_max, FLAG_HAS_SOFT_MAX, 0).astype(np.uint8)
            flags |= np.where(rules.has_mu2, FLAG_HAS_MU2, 0).astype(np.uint8)
            flags |= np.where(rules.has_a3, FLAG_HAS_A3, 0).astype(np.uint8)
            flags |= np.where(rules.cluster, FLAG_CLUSTER, 0).astype(np.uint8)
            flags |= np.where(rules.needs_row_draw, FLAG_ROW_DRAW, 0).astype(np.uint8)
        self.n_sets = n_sets
        self.flags = _nonempty(flags)
        self.f1 = _nonempty(np.asarray(rules.f1, dtype=np.float64))
        self.soft_max = _nonempty(np.asarray(rules.soft_max, dtype=np.float64))
        self.a3 = _nonempty(np.asarray(rules.a3, dtype=np.float64))
        self.dist_index = _nonempty(np.asarray(rules.dist_index, dtype=np.int32))
        self.neuron_type = _nonempty(np.asarray(ctx.neuron_type, dtype=np.int32))
        self.unit = _nonempty(np.asarray(ctx.population_unit, dtype=np.int64))
        self.has_msd = ctx.max_soma_distance_dend is not None
        self.msd = _nonempty(np.asarray(ctx.max_soma_distance_dend if self.has_msd else [], dtype=np.float64))
        self.num_neurons = int(ctx.num_neurons)
        codes = PathwayCodes.from_context(ctx)
        self.code_types = codes.n_types
        self.max_channel = int(ctx.max_channel_type_id)
        self.code_size = codes.size
        self.any_cluster = bool(n_sets and rules.cluster.any())
        self.has_tables = bool(n_sets and (rules.has_soft_max.any() or rules.has_mu2.any()))
        self.n_expressions = len(rules.expressions)
        self.cluster_threshold = engine.CLUSTER_DISTANCE / ctx.voxel_size
        self.seed = int(ctx.seed)

    def arrays(self):
        """The arrays uploaded once per run and device, by name."""
        return {name: getattr(self, name) for name in
                ("lut", "flags", "f1", "soft_max", "a3", "dist_index", "neuron_type", "unit", "msd")}

    def bytes_per_row(self, kind):
        """Device bytes one chunk row of ``kind`` needs (:func:`gpuprune.device.memory.bytes_per_row`),
        with room for the soft_max/mu2 tables to grow to the chunk's largest group (at most all its rows)."""
        return (memory.bytes_per_row(kind, self.any_cluster, self.n_expressions)
                + memory.table_bytes_per_row(self.n_sets, self.has_tables))

    def fixed_bytes(self, kind):
        """Device bytes a chunk needs whatever its size: p(d) tables' slack, statistics, flags."""
        return memory.fixed_bytes(kind, self.n_expressions, self.code_size)

    def max_dest_span(self):
        """Most dest neurons a chunk may span for its packed key to fit 64 bits."""
        return 1 << (64 - TYPE_BITS - _bits(self.num_neurons - 1))


def distance_tables(ctx, kind, rows):
    """p(d) tables of one chunk (DESIGN §4), built on the host with the NumPy expression evaluator.

    Each expression gets a dense table over the chunk's column-8 range when that
    range is small (the usual case: distances in µm), else one entry per row;
    expressions in ``r`` always get one entry per row, since r depends on the
    dest neuron.  Values are those the NumPy engine computes for the same
    arguments.

    Returns
    -------
    dict
        ``mode`` (int32), ``lo`` (int64), ``offset`` (int64), one entry per
        expression, and ``p`` (float64), all tables concatenated.
    """
    exprs = ctx.rules.expressions if kind.kind_id == KIND_SYNAPSE else []
    n = rows.shape[0]
    if not exprs or n == 0:
        zero = np.zeros(1, dtype=np.int64)
        return {"mode": np.zeros(1, dtype=np.int32), "lo": zero, "offset": zero.copy(),
                "p": np.zeros(1, dtype=np.float64)}
    c8 = rows[:, 8]
    lo, hi = int(c8.min()), int(c8.max())
    dense = hi - lo < memory.DENSE_TABLE_FACTOR * n + memory.DENSE_TABLE_SLACK
    modes, los, offsets, parts, off = [], [], [], [], 0
    for e, expr in enumerate(exprs):
        if expr.uses_r:
            d = c8 * 1e-6
            p = expr.evaluate(d, d / ctx.max_soma_distance_dend[rows[:, 1]])
            mode = DIST_PER_ROW
        elif dense:
            p = expr.evaluate(np.arange(lo, hi + 1, dtype=np.int64) * 1e-6)
            mode = DIST_DENSE
        else:
            p = expr.evaluate(c8 * 1e-6)
            mode = DIST_PER_ROW
        if ctx.rules.unwarned_out_of_range(e, p):  # the common case: one pass over the table, or none once warned
            _check_probabilities(ctx, e, rows, p if mode == DIST_PER_ROW else p[c8 - lo])
        modes.append(mode)
        los.append(lo)
        offsets.append(off)
        parts.append(np.ascontiguousarray(p, dtype=np.float64))
        off += parts[-1].size
    return {"mode": np.array(modes, dtype=np.int32), "lo": np.array(los, dtype=np.int64),
            "offset": np.array(offsets, dtype=np.int64), "p": np.concatenate(parts)}


def _check_probabilities(ctx, e, rows, p_rows):
    """The NumPy engine's warning (:meth:`rules.PruningRules.check_probabilities`, once per expression) for the
    rows whose pathway uses expression ``e``: the device compares the same values, so it warns the same way.
    Only reached when a table holds a value outside 0..1."""
    src, dest = rows[:, 0].astype(np.intp), rows[:, 1].astype(np.intp)
    other = ctx.population_unit[src] != ctx.population_unit[dest]
    pset = ctx.rules.parameter_index(ctx.neuron_type[src], ctx.neuron_type[dest], rows[:, 6], other)
    sel = np.flatnonzero((pset >= 0) & (ctx.rules.dist_index[np.maximum(pset, 0)] == e))
    ctx.rules.check_probabilities(e, p_rows[sel], lambda i: metres(rows[sel[i], 8]))


class DeviceState:
    """The run's tables on one device: uploaded once, probability tables grown on demand.

    Parameters
    ----------
    dev : backend
    tables : RuleTables
    ctx : engine.PruneContext
    lock : threading.Lock, optional
        Guards ``ctx.probability_tables`` (shared by the devices of a pool).
    """

    def __init__(self, dev, tables, ctx, lock=None):
        self.dev, self.tables, self.ctx = dev, tables, ctx
        self.lock = lock or threading.Lock()
        self.d = {name: dev.upload(a) for name, a in tables.arrays().items()}
        n = tables.num_neurons
        self.key0 = dev.empty(max(n, 1), np.uint32)
        self.key1 = dev.empty(max(n, 1), np.uint32)
        self.table_stride = 0
        self.p_keep = self.p_mu = None
        self.probability_tables(0)  # the smallest tables now, so that budgets count them
        dev.launch("gp_neuron_keys", n, self.args())

    @property
    def nbytes(self):
        """Device bytes the run's tables take."""
        arrays = [*self.d.values(), self.key0, self.key1, self.p_keep, self.p_mu]
        return sum(int(a.nbytes) for a in arrays)

    def probability_tables(self, max_n):
        """Device copies of the soft_max/mu2 tables covering n = 0 .. ``max_n`` kept rows.

        Stride and tables change together, once both uploads have succeeded: a failed upload
        (out of memory, then a retry on a smaller chunk) leaves the previous, consistent tables.
        """
        if max_n >= self.table_stride:
            with self.lock:
                p_keep, p_mu = self.ctx.probability_tables(max_n)
            d_keep = self.dev.upload(_nonempty(p_keep.reshape(-1)))
            d_mu = self.dev.upload(_nonempty(p_mu.reshape(-1)))
            self.p_keep, self.p_mu, self.table_stride = d_keep, d_mu, int(p_keep.shape[1])
        return self.p_keep, self.p_mu, self.table_stride

    def args(self):
        """A new :class:`abi.Args` with the run's fields (tables, neurons, keys) filled in."""
        t, d = self.tables, self.d
        return abi.Args({
            "rules.lut": d["lut"], "rules.lut_types": t.lut_types, "rules.lut_channels": t.lut_channels,
            "rules.flags": d["flags"], "rules.f1": d["f1"], "rules.soft_max": d["soft_max"], "rules.a3": d["a3"],
            "rules.dist_index": d["dist_index"], "rules.p_keep": self.p_keep, "rules.p_mu": self.p_mu,
            "rules.table_stride": self.table_stride,
            "num_neurons": t.num_neurons, "seed": t.seed, "neuron_type": d["neuron_type"], "unit": d["unit"],
            "msd": d["msd"], "has_msd": int(t.has_msd), "key0": self.key0, "key1": self.key1,
            "code_types": t.code_types, "max_channel": t.max_channel, "code_size": t.code_size,
            "cluster_threshold": t.cluster_threshold,
        })


def prune_on_device(state, kind, d_rows, d_dist, rows, dest_lo, dest_hi, report_range=None):
    """Prune the rows onto dest neurons ``[dest_lo, dest_hi)`` with the device kernels.

    Runs on the backend's current stream; the result is on the host when it returns.

    Parameters
    ----------
    state : DeviceState
    kind : network.Kind
    d_rows : device array of int32, (n * width,)
        The chunk's rows in file order (DESIGN §4), uploaded.
    d_dist : dict of device arrays
        The chunk's :func:`distance_tables`, uploaded.
    rows : ndarray of int32, (n, width)
        The same rows on the host (for error messages only).
    dest_lo, dest_hi : int
    report_range : (int, int), optional
        Dest range to name in error messages (the planned chunk's, default this one).

    Returns
    -------
    engine.ChunkResult
        Equal, array for array, to :func:`engine.prune_chunk` on the same rows in philox mode.
    """
    dev, t, ctx = state.dev, state.tables, state.ctx
    n, width = rows.shape
    is_syn = kind.kind_id == KIND_SYNAPSE
    stats = np.zeros((4, t.code_size), dtype=np.int64)
    if n == 0:
        return engine.ChunkResult(rows[:0].copy(), stats, 0)
    report_lo, report_hi = report_range or (dest_lo, dest_hi)
    dest_shift = TYPE_BITS + _bits(t.num_neurons - 1)
    if dest_shift + _bits(max(dest_hi - dest_lo - 1, 0)) > 64:
        raise ValueError(f"dest range {dest_lo}..{dest_hi - 1} is too wide for a 64-bit group key")
    a = state.args()
    a.update({"n": n, "rows": d_rows, "width": width, "is_synapse": int(is_syn), "kind": kind.kind_id,
              "dest_lo": dest_lo, "dest_hi": dest_hi, "dest_shift": dest_shift,
              "share_parameter_id": int(is_syn and ctx.share_parameter_id),
              "dist.mode": d_dist["mode"], "dist.lo": d_dist["lo"], "dist.offset": d_dist["offset"],
              "dist.p": d_dist["p"]})

    # 1. key, with the checks the NumPy engine makes first
    a["key"] = dev.empty(n, np.uint64)
    a["error"] = error = dev.zeros(1, np.uint32)
    dev.launch("gp_build_keys", n, a)

    # 2. order (stable: rows of a group stay in file order) and 3. segment, checking the order
    a["order"] = order = dev.argsort(a["key"])
    a["is_start"] = dev.empty(n, np.uint8)
    dev.launch("gp_group_starts", n, a)
    a["key"] = None
    a["starts"] = starts = dev.flatnonzero(a["is_start"])
    a["is_start"] = None
    bad = int(dev.download(error)[0])
    if bad & ERR_NEURON:
        raise InputError(f"{kind.name} rows disagree with the lookup tables: rows of the slice for dest "
                         f"neurons {report_lo}..{report_hi - 1} name neurons outside that range or outside "
                         f"0..{ctx.num_neurons - 1}")
    if bad & ERR_TYPE:
        raise InputError("synapse channel types must lie in 0 .. 2**16-1")
    if bad & ERR_UNSORTED:
        raise DeviceError(f"{dev.description}: the device sort returned keys out of order (a failed sort "
                          "workspace allocation in CuPy < 14.1?); upgrade CuPy, or use --device cpu")
    n_groups = int(starts.shape[0])

    # 4. decide: a3 and the r check per group ...
    a.update({"n_groups": n_groups, "size": (size := dev.empty(n_groups, np.int64)),
              "pset": dev.empty(n_groups, np.int32), "alive": dev.empty(n_groups, np.uint8),
              "code": dev.empty(n_groups, np.int64), "row_group": dev.empty(n, np.int64),
              "bad_group": (bad_group := dev.upload(np.array([NO_GROUP], dtype=np.uint64)))})
    dev.launch("gp_group_init", n_groups, a)
    largest = dev.max_int(size)  # one synchronisation: the group-size check and the tables' size
    if largest >= 2 ** 32 - 1:
        raise InputError("a group has 2**32-1 rows or more")
    first_bad = dev.download(bad_group)[0]
    if first_bad != NO_GROUP:
        _raise_relative_distance(ctx, dev, rows, order, starts, size, int(first_bad))
    p_keep, p_mu, stride = state.probability_tables(largest)
    a.update({"rules.p_keep": p_keep, "rules.p_mu": p_mu, "rules.table_stride": stride})

    # ... f1 and distance per row ...
    a.update({"keep": dev.empty(n, np.uint8), "cand": dev.empty(n, np.uint8)})
    dev.launch("gp_row_rules", n, a)

    # ... soft_max and mu2 per group ...
    a.update({"n_keep": dev.empty(n_groups, np.int64), "cluster": dev.empty(n_groups, np.uint8)})
    dev.launch("gp_group_limits", n_groups, a)

    # ... cluster pruning per row
    if t.any_cluster:
        a["count"] = dev.empty(n, np.int64)
        dev.launch("gp_cluster_counts", n, a)
        dev.launch("gp_cluster_select", n, a)
        a["count"] = None
    a.update({"cand": None, "cluster": None, "pset": None, "alive": None})

    # 5. compact
    a["kept"] = kept = dev.flatnonzero(a["keep"])
    a["keep"] = None
    m = int(kept.shape[0])
    a.update({"m": m, "out": (out := dev.empty(max(m, 1) * width, np.int32))})
    dev.launch("gp_gather", m, a)
    a["stats"] = d_stats = dev.zeros(4 * t.code_size, np.uint64)
    dev.launch("gp_stats", n_groups, a)
    out_rows = dev.download(out)[:m * width].reshape(m, width)
    stats[:] = dev.download(d_stats).view(np.int64).reshape(4, t.code_size)
    return engine.ChunkResult(out_rows, stats, n)


def _raise_relative_distance(ctx, dev, rows, order, starts, size, g):
    """Raise the NumPy engine's error for the first group whose r lies outside 0..1."""
    start = int(dev.download(starts[g:g + 1])[0])
    length = int(dev.download(size[g:g + 1])[0])
    members = dev.download(order[start:start + length])
    c8 = rows[members, 8]
    engine.check_relative_distance(ctx, np.array([c8.min()]), np.array([c8.max()]),
                                    np.array([int(rows[members[0], 1])]))
    raise AssertionError("the device flagged a group whose r the host finds valid")  # pragma: no cover
