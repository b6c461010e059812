"""Reading the synapse rows of a chunk: direct LZF chunk reads, h5py fallback, per-thread open files."""

import concurrent.futures
import os
import sys
import threading
from collections import OrderedDict

import numpy as np

from gpuprune.errors import InputError
from gpuprune.io.extension import load_lzf
from gpuprune.io.hdf5 import open_h5

_lzf = load_lzf()  # None: built without a C compiler; read through h5py (same bytes, slower)
_lzf_decompress_into = None if _lzf is None else _lzf.decompress_into

#: input files kept open per thread (LRU).  Every chunk reads a slice of nearly every hyper voxel
#: file, so this must exceed the file count: reopening drops the decoded boundary chunk kept per
#: dataset (DirectRows; HDF5's chunk cache on the h5py path) and costs a second decompression of
#: it (a 1e8-row network with 124 files ran 1.6x slower with 64).  Each open file holds one
#: decoded chunk (520 KB in Snudda's files), or at most CHUNK_CACHE_BYTES of HDF5 chunk cache per
#: dataset read through h5py.
MAX_OPEN_FILES = 512
#: HDF5 chunk cache per open dataset: one of Snudda's 10000-row chunks (520 KB) with room to
#: spare; the boundary chunk is all that is reused (h5py's default, 8 MiB, made a 124-file
#: network take 2.8 GB).  An open file then costs about 1.1 MB.
CHUNK_CACHE_BYTES = 640 << 10

#: decode the raw LZF chunks of the synapse matrices with gpuprune.io._lzf instead of reading
#: through h5py (environment: GPUPRUNE_DIRECT_READ=0 turns it off).  Both give the same bytes;
#: h5py's path costs 200-240 ns a row on the CPU used for benchmarks/RESULTS.md, this one ~70.
DIRECT_READ = os.environ.get("GPUPRUNE_DIRECT_READ", "1") != "0"
#: HDF5's id for the LZF filter (h5py's registration)
LZF_FILTER = 32000

# Open input files per thread: a thread never closes a file another thread is reading.
_local = threading.local()


def _open_files():
    files = getattr(_local, "files", None)
    if files is None:
        files = _local.files = OrderedDict()
    return files


def _dataset(path, name):
    """An open dataset of an input file, kept open with its file.

    Keeping the dataset (not only the file) open keeps HDF5's chunk cache: the
    compressed chunk that two consecutive slices share is then decompressed once.
    """
    files = _open_files()
    entry = files.get(path)
    if entry is None:
        entry = files[path] = (open_h5(path, rdcc_nbytes=CHUNK_CACHE_BYTES), {}, {})
        if len(files) > MAX_OPEN_FILES:
            files.popitem(last=False)[1][0].close()
    else:
        files.move_to_end(path)
    f, datasets, _ = entry
    ds = datasets.get(name)
    if ds is None:
        ds = datasets[name] = f[name]
    return ds


class DirectRows:
    """Row slices of a chunked, LZF-compressed (or unfiltered) int32 matrix, read by decoding
    its raw chunks.

    A chunk that a slice covers whole is decoded straight into the caller's array; a chunk
    that a slice covers in part is decoded into a buffer that is kept when it is the slice's
    last, so the next slice (the adjacent dest range) does not decode it again.  Raw chunks
    are read in the calling thread (h5py); decoding may run on an executor's threads.
    """

    __slots__ = ("ds", "chunk_rows", "width", "lzf", "cache", "cached")

    def __init__(self, ds, lzf):
        self.ds = ds
        self.chunk_rows, self.width = ds.chunks
        self.lzf = lzf
        self.cache = None
        self.cached = -1

    @classmethod
    def wrap(cls, ds):
        """A DirectRows for ``ds``, or None when its layout is not one this reader decodes."""
        if not DIRECT_READ or ds.ndim != 2 or ds.chunks is None or ds.chunks[1] != ds.shape[1]:
            return None
        if ds.dtype != np.dtype("<i4") or sys.byteorder != "little":  # raw bytes land in a native int32 array
            return None
        plist = ds.id.get_create_plist()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        if filters == [LZF_FILTER] and _lzf_decompress_into is not None:
            return cls(ds, True)
        return cls(ds, False) if not filters else None

    def _decode(self, k, raw, dst, part=None):
        """Chunk ``k`` from its raw ``(filter mask, bytes)`` into ``dst`` (one whole chunk); then, if
        ``part`` is ``(a, b, out)``, rows ``a:b`` of it into ``out``.  Makes no h5py call."""
        mask, data = raw
        if self.lzf and not mask & 1:  # bit 0 set: the (optional) filter was skipped for this chunk
            try:
                n = _lzf_decompress_into(data, dst)
            except ValueError as exc:
                raise OSError(f"chunk at row {k * self.chunk_rows}: {exc}") from None
        else:
            n = len(data)
            if n == dst.nbytes:
                dst.reshape(-1)[:] = np.frombuffer(data, dtype="<i4")
        if n != dst.nbytes:
            raise OSError(f"chunk at row {k * self.chunk_rows} holds {n} bytes, expected {dst.nbytes}")
        if part is not None:
            a, b, out = part
            out[...] = dst[a:b]

    def read(self, out, r0, r1, o0, executor=None, pending=None):
        """Rows ``r0:r1`` into ``out[o0:o0 + r1 - r0]`` (``out`` C-contiguous, int32).

        With an ``executor``, decoding is submitted to it and the futures are appended to
        ``pending``; the caller waits for them, then calls :meth:`keep` with what this returns.
        Without, everything is done on return.
        """
        c = self.chunk_rows
        tail = None
        for k in range(r0 // c, (r1 - 1) // c + 1):  # per HDF5 chunk (10000 rows in Snudda's files)
            a, b = max(r0, k * c), min(r1, (k + 1) * c)
            dst = out[o0 + a - r0:o0 + b - r0]
            whole = b - a == c
            if not whole and self.cached == k:
                dst[...] = self.cache[a - k * c:b - k * c]
                continue
            target = dst if whole else np.empty((c, self.width), dtype=np.int32)
            part = None if whole else (a - k * c, b - k * c, dst)
            try:
                raw = self.ds.id.read_direct_chunk((k * c, 0))
            except (KeyError, ValueError, OSError):  # unallocated or unreadable chunk: let h5py decide
                n = max(0, min(c, self.ds.shape[0] - k * c))
                self.ds.read_direct(target, np.s_[k * c:k * c + n], np.s_[0:n])
                if part is not None:
                    dst[...] = target[part[0]:part[1]]
            else:
                if executor is None:
                    self._decode(k, raw, target, part)
                else:
                    pending.append(executor.submit(self._decode, k, raw, target, part))
            if not whole:
                tail = (k, target)
        if executor is None:
            self.keep(tail)
        return tail

    def keep(self, tail):
        """Keep a decoded partial chunk ``(k, rows)`` for the next read (None: keep what is kept)."""
        if tail is not None:
            self.cached, self.cache = tail


class H5pyRows:
    """Row slices through h5py, for matrices :class:`DirectRows` does not decode."""

    __slots__ = ("ds",)

    def __init__(self, ds):
        self.ds = ds

    def read(self, out, r0, r1, o0, executor=None, pending=None):
        self.ds.read_direct(out, np.s_[r0:r1], np.s_[o0:o0 + r1 - r0])

    def keep(self, tail):
        pass


def _rows_reader(path, name):
    """The :class:`DirectRows` (or :class:`H5pyRows`) of the matrix ``name`` of an input file."""
    ds = _dataset(path, name)
    readers = _open_files()[path][2]
    reader = readers.get(name)
    if reader is None:
        reader = readers[name] = DirectRows.wrap(ds) or H5pyRows(ds)
    return reader


def open_file_count():
    """Number of input files this thread holds open."""
    return len(_open_files())


def close_files():
    """Close the input files this thread holds open."""
    files = _open_files()
    while files:
        files.popitem()[1][0].close()


def read_chunk(files, kind, chunk, with_lookup=False, threads=None, out=None):
    """Read a chunk's rows (and, for snudda mode, its lookup runs).

    Slices are placed in DESIGN §4 file order whatever order ``chunk.slices``
    lists them in, so the result does not depend on the order files are read.

    Parameters
    ----------
    threads : ReadThreads, optional
        Decode the HDF5 chunks on these threads, in parallel (raw chunks are still read
        by the calling thread).
    out : ndarray of int32, shape (chunk.num_rows, kind.width), optional
        Where to read the rows (e.g. a pinned host buffer the GPU uploads from without a copy).

    Returns
    -------
    rows : ndarray of int32, shape (chunk.num_rows, kind.width)
    lookup_runs : tuple of ndarray or None
        (unique_id, hyper voxel id, start row in ``rows``, length).
    """
    rows = np.empty((chunk.num_rows, kind.width), dtype=np.int32) if out is None else out
    canonical = sorted(chunk.slices)  # file index order = DESIGN §4 order
    offsets, off = {}, 0
    for fi, r0, r1, _, _ in canonical:
        offsets[fi] = off
        off += r1 - r0
    if off != chunk.num_rows:
        raise InputError(f"chunk {chunk.index}: slices hold {off} rows, planned {chunk.num_rows}")
    runs = _read_slices(files, kind, chunk.slices, rows, offsets, with_lookup, threads)
    lookup_runs = None
    if with_lookup:
        lookup_runs = tuple(np.concatenate([r[i] for r in runs]) if runs else np.zeros(0, dtype=np.int64)
                            for i in range(4))
    return rows, lookup_runs


def _read_slices(files, kind, slices, rows, offsets, with_lookup, threads=None):
    """Read ``slices`` into their places in ``rows``; returns their lookup runs (if asked) in order."""
    runs, decoding = [], []  # decoding: (reader, kept tail, path, r0, r1, futures) per slice read
    executor = threads.executor if threads is not None else None
    try:
        for fi, r0, r1, l0, l1 in slices:
            path, hid = files[fi]
            try:
                if r1 > r0:
                    reader, futures = _rows_reader(path, kind.matrix), []
                    tail = reader.read(rows, r0, r1, offsets[fi], executor, futures)
                    decoding.append((reader, tail, path, r0, r1, futures))
                if with_lookup:
                    lut = np.asarray(_dataset(path, kind.lookup)[l0:l1], dtype=np.int64)
            except OSError as exc:
                raise _read_error(kind, path, r0, r1, exc) from None
            if with_lookup:
                length = lut[:, 2] - lut[:, 1]
                start = lut[:, 1] - r0 + offsets[fi]
                runs.append((lut[:, 0], np.full(lut.shape[0], hid, dtype=np.int64), start, length))
    finally:  # no decode still writes into rows once this returns or raises
        concurrent.futures.wait([f for *_, futures in decoding for f in futures])
    if executor is not None:
        for reader, tail, path, r0, r1, futures in decoding:
            for fut in futures:
                exc = fut.exception()
                if isinstance(exc, OSError):
                    raise _read_error(kind, path, r0, r1, exc) from None
                if exc is not None:
                    raise exc
            reader.keep(tail)
    return runs


def blame_rows(files, kind, chunk, rows, num_neurons):
    """The input file of the first slice of ``rows`` (read by :func:`read_chunk`) whose rows name a dest
    outside the chunk's range, a source outside ``0 .. num_neurons - 1`` or (synapses) a channel type
    outside ``0 .. 2**16 - 1``: rows that disagree with the lookup tables.  None if no slice does.

    Called only once the engine has refused a chunk, so the normal path pays nothing for it.
    """
    off = 0
    for fi, r0, r1, _, _ in sorted(chunk.slices):
        part = rows[off:off + r1 - r0]
        off += r1 - r0
        if part.shape[0] == 0:
            continue
        bad = (part[:, 1] < chunk.dest_lo) | (part[:, 1] >= chunk.dest_hi) | (part[:, 0] < 0) | \
            (part[:, 0] >= num_neurons)
        if kind.name == "synapses":
            bad |= (part[:, 6] < 0) | (part[:, 6] >= 2 ** 16)
        if bad.any():
            return files[fi][0]
    return None


def _read_error(kind, path, r0, r1, exc):
    return InputError(f"cannot read rows {r0}..{r1} of '{kind.matrix}' (truncated or corrupt file?): {exc}", path)


def default_workers():
    """Cores this process may run on: the default count of worker processes and decode threads."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ReadThreads:
    """Threads that decode the input's chunks in parallel, for a process that prunes on a GPU.

    The raw chunks are still read by the calling thread (h5py takes one call at a time);
    the LZF decoding, most of the work, runs on these threads without the GIL.  Files and
    their caches stay with the calling thread.
    """

    def __init__(self, n, name="gpuprune-decode"):
        self.n = max(1, int(n))
        self.executor = concurrent.futures.ThreadPoolExecutor(self.n, thread_name_prefix=name)

    def __len__(self):
        return self.n

    def shutdown(self):
        self.executor.shutdown(wait=True)


