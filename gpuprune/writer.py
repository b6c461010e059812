"""Write ``network-synapses.hdf5`` (DESIGN §2): buffered, chunked, compressed, atomic.

The file is written under a temporary name in the destination directory and
renamed over the final name only when it is complete, so an interrupted or
failed run leaves any previous output untouched and never a partial file.
"""

import json
import os
import tempfile

import h5py
import numpy as np

from .errors import InputError

#: rows per HDF5 chunk (Snudda's synapse_chunk_size)
CHUNK_ROWS = 10000
#: kept rows gathered in memory before one write
BUFFER_ROWS = 1 << 15
COMPRESSIONS = ("lzf", "gzip", None)


class OutputWriter:
    """Buffered writer of a pruned network file.

    Parameters
    ----------
    output_file : str
        Final path of the output.
    worklog_path : str
        The detect work log: ``meta/`` and ``network/neurons/`` are copied from it.
    config : dict
        The config actually used (stored as JSON in ``config``).
    compression : {"lzf", "gzip", None}
        HDF5 filter for the row datasets.
    chunk_rows : int
        Rows per HDF5 chunk.

    Use as a context manager: leaving the block normally renames the temporary
    file into place; leaving it by an exception deletes it.
    """

    def __init__(self, output_file, worklog_path, config, compression="lzf", chunk_rows=CHUNK_ROWS):
        if compression not in COMPRESSIONS:
            raise InputError(f"unknown compression {compression!r}; choose lzf, gzip or none")
        self.output_file = os.path.abspath(output_file)
        directory = os.path.dirname(self.output_file)
        if not os.path.isdir(directory):
            raise InputError("output directory does not exist", directory)
        fd, self.temp_path = tempfile.mkstemp(prefix=".network-synapses-", suffix=".hdf5.part", dir=directory)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.temp_path, 0o666 & ~umask)  # mkstemp makes it private; outputs are ordinary files
        self.counts = {"synapses": 0, "gap_junctions": 0}
        self._buffers = {"synapses": [], "gap_junctions": []}
        self._buffered = {"synapses": 0, "gap_junctions": 0}
        try:
            self.file = h5py.File(self.temp_path, "w")
            self.file.create_dataset("config", data=json.dumps(config))
            with h5py.File(worklog_path, "r") as wl:
                wl.copy("meta", self.file)
                network = self.file.create_group("network")
                wl.copy("network/neurons", network)
            for name, width in (("synapses", 13), ("gap_junctions", 11)):
                network.create_dataset(name, shape=(0, width), maxshape=(None, width), dtype=np.int32,
                                       chunks=(chunk_rows, width), compression=compression)
        except BaseException:
            self._discard()
            raise

    def append(self, kind_name, rows):
        """Queue kept rows of one kind; they are written in large batches."""
        if rows.shape[0] == 0:
            return
        self._buffers[kind_name].append(rows)
        self._buffered[kind_name] += rows.shape[0]
        if self._buffered[kind_name] >= BUFFER_ROWS:
            self._flush(kind_name)

    def _flush(self, kind_name):
        parts = self._buffers[kind_name]
        if not parts:
            return
        block = parts[0] if len(parts) == 1 else np.concatenate(parts)
        ds = self.file["network"][kind_name]
        start = self.counts[kind_name]
        ds.resize(start + block.shape[0], axis=0)
        ds[start:start + block.shape[0]] = block
        self.counts[kind_name] += block.shape[0]
        self._buffers[kind_name] = []
        self._buffered[kind_name] = 0

    def close(self):
        """Flush, write the counts, and move the finished file into place."""
        for kind_name in self._buffers:
            self._flush(kind_name)
        network = self.file["network"]
        network.create_dataset("num_synapses", data=self.counts["synapses"], dtype=np.uint64)
        network.create_dataset("num_gap_junctions", data=self.counts["gap_junctions"], dtype=np.uint64)
        self.file.close()
        self.file = None
        os.replace(self.temp_path, self.output_file)

    def _discard(self):
        try:
            if getattr(self, "file", None) is not None:
                self.file.close()
        finally:
            self.file = None
            if os.path.exists(self.temp_path):
                os.remove(self.temp_path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self._discard()
        return False
