"""The config stored in an output is always the one whose rules were applied (issue: provenance)."""

import json

import h5py
import numpy as np

from gpuprune.api import Pruner
from gpuprune.synth import generate_network


def _network(tmp_path):
    path = tmp_path / "net"
    generate_network(path, num_neurons=120, synapses_per_neuron=60, seed=3)
    return path


def test_editing_config_in_place_changes_neither_rules_nor_stored_config(tmp_path):
    pruner = Pruner(_network(tmp_path))
    applied = json.loads(json.dumps(pruner.config))  # a snapshot, whatever the property returns
    reference = pruner.prune(tmp_path / "ref.hdf5", device="cpu", workers=1)

    edited = pruner.config  # a copy: edit it in place as a careless notebook would
    for region in edited["regions"].values():
        for pathway in region["connectivity"].values():
            for channel in pathway.values():
                channel["pruning"]["f1"] = 0.01
    assert pruner.config == applied  # the edit did not reach the pruner

    again = pruner.prune(tmp_path / "again.hdf5", device="cpu", workers=1)
    assert again.synapses_after == reference.synapses_after
    with h5py.File(tmp_path / "ref.hdf5", "r") as f, h5py.File(tmp_path / "again.hdf5", "r") as g:
        assert np.array_equal(f["network/synapses"][()], g["network/synapses"][()])
        assert json.loads(g["config"][()]) == applied  # the file claims what was applied

    pruner.set_config(edited)  # applied only now, and then stored
    changed = pruner.prune(tmp_path / "changed.hdf5", device="cpu", workers=1)
    assert changed.synapses_after < reference.synapses_after
    with h5py.File(tmp_path / "changed.hdf5", "r") as f:
        assert json.loads(f["config"][()]) == edited
