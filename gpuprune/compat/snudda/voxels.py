"""SnuddaPrune's hyper voxel files: opening and checking them, and Snudda's lookup iterators.

The check that a hyper voxel file belongs to the work log's detect run is io's
(:func:`gpuprune.io.worklog.check_voxel_meta`); this module adds Snudda's overflow counting.  The
iterators are defined per row by Snudda's API; they read their tables in chunks.
"""

import json
import os

import h5py
import numpy as np

from gpuprune.errors import InputError
from gpuprune.format import VOXEL_FILE
from gpuprune.io.hdf5 import _read, _to_str, open_h5
from gpuprune.io.worklog import check_voxel_meta


def lookup_rows(lookup, uid_lo=None, uid_hi=None, chunk_size=10000):
    """Yield the rows ``(unique_id, start, end)`` of a lookup table, or those with uid in [uid_lo, uid_hi)."""
    n = lookup.shape[0]
    step = max(1, min(int(chunk_size), n)) if n else 1
    for s in range(0, n, step):
        block = np.asarray(lookup[s:s + step])
        if uid_lo is not None:
            uid = block[:, 0]
            block = block[(uid >= uid_lo) & (uid < uid_hi)]
        yield from block


def row_sets(runs, matrix, chunk_size=10000):
    """Yield ``(rows, unique_id)`` for each lookup run, reading the matrix through a buffer."""
    n = matrix.shape[0]
    chunk_size = max(1, int(chunk_size))
    buf, b0, b1 = None, 0, 0
    for run in runs:
        uid, start, end = (int(x) for x in run[:3])
        if not 0 <= start <= end <= n:
            raise InputError(f"lookup run {start}..{end} lies outside the {n} rows of "
                             f"{getattr(matrix, 'name', 'the matrix')}")
        if buf is None or start < b0 or end > b1:
            b0, b1 = start, min(n, max(end, start + chunk_size))
            buf = np.asarray(matrix[b0:b1])
        yield buf[start - b0:end - b0].copy(), uid


class HyperVoxels:
    """SnuddaPrune's hyper voxel methods (a mixin: needs the work log read by ``open_work_history_file``)."""

    def check_hyper_voxel_integrity(self, hypervoxel_file, hypervoxel_file_name, verbose=False):
        """Check a hyper voxel file against the work log; count voxel overflows.

        Parameters
        ----------
        hypervoxel_file : h5py.File
            The open hyper voxel file.
        hypervoxel_file_name : str
            Its name, for messages.
        verbose : bool
            Log the check.

        Notes
        -----
        Compares voxel size, hyper voxel size, simulation origo, config and
        position file, SLURM id and the hyper voxel origo; a mismatch raises
        :class:`gpuprune.InputError` (Snudda asserts).  A positive
        ``meta/voxel_overflow_counter`` is added to ``voxel_overflow_counter``
        and logged as an error.
        """
        name = _to_str(hypervoxel_file_name)
        if verbose:
            self.write_log(f"Checking that {name} matches circuit settings")
        hid = int(_read(hypervoxel_file, "meta/hyper_voxel_id", name))
        check_voxel_meta(self._worklog, hypervoxel_file, name, hid)
        key = "meta/voxel_overflow_counter"
        overflow = int(hypervoxel_file[key][()]) if key in hypervoxel_file else 0
        if overflow > 0:
            self.voxel_overflow_counter += overflow
            self.overflow_files.append(name)
            self.write_log(f"Overflow of {overflow} in {name}", is_error=True)

    def open_hyper_voxel(self, hyper_voxel_id, verbose=False, verify=True):
        """Open a hyper voxel file read-only (``voxels/network-putative-synapses-<id>.hdf5``).

        Parameters
        ----------
        hyper_voxel_id : int
        verbose : bool
        verify : bool
            Check it with :meth:`check_hyper_voxel_integrity`.

        Returns
        -------
        h5py.File
        """
        if verbose:
            self.write_log(f"Reading hypervoxel {hyper_voxel_id}")
        name = os.path.join(self.network_path, VOXEL_FILE.format(hyper_voxel_id))
        h_file = open_h5(name)
        if verify:
            try:
                self.check_hyper_voxel_integrity(h_file, name, verbose=verbose)
            except BaseException:
                h_file.close()
                raise
        return h_file

    def get_hyper_voxel_list(self, neuron_range):
        """Ids of the hyper voxels holding any part of a neuron in ``[neuron_range[0], neuron_range[1])``."""
        lo, hi = int(neuron_range[0]), int(neuron_range[1])
        hyper_voxels = json.loads(self.hist_file["hyper_voxels"][()])
        return [int(hid) for hid, data in hyper_voxels.items()
                if any(lo <= int(n) < hi for n in data["neurons"])]

    # -- iterators ---------------------------------------------------------------------------------

    @staticmethod
    def file_row_lookup_iterator(h5mat, chunk_size=10000):
        """Iterate over the rows of a matrix (e.g. a lookup table), reading ``chunk_size`` rows at a time."""
        return lookup_rows(h5mat, chunk_size=chunk_size)

    def file_row_lookup_iterator_subset(self, h5mat_lookup, min_dest_id, max_dest_id, chunk_size=10000):
        """Iterate over the lookup rows whose runs end on dest neurons ``min_dest_id`` .. ``max_dest_id``.

        Parameters
        ----------
        h5mat_lookup : h5py.Dataset or ndarray
            Lookup table ``(unique_id, start_row, end_row)``.
        min_dest_id, max_dest_id : int
            Dest range.  As in Snudda 3.0's code (not its docstring), the upper
            end is exclusive: unique ids in ``[min, max) * num_neurons * max_channel_type``.
        chunk_size : int
            Lookup rows read at a time.

        Notes
        -----
        ``max_channel_type`` comes from the hyper voxel files (read when
        merging), else from the lookup's own file.
        """
        num_neurons = np.int64(self._worklog.num_neurons)
        mct = self.max_channel_type
        if mct is None and isinstance(h5mat_lookup, h5py.Dataset) \
                and "network/max_channel_type_id" in h5mat_lookup.file:
            mct = int(h5mat_lookup.file["network/max_channel_type_id"][()])
        if mct is None:
            raise InputError("max_channel_type is unknown: merge first or pass a lookup dataset of a hyper "
                             "voxel file")
        lo = np.int64(min_dest_id) * num_neurons * np.int64(mct)
        hi = np.int64(max_dest_id) * num_neurons * np.int64(mct)
        self.write_log(f"min_unique_id: {lo}, max_unique_id: {hi}")
        return lookup_rows(h5mat_lookup, lo, hi, chunk_size)

    @staticmethod
    def synapse_set_iterator(h5mat_lookup, h5mat, chunk_size=10000, lookup_iterator=None):
        """Iterate over the lookup runs of a matrix: yields ``(rows, unique_id)``, one pair per run.

        Parameters
        ----------
        h5mat_lookup : h5py.Dataset or ndarray
            Lookup table (used when ``lookup_iterator`` is None).
        h5mat : h5py.Dataset or ndarray
            The synapse (or gap junction) matrix.
        chunk_size : int
            Matrix rows read at a time.
        lookup_iterator : iterator, optional
            Lookup rows to visit, e.g. from :meth:`file_row_lookup_iterator_subset`.
        """
        runs = lookup_iterator if lookup_iterator else lookup_rows(h5mat_lookup, chunk_size=chunk_size)
        return row_sets(runs, h5mat, chunk_size)
