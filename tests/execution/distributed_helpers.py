"""Shared by test_dask.py and test_mpi.py: the networks compared, and the single-process reference."""

import atexit
import functools
import importlib
import os
import shutil
import tempfile

import pytest
from conftest import data_path

import gpuprune
from gpuprune.synth import generate_network

#: (network, rng, row budget of the distributed run: many chunks per worker)
CASES = [(name, rng, budget) for name, budget in (("prune3", 60), ("striatum_300", 100_000), ("synth", 2_000))
         for rng in ("philox", "snudda")]


def need(module):
    """Import ``module``; skip without it, except in CI (``CI=true``), where these tests must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is not installed (pip install 'gpuprune[dask,mpi]')")


@functools.cache
def _shared_dir():
    """One folder per test process for the generated network and the references (shared by both test files)."""
    path = tempfile.mkdtemp(prefix="gpuprune-distributed-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def synth_network():
    path = os.path.join(_shared_dir(), "synth")
    generate_network(path, num_neurons=120, synapses_per_neuron=80, seed=7)
    return path


def network(name):
    return synth_network() if name == "synth" else str(data_path(name))


@functools.cache
def reference_bytes(name, rng):
    """The whole output file of a one-process run (``workers=1``)."""
    out = os.path.join(_shared_dir(), f"ref-{name}-{rng}.hdf5")
    gpuprune.prune(network(name), rng=rng, device="cpu", workers=1, output_file=out)
    with open(out, "rb") as fh:
        return fh.read()


def leftovers(directory):
    """Files a prune run may leave next to its output (temporary output, part files)."""
    return sorted(n for n in os.listdir(directory) if n.startswith(".network-synapses-") or n.startswith(".gpuprune"))
