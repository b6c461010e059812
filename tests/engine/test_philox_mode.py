"""philox mode: the statistical expectations of Snudda's prune scenarios (prune3 test configs).

Each scenario is pruned with K fixed seeds.  The bound on the mean count is
5 standard errors of the exact distribution the rules imply (binomial for
independent rows, Bernoulli-weighted sums for whole-group decisions); the
sample variance must lie within the 0.1 % and 99.9 % quantiles of the
chi-square distribution with K - 1 degrees of freedom.  Seeds are fixed, so
the tests are deterministic; the bounds are not tuned to the outcome.
"""

import math

import h5py
import numpy as np
import pytest
from conftest import data_path

from gpuprune.api import Pruner

K = 30
CHI2_LO, CHI2_HI = 11.59, 58.30  # chi2(29) quantiles 0.001 and 0.999

# prune3: 100 GABA and 100 AMPA groups (80 of 2 rows, 20 of 1 row each), 16 gap junction groups of 4
N_SYN_TYPE = 180


def counts(config, tmp_path):
    net = data_path("prune3")
    pruner = Pruner(net, config_file=net / config)
    out = []
    for seed in range(K):
        path = tmp_path / f"o{seed}.hdf5"
        pruner.prune(path, random_seed=1000 + seed, device="cpu", workers=1)
        with h5py.File(path, "r") as f:
            syn, gj = f["network/synapses"][()], f["network/gap_junctions"][()]
        out.append((syn, gj))
    return out


def putative_group_sizes():
    sizes = {}
    for path in sorted(data_path("prune3", "voxels").glob("*.hdf5")):
        with h5py.File(path, "r") as f:
            for key in map(tuple, f["network/synapses"][:, [0, 1, 6]]):
                sizes[key] = sizes.get(key, 0) + 1
    return sizes


def assert_whole_groups(runs):
    """With f1 = 1 and no soft_max effect, a group is kept whole or not at all."""
    sizes = putative_group_sizes()
    for s, _ in runs:
        keys, kept = np.unique(s[:, [0, 1, 6]], axis=0, return_counts=True)
        assert all(sizes[tuple(k)] == c for k, c in zip(keys.tolist(), kept.tolist(), strict=True))


def check(samples, mean, var):
    samples = np.asarray(samples, dtype=float)
    se = math.sqrt(var / K)
    assert abs(samples.mean() - mean) < 5 * se, (samples.mean(), mean, se)
    if var > 0:
        ratio = samples.var(ddof=1) * (K - 1) / var
        assert CHI2_LO < ratio < CHI2_HI, ratio


def test_f1_binomial(tmp_path):
    runs = counts("network-config-test-1.json", tmp_path)
    gaba = [int((s[:, 6] == 10).sum()) for s, _ in runs]
    ampa = [int((s[:, 6] == 11).sum()) for s, _ in runs]
    check(gaba, N_SYN_TYPE * 0.5, N_SYN_TYPE * 0.25)
    check(ampa, N_SYN_TYPE * 0.9, N_SYN_TYPE * 0.09)
    assert all(g.shape[0] == 64 for _, g in runs)


def test_soft_max_reduces(tmp_path):
    runs = counts("network-config-test-2.json", tmp_path)
    p = 2 * 1 / ((1 + math.exp(-(2 - 1) / 5)) * 2)  # soft_max 1, groups of 2
    n = [s.shape[0] for s, _ in runs]
    assert all(x < N_SYN_TYPE for x in n)
    check(n, 20 + 160 * p, 160 * p * (1 - p))


def test_mu2_removes_pairs_with_few_synapses(tmp_path):
    runs = counts("network-config-test-3.json", tmp_path)
    p2 = 1 / (1 + math.exp(-8 / 2 * (2 - 2)))  # 0.5 for the 80 pairs with 2 rows
    p1 = 1 / (1 + math.exp(-8 / 2 * (1 - 2)))  # 0.018 for the 20 with one
    n = [s.shape[0] for s, _ in runs]
    check(n, 80 * 2 * p2 + 20 * p1, 80 * 4 * p2 * (1 - p2) + 20 * p1 * (1 - p1))
    assert_whole_groups(runs)


def test_a3_removes_whole_pairs(tmp_path):
    runs = counts("network-config-test-4.json", tmp_path)
    n = [s.shape[0] for s, _ in runs]
    check(n, N_SYN_TYPE * 0.6, (80 * 4 + 20 * 1) * 0.6 * 0.4)
    assert_whole_groups(runs)


def test_distance_rule_keeps_only_far_synapses(tmp_path):
    for s, _ in counts("network-config-test-5.json", tmp_path)[:3]:
        assert s.shape[0] == 100
        assert (s[:, 8] >= 100).all() and (s[:, 6] == 10).all()


def test_gap_junction_f1(tmp_path):
    check([g.shape[0] for _, g in counts("network-config-test-6.json", tmp_path)], 64 * 0.7, 64 * 0.21)


def test_gap_junction_soft_max(tmp_path):
    p = 2 * 2 / ((1 + math.exp(-(4 - 2) / 5)) * 4)
    runs = counts("network-config-test-7.json", tmp_path)
    check([g.shape[0] for _, g in runs], 64 * p, 64 * p * (1 - p))


def test_gap_junction_mu2(tmp_path):
    check([g.shape[0] for _, g in counts("network-config-test-8.json", tmp_path)], 32, 16 * 16 * 0.25)


def test_gap_junction_a3(tmp_path):
    check([g.shape[0] for _, g in counts("network-config-test-9.json", tmp_path)], 64 * 0.7, 16 * 16 * 0.21)


@pytest.mark.parametrize("seed", [0, 2 ** 64 - 1])
def test_extreme_seeds_run(tmp_path, seed):
    net = data_path("prune3")
    r = Pruner(net, config_file=net / "network-config-test-1.json").prune(tmp_path / "o.hdf5", random_seed=seed,
                                                                          workers=1)
    assert r.random_seed == seed and 0 < r.synapses_after < 360
    # config 1: GABA rows kept with f1 = 0.5, AMPA with 0.9 (groups of <= 2 rows: soft_max 5 never acts),
    # gap junctions all kept; one run is within 5 standard deviations of the binomial mean
    mean, var = N_SYN_TYPE * 0.5 + N_SYN_TYPE * 0.9, N_SYN_TYPE * 0.25 + N_SYN_TYPE * 0.09
    assert abs(r.synapses_after - mean) < 5 * math.sqrt(var), r.synapses_after
    assert r.gap_junctions_after == 64


def test_extreme_seeds_differ(tmp_path):
    """Both 32-bit words of the seed reach the draws: 0, 2**32 - 1, 2**64 - 1 and 2**64 - 2**32 all differ."""
    net = data_path("prune3")
    pruner = Pruner(net, config_file=net / "network-config-test-1.json")
    outputs = []
    for i, seed in enumerate([0, 2 ** 32 - 1, 2 ** 64 - 1, 2 ** 64 - 2 ** 32]):
        pruner.prune(tmp_path / f"o{i}.hdf5", random_seed=seed, workers=1, device="cpu")
        with h5py.File(tmp_path / f"o{i}.hdf5", "r") as f:
            outputs.append(f["network/synapses"][()].tobytes())
    assert len(set(outputs)) == 4
