"""Batched evaluation: kept rows per group for P parameter sets at once (DESIGN §3, §7).

For every parameter set the rules run in DESIGN §3's order on the model's fixed draws: a3 drops whole
groups, f1 (and the fixed distance test) selects rows, soft_max thins groups above it, mu2 drops
groups; cluster pruning leaves the counts unchanged (see :mod:`gpuprune.tune.model`).  Every step is
an array operation over rows or (groups, P); probabilities that need ``exp`` come from the
rules' own tables (``p_keep_tables``, ``p_mu_tables``), computed on the host once per distinct value
(:func:`batch_tables`), so the device evaluation (:mod:`gpuprune.tune.device`, one kernel launch per
batch) only compares and counts and gives the same integers.
"""

from dataclasses import dataclass

import numpy as np

from gpuprune.engine.decide import a3_drops, mu2_drops, soft_max_passes
from gpuprune.errors import InputError
from gpuprune.rules import p_keep_tables, p_mu_tables

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
        arrays = {}
        for name, v in values.items():
            try:
                arrays[name] = a = np.asarray(v, dtype=np.float64)
            except (TypeError, ValueError):
                raise InputError(f"{name} values must be numbers, got {v!r}") from None
            if a.ndim > 1:
                raise InputError(f"{name} values must be a number or a 1-D sequence, got shape {a.shape}")
        values = {name: a.reshape(-1) for name, a in arrays.items()}
        sizes = {v.size for v in values.values()} or {1}
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
            lo, hi = VALID[k]
            if not np.all((v >= lo) & (v <= hi)):
                raise InputError(f"{name} values must lie in {lo}..{hi}")
            if k == "mu2" and np.any(v <= 0):  # as a config's mu2 (p_mu divides by it)
                raise InputError(f"{name} values must be > 0")
            cols[k][:, b] = v
            if k in has:
                has[k][b] = True
        return cls(cols["f1"], cols["soft_max"], cols["mu2"], cols["a3"], has["soft_max"], has["mu2"], has["a3"])


def batch_tables(batch, n_max):
    """The probability tables of a batch, (P, blocks, n_max + 1) float64 each, computed once per distinct
    value: ``p_keep`` (soft_max keep probability by kept rows n; zeros for a block without soft_max)
    and ``p_mu`` (mu2 survival probability by n; +inf for a block without mu2, which never drops a
    group).  The CPU and the device evaluation read the same tables, so ``exp`` runs on the host only."""
    p_keep = np.zeros(batch.soft_max.shape + (n_max + 1,))
    p_mu = np.full(batch.mu2.shape + (n_max + 1,), np.inf)
    for out, fn, values, has in ((p_keep, p_keep_tables, batch.soft_max, batch.has_soft_max),
                                 (p_mu, p_mu_tables, batch.mu2, batch.has_mu2)):
        for b in np.flatnonzero(has) if values.shape[0] else ():  # at most two blocks
            distinct, inverse = np.unique(values[:, b], return_inverse=True)
            out[:, b] = fn(distinct, n_max)[inverse.reshape(-1)]  # the rules' own tables, once per distinct value
    return p_keep, p_mu


def thresholds(batch):
    """(P, blocks) a3 and soft_max values with +inf where a block has none (the test then never fires)."""
    a3 = np.where(batch.has_a3[None, :], batch.a3, np.inf)
    soft_max = np.where(batch.has_soft_max[None, :], batch.soft_max, np.inf)
    return a3, soft_max


class Evaluator:
    """A model's arrays evaluated in batches with NumPy (the device twin: :mod:`gpuprune.tune.device`).

    Every comparison is the engine's own (:mod:`gpuprune.engine.decide`: ``a3_drops``,
    ``soft_max_passes``, ``mu2_drops``; f1's ``r < f1`` through a sorted search).  f1 without a pass
    over (P, rows): per block, the P values of f1 are sorted once; a row with draw
    ``r`` is kept for the sorted values after ``j = searchsorted(sorted_f1, r, "right")``, so a
    histogram of ``j`` per group, cumulated over j, gives every group's count for every set.  a3 and
    mu2 are comparisons over (groups, P); soft_max revisits only the kept rows of the (group, set)
    pairs above soft_max.  The work is O(rows log P + groups P + revisited rows).

    With a z cut (``model.row_inside``), the same pass also counts the kept rows inside it (what
    the statistics count; the rules still see every row).
    """

    def __init__(self, model):
        self.model = model
        g = model.num_groups
        bounds, self.n_max = model.row_bounds()
        rb = model.group_block[model.row_group]
        self.inside = model.row_inside
        self.blocks = []
        for b in np.unique(model.group_block).tolist():
            rows = rb == b
            grp_in = None if self.inside is None else model.row_group[rows & self.inside].astype(np.int64)
            r_in = None if self.inside is None else model.r_f1[rows & self.inside]
            self.blocks.append((b, model.row_group[rows].astype(np.int64), model.r_f1[rows], grp_in, r_in))
        self.gb = model.group_block.astype(np.intp)
        self.one_block = len(self.blocks) == 1  # per-set values broadcast over groups, no (G, P) gather
        self.r_sm, self.r_a3, self.r_mu2 = model.r_sm, model.r_a3[:, None], model.r_mu2[:, None]
        self.lo = bounds[:-1]
        self.num_groups = g
        # radix (stable) argsort of n_max - k: uint8/uint16 keys sort in linear time
        self._k_dtype = np.uint8 if self.n_max < 2**8 else np.uint16 if self.n_max < 2**16 else np.int64

    def _per_group(self, values):
        """(P, blocks) values as (groups, P), or (1, P) when the pathway's groups all use one block."""
        if self.one_block:
            return values[:, self.blocks[0][0]][None, :]
        return values.T[self.gb]

    def _f1_counts(self, batch, which):
        """Rows with r_f1 < f1 per (group, set), int32 (groups, P); ``which``: all rows (1) or inside (3)."""
        p, g = batch.size, self.num_groups
        n = np.zeros((g, p), dtype=np.int32) if not self.blocks else None  # no group: a model subset of no pair
        for block in self.blocks:  # at most two blocks
            b, grp, r_f1 = block[0], block[which], block[which + 1]
            order = np.argsort(batch.f1[:, b], kind="stable")
            rank = np.empty(p, dtype=np.int64)
            rank[order] = np.arange(p)
            j = np.searchsorted(batch.f1[order, b], r_f1, side="right")
            hist = np.bincount(grp * (p + 1) + j, minlength=g * (p + 1)).reshape(g, p + 1)
            part = np.take(np.cumsum(hist, axis=1, dtype=np.int32), rank, axis=1)
            n = part if n is None else n + part
        return n

    def evaluate_gp(self, batch):
        """``(kept, counted)``: kept rows per group, int32 (groups, P), and of those the rows inside the
        model's z cut (the same array when the model has no cut)."""
        p = batch.size
        n = self._f1_counts(batch, 1)
        n_in = n if self.inside is None else self._f1_counts(batch, 3)
        a3, soft_max = thresholds(batch)
        # the drops multiply n by a keep mask in place (faster than putmask or boolean assignment)
        if batch.has_a3.any():
            keep = np.logical_not(a3_drops(self.r_a3, self._per_group(a3)))
            n *= keep
            if n_in is not n:
                n_in *= keep
        need_keep, need_mu = batch.has_soft_max.any(), batch.has_mu2.any()
        if need_keep or need_mu:
            p_keep, p_mu = batch_tables(batch, self.n_max)
        if need_keep:
            over = np.flatnonzero(n > self._per_group(soft_max))
            if over.size:
                self._soft_max(batch, n, n_in, over, p_keep.reshape(-1))
        if need_mu:
            width = self.n_max + 1
            base = ((np.arange(p, dtype=np.intp) * batch.mu2.shape[1])[None, :] +
                    (self.blocks[0][0] if self.one_block else self.gb[:, None])) * width
            keep = np.logical_not(mu2_drops(self.r_mu2, np.take(p_mu.reshape(-1), np.add(n, base, dtype=np.intp),
                                                                mode="clip")))
            n *= keep
            if n_in is not n:
                n_in *= keep
        return n, n_in

    def _soft_max(self, batch, n, n_in, flat, p_keep):
        """soft_max for the (group, set) pairs ``flat`` (flat indices into the C-ordered (groups, P)
        ``n``) above it.  The rows f1 kept are the first ``k`` of their group (rows are sorted by
        r_f1 within a group), so only those are visited: with the pairs sorted by ``k``, descending,
        step ``t`` compares the ``t``-th kept row of every pair that has more than ``t``.  The loop
        runs over positions within a group (at most the largest group's size), each step vectorised
        over all pairs; the total work is the number of revisited rows."""
        p = n.shape[1]
        n_flat = n.reshape(-1)
        k = n_flat[flat]  # >= 1: over means n > soft_max >= 0
        by_k = np.argsort((self.n_max - k).astype(self._k_dtype), kind="stable")
        flat, k = flat[by_k], k[by_k]
        og, op = np.divmod(flat, p)
        thr = p_keep[(op * batch.soft_max.shape[1] + self.gb[og]) * (self.n_max + 1) + k]
        lo = self.lo[og]
        active = np.searchsorted(-k, -np.arange(int(k[0])), side="left")  # pairs with k > t, for each t
        survive = np.zeros(k.size, dtype=np.int32)
        survive_in = None if n_in is n else np.zeros(k.size, dtype=np.int32)
        for t, m in enumerate(active.tolist()):
            row = lo[:m] + t
            passes = soft_max_passes(self.r_sm[row], thr[:m])
            survive[:m] += passes
            if survive_in is not None:
                survive_in[:m] += passes & self.inside[row]
        n_flat[flat] = survive
        if survive_in is not None:
            n_in.reshape(-1)[flat] = survive_in

    def kept_gp(self, batch):
        """Kept rows per group, int32 (groups, P), for a :class:`ParameterBatch`."""
        return self.evaluate_gp(batch)[0]

    def kept(self, batch, counted=False):
        """Kept rows per group, (P, groups) (a transposed view); ``counted``: only those inside the z cut."""
        kept, inside = self.evaluate_gp(batch)
        return (inside if counted else kept).T
