"""The detect work log: meta data, the neurons Snudda's place writes, per-file counts, ``hyper_voxels``."""

import json
import os

import h5py
import numpy as np

from gpuprune.format import CONFIG_FILE, GAP_JUNCTIONS, SYNAPSES, WORKLOG
from gpuprune.synth.config import HYPER_VOXEL_SIZE, MORPHOLOGY_VARIANTS, NEURON_TYPES, SIMULATION_ORIGO, VOXEL_SIZE
from gpuprune.synth.neurons import NEURON_BLOCK, neuron_attributes
from gpuprune.synth.voxel_files import POSITION_FILE


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
        a = neuron_attributes(plan, start, stop)
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
        origo = plan.origo(hid).tolist()
        parts.append(f'"{hid}": {{"origo": {json.dumps(origo)}, "neurons": {{{", ".join(entries)}}}, '
                     f'"axon_density": [], "neuron_ctr": {count}, "random_seed": {int(seeds[hid])}}}')
    return "{" + ", ".join(parts) + "}"


def _json_entries(ids, value):
    """``"id": value`` for each id, joined (no Python loop per id)."""
    sep = f'": {value}, "'
    return '"' + sep.join(np.asarray(ids).astype(str).tolist()) + f'": {value}'


def write_work_log(plan, counts, num_projection, listed):
    """Write ``log/network-detect-worklog.hdf5``; return its path.

    ``counts`` maps each kind to its rows per hyper voxel file, ``listed`` encodes (file, dest) of
    the dests with rows outside their home hyper voxel (Snudda finds a dest's files by it).
    """
    path = plan.out_dir / WORKLOG
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
        f.create_dataset("completed", data=completed)
        f.create_dataset("num_completed", data=np.array([plan.num_files], dtype=np.float64))
        f.create_dataset("all_hyper_ids", data=plan.file_hids.astype(np.int32))
        for kind in (SYNAPSES, GAP_JUNCTIONS):
            rows = np.zeros(num_grid, dtype=np.int64)
            rows[:plan.num_files] = counts[kind.name][completed_order]
            f.create_dataset(kind.worklog_counts, data=rows)
        f.create_dataset("voxel_overflow_counter", data=np.zeros(num_grid, dtype=np.int64))
        f.create_dataset("hyper_voxels", data=_hyper_voxels_json(plan, listed))
        if plan.projection:
            f.create_dataset("num_projection_synapses", data=num_projection, dtype=int)
    return path
