"""Connection probability in soma-distance bins, counted over every pre x post pair, with Wilson intervals.

A pair (pre, post) of neurons is *connected* when at least one of its rows of
the pathway survives pruning (DESIGN §7).  The probability in a bin is the
number of connected pairs whose soma distance lies in the bin over the number
of all pre x post pairs in it.  The denominators do not depend on pruning,
so they are computed once: exhaustively (no sampling), block by block in
NumPy, or with ``scipy.spatial.cKDTree.count_neighbors`` for large 3D
populations.

Distances are those of ``scipy.spatial.distance_matrix`` (``sum(d**2) ** 0.5``),
in metres; with a slab ``z``, pairs with ``|dz| > z`` are left out and the
distance is taken in the x-y plane, as Snudda's striatum analysis does.
"""

from dataclasses import dataclass

import numpy as np

from gpuprune.errors import InputError

#: the standard normal quantile for 95 % two-sided intervals (norm.ppf(0.975)).
Z95 = 1.959963984540054
#: above this many pairs, 3D denominators come from a k-d tree (if SciPy is present) instead of blocks.
KDTREE_PAIRS = 50_000_000
#: pairs per block of the exhaustive NumPy count.
BLOCK_PAIRS = 1 << 22


def wilson_interval(k, n, z=Z95):
    """Wilson score interval for ``k`` successes of ``n`` (arrays); NaN where ``n`` is 0.

    Returns
    -------
    (lo, hi) : tuple of ndarray
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        z2 = z * z
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = z / (1 + z2 / n) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    lo, hi = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    empty = n == 0
    return np.where(empty, np.nan, lo), np.where(empty, np.nan, hi)


@dataclass(frozen=True)
class Bins:
    """Distance bins in metres: ``[start, end)``, or ``[start, end]`` with ``inclusive`` (Snudda's
    ``evaluate_fitness``).  Bins may overlap (measurements often report ``0-50`` and ``0-100 um``)."""

    start: np.ndarray
    end: np.ndarray
    inclusive: bool = False

    @classmethod
    def of(cls, bins, inclusive=False, where="distance bins"):
        """Bins from ``[(start, end), ...]`` or ``[(start, end, P), ...]`` (extra entries ignored)."""
        try:
            pairs = [(float(b[0]), float(b[1])) for b in bins]
        except (TypeError, ValueError, IndexError):
            raise InputError(f"bins must be a list of (start, end[, P]) numbers, got {bins!r}", where) from None
        if not pairs:
            raise InputError("no distance bins given", where)
        arr = np.array(pairs, dtype=np.float64).reshape(-1, 2)
        bad = ~np.isfinite(arr).all(axis=1) | (arr[:, 0] < 0) | (arr[:, 1] <= arr[:, 0])
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"bin {i} = {pairs[i]} is malformed: need 0 <= start < end (metres)", where)
        return cls(arr[:, 0].copy(), arr[:, 1].copy(), bool(inclusive))

    @classmethod
    def regular(cls, width, stop, inclusive=False):
        """Consecutive bins ``[0, width), [width, 2 width), ...`` up to ``stop``."""
        edges = np.arange(0.0, stop + width * 0.5, width)
        return cls.of(list(zip(edges[:-1], edges[1:], strict=True)), inclusive)

    def __len__(self):
        return self.start.size

    def contains(self, d):
        """Boolean (len(d), n_bins): which bins each distance lies in (NaN/inf lie in none)."""
        d = np.asarray(d, dtype=np.float64)[:, None]
        hi = d <= self.end if self.inclusive else d < self.end
        return (d >= self.start) & hi

    def count(self, d):
        """Number of distances in each bin, by cumulative counts at the edges (no per-bin pass over d)."""
        s = np.sort(np.asarray(d, dtype=np.float64))
        below_start = np.searchsorted(s, self.start, side="left")
        upto_end = np.searchsorted(s, self.end, side="right" if self.inclusive else "left")
        return (upto_end - below_start).astype(np.int64)


def pair_distance(pos_a, pos_b, slab=None):
    """Distance of each pair (row i of ``pos_a`` with row i of ``pos_b``), or an (A, B) matrix if
    the inputs broadcast that way; inf for pairs outside the slab ``|dz| <= slab``."""
    diff = np.asarray(pos_b, dtype=np.float64) - np.asarray(pos_a, dtype=np.float64)
    if slab is None:
        return np.sum(np.abs(diff) ** 2, axis=-1) ** 0.5
    d = np.sum(np.abs(diff[..., :2]) ** 2, axis=-1) ** 0.5
    return np.where(np.abs(diff[..., 2]) <= slab, d, np.inf)


def count_all_pairs(pre_pos, post_pos, bins, slab=None):
    """Pairs (every pre with every post, self-pairs included) whose soma distance lies in each bin.

    Exhaustive: blocks of pre neurons against all post neurons in NumPy, or a k-d tree
    (``cKDTree.count_neighbors``) for large 3D populations when SciPy is installed.
    """
    pre_pos = np.asarray(pre_pos, dtype=np.float64).reshape(-1, 3)
    post_pos = np.asarray(post_pos, dtype=np.float64).reshape(-1, 3)
    if slab is None and pre_pos.shape[0] * post_pos.shape[0] > KDTREE_PAIRS:
        counted = _count_kdtree(pre_pos, post_pos, bins)
        if counted is not None:
            return counted
    total = np.zeros(len(bins), dtype=np.int64)
    per_block = max(1, BLOCK_PAIRS // max(1, post_pos.shape[0]))
    for b in range(0, pre_pos.shape[0], per_block):  # per block of pre neurons, not per pair
        d = pair_distance(pre_pos[b:b + per_block, None, :], post_pos[None, :, :], slab)
        total += bins.count(d.reshape(-1))
    return total


def _count_kdtree(pre_pos, post_pos, bins):
    try:
        from scipy.spatial import cKDTree
    except ImportError:  # the core install has no SciPy: the caller counts in blocks
        return None
    a, b = cKDTree(pre_pos), cKDTree(post_pos)
    # count_neighbors counts d <= r; d < r is d <= the next float below r
    lo = np.nextafter(bins.start, -np.inf)
    hi = bins.end if bins.inclusive else np.nextafter(bins.end, -np.inf)
    radii = np.concatenate((lo, hi))
    cum = np.asarray(a.count_neighbors(b, np.clip(radii, 0, None), cumulative=True), dtype=np.int64)
    cum = np.where(radii < 0, 0, cum)
    n = len(bins)
    return cum[n:] - cum[:n]


def synapse_count_stats(counts, percentiles=(20, 50, 80)):
    """Mean, std (population, as NumPy's default), percentiles and number of connected pairs.

    ``counts`` are the synapses of each connected pair (zeros are ignored).
    """
    c = np.asarray(counts)
    c = c[c > 0]
    if c.size == 0:
        nan = float("nan")
        return {"pairs": 0, "mean": nan, "std": nan, "percentiles": {int(q): nan for q in percentiles}}
    return {"pairs": int(c.size), "mean": float(np.mean(c)), "std": float(np.std(c)),
            "percentiles": {int(q): float(np.percentile(c, q)) for q in percentiles}}


class BinnedProbability:
    """``connected`` of ``total`` pairs per bin: the probability and its Wilson 95 % interval."""

    @property
    def probability(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.connected / self.total

    @property
    def interval(self):
        return wilson_interval(self.connected, self.total)


@dataclass
class Connectivity(BinnedProbability):
    """Connection probability per bin, with Wilson 95 % intervals, and synapses per connected pair."""

    bins: Bins
    connected: np.ndarray
    total: np.ndarray
    synapses: dict

    def as_dict(self):
        lo, hi = self.interval
        return {"bins": [[float(s), float(e)] for s, e in zip(self.bins.start, self.bins.end, strict=True)],
                "inclusive": self.bins.inclusive, "connected": self.connected.tolist(),
                "total": self.total.tolist(), "probability": _floats(self.probability),
                "ci95": [_floats(lo), _floats(hi)], "synapses_per_pair": self.synapses}


def _floats(a):
    return [None if not np.isfinite(x) else float(x) for x in np.asarray(a, dtype=np.float64)]


def self_pair_count(pre_ids, post_ids):
    """Neurons that are both pre and post (each forms a pair with itself at distance 0)."""
    return int(np.intersect1d(pre_ids, post_ids).size)


def pathway_connectivity(positions, pre_ids, post_ids, src, dest, counts, bins, *, slab=None, self_pairs=False,
                 total=None):
    """Statistics of one pathway from its connected pairs.

    Parameters
    ----------
    positions : ndarray (N, 3)
        Soma positions (metres) of all neurons.
    pre_ids, post_ids : ndarray of int
        The pathway's pre and post neurons.
    src, dest, counts : ndarray
        Pairs of the pathway with their kept synapse counts (pairs with 0 are not connected).
    bins : Bins
    slab : float, optional
        2D distances, only pairs with ``|dz| <= slab`` (metres).
    self_pairs : bool
        Count each neuron that is both pre and post as a pair with itself at distance 0 (what
        Snudda's ``evaluate_fitness`` does); default False.
    total : ndarray, optional
        Precomputed denominators (from :func:`count_all_pairs`, self-pairs handled by the caller).
    """
    positions = np.asarray(positions, dtype=np.float64)
    if total is None:
        total = count_all_pairs(positions[pre_ids], positions[post_ids], bins, slab)
        if not self_pairs:
            total = total - self_pair_count(pre_ids, post_ids) * bins.count(np.zeros(1))
    counts = np.asarray(counts)
    on = counts > 0
    src, dest = np.asarray(src)[on], np.asarray(dest)[on]
    if not self_pairs:
        keep = src != dest
        src, dest = src[keep], dest[keep]
    connected = bins.count(pair_distance(positions[src], positions[dest], slab))
    return Connectivity(bins, connected, np.asarray(total, dtype=np.int64), synapse_count_stats(counts))
