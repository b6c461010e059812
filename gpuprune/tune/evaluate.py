"""Batched evaluation: kept rows per group for P parameter sets at once (DESIGN §3, §7).

For every parameter set the rules run in DESIGN §3's order on the model's fixed draws: a3 drops whole
groups, f1 (and the fixed distance test) selects rows, soft_max thins groups above it, mu2 drops
groups; cluster pruning leaves the counts unchanged (see :mod:`gpuprune.tune.model`).  Every step is
an array operation over (P, rows) or (P, groups); probabilities that need ``exp`` come from the
rules' own tables (``p_keep_table``, ``p_mu_table``), computed on the host once per distinct value,
so a CuPy run (``xp=cupy``) only compares and counts and gives the same integers.
"""

from dataclasses import dataclass

import numpy as np

from gpuprune.errors import InputError
from gpuprune.rules import p_keep_table, p_mu_table

#: the parameters a fit can vary
FITTABLE = ("f1", "soft_max", "mu2", "a3")
#: prefix of the parameters of the ``pruning_other`` block
OTHER = "pruning_other."
#: OptimisePruning's default bounds (snudda/optimise/optimise_pruning.py)
DEFAULT_BOUNDS = {"f1": (0.0, 1.0), "soft_max": (0.0, 5.0), "mu2": (0.0, 5.0), "a3": (0.0, 1.0)}
#: the values each parameter may take
VALID = {"f1": (0.0, 1.0), "soft_max": (0.0, np.inf), "mu2": (0.0, np.inf), "a3": (0.0, 1.0)}


def split_name(name):
    """``"f1"`` -> (0, "f1"); ``"pruning_other.mu2"`` -> (1, "mu2"); anything else: InputError."""
    block, base = (1, name[len(OTHER):]) if name.startswith(OTHER) else (0, name)
    if base not in FITTABLE:
        raise InputError(f"unknown parameter {name!r}; fit any of {', '.join(FITTABLE)} "
                         f"(prefix {OTHER!r} for the pruning_other block)")
    return block, base


def check_bounds(names, bounds):
    """Bounds per name (``"default"``: OptimisePruning's); a bound outside the parameter's range: InputError."""
    if bounds is None or bounds == "default":
        bounds = [DEFAULT_BOUNDS[split_name(n)[1]] for n in names]
    if isinstance(bounds, dict):
        bounds = [bounds.get(n, DEFAULT_BOUNDS[split_name(n)[1]]) for n in names]
    if len(bounds) != len(names):
        raise InputError(f"{len(bounds)} bounds given for {len(names)} parameters")
    out = []
    for n, b in zip(names, bounds, strict=True):
        lo, hi = (float(x) for x in b)
        vlo, vhi = VALID[split_name(n)[1]]
        if not (np.isfinite(lo) and np.isfinite(hi) and vlo <= lo < hi <= vhi):
            raise InputError(f"bounds {tuple(b)} for {n} must satisfy {vlo} <= low < high <= {vhi}")
        out.append((lo, hi))
    return out


@dataclass
class ParameterBatch:
    """P parameter sets for the (one or two) blocks of a pathway: arrays (P, blocks); ``has_*`` (blocks,)."""

    f1: np.ndarray
    soft_max: np.ndarray
    mu2: np.ndarray
    a3: np.ndarray
    has_soft_max: np.ndarray
    has_mu2: np.ndarray
    has_a3: np.ndarray

    @property
    def size(self):
        return self.f1.shape[0]

    @classmethod
    def build(cls, blocks, values):
        """``blocks``: the pathway's ParameterSets; ``values``: name -> (P,) array (names as :func:`split_name`)."""
        sizes = {np.asarray(v).reshape(-1).size for v in values.values()} or {1}
        if len(sizes) != 1:
            raise InputError(f"parameter arrays differ in length: {sorted(sizes)}")
        p = sizes.pop()
        cols = {k: np.empty((p, len(blocks))) for k in FITTABLE}
        has = {k: np.zeros(len(blocks), dtype=bool) for k in ("soft_max", "mu2", "a3")}
        for b, ps in enumerate(blocks):
            for k in FITTABLE:
                v = getattr(ps, k)
                cols[k][:, b] = np.inf if v is None else float(v)
                if k in has:
                    has[k][b] = v is not None
        for name, v in values.items():
            b, k = split_name(name)
            if b >= len(blocks):
                raise InputError(f"{name}: this pathway has no pruning_other block")
            v = np.asarray(v, dtype=np.float64).reshape(-1)
            lo, hi = VALID[k]
            if not np.all((v >= lo) & (v <= hi)):
                raise InputError(f"{name} values must lie in {lo}..{hi}")
            cols[k][:, b] = v
            if k in has:
                has[k][b] = True
        return cls(cols["f1"], cols["soft_max"], cols["mu2"], cols["a3"], has["soft_max"], has["mu2"], has["a3"])


def _tables(fn, values, has, n_max):
    """(P, blocks, n_max + 1) table of ``fn(value, n_max)``, computed once per distinct value."""
    out = np.zeros(values.shape + (n_max + 1,))
    for b in np.flatnonzero(has):  # at most two blocks
        distinct, inverse = np.unique(values[:, b], return_inverse=True)
        table = np.stack([fn(v, n_max) for v in distinct.tolist()])  # once per distinct value
        out[:, b] = table[inverse.reshape(-1)]
    return out


class Evaluator:
    """A model's arrays on one array backend (NumPy, or CuPy for the GPU), evaluated in batches.

    f1 without a pass over (P, rows): per block, the P values of f1 are sorted once; a row with draw
    ``r`` is kept for the sorted values at and after ``j = searchsorted(sorted_f1, r, "right")``, so a
    histogram of ``j`` per group, cumulated over j, gives every group's count for every set.  The
    work is O(rows log P + groups P); soft_max then revisits only the kept rows of the (set, group)
    pairs above soft_max.
    """

    def __init__(self, model, xp=np):
        self.model, self.xp = model, xp
        g = model.num_groups
        bounds = np.searchsorted(model.row_group, np.arange(g + 1))
        self.n_max = int(np.max(np.diff(bounds), initial=0))
        put = xp.asarray
        rb = model.group_block[model.row_group]
        self.blocks = [(b, put(np.flatnonzero(rb == b)), put(model.row_group[rb == b].astype(np.int64)),
                        put(model.r_f1[rb == b])) for b in np.unique(model.group_block).tolist()]
        self.gb = put(model.group_block.astype(np.int64))
        self.r_f1, self.r_sm = put(model.r_f1), put(model.r_sm)
        self.r_a3, self.r_mu2 = put(model.r_a3), put(model.r_mu2)
        self.lo, self.sizes = put(bounds[:-1]), put(np.diff(bounds))
        self.num_groups = g

    def _base(self, p, n_blocks):
        """Flat offsets ``(set * blocks + block) * width`` into (P, blocks, width) tables (cached per P)."""
        key = (p, n_blocks)
        if getattr(self, "_base_key", None) != key:
            xp = self.xp
            self._base_cache = ((xp.arange(p, dtype=np.int32)[None, :] * n_blocks + self.gb[:, None].astype(np.int32))
                                * np.int32(self.n_max + 1))
            self._base_key = key
        return self._base_cache

    def kept_gp(self, batch):
        """Kept rows per group, int32 (groups, P), for a :class:`ParameterBatch`."""
        xp, put = self.xp, self.xp.asarray
        p, g = batch.size, self.num_groups
        n = None
        for b, _, grp, r_f1 in self.blocks:  # at most two blocks
            order = np.argsort(batch.f1[:, b], kind="stable")
            rank = np.empty(p, dtype=np.int64)
            rank[order] = np.arange(p)
            j = xp.searchsorted(put(batch.f1[order, b]), r_f1, side="right")
            hist = xp.bincount(grp * (p + 1) + j, minlength=g * (p + 1)).reshape(g, p + 1).astype(np.int32)
            part = xp.take(xp.cumsum(hist, axis=1, dtype=np.int32), put(rank), axis=1)
            n = part if n is None else n + part
        if batch.has_a3.any():
            n *= ~(put(batch.has_a3)[self.gb][:, None] & (self.r_a3[:, None] > put(batch.a3.T)[self.gb]))
        if batch.has_soft_max.any():
            over = put(batch.has_soft_max)[self.gb][:, None] & (n > put(batch.soft_max.T)[self.gb])
            if bool(over.any()):
                self._soft_max(batch, n, over)
        if batch.has_mu2.any():
            tab = put(_tables(p_mu_table, batch.mu2, batch.has_mu2, self.n_max).reshape(-1))
            p_mu = xp.take(tab, self._base(p, batch.mu2.shape[1]) + n)
            n *= ~(put(batch.has_mu2)[self.gb][:, None] & (p_mu < self.r_mu2[:, None]))
        return n

    def _soft_max(self, batch, n, over):
        """soft_max for the (group, set) pairs above it.  The rows f1 kept are the first ``n`` of their
        group (rows are sorted by r_f1 within a group), so only those are visited."""
        xp, put = self.xp, self.xp.asarray
        flat = xp.flatnonzero(over)  # flat indices into the C-ordered (groups, P) array
        p = over.shape[1]
        og, op = flat // p, flat % p
        n_flat = n.reshape(-1)
        k = n_flat[flat]  # >= 1: over means n > soft_max >= 0
        width = self.n_max + 1
        tab = put(_tables(p_keep_table, batch.soft_max, batch.has_soft_max, self.n_max).reshape(-1))
        thr = tab[(op * batch.soft_max.shape[1] + self.gb[og]) * width + k]
        first = xp.cumsum(k) - k
        slot = xp.arange(int(k.sum()))
        if xp is np:
            pair = np.repeat(np.arange(flat.size), k)
        else:  # CuPy's repeat takes no per-element counts
            pair = xp.searchsorted(first, slot, side="right") - 1
        survive = self.r_sm[self.lo[og][pair] + (slot - first[pair])] < thr[pair]
        n_flat[flat] = xp.add.reduceat(survive, first, dtype=np.int32) if xp is np else \
            xp.bincount(pair, weights=survive, minlength=og.size).astype(np.int32)

    def kept(self, batch):
        """Kept rows per group, (P, groups) (a transposed view of :meth:`kept_gp`)."""
        return self.kept_gp(batch).T
