"""Fit pruning parameters to targets with ``scipy.optimize.differential_evolution(vectorized=True)``: one
batched evaluation per generation; each pathway fitted on its own; fitness averaged over the seeds."""

import copy
import json
import os
from dataclasses import dataclass, field

import numpy as np

from gpuprune.errors import InputError
from gpuprune.stats import Bins
from gpuprune.stats.connectivity import BinnedProbability
from gpuprune.stats.targets import load_targets
from gpuprune.tune.evaluate import DEFAULT_BOUNDS, check_bounds, split_name
from gpuprune.tune.fitness import check_fitness, fitness, uses_self_pairs
from gpuprune.tune.pairstats import histogram_percentile


def target_bins(target, kind=None):
    """The target's bins as the fitness counts them (inclusive ends, as OptimisePruning)."""
    return Bins(target.bins.start, target.bins.end, inclusive=True)


def score(tuner, target, values, kind="corrected", slab=None):
    """Fitness of the parameter sets ``values`` ({name: (P,)}) for one target, averaged over the seeds."""
    bins = target_bins(target, kind)
    pw = target.pathway
    # without synapse-count targets the fitness reads only the binned pairs: evaluate those alone
    binned_only = not target.synapses
    per_seed = [fitness(tuner.statistics(values, bins, pw, s, slab=slab, self_pairs=uses_self_pairs(kind),
                                         binned_only=binned_only), target, kind) for s in tuner.seeds]
    return np.mean(per_seed, axis=0)


@dataclass
class PathwayFit(BinnedProbability):
    """The fitted parameters of one pathway and what they achieve, against the target."""

    target: object
    params: dict
    fitness: float
    connected: np.ndarray  # summed over seeds
    total: np.ndarray  # per seed (the same for every seed) times the number of seeds
    synapses: dict
    evaluations: int
    optimizer: object = field(repr=False, default=None)

    def rows(self):
        """(bin start um, bin end um, target P, target 95 % lo, hi, achieved P, lo, hi) per bin."""
        t_lo, t_hi = self.target.interval
        lo, hi = self.interval
        return [(s * 1e6, e * 1e6, tp, tl, th, p, a, b) for s, e, tp, tl, th, p, a, b in
                zip(self.target.bins.start, self.target.bins.end, self.target.probability, t_lo, t_hi,
                    self.probability, lo, hi, strict=True)]

    def table(self):
        head = f"{','.join(self.target.pathway)}: " + ", ".join(f"{k} = {v:.4g}" for k, v in self.params.items())
        lines = [head, f"  fitness {self.fitness:.6g} after {self.evaluations} evaluations",
                 f"  {'bin (um)':>14} {'target':>8} {'95% CI':>15} {'achieved':>9} {'95% CI':>15}"]
        for s, e, tp, tl, th, p, a, b in self.rows():
            ci_t = "" if np.isnan(tl) else f"{tl:.3f}-{th:.3f}"
            lines.append(f"  {s:6.0f}-{e:<7.0f} {tp:8.3f} {ci_t:>15} {p:9.3f} {a:.3f}-{b:.3f}")
        syn = self.synapses
        lines.append(f"  synapses per connected pair: mean {syn['mean']:.3g}, std {syn['std']:.3g}, "
                     f"p20 {syn['p20']:.3g}" + (f" (target {self.target.synapses})" if self.target.synapses else ""))
        return "\n".join(lines)


@dataclass
class FitResult:
    """Fits of one or more pathways; :meth:`export_config` writes a config with the fitted blocks."""

    fits: list
    config: dict
    rules: object

    def table(self):
        return "\n\n".join(f.table() for f in self.fits)

    def export_config(self, path):
        """Write the network config with the fitted pruning parameters (every other key kept)."""
        config = fitted_config(self.config, self.rules, [(f.target.pathway, f.params) for f in self.fits])
        path = os.fspath(path)
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(config, fh, indent=2)
        os.replace(tmp, path)  # never a half-written config
        return path


def fitted_config(config, rules, fitted):
    """A deep copy of ``config`` with each ``(pathway, {name: value})`` written into its pruning blocks."""
    config = copy.deepcopy(config)
    for (pre, post, con_type), params in fitted:
        found = None
        for region in config["regions"].values():  # the last definition wins, as when the config is read
            for key, con in (region.get("connectivity") or {}).items():
                if (pre, post) in rules._split_key(key) and con_type in con:
                    found = (region, key)
        if found is None:
            raise InputError(f"pathway {pre},{post},{con_type} is not in the config", rules.config_path)
        region, key = found
        data = region["connectivity"][key][con_type]
        if key != f"{pre},{post}":  # a list key: give this pair its own entry, after it, so it wins
            data = copy.deepcopy(data)
            region["connectivity"].setdefault(f"{pre},{post}", {})[con_type] = data
        for name, value in params.items():
            block, base = split_name(name)
            data["pruning_other" if block else "pruning"][base] = float(value)
    return config


def fit(tuner, targets, params=("f1",), bounds="default", fitness_kind="corrected", popsize=15, maxiter=50,
        tol=0.001, seed=None, slab=None, progress=None):
    """Fit ``params`` of each target's pathway.

    Parameters
    ----------
    tuner : Tuner
        Holds every pathway the targets name.
    targets : str, dict, list or Target
        See :func:`gpuprune.stats.load_targets`.
    params : sequence of str
        Any of f1, soft_max, mu2, a3 (``pruning_other.`` prefix for that block).
    bounds : "default", list of (lo, hi) or dict
        Default: OptimisePruning's (f1, a3: 0..1; soft_max, mu2: 0..5).
    fitness_kind : {"corrected", "snudda", "binomial"}
    popsize, maxiter, tol, seed
        Passed to ``differential_evolution`` (``popsize`` is per parameter, as SciPy counts it).
    progress : bool, optional
        A tqdm bar over generations (default: when tqdm is installed and stderr is a terminal).
    """
    try:
        from scipy.optimize import differential_evolution
    except ImportError:
        raise InputError("fitting needs SciPy: pip install 'gpuprune[fit]'") from None
    check_fitness(fitness_kind)
    if not isinstance(targets, list) or not all(hasattr(t, "pathway") for t in targets):
        targets = load_targets(targets) if not hasattr(targets, "pathway") else [targets]
    names = list(params)
    if not names:
        raise InputError("no parameters to fit")
    for n in names:
        split_name(n)
    bnds = check_bounds(names, bounds)
    for t in targets:  # every check before any work
        tuner._key(t.pathway, None)
        if len(tuner.blocks[t.pathway]) < 2 and any(split_name(n)[0] for n in names):
            raise InputError(f"pathway {','.join(t.pathway)} has no pruning_other block to fit")
    fits = []
    for t in targets:
        fits.append(_fit_one(tuner, t, names, bnds, fitness_kind, popsize, maxiter, tol, seed, slab, progress,
                             differential_evolution))
    return FitResult(fits, tuner.network.config, tuner.network.rules)


def _fit_one(tuner, target, names, bounds, kind, popsize, maxiter, tol, seed, slab, progress, de):
    bar = _bar(progress, maxiter, ",".join(target.pathway))
    count = [0]

    def objective(x):
        x = np.atleast_2d(np.asarray(x, dtype=np.float64).T).T  # (k, S) also for a single vector
        count[0] += x.shape[1]
        return score(tuner, target, {n: x[i] for i, n in enumerate(names)}, kind, slab)

    def callback(*_):
        if bar is not None:
            bar.update(1)

    try:
        res = de(objective, bounds, vectorized=True, updating="deferred", popsize=popsize, maxiter=maxiter,
                 tol=tol, seed=seed, polish=False, callback=callback)
    finally:
        if bar is not None:
            bar.close()
    best = {n: float(v) for n, v in zip(names, np.atleast_1d(res.x), strict=True)}
    values = {n: np.array([v]) for n, v in best.items()}
    bins = target_bins(target, kind)
    per_seed = [tuner.statistics(values, bins, target.pathway, s, slab=slab, self_pairs=uses_self_pairs(kind))
                for s in tuner.seeds]
    connected = np.sum([s["connected"][0] for s in per_seed], axis=0)
    total = np.sum([s["total"] for s in per_seed], axis=0)
    width = max(s["histogram"].shape[1] for s in per_seed)
    hist = np.sum([np.pad(s["histogram"][0], (0, width - s["histogram"].shape[1])) for s in per_seed], axis=0)
    v = np.arange(hist.size)
    syn = _moments(hist, v)
    return PathwayFit(target, best, float(res.fun), connected, total, syn, count[0], res)


def _moments(hist, v):
    pairs = int(hist.sum())
    if pairs == 0:
        return {"pairs": 0, "mean": float("nan"), "std": float("nan"), "p20": float("nan")}
    mean = float((hist * v).sum() / pairs)
    std = float(np.sqrt((hist * (v - mean) ** 2).sum() / pairs))
    return {"pairs": pairs, "mean": mean, "std": std, "p20": float(histogram_percentile(hist[None, :], 20.0)[0])}


def _bar(progress, total, desc):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional
        return None
    if progress is None:
        import sys

        progress = sys.stderr.isatty()
    return tqdm(total=total, desc=f"fit {desc}", unit="gen") if progress else None


__all__ = ["DEFAULT_BOUNDS", "FitResult", "PathwayFit", "fit", "fitted_config", "score"]
