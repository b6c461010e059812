"""The generator's output pinned to the byte: sha256 of every dataset of every file it writes.

The digests were recorded before ``gpuprune/synth`` was split into modules; a change in any of them
means the generator makes a different network for the same arguments.
"""

import hashlib

import h5py
import numpy as np
import pytest

from gpuprune.synth import generate_network

CASES = {
    "default": {"num_neurons": 150, "synapses_per_neuron": 40, "seed": 3},
    "workers-blocks-grid": {"num_neurons": 160, "synapses_per_neuron": 50, "seed": 9, "workers": 2,
                            "max_rows_in_memory": 700, "hyper_voxels": (3, 2, 2), "population_units": 2},
    "plain": {"num_neurons": 60, "synapses_per_neuron": 30, "seed": 1, "hyper_voxels": 1,
              "gap_junctions": False, "projection": False, "population_units": 0},
}
DIGESTS = {
    "default": "1e6b69ae03382b0cf1867aaabf76d156dc0d21ff564b191c76ebfd657460b10d",
    "plain": "07c6c499e00016bec1bc06789568f47858ee8bd6ee905380aada76ed4e712437",
    "workers-blocks-grid": "c80622b03adfade3ecc897d5e69faffa7904c32d08841bd5e06cd1f339b266a9",
}


def network_digest(path):
    """sha256 over the name, dtype, shape and contents of every dataset of every HDF5 file below ``path``.

    The network's own path (recorded in configs and meta data) is replaced by a placeholder.
    """
    h = hashlib.sha256()
    where = str(path).encode()

    def add(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        h.update(f"{name}{obj.dtype.str}{obj.shape}{obj.chunks}{obj.compression}".encode())
        value = obj[()]
        if obj.dtype.kind in "OS":
            h.update(repr(np.asarray(value).tolist()).encode().replace(where, b"<NETWORK>"))
        else:
            h.update(np.ascontiguousarray(value).tobytes())

    for file in sorted(path.rglob("*.hdf5")):
        h.update(str(file.relative_to(path)).encode())
        with h5py.File(file, "r") as f:
            names = []
            f.visit(names.append)
            for name in sorted(names):
                add(name, f[name])
    h.update((path / "network-config.json").read_bytes().replace(where, b"<NETWORK>"))
    return h.hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_network_is_pinned(case, tmp_path):
    path = tmp_path / "net"
    generate_network(path, **CASES[case])
    assert network_digest(path) == DIGESTS[case]


def test_synth_imports_only_format_io_errors():
    """The generator stands on the on-disk contract alone: no rules, engine, api, cli (imports anywhere)."""
    import ast
    from pathlib import Path

    import gpuprune.synth

    allowed = ("gpuprune.format", "gpuprune.io", "gpuprune.errors", "gpuprune.synth")
    for path in Path(gpuprune.synth.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name == "gpuprune" or name.startswith("gpuprune."):
                    assert name.startswith(allowed), f"{path.name} imports {name}"
