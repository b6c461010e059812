"""Snudda's own prune test suite (tests/test_prune.py), ported to gpuprune's SnuddaPrune.

Snudda builds its ``network_testing_prune3`` network in ``setUp``; the
``prune3`` fixture network is that network, built by Snudda 3.0.  Each
scenario keeps Snudda's assertions and bounds; ``SnuddaLoad`` calls are
replaced by reading the same datasets with h5py (the ``SnuddaLoad`` checks
themselves run when snudda is importable).  That every config gives exactly
Snudda's own output is tested in test_snudda_compat.py.
"""

import json
import os

import h5py
import numpy as np
import pytest
from conftest import copy_network

from gpuprune.compat.snudda.prune import SnuddaPrune
from gpuprune.errors import ConfigError

NUM_NEURONS = 28


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """prune3 after Snudda's first stage: pruned with the default config, keep_files=True."""
    path = str(copy_network("prune3", tmp_path_factory.mktemp("snudda-scenarios")))
    sp = SnuddaPrune(network_path=path, config_file=None, verbose=True, keep_files=True)
    sp.prune()
    sp.close()
    return path


def prune_with(network, config_name):
    config = os.path.join(network, config_name) if config_name else None
    sp = SnuddaPrune(network_path=network, config_file=config, verbose=True, keep_files=True)
    sp.prune()
    sp.close()
    return load(os.path.join(network, "network-synapses.hdf5"))


def load(path):
    """The parts of SnuddaLoad's ``data`` that the scenarios use."""
    with h5py.File(path, "r") as f:
        data = {"synapses": f["network/synapses"][()], "gap_junctions": f["network/gap_junctions"][()]}
        data["num_synapses"] = int(f["network/num_synapses"][()]) if "network/num_synapses" in f \
            else data["synapses"].shape[0]
        data["num_gap_junctions"] = int(f["network/num_gap_junctions"][()]) if "network/num_gap_junctions" in f \
            else data["gap_junctions"].shape[0]
        data["connectivity_distributions"] = json.loads(f["meta/connectivity_distributions"][()])
        data["name"] = [x.decode() for x in f["network/neurons/name"][()]]
    return data


def test_no_pruning(network):
    data = load(os.path.join(network, "network-synapses.hdf5"))
    assert data["num_synapses"] == (20 * 8 + 10 * 2) * 2  # AMPA + GABA

    # sorted by dest, src, channel model id (12 = max channel model id)
    syn = data["synapses"][:data["num_synapses"], :]
    syn_order = (syn[:, 1] * NUM_NEURONS + syn[:, 0]) * 12 + syn[:, 6]
    assert (np.diff(syn_order) >= 0).all()

    # channel model ids are allocated from 10 (gap junctions have 3)
    assert np.sum(data["synapses"][:, 6] == 10) == 20 * 8 + 10 * 2
    assert np.sum(data["synapses"][:, 6] == 11) == 20 * 8 + 10 * 2

    assert data["num_gap_junctions"] == 4 * 4 * 4
    gj = data["gap_junctions"][:data["num_gap_junctions"], :2]
    gj_order = gj[:, 1] * NUM_NEURONS + gj[:, 0]
    assert (np.diff(gj_order) >= 0).all()


def test_load_testing(network):
    """Snudda's load-testing stage, on the data SnuddaLoad reads."""
    path = os.path.join(network, "network-synapses.hdf5")
    data = load(path)
    with h5py.File(path, "r") as f:  # synapse_iterator / gap_junction_iterator(chunk_size=50)
        syn_ctr = sum(f["network/synapses"][s:s + 50].shape[0] for s in range(0, data["num_synapses"], 50))
        gj_ctr = sum(f["network/gap_junctions"][s:s + 50].shape[0]
                     for s in range(0, data["num_gap_junctions"], 50))
    assert syn_ctr == data["num_synapses"]
    assert gj_ctr == data["num_gap_junctions"]

    syn = data["synapses"][data["synapses"][:, 0] == 14]  # find_synapses(pre_id=14)
    assert (syn[:, 0] == 14).all()
    assert syn.shape[0] == 40
    syn = data["synapses"][data["synapses"][:, 1] == 3]  # find_synapses(post_id=3)
    assert (syn[:, 1] == 3).all()
    assert syn.shape[0] == 36

    cell_id = [i for i, n in enumerate(data["name"]) if n.split("_")[0] == "ballanddoublestick"]
    assert len(cell_id) == 28


def test_load_testing_with_snudda_load(network):
    """The same stage through SnuddaLoad itself, where snudda is installed."""
    load_module = pytest.importorskip("snudda.utils.load", reason="snudda is not installed")
    sl = load_module.SnuddaLoad(os.path.join(network, "network-synapses.hdf5"), verbose=True)
    syn_ctr = sum(s.shape[0] for s in sl.synapse_iterator(chunk_size=50))
    assert syn_ctr == sl.data["num_synapses"]
    gj_ctr = sum(gj.shape[0] for gj in sl.gap_junction_iterator(chunk_size=50))
    assert gj_ctr == sl.data["num_gap_junctions"]
    syn, _ = sl.find_synapses(pre_id=14)
    assert (syn[:, 0] == 14).all() and syn.shape[0] == 40
    syn, _ = sl.find_synapses(post_id=3)
    assert (syn[:, 1] == 3).all() and syn.shape[0] == 36
    cell_id_perm = sl.get_neuron_id_of_type("ballanddoublestick", random_permute=True, num_neurons=28)
    cell_id = sl.get_neuron_id_of_type("ballanddoublestick", random_permute=False)
    assert len(cell_id_perm) == 28 and len(cell_id) == 28
    assert all(cid in cell_id for cid in cell_id_perm)


def test_merge_files_sorted(network):
    """Merge files (and the output) are sorted by dest, then src: pruning relies on it."""
    for mf in ["temp/synapses-for-neurons-0-to-28-MERGE-ME.hdf5",
               "temp/gap_junctions-for-neurons-0-to-28-MERGE-ME.hdf5",
               "network-synapses.hdf5"]:
        data = load(os.path.join(network, mf))
        syn = data["synapses"][:data["num_synapses"], :2]
        assert (np.diff(syn[:, 1] * NUM_NEURONS + syn[:, 0]) >= 0).all()
        gj = data["gap_junctions"][:data["num_gap_junctions"], :2]
        assert (np.diff(gj[:, 1] * NUM_NEURONS + gj[:, 0]) >= 0).all()


def test_synapse_f1(network):
    data = prune_with(network, "network-config-test-1.json")
    # f1 = 0.5 keeps half of the GABA synapses at random, f1 = 0.9 for AMPA
    pair = data["connectivity_distributions"]["ballanddoublestick$$ballanddoublestick"]
    gaba_id, ampa_id = pair["GABA"]["channel_model_id"], pair["AMPA"]["channel_model_id"]
    n_gaba = np.sum(data["synapses"][:, 6] == gaba_id)
    n_ampa = np.sum(data["synapses"][:, 6] == ampa_id)
    # gaba: 2 std = 2 sqrt(180 0.5 0.5) = 13; ampa: 2 sqrt(180 0.9 0.1) = 8
    assert (20 * 8 + 10 * 2) * 0.5 - 13 < n_gaba < (20 * 8 + 10 * 2) * 0.5 + 13
    assert (20 * 8 + 10 * 2) * 0.9 - 8 < n_ampa < (20 * 8 + 10 * 2) * 0.9 + 8


def test_synapse_softmax(network):
    data = prune_with(network, "network-config-test-2.json")  # GABA synapses only
    assert data["num_synapses"] < 20 * 8 + 10 * 2


def test_synapse_mu2(network):
    data = prune_with(network, "network-config-test-3.json")
    # mu2 = 2: two synapses give a 50 % chance to keep them, one is likely removed
    assert 20 * 8 * 0.5 - 13 < data["num_synapses"] < 20 * 8 * 0.5 + 13


def test_synapse_a3(network):
    data = prune_with(network, "network-config-test-4.json")
    # a3 = 0.6: a 40 % chance to remove all synapses of a pair
    assert (20 * 8 + 10 * 2) * 0.6 - 14 < data["num_synapses"] < (20 * 8 + 10 * 2) * 0.6 + 14


def test_synapse_distance_dependent_pruning(network):
    data = prune_with(network, "network-config-test-5.json")
    # "1*(d >= 100e-6)" removes every synapse closer than 100 um to the soma
    assert data["num_synapses"] == 20 * 5
    assert (data["synapses"][:, 8] >= 100).all()


def test_gap_junction_f1(network):
    data = prune_with(network, "network-config-test-6.json")
    assert 64 * 0.7 - 10 < data["num_gap_junctions"] < 64 * 0.7 + 10


def test_gap_junction_softmax(network):
    data = prune_with(network, "network-config-test-7.json")
    assert data["num_gap_junctions"] < 16 * 2 + 10


def test_gap_junction_mu2(network):
    data = prune_with(network, "network-config-test-8.json")
    assert 64 * 0.5 - 10 < data["num_gap_junctions"] < 64 * 0.5 + 10


def test_gap_junction_a3(network):
    data = prune_with(network, "network-config-test-9.json")
    assert 64 * 0.7 - 10 < data["num_gap_junctions"] < 64 * 0.7 + 10


def test_gap_junction_distance_dependent_pruning_is_refused(network):
    """Snudda disables this scenario: column 8 of a gap junction is no distance.  Refused before any work."""
    output = os.path.join(network, "network-synapses.hdf5")
    before = os.stat(output).st_mtime_ns
    with pytest.raises(ConfigError, match="gap junctions"):
        SnuddaPrune(network_path=network, config_file=os.path.join(network, "network-config-test-10.json"),
                    verbose=True, keep_files=True)
    assert os.stat(output).st_mtime_ns == before
