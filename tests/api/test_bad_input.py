"""DESIGN §6: each bad input is a clear error naming the file and the problem; no output is left behind."""

import errno
import json
import os
import signal
import time

import h5py
import numpy as np
import pytest
from helpers import tree_digest

import gpuprune
from gpuprune.errors import ConfigError, ExpressionError, InputError, OutputError

WORKLOG = os.path.join("log", "network-detect-worklog.hdf5")


def voxel(net, hid):
    return net / "voxels" / f"network-putative-synapses-{hid}.hdf5"


def set_value(path, key, value):
    with h5py.File(path, "r+") as f:
        f[key][...] = value


def edit_config(net, fn):
    path = net / "network-config.json"
    cfg = json.loads(path.read_text())
    (region,) = cfg["regions"].values()
    fn(region["connectivity"]["ballanddoublestick,ballanddoublestick"])
    path.write_text(json.dumps(cfg))
    return path


def break_lookup(path):
    with h5py.File(path, "r+") as f:
        lut = f["network/synapse_lookup"][()]
        lut[[0, 1], 0] = lut[[1, 0], 0]
        f["network/synapse_lookup"][...] = lut


def first_voxel_with_synapses(net):
    for path in sorted((net / "voxels").glob("*.hdf5")):
        with h5py.File(path, "r") as f:
            if f["network/synapses"].shape[0]:
                return path
    raise AssertionError("no voxel file has synapses")


def move_row_outside(path):
    """One synapse row names a dest neuron its lookup table does not put there (the file is remembered
    so that the test can check the message names it)."""
    with h5py.File(path, "r+") as f:
        rows = f["network/synapses"][()]
        rows[0, 1] = 1_000_000  # no such neuron
        f["network/synapses"][...] = rows
    move_row_outside.path = path


CASES = {
    "missing work log": (lambda n: os.remove(n / WORKLOG), InputError, ["network-detect-worklog.hdf5",
                                                                        "not found"]),
    "truncated voxel file": (lambda n: os.truncate(voxel(n, 0), 2000), InputError,
                             ["network-putative-synapses-0.hdf5", "truncated"]),
    "missing voxel file": (lambda n: os.remove(voxel(n, 2)), InputError,
                           ["network-putative-synapses-2.hdf5", "not found"]),
    "meta disagrees": (lambda n: set_value(voxel(n, 0), "meta/voxel_size", 2e-6), InputError,
                       ["network-putative-synapses-0.hdf5", "voxel_size"]),
    "origo disagrees": (lambda n: set_value(voxel(n, 2), "meta/hyper_voxel_origo", [1.0, 2.0, 3.0]), InputError,
                        ["network-putative-synapses-2.hdf5", "hyper_voxel_origo"]),
    "unfinished detect": (lambda n: set_value(n / WORKLOG, "num_completed", [2.0]), InputError,
                          ["network-detect-worklog.hdf5", "did not finish"]),
    "num_completed NaN": (lambda n: set_value(n / WORKLOG, "num_completed", [np.nan]), InputError,
                          ["network-detect-worklog.hdf5", "num_completed"]),
    "row disagrees with lookup": (lambda n: move_row_outside(first_voxel_with_synapses(n)), InputError,
                                  ["network-putative-synapses-", "disagree with the lookup tables"]),
    "count mismatch": (lambda n: set_value(n / WORKLOG, "num_hypervoxel_synapses",
                                           np.where(np.arange(3) == 0, 7, h5py.File(n / WORKLOG)[
                                               "num_hypervoxel_synapses"][:3]).tolist()
                                           + list(h5py.File(n / WORKLOG)["num_hypervoxel_synapses"][3:])),
                       InputError, ["network-putative-synapses", "work log"]),
    "broken lookup table": (lambda n: break_lookup(voxel(n, 0)), InputError,
                            ["network-putative-synapses-0.hdf5", "strictly increasing"]),
    "malformed config": (lambda n: (n / "network-config.json").write_text("{ not json"), ConfigError,
                         ["network-config.json", "not valid JSON"]),
    "unsafe expression": (lambda n: edit_config(n, lambda c: c["GABA"]["pruning"].update(
        dist_pruning="__import__('os').getcwd()")), ExpressionError, ["network-config.json", "not allowed"]),
    "pruning_other null": (lambda n: edit_config(n, lambda c: c["GABA"].update(pruning_other=None)),
                           ConfigError, ["network-config.json", "pruning_other"]),
    "seed null": (lambda n: (n / "network-config.json").write_text(json.dumps(
        {**json.loads((n / "network-config.json").read_text()), "random_seed": {"prune": None}})),
        ConfigError, ["network-config.json", "random_seed.prune"]),
    "unknown connection": (lambda n: edit_config(n, lambda c: c.update(NMDA={"pruning": {}})), ConfigError,
                           ["network-config.json", "connectivity_distributions"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(prune3, name):
    corrupt, error, fragments = CASES[name]
    previous = prune3 / "network-synapses.hdf5"
    previous.write_bytes(b"previous good output")
    corrupt(prune3)
    with pytest.raises(error) as err:
        gpuprune.prune(prune3, device="cpu", workers=1)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)
    if name == "row disagrees with lookup":
        assert str(err.value).startswith(str(move_row_outside.path)), str(err.value)
    assert "\n" not in str(err.value)
    assert previous.read_bytes() == b"previous good output"
    assert not list(prune3.glob(".network-synapses-*"))  # no temporary file left


def test_gap_junction_distance_pruning_refused_before_work(tmp_path, data):
    net = data / "prune3"
    out = tmp_path / "o.hdf5"
    with pytest.raises(ConfigError, match="gap junction") as err:
        gpuprune.prune(net, config_file=net / "network-config-test-10.json", output_file=out)
    assert "network-config-test-10.json" in str(err.value)
    assert not out.exists()


@pytest.mark.parametrize("seed", [-1, 2 ** 64, "x"])
def test_seed_out_of_range(prune3, seed):
    with pytest.raises(InputError, match="seed"):
        gpuprune.prune(prune3, random_seed=seed)


def test_relative_distance_out_of_range(prune3):
    edit_config(prune3, lambda c: c["GABA"]["pruning"].update(dist_pruning="1 - r"))
    set_value(prune3 / WORKLOG, "network/neurons/max_soma_distance_dend", np.full(28, 50e-6, np.float32))
    with pytest.raises(InputError, match="max_soma_distance_dend") as err:
        gpuprune.prune(prune3, device="cpu", workers=1)
    assert "network-detect-worklog.hdf5" in str(err.value)
    assert not (prune3 / "network-synapses.hdf5").exists()


def test_error_in_worker_process_reaches_caller(prune3):
    """A file broken after planning fails inside a worker; the error still names it."""
    os.truncate(voxel(prune3, 0), 20_000)
    with pytest.raises(InputError, match="network-putative-synapses-0.hdf5"):
        gpuprune.prune(prune3, device="cpu", workers=2, row_budget=10)


def _killed(*args):
    """Stands in for the worker task: the worker dies as the out-of-memory killer would end it."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_killed_worker_is_a_clear_error_and_leaves_nothing(prune3, monkeypatch):
    from gpuprune.execution import pools

    gpuprune.prune(prune3, device="cpu", workers=1)
    before = (prune3 / "network-synapses.hdf5").read_bytes()
    monkeypatch.setattr(pools, "prune_range_task", _killed)
    with pytest.raises(gpuprune.WorkerError, match="ended abruptly"):
        gpuprune.prune(prune3, device="cpu", workers=2, row_budget=10, random_seed=5)
    assert (prune3 / "network-synapses.hdf5").read_bytes() == before
    assert not list(prune3.glob(".network-synapses-*")) and not list(prune3.glob(".gpuprune-parts-*"))


def test_interrupted_run_leaves_previous_output(prune3):
    gpuprune.prune(prune3, device="cpu", workers=1)
    before = (prune3 / "network-synapses.hdf5").read_bytes()

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gpuprune.prune(prune3, device="cpu", workers=1, random_seed=5, progress=interrupt)
    assert (prune3 / "network-synapses.hdf5").read_bytes() == before
    assert not list(prune3.glob(".network-synapses-*"))


def test_inputs_never_modified(prune3):
    (prune3 / "network-synapses.hdf5").unlink(missing_ok=True)
    before = tree_digest(prune3)
    gpuprune.prune(prune3, device="cpu", workers=2, row_budget=50, output_file=prune3.parent / "o.hdf5")
    gpuprune.prune(prune3, device="cpu", rng="snudda", workers=1, output_file=prune3.parent / "p.hdf5")
    assert tree_digest(prune3) == before


def test_output_may_not_overwrite_an_input(prune3):
    with pytest.raises(InputError, match="overwrite an input"):
        gpuprune.prune(prune3, output_file=prune3 / WORKLOG)


def test_missing_directory(tmp_path):
    with pytest.raises(InputError, match="not found"):
        gpuprune.prune(tmp_path / "nope")


def test_killed_worker_found_while_submitting_is_a_worker_error(prune3, monkeypatch):
    """A worker that dies before the tasks are all submitted: ``executor.submit`` raises BrokenProcessPool
    itself (forced here every time: a worker is killed and the pool seen broken before ``run``)."""
    from concurrent.futures.process import BrokenProcessPool

    from gpuprune.execution import pools

    real_init = pools.LocalPool.__init__

    def init_then_kill_a_worker(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        os.kill(next(iter(self.executor._processes)), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.executor.submit(os.getpid).result()
            except BrokenProcessPool:
                return
            time.sleep(0.01)
        raise AssertionError("the pool never noticed its killed worker")

    previous = prune3 / "network-synapses.hdf5"
    previous.write_bytes(b"previous good output")
    monkeypatch.setattr(pools.LocalPool, "__init__", init_then_kill_a_worker)
    with pytest.raises(gpuprune.WorkerError, match="ended abruptly"):
        gpuprune.prune(prune3, device="cpu", workers=2, row_budget=10)
    assert previous.read_bytes() == b"previous good output"
    assert not list(prune3.glob(".network-synapses-*")) and not list(prune3.glob(".gpuprune-parts-*"))


def _no_work(*args, **kwargs):
    raise AssertionError("pruning started before the output was checked")


def test_output_is_a_directory_refused_before_any_work(prune3, monkeypatch):
    monkeypatch.setattr(gpuprune.engine, "prune_chunk", _no_work)
    target = prune3 / "out"
    target.mkdir()
    with pytest.raises(OutputError, match="existing directory") as err:
        gpuprune.prune(prune3, device="cpu", workers=1, output_file=target)
    assert str(err.value).startswith(str(target)) and "\n" not in str(err.value)


def test_output_folder_not_writable_refused_before_any_work(prune3, monkeypatch):
    """Injected (tests run as root in CI, where file modes do not stop a write); the real case is below."""
    import tempfile

    monkeypatch.setattr(gpuprune.engine, "prune_chunk", _no_work)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match="cannot create files in the output folder: Permission denied") as err:
        gpuprune.prune(prune3, device="cpu", workers=1, output_file=prune3 / "o.hdf5")
    assert str(err.value).startswith(str(prune3)) and "\n" not in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder (the injected test covers it)")
def test_output_folder_not_writable_for_real(prune3, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="cannot create files"):
            gpuprune.prune(prune3, device="cpu", workers=1, output_file=folder / "o.hdf5")
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("workers", [1, 2])
def test_disk_full_is_one_line_naming_the_output(prune3, monkeypatch, workers):
    from gpuprune.io import writer

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "Can't write data (file write failed: time = ..., filename = '...', "
                                    "file descriptor = 5, errno = 28, error message = 'No space left on device')")

    monkeypatch.setattr(writer.DirectChunks, "_write_oldest", full)
    monkeypatch.setattr(writer.BufferedRows, "_flush", full)
    previous = prune3 / "network-synapses.hdf5"
    previous.write_bytes(b"previous good output")
    with pytest.raises(OutputError, match="no space left on the device") as err:
        gpuprune.prune(prune3, device="cpu", workers=workers, row_budget=50)
    assert str(err.value).startswith(str(previous)) and "\n" not in str(err.value)
    assert previous.read_bytes() == b"previous good output"
    assert not list(prune3.glob(".network-synapses-*")) and not list(prune3.glob(".gpuprune-parts-*"))


def test_cli_output_errors_are_one_line(prune3, capsys):
    from gpuprune.cli.main import main

    (prune3 / "out").mkdir()
    assert main(["prune", str(prune3), "--output", str(prune3 / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "existing directory" in err and str(prune3 / "out") in err
