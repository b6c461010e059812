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
"""

import argparse
import json
import math
import multiprocessing
import os
import queue as queue_module
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from gpuprune.errors import InputError

# Geometry, as Snudda's detect uses by default.
VOXEL_SIZE = 3e-6  # metres
HYPER_VOXEL_SIZE = 100  # voxels per side of a hyper voxel
SIMULATION_ORIGO = (0.0031, 0.0042, 0.0057)  # metres
CHUNK_ROWS = 10_000  # HDF5 chunk length, as Snudda writes its row matrices
SYNAPSE_COLUMNS = 13
GAP_JUNCTION_COLUMNS = 11
GAP_JUNCTION_CHANNEL = 3
FIRST_CHANNEL_MODEL_ID = 10  # detect numbers non-gap-junction channels from 10
PROJECTION_HID = -1  # hyper voxel id column value of projection synapses
MAX_NEURONS_FOR_UNIQUE_ID = 500_000_000  # unique ids must fit int64

# Neuron types in config (and neuron id) order, as in Snudda's striatum configs.
NEURON_TYPES = ("FS", "dSPN", "iSPN", "ChIN", "LTS")
FS, DSPN, ISPN, CHIN, LTS = range(len(NEURON_TYPES))
# Fraction of neurons and minimum count of each interneuron type; SPNs share the rest.
INTERNEURON_FRACTION = {FS: 0.02, CHIN: 0.015, LTS: 0.015}
INTERNEURON_MINIMUM = {FS: 3, CHIN: 2, LTS: 2}
MIN_NEURONS = 12  # room for 3 FS, 2 ChIN, 2 LTS and 2 of each SPN type
MORPHOLOGY_VARIANTS = (4, 4, 4, 1, 1)
# Longest dendritic path to the soma, metres (network/neurons/max_soma_distance_dend).
MAX_DENDRITE_DISTANCE = ((190e-6, 270e-6), (230e-6, 330e-6), (230e-6, 330e-6), (300e-6, 420e-6),
                         (250e-6, 350e-6))
DENDRITE_SECTIONS = (60, 140, 120, 80, 90)

# Presynaptic type weights per postsynaptic type (rows: post, columns: pre);
# zero where the config has no pathway.
PARTNER_WEIGHTS = np.array([
    # FS    dSPN  iSPN  ChIN  LTS
    [0.50, 0.50, 0.00, 0.00, 0.00],  # onto FS (dSPN -> FS is the projection pathway)
    [0.10, 0.40, 0.35, 0.10, 0.05],  # onto dSPN
    [0.10, 0.35, 0.40, 0.10, 0.05],  # onto iSPN
    [0.00, 0.40, 0.40, 0.00, 0.20],  # onto ChIN
    [0.50, 0.50, 0.00, 0.00, 0.00],  # onto LTS (dSPN -> LTS is the projection pathway)
])

# Rows per (pair, channel type): power law with exponential cutoff.
ROWS_PER_GROUP_MAX = 80
ROWS_PER_GROUP_EXPONENT = 1.7
ROWS_PER_GROUP_CUTOFF = 25.0
GAP_JUNCTIONS_PER_PAIR_MAX = 8
GAP_JUNCTION_PARTNERS_MEAN = 3.0

P_BOTH_CHANNELS = 0.75  # two-channel pathways: pairs that carry both channel types
P_SPLIT = 0.10  # pairs whose rows lie in two hyper voxels
P_SPLIT_TWO_CHANNELS = 0.40  # the same, for pairs of two-channel pathways
P_SPLIT_GAP_JUNCTIONS = 0.25
P_PROJECTION_PRIMARY = 0.70  # projection-pathway pairs whose first rows are in the projection file
P_PROJECTION_MIXED = 0.35  # projection-pathway pairs with rows in both that file and a hyper voxel

# Counter-addressed random streams (see _RandomStreams).
STREAM_NEURON, STREAM_DEST, STREAM_SLOT, STREAM_ROW = 0, 1, 2, 3
STREAM_GJ_DEST, STREAM_GJ_SLOT, STREAM_GJ_ROW, STREAM_LAYOUT = 4, 5, 6, 7
NEURON_WORDS, SLOT_WORDS, ROW_WORDS = 4, 7, 4
GJ_SLOT_WORDS, GJ_ROW_WORDS = 5, 4

# Where a pair's synapses sit.
SIGMA_MAX = 10.0  # largest spread of a pair's synapses around its centre, voxels
CENTRE_MARGIN = 25  # > SIGMA_MAX * sqrt(6): jitter never leaves the hyper voxel
DISTANCE_SPREAD = 20.0  # micrometres: spread of a pair's soma distances around its own

# Work sizes.
NEURON_BLOCK = 1 << 20  # neurons per pass over neuron attributes
ROW_SLICE = 1 << 16  # rows built at a time, to stay in cache
CHUNK_CACHE_BYTES = CHUNK_ROWS * SYNAPSE_COLUMNS * 4 * 3 // 2  # one synapse chunk and then some
AUTO_WORKERS_MIN_ROWS = 2_000_000  # below this, one process
AUTO_WORKERS_MAX = 16
MAX_HYPER_VOXELS = 1000

WORK_LOG = os.path.join("log", "network-detect-worklog.hdf5")
CONFIG_FILE = "network-config.json"
PROJECTION_FILE = "network-projection-synapses.hdf5"
POSITION_FILE = "network-neuron-positions.hdf5"
VOXEL_FILE_PATTERN = os.path.join("voxels", "network-putative-synapses-{}.hdf5")
# Files that Snudda's prune leaves behind; they would be stale after regenerating.
STALE_PRUNE_OUTPUTS = ("network-synapses.hdf5", "pruning_merge_info.json")

_U64 = np.uint64


# ----------------------------------------------------------------------------
# Random streams and bit fields


class _RandomStreams:
    """Counter-addressed random words.

    Word ``j`` at position ``i`` of stream ``s`` is the ``i``-th output of a
    PCG64 generator seeded with ``SeedSequence(seed, spawn_key=(s, j))``; any
    range of positions is drawn by jumping the generator with ``advance``, so
    the value never depends on how the positions are split into blocks.
    """

    def __init__(self, seed):
        self._seed = seed

    def words(self, stream, start, count, num_words):
        out = []
        for j in range(num_words):
            bit_gen = np.random.PCG64(np.random.SeedSequence(self._seed, spawn_key=(stream, j)))
            if start:
                bit_gen.advance(int(start))
            out.append(np.random.Generator(bit_gen).integers(0, 2**64, size=int(count), dtype=np.uint64))
        return out


def _bits(word, shift, nbits):
    """Bits ``shift .. shift+nbits-1`` of each uint64 as int64 (nbits < 64)."""
    return ((word >> _U64(shift)) & _U64((1 << nbits) - 1)).view(np.int64)


def _uniform(word, shift=11, nbits=53):
    """A uniform double in [0, 1) from a bit field."""
    return _bits(word, shift, nbits) * (1.0 / (1 << nbits))


def _below(u, n):
    """``floor(u * n)`` for u in [0, 1), as int64, never reaching n."""
    n = np.asarray(n)
    return np.minimum((u * n).astype(np.int64), n - 1)


def _group_sizes_table(max_size, exponent, cutoff):
    """Cumulative probabilities (without the last) of sizes 1..max_size."""
    sizes = np.arange(1, max_size + 1, dtype=np.float64)
    weights = sizes ** -exponent * np.exp(-sizes / cutoff)
    cumulative = np.cumsum(weights) / weights.sum()
    return cumulative[:-1], float((sizes * weights).sum() / weights.sum())


def _draw_sizes(table, u):
    return np.searchsorted(table, u, side="right").astype(np.int64) + 1


# ----------------------------------------------------------------------------
# The network config


def _pruning(f1, soft_max, mu2, a3, dist_pruning=None, cluster_pruning=False):
    return {"f1": f1, "soft_max": soft_max, "mu2": mu2, "a3": a3, "dist_pruning": dist_pruning,
            "cluster_pruning": cluster_pruning}


def _other_units(pruning):
    """Between-population-unit pruning: half f1, a3 0.5, mu2 + 1 (as striatum_300_pop)."""
    other = dict(pruning)
    other["f1"] = pruning["f1"] / 2
    other["a3"] = 0.5
    if pruning["mu2"] is not None:
        other["mu2"] = pruning["mu2"] + 1
    return other


def _connection(conductance, channel_parameters, pruning, with_other_units=False, **extra):
    con = {"conductance": list(conductance), "channel_parameters": channel_parameters,
           "cluster_size": 1, "cluster_spread": None, "pruning": pruning}
    if with_other_units:
        con["pruning_other"] = _other_units(pruning)
    con.update(extra)
    return con


def _gaba(mod_file="tmGabaA", **params):
    return dict(params, mod_file=mod_file)


SPN_DISTANCE = "1-exp(-(0.4*d/60e-6)**2)"
FS_DISTANCE = "exp(-(0.5*d/60e-6)**2)"
RELATIVE_DISTANCE = "1-exp(-(3*r)**2)"
PROJECTION_KEY = "dSPN,['FS', 'LTS']"


def _connectivity():
    """The pathways, in config order (which fixes detect's channel model ids).

    Numbers follow Snudda's striatum configs.  ChIN -> SPN pairs have two
    channel types: ChINs co-release glutamate (VGLUT3).
    """
    fs_gaba = [1.1e-9, 1.5e-9]
    spn_gaba = [2.4e-10, 1e-10]
    spn_params = {"tau1": [0.0013, 1000.0], "tau2": [0.0124, 1000.0]}
    lts_params = {"tau1": [0.003, 1000.0], "tau2": [0.038, 1000.0]}
    ach = {"mod_file": ""}
    glut = {"tau1": [0.0011, 0.005], "tau2": [0.0058, 0.12], "mod_file": "tmGlut"}
    return {
        "FS,FS": {
            "GABA": _connection(fs_gaba, _gaba(tau1=[0.00133, 1000.0], tau2=[0.0057, 1000.0]),
                                _pruning(0.15, 5, 2, 1)),
            "gap_junction": _connection([5e-10, 1e-10], None, _pruning(0.7, 8, 2, 0.5)),
        },
        "FS,dSPN": {"GABA": _connection(fs_gaba, _gaba(tau1=[0.0012, 1000.0], tau2=[0.008, 1000.0]),
                                        _pruning(0.5, 5, 2, 1.0, FS_DISTANCE, cluster_pruning=True))},
        "FS,iSPN": {"GABA": _connection(fs_gaba, _gaba(tau1=[0.0012, 1000.0], tau2=[0.008, 1000.0]),
                                        _pruning(0.5, 5, 2, 0.9, FS_DISTANCE))},
        "FS,LTS": {"GABA": _connection([1.1e-10, 1.5e-10], _gaba(), _pruning(0.15, 3, 2, 1.0))},
        "dSPN,dSPN": {"GABA": _connection(spn_gaba, _gaba(failRate=0.7, **spn_params),
                                          _pruning(0.209, None, 1.6864, 0.9998, SPN_DISTANCE), True)},
        "dSPN,iSPN": {"GABA": _connection(spn_gaba, _gaba(failRate=0.7, **spn_params),
                                          _pruning(0.2175, None, 1.7053, 0.4214, SPN_DISTANCE), True)},
        "dSPN,ChIN": {"GABA": _connection(spn_gaba, _gaba(failRate=0.7),
                                          _pruning(0.1, 3, 2.4, 0.1, SPN_DISTANCE))},
        "iSPN,dSPN": {"GABA": _connection(spn_gaba, _gaba(failRate=0.4, **spn_params),
                                          _pruning(0.1741, None, 1.5767, 0.9837, SPN_DISTANCE), True)},
        "iSPN,iSPN": {"GABA": _connection(spn_gaba, _gaba(failRate=0.4, **spn_params),
                                          _pruning(0.3105, None, 1.6518, 0.999, SPN_DISTANCE), True)},
        "iSPN,ChIN": {"GABA": _connection(spn_gaba, _gaba(failRate=0.4),
                                          _pruning(0.1, 3, 2.4, 0.1, RELATIVE_DISTANCE))},
        "ChIN,dSPN": {"ACh": _connection([1e-9, 0], ach, _pruning(0.5, 10, 3, 0.5)),
                      "AMPA_NMDA": _connection([5e-10, 2e-10], glut, _pruning(0.6, 6, 2, 0.7, SPN_DISTANCE))},
        "ChIN,iSPN": {"ACh": _connection([1e-9, 0], ach, _pruning(0.5, 10, 3, 0.5)),
                      "AMPA_NMDA": _connection([5e-10, 2e-10], glut, _pruning(0.6, 6, 2, 0.7, SPN_DISTANCE))},
        "LTS,dSPN": {"GABA": _connection([1e-9, 0], _gaba(**lts_params),
                                         _pruning(0.3, 15, 3, 0.3, SPN_DISTANCE))},
        "LTS,iSPN": {"GABA": _connection([1e-9, 0], _gaba(**lts_params),
                                         _pruning(0.3, 15, 3, 0.3, SPN_DISTANCE))},
        "LTS,ChIN": {"GABA": _connection([1e-9, 0], _gaba(), _pruning(0.5, 10, 3, 0.4))},
        PROJECTION_KEY: {"GABA": _connection(
            [1e-9, 0], None, _pruning(0.9, None, None, None),
            projection_file="data/synth-projection.json", projection_name="SynthProjection",
            source="Striatum", destination="Striatum", projection_radius=0.0001,
            number_of_targets=[10, 5], number_of_synapses=[10, 5], dendrite_synapse_density="1",
            projection_density=None)},
    }


def _neuron_definitions(type_counts):
    definitions = {}
    for t, name in enumerate(NEURON_TYPES):
        folder = name.lower()
        definition = {
            "num_neurons": int(type_counts[t]), "neuron_type": "neuron", "rotation_mode": "random",
            "volume_id": "Striatum",
            "neuron_path": {f"{name}_{v}": f"$SNUDDA_DATA/neurons/striatum/{folder}/synth-{folder}-{v}"
                            for v in range(MORPHOLOGY_VARIANTS[t])},
        }
        if t == CHIN:
            definition["axon_density"] = ["r", "5000*1e12/3*exp(-r/120e-6)", 0.00035]
        definitions[name] = definition
    return definitions


def _network_config(out_dir, seed, type_counts):
    # Snudda derives each stage's seed from the master seed; any uint32 values will do.
    stage_seeds = np.random.SeedSequence(seed).generate_state(8)
    stages = ("init", "place", "detect", "project", "prune", "input", "simulate")
    random_seed = {"master_seed": seed}
    random_seed.update({stage: int(s) for stage, s in zip(stages, stage_seeds[:len(stages)], strict=True)})
    return {
        "network_path": str(out_dir),
        "snudda_data": None,
        "random_seed": random_seed,
        "regions": {
            "Striatum": {
                "random_seed": int(stage_seeds[7]),
                "volume": {"type": "mesh", "d_min": 1.5e-05, "mesh_file": "mesh/Striatum-synth.obj",
                           "num_putative_points": 10 * int(sum(type_counts))},
                "connectivity": _connectivity(),
                "neurons": _neuron_definitions(type_counts),
            }
        },
    }


def _connectivity_distributions(config):
    """What detect stores in ``meta/connectivity_distributions``, and the channel ids.

    Returns ``(distributions, channels, max_channel_type_id)``; ``channels`` maps
    ``(pre, post)`` to a list of ``(con_type, channel_model_id)`` in config order.
    """
    distributions, channels = {}, {}
    next_id = FIRST_CHANNEL_MODEL_ID
    for region in config["regions"].values():
        for key, con_types in region["connectivity"].items():
            pre, post = key.split(",", 1)
            posts = json.loads(post.replace("'", '"')) if "," in post else [post]
            enriched = {}
            for con_type, con in con_types.items():
                con = json.loads(json.dumps(con))
                if con_type == "gap_junction":
                    con["channel_model_id"] = GAP_JUNCTION_CHANNEL
                else:
                    con["channel_model_id"] = next_id
                    next_id += 1
                mean, std = con["conductance"]
                mu = math.log(mean ** 2 / math.sqrt(mean ** 2 + std ** 2))
                sigma = math.sqrt(math.log(1 + std ** 2 / mean ** 2))
                con["lognormal_mu_sigma"] = [mu, sigma]
                con.setdefault("cluster_size", 1)
                con.setdefault("cluster_spread", 20e-3)
                enriched[con_type] = con
            for p in posts:
                distributions[f"{pre}$${p}"] = enriched
                channels[(pre, p)] = [(ct, c["channel_model_id"]) for ct, c in enriched.items()]
    return distributions, channels, next_id


# ----------------------------------------------------------------------------
# The plan: everything fixed before rows are drawn


@dataclass
class _Plan:
    out_dir: Path
    num_neurons: int
    synapses_per_neuron: float
    seed: int
    grid: tuple
    gap_junctions: bool
    projection: bool
    population_units: int
    config: dict
    config_json: str
    distributions: dict
    max_channel_type_id: int
    type_counts: np.ndarray = None
    type_start: np.ndarray = None
    file_hids: np.ndarray = None  # hyper voxel id of each voxel file (= all_hyper_ids)
    populated: np.ndarray = None  # file indices that receive rows
    empty_hid: int = None  # grid position with no neurons (no file)
    axon_only_hid: int = None  # completed hyper voxel without rows
    neighbours: np.ndarray = None  # (files, 26) neighbouring populated file indices, -1 padded
    neighbour_count: np.ndarray = None
    file_voxel_lo: np.ndarray = None  # (files + 1, 3) first voxel of each file's hyper voxel
    file_hid_column: np.ndarray = None  # (files + 1) column-5 value of each file's rows
    sections: np.ndarray = None  # dendrite sections per neuron type
    hyper_voxel_width: float = 0.0
    hyper_voxel_ids: np.ndarray = None
    # pathway tables, indexed [pre type, post type]
    pathway: np.ndarray = None
    channel_first: np.ndarray = None  # per pathway
    channel_second: np.ndarray = None  # per pathway, -1 if one channel
    pathway_split: np.ndarray = None
    pathway_projection: np.ndarray = None  # per pathway: has a projection file
    channel_log_mu: np.ndarray = None  # per channel id
    channel_log_sigma: np.ndarray = None
    channel_floor: np.ndarray = None  # pS
    gap_junction_log_mu_sigma: tuple = (0.0, 0.0)
    partner_thresholds: np.ndarray = None  # (post type, 4)
    mean_slots: np.ndarray = None  # per post type
    group_sizes: np.ndarray = None
    gap_junction_sizes: np.ndarray = None
    # per neuron
    neuron_type: np.ndarray = None  # int8
    home_file: np.ndarray = None  # int32 file index of the soma's hyper voxel
    max_distance_um: np.ndarray = None  # int32: largest allowed column 8 value
    streams: _RandomStreams = None
    layout_rng: np.random.Generator = None

    @property
    def num_files(self):
        return len(self.file_hids)

    @property
    def projection_index(self):
        """File index used for the projection file."""
        return len(self.file_hids)


def _type_counts(num_neurons):
    counts = np.zeros(len(NEURON_TYPES), dtype=np.int64)
    for t, fraction in INTERNEURON_FRACTION.items():
        counts[t] = max(INTERNEURON_MINIMUM[t], round(fraction * num_neurons))
    rest = num_neurons - counts.sum()
    counts[DSPN] = rest - rest // 2
    counts[ISPN] = rest // 2
    return counts


def _grid_shape(hyper_voxels, num_neurons):
    if hyper_voxels is None:
        side = int(min(6, max(2, round((num_neurons / 1000) ** (1 / 3)))))
        return (side, side, side)
    if isinstance(hyper_voxels, (int, np.integer)):
        shape = (int(hyper_voxels),) * 3
    else:
        shape = tuple(int(x) for x in hyper_voxels)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"hyper_voxels must be a positive int or three positive ints, got {hyper_voxels!r}")
    if np.prod(shape) > MAX_HYPER_VOXELS:
        # Every file stays open while rows are appended (and file indices are int16).
        raise InputError(f"at most {MAX_HYPER_VOXELS} hyper voxels, got {shape}")
    return shape


def _layout_hyper_voxels(plan):
    """Choose which grid positions are empty, axon-only and populated."""
    nx, ny, nz = plan.grid
    num_grid = nx * ny * nz
    plan.hyper_voxel_ids = np.arange(num_grid, dtype=np.int64).reshape(plan.grid)
    hids = np.arange(num_grid)
    if num_grid >= 4:
        # Real detect skips grid positions without neurons and completes some
        # hyper voxels that only axons pass through.
        plan.empty_hid = num_grid - 1
        plan.axon_only_hid = int(plan.layout_rng.integers(0, num_grid - 1))
        hids = hids[hids != plan.empty_hid]
    plan.file_hids = hids.astype(np.int64)
    plan.file_hid_column = np.append(plan.file_hids, PROJECTION_HID)
    populated = np.arange(plan.num_files)
    if plan.axon_only_hid is not None:
        populated = populated[plan.file_hids != plan.axon_only_hid]
    plan.populated = populated.astype(np.int64)

    xyz = np.stack(np.unravel_index(plan.file_hids, plan.grid), axis=1)
    plan.file_voxel_lo = np.zeros((plan.num_files + 1, 3), dtype=np.int64)
    plan.file_voxel_lo[:-1] = xyz * HYPER_VOXEL_SIZE
    # Neighbours: the 26-neighbourhood, populated only (the axon-only one stays empty).
    populated_file = np.full(num_grid, -1, dtype=np.int64)
    populated_file[plan.file_hids[populated]] = populated
    offsets = np.array([d for d in np.ndindex(3, 3, 3) if d != (1, 1, 1)]) - 1
    around = xyz[:, None, :] + offsets[None, :, :]
    inside = np.all((around >= 0) & (around < np.array(plan.grid)), axis=2)
    around_hid = np.ravel_multi_index(tuple(np.clip(around, 0, np.array(plan.grid) - 1).transpose(2, 0, 1)),
                                      plan.grid)
    candidate = np.where(inside, populated_file[around_hid], -1)
    # Pack each row's valid neighbours to the front (stable, so in offset order).
    order = np.argsort(candidate < 0, axis=1, kind="stable")
    plan.neighbours = np.take_along_axis(candidate, order, axis=1)
    plan.neighbour_count = (candidate >= 0).sum(axis=1).astype(np.int64)


def _pathway_tables(plan, channels):
    type_index = {name: t for t, name in enumerate(NEURON_TYPES)}
    num_types = len(NEURON_TYPES)
    plan.pathway = np.full((num_types, num_types), -1, dtype=np.int64)
    first, second, split, projection = [], [], [], []
    log_mu = np.zeros(plan.max_channel_type_id + 1)
    log_sigma = np.zeros(plan.max_channel_type_id + 1)
    floor = np.zeros(plan.max_channel_type_id + 1)
    for (pre, post), chans in channels.items():
        ids = sorted(c for ct, c in chans if ct != "gap_junction")
        for ct, c in chans:
            con = plan.distributions[f"{pre}$${post}"][ct]
            if ct == "gap_junction":
                plan.gap_junction_log_mu_sigma = tuple(con["lognormal_mu_sigma"])
                continue
            log_mu[c], log_sigma[c] = con["lognormal_mu_sigma"]
            floor[c] = 0.1 * con["conductance"][0] * 1e12
        if not ids:
            continue
        p = len(first)
        plan.pathway[type_index[pre], type_index[post]] = p
        first.append(ids[0])
        second.append(ids[1] if len(ids) > 1 else -1)
        split.append(P_SPLIT_TWO_CHANNELS if len(ids) > 1 else P_SPLIT)
        cons = plan.distributions[f"{pre}$${post}"].values()
        projection.append(any("projection_file" in con for con in cons))
    plan.channel_first = np.array(first, dtype=np.int64)
    plan.channel_second = np.array(second, dtype=np.int64)
    plan.pathway_split = np.array(split)
    plan.pathway_projection = np.array(projection, dtype=bool)
    plan.channel_log_mu, plan.channel_log_sigma, plan.channel_floor = log_mu, log_sigma, floor
    has_pathway = plan.pathway.T >= 0  # [post, pre]
    if np.any((PARTNER_WEIGHTS > 0) & ~has_pathway):
        raise AssertionError("PARTNER_WEIGHTS names a pathway the config lacks")


def _partner_tables(plan):
    weights = PARTNER_WEIGHTS / PARTNER_WEIGHTS.sum(axis=1, keepdims=True)
    thresholds = np.cumsum(weights, axis=1)[:, :-1]
    # A rounded cumulative sum just below 1 must not let u pick a trailing type of weight 0.
    nothing_after = np.cumsum(weights[:, ::-1], axis=1)[:, ::-1][:, 1:] == 0
    thresholds[nothing_after] = 2.0
    plan.partner_thresholds = thresholds
    plan.group_sizes, mean_group = _group_sizes_table(
        ROWS_PER_GROUP_MAX, ROWS_PER_GROUP_EXPONENT, ROWS_PER_GROUP_CUTOFF)
    plan.gap_junction_sizes, _ = _group_sizes_table(GAP_JUNCTIONS_PER_PAIR_MAX, 2.0, 4.0)
    # Expected channel types per slot for each post type, to aim at synapses_per_neuron rows.
    types_per_pair = np.where(plan.channel_second >= 0, 1 + P_BOTH_CHANNELS, 1.0)
    mean_types = np.zeros(len(NEURON_TYPES))
    for post in range(len(NEURON_TYPES)):
        for pre in range(len(NEURON_TYPES)):
            if weights[post, pre] > 0:
                mean_types[post] += weights[post, pre] * types_per_pair[plan.pathway[pre, post]]
    plan.mean_slots = plan.synapses_per_neuron / (mean_group * mean_types)


# ----------------------------------------------------------------------------
# Neurons


def _neuron_attributes(plan, start, stop):
    """Attributes of neurons ``start .. stop-1``: a pure function of seed and id."""
    n = stop - start
    types = plan.neuron_type[start:stop].astype(np.int64)
    w = plan.streams.words(STREAM_NEURON, start, n, NEURON_WORDS)
    home = plan.populated[_below(_uniform(w[0], 0, 32), len(plan.populated))]
    frac = np.stack([_uniform(w[1], 21 * i, 21) for i in range(3)], axis=1)
    voxel = plan.file_voxel_lo[home] + (0.05 + 0.9 * frac) * HYPER_VOXEL_SIZE
    origo = np.array(SIMULATION_ORIGO)
    position = origo + voxel * VOXEL_SIZE
    lo = np.array([r[0] for r in MAX_DENDRITE_DISTANCE])[types]
    hi = np.array([r[1] for r in MAX_DENDRITE_DISTANCE])[types]
    max_dist = (lo + _uniform(w[2], 0, 32) * (hi - lo)).astype(np.float32)
    variant = _below(_uniform(w[2], 32, 32), np.array(MORPHOLOGY_VARIANTS)[types])
    rotation = _rotation_matrices(*(_uniform(w[3], 21 * i, 21) for i in range(3)))
    unit = np.zeros(n, dtype=np.int64)
    if plan.population_units > 0:
        extent = plan.grid[0] * plan.hyper_voxel_width
        slab = _below(np.clip((position[:, 0] - origo[0]) / extent, 0, 1 - 1e-12), plan.population_units)
        spn = (types == DSPN) | (types == ISPN)
        unit[spn] = 1 + slab[spn]
    return {"type": types, "home": home, "position": position, "max_dist": max_dist,
            "variant": variant, "rotation": rotation, "population_unit": unit}


def _rotation_matrices(u1, u2, u3):
    """Uniform random rotations (Shoemake's quaternion method), rows of 9."""
    a, b = np.sqrt(1 - u1), np.sqrt(u1)
    qw, qx = a * np.sin(2 * np.pi * u2), a * np.cos(2 * np.pi * u2)
    qy, qz = b * np.sin(2 * np.pi * u3), b * np.cos(2 * np.pi * u3)
    return np.stack([
        1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw),
        2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw),
        2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy),
    ], axis=1)


def _index_neurons(plan):
    """Per-neuron arrays the row generator needs (type, home file, distance bound)."""
    n = plan.num_neurons
    plan.neuron_type = np.repeat(np.arange(len(NEURON_TYPES), dtype=np.int8), plan.type_counts)
    plan.home_file = np.empty(n, dtype=np.int32)
    plan.max_distance_um = np.empty(n, dtype=np.int32)
    for start in range(0, n, NEURON_BLOCK):
        stop = min(n, start + NEURON_BLOCK)
        attrs = _neuron_attributes(plan, start, stop)
        plan.home_file[start:stop] = attrs["home"]
        # Column 8 is in whole micrometres and r = d / max_soma_distance_dend must
        # not exceed 1 with the float32 value widened to float64.
        bound = np.floor(attrs["max_dist"].astype(np.float64) * 1e6).astype(np.int64) - 1
        plan.max_distance_um[start:stop] = bound


# ----------------------------------------------------------------------------
# Synapses: pairs, then rows


def _centres(plan, words, side, home):
    """Global voxel coordinates of a per-pair cluster centre inside the hyper voxel of ``side``.

    The centre keeps CENTRE_MARGIN voxels from the hyper voxel's faces, so the
    jitter of at most CENTRE_MARGIN - 1 never leaves it.  Projection-file rows
    lie in the dest's home hyper voxel.
    """
    spatial = np.where(side == plan.projection_index, home, side)
    span = HYPER_VOXEL_SIZE - 2 * CENTRE_MARGIN
    local = np.stack([CENTRE_MARGIN + ((_bits(words, 21 * i, 21) * span) >> 21) for i in range(3)], axis=1)
    return plan.file_voxel_lo[spatial] + local


def _plan_synapse_pairs(plan, d0, d1, slot_offset):
    """Partner slots of dests d0..d1-1 and the (pair, channel type) groups they make."""
    N = plan.num_neurons
    dests = np.arange(d0, d1, dtype=np.int64)
    post = plan.neuron_type[d0:d1].astype(np.int64)
    (wd,) = plan.streams.words(STREAM_DEST, d0, d1 - d0, 1)
    slots = np.floor(plan.mean_slots[post] * (0.5 + _uniform(wd, 32, 32)) + _uniform(wd, 0, 32))
    slots = slots.astype(np.int64)
    num_slots = int(slots.sum())
    slot_dest = np.repeat(dests, slots)
    slot_post = np.repeat(post, slots)
    s = plan.streams.words(STREAM_SLOT, slot_offset, num_slots, SLOT_WORDS)

    pre = (_uniform(s[0])[:, None] >= plan.partner_thresholds[slot_post]).sum(axis=1)
    src = plan.type_start[pre] + _below(_uniform(s[1]), plan.type_counts[pre])
    candidates = np.flatnonzero(src != slot_dest)  # no autapses
    keys, first = np.unique(slot_dest[candidates] * N + src[candidates], return_index=True)
    slot = candidates[first]  # the slot whose draws a pair uses: its first
    p = {"num_slots": num_slots, "key": keys, "dest": keys // N, "src": keys % N}
    pair_post = slot_post[slot]
    pw = plan.pathway[pre[slot], pair_post]
    w2, w3 = s[2][slot], s[3][slot]

    # Channel types: two-channel pathways carry both, or one of the two.
    c0, c1 = plan.channel_first[pw], plan.channel_second[pw]
    two = c1 >= 0
    both = two & (_uniform(w2, 0, 16) < P_BOTH_CHANNELS)
    pick_second = two & ~both & (_bits(w2, 60, 1) == 1)
    first_type = np.where(pick_second, c1, c0)
    types_per_pair = 1 + both.astype(np.int64)

    # Where the rows go: the dest's home hyper voxel, sometimes also a neighbour.
    home = plan.home_file[p["dest"]].astype(np.int64)
    split = (_uniform(w2, 16, 16) < plan.pathway_split[pw]) & (plan.neighbour_count[home] > 0)
    nb_pick = _below(_uniform(w2, 32, 16), np.maximum(plan.neighbour_count[home], 1))
    side_a = home.copy()
    side_b = np.where(split, plan.neighbours[home, nb_pick], home)
    if plan.projection:
        proj = plan.pathway_projection[pw]
        primary = proj & (_uniform(w2, 48, 12) < P_PROJECTION_PRIMARY)
        mixed = proj & (_uniform(w3, 0, 16) < P_PROJECTION_MIXED)
        side_a = np.where(primary, plan.projection_index, side_a)
        side_b = np.where(proj, np.where(primary, home, plan.projection_index), side_b)
        split = np.where(proj, mixed, split)

    # Groups, in canonical (dest, src, channel type) order.
    num_groups = int(types_per_pair.sum())
    g_pair = np.repeat(np.arange(len(keys)), types_per_pair)
    g_pos = np.arange(num_groups) - np.repeat(np.cumsum(types_per_pair) - types_per_pair, types_per_pair)
    g_type = np.where(g_pos == 0, first_type[g_pair], c1[g_pair])
    u_size = np.where(g_pos == 0, _uniform(w3[g_pair], 16, 24), _uniform(w3[g_pair], 40, 24))
    g_rows = _draw_sizes(plan.group_sizes, u_size)
    # Some split pairs with both channels get >= 2 rows of each, so that both
    # hyper voxels hold both channel types: their runs then interleave.
    interleave = both & split & (_bits(w2, 61, 1) == 1) & (side_a != plan.projection_index) \
        & (side_b != plan.projection_index)
    g_rows = np.where(interleave[g_pair], np.maximum(g_rows, 2), g_rows)

    p.update(home=home, split=split, side_a=side_a, side_b=side_b, g_pair=g_pair, g_type=g_type,
             g_rows=g_rows, num_interleaved=int(interleave.sum()),
             base_a=_centres(plan, s[4][slot], side_a, home), base_b=_centres(plan, s[5][slot], side_b, home),
             jitter_scale=(1.0 + (SIGMA_MAX - 1.0) * _uniform(s[6][slot], 0, 16)) * (math.sqrt(6.0) / 1024),
             axon_base=20 + ((_bits(s[6][slot], 16, 16) * 880) >> 16),
             # A pair's synapses tend to share a dendritic section and soma distance.
             section=1 + ((_bits(s[6][slot], 32, 16) * plan.sections[pair_post]) >> 16),
             distance=np.sqrt(_uniform(s[6][slot], 48, 16)) * (plan.max_distance_um[p["dest"]] + 1))
    rows_per_dest = np.bincount(p["dest"][g_pair] - d0, weights=g_rows, minlength=d1 - d0)
    p["rows_per_dest"] = rows_per_dest.astype(np.int64)
    return p


def _expand_rows(sizes, group_of_row_parent, split, side_a, side_b, words_bit0):
    """Per row of groups of ``sizes`` rows: its group, its pair, whether it is on side b, its file."""
    num_rows = int(sizes.sum())
    r_group = np.repeat(np.arange(len(sizes)), sizes)
    k = np.arange(num_rows) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    r_pair = r_group if group_of_row_parent is None else group_of_row_parent[r_group]
    # Row 0 of a split group goes to side a, row 1 to side b, the rest by a coin.
    on_b = split[r_pair] & ((k == 1) | ((k >= 2) & words_bit0))
    file_index = np.where(on_b, side_b[r_pair], side_a[r_pair])
    return r_group, r_pair, on_b, file_index


def _owned_order(file_index, owned):
    """Indices of the rows in owned files, ordered by file (stable: (dest, src, type) within)."""
    mine = owned[file_index]
    if mine.all():
        return np.argsort(file_index.astype(np.int16), kind="stable")
    sel = np.flatnonzero(mine)
    return sel[np.argsort(file_index[sel].astype(np.int16), kind="stable")]


def _jitter(words, axis, scale):
    """Voxel offset along one axis: a triangular draw (two 10-bit uniforms) times the pair's spread."""
    a = _bits(words, 20 * axis, 10)
    b = _bits(words, 20 * axis + 10, 10)
    return np.rint((a - b) * scale).astype(np.int64)


def _synapse_rows(plan, p, row_offset, owned):
    """Rows of the planned groups that lie in owned files, sorted by file then (dest, src, type).

    Returns ``(rows, file_index, keys, channel, listed, targets)``: ``listed``
    encodes (file, dest) for dests with rows outside their home hyper voxel,
    ``targets`` the dests with rows in the projection file.
    """
    num_rows = int(p["g_rows"].sum())
    w = plan.streams.words(STREAM_ROW, row_offset, num_rows, ROW_WORDS)
    r_group, r_pair, on_b, file_index = _expand_rows(p["g_rows"], p["g_pair"], p["split"], p["side_a"],
                                                     p["side_b"], _bits(w[2], 0, 1) == 1)
    idx = _owned_order(file_index, owned)
    rows = np.empty((len(idx), SYNAPSE_COLUMNS), dtype=np.int32)
    fi, keys, channel = file_index[idx], np.empty(len(idx), np.int64), np.empty(len(idx), np.int64)
    listed = []
    # Slices that stay in cache; the columns are computed directly in output order.
    for a in range(0, len(idx), ROW_SLICE):
        sl = idx[a:a + ROW_SLICE]
        rp, f, ob = r_pair[sl], file_index[sl], on_b[sl]
        out = rows[a:a + len(sl)]
        keys[a:a + len(sl)] = p["key"][rp]
        channel[a:a + len(sl)] = ch = p["g_type"][r_group[sl]]
        listed.append(_fill_synapse_rows(plan, p, out, rp, f, ob, ch, [x[sl] for x in w]))
    listed = np.unique(np.concatenate(listed)) if listed else np.zeros(0, np.int64)
    targets = np.unique(rows[fi == plan.projection_index, 1]).astype(np.int64)
    return rows, fi, keys, channel, listed, targets


def _fill_voxels(p, rp, ob, w1, rows, col):
    """Voxel coordinates into ``rows[:, col:col + 3]``: the pair's base voxel (its other-side base
    for rows outside the dest's home, ``ob``), jittered by the words ``w1``."""
    base = p["base_a"][rp]
    if ob.any():
        base[ob] = p["base_b"][rp[ob]]
    scale = p["jitter_scale"][rp]
    for axis in range(3):
        rows[:, col + axis] = base[:, axis] + _jitter(w1, axis, scale)


def _fill_synapse_rows(plan, p, rows, rp, fi, ob, channel, w):
    """Fill a slice of synapse rows; return (file, dest) codes of rows outside the dest's home."""
    w0, w1, w2, w3 = w
    dest = p["dest"][rp]
    rows[:, 0] = p["src"][rp]
    rows[:, 1] = dest
    _fill_voxels(p, rp, ob, w1, rows, 2)
    rows[:, 5] = plan.file_hid_column[fi]
    rows[:, 6] = channel
    rows[:, 7] = np.maximum(0, p["axon_base"][rp] + _bits(w2, 1, 6) - 32)
    # Distance and section: near the pair's own (mostly distal, where most
    # dendrite is); a quarter of the rows on another section.
    near = p["distance"][rp] + (_bits(w2, 16, 8) - _bits(w2, 24, 8)) * (DISTANCE_SPREAD / 256)
    rows[:, 8] = np.clip(near, 0, plan.max_distance_um[dest]).astype(np.int64)
    other = _bits(w2, 32, 2) == 0
    section = p["section"][rp]
    if other.any():
        section[other] = 1 + ((_bits(w0[other], 0, 16) * plan.sections[plan.neuron_type[dest[other]]]) >> 16)
    rows[:, 9] = section
    rows[:, 10] = (_bits(w0, 16, 16) * 1001) >> 16
    z = (_bits(w3, 0, 16) - _bits(w3, 16, 16)) * (math.sqrt(6.0) / 65536)
    log_cond = plan.channel_log_mu[channel] + plan.channel_log_sigma[channel] * z
    rows[:, 11] = np.maximum(np.rint(np.exp(log_cond) * 1e12), plan.channel_floor[channel])
    rows[:, 12] = (_bits(w0, 32, 32) * 1_000_000) >> 32
    listing = ob & (fi != plan.projection_index) & (fi != p["home"][rp])
    return fi[listing] * plan.num_neurons + dest[listing]


def _plan_gap_junction_pairs(plan, d0, d1, slot_offset):
    """FS-FS gap junction pairs (src < dest) onto dests d0..d1-1."""
    N = plan.num_neurons
    fs_lo, fs_hi = int(plan.type_start[FS]), int(plan.type_start[FS] + plan.type_counts[FS])
    lo, hi = max(d0, fs_lo + 1), min(d1, fs_hi)
    dests = np.arange(lo, max(lo, hi), dtype=np.int64)
    (wd,) = plan.streams.words(STREAM_GJ_DEST, lo, len(dests), 1)
    slots = _below(_uniform(wd), int(2 * GAP_JUNCTION_PARTNERS_MEAN) + 1)
    num_slots = int(slots.sum())
    slot_dest = np.repeat(dests, slots)
    s = plan.streams.words(STREAM_GJ_SLOT, slot_offset, num_slots, GJ_SLOT_WORDS)
    src = fs_lo + _below(_uniform(s[0]), slot_dest - fs_lo)
    keys, slot = np.unique(slot_dest * N + src, return_index=True)
    dest = keys // N
    home = plan.home_file[dest].astype(np.int64)
    split = (_uniform(s[1][slot], 0, 16) < P_SPLIT_GAP_JUNCTIONS) & (plan.neighbour_count[home] > 0)
    nb_pick = _below(_uniform(s[1][slot], 16, 16), np.maximum(plan.neighbour_count[home], 1))
    side_b = np.where(split, plan.neighbours[home, nb_pick], home)
    return {"num_slots": num_slots, "key": keys, "dest": dest, "src": keys % N, "home": home,
            "split": split, "side_b": side_b,
            "rows": _draw_sizes(plan.gap_junction_sizes, _uniform(s[1][slot], 32, 32)),
            "base_a": _centres(plan, s[2][slot], home, home),
            "base_b": _centres(plan, s[3][slot], side_b, home),
            "jitter_scale": (1.0 + 4.0 * _uniform(s[4][slot], 0, 16)) * (math.sqrt(6.0) / 1024)}


def _gap_junction_rows(plan, p, row_offset, owned):
    """Like :func:`_synapse_rows`, for gap junctions: ``(rows, file_index, keys, listed)``."""
    num_rows = int(p["rows"].sum())
    w = plan.streams.words(STREAM_GJ_ROW, row_offset, num_rows, GJ_ROW_WORDS)
    _, r_pair, on_b, file_index = _expand_rows(p["rows"], None, p["split"], p["home"], p["side_b"],
                                               _bits(w[2], 0, 1) == 1)
    idx = _owned_order(file_index, owned)
    rp, fi, ob = r_pair[idx], file_index[idx], on_b[idx]
    w0, w1, w3 = w[0][idx], w[1][idx], w[3][idx]
    dest = p["dest"][rp]
    rows = np.empty((len(idx), GAP_JUNCTION_COLUMNS), dtype=np.int32)
    rows[:, 0] = p["src"][rp]
    rows[:, 1] = dest
    rows[:, 2] = (_bits(w0, 0, 16) * DENDRITE_SECTIONS[FS]) >> 16
    rows[:, 3] = (_bits(w0, 16, 16) * DENDRITE_SECTIONS[FS]) >> 16
    rows[:, 4] = (_bits(w0, 32, 16) * 1001) >> 16
    rows[:, 5] = (_bits(w0, 48, 16) * 1001) >> 16
    _fill_voxels(p, rp, ob, w1, rows, 6)
    rows[:, 9] = plan.file_hid_column[fi]
    mu, sigma = plan.gap_junction_log_mu_sigma
    z = (_bits(w3, 0, 16) - _bits(w3, 16, 16)) * (math.sqrt(6.0) / 65536)
    rows[:, 10] = np.rint(np.exp(mu + sigma * z) * 1e12)
    listing = ob & (fi != p["home"][rp])
    listed = np.unique(fi[listing] * plan.num_neurons + dest[listing])
    return rows, fi, p["key"][rp], listed


def _lookup_runs(file_index, keys, channel, max_channel_type_id):
    """Lookup rows (unique_id, start, end) of rows sorted by file: one per run of one (src, dest)."""
    n = len(keys)
    change = np.empty(n, dtype=bool)
    change[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    change[1:] |= file_index[1:] != file_index[:-1]
    starts = np.flatnonzero(change)
    lookup = np.empty((len(starts), 3), dtype=np.int64)
    lookup[:, 0] = keys[starts] * max_channel_type_id + channel[starts]
    lookup[:, 1] = starts
    lookup[:, 2] = np.append(starts[1:], n)
    return file_index[starts], lookup


# ----------------------------------------------------------------------------
# HDF5 writers


def _create_rows(group, name, columns):
    return group.create_dataset(name, shape=(0, columns), maxshape=(None, columns), dtype=np.int32,
                                chunks=(CHUNK_ROWS, columns), compression="lzf")


def _create_lookup(group, name):
    # Snudda writes these contiguous and uncompressed; chunked here so that they can grow.
    return group.create_dataset(name, shape=(0, 3), maxshape=(None, 3), dtype=np.int64,
                                chunks=(CHUNK_ROWS, 3))


def _append(dataset, values):
    n = dataset.shape[0]
    dataset.resize(n + len(values), axis=0)
    dataset[n:] = values


class _RowFile:
    """An HDF5 file whose row matrices and lookup tables grow by appending."""

    def __init__(self, path, kinds):
        # The chunk cache must hold a dataset's partly filled last chunk (else it is
        # compressed, written and read back); more costs memory in every open file.
        self.file = h5py.File(path, "w", libver="latest", rdcc_nbytes=CHUNK_CACHE_BYTES)
        network = self.file.create_group("network")
        self.rows, self.lookups, self.counts = {}, {}, {}
        for name, lookup_name, columns in kinds:
            self.rows[name] = _create_rows(network, name, columns)
            self.lookups[name] = _create_lookup(network, lookup_name)
            self.counts[name] = 0

    def append(self, name, rows, lookup):
        if len(rows) == 0:
            return
        lookup = lookup.copy()
        lookup[:, 1:] += self.counts[name]
        _append(self.rows[name], rows)
        _append(self.lookups[name], lookup)
        self.counts[name] += len(rows)

    def close(self):
        self.file.close()


def _write_voxel_meta(f, plan, hid):
    f.create_dataset("config", data=plan.config_json)
    meta = f.create_group("meta")
    xyz = np.array(np.unravel_index(hid, plan.grid))
    # The same expression Snudda's prune checks the stored value against.
    origo = np.array(SIMULATION_ORIGO) + plan.hyper_voxel_width * xyz
    meta.create_dataset("hyper_voxel_id", data=np.int64(hid))
    meta.create_dataset("hyper_voxel_origo", data=origo)
    meta.create_dataset("simulation_origo", data=np.array(SIMULATION_ORIGO))
    meta.create_dataset("snudda_data", data="$SNUDDA_DATA")
    meta.create_dataset("slurm_id", data=np.int64(0))
    meta.create_dataset("voxel_size", data=np.float64(VOXEL_SIZE))
    meta.create_dataset("hyper_voxel_size", data=np.int64(HYPER_VOXEL_SIZE))
    meta.create_dataset("num_hyper_voxels", data=np.array(plan.grid, dtype=np.int64))
    meta.create_dataset("num_bins", data=np.full(3, HYPER_VOXEL_SIZE, dtype=np.int64))
    meta.create_dataset("voxel_overflow_counter", data=np.int64(0))
    meta.create_dataset("config_file", data=str(plan.out_dir / CONFIG_FILE))
    meta.create_dataset("position_file", data=str(plan.out_dir / POSITION_FILE))
    meta.create_dataset("max_axon_voxel_ctr", data=np.int32(12))
    meta.create_dataset("max_dend_voxel_ctr", data=np.int32(6))


def _open_writers(plan, owned):
    """A writer per owned file index (the projection file is index ``num_files``)."""
    writers = {}
    try:
        for f in np.flatnonzero(owned[:plan.num_files]):
            hid = int(plan.file_hids[f])
            w = writers[int(f)] = _RowFile(plan.out_dir / VOXEL_FILE_PATTERN.format(hid),
                                           [("synapses", "synapse_lookup", SYNAPSE_COLUMNS),
                                            ("gap_junctions", "gap_junction_lookup", GAP_JUNCTION_COLUMNS)])
            _write_voxel_meta(w.file, plan, hid)
            w.file.create_dataset("network/max_channel_type_id", data=plan.max_channel_type_id, dtype=int)
        if plan.projection and owned[plan.projection_index]:
            w = writers[plan.projection_index] = _RowFile(plan.out_dir / PROJECTION_FILE,
                                                          [("synapses", "synapse_lookup", SYNAPSE_COLUMNS)])
            w.file.create_dataset("config", data=plan.config_json)
            w.file.create_dataset("network/max_channel_type_id", data=plan.max_channel_type_id, dtype=int)
    except BaseException:
        for w in writers.values():
            w.close()
        raise
    return writers


def _write_block(writers, name, rows, file_index, keys, channel, plan):
    if len(rows) == 0:
        return
    run_file, lookup = _lookup_runs(file_index, keys, channel, plan.max_channel_type_id)
    row_bounds = np.searchsorted(file_index, np.arange(plan.num_files + 2))
    run_bounds = np.searchsorted(run_file, np.arange(plan.num_files + 2))
    for f in np.unique(run_file):  # one loop per file touched
        a, b = row_bounds[f], row_bounds[f + 1]
        runs = lookup[run_bounds[f]:run_bounds[f + 1]]
        runs[:, 1:] -= a
        writers[int(f)].append(name, rows[a:b], runs)


# ----------------------------------------------------------------------------
# Generating the rows of the owned files


def _dest_block(plan, d0, budget, slot_offset):
    """Plan the largest block of dests from d0 whose rows fit the budget (at least one dest)."""
    expected = max(1.0, 1.5 * plan.synapses_per_neuron)
    d1 = min(plan.num_neurons, d0 + max(1, min(NEURON_BLOCK, int(budget / expected))))
    pairs = _plan_synapse_pairs(plan, d0, d1, slot_offset)
    cumulative = np.cumsum(pairs["rows_per_dest"])
    if d1 - d0 > 1 and cumulative[-1] > budget:
        d1 = d0 + max(1, int(np.searchsorted(cumulative, budget, side="right")))
        pairs = _plan_synapse_pairs(plan, d0, d1, slot_offset)
    return d1, pairs


def _generate_rows(plan, owned, budget, report=None):
    """Write the rows of the owned files, block of dests after block; return what the work log needs."""
    writers = _open_writers(plan, owned)
    listed, targets = [], []
    slot_offset = row_offset = gj_slot_offset = gj_row_offset = interleaved = 0
    try:
        d0 = 0
        while d0 < plan.num_neurons:  # one loop per block of dest neurons
            d1, pairs = _dest_block(plan, d0, budget, slot_offset)
            rows, fi, keys, channel, hv_dests, proj_dests = _synapse_rows(plan, pairs, row_offset, owned)
            _write_block(writers, "synapses", rows, fi, keys, channel, plan)
            written = len(rows)
            slot_offset += pairs["num_slots"]
            row_offset += int(pairs["g_rows"].sum())
            interleaved += pairs["num_interleaved"]
            listed.append(hv_dests)
            targets.append(proj_dests)
            del pairs, rows, fi, keys, channel
            if plan.gap_junctions:
                gj = _plan_gap_junction_pairs(plan, d0, d1, gj_slot_offset)
                rows, fi, keys, hv_dests = _gap_junction_rows(plan, gj, gj_row_offset, owned)
                channel = np.full(len(rows), GAP_JUNCTION_CHANNEL, dtype=np.int64)
                _write_block(writers, "gap_junctions", rows, fi, keys, channel, plan)
                written += len(rows)
                gj_slot_offset += gj["num_slots"]
                gj_row_offset += int(gj["rows"].sum())
                listed.append(hv_dests)
            d0 = d1
            if report is not None:
                report(written)
        counts = np.zeros((2, plan.num_files + 1), dtype=np.int64)
        for f, w in writers.items():
            counts[0, f] = w.counts["synapses"]
            counts[1, f] = w.counts.get("gap_junctions", 0)
        if plan.projection_index in writers:
            proj = writers[plan.projection_index].file
            all_targets = np.concatenate(targets).astype(np.int32)
            proj.create_dataset("network/num_synapses", data=counts[0, plan.projection_index], dtype=int)
            proj.create_dataset("network/num_neurons", data=plan.num_neurons, dtype=int)
            proj.create_dataset("network/all_target_id", data=all_targets)
    finally:
        for w in writers.values():
            w.close()
    return {"counts": counts, "listed": np.unique(np.concatenate(listed)), "interleaved": interleaved}


def _worker(spec, worker, num_workers, budget, queue):
    """Process entry point: write the files ``worker`` owns (file index % num_workers)."""
    try:
        plan = _make_plan(**spec)
        owned = np.arange(plan.num_files + 1) % num_workers == worker
        result = _generate_rows(plan, owned, budget, report=lambda n: queue.put(("progress", worker, n)))
        queue.put(("done", worker, result))
    except BaseException:
        queue.put(("error", worker, traceback.format_exc()))


def _run_workers(spec, num_workers, budget, report):
    """Run _generate_rows in worker processes that own disjoint sets of files; merge their results."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    queue = context.Queue()
    processes = [context.Process(target=_worker, args=(spec, i, num_workers, budget, queue), daemon=True)
                 for i in range(num_workers)]
    for proc in processes:
        proc.start()
    results = {}
    try:
        while len(results) < num_workers:
            try:
                kind, worker, payload = queue.get(timeout=1.0)
            except queue_module.Empty:
                dead = [i for i, proc in enumerate(processes)
                        if i not in results and proc.exitcode not in (None, 0)]
                if dead:
                    code = processes[dead[0]].exitcode
                    raise RuntimeError(f"synth worker {dead[0]} died with exit code {code}") from None
                continue
            if kind == "progress":
                if report is not None:
                    report(payload)
            elif kind == "done":
                results[worker] = payload
            else:
                raise RuntimeError(f"synth worker {worker} failed:\n{payload}")
    finally:
        for proc in processes:
            if proc.is_alive() and len(results) < num_workers:
                proc.terminate()
            proc.join()
    return {"counts": sum(r["counts"] for r in results.values()),
            "listed": np.unique(np.concatenate([r["listed"] for r in results.values()])),
            "interleaved": results[0]["interleaved"]}


# ----------------------------------------------------------------------------
# The work log


def _string_array(values):
    return np.array([v.encode() for v in values])


def _write_neurons(group, plan):
    n = plan.num_neurons
    neurons = group.create_group("neurons")
    names = [[f"{t}_{v}" for v in range(max(MORPHOLOGY_VARIANTS))] for t in NEURON_TYPES]
    name_table = _string_array([s for row in names for s in row]).reshape(len(NEURON_TYPES), -1)
    path_table = np.array([[f"$SNUDDA_DATA/neurons/striatum/{t.lower()}/synth-{t.lower()}-{v}"
                            for v in range(max(MORPHOLOGY_VARIANTS))] for t in NEURON_TYPES], dtype=object)
    morph_table = np.array([[p + "/morphology.swc" for p in row] for row in path_table], dtype=object)
    vlen = h5py.string_dtype()
    gz = {"compression": "gzip", "chunks": True}
    ds = {
        "name": neurons.create_dataset("name", shape=(n,), dtype=name_table.dtype, **gz),
        "neuron_id": neurons.create_dataset("neuron_id", data=np.arange(n, dtype=np.int64)),
        "morphology": neurons.create_dataset("morphology", shape=(n,), dtype=vlen, **gz),
        "neuron_path": neurons.create_dataset("neuron_path", shape=(n,), dtype=vlen),
        "position": neurons.create_dataset("position", shape=(n, 3), dtype=np.float64, **gz),
        "rotation": neurons.create_dataset("rotation", shape=(n, 9), dtype=np.float64, **gz),
        "population_unit_id": neurons.create_dataset("population_unit_id", shape=(n,), dtype=np.int64),
        "max_soma_distance_dend": neurons.create_dataset("max_soma_distance_dend", shape=(n,),
                                                         dtype=np.float32),
    }
    for start in range(0, n, NEURON_BLOCK):  # one loop per block of neurons
        stop = min(n, start + NEURON_BLOCK)
        a = _neuron_attributes(plan, start, stop)
        ds["name"][start:stop] = name_table[a["type"], a["variant"]]
        ds["morphology"][start:stop] = morph_table[a["type"], a["variant"]]
        ds["neuron_path"][start:stop] = path_table[a["type"], a["variant"]]
        ds["position"][start:stop] = a["position"]
        ds["rotation"][start:stop] = a["rotation"]
        ds["population_unit_id"][start:stop] = a["population_unit"]
        ds["max_soma_distance_dend"][start:stop] = a["max_dist"]
    # Datasets Snudda's place writes that nothing here varies.
    empty = np.full(n, b"", dtype="S1")
    for name in ("axon_density", "axon_density_type", "hoc", "modulation_key", "morphology_key"):
        neurons.create_dataset(name, data=empty, **gz)
    neurons.create_dataset("parameter_key", data=np.full(n, b"default", dtype="S7"), **gz)
    neurons.create_dataset("reaction_diffusion_file", data=empty)
    neurons.create_dataset("axon_density_bounds_xyz", data=np.full((n, 6), np.nan))
    neurons.create_dataset("axon_density_radius", data=np.full(n, np.nan))
    neurons.create_dataset("virtual_neuron", data=np.zeros(n, dtype=bool))
    neurons.create_dataset("volume_id", data=np.full(n, b"Striatum", dtype="S8"), **gz)
    extra = neurons.create_group("extra_axons")
    for name in ("morphology", "name"):
        extra.create_dataset(name, shape=(0,), maxshape=(None,), dtype=vlen, chunks=(1024,),
                             compression="gzip")
    for name in ("parent_neuron", "position", "rotation"):
        extra.create_dataset(name, shape=(0,), dtype=np.float64)


def _hyper_voxels_json(plan, listed):
    """The work log's ``hyper_voxels``: every grid position, with the neurons in it."""
    num_grid = int(np.prod(plan.grid))
    homes = plan.file_hids[plan.home_file]
    order = np.argsort(homes, kind="stable")
    home_bounds = np.searchsorted(homes[order], np.arange(num_grid + 1))
    listed_hid = plan.file_hids[listed // plan.num_neurons] if len(listed) else listed
    listed_id = listed % plan.num_neurons
    listed_bounds = np.searchsorted(listed_hid, np.arange(num_grid + 1))
    seeds = plan.layout_rng.integers(0, 2**32, size=num_grid)
    parts = []
    for hid in range(num_grid):  # one loop per hyper voxel
        entries = []
        soma = order[home_bounds[hid]:home_bounds[hid + 1]]
        if len(soma):
            entries.append(_json_entries(soma, '{"soma": true, "dend": [0]}'))
        dend = listed_id[listed_bounds[hid]:listed_bounds[hid + 1]]
        if len(dend):
            entries.append(_json_entries(dend, '{"dend": [0]}'))
        count = len(soma) + len(dend)
        if hid == plan.axon_only_hid:
            axons = np.unique(plan.layout_rng.integers(0, plan.num_neurons, size=3))
            entries.append(_json_entries(axons, '{"axon": [[[0], "neuron"]]}'))
            count = len(axons)
        xyz = np.array(np.unravel_index(hid, plan.grid))
        origo = (np.array(SIMULATION_ORIGO) + plan.hyper_voxel_width * xyz).tolist()
        parts.append(f'"{hid}": {{"origo": {json.dumps(origo)}, "neurons": {{{", ".join(entries)}}}, '
                     f'"axon_density": [], "neuron_ctr": {count}, "random_seed": {int(seeds[hid])}}}')
    return "{" + ", ".join(parts) + "}"


def _json_entries(ids, value):
    """``"id": value`` for each id, joined (no Python loop per id)."""
    sep = f'": {value}, "'
    return '"' + sep.join(np.asarray(ids).astype(str).tolist()) + f'": {value}'


def _write_work_log(plan, counts, num_projection, listed):
    path = plan.out_dir / WORK_LOG
    os.makedirs(path.parent, exist_ok=True)
    num_grid = int(np.prod(plan.grid))
    completed_order = plan.layout_rng.permutation(plan.num_files)
    if plan.num_files > 1 and np.all(np.diff(completed_order) > 0):
        completed_order = completed_order[::-1]  # never ascending id: readers must not assume it
    with h5py.File(path, "w", libver="latest") as f:
        meta = f.create_group("meta")
        meta.create_dataset("snudda_data", data="$SNUDDA_DATA")
        meta.create_dataset("slurm_id", data=np.int64(0))
        meta.create_dataset("config_file", data=str(plan.out_dir / CONFIG_FILE))
        meta.create_dataset("position_file", data=str(plan.out_dir / POSITION_FILE))
        meta.create_dataset("voxel_size", data=np.float64(VOXEL_SIZE))
        meta.create_dataset("hyper_voxel_size", data=np.int64(HYPER_VOXEL_SIZE))
        meta.create_dataset("hyper_voxel_width", data=np.float64(plan.hyper_voxel_width))
        meta.create_dataset("config", data=plan.config_json)
        meta.create_dataset("connectivity_distributions", data=json.dumps(plan.distributions))
        meta.create_dataset("hyper_voxel_ids", data=plan.hyper_voxel_ids)
        meta.create_dataset("num_hyper_voxels", data=np.array(plan.grid, dtype=np.int64))
        meta.create_dataset("simulation_origo", data=np.array(SIMULATION_ORIGO))
        _write_neurons(f.create_group("network"), plan)

        completed = np.full(num_grid, -1, dtype=np.int32)
        completed[:plan.num_files] = plan.file_hids[completed_order]
        synapses = np.zeros(num_grid, dtype=np.int64)
        synapses[:plan.num_files] = counts["synapses"][completed_order]
        gap_junctions = np.zeros(num_grid, dtype=np.int64)
        gap_junctions[:plan.num_files] = counts["gap_junctions"][completed_order]
        f.create_dataset("completed", data=completed)
        f.create_dataset("num_completed", data=np.array([plan.num_files], dtype=np.float64))
        f.create_dataset("all_hyper_ids", data=plan.file_hids.astype(np.int32))
        f.create_dataset("num_hypervoxel_synapses", data=synapses)
        f.create_dataset("num_hypervoxel_gap_junctions", data=gap_junctions)
        f.create_dataset("voxel_overflow_counter", data=np.zeros(num_grid, dtype=np.int64))
        f.create_dataset("hyper_voxels", data=_hyper_voxels_json(plan, listed))
        if plan.projection:
            f.create_dataset("num_projection_synapses", data=num_projection, dtype=int)
    return path


# ----------------------------------------------------------------------------
# Driver


def _prepare_out_dir(out_dir, overwrite):
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a directory", out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise InputError("directory exists and is not empty (use overwrite=True / --overwrite)", out_dir)
        # Remove only what this generator (or a Snudda prune of its output) wrote.
        stale = [out_dir / CONFIG_FILE, out_dir / WORK_LOG, out_dir / PROJECTION_FILE]
        stale += [out_dir / name for name in STALE_PRUNE_OUTPUTS]
        stale += list((out_dir / "voxels").glob("network-putative-synapses-*.hdf5"))
        stale += list((out_dir / "temp").glob("*-MERGE-ME.hdf5"))
        for path in stale:
            if path.is_file():
                path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _check_arguments(num_neurons, synapses_per_neuron, seed, population_units, max_rows_in_memory):
    def integer(value, name, minimum):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
        return int(value)

    integer(num_neurons, "num_neurons", MIN_NEURONS)
    if num_neurons > MAX_NEURONS_FOR_UNIQUE_ID:
        raise InputError(f"num_neurons must be at most {MAX_NEURONS_FOR_UNIQUE_ID}, got {num_neurons}")
    if not isinstance(synapses_per_neuron, (int, float, np.integer, np.floating)) \
            or not 0 <= synapses_per_neuron < 1e6:
        raise InputError(f"synapses_per_neuron must be a number in [0, 1e6), got {synapses_per_neuron!r}")
    integer(seed, "seed", 0)
    integer(population_units, "population_units", 0)
    integer(max_rows_in_memory, "max_rows_in_memory", 1)


def _make_plan(out_dir, num_neurons, synapses_per_neuron, seed, hyper_voxels, gap_junctions, projection,
               population_units):
    type_counts = _type_counts(num_neurons)
    config = _network_config(out_dir, seed, type_counts)
    distributions, channels, max_channel = _connectivity_distributions(config)
    plan = _Plan(out_dir=out_dir, num_neurons=num_neurons, synapses_per_neuron=float(synapses_per_neuron),
                 seed=seed, grid=_grid_shape(hyper_voxels, num_neurons), gap_junctions=gap_junctions,
                 projection=projection, population_units=population_units, config=config,
                 config_json=json.dumps(config), distributions=distributions,
                 max_channel_type_id=max_channel)
    plan.type_counts = type_counts
    plan.type_start = np.concatenate([[0], np.cumsum(type_counts)[:-1]]).astype(np.int64)
    plan.hyper_voxel_width = VOXEL_SIZE * np.int64(HYPER_VOXEL_SIZE)
    plan.sections = np.array(DENDRITE_SECTIONS, dtype=np.int64)
    plan.streams = _RandomStreams(seed)
    layout_seed = np.random.SeedSequence(seed, spawn_key=(STREAM_LAYOUT,))
    plan.layout_rng = np.random.Generator(np.random.PCG64(layout_seed))
    _layout_hyper_voxels(plan)
    _pathway_tables(plan, channels)
    _partner_tables(plan)
    _index_neurons(plan)
    return plan


def _plan_spec(plan):
    """Arguments that rebuild the same plan in a worker process."""
    return {"out_dir": plan.out_dir, "num_neurons": plan.num_neurons,
            "synapses_per_neuron": plan.synapses_per_neuron, "seed": plan.seed, "hyper_voxels": plan.grid,
            "gap_junctions": plan.gap_junctions, "projection": plan.projection,
            "population_units": plan.population_units}


def _worker_count(workers, estimated_rows, num_files):
    if workers is None:
        if estimated_rows < AUTO_WORKERS_MIN_ROWS:
            return 1
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = min(cores or 1, AUTO_WORKERS_MAX)
    return max(1, min(int(workers), num_files + 1))


def generate_network(out_dir, num_neurons=200, synapses_per_neuron=100, seed=1, *, hyper_voxels=None,
                     gap_junctions=True, projection=True, population_units=3, max_rows_in_memory=2_000_000,
                     progress=None, overwrite=False, workers=None):
    """Write a synthetic Snudda network directory, ready for pruning.

    The directory holds ``network-config.json``, ``log/network-detect-worklog.hdf5``,
    ``voxels/network-putative-synapses-<hid>.hdf5`` and, with ``projection``,
    ``network-projection-synapses.hdf5``, in the layout Snudda 3 writes
    (DESIGN §1).  Rows are generated per block of dest neurons and appended to
    chunked, lzf-compressed datasets, so memory stays bounded for any size.

    Parameters
    ----------
    out_dir : str or path-like
        Directory to write; created if missing.
    num_neurons : int, optional
        Number of neurons (at least 12): about 95 % SPNs, the rest FS, ChIN and LTS.
    synapses_per_neuron : float, optional
        Mean putative synapse rows onto each neuron (the actual count is random).
    seed : int, optional
        Non-negative seed; the same seed gives identical array contents, for
        any ``max_rows_in_memory`` and ``workers``.
    hyper_voxels : int or tuple of 3 ints, optional
        Hyper voxel grid: ``s`` for ``s x s x s`` or ``(nx, ny, nz)``, at most
        1000 positions.  Default: a cube of 2-6 per side, growing with
        ``num_neurons``.  With four or more grid positions, one stays empty
        (no file) and one is completed without rows.
    gap_junctions : bool, optional
        Write FS-FS gap junctions.
    projection : bool, optional
        Write the projection-synapse file (``dSPN -> FS, LTS`` pathway) and the
        work log's ``num_projection_synapses``; without it, that pathway's rows
        all lie in hyper voxels.
    population_units : int, optional
        SPNs get population unit ids 1..population_units by soma x position;
        interneurons get 0.  0 puts every neuron in unit 0.
    max_rows_in_memory : int, optional
        Synapse rows built at once, over all workers (a single dest with more
        rows is built alone).  Measured peak memory: about 150 bytes per row
        of this budget, plus about 2.5 MB per hyper voxel file a process has
        open (HDF5 caches), plus about 100 MB and 20 bytes per neuron per
        process.
    progress : callable, optional
        Called as ``progress(done_rows, total_rows)`` as blocks are written
        (rows: synapses, projection synapses and gap junctions); ``total_rows``
        is an estimate until the last call, where it equals ``done_rows``.
    overwrite : bool, optional
        Allow a non-empty ``out_dir``: files this generator writes, and stale
        outputs of a Snudda prune of them, are removed first.
    workers : int, optional
        Processes that build and compress rows, each owning a disjoint set of
        files (LZF compression, about 2 M rows/s per core, is the bottleneck).
        Default: 1 below 2 M expected rows, else one per available core (at
        most 16).  The output does not depend on it.

    Returns
    -------
    dict
        ``network_path``, ``config_file``, ``work_log``, ``voxel_files`` (hid -> path),
        ``projection_file`` (or None), ``num_neurons``, ``num_synapses`` (rows in
        hyper voxel files), ``num_gap_junctions``, ``num_projection_synapses``,
        ``hyper_voxel_synapses`` and ``hyper_voxel_gap_junctions`` (hid -> rows),
        ``num_interleaved_pairs`` (pairs built so that their two channel types
        interleave across hyper voxels; others may interleave too),
        ``max_channel_type_id``, ``prune_seed``, ``workers`` and ``seconds``.

    Raises
    ------
    InputError
        On a bad argument, or a non-empty ``out_dir`` without ``overwrite``.
    """
    started = time.perf_counter()
    _check_arguments(num_neurons, synapses_per_neuron, seed, population_units, max_rows_in_memory)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                or workers < 1):
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    num_neurons, seed = int(num_neurons), int(seed)
    grid = _grid_shape(hyper_voxels, num_neurons)  # checked before anything is removed
    out_dir = _prepare_out_dir(out_dir, overwrite)
    plan = _make_plan(out_dir, num_neurons, synapses_per_neuron, seed, grid, gap_junctions,
                      projection, int(population_units))
    with open(out_dir / CONFIG_FILE, "w") as f:
        json.dump(plan.config, f, indent=2)
    (out_dir / "voxels").mkdir(exist_ok=True)

    estimated_total = max(1, int(round(num_neurons * plan.synapses_per_neuron)))
    done = 0

    def report(rows):
        nonlocal done
        done += rows
        if progress is not None:
            # Only the last call has done == total: an estimate that is too low grows.
            progress(done, max(done + 1, estimated_total))

    num_workers = _worker_count(workers, estimated_total, plan.num_files)
    if num_workers == 1:
        result = _generate_rows(plan, np.ones(plan.num_files + 1, dtype=bool), max_rows_in_memory, report)
    else:
        spec = _plan_spec(plan)
        result = _run_workers(spec, num_workers, max(1, max_rows_in_memory // num_workers), report)
    counts = result["counts"]
    num_projection = int(counts[0, plan.projection_index])
    work_log = _write_work_log(plan, {"synapses": counts[0, :-1], "gap_junctions": counts[1, :-1]},
                               num_projection, result["listed"])
    if progress is not None:
        progress(done, done)
    hids = [int(h) for h in plan.file_hids]
    return {
        "network_path": str(out_dir),
        "config_file": str(out_dir / CONFIG_FILE),
        "work_log": str(work_log),
        "voxel_files": {h: str(out_dir / VOXEL_FILE_PATTERN.format(h)) for h in hids},
        "projection_file": str(out_dir / PROJECTION_FILE) if plan.projection else None,
        "num_neurons": num_neurons,
        "num_synapses": int(counts[0, :-1].sum()),
        "num_gap_junctions": int(counts[1, :-1].sum()),
        "num_projection_synapses": num_projection,
        "hyper_voxel_synapses": dict(zip(hids, counts[0, :-1].tolist(), strict=True)),
        "hyper_voxel_gap_junctions": dict(zip(hids, counts[1, :-1].tolist(), strict=True)),
        "num_interleaved_pairs": int(result["interleaved"]),
        "workers": num_workers,
        "max_channel_type_id": int(plan.max_channel_type_id),
        "prune_seed": int(plan.config["random_seed"]["prune"]),
        "seconds": time.perf_counter() - started,
    }


# ----------------------------------------------------------------------------
# Command line


class _ProgressBar:
    """A one-line progress bar on a stream, redrawn at most every 0.2 s."""

    WIDTH = 30

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, done, total):
        now = time.perf_counter()
        final = done >= total
        if not final and now - self.last < 0.2:
            return
        self.last = now
        fraction = min(1.0, done / total) if total else 1.0
        filled = int(round(fraction * self.WIDTH))
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {100 * fraction:5.1f}% "
                          f"{done:,} rows  {rate / 1e6:.2f} M rows/s")
        if final:
            self.stream.write("\n")
        self.stream.flush()


def _grid_argument(text):
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or NX,NY,NZ, got {text!r}") from None
    if len(values) not in (1, 3) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected N or NX,NY,NZ of positive ints, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def _argument_parser():
    parser = argparse.ArgumentParser(
        prog="gpuprune synth",
        description="Write a synthetic Snudda network directory (putative synapses before pruning).")
    parser.add_argument("out_dir", metavar="OUTDIR", help="network directory to write")
    parser.add_argument("--neurons", type=int, default=200, help="number of neurons (default 200)")
    parser.add_argument("--synapses-per-neuron", type=float, default=100,
                        help="mean putative synapses onto each neuron (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--hyper-voxels", type=_grid_argument, default=None, metavar="N|NX,NY,NZ",
                        help="hyper voxel grid (default: grows with --neurons)")
    parser.add_argument("--population-units", type=int, default=3, help="SPN population units (default 3)")
    parser.add_argument("--max-rows-in-memory", type=int, default=2_000_000,
                        help="synapse rows built at once (default 2000000)")
    parser.add_argument("--workers", type=int, default=None,
                        help="writer processes (default: one per core from 2 M rows on)")
    parser.add_argument("--no-gap-junctions", action="store_true", help="write no gap junctions")
    parser.add_argument("--no-projection", action="store_true", help="write no projection-synapse file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing network directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv=None):
    """Run ``gpuprune synth``: parse ``argv``, generate, print a summary.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after ``synth``; default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success.

    Raises
    ------
    InputError
        On a bad argument or an existing non-empty directory without ``--overwrite``.
    """
    args = _argument_parser().parse_args(argv)
    summary = generate_network(
        args.out_dir, num_neurons=args.neurons, synapses_per_neuron=args.synapses_per_neuron, seed=args.seed,
        hyper_voxels=args.hyper_voxels, gap_junctions=not args.no_gap_junctions,
        projection=not args.no_projection, population_units=args.population_units,
        max_rows_in_memory=args.max_rows_in_memory, progress=None if args.quiet else _ProgressBar(),
        overwrite=args.overwrite, workers=args.workers)
    rate = (summary["num_synapses"] + summary["num_projection_synapses"]) / max(summary["seconds"], 1e-9)
    s = summary
    print(f"Wrote {s['network_path']}: {s['num_neurons']:,} neurons, {s['num_synapses']:,} putative "
          f"synapses in {len(s['voxel_files'])} hyper voxel files, {s['num_gap_junctions']:,} gap junctions, "
          f"{s['num_projection_synapses']:,} projection synapses, {s['num_interleaved_pairs']:,} pairs whose "
          f"two channel types interleave across hyper voxels; max_channel_type_id "
          f"{s['max_channel_type_id']}, prune seed {s['prune_seed']}; {s['seconds']:.1f} s "
          f"({rate / 1e6:.2f} M rows/s).")
    return 0
