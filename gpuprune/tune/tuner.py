"""``Tuner``: the putative rows of chosen pathways held in memory, evaluated for many parameter sets at once."""

import numpy as np

from gpuprune.engine import MODES
from gpuprune.errors import InputError
from gpuprune.format import GAP_JUNCTION_CHANNEL
from gpuprune.io.network import Network
from gpuprune.rng import check_seed
from gpuprune.rules import ParameterSet, PruningRules
from gpuprune.stats import Bins, count_all_pairs, pair_distance, read_neurons, self_pair_count
from gpuprune.stats.targets import parse_pathway
from gpuprune.tune.device import DeviceEvaluator, device_backend
from gpuprune.tune.evaluate import Evaluator, ParameterBatch
from gpuprune.tune.model import BUILD_ROW_BUDGET, build_model
from gpuprune.tune.pairstats import pair_statistics

#: the devices a Tuner evaluates on ("emulated": the GPU kernel run on the host, for tests)
DEVICES = ("cpu", "gpu", "auto", "emulated")


def _backend(device):
    """``(device backend or None, array module, device name)``: "auto" takes a GPU when one is usable."""
    if device not in DEVICES:
        raise InputError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device in ("gpu", "emulated"):
        return (*device_backend(device), device)
    if device == "auto":
        from gpuprune.device.cupy_backend import device_count

        if device_count() > 0:
            return (*device_backend("gpu"), "gpu")
    return None, np, "cpu"


def _z_range(min_z, max_z):
    """(min_z, max_z) of a slice cut, or None without one; bad values: InputError."""
    if min_z is None and max_z is None:
        return None
    try:
        lo = None if min_z is None else float(min_z)
        hi = None if max_z is None else float(max_z)
    except (TypeError, ValueError):
        raise InputError(f"min_z and max_z must be numbers (metres), got {min_z!r}, {max_z!r}") from None
    if any(v is not None and not np.isfinite(v) for v in (lo, hi)) or (lo is not None and hi is not None and lo > hi):
        raise InputError(f"min_z and max_z must be finite with min_z <= max_z, got {min_z!r}, {max_z!r}")
    return lo, hi


def _check_cut(pathway, codes, blocks):
    if codes[2] == GAP_JUNCTION_CHANNEL:
        raise InputError(f"{','.join(pathway)}: a z cut (min_z/max_z) applies to synapses, not gap junctions")
    if any(b.cluster_pruning for b in blocks):
        raise InputError(f"{','.join(pathway)}: a z cut (min_z/max_z) cannot be evaluated with cluster pruning "
                         "(it changes which rows a group keeps)")


class Tuner:
    """Pathways of a network held in memory for fast, exact re-pruning with other parameters.

    Parameters
    ----------
    network_path : str
        The network directory (detect output).
    pathways : str or sequence
        ``"Pre,Post,ConType"`` names (e.g. ``"dSPN,iSPN,GABA"``), one or several.
    seeds : int or sequence of int, optional
        Prune seeds to average over; default the network's (``random_seed.prune`` of the config).
    rng : {"philox", "snudda"}
    device : {"cpu", "gpu", "auto", "emulated"}
        Where batches are evaluated: NumPy; the GPU (CuPy, kernel ``gp_tune_kept``, the model
        resident on device 0); the GPU when one is usable; or the emulated device (the same kernel
        compiled for the host, for tests).  Every device gives the same integers.
    config_file : str, optional
    optimise_pruning : dict, optional
        Reproduce what Snudda's ``OptimisePruning`` computes: prune with only the fitted pathway's
        parameters present (this dict, its ``extra_pruning_parameters``, completed with Snudda's
        defaults; no ``pruning_other``), so only that pathway's groups consume random numbers
        (snudda mode).  Default: a real prune with the config's parameters for every pathway.
    min_z, max_z : float, optional
        A slice cut, as ``OptimisePruning``'s ``min_z``/``max_z``: the statistics count only kept
        synapses whose z coordinate (metres, as SnuddaLoad's ``synapse_coords``) lies in
        ``[min_z, max_z]``; pruning itself sees every row.  Synapse pathways without cluster
        pruning only (it would change which rows, not how many, a group keeps).
    """

    def __init__(self, network_path, pathways, seeds=None, rng="philox", device="cpu", config_file=None,
                 optimise_pruning=None, min_z=None, max_z=None, row_budget=BUILD_ROW_BUDGET):
        if rng not in MODES:
            raise InputError(f"unknown randomness mode {rng!r}; choose one of {', '.join(MODES)}")
        self.network = net = Network(network_path, config_file=config_file)
        self.rng = rng
        self.backend, self.xp, self.device = _backend(device)
        pathways = [pathways] if isinstance(pathways, str) else list(pathways)
        self.pathways = [parse_pathway(p) for p in pathways]
        if not self.pathways:
            raise InputError("no pathway given")
        seeds = [net.random_seed] if seeds is None else ([seeds] if np.isscalar(seeds) else list(seeds))
        if not seeds:
            raise InputError("no seed given (seeds=None takes the network's)")
        self.seeds = seeds = [check_seed(s) for s in seeds]  # every seed checked before any row is read
        self.neurons = read_neurons(net.worklog_path)
        self.optimise_pruning = optimise_pruning
        self.blocks, self.codes, self.evaluators, self._draw_rules = {}, {}, {}, {}
        self.z_range = _z_range(min_z, max_z)
        for pw in self.pathways:  # resolve every pathway before reading any row
            self.codes[pw], self.blocks[pw], self._draw_rules[pw] = self._resolve(pw)
            if self.z_range is not None:
                _check_cut(pw, self.codes[pw], self.blocks[pw])
        for pw in self.pathways:
            for s in seeds:
                model = build_model(net, pw, self.codes[pw], self.blocks[pw], self._draw_rules[pw], s, rng,
                                    row_budget, self.z_range)
                self.evaluators[pw, s] = self._evaluator(model)
        self._denominators, self._pair_bins, self._binned_models = {}, {}, {}

    def _evaluator(self, model):
        """The evaluator of ``model`` on this Tuner's device: NumPy, or the kernel on a device backend."""
        return Evaluator(model) if self.backend is None else DeviceEvaluator(model, self.backend)

    def _resolve(self, pathway):
        net, rules = self.network, self.network.rules
        key = next((k for k, names in rules.pathway_names.items() if tuple(names) == pathway), None)
        if key is None:
            known = ", ".join(",".join(v) for v in rules.pathway_names.values())
            raise InputError(f"unknown pathway {','.join(pathway)}; the config has: {known}", rules.config_path)
        pruning, other, _ = rules.pathways[key]
        if self.optimise_pruning is None:
            blocks = [pruning] if other is None else [pruning, other]
            return key, blocks, rules
        extra = dict(self.optimise_pruning)
        pre, post, con_type = pathway
        where = f"optimise_pruning [{pre},{post} {con_type}]"
        block = ParameterSet.from_block(extra, where, is_gap_junction=key[2] == 3,
                                        has_max_soma_distance=net.max_soma_distance_dend is not None)
        config = {"regions": {"fit": {"connectivity": {f"{pre},{post}": {con_type: {"pruning": extra}}}}}}
        only = PruningRules(config, where, net.type_names, net.connectivity_distributions,
                            has_max_soma_distance=net.max_soma_distance_dend is not None)
        return key, [block], only

    # -- evaluation ----------------------------------------------------------------------------

    def model(self, pathway=None, seed=None):
        pw, s = self._key(pathway, seed)
        return self.evaluators[pw, s].model

    def _key(self, pathway, seed):
        pw = self.pathways[0] if pathway is None else parse_pathway(pathway)
        if pw not in self.codes:
            raise InputError(f"pathway {','.join(pw)} is not one this Tuner holds")
        if seed is not None and seed not in self.seeds:
            raise InputError(f"seed {seed!r} is not one this Tuner holds ({', '.join(map(str, self.seeds))})")
        return pw, self.seeds[0] if seed is None else seed

    def batch(self, params, pathway=None):
        """A :class:`ParameterBatch` from ``{name: values}`` (names ``f1``, ``pruning_other.mu2``, ...)."""
        pw, _ = self._key(pathway, None)
        return ParameterBatch.build(self.blocks[pw], params)

    def evaluate(self, params, pathway=None, seed=None, counted=False):
        """Kept rows per group of one pathway and seed: int32 (P, groups), groups as ``model().group_*``.

        ``params`` maps parameter names to arrays of P values; parameters not named keep the
        config's value.  ``counted``: only the kept rows inside the z cut (``min_z``/``max_z``; all
        of them without one).  On the GPU the result is a CuPy array (one kernel launch per batch).
        """
        pw, s = self._key(pathway, seed)
        batch = params if isinstance(params, ParameterBatch) else self.batch(params, pw)
        return self.evaluators[pw, s].kept(batch, counted=counted)

    def pair_counts(self, params, pathway=None, seed=None, counted=False):
        """Kept rows per pair (P, pairs) (a pair's groups summed; in philox mode one group per pair)."""
        pw, s = self._key(pathway, seed)
        batch = params if isinstance(params, ParameterBatch) else self.batch(params, pw)
        return self._pair_counts(self.evaluators[pw, s], batch, counted)

    def _pair_counts(self, evaluator, batch, counted):
        n = evaluator.kept(batch, counted=counted)
        m = evaluator.model
        if m.pair_src.size == m.num_groups:
            return n
        # snudda mode's split groups: a pair's groups are adjacent; summed where n lives (NumPy or CuPy)
        xp = self.xp
        last = np.append(np.searchsorted(m.pair_of_group, np.arange(1, m.pair_src.size)), m.num_groups) - 1
        cum = xp.cumsum(n, axis=1, dtype=np.int64)[:, xp.asarray(last)]
        cum[:, 1:] -= cum[:, :-1].copy()
        return cum.astype(np.int32)

    def _binned(self, pw, s, bins, slab, self_pairs):
        """(evaluator, membership) of the pairs that lie in at least one bin (cached per bins)."""
        key = (pw, s, tuple(bins.start), tuple(bins.end), bins.inclusive, slab, self_pairs)
        if key not in self._binned_models:
            member = self.pair_bins(pw, s, bins, slab, self_pairs)
            host = member.get() if self.xp is not np else np.asarray(member)
            pairs = np.flatnonzero(host.any(axis=0))
            model = self.evaluators[pw, s].model.subset(pairs)
            self._binned_models[key] = (self._evaluator(model), self.xp.asarray(np.ascontiguousarray(host[:, pairs])))
        return self._binned_models[key]

    # -- statistics ----------------------------------------------------------------------------

    def denominators(self, pathway, bins, slab=None, self_pairs=False):
        """All pre x post pairs per bin (cached): do not depend on the parameters."""
        pw, _ = self._key(pathway, None)
        key = (pw, tuple(bins.start), tuple(bins.end), bins.inclusive, slab, self_pairs)
        if key not in self._denominators:
            pre, post = self.neurons.ids_of(pw[0]), self.neurons.ids_of(pw[1])
            pos = self.neurons.position
            total = count_all_pairs(pos[pre], pos[post], bins, slab)
            if not self_pairs:
                total = total - self_pair_count(pre, post) * bins.count(np.zeros(1))
            self._denominators[key] = total
        return self._denominators[key]

    def pair_bins(self, pathway, seed, bins, slab=None, self_pairs=False):
        """(bins, pairs) float32 0/1 matrix: which bins each putative pair's soma distance lies in (float32
        sums of 0/1 are exact up to 2**24 pairs per bin)."""
        key = (parse_pathway(pathway) if pathway is not None else None, seed, tuple(bins.start), tuple(bins.end),
               bins.inclusive, slab, self_pairs)
        cached = self._pair_bins.get(key)
        if cached is None:
            m = self.model(pathway, seed)
            pos = self.neurons.position
            member = bins.contains(pair_distance(pos[m.pair_src], pos[m.pair_dest], slab))
            if not self_pairs:
                member &= (m.pair_src != m.pair_dest)[:, None]
            cached = self._pair_bins[key] = self.xp.asarray(member.T.astype(np.float32))  # (bins, pairs)
        return cached

    def statistics(self, params, bins, pathway=None, seed=None, slab=None, self_pairs=False, binned_only=False):
        """Per parameter set: connected pairs and all pairs per bin, and synapses per connected pair.

        ``binned_only``: evaluate only the pairs that lie in a bin (the groups of a pathway are
        pruned independently, so ``connected`` is the same, faster when the bins cover few pairs);
        the synapse moments and histogram are then those of the binned pairs alone.

        Returns
        -------
        dict of NumPy arrays: ``connected`` (P, bins), ``total`` (bins,), ``pairs`` (P,), ``mean``,
        ``std``, ``p20`` (P,), ``histogram`` (P, n_max + 1) of kept rows per pair.
        """
        bins = bins if isinstance(bins, Bins) else Bins.of(bins)
        pw, s = self._key(pathway, seed)
        batch = params if isinstance(params, ParameterBatch) else self.batch(params, pw)
        if binned_only:
            evaluator, member = self._binned(pw, s, bins, slab, self_pairs)
        else:
            evaluator, member = self.evaluators[pw, s], self.pair_bins(pw, s, bins, slab, self_pairs)
        n = self._pair_counts(evaluator, batch, counted=True)
        return pair_statistics(self.xp, n.T, member, self.denominators(pw, bins, slab, self_pairs))

    def fit(self, targets, params=("f1",), bounds="default", fitness="corrected", **options):
        """Fit ``params`` to ``targets``; see :func:`gpuprune.tune.fit.fit`.  Returns a FitResult."""
        from gpuprune.tune.fit import fit  # fit builds on Tuner's methods; imported here, fit never imports tuner

        return fit(self, targets, params=params, bounds=bounds, fitness_kind=fitness, **options)
