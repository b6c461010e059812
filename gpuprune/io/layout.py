"""The layout of the files gpuprune writes, and the one way they are written atomically.

Both writers of a pruned network build their files here: :class:`gpuprune.io.writer.OutputWriter`
(``gpuprune.prune``) and :class:`gpuprune.SnuddaPrune` (its output file and its merge files), so a
change of the layout is made once and reaches both.  Names, row widths, count datasets, chunk rows
and the filter come from :mod:`gpuprune.format`.

``network-synapses.hdf5`` (DESIGN §2): ``config`` (the config used, as JSON), ``meta/`` and
``network/neurons/`` copied from the work log, the growable int32 row datasets ``network/synapses``
and ``network/gap_junctions``, and the uint64 counts ``network/num_synapses`` and
``network/num_gap_junctions``.  A merge file (Snudda's intermediate) has the same groups without
``config`` and counts, with row datasets sized to the rows it will hold.
"""

import json
import os
import tempfile

import h5py
import numpy as np

from gpuprune.format import CHUNK_ROWS, COMPRESSION, COUNT, KINDS
from gpuprune.io import leftovers

#: the temporary name of an output file while it is written (a hidden file beside it)
TEMP_PREFIX = ".network-synapses-"
TEMP_SUFFIX = ".hdf5.part"


class AtomicFile:
    """A file written under a temporary name in its folder and renamed over ``path`` when complete.

    Parameters
    ----------
    path : str
        The final name.  Its folder must exist.
    prefix, suffix : str
        Of the temporary name (``prefix + random + suffix``, in the same folder, so the rename is
        atomic and never copies).

    Notes
    -----
    As a context manager it gives the temporary path; leaving the block normally renames the file
    into place, leaving it by an exception removes it, so an interrupted or failed write leaves a
    previous ``path`` untouched and no partial file.  Writers that outlive a block call
    :meth:`commit` or :meth:`discard` themselves.  The file gets the permissions of any new file
    (``0o666`` less the umask), not :func:`tempfile.mkstemp`'s private ones.
    """

    def __init__(self, path, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX):
        self.path = os.path.abspath(os.fspath(path))
        folder = os.path.dirname(self.path)
        self._held = leftovers.Held()
        # made and locked in one step: the leftover sweep of another run never takes a live temporary
        with leftovers.folder_lock(folder):
            fd, self.temp_path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
            os.close(fd)
            self._held.hold(self.temp_path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.temp_path, 0o666 & ~umask)

    def commit(self):
        """Rename the finished temporary file over :attr:`path`."""
        try:
            os.replace(self.temp_path, self.path)
        finally:
            self._held.release()

    def discard(self):
        """Remove the temporary file (if it is still there)."""
        try:
            if os.path.exists(self.temp_path):
                os.remove(self.temp_path)
        finally:
            self._held.release()

    def __enter__(self):
        return self.temp_path

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()
        return False


def create_output(out, worklog, config, compression=COMPRESSION, chunk_rows=CHUNK_ROWS, initial_rows=0):
    """Give an open, empty HDF5 file the layout of ``network-synapses.hdf5``, except the counts.

    Parameters
    ----------
    out : h5py.File
    worklog : h5py.File
        The open detect work log; ``meta/`` and ``network/neurons/`` are copied from it.
    config : dict
        Stored as JSON in ``config``.
    compression : {"lzf", "gzip", None}
        Filter of the row datasets.
    chunk_rows : int
        Rows per HDF5 chunk.
    initial_rows : int
        Rows the growable row datasets start with (Snudda's writer starts with one chunk).

    Returns
    -------
    h5py.Group
        ``network``; the counts are written by :func:`write_counts` when the rows are known.
    """
    out.create_dataset("config", data=json.dumps(config))
    worklog.copy("meta", out)
    network = out.create_group("network")
    worklog.copy("network/neurons", network)
    for kind in KINDS.values():
        network.create_dataset(kind.name, shape=(initial_rows, kind.width), maxshape=(None, kind.width),
                               dtype=np.int32, chunks=(chunk_rows, kind.width), compression=compression)
    return network


def write_counts(out, counts):
    """Write the count datasets of an output file: ``counts`` maps each kind name to its rows."""
    for name, path in COUNT.items():
        out.create_dataset(path, data=counts[name], dtype=np.uint64)


def create_merge_file(path, worklog, num_rows, libver="latest", driver=None, big_cache=False,
                      chunk_rows=CHUNK_ROWS, compression=COMPRESSION):
    """Create a merge file with Snudda's layout; its row datasets hold exactly ``num_rows`` rows.

    Parameters
    ----------
    path : str
    worklog : h5py.File
        The open detect work log.
    num_rows : dict
        Rows of each kind (kind name -> int).
    libver, driver : str
        HDF5 library version bound and driver (h5py's options).
    big_cache : bool
        A chunk cache 20 times h5py's default, as Snudda asks for.
    chunk_rows : int
    compression : {"lzf", "gzip", None}

    Returns
    -------
    h5py.File
        Open for writing; rows are written in place and the datasets trimmed to the rows written.
        As in Snudda, a dataset of at most ``chunk_rows`` rows is one uncompressed chunk.
    """
    options = {"libver": libver}
    if driver is not None:
        options["driver"] = driver
    if big_cache:
        options["rdcc_nbytes"] = 20 * 1024 ** 2
    out = h5py.File(path, "w", **options)
    try:
        network = out.create_group("network")
        worklog.copy("meta", out)
        worklog.copy("network/neurons", network)
        for kind in KINDS.values():
            num, width = int(num_rows[kind.name]), kind.width
            if num > chunk_rows:
                network.create_dataset(kind.name, dtype=np.int32, shape=(num, width), chunks=(chunk_rows, width),
                                       maxshape=(num, width), compression=compression)
            elif num > 0:
                network.create_dataset(kind.name, dtype=np.int32, shape=(num, width), chunks=(num, width))
            else:
                network.create_dataset(kind.name, dtype=np.int32, shape=(num, width))
    except BaseException:
        out.close()
        raise
    return out
