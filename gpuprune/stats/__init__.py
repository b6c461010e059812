"""Connectivity statistics shared by fitting (gpuprune.tune) and reports: P(connect) in soma-distance
bins over every pre x post pair, synapses per connected pair, Wilson intervals, measured targets."""

from gpuprune.stats.connectivity import (  # noqa: F401
    Z95,
    Bins,
    Connectivity,
    count_all_pairs,
    pair_distance,
    pathway_connectivity,
    self_pair_count,
    synapse_count_stats,
    wilson_interval,
)
from gpuprune.stats.network import Neurons, pair_counts, read_neurons  # noqa: F401
from gpuprune.stats.targets import (  # noqa: F401
    Target,
    bundled_data,
    dataset_names,
    load_targets,
    parse_pathway,
    target_from_dataset,
    target_from_dict,
)


def pruned_connectivity(pruned_file, pre_type, post_type, bins, *, channel=None, kind="synapses", slab=None,
                        self_pairs=False, neurons=None):
    """Statistics of one pathway of a pruned file (neurons read from the file unless given)."""
    neurons = read_neurons(pruned_file) if neurons is None else neurons
    pre, post = neurons.ids_of(pre_type), neurons.ids_of(post_type)
    src, dest, count = pair_counts(pruned_file, pre, post, channel=channel, kind=kind)
    bins = bins if isinstance(bins, Bins) else Bins.of(bins)
    return pathway_connectivity(neurons.position, pre, post, src, dest, count, bins, slab=slab, self_pairs=self_pairs)
