"""Vectorised, bit-exact re-implementation of NumPy's seeded PCG64 streams.

Snudda seeds one ``numpy.random.default_rng(seed)`` per destination neuron and
draws doubles from it with ``rng.random(k)``.  This module reproduces those
doubles for many streams at once, in pure NumPy, without a Python loop over
streams or over elements: loops run only over the 8-bit digits of a jump
distance, over the steps of a block of at most a few hundred outputs, or over
slices of about a million outputs.

Three pieces are re-implemented from their published algorithms:

* ``SeedSequence(e)`` for a single 32-bit entropy word and its
  ``generate_state(4, numpy.uint64)``;
* PCG64 seeding (``pcg_setseq_128_srandom_r``), the 128-bit LCG step,
  LCG jump-ahead and the XSL-RR 128/64 output function;
* ``Generator.random``'s conversion ``(next64 >> 11) * 2**-53``.

128-bit numbers are held as two ``uint64`` arrays, ``(high, low)``; NumPy's
integer arrays wrap modulo ``2**64``, so only the high half of the
``low x low`` partial product needs 32-bit limbs.  The ``(2, n)`` layout of
states returned by :func:`seed_sequence_pcg64_init` follows that split.
"""

import numpy as np

from gpuprune.errors import InputError

__all__ = [
    "pcg64_uniform_at",
    "pcg64_uniform_streams",
    "seed_sequence_pcg64_init",
]

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
# Jump-ahead uses one table lookup per 8-bit digit of the distance; eight
# levels cover every int64 distance.
_JUMP_RADIX_BITS = 8
_JUMP_RADIX = 1 << _JUMP_RADIX_BITS
_JUMP_LEVELS = 64 // _JUMP_RADIX_BITS

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

# Outputs per slice: keeps the (B, W) staging buffer at 8 MiB, inside L3 cache,
# which makes its transpose into output order several times faster.
_SLICE_OUTPUTS = 1 << 20
# Lane count where NumPy's uint64 ufuncs run fastest here (arrays stay in L2).
_MAX_LANES = 1 << 14
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


def _jump_tables():
    """Radix-256 LCG jump tables, shape ``(_JUMP_LEVELS, 4, 256)`` ``uint64``.

    Advancing ``d`` steps maps ``s -> A_d s + G_d inc`` (mod 2**128) with
    ``A_d = M**d`` and ``G_d = sum_{i<d} M**i``.  Entry ``[level, :, p]``
    holds ``(A_hi, A_lo, G_hi, G_lo)`` for ``d = p * 256**level``, built by
    composing ``(a, g)`` after ``(A, G)`` into ``(a A, a G + g)``.
    """
    table = np.empty((_JUMP_LEVELS, 4, _JUMP_RADIX), dtype=np.uint64)
    step_a, step_g = PCG64_MULTIPLIER, 1  # one step at level 0
    for level in range(_JUMP_LEVELS):
        a, g = 1, 0
        for p in range(_JUMP_RADIX):
            table[level, :, p] = (a >> 64, a & _MASK64_INT, g >> 64, g & _MASK64_INT)
            a, g = (step_a * a) & _MASK128_INT, (step_a * g + step_g) & _MASK128_INT
        # After the loop (a, g) advances 256 steps of this level: the next level's unit.
        step_a, step_g = a, g
    return table


_JUMP_TABLE = _jump_tables()


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


def _jump(s_hi, s_lo, c_hi, c_lo, distance):
    """Advance each LCG state by its own ``distance`` steps, in place.

    ``s`` and ``c`` are the ``(high, low)`` states and increments; ``distance``
    is a non-negative ``int64`` array.  Jumps of different lengths commute,
    so the distance is split into base-256 digits and each digit's jump is
    looked up and applied to all lanes at once (digit 0 is the identity).
    Lanes are taken in cache-sized batches: the 128-bit products make many
    temporaries.
    """
    radix_mask = np.int64(_JUMP_RADIX - 1)
    for a in range(0, distance.size, _MAX_LANES):
        b = min(distance.size, a + _MAX_LANES)
        d = distance[a:b]
        n_levels = -(-int(d.max()).bit_length() // _JUMP_RADIX_BITS)
        for level in range(n_levels):
            digit = (d >> np.int64(level * _JUMP_RADIX_BITS)) & radix_mask
            a_hi, a_lo, g_hi, g_lo = _JUMP_TABLE[level][:, digit]
            a_hi, a_lo = _mul128(a_hi, a_lo, s_hi[a:b], s_lo[a:b])
            g_hi, g_lo = _mul128(g_hi, g_lo, c_hi[a:b], c_lo[a:b])
            s_hi[a:b], s_lo[a:b] = _add128(a_hi, a_lo, g_hi, g_lo)


def _output_doubles(s_hi, s_lo, out):
    """XSL-RR output of the states, mapped to ``[0, 1)`` as ``Generator.random`` does."""
    x = s_hi ^ s_lo
    rot = s_hi >> _U64_58
    # rotr(x, r) = (x >> r) | (x << (-r & 63)); r = 0 leaves x unchanged.
    x = (x >> rot) | (x << ((_U64_64 - rot) & _U64_63))
    np.multiply(x >> _U64_11, _TWO_POW_M53, out=out)


class _Stepper:
    """Preallocated in-place LCG stepping and output over ``width`` lanes.

    The hot loop runs one step per block position, so every ufunc writes into
    a buffer allocated once instead of a fresh temporary.
    """

    def __init__(self, width):
        self.t0 = np.empty(width, dtype=np.uint64)
        self.t1 = np.empty(width, dtype=np.uint64)
        self.t2 = np.empty(width, dtype=np.uint64)
        self.t3 = np.empty(width, dtype=np.uint64)
        self.carry = np.empty(width, dtype=bool)

    def step(self, hi, lo, inc_hi, inc_lo):
        """``(hi, lo) <- (hi, lo) * M + inc mod 2**128``, in place."""
        t0, t1, t2, t3 = self.t0, self.t1, self.t2, self.t3
        # High 64 bits of lo * M_lo from 32-bit halves (see _mulhi64).
        np.bitwise_and(lo, _U64_MASK32, out=t0)
        np.right_shift(lo, _U64_32, out=t1)
        np.multiply(t0, _U64_M_LO0, out=t2)
        np.right_shift(t2, _U64_32, out=t2)
        np.multiply(t1, _U64_M_LO0, out=t3)
        np.add(t3, t2, out=t3)
        np.multiply(t0, _U64_M_LO1, out=t0)
        np.bitwise_and(t3, _U64_MASK32, out=t2)
        np.add(t0, t2, out=t0)
        np.right_shift(t3, _U64_32, out=t3)
        np.multiply(t1, _U64_M_LO1, out=t1)
        np.add(t1, t3, out=t1)
        np.right_shift(t0, _U64_32, out=t0)
        np.add(t1, t0, out=t1)
        # Cross terms only affect the high word, where wrapping is exact.
        np.multiply(hi, _U64_M_LO, out=hi)
        np.add(hi, t1, out=hi)
        np.multiply(lo, _U64_M_HI, out=t0)
        np.add(hi, t0, out=hi)
        np.multiply(lo, _U64_M_LO, out=lo)
        # Add the increment with carry from the low into the high word.
        np.add(lo, inc_lo, out=lo)
        np.less(lo, inc_lo, out=self.carry)
        np.add(hi, inc_hi, out=hi)
        np.add(hi, self.carry, out=hi)

    def output(self, hi, lo, out):
        """Write ``(xslrr(hi, lo) >> 11) * 2**-53`` into the float64 array ``out``."""
        t0, t1, t2 = self.t0, self.t1, self.t2
        np.bitwise_xor(hi, lo, out=t0)
        np.right_shift(hi, _U64_58, out=t1)
        np.right_shift(t0, t1, out=t2)
        np.negative(t1, out=t1)
        np.bitwise_and(t1, _U64_63, out=t1)
        np.left_shift(t0, t1, out=t0)
        np.bitwise_or(t0, t2, out=t0)
        np.right_shift(t0, _U64_11, out=t0)
        np.multiply(t0, _TWO_POW_M53, out=out)


def _block_size(n_out, n_bits):
    """Steps per lane for a slice of ``n_out`` outputs and ``n_bits``-bit jumps.

    Every lane pays one table-driven jump per 8-bit digit of its start
    position (about 50 element operations each), while every block step
    pays a fixed Python and ufunc-dispatch overhead (about 30 calls).
    ``B = sqrt(n_out * digits / 400)`` balances the two (measured on one
    x86-64 core); the lane count is capped where NumPy's ufuncs stop
    fitting in cache.
    """
    digits = max(1, -(-n_bits // _JUMP_RADIX_BITS))
    b = int(round(np.sqrt(n_out * digits / 400.0)))
    b = max(b, -(-n_out // _MAX_LANES), 1)
    return min(b, n_out)


def _generate_slice(out, j0, j1, starts, ends, s0, inc0, n_bits):
    """Fill ``out`` with outputs ``j0 .. j1-1`` of the concatenated streams.

    ``out`` is the slice's part of the output.  Lane ``l`` produces the ``B``
    consecutive outputs starting at ``j0 + l * B``; its first state comes from a jump-ahead within its stream,
    and whenever a new stream begins inside a lane the lane is reset to that
    stream's seeded state and increment just before that step.
    """
    n_out = j1 - j0
    b = _block_size(n_out, n_bits)
    width = -(-n_out // b)
    lane_start = j0 + np.arange(width, dtype=np.int64) * b
    lane_stream = np.searchsorted(ends, lane_start, side="right")
    s_hi = s0[0, lane_stream]
    s_lo = s0[1, lane_stream]
    c_hi = inc0[0, lane_stream]
    c_lo = inc0[1, lane_stream]
    _jump(s_hi, s_lo, c_hi, c_lo, lane_start - starts[lane_stream])

    # Streams that begin strictly inside a lane, grouped by step within the lane.
    first = np.searchsorted(starts, j0, side="right")
    last = np.searchsorted(starts, j1, side="left")
    rel = starts[first:last] - j0
    inside = rel % b != 0
    rel = rel[inside]
    reset_step = rel % b
    order = np.argsort(reset_step, kind="stable")
    reset_lane = (rel // b)[order]
    reset_stream = np.arange(first, last)[inside][order]
    reset_s_hi = s0[0, reset_stream]
    reset_s_lo = s0[1, reset_stream]
    reset_c_hi = inc0[0, reset_stream]
    reset_c_lo = inc0[1, reset_stream]
    bounds = np.searchsorted(reset_step[order], np.arange(b + 1))

    buf = np.empty((b, width), dtype=np.float64)
    stepper = _Stepper(width)
    for k in range(b):
        r0, r1 = bounds[k], bounds[k + 1]
        if r1 > r0:
            lanes = reset_lane[r0:r1]
            s_hi[lanes] = reset_s_hi[r0:r1]
            s_lo[lanes] = reset_s_lo[r0:r1]
            c_hi[lanes] = reset_c_hi[r0:r1]
            c_lo[lanes] = reset_c_lo[r0:r1]
        stepper.step(s_hi, s_lo, c_hi, c_lo)
        stepper.output(s_hi, s_lo, buf[k])

    # Lane-major transpose back into output order; the last lane may be partial.
    full = n_out // b
    out[: full * b].reshape(full, b)[...] = buf[:, :full].T
    if full < width:
        out[full * b : n_out] = buf[: n_out - full * b, full]


def pcg64_uniform_streams(entropy, lengths, start=None, out=None):
    """Concatenated ``default_rng(e).random(n)`` doubles for many streams.

    Parameters
    ----------
    entropy : array_like of int, shape (n_streams,)
        Per-stream seeds in ``[0, 2**32)``.
    lengths : array_like of int, shape (n_streams,)
        Number of doubles to draw from each stream (``>= 0``).
    start : array_like of int, shape (n_streams,), optional
        Per-stream index of the first double to return (``>= 0``), for a
        stream whose earlier doubles were drawn by a previous call; 0 when
        omitted.
    out : numpy.ndarray of float64, shape (lengths.sum(),), optional
        Contiguous array to write into; allocated when omitted.

    Returns
    -------
    numpy.ndarray of float64, shape (lengths.sum(),)
        For each stream ``i`` in order, doubles ``start[i]`` to
        ``start[i] + lengths[i] - 1`` of the sequence that repeated
        ``numpy.random.default_rng(int(entropy[i])).random(k)`` calls return,
        bit for bit; with ``start`` omitted, exactly
        ``default_rng(int(entropy[i])).random(lengths[i])``.

    Raises
    ------
    InputError
        If the shapes differ, a length or start is negative, or a seed is out
        of range.

    Notes
    -----
    Each stream is seeded with :func:`seed_sequence_pcg64_init` (and jumped
    ``start`` steps ahead).  PCG64
    advances a 128-bit LCG ``s <- M s + inc (mod 2**128)`` and outputs
    ``rotr64(hi(s) ^ lo(s), hi(s) >> 58)`` from the advanced state (XSL-RR
    128/64); ``Generator.random`` maps it to ``(x >> 11) * 2**-53``.

    The concatenated output is processed in slices of about a million
    values, each cut into equal blocks of ``B`` consecutive outputs
    ("lanes", ``B`` at most a few hundred), which may span stream
    boundaries.  The first state of every lane is found by jump-ahead:
    advancing ``d`` steps maps ``s -> A_d s + G_d inc`` with ``A_d = M**d``
    and ``G_d = sum_{i<d} M**i``.  Jumps commute, so ``d`` is split into
    base-256 digits and, per digit position, the precomputed ``(A, G)`` of
    each lane's digit is looked up and applied to all lanes at once.  All
    lanes then step together ``B`` times; a lane that reaches the start of
    a new stream is first reset to that stream's seeded state and
    increment.  Python loops therefore run over at most 8 digit positions
    and ``B`` block steps per slice, never over streams or values.

    The 128-bit product keeps ``(high, low)`` ``uint64`` words: the cross
    terms need only their low 64 bits, which NumPy's wrapping multiply
    gives, and the high half of ``low * M_low`` uses 32-bit halves.

    References
    ----------
    .. [1] M. E. O'Neill, "PCG: A Family of Simple Fast Space-Efficient
       Statistically Good Algorithms for Random Number Generation",
       Harvey Mudd College, HMC-CS-2014-0905, 2014.
    .. [2] F. B. Brown, "Random Number Generation with Arbitrary Strides",
       Trans. Am. Nucl. Soc. 71, 1994 (LCG jump-ahead).
    .. [3] NumPy, ``numpy.random.SeedSequence``, ``numpy.random.PCG64`` and
       ``numpy.random.Generator.random``,
       https://numpy.org/doc/stable/reference/random/
    """
    entropy = _as_entropy(entropy)
    lengths = _per_stream(lengths, "lengths", entropy)
    if lengths.size and lengths.min() < 0:
        raise InputError("stream lengths must be non-negative")
    if start is not None:
        start = _per_stream(start, "starts", entropy)
        if start.size and (start.min() < 0 or (start.max() + lengths.max()) >= 2**62):
            raise InputError("stream starts must be non-negative and below 2**62")
    total = int(lengths.sum())
    if out is None:
        out = np.empty(total, dtype=np.float64)
    elif out.shape != (total,) or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise InputError(f"out must be a contiguous float64 array of shape ({total},)")
    if total == 0:
        return out

    # Empty streams draw nothing; dropping them makes stream starts unique.
    used = np.flatnonzero(lengths)
    used_len = lengths[used]
    s0, inc0 = seed_sequence_pcg64_init(entropy[used])
    if start is not None:
        _jump(s0[0], s0[1], inc0[0], inc0[1], start[used])
    ends = np.cumsum(used_len)
    starts = ends - used_len
    n_bits = int(used_len.max()).bit_length()

    for j0 in range(0, total, _SLICE_OUTPUTS):
        j1 = min(total, j0 + _SLICE_OUTPUTS)
        _generate_slice(out[j0:j1], j0, j1, starts, ends, s0, inc0, n_bits)
    return out


def pcg64_uniform_at(entropy, stream_index, position):
    """Single doubles at arbitrary ``(stream, position)`` pairs.

    Parameters
    ----------
    entropy : array_like of int, shape (n_streams,)
        Per-stream seeds in ``[0, 2**32)``.
    stream_index : array_like of int, shape (m,)
        Index into ``entropy`` for each requested value.
    position : array_like of int, shape (m,)
        Zero-based draw number within that stream (``>= 0``).

    Returns
    -------
    numpy.ndarray of float64, shape (m,)
        ``default_rng(int(entropy[stream_index[q]])).random(position[q] + 1)[-1]``
        for every ``q``, bit for bit.

    Raises
    ------
    InputError
        If the shapes differ, an index is out of range, a position is
        negative, or a seed is out of range.

    Notes
    -----
    Every pair is independent: the stream's seeded state is advanced
    ``position + 1`` steps by table-driven LCG jump-ahead, one 128-bit
    multiply-add per base-256 digit of the distance (see
    :func:`pcg64_uniform_streams`), and passed through the XSL-RR output.
    That costs several times one LCG step per pair, so
    :func:`pcg64_uniform_streams` is much faster for contiguous runs.

    References
    ----------
    .. [1] M. E. O'Neill, "PCG: A Family of Simple Fast Space-Efficient
       Statistically Good Algorithms for Random Number Generation",
       Harvey Mudd College, HMC-CS-2014-0905, 2014.
    .. [2] NumPy, ``numpy.random.SeedSequence`` and ``numpy.random.PCG64``,
       https://numpy.org/doc/stable/reference/random/
    """
    entropy = _as_entropy(entropy)
    stream_index = np.asarray(stream_index).reshape(-1)
    position = np.asarray(position).reshape(-1)
    if stream_index.shape != position.shape:
        raise InputError(f"got {stream_index.size} stream indices but {position.size} positions")
    if stream_index.size == 0:
        return np.zeros(0, dtype=np.float64)
    if stream_index.dtype.kind not in "iu" or position.dtype.kind not in "iu":
        raise InputError("stream indices and positions must be integers")
    stream_index = stream_index.astype(np.int64, copy=False)
    position = position.astype(np.int64, copy=False)
    if stream_index.min() < 0 or stream_index.max() >= entropy.size:
        raise InputError(f"stream indices must lie in [0, {entropy.size})")
    if position.min() < 0 or position.max() >= np.iinfo(np.int64).max:
        raise InputError("positions must be non-negative and below 2**63 - 1")
    if stream_index.size >= entropy.size:
        s0, inc0 = seed_sequence_pcg64_init(entropy)
    else:
        # Fewer pairs than streams: seed only the streams asked for.
        used, stream_index = np.unique(stream_index, return_inverse=True)
        s0, inc0 = seed_sequence_pcg64_init(entropy[used])
    s_hi, s_lo = s0[0, stream_index], s0[1, stream_index]
    # Draw p comes from the state advanced p + 1 times.
    _jump(s_hi, s_lo, inc0[0, stream_index], inc0[1, stream_index], position + 1)
    out = np.empty(position.size, dtype=np.float64)
    for a in range(0, position.size, _MAX_LANES):
        b = min(position.size, a + _MAX_LANES)
        _output_doubles(s_hi[a:b], s_lo[a:b], out[a:b])
    return out
