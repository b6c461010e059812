"""The LZF encoder of gpuprune.io._lzf, and the writer that stores output chunks with it."""

import h5py
import numpy as np
import pytest
from conftest import data_path

import gpuprune
from gpuprune.io import writer
from gpuprune.io.writer import OutputWriter

try:
    from gpuprune.io import _lzf
except ImportError:  # test_direct_read.test_extension_is_built fails then
    _lzf = None

pytestmark = pytest.mark.skipif(_lzf is None, reason="gpuprune.io._lzf not built: see test_extension_is_built")


def _samples(rng):
    """Byte strings an encoder must get right: empty-ish, runs, repeats, noise, long runs at offsets."""
    yield b"a"
    yield b"ab"
    yield b"abc"
    yield b"\0" * 100_000  # back references overlapping their source, longest matches
    yield bytes(rng.integers(0, 256, size=5000, dtype=np.uint8))  # incompressible
    yield b"xyz" * 3000
    rows = np.repeat(rng.integers(0, 2000, size=(700, 13), dtype=np.int32), 3, axis=0)
    yield rows.tobytes()
    far = bytes(rng.integers(0, 256, size=9000, dtype=np.uint8))
    yield far + b"filler" * 10 + far[:300]  # a repeat more than 8192 bytes back: literal again
    for _ in range(200):
        n = int(rng.integers(1, 3000))
        alphabet = int(rng.integers(1, 6))
        yield bytes(rng.integers(0, alphabet, size=n, dtype=np.uint8))


def test_encode_decode_round_trip():
    rng = np.random.default_rng(2)
    compressed = 0
    for data in _samples(rng):
        block = _lzf.compress(data)
        if block is None:
            continue
        compressed += 1
        assert len(block) < len(data)
        out = np.empty(len(data), dtype=np.uint8)
        assert _lzf.decompress_into(block, out) == len(data)
        assert out.tobytes() == data
    assert compressed > 100
    assert _lzf.compress(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8))) is None
    assert _lzf.compress(b"") is None


def test_encoder_is_deterministic():
    data = np.random.default_rng(3).integers(0, 50, size=(10_000, 13), dtype=np.int32).tobytes()
    assert _lzf.compress(data) == _lzf.compress(bytearray(data)) == _lzf.compress(memoryview(data))


def test_h5py_reads_encoded_chunks(tmp_path):
    """h5py's own LZF filter (which Snudda reads with) decodes the encoder's blocks."""
    rng = np.random.default_rng(4)
    data = np.repeat(rng.integers(0, 3000, size=(2500, 13), dtype=np.int32), 4, axis=0)
    path = tmp_path / "x.hdf5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", shape=data.shape, chunks=(1000, 13), dtype=np.int32, compression="lzf")
        for r0 in range(0, data.shape[0], 1000):
            ds.id.write_direct_chunk((r0, 0), _lzf.compress(np.ascontiguousarray(data[r0:r0 + 1000])), 0)
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["x"][()], data)


@pytest.mark.parametrize("sizes", [[0], [3], [10_000], [9_999, 1], [10_001], [12_345, 0, 7, 40_000, 1, 2]])
def test_writer_direct_chunks(tmp_path, monkeypatch, sizes):
    """Rows appended in any pieces come back whole through h5py, and equal the h5py-filter writer's."""
    monkeypatch.setattr(writer, "MAX_PENDING_CHUNKS", 2)  # exercise waiting on the oldest chunk
    rng = np.random.default_rng(sum(sizes))
    worklog = data_path("prune3", "log", "network-detect-worklog.hdf5")
    pieces = []
    for n in sizes:
        piece = rng.integers(0, 300, size=(n, 13), dtype=np.int32)
        piece[n // 2:] = rng.integers(-2 ** 31, 2 ** 31, size=(n - n // 2, 13), dtype=np.int32)  # incompressible
        pieces.append(piece)
    files = {}
    for direct in (True, False):
        if not direct:
            monkeypatch.setattr(writer, "_lzf_compress", None)
        out = files[direct] = tmp_path / f"{direct}.hdf5"
        with OutputWriter(out, worklog, {"x": 1}) as w:
            assert isinstance(w._sinks["synapses"], writer.DirectChunks) == direct
            for piece in pieces:
                w.append("synapses", piece)
            w.append("gap_junctions", np.arange(22, dtype=np.int32).reshape(2, 11))
    expected = np.concatenate(pieces)
    for out in files.values():
        with h5py.File(out, "r") as f:
            ds = f["network/synapses"]
            assert ds.compression == "lzf" and ds.chunks == (10_000, 13)
            assert np.array_equal(ds[()], expected)
            assert f["network/num_synapses"][()] == expected.shape[0]
            assert np.array_equal(f["network/gap_junctions"][()], np.arange(22).reshape(2, 11))
    if max(sizes) >= 40_000:  # then whole chunks lie in a piece's random half
        with h5py.File(files[True], "r") as f:
            masks = {f["network/synapses"].id.get_chunk_info(i).filter_mask
                     for i in range(f["network/synapses"].id.get_num_chunks())}
        assert 1 in masks  # the incompressible halves were stored raw


def test_failed_run_leaves_no_output(tmp_path, monkeypatch):
    worklog = data_path("prune3", "log", "network-detect-worklog.hdf5")

    def broken(block):
        raise RuntimeError("encoder failed")

    monkeypatch.setattr(writer, "_lzf_compress", broken)
    out = tmp_path / "o.hdf5"
    with pytest.raises(RuntimeError, match="encoder failed"), OutputWriter(out, worklog, {}) as w:
        w.append("synapses", np.zeros((25_000, 13), dtype=np.int32))
    assert not out.exists()
    assert not list(tmp_path.glob(".network-synapses-*"))


def test_pruned_output_same_rows_with_either_writer(tmp_path, monkeypatch):
    net = data_path("striatum_300")
    a, b = tmp_path / "a.hdf5", tmp_path / "b.hdf5"
    gpuprune.prune(net, output_file=a, device="cpu", workers=1)
    monkeypatch.setattr(writer, "_lzf_compress", None)
    gpuprune.prune(net, output_file=b, device="cpu", workers=1)
    with h5py.File(a, "r") as f, h5py.File(b, "r") as g:
        for key in ("network/synapses", "network/gap_junctions"):
            assert np.array_equal(f[key][()], g[key][()])
            assert f[key][()].shape[0] > 0
