"""The locks that tell a live run's temporaries from a killed run's leftovers (io/leftovers.py)."""

import subprocess
import sys

import h5py
import pytest

from gpuprune.io import leftovers

pytestmark = pytest.mark.skipif(leftovers.fcntl is None, reason="no fcntl: nothing is locked or swept")


def sweep_elsewhere(folder):
    """Sweep ``folder`` from another process (locks never conflict within one open file description)."""
    code = f"from gpuprune.io import leftovers; print(len(leftovers.sweep({str(folder)!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_a_held_temporary_survives_hdf5_closing_it(tmp_path):
    """HDF5 flocks a file it writes and lets go on close, before the rename: our lock must not depend on it."""
    temp = tmp_path / ".network-synapses-abc.hdf5.part"
    parts = tmp_path / ".gpuprune-parts-abc"
    parts.mkdir()
    (parts / "part-1.bin").write_bytes(b"x")
    f = h5py.File(temp, "w")
    held = leftovers.Held()
    held.hold(str(temp))
    held.hold(str(parts))
    assert len(held.fds) == 2
    assert sweep_elsewhere(tmp_path) == 0
    f.close()
    assert sweep_elsewhere(tmp_path) == 0 and temp.exists() and parts.exists()
    held.release()
    assert sweep_elsewhere(tmp_path) == 2
    assert not temp.exists() and not parts.exists()


def test_sweep_leaves_other_files(tmp_path):
    keep = [tmp_path / "network-synapses.hdf5", tmp_path / ".network-synapses-x.hdf5", tmp_path / "notes.part"]
    for p in keep:
        p.write_bytes(b"x")
    assert sweep_elsewhere(tmp_path) == 0
    assert all(p.exists() for p in keep)


def test_a_live_atomic_file_survives_the_sweep_of_another_run(tmp_path):
    """Every atomic temporary (gpuprune.prune's and SnuddaPrune's output alike) is locked while alive."""
    from gpuprune.io.layout import AtomicFile

    live = AtomicFile(tmp_path / "network-synapses.hdf5")
    assert sweep_elsewhere(tmp_path) == 0 and (tmp_path / live.temp_path).exists()
    live.discard()  # removes it and releases the lock
    dead = tmp_path / ".network-synapses-dead.hdf5.part"  # what a kill -9 leaves: no lock
    dead.write_bytes(b"x")
    assert sweep_elsewhere(tmp_path) == 1 and not dead.exists()
