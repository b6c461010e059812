"""Every number of a report against a brute-force NumPy reference (every pair, every bin)."""

import glob
import os

import h5py
import numpy as np
import pytest
from conftest import copy_network

import gpuprune
from gpuprune.report import compute


def _rows(paths, kind):
    parts = []
    for p in paths:
        with h5py.File(p, "r") as f:
            if f"network/{kind}" not in f:  # e.g. the projection file holds synapses only
                continue
            m = f[f"network/{kind}"][()]
        if m.shape[0]:
            typ = m[:, 6] if kind == "synapses" else np.full(m.shape[0], 3)
            parts.append(np.stack([m[:, 0], m[:, 1], typ], axis=1).astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.int64)


def _dense(rows, channel, n):
    m = np.zeros((n, n), dtype=np.int64)
    sel = rows[rows[:, 2] == channel]
    np.add.at(m, (sel[:, 0], sel[:, 1]), 1)
    return m


def brute_force_pathway(p, positions, types, names, before, after, slab, post_ok):
    pre = np.flatnonzero(types == names.index(p["pre"]))
    post = np.flatnonzero((types == names.index(p["post"])) & post_ok)
    diff = positions[post][None, :, :] - positions[pre][:, None, :]
    d = np.sqrt((diff ** 2).sum(axis=2)) if slab is None else np.sqrt((diff[..., :2] ** 2).sum(axis=2))
    if slab is not None:
        d[np.abs(diff[..., 2]) > slab] = np.inf
    valid = pre[:, None] != post[None, :]
    for which, m in (("before", before), ("after", after)):
        c = m[np.ix_(pre, post)] > 0
        total, connected = [], []
        for s, e in p[which]["bins"]:
            inside = (d >= s) & (d < e) & valid
            total.append(int(inside.sum()))
            connected.append(int((inside & c).sum()))
        assert p[which]["total"] == total, which
        assert p[which]["connected"] == connected, which
        k, n = np.array(connected, dtype=float), np.array(total, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            expect = np.where(n > 0, k / n, np.nan)
        got = np.array([np.nan if x is None else x for x in p[which]["probability"]])
        np.testing.assert_allclose(got, expect, rtol=1e-12, equal_nan=True)
        # synapses per pair over every pair of the pathway (all post neurons: not only the centre)
        all_post = np.flatnonzero(types == names.index(p["post"]))
        counts = m[np.ix_(pre, all_post)]
        assert p["synapses_per_pair"][which] == np.bincount(counts[counts > 0]).tolist()
    a = after[np.ix_(np.flatnonzero(types == names.index(p["pre"])),
                     np.flatnonzero(types == names.index(p["post"])))] > 0
    assert p["out_degree"] == np.bincount(a.sum(axis=1)).tolist()
    assert p["in_degree"] == np.bincount(np.sort(a.sum(axis=0)[post_ok[types == names.index(p["post"])]]
                                                 )).tolist()
    assert p["connected_pairs"] == int((after[np.ix_(pre, all_post)] > 0).sum())
    assert p["putative_pairs"] == int((before[np.ix_(pre, all_post)] > 0).sum())
    assert p["funnel"]["rows"][-1] == p["kept_rows"] == int(after[np.ix_(pre, all_post)].sum())
    assert p["funnel"]["rows"][0] == p["putative_rows"] == int(before[np.ix_(pre, all_post)].sum())


def check_report(path, slab=None, centre_margin=None, rng="philox"):
    out = gpuprune.prune(path, device="cpu", workers=1, rng=rng)
    data = gpuprune.report(path, slab=slab, centre_margin=centre_margin, rng=rng).data
    with h5py.File(os.path.join(path, "log", "network-detect-worklog.hdf5"), "r") as f:
        positions = f["network/neurons/position"][()].astype(np.float64)
        type_of = [n.decode().split("_")[0] if isinstance(n, bytes) else str(n).split("_")[0]
                   for n in f["network/neurons/name"][()]]
    names = list(dict.fromkeys(type_of))
    types = np.array([names.index(t) for t in type_of])
    n = positions.shape[0]
    post_ok = np.ones(n, dtype=bool)
    if centre_margin:
        lo, hi = positions.min(axis=0) + centre_margin, positions.max(axis=0) - centre_margin
        post_ok = np.all((positions >= lo) & (positions <= hi), axis=1)
    inputs = sorted(glob.glob(os.path.join(path, "voxels", "*.hdf5")))
    proj = os.path.join(path, "network-projection-synapses.hdf5")
    inputs += [proj] if os.path.exists(proj) else []
    putative = {k: _rows(inputs, k) for k in ("synapses", "gap_junctions")}
    pruned = {k: _rows([out.output_file], k) for k in ("synapses", "gap_junctions")}
    assert data["totals"]["synapses"]["kept"] == out.synapses_after
    for p in data["pathways"]:
        ch = p["channel"]
        before, after = _dense(putative[p["kind"]], ch, n), _dense(pruned[p["kind"]], ch, n)
        brute_force_pathway(p, positions, types, names, before, after, slab, post_ok)
    return data


@pytest.mark.parametrize("slab,centre", [(None, None), (70e-6, None), (None, 40e-6)])
def test_striatum_matches_brute_force(tmp_path, slab, centre):
    data = check_report(str(copy_network("striatum_300", tmp_path)), slab=slab, centre_margin=centre)
    flagged = [p for p in data["pathways"] if p["experiments"]]
    assert flagged, "the bundled measurements name striatal pathways"
    for p in flagged:  # the model's value over each measurement's range, by brute force
        for e in p["experiments"]:
            lo, hi = e["ci95"]
            for i, pm in enumerate(e["model"]["probability"]):
                if pm is not None and lo[i] is not None:
                    assert e["outside"][i] == (pm < lo[i] or pm > hi[i])


@pytest.mark.parametrize("rng", ["philox", "snudda"])
def test_generated_matches_brute_force(tmp_path, rng):
    from gpuprune import synth

    path = tmp_path / "net"
    synth.generate_network(str(path), num_neurons=150, synapses_per_neuron=400, seed=3)
    check_report(str(path), rng=rng)


def test_experiment_model_value_brute_force(tmp_path):
    """The model's P over a measurement's [0, limit] bins (inclusive, as the targets define them)."""
    path = str(copy_network("striatum_300", tmp_path))
    gpuprune.prune(path, device="cpu", workers=1)
    data = compute.compute(path)
    with h5py.File(os.path.join(path, "network-synapses.hdf5"), "r") as f:
        positions = f["network/neurons/position"][()].astype(np.float64)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["network/neurons/name"][()]]
        rows = f["network/synapses"][()]
    types = np.array([x.split("_")[0] for x in names])
    for p in (p for p in data["pathways"] if p["experiments"]):
        pre, post = np.flatnonzero(types == p["pre"]), np.flatnonzero(types == p["post"])
        m = np.zeros((len(names), len(names)), dtype=np.int64)
        sel = rows[rows[:, 6] == p["channel"]]
        np.add.at(m, (sel[:, 0], sel[:, 1]), 1)
        d = np.sqrt(((positions[post][None] - positions[pre][:, None]) ** 2).sum(axis=2))
        valid = pre[:, None] != post[None, :]
        c = m[np.ix_(pre, post)] > 0
        for e in p["experiments"]:
            for i, (s, t) in enumerate(e["bins"]):
                inside = (d >= s) & (d <= t) & valid
                assert e["model"]["total"][i] == int(inside.sum())
                assert e["model"]["connected"][i] == int((inside & c).sum())
