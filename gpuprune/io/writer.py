"""Write ``network-synapses.hdf5`` (DESIGN §2): buffered, chunked, compressed, atomic.

The file is written under a temporary name in the destination directory and
renamed over the final name only when it is complete, so an interrupted or
failed run leaves any previous output untouched and never a partial file.
"""

import collections
import concurrent.futures
import os
import sys

import h5py
import numpy as np

from gpuprune.errors import InputError
from gpuprune.format import CHUNK_ROWS, KINDS
from gpuprune.io.extension import load_lzf
from gpuprune.io.layout import AtomicFile, create_output, write_counts

_lzf = load_lzf()  # None: built without a C compiler; h5py's filter compresses (same rows, other bytes)
_lzf_compress = None if _lzf is None else _lzf.compress

#: kept rows gathered in memory before one write
BUFFER_ROWS = 1 << 15
COMPRESSIONS = ("lzf", "gzip", None)
#: threads that LZF-encode output chunks (the encoder runs without the GIL)
COMPRESS_THREADS = 4
#: encoded chunks a writer may hold before it waits for the oldest to be written
MAX_PENDING_CHUNKS = 16


class BufferedRows:
    """Rows of one output dataset, gathered to :data:`BUFFER_ROWS` and written through h5py
    (which compresses them with the dataset's filter)."""

    def __init__(self, ds):
        self.ds = ds
        self.parts, self.buffered, self.written = [], 0, 0

    def append(self, rows):
        self.parts.append(rows)
        self.buffered += rows.shape[0]
        if self.buffered >= BUFFER_ROWS:
            self._flush()

    def _flush(self):
        if not self.parts:
            return
        block = self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)
        self.ds.resize(self.written + block.shape[0], axis=0)
        self.ds[self.written:self.written + block.shape[0]] = block
        self.written += block.shape[0]
        self.parts, self.buffered = [], 0

    def close(self):
        self._flush()


class DirectChunks:
    """Rows of one LZF-compressed output dataset, written as whole HDF5 chunks.

    Each full chunk of rows is encoded by :func:`gpuprune.io._lzf.compress` on a thread of
    ``executor`` and written in order with ``write_direct_chunk``; a chunk that does not
    compress is stored as it is, with the filter marked skipped (as HDF5 does for an
    optional filter).  h5py, and so Snudda, reads the result like any LZF dataset.
    """

    def __init__(self, ds, executor):
        self.ds, self.executor = ds, executor
        self.chunk_rows, self.width = ds.chunks
        self.parts, self.buffered = [], 0
        self.next_row = 0  # first row of the next chunk to encode
        self.pending = collections.deque()  # (first row, rows, block, future) in row order

    def append(self, rows):
        self.parts.append(np.asarray(rows, dtype=np.int32))
        self.buffered += rows.shape[0]
        if self.buffered >= self.chunk_rows:
            self._cut(final=False)

    def _cut(self, final):
        block = self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)
        c = self.chunk_rows
        full = block.shape[0] // c
        for j in range(full):  # per output HDF5 chunk (10000 rows)
            self._submit(np.ascontiguousarray(block[j * c:(j + 1) * c]), c)
        rest = block[full * c:]
        self.parts, self.buffered = ([rest], rest.shape[0]) if rest.shape[0] else ([], 0)
        if final and rest.shape[0]:  # the last chunk, padded to a whole one as HDF5 stores it
            padded = np.zeros((c, self.width), dtype=np.int32)
            padded[:rest.shape[0]] = rest
            self._submit(padded, rest.shape[0])
            self.parts, self.buffered = [], 0
        while self.pending and self.pending[0][3].done():
            self._write_oldest()

    def _submit(self, block, rows):
        self.pending.append((self.next_row, rows, block, self.executor.submit(_lzf_compress, block)))
        self.next_row += rows
        if len(self.pending) > MAX_PENDING_CHUNKS:
            self._write_oldest()

    def _write_oldest(self):
        row0, rows, block, future = self.pending.popleft()
        data = future.result()
        self.ds.resize(row0 + rows, axis=0)
        if data is None:  # incompressible: stored raw, filter 0 skipped
            self.ds.id.write_direct_chunk((row0, 0), block.tobytes(), 1)
        else:
            self.ds.id.write_direct_chunk((row0, 0), data, 0)

    def close(self):
        """Encode and write what is left (the last chunk padded)."""
        if self.buffered:
            self._cut(final=True)
        while self.pending:
            self._write_oldest()


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
        self._atomic = AtomicFile(self.output_file)
        self.temp_path = self._atomic.temp_path
        self.counts = {"synapses": 0, "gap_junctions": 0}
        self._sinks = {}  # BufferedRows or DirectChunks per row dataset
        self._executor = None
        try:
            self.file = h5py.File(self.temp_path, "w")
            with h5py.File(worklog_path, "r") as wl:
                network = create_output(self.file, wl, config, compression, chunk_rows)
            for name in KINDS:
                ds = network[name]
                if compression == "lzf" and _lzf_compress is not None and sys.byteorder == "little":
                    if self._executor is None:
                        self._executor = concurrent.futures.ThreadPoolExecutor(
                            min(COMPRESS_THREADS, os.cpu_count() or 1), thread_name_prefix="gpuprune-lzf")
                    self._sinks[name] = DirectChunks(ds, self._executor)
                else:
                    self._sinks[name] = BufferedRows(ds)
        except BaseException:
            self._discard()
            raise

    def append(self, kind_name, rows):
        """Queue kept rows of one kind; they are written in large batches."""
        if rows.shape[0] == 0:
            return
        self._sinks[kind_name].append(rows)
        self.counts[kind_name] += rows.shape[0]

    def close(self):
        """Flush, write the counts, and move the finished file into place."""
        for sink in self._sinks.values():
            sink.close()
        self._stop_executor()
        write_counts(self.file, self.counts)
        self.file.close()
        self.file = None
        self._atomic.commit()

    def _stop_executor(self):
        if getattr(self, "_executor", None) is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _discard(self):
        try:
            self._stop_executor()
            if getattr(self, "file", None) is not None:
                self.file.close()
        finally:
            self.file = None
            self._atomic.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.close()
            except BaseException:
                self._discard()
                raise
        else:
            self._discard()
        return False
