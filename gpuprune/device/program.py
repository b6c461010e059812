"""The device engine: one chunk pruned by the kernels of ``kernels/prune.cu``.

The algorithm is written once against a small *backend* object that owns the
device arrays and launches kernels: :class:`gpuprune.cuda.CupyBackend` on a
GPU, :class:`gpuprune._emulate.EmulatedBackend` (NumPy arrays, the same
kernels compiled for the host) everywhere else.  It follows the NumPy engine
(:func:`gpuprune.engine.prune_chunk`) step for step, so philox-mode output is
byte-identical:

1. key: pack (dest - dest_lo, src, type) into one uint64 per row;
2. order: a stable argsort of the keys (one radix sort on a GPU);
3. segment: group starts where the sorted key changes;
4. decide: a3, f1 + distance, soft_max, mu2, cluster pruning, in kernels that
   compare Philox draws with parameters and host-built probability tables;
5. compact: gather the kept rows, with the group's parameter id.

A backend provides: ``empty``, ``zeros``, ``upload``, ``download``,
``argsort`` (stable), ``flatnonzero``, ``max_int``, ``launch``, stream and
event helpers, and ``OutOfMemory`` (the exception a failed allocation raises).
"""

import threading

import numpy as np

from gpuprune import engine
from gpuprune.engine.groups import bits as _bits
from gpuprune.engine.pathway import PathwayCodes
from gpuprune.errors import InputError
from gpuprune.rng.philox import KIND_SYNAPSE

#: parameter-set flag bits (``#define``d for the kernels by :func:`gpuprune.cuda.kernel_defines`).
FLAG_HAS_SOFT_MAX = 1
FLAG_HAS_MU2 = 2
FLAG_HAS_A3 = 4
FLAG_CLUSTER = 8
FLAG_ROW_DRAW = 16
#: p(d) table kinds: dense over a column-8 range, or one entry per chunk row (file order).
DIST_DENSE = 0
DIST_PER_ROW = 1
#: error bits of ``gp_build_keys``.
ERR_NEURON = 1
ERR_TYPE = 2
#: bits of the channel type in the packed key.
TYPE_BITS = 16
#: "no bad group" value of ``gp_group_init``'s atomicMin slot.
NO_GROUP = np.uint64(0xFFFFFFFFFFFFFFFF)

#: device bytes per chunk row besides the rows themselves: key, order and the sort's
#: temporaries, group starts (with scan temporaries), row -> group map, per-group
#: arrays (at most one group per row), keep/candidate flags, kept positions.
WORK_BYTES_PER_ROW = 8 + 8 + 24 + 1 + 16 + 8 + (8 + 4 + 1 + 8 + 8 + 1) + 2 + 16
#: extra bytes per row with cluster pruning (int64 neighbour counts).
CLUSTER_BYTES_PER_ROW = 8
#: a p(d) table is dense over the chunk's column-8 range when that range has fewer than
#: DENSE_TABLE_FACTOR * rows + DENSE_TABLE_SLACK values (as the NumPy engine decides), else per row.
DENSE_TABLE_FACTOR = 4
DENSE_TABLE_SLACK = 4096
#: device bytes per row and distance expression for p(d) tables, and per expression and chunk.
DIST_BYTES_PER_ROW = 8 * DENSE_TABLE_FACTOR
DIST_BYTES_FIXED = 8 * DENSE_TABLE_SLACK
#: small per-chunk allocations (error word, first bad group, minimum sizes).
CHUNK_BYTES_FIXED = 1024
#: chunks whose rows may be resident on one device at once (the one pruned, the next one staged).
STAGED_CHUNKS = 2


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
        self.n_expressions = len(rules.expressions)
        self.cluster_threshold = engine.CLUSTER_DISTANCE / ctx.voxel_size
        self.seed = int(ctx.seed)

    def arrays(self):
        """The arrays uploaded once per run and device, by name."""
        return {name: getattr(self, name) for name in
                ("lut", "flags", "f1", "soft_max", "a3", "dist_index", "neuron_type", "unit", "msd")}

    def bytes_per_row(self, kind):
        """Device bytes one chunk row of ``kind`` needs (see :data:`WORK_BYTES_PER_ROW`)."""
        row = 4 * kind.width
        per_row = STAGED_CHUNKS * row + row + WORK_BYTES_PER_ROW
        if self.any_cluster:
            per_row += CLUSTER_BYTES_PER_ROW
        if kind.kind_id == KIND_SYNAPSE:
            per_row += DIST_BYTES_PER_ROW * self.n_expressions
        return per_row

    def fixed_bytes(self, kind):
        """Device bytes a chunk needs whatever its size: p(d) tables' slack, statistics, flags."""
        dist = DIST_BYTES_FIXED * self.n_expressions if kind.kind_id == KIND_SYNAPSE else 0
        return dist + 4 * 8 * self.code_size + CHUNK_BYTES_FIXED

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
    dense = hi - lo < DENSE_TABLE_FACTOR * n + DENSE_TABLE_SLACK
    modes, los, offsets, parts, off = [], [], [], [], 0
    for expr in exprs:
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
        modes.append(mode)
        los.append(lo)
        offsets.append(off)
        parts.append(np.ascontiguousarray(p, dtype=np.float64))
        off += parts[-1].size
    return {"mode": np.array(modes, dtype=np.int32), "lo": np.array(los, dtype=np.int64),
            "offset": np.array(offsets, dtype=np.int64), "p": np.concatenate(parts)}


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
        dev.launch("gp_neuron_keys", n, (np.int64(n), np.uint64(tables.seed), self.key0, self.key1))
        self.table_stride = 0
        self.p_keep = self.p_mu = None
        self.probability_tables(0)  # the smallest tables now, so that budgets count them

    @property
    def nbytes(self):
        """Device bytes the run's tables take."""
        arrays = [*self.d.values(), self.key0, self.key1, self.p_keep, self.p_mu]
        return sum(int(a.nbytes) for a in arrays)

    def probability_tables(self, max_n):
        """Device copies of the soft_max/mu2 tables covering n = 0 .. ``max_n`` kept rows."""
        if max_n >= self.table_stride:
            with self.lock:
                p_keep, p_mu = self.ctx.probability_tables(max_n)
            self.table_stride = int(p_keep.shape[1])
            self.p_keep = self.dev.upload(_nonempty(p_keep.reshape(-1)))
            self.p_mu = self.dev.upload(_nonempty(p_mu.reshape(-1)))
        return self.p_keep, self.p_mu, self.table_stride


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
    i32, i64, u32 = np.int32, np.int64, np.uint32
    n_, w_, syn_, kind_ = i64(n), i32(width), i32(is_syn), u32(kind.kind_id)
    dest_shift = TYPE_BITS + _bits(t.num_neurons - 1)
    if dest_shift + _bits(max(dest_hi - dest_lo - 1, 0)) > 64:
        raise ValueError(f"dest range {dest_lo}..{dest_hi - 1} is too wide for a 64-bit group key")

    # 1. key, with the checks the NumPy engine makes first
    key = dev.empty(n, np.uint64)
    error = dev.zeros(1, np.uint32)
    dev.launch("gp_build_keys", n, (n_, d_rows, w_, syn_, i64(dest_lo), i64(dest_hi), i64(t.num_neurons),
                                    i32(dest_shift), key, error))
    bad = int(dev.download(error)[0])
    if bad & ERR_NEURON:
        raise InputError(f"{kind.name} rows disagree with the lookup tables: rows of the slice for dest "
                         f"neurons {report_lo}..{report_hi - 1} name neurons outside that range or outside "
                         f"0..{ctx.num_neurons - 1}")
    if bad & ERR_TYPE:
        raise InputError("synapse channel types must lie in 0 .. 2**16-1")

    # 2. order (stable: rows of a group stay in file order) and 3. segment
    order = dev.argsort(key)
    is_start = dev.empty(n, np.uint8)
    dev.launch("gp_group_starts", n, (n_, key, order, is_start))
    del key
    starts = dev.flatnonzero(is_start)
    del is_start
    n_groups = int(starts.shape[0])
    g_ = i64(n_groups)

    # 4. decide: a3 and the r check per group ...
    d = state.d
    size = dev.empty(n_groups, np.int64)
    pset = dev.empty(n_groups, np.int32)
    alive = dev.empty(n_groups, np.uint8)
    code = dev.empty(n_groups, np.int64)
    row_group = dev.empty(n, np.int64)
    bad_group = dev.upload(np.array([NO_GROUP], dtype=np.uint64))
    dev.launch("gp_group_init", n_groups, (
        g_, n_, starts, order, d_rows, w_, syn_, kind_, d["lut"], i32(t.lut_types), i32(t.lut_channels),
        d["flags"], d["a3"], d["dist_index"], d["neuron_type"], d["unit"], d["msd"], i32(t.has_msd),
        state.key0, state.key1, i32(t.code_types), i32(t.max_channel), size, pset, alive, code, row_group,
        bad_group))
    if dev.max_int(size) >= 2 ** 32 - 1:
        raise InputError("a group has 2**32-1 rows or more")
    first_bad = dev.download(bad_group)[0]
    if first_bad != NO_GROUP:
        _raise_relative_distance(ctx, dev, rows, order, starts, size, int(first_bad))
    p_keep, p_mu, stride = state.probability_tables(dev.max_int(size))

    # ... f1 and distance per row ...
    keep = dev.empty(n, np.uint8)
    cand = dev.empty(n, np.uint8)
    dev.launch("gp_row_rules", n, (
        n_, order, d_rows, w_, syn_, kind_, row_group, starts, pset, alive, d["flags"], d["f1"],
        d["dist_index"], d_dist["mode"], d_dist["lo"], d_dist["offset"], d_dist["p"], state.key0, state.key1,
        keep, cand))

    # ... soft_max and mu2 per group ...
    n_keep = dev.empty(n_groups, np.int64)
    cluster = dev.empty(n_groups, np.uint8)
    dev.launch("gp_group_limits", n_groups, (
        g_, starts, size, order, d_rows, w_, syn_, kind_, pset, alive, d["flags"], d["soft_max"], p_keep, p_mu,
        i64(stride), state.key0, state.key1, keep, n_keep, cluster))

    # ... cluster pruning per row
    if t.any_cluster:
        count = dev.empty(n, np.int64)
        dev.launch("gp_cluster_counts", n, (n_, order, d_rows, w_, row_group, starts, size, cluster, cand,
                                            np.float64(t.cluster_threshold), count))
        dev.launch("gp_cluster_select", n, (n_, row_group, starts, size, cluster, cand, count, n_keep, keep))
        del count
    del cand, cluster, pset, alive

    # 5. compact
    kept = dev.flatnonzero(keep)
    del keep
    m = int(kept.shape[0])
    out = dev.empty(max(m, 1) * width, np.int32)
    share = is_syn and ctx.share_parameter_id
    dev.launch("gp_gather", m, (i64(m), kept, order, d_rows, w_, row_group, starts, i32(share), out))
    d_stats = dev.zeros(4 * t.code_size, np.uint64)
    dev.launch("gp_stats", n_groups, (g_, code, size, n_keep, i64(t.code_size), d_stats))
    out_rows = dev.download(out)[:m * width].reshape(m, width)
    stats[:] = dev.download(d_stats).view(np.int64).reshape(4, t.code_size)
    return engine.ChunkResult(out_rows, stats, n)


def _raise_relative_distance(ctx, dev, rows, order, starts, size, g):
    """Raise the NumPy engine's error for the first group whose r lies outside 0..1."""
    start = int(dev.download(starts[g:g + 1])[0])
    length = int(dev.download(size[g:g + 1])[0])
    members = dev.download(order[start:start + length])
    c8 = rows[members, 8]
    engine._check_relative_distance(ctx, np.array([c8.min()]), np.array([c8.max()]),
                                    np.array([int(rows[members[0], 1])]))
    raise AssertionError("the device flagged a group whose r the host finds valid")  # pragma: no cover
