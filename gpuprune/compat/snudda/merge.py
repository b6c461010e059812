"""SnuddaPrune's merge files: every row onto a range of dest neurons, in Snudda's merge order.

A merge file (``SCRATCH/<kind>-for-neurons-<lo>-to-<hi>-MERGE-ME.hdf5``) gathers the rows of
every hyper voxel file (and the projection file) onto its dest range in the order of Snudda's heap
merge (lookup runs by unique id, then hyper voxel id), with Snudda's layout
(:func:`gpuprune.io.layout.create_merge_file`), so that Snudda itself can read it.  The rows are
read through io's planner and reader, one block of dest neurons at a time, and ordered by one sort
of their lookup runs (:func:`gpuprune.engine.merge_order`): no Python loop per row.
"""

import os
import time

import numpy as np

from gpuprune import engine, plan
from gpuprune.compat.snudda.workers import clean_up_workers, worker_call, worker_spec
from gpuprune.errors import InputError
from gpuprune.format import KINDS, MERGE_FILE
from gpuprune.io.layout import create_merge_file
from gpuprune.io.reader import close_files, read_chunk

#: Rows read and merged at a time when writing a merge file.
MERGE_BLOCK_ROWS = 1_000_000
#: Names Snudda's documentation uses for the kinds.
_ALIASES = {"gapJunctions": "gap_junctions", "gap_junction": "gap_junctions", "synapse": "synapses"}


def kind_of(merge_data_type):
    """The :class:`gpuprune.format.Kind` for Snudda's ``merge_data_type`` ("synapses" or "gap_junctions")."""
    name = _ALIASES.get(merge_data_type, merge_data_type)
    if name not in KINDS:
        raise InputError(f"unknown merge_data_type {merge_data_type!r}; use 'synapses' or 'gap_junctions'")
    return KINDS[name]


def range_chunks(network, kind_name, lo, hi, row_budget=MERGE_BLOCK_ROWS):
    """Cut dest neurons ``[lo, hi)`` into chunks of at most ``row_budget`` rows (one dest may exceed it).

    Returns
    -------
    list of plan.Chunk
        Non-empty chunks in dest order, each with its slice of every source file.
    """
    lo, hi = max(0, int(lo)), min(int(hi), network.num_neurons)
    if hi <= lo:
        return []
    return plan.ranges(network.sources[kind_name], network.rows_per_dest(kind_name)[lo:hi], lo, row_budget)


def merged_rows(network, kind_name, chunk):
    """Read one chunk and return its rows in Snudda's merge order.

    Snudda merges the lookup runs of all files with a heap keyed by
    (unique_id, hyper voxel id), the projection file counting as -1; the
    engine's merge order reproduces that with one sort of the runs.
    """
    files = network.spec()["files"][kind_name]
    rows, runs = read_chunk(files, KINDS[kind_name], chunk, with_lookup=True)
    order = engine.merge_order(runs)
    if order.size != rows.shape[0]:
        raise InputError(f"{kind_name} lookup runs of dest neurons {chunk.dest_lo}..{chunk.dest_hi - 1} "
                         f"cover {order.size} rows but the files hold {rows.shape[0]}")
    if order.size and not np.array_equal(order, np.arange(order.size)):
        rows = rows[order]
    return rows


def files_in_chunks(chunks):
    """Indices (into the kind's ``network.sources``) of the files that hold rows of ``chunks``."""
    return sorted({s[0] for c in chunks for s in c.slices})


def write_rows(dataset, start, rows):
    """Write ``rows`` at ``start``, growing the dataset if it is too short and growable."""
    end = start + rows.shape[0]
    if end > dataset.shape[0]:
        if dataset.maxshape[0] is not None and dataset.maxshape[0] < end:
            raise InputError(f"{dataset.name} holds at most {dataset.maxshape[0]} rows; cannot write "
                             f"rows {start}..{end - 1}", dataset.file.filename)
        dataset.resize((end, dataset.shape[1]))
    if rows.shape[0]:
        dataset[start:end] = rows
    return end


def trim_rows(dataset, num):
    """Resize a row dataset to ``num`` rows."""
    dataset.resize((int(num), dataset.shape[1]))


class MergeFiles:
    """SnuddaPrune's merge methods (a mixin: needs the work log, ``network``, ``scratch_path``, ``write_log``)."""

    def setup_merge_file(self, big_cache=False, outfile_name=None, save_morphologies=False, num_synapses=None,
                         num_gap_junctions=None, delete_after=True):
        """Create a merge file with Snudda's layout.

        Parameters
        ----------
        big_cache : bool
            Use a larger HDF5 chunk cache.
        outfile_name : str, optional
            Default ``NETWORK/network-putative-synapses-MERGED.hdf5``.
        save_morphologies : bool
            Not supported (as in Snudda 3.0); True raises ValueError.
        num_synapses, num_gap_junctions : int, optional
            Rows to allocate (default: all putative rows of the network);
            datasets are trimmed by the flush of :meth:`buffer_merge_write`.
        delete_after : bool
            Add the file to ``temp_file_list`` (removed by :meth:`clean_up_merge_files`).

        Returns
        -------
        (h5py.File, str)
            The open file and its name.
        """
        if save_morphologies:
            raise ValueError("setup_merge_file: save_morphologies is not supported")
        if outfile_name is None:
            outfile_name = os.path.join(self.network_path, "network-putative-synapses-MERGED.hdf5")
        if delete_after:
            self.temp_file_list.append(outfile_name)
        self.write_log(f"Setting up out file {outfile_name}")
        num_syn = self.num_synapses_total if num_synapses is None else num_synapses
        num_gj = self.num_gap_junctions_total if num_gap_junctions is None else num_gap_junctions
        out = create_merge_file(outfile_name, self.hist_file, {"synapses": num_syn, "gap_junctions": num_gj},
                                libver=self.h5libver, driver=self.h5driver, big_cache=big_cache,
                                chunk_rows=self.synapse_chunk_size, compression=self.h5compression)
        self.next_file_write_pos = 0
        return out, outfile_name

    def buffer_merge_write(self, synapse_matrix_loc, synapses=None, flush=False):
        """Buffer rows and write them to ``buffer_out_file`` in large batches.

        Parameters
        ----------
        synapse_matrix_loc : str
            Dataset to write to, e.g. ``"network/synapses"``.
        synapses : ndarray, optional
            Rows to append.
        flush : bool
            Write what is buffered and trim the dataset to the rows written
            (needed after the last call).

        Notes
        -----
        Blocks larger than the buffer are written directly; a flush with
        nothing buffered only trims (Snudda asserts there).
        """
        dataset = self.buffer_out_file[synapse_matrix_loc]

        def spill():
            if self.synapse_write_buffer is not None and self.next_buffer_write_pos:
                self.next_file_write_pos = write_rows(
                    dataset, self.next_file_write_pos, self.synapse_write_buffer[:self.next_buffer_write_pos])
            self.next_buffer_write_pos = 0

        if synapses is not None:
            synapses = np.asarray(synapses)
            if self.synapse_write_buffer is None:
                width = synapses.shape[1]
                self.synapse_write_buffer = np.zeros((self.synapse_buffer_size, width), dtype=np.int32)
                self.next_buffer_write_pos = 0
            if synapses.shape[0] + self.next_buffer_write_pos >= self.synapse_buffer_size:
                spill()
            if synapses.shape[0] >= self.synapse_buffer_size:
                self.next_file_write_pos = write_rows(dataset, self.next_file_write_pos, synapses)
            else:
                end = self.next_buffer_write_pos + synapses.shape[0]
                self.synapse_write_buffer[self.next_buffer_write_pos:end] = synapses
                self.next_buffer_write_pos = end
        if flush:
            self.write_log(f"Flushing {self.buffer_out_file.filename} data: {synapse_matrix_loc}")
            spill()
            trim_rows(dataset, self.next_file_write_pos)
            self.write_log(f"{synapse_matrix_loc} new size {dataset.shape}")
            self.synapse_write_buffer = None

    def big_merge_helper(self, neuron_range, merge_data_type):
        """Gather the rows onto dest neurons ``[neuron_range[0], neuron_range[1])`` into one merge file.

        The rows of every hyper voxel file (and the projection file) are put in
        Snudda's merge order and written, block by block, to
        ``SCRATCH/<merge_data_type>-for-neurons-<lo>-to-<hi>-MERGE-ME.hdf5``
        with Snudda's layout.

        Parameters
        ----------
        neuron_range : sequence of int
            ``(lo, hi)``, hi exclusive.
        merge_data_type : {"synapses", "gap_junctions"}

        Returns
        -------
        (str or None, neuron_range, int)
            The merge file (None when the range has no rows; Snudda then still
            creates an empty file), the range, and the number of rows.
        """
        kind = kind_of(merge_data_type)
        lo, hi = int(neuron_range[0]), int(neuron_range[1])
        self.write_log(f"big_merge_helper ({kind.name}): neuron_range = {neuron_range}")
        self.merge_data_type = kind.name
        net = self.network
        chunks = range_chunks(net, kind.name, lo, hi)
        num = sum(c.num_rows for c in chunks)
        if num == 0:
            self.clean_up_merge_read_buffers()
            return None, neuron_range, 0
        voxel_counters = self._check_merge_sources(chunks) if kind.name == "synapses" else {}
        name = os.path.join(self.scratch_path, MERGE_FILE.format(kind=kind.name, lo=lo, hi=hi))
        total = net.num_rows(kind.name)
        self.buffer_out_file, _ = self.setup_merge_file(
            big_cache=True, outfile_name=name, num_synapses=total if kind.name == "synapses" else 0,
            num_gap_junctions=total if kind.name == "gap_junctions" else 0)
        try:
            if kind.name == "synapses":
                for key, value in voxel_counters.items():
                    if value > 0:
                        self.buffer_out_file["meta"].create_dataset(key, data=value)
            for chunk in chunks:  # one block of dest neurons at a time
                self.buffer_merge_write(kind.matrix, merged_rows(net, kind.name, chunk))
            self.buffer_merge_write(kind.matrix, flush=True)
        finally:
            self.buffer_out_file.close()
            self.buffer_out_file = None
            self.clean_up_merge_read_buffers()
        self.write_log(f"Read {num} out of total {total} {kind.name}", force_print=True)
        return name, neuron_range, num

    def _check_merge_sources(self, chunks):
        """Check the hyper voxel files a merge reads (as Snudda does for synapses); their voxel counters."""
        counters = {"max_axon_voxel_ctr": 0, "max_dend_voxel_ctr": 0}
        sources = self.network.sources["synapses"]
        for i in files_in_chunks(chunks):
            if sources[i].hid < 0:  # the projection file has no hyper voxel meta
                continue
            with self.open_hyper_voxel(sources[i].hid, verbose=self.verbose) as h_file:
                for key in counters:
                    if f"meta/{key}" in h_file:
                        value = h_file[f"meta/{key}"][()]  # keeps the file's integer type, as Snudda does
                        counters[key] = value if value > counters[key] else counters[key]
        return counters

    def gather_neuron_synapses(self):
        """Write the merge files of all neurons: one range in serial, one range per engine in parallel.

        Returns
        -------
        tuple
            ``(merge_files_syn, merge_neuron_range_syn, merge_syn_ctr,
            merge_files_gj, merge_neuron_range_gj, merge_gj_ctr)``, ranges in order.
        """
        if self.role != "master":
            self.write_log("gather_neuron_synapses is only run on master node, aborting")
            return None
        start = time.perf_counter()
        num_neurons = self._worklog.num_neurons
        executor = self._executor()
        if executor is None:
            whole = np.array([0, num_neurons], dtype=np.int64)
            results = {k: [self.big_merge_helper(whole, k)] for k in ("synapses", "gap_junctions")}
        else:
            self.setup_parallel(d_view=self.d_view)
            borders = np.linspace(0, num_neurons, len(self.d_view) + 1).astype(int)
            ranges = [np.array(r, dtype=np.int64) for r in zip(borders[:-1], borders[1:], strict=True)]
            spec = worker_spec(self)
            futures = {k: [executor.submit(worker_call, spec, "big_merge_helper", (r, k)) for r in ranges]
                       for k in ("synapses", "gap_junctions")}
            results = {k: [f.result() for f in v] for k, v in futures.items()}
        out = []
        for k in ("synapses", "gap_junctions"):
            res = sorted(results[k], key=lambda x: int(x[1][0]))
            out += [[x[0] for x in res], [x[1] for x in res], [int(x[2]) for x in res]]
        self.write_log(f"gather_neuron_synapses took {time.perf_counter() - start:.1f} s")
        return tuple(out)

    def clean_up_merge_read_buffers(self):
        """Close the input files held open for merging and drop the read buffers."""
        self.merge_data_type = None
        for f in self.file_list.values() if isinstance(self.file_list, dict) else self.file_list or []:
            if f is not None:
                f.close()
        self.file_list, self.file_buffers = [], None
        self.next_file_read_pos = self.next_buffer_read_pos = None
        close_files()

    def clean_up_merge_files(self):
        """Remove the files listed in ``temp_file_list`` (and ask the engines to do the same)."""
        if self.role == "master" and self.d_view is not None:
            self.d_view.apply_sync(clean_up_workers)
        if not self.temp_file_list:
            self.temp_file_list = []
            return
        self.write_log("Cleaning up old merge files")
        for name in self.temp_file_list:
            try:
                if os.path.exists(name):
                    os.remove(name)
            except OSError as exc:
                self.write_log(f"Removing {name} failed: {exc}")
        self.temp_file_list = []
