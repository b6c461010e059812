"""Counter-addressed random words and the bit fields cut from them.

Every value of a generated network is a pure function of the seed and of its position in one of these
streams, so the output does not depend on how positions are split into blocks or workers.
"""

import numpy as np

# One stream per kind of thing drawn, and how many 64-bit words each position of it holds.
STREAM_NEURON, STREAM_DEST, STREAM_SLOT, STREAM_ROW = 0, 1, 2, 3
STREAM_GJ_DEST, STREAM_GJ_SLOT, STREAM_GJ_ROW, STREAM_LAYOUT = 4, 5, 6, 7
NEURON_WORDS, SLOT_WORDS, ROW_WORDS = 4, 7, 4
GJ_SLOT_WORDS, GJ_ROW_WORDS = 5, 4

_U64 = np.uint64


class RandomStreams:
    """Counter-addressed random words.

    Word ``j`` at position ``i`` of stream ``s`` is the ``i``-th output of a
    PCG64 generator seeded with ``SeedSequence(seed, spawn_key=(s, j))``; any
    range of positions is drawn by jumping the generator with ``advance``, so
    the value never depends on how the positions are split into blocks.
    """

    def __init__(self, seed):
        self._seed = seed

    def words(self, stream, start, count, num_words):
        out = []
        for j in range(num_words):
            bit_gen = np.random.PCG64(np.random.SeedSequence(self._seed, spawn_key=(stream, j)))
            if start:
                bit_gen.advance(int(start))
            out.append(np.random.Generator(bit_gen).integers(0, 2**64, size=int(count), dtype=np.uint64))
        return out


def bits(word, shift, nbits):
    """Bits ``shift .. shift+nbits-1`` of each uint64 as int64 (nbits < 64)."""
    return ((word >> _U64(shift)) & _U64((1 << nbits) - 1)).view(np.int64)


def uniform(word, shift=11, nbits=53):
    """A uniform double in [0, 1) from a bit field."""
    return bits(word, shift, nbits) * (1.0 / (1 << nbits))


def below(u, n):
    """``floor(u * n)`` for u in [0, 1), as int64, never reaching n."""
    n = np.asarray(n)
    return np.minimum((u * n).astype(np.int64), n - 1)


def group_sizes_table(max_size, exponent, cutoff):
    """Cumulative probabilities (without the last) of sizes 1..max_size."""
    sizes = np.arange(1, max_size + 1, dtype=np.float64)
    weights = sizes ** -exponent * np.exp(-sizes / cutoff)
    cumulative = np.cumsum(weights) / weights.sum()
    return cumulative[:-1], float((sizes * weights).sum() / weights.sum())


def draw_sizes(table, u):
    """Sizes 1..max_size drawn by inverse CDF from a :func:`group_sizes_table` and uniforms ``u``."""
    return np.searchsorted(table, u, side="right").astype(np.int64) + 1
