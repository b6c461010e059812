"""Small helpers shared by the tests."""

import hashlib
from pathlib import Path

import h5py
import numpy as np


def read_rows(path):
    with h5py.File(path, "r") as f:
        return f["network/synapses"][()], f["network/gap_junctions"][()]


def assert_same_rows(a, b):
    """Synapse and gap junction arrays of two output files are identical."""
    sa, ga = read_rows(a)
    sb, gb = read_rows(b)
    assert sa.shape == sb.shape and np.array_equal(sa, sb), f"synapses differ: {sa.shape} vs {sb.shape}"
    assert ga.shape == gb.shape and np.array_equal(ga, gb), f"gap junctions differ: {ga.shape} vs {gb.shape}"


def tree_digest(root):
    """Hash of every file (name, bytes, mode) under ``root``: detects any modification."""
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
            h.update(str(p.stat().st_mtime_ns).encode())
    return h.hexdigest()
