"""SnuddaPrune's output: pruning merge files block by block into ``network-synapses.hdf5``.

The output file gets io's layout (:func:`gpuprune.io.layout.create_output`, the layout
``gpuprune.prune`` writes too), starting, as Snudda's does, with one chunk of rows.  Each block of
merged rows is pruned by the engine (:func:`gpuprune.compat.snudda.blocks.prune_block`) and its
kept rows are appended after the rows already counted in ``network/num_*``.
"""

import os
import time

import h5py
import numpy as np

from gpuprune.compat.snudda.blocks import PRUNE_BLOCK_ROWS, block_ranges, prune_block
from gpuprune.compat.snudda.merge import kind_of, trim_rows, write_rows
from gpuprune.compat.snudda.workers import worker_call, worker_spec
from gpuprune.errors import InputError
from gpuprune.format import COUNT, KINDS, OUTPUT_FILE
from gpuprune.io.hdf5 import open_h5
from gpuprune.io.layout import create_output, write_counts

#: Rows copied at a time by :func:`copy_rows`.
COPY_BLOCK_ROWS = 1_000_000


def append_rows(out, kind, rows):
    """Append rows after the ``network/num_*`` rows of an output file, update the count; return it."""
    count = out[COUNT[kind.name]]
    start = int(count[()])
    end = write_rows(out[kind.matrix], start, rows)
    trim_rows(out[kind.matrix], end)
    count[()] = end
    return end


def copy_rows(source_paths, out, kind, block=COPY_BLOCK_ROWS):
    """Concatenate the row datasets of several files into ``out`` (from row 0); return the total."""
    sources = [open_h5(p) for p in source_paths]
    try:
        widths = {f[kind.matrix].shape[1] for f in sources}
        if len(widths) > 1:
            raise InputError(f"{kind.matrix} has different widths ({sorted(widths)}) in "
                             f"{', '.join(source_paths)}")
        total = sum(f[kind.matrix].shape[0] for f in sources)
        target = out[kind.matrix]
        target.resize((total, widths.pop() if widths else kind.width))
        pos = 0
        for f in sources:
            ds = f[kind.matrix]
            for s in range(0, ds.shape[0], block):
                rows = ds[s:s + block]
                target[pos:pos + rows.shape[0]] = rows
                pos += rows.shape[0]
        out[COUNT[kind.name]][()] = total
        return total
    finally:
        for f in sources:
            f.close()


class PruneFiles:
    """SnuddaPrune's pruning and output methods (a mixin: needs the config, the rules and ``write_log``)."""

    def setup_output_file(self, output_file=None, save_morphologies=False):
        """Create the output file (default ``NETWORK/network-synapses.hdf5``) with Snudda's layout.

        Parameters
        ----------
        output_file : str or h5py.File, optional
            A name, or an open file to fill.  A file that already has
            ``config`` is used as it is (Snudda 3.0 then forgets to set ``out_file``).
        save_morphologies : bool
            Not supported (as in Snudda 3.0); True raises ValueError.

        Notes
        -----
        Does nothing if ``out_file`` is already set.
        """
        if save_morphologies:
            raise ValueError("setup_output_file: save_morphologies is not supported")
        if self.out_file is not None:
            self.write_log(f"Output file already set: {self.out_file.filename}")
            return
        if output_file is None:
            output_file = os.path.join(self.network_path, OUTPUT_FILE)
        if isinstance(output_file, h5py.File):
            self.write_log(f"Writing to {output_file.filename}")
            if "config" in output_file:
                self.write_log(f"Output file already has config, assuming all data present: "
                               f"{output_file.filename}")
            else:
                self._fill_output_file(output_file)
            self.out_file = output_file
            return
        self.write_log(f"Writing to {output_file}")
        out = h5py.File(output_file, "w", libver=self.h5libver, driver=self.h5driver)
        try:
            self._fill_output_file(out)
        except BaseException:
            out.close()
            raise
        self.out_file = out

    def _fill_output_file(self, out):
        """io's output layout, with Snudda's first chunk of rows and zero counts (rows are appended)."""
        create_output(out, self.hist_file, self.config, self.h5compression, self.synapse_chunk_size,
                      initial_rows=self.synapse_chunk_size)
        write_counts(out, dict.fromkeys(KINDS, 0))

    def combine_files(self, source_filenames, merge_data_type, output_filename=None):
        """Concatenate the rows of pruned part files into the output file (from its first row).

        Parameters
        ----------
        source_filenames : list of str
            Part files, in order; missing ones are skipped.
        merge_data_type : {"synapses", "gap_junctions"}
        output_filename : str, optional
            Output file, if none is open yet.

        Returns
        -------
        int
            Rows in the output.
        """
        start = time.perf_counter()
        kind = kind_of(merge_data_type)
        if not self.out_file:
            self.setup_output_file(output_file=output_filename)
        present = [f for f in source_filenames if f is not None and os.path.isfile(f)]
        total = copy_rows(present, self.out_file, kind)
        self.write_log(f"combine_files ({kind.name}): {time.perf_counter() - start:.1f}s")
        return total

    # -- pruning -----------------------------------------------------------------------------------

    def find_ranges(self, synapses, num_workers, start_pos=0, num_syn=None):
        """Split rows into ``num_workers`` ranges that keep each dest neuron's rows together.

        Parameters
        ----------
        synapses : h5py.Dataset or ndarray
            Synapse matrix (only column 1 near the block starts is read).
        num_workers : int
        start_pos : int
        num_syn : int, optional
            Rows from ``start_pos`` (default: to the end).

        Returns
        -------
        list of tuple
            ``(start, end)`` per worker, padded with None entries.

        Notes
        -----
        Unlike Snudda 3.0, the last range always ends at ``start_pos + num_syn``:
        Snudda's floor division can leave the last few rows out of every range.
        """
        ranges = block_ranges(synapses, num_workers, start_pos, num_syn)
        self.write_log(f"synapse_range={ranges}")
        return ranges

    def prune_synapses_helper(self, synapses, output_file, merge_data_type):
        """Prune a block of merged rows held in memory and append the kept rows to ``output_file``.

        Parameters
        ----------
        synapses : ndarray
            Rows in merge order; all rows onto a dest neuron must be in the block.
        output_file : h5py.File or h5py.Group
            File with Snudda's output layout (``network/synapses``, ``network/num_synapses``, ...).
        merge_data_type : {"synapses", "gap_junctions"}

        Returns
        -------
        int
            Rows kept.

        Notes
        -----
        Vectorised on the engine.  Snudda randomness: groups are runs of equal
        (src, dest, channel type) in row order, and each dest neuron's stream
        restarts where the dest changes, as in Snudda.  Philox: a group is all
        rows of a (src, dest, channel type) in the block, numbered in row order.
        ``synapses`` is not modified (Snudda writes the shared parameter ids into it).
        """
        kind = kind_of(merge_data_type)
        kept = prune_block(self._context(), kind, np.asarray(synapses))
        append_rows(output_file, kind, kept)
        if kept.shape[0] == 0:
            self.write_log("No synapses kept, resizing")
        return int(kept.shape[0])

    def prune_synapses(self, synapse_file, output_filename, merge_data_type, row_range=None,
                       close_input_file=True, close_out_file=True):
        """Prune (a row range of) a merge file into the output file.

        Parameters
        ----------
        synapse_file : str or h5py.File or None
            Merge file; None means nothing to prune.
        output_filename : str or h5py.File or None
            Output (see :meth:`setup_output_file`); ignored if ``out_file`` is set.
        merge_data_type : {"synapses", "gap_junctions"}
        row_range : (int, int), optional
            Rows to prune; default all.
        close_input_file, close_out_file : bool
            Close the input file (if a name was given) / the output file afterwards.

        Returns
        -------
        (int, int)
            Rows before and after pruning.

        Notes
        -----
        Rows are pruned in blocks of at most 1,000,000 rows that never split a
        dest neuron (:meth:`find_ranges`).  Errors are raised (Snudda logs them
        and exits the process).
        """
        kind = kind_of(merge_data_type)
        if synapse_file is None:
            self.write_log(f"prune_synapses: No synapse_file specified for {kind.name} -- none detected?")
            return 0, 0
        opened = not isinstance(synapse_file, (h5py.File, h5py.Group))
        if opened:
            self.write_log(f"Opening synapse file: {synapse_file}")
            synapse_file = open_h5(synapse_file)
        try:
            matrix = synapse_file[kind.matrix]
            row_start, row_end = (0, matrix.shape[0]) if row_range is None else (row_range[0], row_range[-1])
            if row_start is None or row_end is None or row_start == row_end or matrix.shape[0] == 0:
                self.write_log(f"prune_synapses: nothing to do for {kind.name}")
                return 0, 0
            num = row_end - row_start
            num_blocks = max(1, -(-num // PRUNE_BLOCK_ROWS))
            blocks = self.find_ranges(matrix, num_blocks, row_start, num)
            self.setup_output_file(output_filename)
            kept = 0
            for a, b in blocks:
                if a is None or b is None or a == b:
                    continue
                self.write_log(f"Pruning range: {(a, b)}")
                kept += self.prune_synapses_helper(matrix[a:b], self.out_file, kind.name)
        except BaseException as exc:
            self.write_log(f"prune_synapses failed: {type(exc).__name__}: {exc}", is_error=True)
            raise
        finally:
            if opened and close_input_file:
                synapse_file.close()
        if close_out_file and self.out_file is not None:
            self.out_file.close()
            self.out_file = None
        return num, kept

    def prune_synapses_parallel(self, synapse_file, synapse_ctr, merge_data_type="synapses",
                                close_input_file=True):
        """Prune merge files: on the engines when there are any, else one after another.

        Parameters
        ----------
        synapse_file : list of str or str
            Merge files (None entries: no rows).
        synapse_ctr : list of int or int
            Rows expected in each.
        merge_data_type : {"synapses", "gap_junctions"}
        close_input_file : bool

        Notes
        -----
        In parallel each engine prunes whole files into
        ``SCRATCH/worker-temp-<kind>-file-<i>``, then :meth:`combine_files`
        joins them in order; any number of files works with any number of
        engines (Snudda requires one file per engine).  A row count that
        differs from ``synapse_ctr`` raises RuntimeError.
        """
        kind = kind_of(merge_data_type)
        counts = np.atleast_1d(np.asarray(synapse_ctr, dtype=np.int64))
        if not isinstance(synapse_file, (list, tuple)):
            before, _ = self.prune_synapses(synapse_file, None, kind.name, close_out_file=False,
                                            close_input_file=close_input_file)
            self._check_count(before, counts.sum(), kind)
            return
        executor = self._executor()
        start = time.perf_counter()
        if executor is not None:
            self.setup_parallel(d_view=self.d_view)
            parts = [os.path.join(self.scratch_path, f"worker-temp-{kind.name}-file-{x}")
                     for x in range(len(synapse_file))]
            spec = worker_spec(self)
            jobs = []
            for name, part in zip(synapse_file, parts, strict=True):
                if os.path.exists(part):
                    os.remove(part)
                if name is not None:
                    args = (name, part, kind.name)
                    jobs.append((part, executor.submit(worker_call, spec, "prune_synapses", args)))
            results = [(part, fut.result()) for part, fut in jobs]
            self._check_count(sum(r[0] for _, r in results), counts.sum(), kind)
            self.temp_file_list += parts
            after = self.combine_files([part for part, _ in results], kind.name)
            if after != sum(r[1] for _, r in results):
                raise RuntimeError(f"combine_files gathered {after} {kind.name}, the engines kept "
                                   f"{sum(r[1] for _, r in results)}")
            before = counts.sum()
        else:
            self.setup_output_file()
            before = 0
            for name in synapse_file:
                before += self.prune_synapses(name, None, kind.name, close_input_file=close_input_file,
                                              close_out_file=False)[0]
            self._check_count(before, counts.sum(), kind)
            for k in KINDS.values():
                trim_rows(self.out_file[k.matrix], self.out_file[COUNT[k.name]][()])
            after = int(self.out_file[COUNT[kind.name]][()])
        self.write_log(f"prune_synapses_parallel ({after}/{before} {kind.name}, "
                       f"{100 * after / max(1, before):.1f}% kept): {time.perf_counter() - start:.1f}s",
                       force_print=True)

    @staticmethod
    def _check_count(found, expected, kind):
        if int(found) != int(expected):
            raise RuntimeError(f"prune_synapses_parallel: found {int(found)} {kind.name} in the merge files, "
                               f"expected {int(expected)}; delete pruning_merge_info.json and prune again")
