"""Per parameter set: connected pairs per distance bin and synapses-per-pair moments, from kept rows per pair."""

import numpy as np


def _to_host(xp, a):
    return a.get() if xp is not np else a


def pair_statistics(xp, n_gp, member, total):
    """Connected pairs per bin and synapses-per-pair moments from kept rows per pair ``n_gp`` (pairs, P).

    ``member`` is the (bins, pairs) 0/1 matrix of which bins each pair lies in; ``total`` the
    denominators.  Moments come from a histogram of kept rows per pair (small integers), so no set
    needs a sort of its own.
    """
    per_bin = _to_host(xp, member @ (n_gp > 0).astype(np.float32)).T.round().astype(np.int64)
    vmax = int(_to_host(xp, n_gp.max())) if n_gp.size else 0
    p = n_gp.shape[1]
    flat = (n_gp + xp.arange(p, dtype=n_gp.dtype)[None, :] * (vmax + 1)).reshape(-1)
    hist = _to_host(xp, xp.bincount(flat, minlength=p * (vmax + 1))).reshape(p, vmax + 1)
    hist[:, 0] = 0  # pairs without kept rows are not connected
    v = np.arange(vmax + 1, dtype=np.float64)
    pairs = hist.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (hist * v).sum(axis=1) / pairs
        std = np.sqrt((hist * (v[None, :] - mean[:, None]) ** 2).sum(axis=1) / pairs)
    return {"connected": per_bin, "total": np.asarray(total, dtype=np.int64), "pairs": pairs, "mean": mean,
            "std": std, "p20": histogram_percentile(hist, 20.0), "histogram": hist}


def histogram_percentile(hist, q):
    """``numpy.percentile(values, q)`` (linear) of the values a histogram row counts, for every row."""
    pairs = hist.sum(axis=1)
    cum = np.cumsum(hist, axis=1)
    h = (pairs - 1) * (q / 100.0)
    lo_rank = np.floor(h).astype(np.int64)
    hi_rank = np.minimum(lo_rank + 1, np.maximum(pairs - 1, 0))
    lo_v = _rank_value(cum, lo_rank)
    hi_v = _rank_value(cum, hi_rank)
    t = h - lo_rank
    out = lo_v + (hi_v - lo_v) * t
    return np.where(pairs > 0, out, np.nan)


def _rank_value(cum, rank):
    """The value at 0-based ``rank`` of each row: the first column whose cumulative count exceeds it."""
    return (cum <= rank[:, None]).sum(axis=1).astype(np.float64)
