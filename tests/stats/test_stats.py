"""Connectivity statistics against a brute-force NumPy reference (every pair, every bin)."""

import json

import numpy as np
import pytest
from conftest import data_path

from gpuprune import stats
from gpuprune.errors import InputError


def brute_force(positions, pre, post, conn, bins, inclusive, slab=None, self_pairs=False):
    """Loop-free but naive: the full pre x post distance matrix, each bin tested on its own."""
    diff = positions[post][None, :, :] - positions[pre][:, None, :]
    if slab is None:
        d = np.sqrt((diff ** 2).sum(axis=2))
    else:
        d = np.sqrt((diff[..., :2] ** 2).sum(axis=2))
        d[np.abs(diff[..., 2]) > slab] = np.inf
    same = pre[:, None] == post[None, :]
    valid = np.ones_like(d, dtype=bool) if self_pairs else ~same
    c = conn[np.ix_(pre, post)] > 0
    total, connected = [], []
    for s, e in bins:
        inside = (d >= s) & ((d <= e) if inclusive else (d < e)) & valid
        total.append(int(inside.sum()))
        connected.append(int((inside & c).sum()))
    return np.array(connected), np.array(total)


@pytest.mark.parametrize("inclusive", [False, True])
@pytest.mark.parametrize("slab", [None, 70e-6])
@pytest.mark.parametrize("self_pairs", [False, True])
def test_pruned_file_matches_brute_force(inclusive, slab, self_pairs):
    path = data_path("striatum_300", "expected", "network-synapses-default.hdf5")
    neurons = stats.read_neurons(path)
    import h5py

    with h5py.File(path, "r") as f:
        syn = f["network/synapses"][()]
    n = len(neurons.names)
    conn = np.zeros((n, n), dtype=np.int64)
    np.add.at(conn, (syn[:, 0], syn[:, 1]), 1)
    edges = [(0, 50e-6), (0, 100e-6), (25e-6, 75e-6)] + [(a, a + 20e-6) for a in np.arange(0, 400e-6, 20e-6)]
    for pre_t, post_t in [("dSPN", "iSPN"), ("iSPN", "iSPN"), ("FS", "dSPN")]:
        result = stats.pruned_connectivity(path, pre_t, post_t, stats.Bins.of(edges, inclusive), slab=slab,
                                           self_pairs=self_pairs)
        pre, post = neurons.ids_of(pre_t), neurons.ids_of(post_t)
        connected, total = brute_force(neurons.position, pre, post, conn, edges, inclusive, slab, self_pairs)
        np.testing.assert_array_equal(result.total, total)
        np.testing.assert_array_equal(result.connected, connected)
        counts = conn[np.ix_(pre, post)]
        counts = counts[counts > 0]
        assert result.synapses["pairs"] == counts.size
        assert result.synapses["mean"] == pytest.approx(counts.mean(), rel=1e-12)
        assert result.synapses["std"] == pytest.approx(counts.std(), rel=1e-12)
        assert result.synapses["percentiles"][20] == np.percentile(counts, 20)


def test_kdtree_denominators_equal_blocks(monkeypatch):
    pytest.importorskip("scipy")
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 300e-6, (400, 3)), rng.uniform(0, 300e-6, (500, 3))
    bins = stats.Bins.regular(20e-6, 400e-6)
    blocks = stats.count_all_pairs(a, b, bins)
    monkeypatch.setattr("gpuprune.stats.connectivity.KDTREE_PAIRS", 0)
    np.testing.assert_array_equal(stats.count_all_pairs(a, b, bins), blocks)
    assert blocks.sum() == sum(((np.sqrt(((a[:, None] - b[None]) ** 2).sum(2)) < 400e-6)).ravel())


def test_wilson_interval_known_values():
    lo, hi = stats.wilson_interval([3, 0, 10], [47, 10, 10])
    # both ends solve the Wilson equation (k/n - p)^2 = z^2 p (1 - p) / n
    for p in (lo[0], hi[0]):
        assert (3 / 47 - p) ** 2 == pytest.approx(stats.Z95 ** 2 * p * (1 - p) / 47, rel=1e-9)
    assert lo[1] == 0 and hi[2] == pytest.approx(1.0)
    assert np.isnan(stats.wilson_interval([0], [0])[0][0])


def test_bundled_targets_by_name():
    names = stats.dataset_names()
    assert "planert2010_dSPN_iSPN" in names
    (t,) = stats.load_targets("planert2010_dSPN_iSPN")
    assert t.pathway == ("dSPN", "iSPN", "GABA")
    assert t.as_bins() == [(0.0, 50e-6, 3 / 47), (0.0, 100e-6, 3 / 66)]
    assert np.all(t.interval[0] < t.probability) and "Planert" in t.reference
    for name in names:
        (t,) = stats.load_targets(name)
        assert t.reference and np.all(t.n <= t.N)


def test_targets_from_file_and_dict(tmp_path):
    spec = {"pathway": "FS,dSPN,GABA", "bins": [[0, 100e-6, 0.5], [100e-6, 250e-6, 0.3]],
            "mean_synapses": 3, "p20_synapses": 1}
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"targets": [spec, {"dataset": "gittis_FS_iSPN"}]}))
    a, b = stats.load_targets(p)
    assert a.pathway == ("FS", "dSPN", "GABA") and a.synapses == {"mean_synapses": 3.0, "p20_synapses": 1.0}
    assert b.pathway == ("FS", "iSPN", "GABA") and len(b.bins) == 3
    assert stats.load_targets(spec)[0].as_bins() == [(0.0, 100e-6, 0.5), (100e-6, 250e-6, 0.3)]


@pytest.mark.parametrize("spec, match", [
    ({"pathway": "FS,dSPN,GABA", "bins": [[100e-6, 50e-6, 0.1]]}, "malformed"),
    ({"pathway": "FS,dSPN,GABA", "bins": [[0, 50e-6]]}, "bin_start, bin_end, P"),
    ({"pathway": "FS,dSPN,GABA", "bins": [[0, "x", 0.1]]}, "numbers"),
    ({"pathway": "FS,dSPN,GABA", "bins": [[-1e-6, 50e-6, 0.1]]}, "malformed"),
    ({"pathway": "FS,dSPN,GABA", "bins": [[0, 50e-6, 1.5]]}, "0..1"),
    ({"pathway": "FS,dSPN", "bins": [[0, 50e-6, 0.5]]}, "Pre,Post,ConType"),
    ({"dataset": "nope"}, "unknown dataset"),
    ({"pathway": "FS,dSPN,GABA", "bins": [[0, 50e-6, 0.5]], "mean_synapses": -1}, "non-negative"),
    ({"pathway": "FS,dSPN,GABA", "bins": [[0, 50e-6, 0.5]], "colour": 1}, "unknown target key"),
])
def test_malformed_targets(spec, match):
    with pytest.raises(InputError, match=match):
        stats.load_targets(spec)


def test_missing_targets_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        stats.load_targets(tmp_path / "none.json")
    with pytest.raises(InputError, match="type 'XYZ'"):
        stats.read_neurons(data_path("prune3")).ids_of("XYZ")
