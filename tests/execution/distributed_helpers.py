"""Shared by test_dask.py and test_mpi.py: the networks compared, and the single-process reference."""

import functools
import importlib
import os

import pytest
from conftest import data_path

import gpuprune
from gpuprune.synth import generate_network

#: (network, rng, row budget of the distributed run: many chunks per worker)
CASES = [(name, rng, budget) for name, budget in (("prune3", 60), ("striatum_300", 20_000), ("synth", 2_000))
         for rng in ("philox", "snudda")]


def need(module):
    """Import ``module``; skip without it, except in CI (``CI=true``), where these tests must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is not installed (pip install 'gpuprune[dask,mpi]')")


@functools.cache
def synth_network(root):
    path = os.path.join(root, "synth")
    generate_network(path, num_neurons=120, synapses_per_neuron=80, seed=7)
    return path


def network(name, root):
    return synth_network(str(root)) if name == "synth" else str(data_path(name))


@functools.cache
def reference_bytes(name, rng, root):
    """The whole output file of a one-process run (``workers=1``)."""
    out = os.path.join(root, f"ref-{name}-{rng}.hdf5")
    gpuprune.prune(network(name, root), rng=rng, device="cpu", workers=1, output_file=out)
    with open(out, "rb") as fh:
        return fh.read()


def leftovers(directory):
    """Files a prune run may leave next to its output (temporary output, part files)."""
    return sorted(n for n in os.listdir(directory) if n.startswith(".network-synapses-") or n.startswith(".gpuprune"))
