"""Bit-exactness of gpuprune.rng.pcg64 against numpy.random's own PCG64 streams."""

import numpy as np
import pytest

from gpuprune.errors import InputError
from gpuprune.rng import pcg64 as _pcg64
from gpuprune.rng.pcg64 import pcg64_uniform_at, pcg64_uniform_streams, seed_sequence_pcg64_init

EDGE_SEEDS = [0, 1, 2, 3, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1]


def _random_seeds(n, seed=0):
    return np.random.default_rng(seed).integers(0, 2**32, n, dtype=np.uint64)


def _reference(entropy, lengths):
    """What Snudda sees: one default_rng per stream, drawn with random(n)."""
    parts = [np.random.default_rng(int(e)).random(int(n)) for e, n in zip(entropy, lengths, strict=True)]
    return np.concatenate(parts) if parts else np.zeros(0)


def _reference_at(entropy, stream_index, position):
    out = []
    for i, p in zip(stream_index, position, strict=True):
        bit_gen = np.random.PCG64(int(entropy[i]))
        bit_gen.advance(int(p))
        out.append((int(bit_gen.random_raw()) >> 11) * 2.0**-53)
    return np.array(out)


@pytest.fixture
def fixed_block(monkeypatch):
    """Force a given block size so that block boundaries can be targeted."""

    def set_block(b):
        monkeypatch.setattr(_pcg64, "_block_size", lambda n_out, n_bits: min(b, n_out))

    return set_block


def test_seed_state_matches_numpy():
    seeds = np.concatenate([np.array(EDGE_SEEDS, dtype=np.uint64), _random_seeds(300)])
    state, inc = seed_sequence_pcg64_init(seeds)
    assert state.shape == inc.shape == (2, seeds.size)
    assert state.dtype == inc.dtype == np.uint64
    for i, s in enumerate(seeds):
        expected = np.random.PCG64(int(s)).state["state"]
        assert (int(state[0, i]) << 64) | int(state[1, i]) == expected["state"], s
        assert (int(inc[0, i]) << 64) | int(inc[1, i]) == expected["inc"], s


@pytest.mark.parametrize("dtype", [np.uint32, np.int64, np.uint64, None])
def test_seed_input_types(dtype):
    seeds = [0, 7, 2**32 - 1]
    arg = seeds if dtype is None else np.array(seeds, dtype=dtype)
    state, inc = seed_sequence_pcg64_init(arg)
    ref_state, ref_inc = seed_sequence_pcg64_init(np.array(seeds, dtype=np.uint32))
    assert np.array_equal(state, ref_state) and np.array_equal(inc, ref_inc)


def test_seed_empty():
    state, inc = seed_sequence_pcg64_init(np.zeros(0, dtype=np.uint32))
    assert state.shape == inc.shape == (2, 0)


def test_streams_edge_seeds_and_lengths():
    lengths = [0, 1, 2, 3, 17, 1000, 0, 5, 4096, 1, 300, 2]
    got = pcg64_uniform_streams(EDGE_SEEDS, lengths)
    assert got.dtype == np.float64 and got.shape == (sum(lengths),)
    assert np.array_equal(got, _reference(EDGE_SEEDS, lengths))


@pytest.mark.parametrize("block", [1, 2, 7, 64, 256])
def test_streams_block_boundaries(fixed_block, block):
    # Stream lengths and offsets straddle lane boundaries in every way.
    fixed_block(block)
    around = [block - 1, block, block + 1, 2 * block - 1, 2 * block, 2 * block + 1]
    lengths = np.array([n for n in around + [0, 1] + around[::-1] + [3, 0] if n >= 0])
    seeds = _random_seeds(lengths.size, seed=block)
    assert np.array_equal(pcg64_uniform_streams(seeds, lengths), _reference(seeds, lengths))


def test_streams_across_slices(monkeypatch):
    # Tiny slices and lane caps put slice and lane boundaries inside streams.
    monkeypatch.setattr(_pcg64, "_SLICE_OUTPUTS", 997)
    monkeypatch.setattr(_pcg64, "_MAX_LANES", 13)
    rng = np.random.default_rng(3)
    lengths = np.concatenate([rng.integers(0, 40, 200), [5000, 0, 1, 2500]])
    rng.shuffle(lengths)
    seeds = _random_seeds(lengths.size, seed=4)
    assert np.array_equal(pcg64_uniform_streams(seeds, lengths), _reference(seeds, lengths))


def test_streams_skewed_mix():
    # Many short streams and a few long ones, with default slicing (> 1 slice).
    rng = np.random.default_rng(5)
    short = np.exp(rng.uniform(np.log(1), np.log(1000), 3000)).astype(np.int64)
    lengths = np.concatenate([short, [400_000, 300_000, 0, 250_000, 2**14 + 1]])
    rng.shuffle(lengths)
    assert lengths.sum() > _pcg64._SLICE_OUTPUTS
    seeds = _random_seeds(lengths.size, seed=6)
    assert np.array_equal(pcg64_uniform_streams(seeds, lengths), _reference(seeds, lengths))


def test_streams_single_long_stream():
    n = 3 * _pcg64._SLICE_OUTPUTS // 2 + 3
    got = pcg64_uniform_streams([12345], [n])
    assert np.array_equal(got, np.random.default_rng(12345).random(n))


def test_streams_repeated_calls_continue_one_stream():
    # Snudda draws random(k) several times from one generator: one stream.
    rng = np.random.default_rng(99)
    parts = np.concatenate([rng.random(3), rng.random(0), rng.random(70), rng.random(1)])
    assert np.array_equal(pcg64_uniform_streams([99], [74]), parts)


def test_streams_start_offsets():
    # A stream split across calls: the second call resumes where the first stopped.
    rng = np.random.default_rng(12)
    seeds = _random_seeds(60, seed=13)
    lengths = rng.integers(0, 400, 60)
    start = rng.integers(0, 700, 60)
    start[:3] = [0, 255, 256]
    triples = zip(seeds, start, lengths, strict=True)
    expected = np.concatenate([np.random.default_rng(int(e)).random(int(a + n))[a:] for e, a, n in triples])
    assert np.array_equal(pcg64_uniform_streams(seeds, lengths, start=start), expected)
    first = pcg64_uniform_streams([77], [10])
    rest = pcg64_uniform_streams([77], [25], start=[10])
    assert np.array_equal(np.concatenate([first, rest]), np.random.default_rng(77).random(35))


def test_streams_far_start():
    far = 2**40 + 5
    got = pcg64_uniform_streams([3, 4], [5, 2], start=[far, 0])
    bit_gen = np.random.PCG64(3)
    bit_gen.advance(far)
    expected = (bit_gen.random_raw(5) >> np.uint64(11)) * 2.0**-53
    assert np.array_equal(got[:5], expected)
    assert np.array_equal(got[5:], np.random.default_rng(4).random(2))


def test_streams_duplicate_seeds():
    seeds = [42, 42, 7, 42]
    lengths = [3, 5, 2, 4]
    assert np.array_equal(pcg64_uniform_streams(seeds, lengths), _reference(seeds, lengths))


def test_streams_empty_and_zero_lengths():
    assert pcg64_uniform_streams([], []).shape == (0,)
    assert pcg64_uniform_streams([1, 2, 3], [0, 0, 0]).shape == (0,)


def test_streams_out_argument():
    out = np.full(10, np.nan)
    result = pcg64_uniform_streams([5, 6], [4, 6], out=out)
    assert result is out
    assert np.array_equal(out, _reference([5, 6], [4, 6]))
    with pytest.raises(InputError):
        pcg64_uniform_streams([5, 6], [4, 6], out=np.empty(9))
    with pytest.raises(InputError):
        pcg64_uniform_streams([5, 6], [4, 6], out=np.empty(10, dtype=np.float32))


def test_at_matches_numpy():
    rng = np.random.default_rng(8)
    seeds = _random_seeds(40, seed=9)
    small = rng.integers(0, 3000, 300)
    edges = np.array([0, 1, 255, 256, 257, 65535, 65536, 2**24 - 1, 2**24])
    huge = np.array([2**40 + 12345, 2**62 + 3, 2**63 - 2])
    position = np.concatenate([small, edges, huge])
    stream_index = rng.integers(0, seeds.size, position.size)
    got = pcg64_uniform_at(seeds, stream_index, position)
    assert np.array_equal(got, _reference_at(seeds, stream_index, position))


def test_at_agrees_with_streams():
    seeds = _random_seeds(20, seed=10)
    lengths = np.random.default_rng(11).integers(0, 600, 20)
    streams = pcg64_uniform_streams(seeds, lengths)
    stream_index = np.repeat(np.arange(20), lengths)
    position = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    assert np.array_equal(pcg64_uniform_at(seeds, stream_index, position), streams)
    # Fewer pairs than streams takes the seed-only-what-is-used path.
    pick = np.array([5, len(position) - 1])
    got = pcg64_uniform_at(seeds, stream_index[pick], position[pick])
    assert np.array_equal(got, streams[pick])


def test_at_empty():
    assert pcg64_uniform_at([1, 2], [], []).shape == (0,)


@pytest.mark.parametrize("seeds", [[-1], [2**32], [1.5], np.array([2**40], dtype=np.uint64)])
def test_bad_seeds_rejected(seeds):
    with pytest.raises(InputError):
        seed_sequence_pcg64_init(seeds)
    with pytest.raises(InputError):
        pcg64_uniform_streams(seeds, [1])


@pytest.mark.parametrize(
    ("seeds", "lengths"),
    [([1, 2], [3]), ([1], [-1]), ([1], [2.0])],
)
def test_bad_lengths_rejected(seeds, lengths):
    with pytest.raises(InputError):
        pcg64_uniform_streams(seeds, lengths)


@pytest.mark.parametrize("start", [[0], [-1, 0], [0.0, 1.0], [0, 2**62]])
def test_bad_starts_rejected(start):
    with pytest.raises(InputError):
        pcg64_uniform_streams([1, 2], [3, 4], start=start)


@pytest.mark.parametrize(
    ("stream_index", "position"),
    [([0, 1], [0]), ([2], [0]), ([-1], [0]), ([0], [-1]), ([0], [2**63 - 1])],
)
def test_at_bad_arguments_rejected(stream_index, position):
    with pytest.raises(InputError):
        pcg64_uniform_at([1, 2], stream_index, position)
