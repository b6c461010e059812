"""gpuprune.snudda_compat.SnuddaPrune: Snudda's API on the engine, method by method.

Every fixture network is copied to a temporary directory first (the class
deletes voxel files when ``keep_files=False``).
"""

import heapq
import json
import os
import time

import h5py
import numpy as np
import pytest
from conftest import SNUDDA_CASES, copy_network, data_path
from helpers import assert_same_rows

import gpuprune
from gpuprune.compat.snudda.prune import SnuddaPrune
from gpuprune.errors import ConfigError, DeviceError, InputError
from gpuprune.io import reader as stream

ROWS = ("network/synapses", "network/gap_junctions")


def rows_of(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ROWS}


def expected(net, name):
    return data_path(net, "expected", f"network-synapses-{name}.hdf5")


def output(net):
    return os.path.join(net, "network-synapses.hdf5")


@pytest.fixture
def net3(prune3):
    return str(prune3)


@pytest.fixture
def sp3(net3):
    sp = SnuddaPrune(net3, keep_files=True)
    yield sp
    sp.close()


# -- whole runs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kept_network(tmp_path_factory):
    """One copy of each fixture network for the module: with keep_files=True every config re-prunes it."""
    root, copies = tmp_path_factory.mktemp("snudda-compat"), {}

    def get(name):
        if name not in copies:
            copies[name] = str(copy_network(name, root))
        return copies[name]

    return get


@pytest.mark.parametrize("case", SNUDDA_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_equals_snudda_for_every_fixture_config(kept_network, case):
    """Every fixture config gives exactly Snudda 3.0's network-synapses.hdf5 (rows, counts, config)."""
    name, config, reference = case
    net = kept_network(name)
    with SnuddaPrune(net, config_file=os.path.join(net, config), keep_files=True) as sp:
        sp.prune()
    assert_same_rows(output(net), data_path(name, "expected", reference))
    with h5py.File(output(net), "r") as ours, h5py.File(data_path(name, "expected", reference), "r") as ref:
        for key in ("network/num_synapses", "network/num_gap_junctions", "config"):
            assert ours[key][()] == ref[key][()], key
        for key in ROWS:
            assert ours[key].dtype == ref[key].dtype


def test_keep_files(net3):
    """keep_files=True re-prunes without merging again; keep_files=False then removes temp/ and voxels/."""
    with SnuddaPrune(net3, keep_files=True) as sp:
        sp.prune()
    merged = sorted(os.listdir(os.path.join(net3, "temp")))
    assert merged == ["gap_junctions-for-neurons-0-to-28-MERGE-ME.hdf5", "synapses-for-neurons-0-to-28-MERGE-ME.hdf5"]
    stamps = {m: os.stat(os.path.join(net3, "temp", m)).st_mtime_ns for m in merged}
    with SnuddaPrune(net3, config_file=os.path.join(net3, "network-config-test-1.json"), keep_files=True) as sp:
        sp.prune()
    assert_same_rows(output(net3), expected("prune3", "test-1"))
    assert {m: os.stat(os.path.join(net3, "temp", m)).st_mtime_ns for m in merged} == stamps  # not re-merged

    with SnuddaPrune(net3, config_file=os.path.join(net3, "network-config-test-2.json")) as sp:
        sp.prune()
    assert_same_rows(output(net3), expected("prune3", "test-2"))
    assert os.listdir(os.path.join(net3, "voxels")) == [] and os.listdir(os.path.join(net3, "temp")) == []
    assert os.path.exists(os.path.join(net3, "log", "network-detect-worklog.hdf5"))

    # Inputs gone: a clear error, and the previous output stays as it was.
    before = os.stat(output(net3)).st_mtime_ns
    with SnuddaPrune(net3, keep_files=True) as sp:
        with pytest.raises(InputError, match="not found"):
            sp.prune()
    assert os.stat(output(net3)).st_mtime_ns == before
    assert not [f for f in os.listdir(net3) if f.endswith(".part")]


def test_output_replaced_only_when_complete(net3, monkeypatch):
    with SnuddaPrune(net3, keep_files=True) as sp:
        sp.prune()
    before = os.stat(output(net3)).st_mtime_ns

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(SnuddaPrune, "prune_synapses_helper", fail)
    with SnuddaPrune(net3, config_file=os.path.join(net3, "network-config-test-1.json"), keep_files=False) as sp:
        with pytest.raises(RuntimeError, match="interrupted"):
            sp.prune()
    assert os.stat(output(net3)).st_mtime_ns == before
    assert not [f for f in os.listdir(net3) if f.endswith(".part")]
    assert os.listdir(os.path.join(net3, "voxels"))  # a failed prune deletes nothing


def test_philox_mode_equals_native_prune(net3, tmp_path):
    with SnuddaPrune(net3, keep_files=True, rng="philox", device="cpu") as sp:
        sp.prune()
    native = gpuprune.prune(net3, rng="philox", device="cpu", output_file=str(tmp_path / "native.hdf5"))
    assert native.synapses_after > 0
    assert_same_rows(output(net3), tmp_path / "native.hdf5")
    assert not os.listdir(os.path.join(net3, "temp"))  # philox prunes the hyper voxel files directly


def test_philox_device_reaches_the_pipeline(net3, monkeypatch):
    from gpuprune import api

    seen, real = {}, api.Pruner.prune

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return real(self, *args, **{**kwargs, "device": "cpu"})

    monkeypatch.setattr(api.Pruner, "prune", spy)
    with SnuddaPrune(net3, rng="philox", device="gpu", keep_files=True) as sp:
        sp.prune()
    assert seen["device"] == "gpu" and seen["rng"] == "philox" and seen["executor"] is None


@pytest.mark.gpu
def test_philox_on_gpu_equals_cpu(net3, tmp_path):
    from gpuprune import api

    if not api._gpu_available():
        pytest.skip("no GPU: needs CuPy and a CUDA device")
    with SnuddaPrune(net3, rng="philox", device="gpu", keep_files=True) as sp:
        sp.prune()
    gpuprune.prune(net3, rng="philox", device="cpu", output_file=tmp_path / "cpu.hdf5")
    assert_same_rows(output(net3), tmp_path / "cpu.hdf5")


def test_bad_arguments(net3):
    with pytest.raises(DeviceError):
        SnuddaPrune(net3, rng="snudda", device="gpu")
    with pytest.raises(InputError, match="randomness"):
        SnuddaPrune(net3, rng="mt19937")
    with pytest.raises(InputError, match="network directory"):
        SnuddaPrune(os.path.join(net3, "nowhere"))
    with pytest.raises(InputError, match="seed"):
        SnuddaPrune(net3, random_seed=-1)


def test_worker_role_does_not_prune(net3):
    with SnuddaPrune(net3, role="worker") as sp:
        sp.prune()
        with pytest.raises(RuntimeError):
            sp.setup_parallel(d_view=object())
    assert not os.path.exists(output(net3))


def test_edited_connectivity_distributions_are_used(net3):
    """Snudda's optimiser edits ``connectivity_distributions`` directly; pruning follows it."""
    cfg = json.load(open(os.path.join(net3, "network-config.json")))
    con = next(iter(cfg["regions"].values()))["connectivity"]["ballanddoublestick,ballanddoublestick"]
    con["GABA"]["pruning"] = {"f1": 0.5, "soft_max": None, "mu2": None, "a3": None}
    del con["AMPA"], con["gap_junction"]
    with open(os.path.join(net3, "edited.json"), "w") as fh:
        json.dump(cfg, fh)
    with SnuddaPrune(net3, config_file=os.path.join(net3, "edited.json"), keep_files=True,
                     random_seed=7) as sp:
        sp.prune()
    reference = rows_of(output(net3))

    with SnuddaPrune(net3, keep_files=True, random_seed=7) as sp:
        gaba = (sp.type_id_lookup["ballanddoublestick"],) * 2 + (10,)
        sp.connectivity_distributions = {gaba: (sp.complete_pruning_info({"f1": 0.5}), None)}
        sp.prune()
    for key in ROWS:
        np.testing.assert_array_equal(rows_of(output(net3))[key], reference[key])
    assert 0 < reference["network/synapses"].shape[0] < 180
    assert (reference["network/synapses"][:, 6] == 10).all()
    assert reference["network/gap_junctions"].shape[0] == 0  # no rule: all removed


# -- ipyparallel -----------------------------------------------------------------------------------


def test_ipyparallel_cluster_equals_serial(tmp_path):
    """prune() on a 2-engine ipyparallel cluster gives the serial file (prune3 and striatum_300)."""
    ipp = pytest.importorskip("ipyparallel", reason="ipyparallel is not installed")
    nets = [(name, str(copy_network(name, tmp_path))) for name in ("prune3", "striatum_300")]
    cluster = ipp.Cluster(n=2, log_level=40)
    try:
        rc = cluster.start_and_connect_sync()
        rc.wait_for_engines(2, timeout=45)
    except Exception as exc:  # noqa: BLE001 - any failure to start means the test cannot run here
        try:
            cluster.stop_cluster_sync()
        finally:
            message = f"cannot start an ipyparallel cluster of 2 engines: {exc}"
            if os.environ.get("CI") == "true":  # in CI the cluster must start: a skip would hide a failure
                pytest.fail(message)
            pytest.skip(message)
    try:
        for src, net in nets:
            with SnuddaPrune(net, rc=rc, keep_files=True) as sp:
                assert sp.d_view is not None and len(sp.d_view) == 2
                sp.prune()
                assert sp.workers_initialised
            assert_same_rows(output(net), expected(src, "default"))  # = the serial run (Snudda's file)
            info = json.load(open(os.path.join(net, "pruning_merge_info.json")))
            assert len(info["merge_neuron_range_syn"]) == 2  # one merge range per engine
            logs = os.listdir(os.path.join(net, "log"))
            assert "synapse-pruning.txt-0" in logs and "synapse-pruning.txt-1" in logs
        # Re-pruning with another config reuses the per-engine merge files (new workers, files kept).
        net = nets[0][1]
        merged = [os.path.join(net, "temp", m) for m in os.listdir(os.path.join(net, "temp")) if "MERGE" in m]
        stamps = [os.stat(m).st_mtime_ns for m in merged]
        with SnuddaPrune(net, rc=rc, keep_files=True,
                         config_file=os.path.join(net, "network-config-test-3.json")) as sp:
            sp.prune()
        assert_same_rows(output(net), expected("prune3", "test-3"))
        assert [os.stat(m).st_mtime_ns for m in merged] == stamps
        # philox mode runs gpuprune's chunks on the engines (here through a direct view)
        with SnuddaPrune(net, d_view=rc[:], keep_files=True, rng="philox", device="cpu") as sp:
            sp.prune()
        gpuprune.prune(net, rng="philox", device="cpu", output_file=os.path.join(net, "native.hdf5"))
        assert_same_rows(output(net), os.path.join(net, "native.hdf5"))
        # clean_up_merge_files also removes the merge files the engines wrote
        with SnuddaPrune(net, rc=rc, keep_files=True, scratch_path=os.path.join(net, "scratch")) as sp:
            info = sp.gather_neuron_synapses()
            files = [f for f in info[0] + info[3] if f is not None]
            assert len(files) == 2 and all(os.path.exists(f) for f in files)  # no rows in the others
            sp.clean_up_merge_files()
            assert not any(os.path.exists(f) for f in files)
    finally:
        cluster.stop_cluster_sync()


# -- API -----------------------------------------------------------------------------------------


def test_signatures_match_the_seed_api():
    """Constructor and every method documented for Snudda's SnuddaPrune, with the same parameters."""
    import inspect
    import re

    from conftest import DATA

    api = DATA.parent / "seed" / "snudda-prune-api.txt"  # beside the fixture networks, in shared/
    if not api.exists():
        pytest.skip(f"seed API text not found: {api}")
    documented = re.findall(r"^(static )?(\w+)\((.*?)\)\[source\]", api.read_text(), re.M)
    assert len(documented) > 30
    for static, name, args in documented:
        obj = SnuddaPrune.__init__ if name == "SnuddaPrune" else getattr(SnuddaPrune, name)
        params = [p for p in inspect.signature(obj).parameters.values()
                  if p.name != "self" and p.kind != p.KEYWORD_ONLY]
        ours = ",".join(p.name + ("" if p.default is p.empty else f"={p.default!r}") for p in params)
        assert ours == args.replace(" ", ""), name
        assert isinstance(inspect.getattr_static(SnuddaPrune, name), staticmethod) == bool(static), name


# -- reading the network ---------------------------------------------------------------------------


def test_open_work_history_file_and_settings(net3, sp3):
    assert sp3.random_seed == 2698621808  # the config's random_seed.prune
    assert sp3.config_file == os.path.join(net3, "network-config.json")
    assert sp3.num_synapses_total == 360 and sp3.num_gap_junctions_total == 64
    assert sp3.num_projection_synapses == 0
    assert sp3.voxel_size == pytest.approx(3e-6)
    ids = sp3.hyper_voxel_id_list
    for xyz in np.ndindex(ids.shape):
        np.testing.assert_array_equal(sp3.hyper_voxel_offset[ids[xyz]], np.array(xyz) * sp3.hyper_voxel_size)
    with SnuddaPrune(net3, config_file=os.path.join(net3, "network-config-test-1.json")) as sp:
        assert sp.random_seed == 1003  # no seed in the config
    with SnuddaPrune(net3, random_seed=42) as sp:
        assert sp.random_seed == 42
        sp.open_work_history_file(config_file=os.path.join(net3, "network-config-test-2.json"))
        assert sp.random_seed == 42 and sp.config_file.endswith("test-2.json")


def test_unfinished_detect_is_refused(net3):
    with h5py.File(os.path.join(net3, "log", "network-detect-worklog.hdf5"), "a") as wl:
        wl["num_completed"][0] = 2
    with pytest.raises(InputError, match="not completed"):
        SnuddaPrune(net3)


def test_set_scratch_path(net3, sp3, tmp_path):
    assert sp3.scratch_path == os.path.join(net3, "temp")
    sp3.set_scratch_path(str(tmp_path / "scratch"))
    assert os.path.isdir(tmp_path / "scratch")
    name, _, n = sp3.big_merge_helper(np.array([0, 28]), "synapses")
    assert os.path.dirname(name) == str(tmp_path / "scratch") and n == 360


def test_complete_pruning_info():
    block = {"f1": None, "soft-max": 3}
    out = SnuddaPrune.complete_pruning_info(block)
    assert out is block
    assert block == {"f1": 1.0, "soft-max": 3, "dist_pruning": None, "soft_max": None, "mu2": None,
                     "a3": None, "cluster_pruning": False}
    kept = SnuddaPrune.complete_pruning_info({"f1": 0.3, "mu2": 2, "cluster_pruning": True})
    assert kept["f1"] == 0.3 and kept["mu2"] == 2 and kept["cluster_pruning"] is True


def test_make_type_numbering(striatum):
    with SnuddaPrune(striatum, keep_files=True) as sp:
        assert sp.type_id_lookup == {"FS": 1, "dSPN": 2, "iSPN": 3, "ChIN": 4, "LTS": 5}
        names = [n.decode().split("_")[0] for n in sp.hist_file["network/neurons/name"][()]]
        assert sp.type_id_list == [sp.type_id_lookup[n] for n in names]
        channel = json.loads(sp.hist_file["meta/connectivity_distributions"][()])["FS$$dSPN"]["GABA"]
        assert (1, 2, channel["channel_model_id"]) in sp.connectivity_distributions  # keyed by type ids


def test_load_pruning_information(sp3, net3):
    gaba = (1, 1, 10)
    pruning, other = sp3.connectivity_distributions[gaba]
    assert other is None and pruning["cluster_pruning"] is False and pruning["f1"] == 1
    sp3.load_pruning_information(os.path.join(net3, "network-config-test-1.json"))
    assert sp3.connectivity_distributions[gaba][0]["f1"] == 0.5
    assert sp3.connectivity_distributions[(1, 1, 3)][0]["soft_max"] == 8


def test_check_network_config_integrity(net3, sp3):
    cfg = json.load(open(os.path.join(net3, "network-config.json")))
    con = next(iter(cfg["regions"].values()))["connectivity"]["ballanddoublestick,ballanddoublestick"]
    con["NMDA"] = dict(con["AMPA"])
    path = os.path.join(net3, "undetected.json")
    with open(path, "w") as fh:
        json.dump(cfg, fh)
    sp3.check_network_config_integrity(os.path.join(net3, "network-config-test-1.json"))
    with pytest.raises(ConfigError, match="NMDA"):
        sp3.check_network_config_integrity(path)
    with pytest.raises(ConfigError, match="NMDA"):
        SnuddaPrune(net3, config_file=path)


def test_check_hyper_voxel_integrity_and_open_hyper_voxel(net3, sp3, capsys):
    with sp3.open_hyper_voxel(0) as f:
        assert f.mode == "r" and f["network/synapses"].shape == (360, 13)
    with pytest.raises(InputError, match="not found"):
        sp3.open_hyper_voxel(99)
    path = os.path.join(net3, "voxels", "network-putative-synapses-1.hdf5")
    with h5py.File(path, "a") as f:
        f["meta/voxel_overflow_counter"][()] = 5
    capsys.readouterr()
    sp3.open_hyper_voxel(1).close()
    assert sp3.voxel_overflow_counter == 5 and sp3.overflow_files == [path]
    assert "Overflow of 5" in capsys.readouterr().out  # errors are printed even when not verbose
    with h5py.File(path, "a") as f:
        f["meta/voxel_size"][()] = 1.0
    with pytest.raises(InputError, match="voxel_size"):
        sp3.open_hyper_voxel(1)
    with h5py.File(path, "a") as f:
        f["meta/voxel_size"][()] = sp3.voxel_size
        f["meta/hyper_voxel_origo"][0] += 1
    with pytest.raises(InputError, match="origo"):
        sp3.open_hyper_voxel(1)
    sp3.open_hyper_voxel(1, verify=False).close()


def test_get_hyper_voxel_list(sp3):
    hyper_voxels = json.loads(sp3.hist_file["hyper_voxels"][()])
    for lo, hi in ((0, 28), (0, 10), (20, 28), (5, 6)):
        expected_ids = [int(h) for h, d in hyper_voxels.items() if set(range(lo, hi)) & {int(n) for n in d["neurons"]}]
        assert sp3.get_hyper_voxel_list((lo, hi)) == expected_ids
    assert 0 in sp3.get_hyper_voxel_list((0, 10))


def test_get_neuron_random_seeds(sp3):
    seeds = sp3.get_neuron_random_seeds()
    np.testing.assert_array_equal(seeds, np.random.SeedSequence(2698621808).generate_state(28))
    assert sp3.get_neuron_random_seeds() is seeds
    sp3.random_seed = 5
    np.testing.assert_array_equal(sp3.get_neuron_random_seeds(), np.random.SeedSequence(5).generate_state(28))


# -- iterators -------------------------------------------------------------------------------------


def test_synapse_set_iterator_and_lookup_subset(sp3):
    with sp3.open_hyper_voxel(0) as f:
        lut, mat = f["network/synapse_lookup"], f["network/synapses"]
        sets = list(SnuddaPrune.synapse_set_iterator(lut, mat, chunk_size=7))
        assert len(sets) == lut.shape[0]
        np.testing.assert_array_equal(np.concatenate([s for s, _ in sets]), mat[()])
        np.testing.assert_array_equal([u for _, u in sets], lut[:, 0])
        for rows, _ in sets:
            assert (rows[:, :2] == rows[0, :2]).all()
        whole = list(SnuddaPrune.file_row_lookup_iterator(lut, chunk_size=5))
        np.testing.assert_array_equal(np.array(whole), lut[()])

        subset = list(sp3.file_row_lookup_iterator_subset(lut, 2, 5, chunk_size=4))
        mct, n = int(f["network/max_channel_type_id"][()]), 28
        dest = lut[:, 0] // (n * mct)
        np.testing.assert_array_equal(np.array(subset), lut[()][(dest >= 2) & (dest < 5)])
        rows = np.concatenate([s for s, _ in SnuddaPrune.synapse_set_iterator(
            lut, mat, lookup_iterator=sp3.file_row_lookup_iterator_subset(lut, 2, 5))])
        np.testing.assert_array_equal(rows, mat[()][(mat[:, 1] >= 2) & (mat[:, 1] < 5)])


# -- merging ---------------------------------------------------------------------------------------


def snudda_merge_reference(network_path, kind, lo, hi):
    """Rows onto dest [lo, hi) in the order of Snudda's heap merge (heapq over the files' lookup runs)."""
    from gpuprune.format import KINDS
    from gpuprune.io.network import Network

    net = Network(network_path)
    per_dest = net.num_neurons * net.max_channel_type_id
    runs, mats = [], []
    for sf in net.sources[kind]:
        with h5py.File(sf.path, "r") as f:
            lut, mat = f[KINDS[kind].lookup][()], f[KINDS[kind].matrix][()]
        keep = (lut[:, 0] >= lo * per_dest) & (lut[:, 0] < hi * per_dest)
        runs.append([(int(u), sf.hid, len(mats), int(s), int(e)) for u, s, e in lut[keep]])
        mats.append(mat)
    merged = [mats[m][s:e] for _, _, m, s, e in heapq.merge(*runs)]  # (unique_id, hyper voxel id) first
    return np.concatenate(merged) if merged else np.zeros((0, KINDS[kind].width), np.int32)


def test_big_merge_helper_matches_snudda_heap_merge(striatum):
    net = str(striatum)
    whole = {}
    with SnuddaPrune(net, keep_files=True) as sp:
        for kind, (lo, hi) in (("synapses", (0, 299)), ("gap_junctions", (0, 299)), ("synapses", (100, 180))):
            name, rng, n = sp.big_merge_helper(np.array([lo, hi]), kind)
            assert os.path.basename(name) == f"{kind}-for-neurons-{lo}-to-{hi}-MERGE-ME.hdf5"
            assert name in sp.temp_file_list and tuple(rng) == (lo, hi)
            with h5py.File(name, "r") as f:
                rows = f[f"network/{kind}"][()]
            assert rows.shape[0] == n
            if (lo, hi) == (0, 299):
                whole[kind] = snudda_merge_reference(net, kind, lo, hi)
                np.testing.assert_array_equal(rows, whole[kind])
            else:  # the merge is dest-major: a sub-range is a slice of the whole
                ref = whole[kind]
                np.testing.assert_array_equal(rows, ref[(ref[:, 1] >= lo) & (ref[:, 1] < hi)])
        assert stream.open_file_count() == 0  # clean_up_merge_read_buffers closed the inputs


def test_snudda_prunes_our_merge_files(net3):
    """Snudda's own SnuddaPrune reuses our merge files and merge info and writes the same output."""
    snudda_prune = pytest.importorskip("snudda.detect.prune", reason="snudda is not installed")
    with SnuddaPrune(net3, keep_files=True) as sp:
        sp.prune()
    merged = {m: os.stat(os.path.join(net3, "temp", m)).st_mtime_ns for m in os.listdir(os.path.join(net3, "temp"))}
    config = os.path.join(net3, "network-config-test-8.json")
    theirs = snudda_prune.SnuddaPrune(network_path=net3, config_file=config, keep_files=True)
    theirs.prune()
    del theirs
    assert {m: os.stat(os.path.join(net3, "temp", m)).st_mtime_ns for m in merged} == merged  # reused
    assert "Found merge info" in open(os.path.join(net3, "log", "synapse-pruning.txt")).read()
    assert_same_rows(output(net3), expected("prune3", "test-8"))


def test_merge_file_layout(sp3):
    """Snudda's merge file layout: rows, then meta/ and network/neurons/ copied from the work log."""
    name, _, n = sp3.big_merge_helper((0, 28), "synapses")
    with h5py.File(name, "r") as f, h5py.File(sp3.work_history_file, "r") as wl:
        assert set(f) == {"meta", "network"}
        assert set(f["network"]) == {"neurons", "synapses", "gap_junctions"}
        assert set(f["network/neurons"]) == set(wl["network/neurons"])
        assert set(f["meta"]) == set(wl["meta"]) | {"max_axon_voxel_ctr", "max_dend_voxel_ctr"}
        syn, gj = f["network/synapses"], f["network/gap_junctions"]
        assert syn.dtype == np.int32 and syn.shape == (360, 13) and syn.chunks == (360, 13)
        assert gj.shape == (0, 11)
        assert (np.diff(syn[:, 1].astype(np.int64) * 28 + syn[:, 0]) >= 0).all()
    assert sp3.big_merge_helper((10, 20), "synapses") == (None, (10, 20), 0)  # no synapses onto 10..19


def test_gather_neuron_synapses_and_merge_info(net3, sp3):
    info = sp3.gather_neuron_synapses()
    files_syn, range_syn, ctr_syn, files_gj, range_gj, ctr_gj = info
    assert [os.path.basename(f) for f in files_syn] == ["synapses-for-neurons-0-to-28-MERGE-ME.hdf5"]
    assert ctr_syn == [360] and ctr_gj == [64] and [list(r) for r in range_gj] == [[0, 28]]
    sp3.save_merge_info(*info)
    assert sp3.get_merge_info_helper()[0] == files_syn
    got = sp3.get_merge_info()
    assert got[0] == files_syn and got[2] == [360] and got[4] == [[0, 28]]

    merge_file = files_syn[0]
    future = time.time() + 10
    os.utime(merge_file, (future, future))  # a merge file newer than the merge info
    assert sp3.get_merge_info() is None
    sp3.save_merge_info(*info)
    os.utime(sp3.merge_info_file, (future + 1, future + 1))
    assert sp3.get_merge_info() is not None

    sp3.save_merge_info(files_syn, range_syn, [359], files_gj, range_gj, ctr_gj)  # wrong count
    assert sp3.get_merge_info() is None
    sp3.save_merge_info(files_syn, [[3, 9]], ctr_syn, files_gj, range_gj, ctr_gj)  # wrong range
    assert sp3.get_merge_info() is None
    sp3.save_merge_info([None], range_syn, ctr_syn, files_gj, range_gj, ctr_gj)  # file expected but none
    assert sp3.get_merge_info() is None
    sp3.save_merge_info([merge_file + ".gone"], range_syn, ctr_syn, files_gj, range_gj, ctr_gj)
    assert sp3.get_merge_info() is None
    with open(sp3.merge_info_file, "w") as fh:
        fh.write("{not json")
    assert sp3.get_merge_info() is None
    sp3.save_merge_info(*info)
    os.utime(sp3.merge_info_file, (future + 1, future + 1))
    assert sp3.get_merge_info() is not None
    os.utime(sp3.work_history_file, (future + 10, future + 10))  # detect ran again after the merge
    assert sp3.get_merge_info() is None
    os.remove(sp3.merge_info_file)
    assert sp3.get_merge_info() is None


def test_setup_merge_file_and_buffer_merge_write(sp3, tmp_path):
    name = str(tmp_path / "m.hdf5")
    sp3.buffer_out_file, got = sp3.setup_merge_file(outfile_name=name, num_synapses=100, num_gap_junctions=0)
    assert got == name and name in sp3.temp_file_list
    sp3.synapse_buffer_size = 7
    rng = np.random.default_rng(0)
    blocks = [rng.integers(0, 100, (k, 13), dtype=np.int32) for k in (3, 2, 4, 9, 1, 0, 6)]
    for b in blocks:
        sp3.buffer_merge_write("network/synapses", b)
    sp3.buffer_merge_write("network/synapses", flush=True)
    sp3.buffer_out_file.close()
    with h5py.File(name, "r") as f:
        np.testing.assert_array_equal(f["network/synapses"][()], np.concatenate(blocks))
    out, _ = sp3.setup_merge_file(outfile_name=str(tmp_path / "n.hdf5"), delete_after=False)
    assert str(tmp_path / "n.hdf5") not in sp3.temp_file_list
    assert out["network/synapses"].shape == (360, 13) and out["network/gap_junctions"].shape == (64, 11)
    out.close()
    with pytest.raises(ValueError):
        sp3.setup_merge_file(save_morphologies=True)


def test_clean_up_merge_files_and_read_buffers(sp3):
    name, _, _ = sp3.big_merge_helper((0, 28), "gap_junctions")
    assert os.path.exists(name) and sp3.merge_data_type is None
    sp3.clean_up_merge_files()
    assert not os.path.exists(name) and sp3.temp_file_list == []
    sp3.clean_up_merge_files()  # nothing left: no error
    sp3.merge_data_type = "synapses"
    sp3.clean_up_merge_read_buffers()
    assert sp3.merge_data_type is None and stream.open_file_count() == 0


# -- pruning ---------------------------------------------------------------------------------------


def test_find_ranges(sp3):
    dest = np.array([0, 0, 1, 1, 1, 2, 3, 3, 3, 3])
    mat = np.stack([np.zeros_like(dest), dest], axis=1)
    assert sp3.find_ranges(mat, 3) == [(0, 5), (5, 6), (6, 10)]
    assert sp3.find_ranges(mat, 1) == [(0, 10)]
    assert sp3.find_ranges(mat, 2, start_pos=2, num_syn=6) == [(2, 5), (5, 8)]
    # Snudda's floor division ends its last range at row 6 here, losing row 6; ours reaches the end.
    tail = np.stack([np.zeros(7, int), np.array([0, 0, 0, 1, 1, 1, 2])], axis=1)
    assert sp3.find_ranges(tail, 2) == [(0, 3), (3, 7)]
    one = np.zeros((3, 2), dtype=int)
    assert sp3.find_ranges(one, 5) == [(0, 3), (3, None), (None, None), (None, None), (None, None)]
    name, _, _ = sp3.big_merge_helper((0, 28), "synapses")
    with h5py.File(name, "r") as f:
        ranges = sp3.find_ranges(f["network/synapses"], 4)
        dest = f["network/synapses"][:, 1]
    assert ranges[0][0] == 0 and ranges[-1][1] == 360
    for (_, b), (c, _) in zip(ranges[:-1], ranges[1:], strict=True):
        assert b == c and dest[b - 1] != dest[b]


def test_setup_output_file_has_snudda_layout(sp3, tmp_path):
    name = str(tmp_path / "out.hdf5")
    sp3.setup_output_file(name)
    sp3.setup_output_file(str(tmp_path / "ignored.hdf5"))  # already set: nothing happens
    assert not os.path.exists(tmp_path / "ignored.hdf5")
    sp3.out_file.close()
    sp3.out_file = None

    def layout(path):
        items = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: items.__setitem__(n, (o.dtype, o.chunks, o.compression, o.maxshape)
                                                        if isinstance(o, h5py.Dataset) else None))
        return items

    ref = layout(expected("prune3", "default"))
    ours = layout(name)
    assert set(ours) == set(ref)
    for key in ("network/synapses", "network/gap_junctions", "network/num_synapses", "network/num_gap_junctions"):
        assert ours[key] == ref[key], key
    with h5py.File(str(tmp_path / "given.hdf5"), "w") as f:
        sp3.setup_output_file(f)
        assert sp3.out_file is f and "config" in f
        sp3.out_file = None
    with pytest.raises(ValueError):
        sp3.setup_output_file(save_morphologies=True)


def test_prune_synapses_helper(sp3, tmp_path):
    name, _, _ = sp3.big_merge_helper((0, 28), "synapses")
    with h5py.File(name, "r") as f:
        block = f["network/synapses"][()]
    original = block.copy()
    sp3.setup_output_file(str(tmp_path / "out.hdf5"))
    n = sp3.prune_synapses_helper(block, sp3.out_file, "synapses")
    np.testing.assert_array_equal(block, original)
    ref = rows_of(expected("prune3", "default"))["network/synapses"]
    assert n == ref.shape[0]
    np.testing.assert_array_equal(sp3.out_file["network/synapses"][()], ref)
    assert sp3.out_file["network/num_synapses"][()] == n
    # a second block is appended after the first
    sp3.prune_synapses_helper(block[:10], sp3.out_file, "synapses")
    assert sp3.out_file["network/synapses"].shape[0] == n + 10
    sp3.out_file.close()
    sp3.out_file = None


def test_prune_synapses_helper_restarts_streams_where_dest_falls(net3, tmp_path):
    """A dest neuron seen again after a lower one restarts its stream, as in Snudda's row loop."""
    with SnuddaPrune(net3, config_file=os.path.join(net3, "network-config-test-1.json"), keep_files=True) as sp:
        name, _, _ = sp.big_merge_helper((0, 28), "synapses")
        with h5py.File(name, "r") as f:
            rows = f["network/synapses"][()]
        on = {d: rows[rows[:, 1] == d] for d in (3, 5)}
        block = np.concatenate([on[5], on[3], on[5]])

        def run(parts, path):
            sp.setup_output_file(path)
            for p in parts:
                sp.prune_synapses_helper(p, sp.out_file, "synapses")
            out = sp.out_file["network/synapses"][()]
            sp.out_file.close()
            sp.out_file = None
            return out

        whole = run([block], str(tmp_path / "a.hdf5"))
        apart = run([on[5], on[3], on[5]], str(tmp_path / "b.hdf5"))
        np.testing.assert_array_equal(whole, apart)
        first = run([on[5]], str(tmp_path / "c.hdf5"))
        np.testing.assert_array_equal(whole[:first.shape[0]], first)
        np.testing.assert_array_equal(whole[-first.shape[0]:], first)


def test_prune_synapses_row_range_and_files(sp3, tmp_path):
    name, _, _ = sp3.big_merge_helper((0, 28), "synapses")
    ref = rows_of(expected("prune3", "default"))["network/synapses"]
    assert sp3.prune_synapses(None, None, "synapses") == (0, 0)
    before, after = sp3.prune_synapses(name, str(tmp_path / "a.hdf5"), "synapses")
    assert (before, after) == (360, 360) and sp3.out_file is None
    np.testing.assert_array_equal(rows_of(str(tmp_path / "a.hdf5"))["network/synapses"], ref)
    with h5py.File(name, "r") as f:
        dest = f["network/synapses"][:, 1]
        cut = int(np.searchsorted(dest, 5))  # rows onto neurons 0..4
        got = sp3.prune_synapses(f, str(tmp_path / "b.hdf5"), "synapses", row_range=(0, cut),
                                 close_input_file=False)
        assert f.id.valid  # left open
    assert got == (cut, cut)
    np.testing.assert_array_equal(rows_of(str(tmp_path / "b.hdf5"))["network/synapses"], ref[ref[:, 1] < 5])
    assert sp3.prune_synapses(name, str(tmp_path / "c.hdf5"), "synapses", row_range=(4, 4)) == (0, 0)


def test_prune_synapses_parallel_serial_files_and_combine(net3, sp3, tmp_path):
    parts = [sp3.big_merge_helper((lo, hi), "synapses") for lo, hi in ((0, 4), (4, 28))]
    sp3.setup_output_file(str(tmp_path / "out.hdf5"))
    sp3.prune_synapses_parallel([p[0] for p in parts], [p[2] for p in parts], "synapses")
    sp3.prune_synapses_parallel([None], [0], "gap_junctions")
    sp3.out_file.close()
    sp3.out_file = None
    ref = rows_of(expected("prune3", "default"))
    got = rows_of(str(tmp_path / "out.hdf5"))
    np.testing.assert_array_equal(got["network/synapses"], ref["network/synapses"])
    assert got["network/gap_junctions"].shape == (0, 11)
    with pytest.raises(RuntimeError, match="expected 361"):
        sp3.setup_output_file(str(tmp_path / "bad.hdf5"))
        sp3.prune_synapses_parallel([p[0] for p in parts], [1, 360], "synapses")
    sp3.out_file.close()
    sp3.out_file = None

    # combine_files: the parts of a pruned output, concatenated in order; missing parts skipped
    names = []
    for i, rows in enumerate((ref["network/synapses"][:100], ref["network/synapses"][100:])):
        names.append(str(tmp_path / f"part-{i}"))
        with h5py.File(names[-1], "w") as f:
            f.create_dataset("network/synapses", data=rows)
    total = sp3.combine_files(names + [str(tmp_path / "missing")], "synapses",
                              output_filename=str(tmp_path / "combined.hdf5"))
    assert total == 360 and sp3.out_file["network/num_synapses"][()] == 360
    sp3.out_file.close()
    sp3.out_file = None
    np.testing.assert_array_equal(rows_of(str(tmp_path / "combined.hdf5"))["network/synapses"],
                                  ref["network/synapses"])
    with pytest.raises(InputError, match="merge_data_type"):
        sp3.combine_files(names, "axons")


def test_cleanup(net3, sp3):
    sp3.big_merge_helper((0, 28), "synapses")
    with open(os.path.join(net3, "voxels", "extra.txt"), "w") as fh:
        fh.write("x")
    sp3.cleanup()
    assert os.listdir(os.path.join(net3, "voxels")) == [] and os.listdir(os.path.join(net3, "temp")) == []
    assert os.path.exists(os.path.join(net3, "network-config.json"))


# -- logging ---------------------------------------------------------------------------------------


def test_write_log_and_verbose(net3, capsys, tmp_path):
    with SnuddaPrune(net3, keep_files=True) as sp:
        capsys.readouterr()
        sp.write_log("quiet line")
        sp.write_log("forced line", force_print=True)
        sp.write_log("error line", is_error=True)
        out = capsys.readouterr().out
        assert "quiet line" not in out and "forced line" in out and "error line" in out
        sp.verbose = True
        sp.write_log("loud line")
        assert "loud line" in capsys.readouterr().out
    text = open(os.path.join(net3, "log", "synapse-pruning.txt")).read()
    for line in ("quiet line", "forced line", "error line", "loud line", "Opening work history file"):
        assert line in text

    with open(tmp_path / "given.log", "w") as fh:
        with SnuddaPrune(net3, logfile=fh) as sp:
            assert sp.logfile_name == str(tmp_path / "given.log")
            sp.write_log("to the given file")
        assert not fh.closed
    assert "to the given file" in open(tmp_path / "given.log").read()
    with SnuddaPrune(net3, logfile_name=str(tmp_path / "named.log"), verbose=True) as sp:
        sp.write_log("named")
    assert "named" in open(tmp_path / "named.log").read()
    assert "named" in capsys.readouterr().out


def test_logging_module_and_core_warnings(net3, caplog):
    """Messages go through the ``gpuprune.snudda`` logger; core warnings land in Snudda's log file once."""
    import logging

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("gpuprune.snudda").addHandler(handler)
    try:
        with SnuddaPrune(net3, config_file=os.path.join(net3, "network-config-test-4.json"),
                         keep_files=True) as sp:
            sp.prune()
    finally:
        logging.getLogger("gpuprune.snudda").removeHandler(handler)
    assert any("prune synapses and gap junctions" in r.getMessage() for r in records)
    text = open(os.path.join(net3, "log", "synapse-pruning.txt")).read()
    assert text.count("ignoring unknown pruning key(s) 'dist-pruning'") == 1
