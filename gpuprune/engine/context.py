"""What a worker needs to prune the chunks of one network, and what it returns per chunk."""

from dataclasses import dataclass

import numpy as np

from gpuprune.engine.pathway import PathwayCodes
from gpuprune.errors import InputError, unknown_mode_message

PHILOX = "philox"
SNUDDA = "snudda"
MODES = (PHILOX, SNUDDA)


def check_mode(mode):
    """Raise :class:`InputError` unless ``mode`` is one of :data:`MODES`."""
    if mode not in MODES:
        raise InputError(unknown_mode_message(mode, MODES))


@dataclass
class PruneContext:
    """Everything a worker needs to prune chunks of one network (picklable)."""

    rules: object  # rules.PruningRules
    neuron_type: np.ndarray
    population_unit: np.ndarray
    max_soma_distance_dend: object  # float64 array or None
    num_neurons: int
    max_channel_type_id: int
    voxel_size: float
    seed: int
    mode: str = PHILOX
    share_parameter_id: bool = True
    worklog_path: str = ""
    #: snudda mode: the per-neuron seeds (default ``SeedSequence(seed).generate_state(num_neurons)``)
    neuron_seeds: object = None

    @classmethod
    def from_network(cls, net, mode=PHILOX, share_parameter_id=True):
        check_mode(mode)
        return cls(rules=net.rules, neuron_type=net.neuron_type, population_unit=net.population_unit,
                   max_soma_distance_dend=net.max_soma_distance_dend, num_neurons=net.num_neurons,
                   max_channel_type_id=net.max_channel_type_id or 1, voxel_size=net.voxel_size,
                   seed=net.random_seed, mode=mode, share_parameter_id=share_parameter_id,
                   worklog_path=net.worklog_path)

    @property
    def pathway_codes(self):
        """The network's :class:`PathwayCodes` (the index of a chunk's ``stats``)."""
        return PathwayCodes.from_context(self)

    def probability_tables(self, n_max):
        """soft_max/mu2 tables for n up to at least ``n_max`` (grown on demand, cached)."""
        cached = getattr(self, "_tables", None)
        if cached is None or cached[0].shape[1] <= n_max:
            size = max(64, 1 << int(n_max).bit_length())
            self._tables = self.rules.probability_tables(size)
        return self._tables

    def neuron_seed_table(self):
        """snudda mode: each neuron's PCG64 seed (computed once, from ``seed``, unless given)."""
        if self.neuron_seeds is None:
            self.neuron_seeds = np.random.SeedSequence(self.seed).generate_state(self.num_neurons)
        return self.neuron_seeds

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_tables", None)
        return state


@dataclass
class ChunkResult:
    """Kept rows of one chunk (output order) and per-pathway counts.

    ``stats`` is an int64 array (4, n_pathway_codes): putative rows, kept rows,
    putative pairs, connected pairs, indexed by the pathway code
    (:class:`PathwayCodes`); ``read_s`` and ``compute_s`` are the seconds a
    worker spent reading and pruning the chunk.
    """

    rows: np.ndarray
    stats: np.ndarray
    num_putative: int
    read_s: float = 0.0
    compute_s: float = 0.0


def pathway_code_size(ctx):
    """Number of pathway codes of a context's network (the width of ``ChunkResult.stats``)."""
    return ctx.pathway_codes.size

