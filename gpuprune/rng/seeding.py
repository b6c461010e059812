"""NumPy's ``SeedSequence(e)`` and PCG64 seeding, for many single-word seeds at once (bit-exact).

Reproduces ``numpy.random.PCG64(numpy.random.SeedSequence(e))``'s initial
state and increment from their published algorithms (O'Neill's seed_seq
alternative; PCG's ``srandom``), vectorised over seeds.  128-bit numbers are
held as two ``uint64`` arrays, ``(high, low)``; the 128-bit arithmetic here is
shared with the stream generator (:mod:`gpuprune.rng.pcg64`).
"""

import numpy as np

from gpuprune.errors import InputError

__all__ = ["seed_sequence_pcg64_init"]

# --- SeedSequence constants (O'Neill's seed_seq alternative, as in NumPy) ---
_SS_POOL_SIZE = 4
_SS_INIT_A = 0x43B0D7E5
_SS_MULT_A = 0x931E8875
_SS_INIT_B = 0x8B51F9DD
_SS_MULT_B = 0x58F38DED
_SS_MIX_MULT_L = 0xCA01F9DD
_SS_MIX_MULT_R = 0x4973F715
_SS_XSHIFT = 16
_MASK32_INT = 0xFFFFFFFF

# --- PCG64 (PCG XSL RR 128/64) constants ---
PCG64_MULTIPLIER = 0x2360ED051FC65DA44385DF649FCCF645
_MASK64_INT = (1 << 64) - 1
_MASK128_INT = (1 << 128) - 1

_U64_MASK32 = np.uint64(_MASK32_INT)
_U64_M_HI = np.uint64(PCG64_MULTIPLIER >> 64)
_U64_M_LO = np.uint64(PCG64_MULTIPLIER & _MASK64_INT)
_U64_M_LO0 = np.uint64(PCG64_MULTIPLIER & _MASK32_INT)
_U64_M_LO1 = np.uint64((PCG64_MULTIPLIER >> 32) & _MASK32_INT)
_U64_32 = np.uint64(32)
_U64_1 = np.uint64(1)
_U64_11 = np.uint64(11)
_U64_58 = np.uint64(58)
_U64_63 = np.uint64(63)
_U64_64 = np.uint64(64)
_TWO_POW_M53 = 2.0**-53
# Entropy words seeded per batch, to keep SeedSequence temporaries in cache.
_SEED_BATCH = 1 << 14


def _hash_constant_sequence(init, mult, count):
    """Return the ``count + 1`` successive hash multipliers ``init * mult**i``.

    The multiplier SeedSequence threads through its hash calls never depends
    on the data, so the whole sequence is known in advance.
    """
    out = [init]
    for _ in range(count):
        out.append((out[-1] * mult) & _MASK32_INT)
    return out


# mix_entropy makes 4 pool-filling and 4 * 3 cross-mixing hashmix calls.
_SS_HASH_A = _hash_constant_sequence(_SS_INIT_A, _SS_MULT_A, _SS_POOL_SIZE * _SS_POOL_SIZE)
# generate_state(4, uint64) draws 8 uint32 words.
_SS_HASH_B = _hash_constant_sequence(_SS_INIT_B, _SS_MULT_B, 2 * _SS_POOL_SIZE)
_SS_HASH_B_U32 = np.array(_SS_HASH_B, dtype=np.uint32)


def _hashmix(value, xor_c, mul_c):
    """Vectorised SeedSequence hashmix with its xor and multiply constants.

    Works on Python ints (masked to 32 bits) and on ``uint32`` arrays, where
    NumPy's wrap-around gives the modulo ``2**32``; the constants broadcast.
    """
    value = ((value ^ xor_c) * mul_c) & _MASK32_INT
    return value ^ (value >> _SS_XSHIFT)


def _mix_plan():
    """Constants of SeedSequence's pool filling and cross-mixing, per round.

    Returns the three constant pool words (hashes of the implicit zero
    entropy words) and, for each source word, the destination words and
    their ``(xor, multiply)`` hash constants as ``(3, 1)`` ``uint32`` arrays.
    """
    # Calls 0..3 fill the pool; calls 4.. cross-mix it, source-major.
    zero_words = [_hashmix(0, _SS_HASH_A[i], _SS_HASH_A[i + 1]) for i in range(1, _SS_POOL_SIZE)]
    hash_a = np.array(_SS_HASH_A, dtype=np.uint32)
    rounds = []
    call = _SS_POOL_SIZE
    for i_src in range(_SS_POOL_SIZE):
        dst = [i for i in range(_SS_POOL_SIZE) if i != i_src]
        calls = np.arange(call, call + len(dst))
        rounds.append((i_src, dst, hash_a[calls][:, None], hash_a[calls + 1][:, None]))
        call += len(dst)
    return zero_words, rounds


def _mix(x, y):
    """Vectorised SeedSequence ``mix``: ``L*x - R*y`` then an xorshift, mod 2**32."""
    result = np.uint32(_SS_MIX_MULT_L) * x - np.uint32(_SS_MIX_MULT_R) * y
    return result ^ (result >> np.uint32(_SS_XSHIFT))


_SS_ZERO_WORDS, _SS_MIX_ROUNDS = _mix_plan()


def _mulhi64(x, y):
    """High 64 bits of the elementwise products of two ``uint64`` arrays.

    Schoolbook product on 32-bit halves; every intermediate sum is below
    ``2**64`` because ``(2**32 - 1)**2 + 2 * (2**32 - 1) < 2**64``.
    """
    x0 = x & _U64_MASK32
    x1 = x >> _U64_32
    y0 = y & _U64_MASK32
    y1 = y >> _U64_32
    lo_lo = x0 * y0
    mid = x1 * y0 + (lo_lo >> _U64_32)
    mid2 = x0 * y1 + (mid & _U64_MASK32)
    return x1 * y1 + (mid >> _U64_32) + (mid2 >> _U64_32)


def _mul128(a_hi, a_lo, b_hi, b_lo):
    """Elementwise ``a * b mod 2**128`` on ``(high, low)`` ``uint64`` array pairs.

    Only ``a_lo * b_lo`` needs its full 128-bit product; the cross terms land
    in the high word, where NumPy's wrap-around modulo ``2**64`` is exact.
    """
    return _mulhi64(a_lo, b_lo) + a_hi * b_lo + a_lo * b_hi, a_lo * b_lo


def _add128(a_hi, a_lo, b_hi, b_lo):
    """``a + b mod 2**128`` on ``(high, low)`` ``uint64`` array pairs."""
    lo = a_lo + b_lo
    # The low word wrapped iff the sum is smaller than an addend.
    return a_hi + b_hi + (lo < b_lo), lo


def _as_entropy(entropy):
    """Validate per-stream seeds and return them as a 1-D ``uint32`` array."""
    arr = np.asarray(entropy)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint32)
    if arr.dtype.kind not in "iu":
        raise InputError(f"stream seeds must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and arr.min() < 0:
        raise InputError("stream seeds must be non-negative")
    if int(arr.max()) > _MASK32_INT:
        raise InputError("stream seeds must be below 2**32 (one SeedSequence word each)")
    return arr.astype(np.uint32, copy=False)


def _per_stream(values, what, entropy):
    """``values`` (one per stream seed in ``entropy``) as a 1-D ``int64`` array; ``what`` names them."""
    values = np.asarray(values).reshape(-1)
    if values.size and values.dtype.kind not in "iu":
        raise InputError(f"stream {what} must be integers, got dtype {values.dtype}")
    values = values.astype(np.int64, copy=False)
    if values.shape != entropy.shape:
        raise InputError(f"got {entropy.size} stream seeds but {values.size} stream {what}")
    return values


def _seed_batch(entropy):
    """SeedSequence + PCG64 seeding for one batch of ``uint32`` seeds.

    Returns ``(state_hi, state_lo, inc_hi, inc_lo)``.
    """
    n = entropy.size
    # Pool filling: word 0 hashes the seed, words 1..3 hash the implicit zeros.
    pool = np.empty((_SS_POOL_SIZE, n), dtype=np.uint32)
    pool[0] = _hashmix(entropy, np.uint32(_SS_HASH_A[0]), np.uint32(_SS_HASH_A[1]))
    pool[1:] = np.array(_SS_ZERO_WORDS, dtype=np.uint32)[:, None]
    # Cross-mixing: every word is folded into every other word.  Within one
    # source word the three updates read the same (unchanged) source, so
    # they run as one 2-D operation with their consecutive hash constants.
    for i_src, dst, xor_c, mul_c in _SS_MIX_ROUNDS:
        pool[dst] = _mix(pool[dst], _hashmix(pool[i_src], xor_c, mul_c))
    # generate_state(4, uint64): 8 uint32 words cycling over the pool, paired
    # little-endian into uint64 (the first word of a pair is the low half).
    n_words = 2 * _SS_POOL_SIZE
    words = pool[np.arange(n_words) % _SS_POOL_SIZE] ^ _SS_HASH_B_U32[:n_words, None]
    words *= _SS_HASH_B_U32[1 : n_words + 1, None]
    words ^= words >> np.uint32(_SS_XSHIFT)
    words = words.astype(np.uint64)
    w = words[0::2] | (words[1::2] << _U64_32)
    # PCG64.__init__ passes w[0:2] as initstate and w[2:4] as initseq, high word first.
    init_hi, init_lo = w[0], w[1]
    seq_hi, seq_lo = w[2], w[3]
    # srandom: state = 0; inc = (initseq << 1) | 1; step; state += initstate; step.
    inc_hi = (seq_hi << _U64_1) | (seq_lo >> _U64_63)
    inc_lo = (seq_lo << _U64_1) | _U64_1
    # The first step from state 0 just yields inc.
    s_hi, s_lo = _add128(inc_hi, inc_lo, init_hi, init_lo)
    s_hi, s_lo = _mul128(_U64_M_HI, _U64_M_LO, s_hi, s_lo)
    s_hi, s_lo = _add128(s_hi, s_lo, inc_hi, inc_lo)
    return s_hi, s_lo, inc_hi, inc_lo


def seed_sequence_pcg64_init(entropy):
    """Initial PCG64 state and increment of ``PCG64(SeedSequence(e))`` per seed.

    Parameters
    ----------
    entropy : array_like of int, shape (n,)
        Per-stream seeds, each in ``[0, 2**32)`` (a single SeedSequence word;
        0 is the word list ``[0]``).

    Returns
    -------
    state : numpy.ndarray of uint64, shape (2, n)
        ``state[0]`` holds the high 64 bits and ``state[1]`` the low 64 bits of
        the 128-bit LCG state right after seeding (before any draw), i.e.
        ``numpy.random.PCG64(e).state["state"]["state"]``.
    inc : numpy.ndarray of uint64, shape (2, n)
        The odd 128-bit LCG increment in the same ``(high, low)`` layout,
        ``numpy.random.PCG64(e).state["state"]["inc"]``.

    Raises
    ------
    InputError
        If a seed is negative, not an integer, or not below ``2**32``.

    Notes
    -----
    SeedSequence with the default pool of four 32-bit words is evaluated for
    all seeds at once.  The hash multiplier it threads through its ``hashmix``
    calls does not depend on the data, so its sequence is precomputed; pool
    words 1 to 3 (hashes of the implicit zero padding) are constants.  The
    pool is cross-mixed (each word folded into each other word), and
    ``generate_state(4, uint64)`` hashes eight words cycling over the pool and
    pairs them little-endian into four 64-bit words ``w``.

    PCG64 then calls the PCG ``srandom`` routine with ``initstate =
    w0 * 2**64 + w1`` and ``initseq = w2 * 2**64 + w3``: the increment is
    ``(initseq << 1) | 1`` and the state is ``(inc + initstate) * M + inc``
    (mod ``2**128``), the result of stepping from 0, adding ``initstate`` and
    stepping again.

    References
    ----------
    .. [1] M. E. O'Neill, "PCG: A Family of Simple Fast Space-Efficient
       Statistically Good Algorithms for Random Number Generation",
       Harvey Mudd College, HMC-CS-2014-0905, 2014.
    .. [2] M. E. O'Neill, "Developing a seed_seq Alternative", 2015,
       https://www.pcg-random.org/posts/developing-a-seed_seq-alternative.html
    .. [3] NumPy, ``numpy.random.SeedSequence`` and ``numpy.random.PCG64``,
       https://numpy.org/doc/stable/reference/random/
    """
    entropy = _as_entropy(entropy)
    n = entropy.size
    state = np.empty((2, n), dtype=np.uint64)
    inc = np.empty((2, n), dtype=np.uint64)
    for a in range(0, n, _SEED_BATCH):
        b = min(n, a + _SEED_BATCH)
        state[0, a:b], state[1, a:b], inc[0, a:b], inc[1, a:b] = _seed_batch(entropy[a:b])
    return state, inc
