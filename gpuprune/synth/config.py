"""What a generated network is made of: geometry, neuron types, pathways and the network config.

The numbers follow Snudda's striatum configs; :func:`network_config` writes them as the
``network-config.json`` Snudda reads, and :func:`connectivity_distributions` derives what detect
stores in its work log (channel model ids, lognormal conductance parameters).
"""

import json
import math

import numpy as np

from gpuprune.format import GAP_JUNCTION_CHANNEL

# Geometry, as Snudda's detect uses by default.
VOXEL_SIZE = 3e-6  # metres
HYPER_VOXEL_SIZE = 100  # voxels per side of a hyper voxel
SIMULATION_ORIGO = (0.0031, 0.0042, 0.0057)  # metres
# Channel model ids: gap junctions get format.GAP_JUNCTION_CHANNEL; detect numbers the other channels from
# 10 in config order.
FIRST_CHANNEL_MODEL_ID = 10
MAX_NEURONS_FOR_UNIQUE_ID = 500_000_000  # unique ids must fit int64
MAX_HYPER_VOXELS = 1000

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

SPN_DISTANCE = "1-exp(-(0.4*d/60e-6)**2)"
FS_DISTANCE = "exp(-(0.5*d/60e-6)**2)"
RELATIVE_DISTANCE = "1-exp(-(3*r)**2)"
PROJECTION_KEY = "dSPN,['FS', 'LTS']"


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


def network_config(out_dir, seed, type_counts):
    """The ``network-config.json`` of the network: seeds, volume, pathways and neuron definitions."""
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


def connectivity_distributions(config):
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


def count_types(num_neurons):
    """Neurons of each type, in NEURON_TYPES order."""
    counts = np.zeros(len(NEURON_TYPES), dtype=np.int64)
    for t, fraction in INTERNEURON_FRACTION.items():
        counts[t] = max(INTERNEURON_MINIMUM[t], round(fraction * num_neurons))
    rest = num_neurons - counts.sum()
    counts[DSPN] = rest - rest // 2
    counts[ISPN] = rest // 2
    return counts
