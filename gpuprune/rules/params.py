"""Pruning rules: the config's pruning blocks turned into per-pathway parameter tables.

A *parameter set* is one ``pruning`` (or ``pruning_other``) block.  The
engine never looks at dicts: it indexes a lookup table
``lut[pre_type, post_type, channel, other_unit]`` to get a parameter-set
index per group, and reads the parameters from flat arrays.  Probabilities
that need a transcendental function (``p_keep`` of soft_max, ``p_mu`` of mu2)
come from tables built once on the host (DESIGN §4) so that a GPU only
compares draws against table entries.
"""

import logging
from dataclasses import dataclass, field

import numpy as np

from gpuprune.errors import ConfigError
from gpuprune.format import GAP_JUNCTION_CHANNEL
from gpuprune.rules.config import split_connection_key
from gpuprune.rules.expr import DistanceExpression, quote

log = logging.getLogger("gpuprune")

#: keys of a pruning block that gpuprune (like Snudda) uses.
PRUNING_KEYS = ("f1", "soft_max", "mu2", "a3", "dist_pruning", "cluster_pruning")


def _number(value, key, where, *, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ConfigError(f"pruning parameter {key!r} must be a finite number, got {value!r}", where)
    return value


@dataclass(frozen=True)
class ParameterSet:
    """One pruning block, completed with Snudda's defaults.

    ``soft_max`` and ``mu2`` keep the JSON number type (int or float) so that
    the probability tables repeat Snudda's arithmetic exactly.
    """

    f1: float = 1.0
    soft_max: object = None
    mu2: object = None
    a3: object = None
    dist_pruning: DistanceExpression = None
    cluster_pruning: bool = False
    label: str = field(default="", compare=False)

    @property
    def key(self):
        dist = None if self.dist_pruning is None else self.dist_pruning.source
        return (self.f1, self.soft_max, self.mu2, self.a3, dist, self.cluster_pruning)

    @classmethod
    def from_block(cls, block, where, *, is_gap_junction, has_max_soma_distance=True):
        """Validate and complete one ``pruning`` block of the config."""
        if not isinstance(block, dict):
            raise ConfigError(f"pruning block must be an object, got {block!r}", where)
        unknown = sorted(set(block) - set(PRUNING_KEYS))
        if unknown:
            log.warning("%s: ignoring unknown pruning key(s) %s (Snudda ignores them too)",
                        where, ", ".join(repr(k) for k in unknown))
        f1 = block.get("f1")
        f1 = 1.0 if f1 is None else _number(f1, "f1", where, allow_none=False)
        soft_max = _number(block.get("soft_max"), "soft_max", where)
        mu2 = _number(block.get("mu2"), "mu2", where)
        a3 = _number(block.get("a3"), "a3", where)
        for key, value in (("f1", f1), ("a3", a3)):
            # a probability: Snudda would silently treat values outside 0..1 as 0 or 1
            if value is not None and not 0 <= value <= 1:
                raise ConfigError(f"{key} is a probability and must lie in 0..1, got {value!r}", where)
        if soft_max is not None and soft_max < 0:
            raise ConfigError(f"soft_max must be >= 0, got {soft_max!r}", where)
        if mu2 is not None and mu2 <= 0:
            raise ConfigError(f"mu2 must be > 0, got {mu2!r}", where)
        cluster = block.get("cluster_pruning", False)
        if cluster is None:
            cluster = False
        if not isinstance(cluster, bool):
            raise ConfigError(f"cluster_pruning must be true or false, got {cluster!r}", where)
        dist = block.get("dist_pruning")
        if dist is not None:
            if is_gap_junction:
                raise ConfigError("distance-dependent pruning (dist_pruning) is not supported for gap "
                                  "junctions: column 8 of a gap junction is not a dendrite distance", where)
            dist = DistanceExpression(dist, where)
            if dist.uses_r and not has_max_soma_distance:
                raise ConfigError(f"distance expression {dist.source!r} uses r, but the work log has no "
                                  "network/neurons/max_soma_distance_dend (older detect version)", where)
        return cls(f1=f1, soft_max=soft_max, mu2=mu2, a3=a3, dist_pruning=dist,
                   cluster_pruning=cluster, label=where)


def p_keep_tables(soft_max, n_max):
    """soft_max keep probability for n = 0 .. n_max kept rows, one row per value of ``soft_max``: (D, n_max + 1)
    (entry 0 unused).

    ``p_keep(n) = 2*soft_max / ((1 + exp(-(n - soft_max)/5)) * n)``, evaluated with the operation order and
    types Snudda uses; elementwise, so a value's row does not depend on the others.
    """
    sm = np.asarray(soft_max, dtype=np.float64).reshape(-1, 1)
    n = np.arange(n_max + 1, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(2 * sm, (1 + np.exp(-(n - sm) / 5)) * n)


def p_keep_table(soft_max, n_max):
    """:func:`p_keep_tables` of one value: (n_max + 1,)."""
    return p_keep_tables([soft_max], n_max)[0]


def p_mu_tables(mu2, n_max):
    """mu2 survival probability ``1 / (1 + exp(-8/mu2 * (n - mu2)))`` for n = 0 .. n_max, one row per value of
    ``mu2`` (> 0): (D, n_max + 1)."""
    mu = np.asarray(mu2, dtype=np.float64).reshape(-1, 1)
    n = np.arange(n_max + 1, dtype=np.int64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-8.0 / mu * (n - mu)))


def p_mu_table(mu2, n_max):
    """:func:`p_mu_tables` of one value: (n_max + 1,)."""
    return p_mu_tables([mu2], n_max)[0]


class PruningRules:
    """All pathways of a config, resolved against a network's neuron types and channel ids.

    Parameters
    ----------
    config : dict
        The parsed network config.
    config_path : str
        Its file name, for error messages.
    type_names : sequence of str
        The distinct neuron types of the network, in type-id order.
    connectivity_distributions : dict
        The work log's ``meta/connectivity_distributions`` (gives channel model ids).
    has_max_soma_distance : bool
        Whether the work log has ``max_soma_distance_dend`` (needed by expressions in ``r``).
    """

    def __init__(self, config, config_path, type_names, connectivity_distributions,
                 has_max_soma_distance=True):
        self.config_path = str(config_path)
        self.type_names = list(type_names)
        type_index = {t: i for i, t in enumerate(self.type_names)}
        regions = config.get("regions") if isinstance(config, dict) else None
        if not isinstance(regions, dict):
            raise ConfigError("config has no 'regions' object", self.config_path)

        pathways = {}  # (pre_idx, post_idx, channel) -> (ParameterSet, ParameterSet|None, names)
        for region_name, region in regions.items():
            if not isinstance(region, dict):
                raise ConfigError(f"region {region_name!r} is not an object", self.config_path)
            connectivity = region.get("connectivity", {}) or {}
            if not isinstance(connectivity, dict):
                raise ConfigError(f"region {region_name!r}: 'connectivity' is not an object", self.config_path)
            for con_name, con_data in connectivity.items():
                for pre, post in self._split_key(con_name):
                    if pre not in type_index or post not in type_index:
                        missing = pre if pre not in type_index else post
                        log.warning("%s: skipping connection %s -> %s: no neuron of type %r in the network",
                                    self.config_path, pre, post, missing)
                        continue
                    self._add_pathways(pathways, pre, post, con_name, con_data, type_index,
                                       connectivity_distributions, has_max_soma_distance)
        self.pathways = pathways
        self._build_tables()

    # -- parsing -------------------------------------------------------------------------------

    def _split_key(self, con_name):
        pre, posts = split_connection_key(con_name, self.config_path)
        return [(pre, p) for p in posts]

    def _add_pathways(self, pathways, pre, post, con_name, con_data, type_index, distributions,
                      has_max_soma_distance):
        if not isinstance(con_data, dict):
            raise ConfigError(f"connection {con_name!r} is not an object", self.config_path)
        for con_type, data in con_data.items():
            where = f"{self.config_path} [{pre},{post} {con_type}]"
            if not isinstance(data, dict):
                raise ConfigError(f"connection type {con_type!r} is not an object", where)
            try:
                channel = distributions[f"{pre}$${post}"][con_type]["channel_model_id"]
            except (KeyError, TypeError):
                raise ConfigError(f"connection {pre} -> {post} ({con_type}) is not in the work log's "
                                  "connectivity_distributions: detect did not look for it; rerun detect "
                                  "with this config", where) from None
            channel = int(channel)
            is_gj = channel == GAP_JUNCTION_CHANNEL
            if "pruning" not in data:
                raise ConfigError("connection has no 'pruning' block", where)
            pruning = ParameterSet.from_block(data["pruning"], where, is_gap_junction=is_gj,
                                              has_max_soma_distance=has_max_soma_distance)
            other = None
            if "pruning_other" in data:
                if data["pruning_other"] is None:
                    raise ConfigError("'pruning_other' is null; remove it or give a pruning block", where)
                other = ParameterSet.from_block(data["pruning_other"], where + " pruning_other",
                                                is_gap_junction=is_gj,
                                                has_max_soma_distance=has_max_soma_distance)
            # Later entries win, as in Snudda (keyed by types and channel id).
            pathways[(type_index[pre], type_index[post], channel)] = (pruning, other, (pre, post, con_type))

    # -- tables --------------------------------------------------------------------------------

    def _build_tables(self):
        sets, index = [], {}

        def intern(ps):
            if ps.key not in index:
                index[ps.key] = len(sets)
                sets.append(ps)
            return index[ps.key]

        n_types = len(self.type_names)
        max_channel = max([ch for (_, _, ch) in self.pathways] + [GAP_JUNCTION_CHANNEL])
        lut = np.full((n_types, n_types, max_channel + 1, 2), -1, dtype=np.int32)
        self.pathway_names = {}
        for (pre, post, ch), (pruning, other, names) in self.pathways.items():
            same = intern(pruning)
            lut[pre, post, ch, 0] = same
            lut[pre, post, ch, 1] = same if other is None else intern(other)
            self.pathway_names[(pre, post, ch)] = names
        self.lut = lut
        self.parameter_sets = sets
        n = len(sets)
        self.f1 = np.array([float(s.f1) for s in sets], dtype=np.float64).reshape(n)
        self.has_soft_max = np.array([s.soft_max is not None for s in sets], dtype=bool).reshape(n)
        self.soft_max = np.array([np.inf if s.soft_max is None else float(s.soft_max) for s in sets],
                                 dtype=np.float64).reshape(n)
        self.has_mu2 = np.array([s.mu2 is not None for s in sets], dtype=bool).reshape(n)
        self.has_a3 = np.array([s.a3 is not None for s in sets], dtype=bool).reshape(n)
        self.a3 = np.array([np.inf if s.a3 is None else float(s.a3) for s in sets],
                           dtype=np.float64).reshape(n)
        self.cluster = np.array([s.cluster_pruning for s in sets], dtype=bool).reshape(n)
        exprs, expr_index = [], {}
        dist_index = []
        for s in sets:
            if s.dist_pruning is None:
                dist_index.append(-1)
                continue
            if s.dist_pruning.source not in expr_index:
                expr_index[s.dist_pruning.source] = len(exprs)
                exprs.append(s.dist_pruning)
            dist_index.append(expr_index[s.dist_pruning.source])
        self.expressions = exprs
        # which pathways use each distinct expression, for warnings about its values
        self.expression_pathways = [[] for _ in exprs]
        for pruning, other, names in self.pathways.values():
            for ps in (pruning, other):
                if ps is not None and ps.dist_pruning is not None:
                    label = "{},{} {}".format(*names) + ("" if ps is pruning else " pruning_other")
                    e = expr_index[ps.dist_pruning.source]
                    if label not in self.expression_pathways[e]:
                        self.expression_pathways[e].append(label)
        self._warned_expressions = set()
        self.dist_index = np.array(dist_index, dtype=np.int32).reshape(n)
        # Draws are only needed where they can change a decision: f1 >= 1 keeps every row.
        self.needs_row_draw = (self.f1 < 1.0) | (self.dist_index >= 0)

    def parameter_index(self, pre_type, post_type, channel, other_unit):
        """Vectorised lookup of the parameter-set index of each group (-1: no parameters)."""
        channel = np.asarray(channel)
        n_ch = self.lut.shape[2]
        in_range = (channel >= 0) & (channel < n_ch)
        safe = np.where(in_range, channel, 0)
        idx = self.lut[pre_type, post_type, safe, other_unit.astype(np.intp)]
        return np.where(in_range, idx, -1).astype(np.int32)

    def probability_tables(self, n_max):
        """``(p_keep, p_mu)``: float64 arrays (sets, n_max+1); rows of sets without the rule are unused."""
        n = len(self.parameter_sets)
        p_keep = np.zeros((n, n_max + 1), dtype=np.float64)
        p_mu = np.zeros((n, n_max + 1), dtype=np.float64)
        for i, s in enumerate(self.parameter_sets):  # once per parameter set, not per group
            if s.soft_max is not None:
                p_keep[i] = p_keep_table(s.soft_max, n_max)
            if s.mu2 is not None:
                p_mu[i] = p_mu_table(s.mu2, n_max)
        return p_keep, p_mu

    def unwarned_out_of_range(self, e, p):
        """True if expression ``e`` has not warned yet and ``p`` holds a value outside 0..1 (NaN included)."""
        return e not in self._warned_expressions and p.size > 0 and not (p.min() >= 0 and p.max() <= 1)

    def check_probabilities(self, e, p, d_at):
        """Warn (once per expression per process) if expression ``e`` gave values outside 0..1.

        ``p`` are its values on a chunk's rows; ``d_at(i)`` is row ``i``'s distance (metres).  NaN and values
        below 0 then act as 0 (no row passes), values above 1 as 1 (every row
        passes), as in Snudda, so this is a warning, not an error.
        """
        if not self.unwarned_out_of_range(e, p):
            return
        self._warned_expressions.add(e)
        bad = ~((p >= 0) & (p <= 1))
        i = int(np.argmax(bad))
        expr = self.expressions[e]
        log.warning("%s: pathway(s) %s: distance expression %s gives %r at d = %r m (and %d more rows outside "
                    "0..1); NaN and values below 0 keep no synapse, values above 1 keep every one",
                    self.config_path, "; ".join(self.expression_pathways[e]), quote(expr.source),
                    float(p[i]), float(d_at(i)), int(bad.sum()) - 1)

    def describe(self, pre, post, channel):
        """Names ``(pre type, post type, connection type)`` of a pathway, for reports."""
        return self.pathway_names.get((pre, post, channel))
