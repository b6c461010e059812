"""Fitness of parameter sets against a target, vectorised over the sets.

``snudda`` reproduces ``OptimisePruning.evaluate_fitness`` (Snudda 3.0) exactly, quirks included:

- bins are ``[start, end]``, both ends inclusive (a pair on an edge counts in both neighbours);
- when pre and post types are the same, every neuron is paired with itself at distance 0 (the
  dense distance matrix has a diagonal), which adds unconnected pairs to the first bins;
- ``error = nanmean((P - P_exp)**2) * 1e4 + |mean - t_mean| / 5 + |std - t_std| / 0.5
  + |p20 - t_p20| * 5`` over the connected pairs' synapse counts (NumPy's population std,
  linear percentile); a bin without pairs gives NaN and is skipped by ``nanmean``; with no
  connected pair the mean term is ``|t_mean|`` and the std and p20 terms are left out.

``corrected`` (the default) is the same without self-pairs.  ``binomial`` is the binomial deviance of
each bin (measured n of N against the model's probability where the counts are published, else the
model's counts against the target probability) plus the same synapse terms.
"""

import warnings

import numpy as np

from gpuprune.errors import InputError

FITNESS = ("corrected", "snudda", "binomial")
#: model probabilities are kept this far from 0 and 1 in the binomial deviance
EPS = 1e-9


def check_fitness(kind):
    if kind not in FITNESS:
        raise InputError(f"unknown fitness {kind!r}; choose one of {', '.join(FITNESS)}")
    return kind


def uses_self_pairs(kind):
    return kind == "snudda"


def synapse_terms(stats, target):
    """Snudda's synapses-per-pair terms, (P,)."""
    pairs = stats["pairs"]
    err = np.zeros(pairs.shape[0])
    t = target.synapses
    with np.errstate(invalid="ignore"):
        if "mean_synapses" in t:
            m = t["mean_synapses"]
            err += np.where(pairs > 0, np.abs(m - stats["mean"]) / 5.0, abs(m))
        if "std_synapses" in t:
            err += np.where(pairs > 0, np.abs(stats["std"] - t["std_synapses"]) / 0.5, 0.0)
        if "p20_synapses" in t:
            err += np.where(pairs > 0, np.abs(stats["p20"] - t["p20_synapses"]) * 5, 0.0)
    return err


def _deviance(k, n, p):
    """Binomial deviance of k successes in n trials against probability p (elementwise, 0 where n = 0)."""
    p = np.clip(p, EPS, 1 - EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(k > 0, k * np.log(k / (n * p)), 0.0)
        b = np.where(n - k > 0, (n - k) * np.log((n - k) / (n * (1 - p))), 0.0)
    return np.where(n > 0, 2 * (a + b), 0.0)


def fitness(stats, target, kind="corrected"):
    """Error of each parameter set (lower is better), (P,)."""
    check_fitness(kind)
    connected, total = stats["connected"], stats["total"][None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        p_model = connected / total
    if kind == "binomial":
        if target.n is not None:
            err = _deviance(target.n[None, :].astype(float), target.N[None, :].astype(float), p_model)
        else:
            err = _deviance(connected.astype(float), np.broadcast_to(total, connected.shape).astype(float),
                            target.probability[None, :])
        return err.sum(axis=1) + synapse_terms(stats, target)
    sq = np.abs(p_model - target.probability[None, :]) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a set with no pairs in any bin gives NaN, as in Snudda
        err = np.nanmean(sq, axis=1) * 1e4
    return err + synapse_terms(stats, target)
