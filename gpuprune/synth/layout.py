"""The plan of a network: everything fixed before rows are drawn.

:func:`make_plan` is a pure function of the arguments of :func:`gpuprune.synth.generate_network`:
the config, the hyper voxel grid (which positions are empty, axon-only, populated, and their
neighbours), the per-pathway channel and probability tables, and each neuron's type, home hyper
voxel and distance bound.  Worker processes rebuild it from :func:`plan_spec`.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpuprune.errors import InputError
from gpuprune.format import PROJECTION_HID
from gpuprune.synth.config import (
    DENDRITE_SECTIONS,
    GAP_JUNCTIONS_PER_PAIR_MAX,
    HYPER_VOXEL_SIZE,
    MAX_HYPER_VOXELS,
    NEURON_TYPES,
    P_BOTH_CHANNELS,
    P_SPLIT,
    P_SPLIT_TWO_CHANNELS,
    PARTNER_WEIGHTS,
    ROWS_PER_GROUP_CUTOFF,
    ROWS_PER_GROUP_EXPONENT,
    ROWS_PER_GROUP_MAX,
    SIMULATION_ORIGO,
    VOXEL_SIZE,
    connectivity_distributions,
    count_types,
    network_config,
)
from gpuprune.synth.neurons import index_neurons
from gpuprune.synth.streams import STREAM_LAYOUT, RandomStreams, group_sizes_table


@dataclass
class Plan:
    """Everything fixed before rows are drawn; the same in every worker process.

    File indices ``0 .. num_files - 1`` are the hyper voxel files (``file_hids``), index
    ``num_files`` (:attr:`projection_index`) the projection file.
    """

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
    streams: RandomStreams = None
    layout_rng: np.random.Generator = None

    @property
    def num_files(self):
        return len(self.file_hids)

    @property
    def projection_index(self):
        """File index used for the projection file."""
        return len(self.file_hids)

    def origo(self, hid):
        """The corner of hyper voxel ``hid``, as Snudda's prune recomputes it to check the stored one."""
        xyz = np.array(np.unravel_index(hid, self.grid))
        return np.array(SIMULATION_ORIGO) + self.hyper_voxel_width * xyz


def grid_shape(hyper_voxels, num_neurons):
    """The hyper voxel grid ``(nx, ny, nz)`` for the ``hyper_voxels`` argument of generate_network."""
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
    plan.group_sizes, mean_group = group_sizes_table(
        ROWS_PER_GROUP_MAX, ROWS_PER_GROUP_EXPONENT, ROWS_PER_GROUP_CUTOFF)
    plan.gap_junction_sizes, _ = group_sizes_table(GAP_JUNCTIONS_PER_PAIR_MAX, 2.0, 4.0)
    # Expected channel types per slot for each post type, to aim at synapses_per_neuron rows.
    types_per_pair = np.where(plan.channel_second >= 0, 1 + P_BOTH_CHANNELS, 1.0)
    mean_types = np.zeros(len(NEURON_TYPES))
    for post in range(len(NEURON_TYPES)):
        for pre in range(len(NEURON_TYPES)):
            if weights[post, pre] > 0:
                mean_types[post] += weights[post, pre] * types_per_pair[plan.pathway[pre, post]]
    plan.mean_slots = plan.synapses_per_neuron / (mean_group * mean_types)


def make_plan(out_dir, num_neurons, synapses_per_neuron, seed, hyper_voxels, gap_junctions, projection,
              population_units):
    """The plan of the network :func:`gpuprune.synth.generate_network` writes for these (checked) arguments."""
    type_counts = count_types(num_neurons)
    config = network_config(out_dir, seed, type_counts)
    distributions, channels, max_channel = connectivity_distributions(config)
    plan = Plan(out_dir=out_dir, num_neurons=num_neurons, synapses_per_neuron=float(synapses_per_neuron),
                seed=seed, grid=grid_shape(hyper_voxels, num_neurons), gap_junctions=gap_junctions,
                projection=projection, population_units=population_units, config=config,
                config_json=json.dumps(config), distributions=distributions,
                max_channel_type_id=max_channel)
    plan.type_counts = type_counts
    plan.type_start = np.concatenate([[0], np.cumsum(type_counts)[:-1]]).astype(np.int64)
    plan.hyper_voxel_width = VOXEL_SIZE * np.int64(HYPER_VOXEL_SIZE)
    plan.sections = np.array(DENDRITE_SECTIONS, dtype=np.int64)
    plan.streams = RandomStreams(seed)
    layout_seed = np.random.SeedSequence(seed, spawn_key=(STREAM_LAYOUT,))
    plan.layout_rng = np.random.Generator(np.random.PCG64(layout_seed))
    _layout_hyper_voxels(plan)
    _pathway_tables(plan, channels)
    _partner_tables(plan)
    index_neurons(plan)
    return plan


def plan_spec(plan):
    """Arguments that rebuild the same plan in a worker process."""
    return {"out_dir": plan.out_dir, "num_neurons": plan.num_neurons,
            "synapses_per_neuron": plan.synapses_per_neuron, "seed": plan.seed, "hyper_voxels": plan.grid,
            "gap_junctions": plan.gap_junctions, "projection": plan.projection,
            "population_units": plan.population_units}
