"""Counter-based random numbers: Philox4x32-10 in NumPy, and the draw layout of DESIGN §4.

Every random number gpuprune uses in philox mode is a pure function of
(seed, dest, src, channel type, data kind, row index within its group), so
results do not depend on how the work is split, on the order files are read,
or on whether a CPU or a GPU computes them.  ``kernels/philox.cuh`` holds the
same generator for the device; both are checked against the published
Random123 known-answer vectors.

Notes
-----
Philox4x32-10 (Salmon et al. 2011) maps a 128-bit counter and a 64-bit key to
128 random bits through ten rounds of two 32x32->64 bit multiplications and
xors, bumping the key by the Weyl constants between rounds.  NumPy has no
32x32->64 "mulhilo", but the full product of two 32-bit values fits in a
uint64, so every lane is held in a uint64 array whose upper half is zero.

References
----------
J. K. Salmon, M. A. Moraes, R. O. Dror and D. E. Shaw, "Parallel random
numbers: as easy as 1, 2, 3", SC'11, 2011.  Random123 (D. E. Shaw Research).
"""

import numpy as np

from gpuprune.rules.config import check_seed  # noqa: F401 (importable here, as before)

PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = np.uint32(0x9E3779B9)  # key bumps (Weyl sequence), added modulo 2**32
PHILOX_W1 = np.uint32(0xBB67AE85)
PHILOX_ROUNDS = 10

#: ``ctr[3]`` of the per-neuron key derivation call ("neur").
KEY_TAG = 0x6E657572
#: ``ctr[1]`` of the per-group draws (a3, mu2).
GROUP_ROW = 0xFFFFFFFF
#: data kinds, folded into ``ctr[2]`` as ``type | kind << 16``.
KIND_SYNAPSE = 0
KIND_GAP_JUNCTION = 1
#: default master seed when neither the user nor the config gives one (as Snudda).
DEFAULT_SEED = 1003

_SHIFT32 = np.uint64(32)
_SHIFT11 = np.uint64(11)
_TWO_M53 = 2.0 ** -53
# Lanes processed per pass: small enough that the temporaries stay in cache.
_BLOCK = 1 << 14


def _philox_block(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds on uint32 lane arrays of one block; returns the four output lanes.

    The 32x32->64 bit products are formed in uint64 and read back through a
    uint32 view: its odd words are the high halves, its even words the low
    halves (little-endian), which saves the shifts and masks.  uint32 key
    additions wrap modulo 2**32 as Philox requires.
    """
    if np.little_endian:
        hi, lo = slice(1, None, 2), slice(0, None, 2)
    else:  # pragma: no cover - big-endian hosts
        hi, lo = slice(0, None, 2), slice(1, None, 2)
    for r in range(PHILOX_ROUNDS):
        p0 = c0.astype(np.uint64)
        p0 *= PHILOX_M0
        p1 = c2.astype(np.uint64)
        p1 *= PHILOX_M1
        v0, v1 = p0.view(np.uint32), p1.view(np.uint32)
        # (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        c0 = v1[hi] ^ c1
        c0 ^= k0
        c2 = v0[hi] ^ c3
        c2 ^= k1
        c1, c3 = v1[lo], v0[lo]
        if r + 1 < PHILOX_ROUNDS:
            k0 = k0 + PHILOX_W0
            k1 = k1 + PHILOX_W1
    return c0, c1, c2, c3


def _lane(v, s, e):
    """Block ``[s, e)`` of an input word as a uint32 array (scalars broadcast)."""
    if np.ndim(v) == 0:
        return np.full(e - s, int(v) & 0xFFFFFFFF, dtype=np.uint32)
    return np.asarray(v[s:e]).astype(np.uint32, copy=False)


def _size(*words):
    sizes = {np.size(w) for w in words if np.ndim(w) > 0}
    if len(sizes) > 1:
        raise ValueError(f"counter and key words differ in length: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def _slicer(words):
    return lambda s, e: tuple(_lane(w, s, e) for w in words)


def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counters ``(c0, c1, c2, c3)`` under keys ``(k0, k1)``.

    Parameters
    ----------
    c0, c1, c2, c3, k0, k1 : array_like of int
        32-bit counter and key words; scalars broadcast against arrays of one
        common length.  Values are taken modulo 2**32.

    Returns
    -------
    x0, x1, x2, x3 : ndarray of uint32
        The four output words.
    """
    words = (c0, c1, c2, c3, k0, k1)
    n = _size(*words)
    lanes = _slicer(words)
    out = [np.empty(n, dtype=np.uint32) for _ in range(4)]
    for s in range(0, n, _BLOCK):
        e = min(n, s + _BLOCK)
        for o, r in zip(out, _philox_block(*lanes(s, e)), strict=True):
            o[s:e] = r
    return tuple(out)


def philox_uniform_blocks(n, lanes, both=True):
    """Philox draws as doubles, with the counter and key words supplied block by block.

    Parameters
    ----------
    n : int
        Number of draws.
    lanes : callable
        ``lanes(s, e)`` returns the six words ``(c0, c1, c2, c3, k0, k1)`` of
        draws ``s .. e-1`` as uint32 arrays (gathers happen here, in cache).
    both : bool
        Also return ``u(x2, x3)``.

    Returns
    -------
    a, b : ndarray of float64
        ``u(x0, x1)`` and ``u(x2, x3)`` (``b`` is None unless ``both``).
    """
    a = np.empty(n, dtype=np.float64)
    b = np.empty(n, dtype=np.float64) if both else None
    for s in range(0, n, _BLOCK):
        e = min(n, s + _BLOCK)
        x0, x1, x2, x3 = _philox_block(*lanes(s, e))
        a[s:e] = u01(x0, x1)
        if both:
            b[s:e] = u01(x2, x3)
    return a, b


def philox_uniform(c0, c1, c2, c3, k0, k1, both=True):
    """Philox draws as doubles: ``u(x0, x1)`` and, if ``both``, ``u(x2, x3)``.

    Computed block by block so that temporaries stay in cache; equal to
    :func:`u01` of :func:`philox4x32`'s words.
    """
    words = (c0, c1, c2, c3, k0, k1)
    return philox_uniform_blocks(_size(*words), _slicer(words), both)


def u01(hi, lo):
    """Two 32-bit words to a double in [0, 1): ``(((hi << 32) | lo) >> 11) * 2**-53``."""
    w = (np.asarray(hi).astype(np.uint64) << _SHIFT32) | np.asarray(lo).astype(np.uint64)
    return (w >> _SHIFT11).astype(np.float64) * _TWO_M53


def neuron_keys(seed, dest):
    """Per-neuron Philox keys ``(k0, k1)`` for the neuron ids in ``dest``.

    The key of neuron ``d`` is ``(x0, x1)`` of the call with counter
    ``(d, 0, 0, KEY_TAG)`` and key ``(seed & 0xffffffff, seed >> 32)``.
    """
    seed = check_seed(seed)
    dest = np.asarray(dest)
    x0, x1, _, _ = philox4x32(dest, 0, 0, KEY_TAG, seed & 0xFFFFFFFF, seed >> 32)
    return x0, x1


def type_word(channel_type, kind):
    """Counter word 2: ``channel_type | kind << 16``."""
    return np.asarray(channel_type, dtype=np.uint64) | np.uint64(kind << 16)


def row_draws(k0, k1, src, row, tword, *, second=False, both=True):
    """Per-row draws of DESIGN §4.

    Parameters
    ----------
    k0, k1 : ndarray
        Keys of each row's dest neuron (see :func:`neuron_keys`).
    src, row, tword : ndarray
        Source neuron id, row index within the group, and counter word 2.
    second : bool
        False: counter word 3 = 0, returns ``(r_f1, r_dist)`` (``r_dist`` None
        unless ``both``).  True: counter word 3 = 1, returns ``r_sm``.
    """
    if second:
        return philox_uniform(src, row, tword, 1, k0, k1, both=False)[0]
    return philox_uniform(src, row, tword, 0, k0, k1, both=both)


def group_draws(k0, k1, src, tword):
    """Per-group draws ``(r_a3, r_mu2)`` of DESIGN §4 (counter word 1 = 0xffffffff)."""
    return philox_uniform(src, GROUP_ROW, tword, 0, k0, k1, both=True)
