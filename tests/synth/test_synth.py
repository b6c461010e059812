"""Tests of gpuprune.synth: the generated network directories follow Snudda's format."""

import json
import shutil

import h5py
import numpy as np
import pytest

from gpuprune.errors import InputError
from gpuprune.synth import generate_network

NUM_NEURONS = 200
SYNAPSES_PER_NEURON = 60


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "net"
    summary = generate_network(out, NUM_NEURONS, SYNAPSES_PER_NEURON, seed=7)
    return out, summary


def _work_log(path):
    return h5py.File(path / "log" / "network-detect-worklog.hdf5", "r")


def _completed(log):
    n = int(log["num_completed"][0])
    return log["completed"][:n], log["num_hypervoxel_synapses"][:n], log["num_hypervoxel_gap_junctions"][:n]


def _read_files(path):
    """{hid: (synapses, synapse_lookup, gap_junctions, gap_junction_lookup)}; projection file as hid -1."""
    out = {}
    with _work_log(path) as log:
        hids = log["all_hyper_ids"][:]
    for hid in hids:
        with h5py.File(path / "voxels" / f"network-putative-synapses-{hid}.hdf5", "r") as f:
            out[int(hid)] = tuple(f[f"network/{n}"][:] for n in
                                  ("synapses", "synapse_lookup", "gap_junctions", "gap_junction_lookup"))
    projection = path / "network-projection-synapses.hdf5"
    if projection.exists():
        with h5py.File(projection, "r") as f:
            out[-1] = (f["network/synapses"][:], f["network/synapse_lookup"][:], None, None)
    return out


def _check_sorted(keys):
    """Rows sorted lexicographically by the given key columns (most significant first)."""
    order = np.lexsort(tuple(k for k in reversed(keys)))
    assert np.array_equal(order, np.arange(len(order)))


def _check_lookup(rows, lookup, num_neurons, max_channel, gap_junctions):
    n = len(rows)
    if n == 0:
        assert len(lookup) == 0
        return
    assert lookup.dtype == np.int64 and lookup.shape[1] == 3
    starts, ends = lookup[:, 1], lookup[:, 2]
    assert starts[0] == 0 and ends[-1] == n and np.all(ends > starts)
    assert np.array_equal(starts[1:], ends[:-1])
    pair = rows[:, 1].astype(np.int64) * num_neurons + rows[:, 0]
    # Each run is one (src, dest); neighbouring runs differ.
    run_of_row = np.repeat(np.arange(len(lookup)), ends - starts)
    assert np.all(pair == pair[starts][run_of_row])
    assert np.all(pair[starts[1:]] != pair[starts[:-1]])
    channel = np.full(len(starts), 3) if gap_junctions else rows[starts, 6]
    assert np.array_equal(lookup[:, 0], pair[starts] * max_channel + channel)
    assert np.all(np.diff(lookup[:, 0]) > 0)


def _merge_order(files):
    """Synapse rows in Snudda's heap-merge order: lookup runs sorted by (unique_id, hyper voxel id)."""
    runs = sorted((int(uid), hid, a, b) for hid, (_, lookup, _, _) in files.items() for uid, a, b in lookup)
    return np.concatenate([files[hid][0][a:b] for _, hid, a, b in runs]), runs


def test_files_and_row_invariants(network):
    path, summary = network
    files = _read_files(path)
    with _work_log(path) as log:
        max_dist = log["network/neurons/max_soma_distance_dend"][:]
        grid = log["meta/hyper_voxel_ids"][:]
    max_channel = summary["max_channel_type_id"]
    for hid, (syn, syn_lookup, gj, gj_lookup) in files.items():
        assert syn.dtype == np.int32 and syn.shape[1] == 13
        _check_sorted([syn[:, 1], syn[:, 0], syn[:, 6]])
        _check_lookup(syn, syn_lookup, NUM_NEURONS, max_channel, gap_junctions=False)
        assert np.all(syn[:, 5] == hid)
        assert np.all(syn[:, 0] != syn[:, 1])
        # r = d / max_soma_distance_dend lies in 0..1, computed as Snudda does.
        r = syn[:, 8] * 1e-6 / max_dist[syn[:, 1]]
        assert np.all((r >= 0) & (r <= 1))
        if hid >= 0:
            lo = np.array(np.where(grid == hid)).ravel() * 100
            assert np.all((syn[:, 2:5] >= lo) & (syn[:, 2:5] < lo + 100))
            assert gj.dtype == np.int32 and gj.shape[1] == 11
            _check_sorted([gj[:, 1], gj[:, 0]])
            _check_lookup(gj, gj_lookup, NUM_NEURONS, max_channel, gap_junctions=True)
            assert np.all(gj[:, 0] < gj[:, 1]) and np.all(gj[:, 9] == hid)
            if len(gj):
                assert np.all((gj[:, 6:9] >= lo) & (gj[:, 6:9] < lo + 100))
    assert summary["num_synapses"] > 0.5 * NUM_NEURONS * SYNAPSES_PER_NEURON
    assert summary["num_gap_junctions"] > 0 and summary["num_projection_synapses"] > 0


def test_rows_per_pair_skewed(network):
    path, _ = network
    syn, _ = _merge_order(_read_files(path))
    key = syn[:, [0, 1, 6]].astype(np.int64)
    _, sizes = np.unique(key, axis=0, return_counts=True)
    assert np.mean(sizes <= 3) > 0.6 and sizes.max() >= 15


def test_channels_match_connectivity(network):
    path, _ = network
    with _work_log(path) as log:
        names = [n.decode() for n in log["network/neurons/name"][:]]
        distributions = json.loads(log["meta/connectivity_distributions"][()])
    types = np.array([n.split("_")[0] for n in names])
    allowed = {(pre, post, con["channel_model_id"])
               for key, cons in distributions.items() for pre, post in [key.split("$$")]
               for con in cons.values()}
    files = _read_files(path)
    for hid, (syn, _, gj, _) in files.items():
        triples = set(zip(types[syn[:, 0]], types[syn[:, 1]], syn[:, 6].tolist(), strict=True))
        assert triples <= allowed, (hid, triples - allowed)
        if gj is not None and len(gj):
            assert set(types[gj[:, 0]]) == {"FS"} and set(types[gj[:, 1]]) == {"FS"}


def test_work_log_agrees_with_files(network):
    path, summary = network
    files = _read_files(path)
    with _work_log(path) as log:
        completed, syn_counts, gj_counts = _completed(log)
        all_ids = log["all_hyper_ids"][:]
        assert log["completed"].dtype == np.int32 and log["num_completed"].dtype == np.float64
        assert np.all(log["completed"][len(completed):] == -1)
        assert sorted(completed.tolist()) == sorted(all_ids.tolist())
        assert np.any(np.diff(completed) < 0), "completion order must not be ascending"
        for hid, n_syn, n_gj in zip(completed, syn_counts, gj_counts, strict=True):
            assert files[int(hid)][0].shape[0] == n_syn and files[int(hid)][2].shape[0] == n_gj
        assert 0 in syn_counts.tolist(), "an axon-only hyper voxel is completed without synapses"
        assert log["meta/hyper_voxel_ids"].size > len(all_ids), "an empty grid position is skipped"
        num_projection = log["num_projection_synapses"][()]
        assert num_projection == files[-1][0].shape[0] == summary["num_projection_synapses"]
        assert np.array_equal(log["network/neurons/neuron_id"][:], np.arange(NUM_NEURONS))
        units = log["network/neurons/population_unit_id"][:]
        assert units.dtype == np.int64 and set(units.tolist()) == {0, 1, 2, 3}
        assert log["network/neurons/max_soma_distance_dend"].dtype == np.float32
        hyper_voxels = json.loads(log["hyper_voxels"][()])
        meta = {k: log[f"meta/{k}"][()] for k in ("voxel_size", "hyper_voxel_size", "simulation_origo",
                                                   "config_file", "position_file", "slurm_id")}
        width = log["meta/voxel_size"][()] * log["meta/hyper_voxel_size"][()]
        grid = log["meta/hyper_voxel_ids"][:]
        config_file = log["meta/config_file"][()].decode()
    assert config_file == str(path / "network-config.json")
    for hid in all_ids:
        with h5py.File(path / "voxels" / f"network-putative-synapses-{hid}.hdf5", "r") as f:
            for key, value in meta.items():
                assert np.all(f[f"meta/{key}"][()] == value), key
            xyz = np.array([x[0] for x in np.where(grid == f["meta/hyper_voxel_id"][()])])
            assert np.all(f["meta/hyper_voxel_origo"][()] == meta["simulation_origo"] + width * xyz)
            assert f["network/max_channel_type_id"][()] == summary["max_channel_type_id"]
        # Every dest with rows in a hyper voxel is listed there (Snudda picks files by it).
        listed = {int(n) for n in hyper_voxels[str(hid)]["neurons"]}
        syn, _, gj, _ = files[int(hid)]
        assert set(syn[:, 1].tolist()) | set(gj[:, 1].tolist()) <= listed
    with h5py.File(path / "network-projection-synapses.hdf5", "r") as f:
        syn = f["network/synapses"][:]
        assert f["network/num_synapses"][()] == len(syn) and f["network/num_neurons"][()] == NUM_NEURONS
        assert np.array_equal(f["network/all_target_id"][:], np.unique(syn[:, 1]))
        assert f["network/max_channel_type_id"][()] == summary["max_channel_type_id"]
        assert np.all(syn[:, 5] == -1)


def test_config_pathways(network):
    path, _ = network
    config = json.loads((path / "network-config.json").read_text())
    assert isinstance(config["random_seed"]["prune"], int)
    (region,) = config["regions"].values()
    assert set(region["neurons"]) == {"FS", "dSPN", "iSPN", "ChIN", "LTS"} and "volume" in region
    cons = [(key, ct, con) for key, block in region["connectivity"].items() for ct, con in block.items()]
    assert sum(con["pruning"].get("cluster_pruning", False) for _, _, con in cons) == 1
    assert sum("pruning_other" in con for _, _, con in cons) >= 4
    expressions = {con["pruning"]["dist_pruning"] for _, _, con in cons}
    assert "1-exp(-(0.4*d/60e-6)**2)" in expressions and "exp(-(0.5*d/60e-6)**2)" in expressions
    assert {ct for _, ct, _ in cons} >= {"GABA", "ACh", "AMPA_NMDA", "gap_junction"}


def test_interleaved_channel_runs(network):
    """Some (pair, type) forms several groups in Snudda's merge order, and some group's rows come
    from a higher hyper voxel id first (its run has the smaller unique id)."""
    path, summary = network
    files = _read_files(path)
    merged, runs = _merge_order(files)
    key = merged[:, [0, 1, 6]].astype(np.int64)
    change = np.r_[True, np.any(key[1:] != key[:-1], axis=1)]
    _, groups_per_key = np.unique(key[change], axis=0, return_counts=True)
    assert summary["num_interleaved_pairs"] > 0
    assert np.sum(groups_per_key > 1) >= summary["num_interleaved_pairs"]
    source = np.concatenate([np.full(b - a, hid) for _, hid, a, b in runs])
    group = np.cumsum(change) - 1
    descending = (group[1:] == group[:-1]) & (source[1:] < source[:-1])
    assert descending.any()


def test_deterministic_and_independent_of_block_size(tmp_path, network):
    path, summary = network
    small = tmp_path / "small"
    calls = []
    generate_network(small, NUM_NEURONS, SYNAPSES_PER_NEURON, seed=7, max_rows_in_memory=500,
                     progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 10 and calls[-1][0] == calls[-1][1]
    assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:], strict=False))
    a, b = _read_files(path), _read_files(small)
    assert a.keys() == b.keys()
    for hid in a:
        for x, y in zip(a[hid], b[hid], strict=True):
            assert (x is None and y is None) or np.array_equal(x, y)
    with _work_log(path) as la, _work_log(small) as lb:
        for name in ("completed", "num_hypervoxel_synapses", "hyper_voxels", "network/neurons/position",
                     "network/neurons/name", "meta/connectivity_distributions"):
            assert np.array_equal(la[name][()], lb[name][()]), name
    other = generate_network(tmp_path / "other", NUM_NEURONS, SYNAPSES_PER_NEURON, seed=8)
    assert other["num_synapses"] != summary["num_synapses"]


def test_workers_give_the_same_files(tmp_path):
    one = generate_network(tmp_path / "one", 120, 40, seed=3, workers=1)
    two = generate_network(tmp_path / "two", 120, 40, seed=3, workers=2)
    assert two["workers"] == 2
    assert one["hyper_voxel_synapses"] == two["hyper_voxel_synapses"]
    a, b = _read_files(tmp_path / "one"), _read_files(tmp_path / "two")
    for hid in a:
        for x, y in zip(a[hid], b[hid], strict=True):
            assert (x is None and y is None) or np.array_equal(x, y)


def test_options(tmp_path):
    summary = generate_network(tmp_path / "plain", 50, 20, seed=1, hyper_voxels=1, gap_junctions=False,
                               projection=False, population_units=0)
    path = tmp_path / "plain"
    assert summary["num_gap_junctions"] == 0 and summary["projection_file"] is None
    assert not (path / "network-projection-synapses.hdf5").exists()
    with _work_log(path) as log:
        assert "num_projection_synapses" not in log
        assert np.all(log["network/neurons/population_unit_id"][:] == 0)
        assert log["all_hyper_ids"][:].tolist() == [0]
    files = _read_files(path)
    assert files[0][0].shape[0] == summary["num_synapses"] > 0
    summary = generate_network(tmp_path / "grid", 40, 10, seed=1, hyper_voxels=(3, 2, 1))
    assert len(summary["voxel_files"]) == 5  # one of six grid positions is empty


def test_errors_and_overwrite(tmp_path):
    path = tmp_path / "net"
    generate_network(path, 30, 10, seed=1)
    with pytest.raises(InputError, match="not empty"):
        generate_network(path, 30, 10, seed=1)
    (path / "pruning_merge_info.json").write_text("{}")  # stale after regenerating
    (path / "notes.txt").write_text("kept")
    generate_network(path, 30, 10, seed=2, overwrite=True)
    assert not (path / "pruning_merge_info.json").exists() and (path / "notes.txt").exists()
    for bad in ({"num_neurons": 5}, {"seed": -1}, {"synapses_per_neuron": -1}, {"max_rows_in_memory": 0},
                {"hyper_voxels": (1, 2)}, {"workers": 0}):
        kwargs = {"num_neurons": 30, **bad}
        with pytest.raises(InputError):
            generate_network(tmp_path / "bad", **kwargs)


def test_snudda_prunes_and_loads(tmp_path, network):
    pytest.importorskip("snudda", reason="Snudda is not installed in this environment")
    from snudda.detect.prune import SnuddaPrune
    from snudda.utils.load import SnuddaLoad

    path = tmp_path / "copy"
    shutil.copytree(network[0], path)
    # keep_files=True: otherwise Snudda deletes the hyper voxel files.
    config_file = str(path / "network-config.json")
    SnuddaPrune(network_path=str(path), keep_files=True, config_file=config_file).prune()
    data = SnuddaLoad(str(path / "network-synapses.hdf5")).data
    assert data["num_neurons"] == NUM_NEURONS and 0 < data["num_synapses"] < network[1]["num_synapses"]
    # Snudda's own merge order is the one the tests above emulate.
    merged, _ = _merge_order(_read_files(path))
    (merge_file,) = (path / "temp").glob("synapses-for-neurons-*-MERGE-ME.hdf5")
    with h5py.File(merge_file, "r") as f:
        assert np.array_equal(f["network/synapses"][:], merged)
