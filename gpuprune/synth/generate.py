"""The public entry point: :func:`generate_network` checks its arguments, plans, writes, summarises."""

import json
import time
from pathlib import Path

import numpy as np

from gpuprune.errors import InputError
from gpuprune.format import (
    CONFIG_FILE,
    GAP_JUNCTIONS,
    MERGE_INFO_FILE,
    OUTPUT_FILE,
    PROJECTION_FILE,
    SYNAPSES,
    VOXEL_FILE,
    WORKLOG,
)
from gpuprune.synth.config import MAX_NEURONS_FOR_UNIQUE_ID, MIN_NEURONS
from gpuprune.synth.layout import grid_shape, make_plan, plan_spec
from gpuprune.synth.workers import generate_rows, run_workers, worker_count
from gpuprune.synth.worklog import write_work_log

# Files that Snudda's prune leaves behind; they would be stale after regenerating.
STALE_PRUNE_OUTPUTS = (OUTPUT_FILE, MERGE_INFO_FILE)


def _prepare_out_dir(out_dir, overwrite):
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a directory", out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise InputError("directory exists and is not empty (use overwrite=True / --overwrite)", out_dir)
        # Remove only what this generator (or a Snudda prune of its output) wrote.
        stale = [out_dir / CONFIG_FILE, out_dir / WORKLOG, out_dir / PROJECTION_FILE]
        stale += [out_dir / name for name in STALE_PRUNE_OUTPUTS]
        stale += list(out_dir.glob(VOXEL_FILE.format("*")))
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
    grid = grid_shape(hyper_voxels, num_neurons)  # checked before anything is removed
    out_dir = _prepare_out_dir(out_dir, overwrite)
    plan = make_plan(out_dir, num_neurons, synapses_per_neuron, seed, grid, gap_junctions,
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

    num_workers = worker_count(workers, estimated_total, plan.num_files)
    if num_workers == 1:
        result = generate_rows(plan, np.ones(plan.num_files + 1, dtype=bool), max_rows_in_memory, report)
    else:
        spec = plan_spec(plan)
        result = run_workers(spec, num_workers, max(1, max_rows_in_memory // num_workers), report)
    counts = result["counts"]
    num_projection = int(counts[0, plan.projection_index])
    work_log = write_work_log(plan, {SYNAPSES.name: counts[0, :-1], GAP_JUNCTIONS.name: counts[1, :-1]},
                              num_projection, result["listed"])
    if progress is not None:
        progress(done, done)
    hids = [int(h) for h in plan.file_hids]
    return {
        "network_path": str(out_dir),
        "config_file": str(out_dir / CONFIG_FILE),
        "work_log": str(work_log),
        "voxel_files": {h: str(out_dir / VOXEL_FILE.format(h)) for h in hids},
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
