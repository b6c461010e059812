"""Philox4x32-10 against Random123's known answers, and the draw layout of DESIGN §4."""

import numpy as np
import pytest

from gpuprune import rng
from gpuprune.errors import InputError

# Random123 kat_vectors, philox4x32 with 10 rounds: (counter, key, expected output)
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_known_answer_vectors(ctr, key, expected):
    out = rng.philox4x32(*[np.array([c], dtype=np.uint32) for c in ctr], *[np.array([k]) for k in key])
    assert tuple(int(x[0]) for x in out) == expected


def test_vectorised_equals_elementwise_across_blocks():
    n = rng._BLOCK * 2 + 17  # spans block boundaries
    gen = np.random.default_rng(5)
    words = [gen.integers(0, 2 ** 32, n, dtype=np.uint64) for _ in range(6)]
    full = rng.philox4x32(*words)
    for i in (0, rng._BLOCK - 1, rng._BLOCK, n - 1):
        one = rng.philox4x32(*[w[i:i + 1] for w in words])
        assert [int(f[i]) for f in full] == [int(o[0]) for o in one]


def test_scalars_broadcast_and_kat_via_uniform():
    a, b = rng.philox_uniform(0, 0, 0, 0, np.zeros(3, np.int64), 0)
    x0, x1, x2, x3 = KAT[0][2]
    assert np.all(a == ((x0 << 32 | x1) >> 11) * 2.0 ** -53)
    assert np.all(b == ((x2 << 32 | x3) >> 11) * 2.0 ** -53)


def test_u01_conversion_exact():
    assert rng.u01(0, 0)[()] == 0.0
    assert rng.u01(0xFFFFFFFF, 0xFFFFFFFF)[()] == 1.0 - 2.0 ** -53
    assert rng.u01(0, 1 << 11)[()] == 2.0 ** -53


def test_neuron_keys_layout():
    seed = 0x1234_5678_9ABC_DEF0
    k0, k1 = rng.neuron_keys(seed, np.array([0, 7]))
    x = rng.philox4x32(np.array([7]), 0, 0, rng.KEY_TAG, seed & 0xFFFFFFFF, seed >> 32)
    assert (int(k0[1]), int(k1[1])) == (int(x[0][0]), int(x[1][0]))
    assert rng.KEY_TAG == int.from_bytes(b"neur", "big")


def test_row_and_group_draw_layout():
    k0, k1 = np.array([11]), np.array([22])
    src, row, typ = np.array([5]), np.array([3]), np.array([10])
    r_f1, r_dist = rng.row_draws(k0, k1, src, row, typ)
    x = rng.philox4x32(5, 3, 10, 0, 11, 22)
    assert r_f1[0] == rng.u01(x[0], x[1])[0] and r_dist[0] == rng.u01(x[2], x[3])[0]
    r_sm = rng.row_draws(k0, k1, src, row, typ, second=True)
    x = rng.philox4x32(5, 3, 10, 1, 11, 22)
    assert r_sm[0] == rng.u01(x[0], x[1])[0]
    r_a3, r_mu2 = rng.group_draws(k0, k1, src, rng.type_word(3, rng.KIND_GAP_JUNCTION))
    x = rng.philox4x32(5, 0xFFFFFFFF, 3 | 1 << 16, 0, 11, 22)
    assert (r_a3[0], r_mu2[0]) == (rng.u01(x[0], x[1])[0], rng.u01(x[2], x[3])[0])


def test_pinned_outputs_do_not_change():
    """A change in the generator would silently change every network: pin exact values."""
    k0, k1 = rng.neuron_keys(1003, np.array([0, 1, 12345]))
    assert k0.tolist() == [1757522578, 2812955614, 3742027240]
    assert k1.tolist() == [3797896829, 455514229, 178223587]
    r, _ = rng.philox_uniform(np.array([1, 2]), np.array([0, 0]), 10, 0, 1, 2, both=False)
    assert r.tolist() == [0.6646306461103273, 0.9283100967582267]


def test_uniformity():
    """Statistical sanity: 2**18 draws pass a 64-bin chi-square test at the 1e-6 level."""
    n = 1 << 18
    a, b = rng.philox_uniform(np.arange(n), 0, 10, 0, 7, 9)
    for v in (a, b):
        assert v.min() >= 0 and v.max() < 1
        counts = np.bincount((v * 64).astype(int), minlength=64)
        chi2 = ((counts - n / 64) ** 2 / (n / 64)).sum()
        assert chi2 < 140  # chi2(63) exceeds 140 with probability < 1e-6
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(n)


@pytest.mark.parametrize("seed", [-1, 2 ** 64, 1.5, "7", True])
def test_seed_range(seed):
    with pytest.raises(InputError):
        rng.check_seed(seed)


def test_seed_extremes_accepted():
    assert rng.check_seed(0) == 0
    assert rng.check_seed(2 ** 64 - 1) == 2 ** 64 - 1
    k0, k1 = rng.neuron_keys(2 ** 64 - 1, np.array([3]))
    x = rng.philox4x32(3, 0, 0, rng.KEY_TAG, 0xFFFFFFFF, 0xFFFFFFFF)
    assert (int(k0[0]), int(k1[0])) == (int(x[0][0]), int(x[1][0]))
