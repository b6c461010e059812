"""The hyper voxel files and the projection file: row matrices and lookups that grow by appending.

Their layout (dataset names, widths, chunking, lzf) is Snudda's (:mod:`gpuprune.format`); the
meta data is what Snudda's detect writes and its prune checks.
"""

import h5py
import numpy as np

from gpuprune.format import (
    CHUNK_ROWS,
    COMPRESSION,
    CONFIG_FILE,
    COUNT,
    GAP_JUNCTIONS,
    PROJECTION_FILE,
    SYNAPSES,
    VOXEL_FILE,
)
from gpuprune.synth.config import HYPER_VOXEL_SIZE, SIMULATION_ORIGO, VOXEL_SIZE
from gpuprune.synth.rows import lookup_runs

POSITION_FILE = "network-neuron-positions.hdf5"  # named in the meta data; Snudda's prune never opens it
CHUNK_CACHE_BYTES = CHUNK_ROWS * SYNAPSES.width * 4 * 3 // 2  # one synapse chunk and then some


class _RowFile:
    """An HDF5 file whose row matrices and lookup tables (of the given kinds) grow by appending."""

    def __init__(self, path, kinds):
        # The chunk cache must hold a dataset's partly filled last chunk (else it is
        # compressed, written and read back); more costs memory in every open file.
        self.file = h5py.File(path, "w", libver="latest", rdcc_nbytes=CHUNK_CACHE_BYTES)
        self.file.create_group("network")
        self.rows, self.lookups, self.counts = {}, {}, {}
        for kind in kinds:
            self.rows[kind.name] = self.file.create_dataset(
                kind.matrix, shape=(0, kind.width), maxshape=(None, kind.width), dtype=np.int32,
                chunks=(CHUNK_ROWS, kind.width), compression=COMPRESSION)
            # Snudda writes lookups contiguous and uncompressed; chunked here so that they can grow.
            self.lookups[kind.name] = self.file.create_dataset(kind.lookup, shape=(0, 3), maxshape=(None, 3),
                                                               dtype=np.int64, chunks=(CHUNK_ROWS, 3))
            self.counts[kind.name] = 0

    def append(self, kind, rows, lookup):
        if len(rows) == 0:
            return
        lookup = lookup.copy()
        lookup[:, 1:] += self.counts[kind.name]
        _append(self.rows[kind.name], rows)
        _append(self.lookups[kind.name], lookup)
        self.counts[kind.name] += len(rows)

    def close(self):
        self.file.close()


def _append(dataset, values):
    n = dataset.shape[0]
    dataset.resize(n + len(values), axis=0)
    dataset[n:] = values


def _write_voxel_meta(f, plan, hid):
    f.create_dataset("config", data=plan.config_json)
    meta = f.create_group("meta")
    meta.create_dataset("hyper_voxel_id", data=np.int64(hid))
    meta.create_dataset("hyper_voxel_origo", data=plan.origo(hid))
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


class OwnedFiles:
    """The files one process owns, open for appending; a context manager that closes them all.

    File index ``f < plan.num_files`` is the hyper voxel file of ``plan.file_hids[f]``; index
    ``plan.num_files`` is the projection file.
    """

    def __init__(self, plan, owned):
        self.plan = plan
        self.writers = {}
        try:
            for f in np.flatnonzero(owned[:plan.num_files]):
                hid = int(plan.file_hids[f])
                w = self.writers[int(f)] = _RowFile(plan.out_dir / VOXEL_FILE.format(hid), (SYNAPSES, GAP_JUNCTIONS))
                _write_voxel_meta(w.file, plan, hid)
                w.file.create_dataset("network/max_channel_type_id", data=plan.max_channel_type_id, dtype=int)
            if plan.projection and owned[plan.projection_index]:
                w = self.writers[plan.projection_index] = _RowFile(plan.out_dir / PROJECTION_FILE, (SYNAPSES,))
                w.file.create_dataset("config", data=plan.config_json)
                w.file.create_dataset("network/max_channel_type_id", data=plan.max_channel_type_id, dtype=int)
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for w in self.writers.values():
            w.close()

    def write(self, kind, rows, file_index, keys, channel):
        """Append rows sorted by file, and their lookup runs, to the files they lie in."""
        if len(rows) == 0:
            return
        plan = self.plan
        run_file, lookup = lookup_runs(file_index, keys, channel, plan.max_channel_type_id)
        row_bounds = np.searchsorted(file_index, np.arange(plan.num_files + 2))
        run_bounds = np.searchsorted(run_file, np.arange(plan.num_files + 2))
        for f in np.unique(run_file):  # one loop per file touched
            a, b = row_bounds[f], row_bounds[f + 1]
            runs = lookup[run_bounds[f]:run_bounds[f + 1]]
            runs[:, 1:] -= a
            self.writers[int(f)].append(kind, rows[a:b], runs)

    def finish(self, targets):
        """Write the projection file's counts and targets; return the rows per kind and file index.

        ``counts[0]`` and ``counts[1]`` hold the synapse and gap junction rows of each file index.
        """
        plan = self.plan
        counts = np.zeros((2, plan.num_files + 1), dtype=np.int64)
        for f, w in self.writers.items():
            counts[0, f] = w.counts[SYNAPSES.name]
            counts[1, f] = w.counts.get(GAP_JUNCTIONS.name, 0)
        if plan.projection_index in self.writers:
            proj = self.writers[plan.projection_index].file
            proj.create_dataset(COUNT[SYNAPSES.name], data=counts[0, plan.projection_index], dtype=int)
            proj.create_dataset("network/num_neurons", data=plan.num_neurons, dtype=int)
            proj.create_dataset("network/all_target_id", data=targets.astype(np.int32))
        return counts
