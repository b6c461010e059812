"""The direct reader (gpuprune.io._lzf + raw HDF5 chunks) gives exactly what h5py gives, and fails cleanly."""

import glob

import h5py
import numpy as np
import pytest
from conftest import SNUDDA_CASES, copy_network, data_path
from helpers import assert_same_rows

import gpuprune
from gpuprune.errors import InputError
from gpuprune.format import KINDS
from gpuprune.io import reader as stream
from gpuprune.io.network import Network

try:
    from gpuprune.io import _lzf
except ImportError:  # fails below: an install with a C compiler (CI's) always builds it
    _lzf = None

NOT_BUILT = "gpuprune.io._lzf was not built (no C compiler at install?): reads fall back to h5py"


def test_extension_is_built():
    assert _lzf is not None, NOT_BUILT
    assert stream._lzf_decompress_into is not None


@pytest.fixture
def lzf():
    assert _lzf is not None, NOT_BUILT
    return _lzf


def _h5py_lzf_block(data):
    """Compress ``data`` with h5py's own LZF filter and return the raw chunk bytes."""
    import io

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        ds = f.create_dataset("x", data=data, chunks=data.shape, compression="lzf")
        mask, raw = ds.id.read_direct_chunk((0,) * data.ndim)
    assert mask == 0
    return raw


def test_decode_matches_h5py_lzf(lzf):
    rng = np.random.default_rng(1)
    data = np.repeat(rng.integers(0, 50, size=(3000, 13), dtype=np.int32), 3, axis=0)  # runs and repeats
    raw = _h5py_lzf_block(data)
    out = np.empty_like(data)
    assert lzf.decompress_into(raw, out) == data.nbytes
    assert np.array_equal(out, data)


def test_corrupt_blocks_raise_and_never_write_past_the_destination(lzf):
    data = np.tile(np.arange(13, dtype=np.int32), (500, 1))
    raw = _h5py_lzf_block(data)
    guard = np.full(data.size + 64, -7, dtype=np.int32)
    # the destination one element short: the block decodes to more bytes than expected
    with pytest.raises(ValueError, match="more bytes"):
        lzf.decompress_into(raw, guard[:data.size - 1])
    assert np.all(guard[data.size - 1:] == -7)
    # a back reference before the start of the output
    with pytest.raises(ValueError, match="corrupt"):
        lzf.decompress_into(b"\xe0\x05\x00", guard[:data.size])
    # a literal run longer than the input that is left
    with pytest.raises(ValueError, match="corrupt"):
        lzf.decompress_into(b"\x1f\x01\x02", guard[:data.size])
    # truncated inside a back reference
    with pytest.raises(ValueError, match="corrupt"):
        lzf.decompress_into(b"\x00A\xe0", guard[:data.size])
    with pytest.raises(TypeError):
        lzf.decompress_into(raw, guard[::2])  # not contiguous
    assert lzf.decompress_into(b"", guard[:1]) == 0


def test_fuzzed_blocks_never_write_outside_the_destination(lzf):
    """Random damage to a real block: the decoder returns or raises ValueError, and writes only inside dst."""
    rng = np.random.default_rng(11)
    data = np.repeat(rng.integers(0, 300, size=(400, 13), dtype=np.int32), 4, axis=0)
    raw = np.frombuffer(_h5py_lzf_block(data), dtype=np.uint8)
    room = data.nbytes
    buf = np.zeros(room + 4096, dtype=np.uint8)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(3000):
        block = raw.copy()
        how = rng.integers(3)
        if how == 0:  # flip a few bytes
            at = rng.integers(0, block.size, size=rng.integers(1, 5))
            block[at] = rng.integers(0, 256, size=at.size, dtype=np.uint8)
        elif how == 1:  # truncate
            block = block[:rng.integers(0, block.size)]
        else:  # random bytes
            block = rng.integers(0, 256, size=rng.integers(1, 600), dtype=np.uint8)
        size = int(rng.integers(room // 2, room + 1))
        buf[size:] = 0xA5
        try:
            n = lzf.decompress_into(block.tobytes(), buf[:size])
            assert 0 <= n <= size
            outcomes["ok"] += 1
        except ValueError:
            outcomes["error"] += 1
        assert np.all(buf[size:] == 0xA5)
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


def _read_all(network, kind_name, budget):
    net = Network(network)
    files = net.spec()["files"][kind_name]
    kind = KINDS[kind_name]
    stream.close_files()
    try:
        parts = [stream.read_chunk(files, kind, c)[0] for c in net.plan(kind_name, budget)]
    finally:
        stream.close_files()
    return np.concatenate(parts) if parts else np.zeros((0, kind.width), np.int32)


@pytest.mark.parametrize("name", sorted({case[0] for case in SNUDDA_CASES}))
@pytest.mark.parametrize("budget", [3_000, 10 ** 8])
def test_same_rows_as_h5py_on_every_fixture(monkeypatch, name, budget):
    """Every synapse and gap junction row, for chunks that split HDF5 chunks and for one chunk."""
    path = data_path(name)
    for kind_name in ("synapses", "gap_junctions"):
        monkeypatch.setattr(stream, "DIRECT_READ", True)
        direct = _read_all(path, kind_name, budget)
        monkeypatch.setattr(stream, "DIRECT_READ", False)
        via_h5py = _read_all(path, kind_name, budget)
        assert direct.shape == via_h5py.shape and direct.shape[0] > 0
        assert np.array_equal(direct, via_h5py)


def test_fixture_files_take_the_direct_path(monkeypatch, lzf):
    """Snudda's hyper voxel files are LZF-chunked: the reader must not silently fall back to h5py."""
    monkeypatch.setattr(stream, "DIRECT_READ", True)
    for path in glob.glob(str(data_path("striatum_300") / "voxels" / "*.hdf5")):
        with h5py.File(path, "r") as f:
            direct = stream.DirectRows.wrap(f["network/synapses"])
            assert direct is not None and direct.lzf


@pytest.mark.parametrize("rng_mode", ["philox", "snudda"])
def test_prune_output_identical_with_and_without_direct_reads(monkeypatch, tmp_path, rng_mode):
    path = data_path("striatum_300")
    outs = []
    for direct in (True, False):
        monkeypatch.setattr(stream, "DIRECT_READ", direct)
        out = tmp_path / f"{direct}.hdf5"
        gpuprune.prune(path, output_file=out, rng=rng_mode, device="cpu", workers=2, row_budget=20_000)
        outs.append(out)
    assert_same_rows(*outs)


@pytest.mark.parametrize("with_lookup", [False, True])
def test_read_threads_give_the_same_rows_and_runs(with_lookup):
    path = data_path("striatum_300")
    net = Network(path)
    files = net.spec()["files"]["synapses"]
    kind = KINDS["synapses"]
    chunks = net.plan("synapses", 5_000)
    threads = stream.ReadThreads(3)
    try:
        for chunk in chunks:
            one = stream.read_chunk(files, kind, chunk, with_lookup=with_lookup)
            three = stream.read_chunk(files, kind, chunk, with_lookup=with_lookup, threads=threads)
            assert np.array_equal(one[0], three[0])
            if with_lookup:
                assert all(np.array_equal(a, b) for a, b in zip(one[1], three[1], strict=True))
    finally:
        threads.shutdown()
        stream.close_files()
    assert len(chunks) > 10


def test_read_threads_report_a_corrupt_file(tmp_path):
    net_path = _corrupt_first_chunk(tmp_path)[0]
    net = Network(net_path)
    files = net.spec()["files"]["synapses"]
    threads = stream.ReadThreads(2)
    try:
        with pytest.raises(InputError, match="corrupt"):
            for chunk in net.plan("synapses", 10 ** 8):
                stream.read_chunk(files, KINDS["synapses"], chunk, threads=threads)
    finally:
        threads.shutdown()


def _matrix_file(path, data, **options):
    with h5py.File(path, "w") as f:
        f.create_dataset("m", data=data, **options)


def _read_slices(path, bounds, threads=None):
    """Rows of consecutive slices through the stream's reader (so the kept partial chunk is exercised)."""
    stream.close_files()
    try:
        n = bounds[-1] - bounds[0]
        out = np.full((n, 13), -1, dtype=np.int32)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            reader = stream._rows_reader(str(path), "m")
            if threads is None:
                reader.read(out, a, b, a - bounds[0])
            else:
                pending = []
                tail = reader.read(out, a, b, a - bounds[0], threads.executor, pending)
                for fut in pending:
                    fut.result()
                reader.keep(tail)
        return out
    finally:
        stream.close_files()


@pytest.mark.parametrize("options", [
    {"chunks": (700, 13), "compression": "lzf"},
    {"chunks": (700, 13)},  # chunked, no filter
    {"chunks": (700, 13), "compression": "gzip"},  # not decoded here: read through h5py
    {"chunks": (700, 7), "compression": "lzf"},  # chunks split the columns: through h5py
    {},  # contiguous: through h5py
])
def test_layouts_and_slices(monkeypatch, tmp_path, options):
    monkeypatch.setattr(stream, "DIRECT_READ", True)
    rng = np.random.default_rng(5)
    data = rng.integers(-2 ** 31, 2 ** 31, size=(5_123, 13), dtype=np.int32)  # incompressible
    data[:2000] = 3  # compressible
    path = tmp_path / "m.hdf5"
    _matrix_file(path, data, **options)
    with h5py.File(path, "r") as f:
        ds = f["m"]
        direct = stream.DirectRows.wrap(ds)
        expected_direct = options.get("chunks") == (700, 13) and options.get("compression") in (None, "lzf")
        assert (direct is not None) == expected_direct
        if options.get("compression") == "lzf" and direct is not None:
            # random rows do not compress: h5py stores those chunks raw, with the filter mask set
            assert ds.id.get_chunk_info_by_coord((4200, 0)).filter_mask == 1
            assert ds.id.get_chunk_info_by_coord((0, 0)).filter_mask == 0
    threads = stream.ReadThreads(3)
    try:
        for bounds in ([0, 5_123], [0, 1, 699, 700, 701, 1400, 2100, 2101, 5_000, 5_123], [350, 1050, 1051, 3000]):
            assert np.array_equal(_read_slices(path, bounds), data[bounds[0]:bounds[-1]])
            assert np.array_equal(_read_slices(path, bounds, threads), data[bounds[0]:bounds[-1]])
    finally:
        threads.shutdown()


def _corrupt_first_chunk(tmp_path):
    """A copy of striatum_300 whose first non-empty synapse chunk starts with an impossible back reference."""
    net = copy_network("striatum_300", tmp_path)
    for path in sorted(glob.glob(str(net / "voxels" / "*.hdf5"))):
        with h5py.File(path, "r") as f:
            ds = f["network/synapses"]
            if ds.shape[0] == 0:
                continue
            offset = ds.id.get_chunk_info(0).byte_offset
        with open(path, "r+b") as fh:
            fh.seek(offset)
            fh.write(b"\xff\xff\xff\xff")
        return net, path
    raise AssertionError("no synapse rows in striatum_300")


def test_corrupt_chunk_is_an_input_error_naming_the_file(tmp_path):
    net, victim = _corrupt_first_chunk(tmp_path)
    with pytest.raises(InputError) as err:
        gpuprune.prune(net, output_file=tmp_path / "o.hdf5", device="cpu", workers=1)
    assert victim in str(err.value) and "corrupt" in str(err.value)
    assert not (tmp_path / "o.hdf5").exists()


def test_a_missing_extension_is_said_once(monkeypatch, caplog, tmp_path):
    from gpuprune import api

    net = data_path("prune3")
    monkeypatch.setattr(api, "_lzf_warned", False)
    with caplog.at_level("WARNING", logger="gpuprune"):
        gpuprune.prune(net, output_file=tmp_path / "a.hdf5", device="cpu", workers=1)
    assert "not built" not in caplog.text  # the extension is there: nothing to say
    monkeypatch.setattr(stream, "_lzf_decompress_into", None)
    with caplog.at_level("WARNING", logger="gpuprune"):
        gpuprune.prune(net, output_file=tmp_path / "b.hdf5", device="cpu", workers=1)
        gpuprune.prune(net, output_file=tmp_path / "c.hdf5", device="cpu", workers=1)
    assert caplog.text.count("gpuprune.io._lzf is not built") == 1
