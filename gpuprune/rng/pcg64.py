"""Vectorised, bit-exact re-implementation of NumPy's seeded PCG64 streams.

Snudda seeds one ``numpy.random.default_rng(seed)`` per destination neuron and
draws doubles from it with ``rng.random(k)``.  This module reproduces those
doubles for many streams at once, in pure NumPy, without a Python loop over
streams or over elements: loops run only over the 8-bit digits of a jump
distance, over the steps of a block of at most a few hundred outputs, or over
slices of about a million outputs.

Three pieces are re-implemented from their published algorithms:

* ``SeedSequence(e)`` for a single 32-bit entropy word, its
  ``generate_state(4, numpy.uint64)`` and PCG64 seeding
  (``pcg_setseq_128_srandom_r``), in :mod:`gpuprune.rng.seeding`;
* the 128-bit LCG step, LCG jump-ahead and the XSL-RR 128/64 output
  function, here;
* ``Generator.random``'s conversion ``(next64 >> 11) * 2**-53``.

128-bit numbers are held as two ``uint64`` arrays, ``(high, low)``; NumPy's
integer arrays wrap modulo ``2**64``, so only the high half of the
``low x low`` partial product needs 32-bit limbs.  The ``(2, n)`` layout of
states returned by :func:`seed_sequence_pcg64_init` follows that split.
"""

import numpy as np

from gpuprune.errors import InputError
from gpuprune.rng.seeding import (  # noqa: F401 (seed_sequence_pcg64_init: importable here, as before)
    _MASK64_INT,
    _MASK128_INT,
    _TWO_POW_M53,
    _U64_11,
    _U64_32,
    _U64_58,
    _U64_63,
    _U64_64,
    _U64_M_HI,
    _U64_M_LO,
    _U64_M_LO0,
    _U64_M_LO1,
    _U64_MASK32,
    PCG64_MULTIPLIER,
    _add128,
    _as_entropy,
    _mul128,
    _per_stream,
    seed_sequence_pcg64_init,
)

__all__ = [
    "pcg64_uniform_at",
    "pcg64_uniform_streams",
    "seed_sequence_pcg64_init",
]

# Jump-ahead uses one table lookup per 8-bit digit of the distance; eight
# levels cover every int64 distance.
_JUMP_RADIX_BITS = 8
_JUMP_RADIX = 1 << _JUMP_RADIX_BITS
_JUMP_LEVELS = 64 // _JUMP_RADIX_BITS

# Outputs per slice: keeps the (B, W) staging buffer at 8 MiB, inside L3 cache,
# which makes its transpose into output order several times faster.
_SLICE_OUTPUTS = 1 << 20
# Lane count where NumPy's uint64 ufuncs run fastest here (arrays stay in L2).
_MAX_LANES = 1 << 14


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
