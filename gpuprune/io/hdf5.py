"""Small HDF5 helpers shared by every reader: open read-only, read a whole dataset, decode text.

Each turns h5py's errors into an :class:`InputError` that names the file, so a truncated or
foreign file is reported on one line wherever it is read.
"""

import os

import h5py
import numpy as np

from gpuprune.errors import InputError


def open_h5(path, **options):
    """Open an HDF5 file read-only; a missing or unreadable file is an :class:`InputError`."""
    if not os.path.exists(path):
        raise InputError("file not found", path)
    try:
        return h5py.File(path, "r", **options)
    except OSError as exc:
        raise InputError(f"cannot open HDF5 file (truncated or corrupt?): {exc}", path) from None


def _read(group, key, path, what="dataset"):
    """Read a whole (small) dataset; a missing or unreadable one is an :class:`InputError` naming ``path``.

    Uses h5py's low-level calls: the many small meta reads cost half as much.
    """
    try:
        dsid = h5py.h5d.open(group.id, key.encode())
    except (KeyError, ValueError):
        raise InputError(f"missing {what} '{key}'", path) from None
    try:
        out = np.empty(dsid.shape, dtype=dsid.dtype)
        dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    except OSError as exc:
        raise InputError(f"cannot read '{key}' (truncated or corrupt file?): {exc}", path) from None
    return out[()] if out.ndim == 0 else out


def _to_str(value):
    """A text dataset's value as ``str`` (h5py gives ``bytes`` for fixed-length strings)."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode()
    return str(value)


def _cat(parts):
    """Concatenate int64 parts (none: an empty array)."""
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
