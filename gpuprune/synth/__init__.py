"""Synthetic Snudda network directories, at any scale, for tests and benchmarks.

:func:`generate_network` writes a directory that ``snudda.detect.prune.SnuddaPrune``
and gpuprune both accept (DESIGN §1): ``network-config.json`` with realistic
striatal pathways (FS, dSPN, iSPN, ChIN, LTS), the detect work log, one
putative-synapse file per hyper voxel and, optionally, a projection-synapse file.

Everything is a pure function of the seed and of the position of a value in
one of a few counter-addressed random streams (PCG64 jumped with ``advance``):
neuron ``d`` always draws the same numbers, and so do the k-th partner slot and
the k-th synapse row in canonical (dest, src, channel type) order.  The output
is therefore identical for any ``max_rows_in_memory`` and any number of
workers; the former only sets how many rows are built at once before they are
appended to the chunked, lzf-compressed datasets of the hyper voxel files.
LZF compression (Snudda's filter) is the bottleneck, so several worker
processes may each own a disjoint set of files: each plans all pairs (cheap)
but builds and compresses only the rows of its own files.

Cases the generated networks contain on purpose:

- rows per (pair, channel type) follow a power law with an exponential cutoff
  (most pairs 1-3 rows, a tail to dozens);
- ChIN -> SPN pairs carry two channel types (ACh and glutamate co-release), and
  some of those pairs have rows of both types in two hyper voxel files, so that
  their lookup runs interleave in Snudda's heap-merge order and Snudda forms
  several groups for one (pair, type);
- rows of one pair split over a hyper voxel and the projection file;
- a hyper voxel that is completed but has no synapses, and a grid position
  with no neurons that detect never processed;
- hyper voxel counts in the work log listed in a shuffled completion order.

The modules, in the order the generator uses them (each imports only those above it, and of
gpuprune only :mod:`gpuprune.format` and :mod:`gpuprune.errors`):

- ``streams``: the counter-addressed random streams and bit fields;
- ``config``: geometry, neuron types, pathways, the network config and detect's channel ids;
- ``neurons``: per-neuron attributes (position, rotation, variant, distance bound, unit);
- ``layout``: the plan, fixed before rows are drawn (grid, neighbours, pathway tables);
- ``pairs``: partner slots, pairs and (pair, channel type) groups per block of dests;
- ``rows``: the synapse and gap junction rows of the groups and their lookup runs;
- ``voxel_files``: the hyper voxel and projection files; ``worklog``: the detect work log;
- ``workers``: building the rows of owned files, in one process or several;
- ``generate``: :func:`generate_network`, the public entry point.
"""

from gpuprune.synth.config import (  # noqa: F401
    DENDRITE_SECTIONS,
    FIRST_CHANNEL_MODEL_ID,
    FS_DISTANCE,
    GAP_JUNCTION_CHANNEL,
    GAP_JUNCTION_PARTNERS_MEAN,
    GAP_JUNCTIONS_PER_PAIR_MAX,
    HYPER_VOXEL_SIZE,
    INTERNEURON_FRACTION,
    INTERNEURON_MINIMUM,
    MAX_DENDRITE_DISTANCE,
    MAX_HYPER_VOXELS,
    MAX_NEURONS_FOR_UNIQUE_ID,
    MIN_NEURONS,
    MORPHOLOGY_VARIANTS,
    NEURON_TYPES,
    P_BOTH_CHANNELS,
    P_PROJECTION_MIXED,
    P_PROJECTION_PRIMARY,
    P_SPLIT,
    P_SPLIT_GAP_JUNCTIONS,
    P_SPLIT_TWO_CHANNELS,
    PARTNER_WEIGHTS,
    PROJECTION_KEY,
    RELATIVE_DISTANCE,
    ROWS_PER_GROUP_CUTOFF,
    ROWS_PER_GROUP_EXPONENT,
    ROWS_PER_GROUP_MAX,
    SIMULATION_ORIGO,
    SPN_DISTANCE,
    VOXEL_SIZE,
)
from gpuprune.synth.generate import STALE_PRUNE_OUTPUTS, generate_network  # noqa: F401
from gpuprune.synth.neurons import NEURON_BLOCK  # noqa: F401
from gpuprune.synth.pairs import CENTRE_MARGIN, SIGMA_MAX  # noqa: F401
from gpuprune.synth.rows import DISTANCE_SPREAD, ROW_SLICE  # noqa: F401
from gpuprune.synth.voxel_files import CHUNK_CACHE_BYTES, POSITION_FILE  # noqa: F401
from gpuprune.synth.workers import AUTO_WORKERS_MAX, AUTO_WORKERS_MIN_ROWS  # noqa: F401
