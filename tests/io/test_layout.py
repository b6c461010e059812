"""gpuprune.io.layout: the one output layout (both writers) and the atomic temp-file-then-rename helper."""

import os

import h5py
import numpy as np
import pytest
from conftest import copy_network

from gpuprune.format import CHUNK_ROWS, COUNT, KINDS, WORKLOG
from gpuprune.io.layout import TEMP_PREFIX, TEMP_SUFFIX, AtomicFile, create_merge_file, create_output, write_counts
from gpuprune.io.writer import OutputWriter


def test_atomic_file_renames_when_complete(tmp_path):
    final = tmp_path / "out.bin"
    final.write_text("previous")
    with AtomicFile(final) as temp:
        name = os.path.basename(temp)
        assert os.path.dirname(temp) == str(tmp_path) and name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)
        assert final.read_text() == "previous"  # untouched until complete
        with open(temp, "w") as fh:
            fh.write("new")
    assert final.read_text() == "new" and os.listdir(tmp_path) == ["out.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(final).st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's private one


def test_atomic_file_discards_on_error(tmp_path):
    final = tmp_path / "out.bin"
    final.write_text("previous")
    with pytest.raises(RuntimeError, match="interrupted"), AtomicFile(final) as temp:
        with open(temp, "w") as fh:
            fh.write("partial")
        raise RuntimeError("interrupted")
    assert final.read_text() == "previous" and os.listdir(tmp_path) == ["out.bin"]


def _layout(path):
    items = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            items[name] = (obj.dtype, obj.maxshape, obj.chunks, obj.compression)
        else:
            items[name] = "group"

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return items


def test_output_writer_and_snudda_path_share_the_layout(tmp_path):
    """OutputWriter's file and SnuddaPrune's (create_output + write_counts) have the same datasets."""
    net = copy_network("prune3", tmp_path)
    worklog = str(net / WORKLOG)
    rows = np.arange(5 * 13, dtype=np.int32).reshape(5, 13)
    with OutputWriter(str(tmp_path / "writer.hdf5"), worklog, {"a": 1}) as out:
        out.append("synapses", rows)
    with h5py.File(tmp_path / "snudda.hdf5", "w") as out, h5py.File(worklog, "r") as wl:
        network = create_output(out, wl, {"a": 1}, initial_rows=CHUNK_ROWS)
        assert network.name == "/network"
        write_counts(out, {"synapses": 5, "gap_junctions": 0})
    ours, theirs = _layout(tmp_path / "writer.hdf5"), _layout(tmp_path / "snudda.hdf5")
    assert ours == theirs
    for kind in KINDS.values():
        assert ours[kind.matrix] == (np.int32, (None, kind.width), (CHUNK_ROWS, kind.width), "lzf")
    with h5py.File(tmp_path / "writer.hdf5", "r") as f:
        np.testing.assert_array_equal(f["network/synapses"][()], rows)
        assert [int(f[c][()]) for c in COUNT.values()] == [5, 0]


def test_merge_file_rows_are_sized_as_snudda_does(tmp_path):
    net = copy_network("prune3", tmp_path)
    with h5py.File(net / WORKLOG, "r") as wl:
        out = create_merge_file(str(tmp_path / "m.hdf5"), wl, {"synapses": CHUNK_ROWS + 1, "gap_junctions": 7})
    with out:
        assert set(out) == {"meta", "network"} and "config" not in out
        syn, gj = out["network/synapses"], out["network/gap_junctions"]
        assert syn.shape == syn.maxshape == (CHUNK_ROWS + 1, 13) and syn.chunks == (CHUNK_ROWS, 13)
        assert gj.shape == (7, 11) and gj.chunks == (7, 11) and gj.compression is None
