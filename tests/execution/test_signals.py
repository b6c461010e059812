"""SIGINT, SIGTERM and SIGHUP, as a user and a cluster send them, to a running ``gpuprune prune``:
workers stop, temporaries go, the previous output stays unless the new one was complete, and the
message says which.  Leftovers of a ``kill -9`` are removed by the next run, never a live run's."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_network

import gpuprune
from gpuprune.io import leftovers

RUNNER = Path(__file__).with_name("signal_runner.py")
PREVIOUS = b"previous good output"


def children(pid):
    """Pids whose parent is ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start(net, device, *extra):
    marker = net.parent / "started"
    proc = subprocess.Popen([sys.executable, str(RUNNER), str(net), str(marker), device, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    return proc, marker


def wait_started(proc, marker, timeout=120):
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the run did not reach its first chunk: {err.decode()[-2000:]}")
        time.sleep(0.02)


def leftovers_in(net):
    return sorted(p.name for pattern in leftovers.PATTERNS for p in net.glob(pattern))


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """One copy of striatum_300; each test works on its own copy of that copy."""
    return copy_network("striatum_300", tmp_path_factory.mktemp("signals"))


def fresh(network, tmp_path):
    import shutil

    net = tmp_path / "net"
    shutil.copytree(network, net)
    (net / "network-synapses.hdf5").write_bytes(PREVIOUS)
    return net


@pytest.mark.parametrize("device", ["cpu", "emulated"])
@pytest.mark.parametrize("sig,to_group", [(signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGHUP, False)],
                         ids=["SIGINT-group", "SIGTERM", "SIGHUP"])
def test_signal_stops_cleanly(network, tmp_path, device, sig, to_group):
    net = fresh(network, tmp_path)
    proc, marker = start(net, device)
    wait_started(proc, marker)
    workers = children(proc.pid) if device == "cpu" else []
    if device == "cpu":
        assert len(workers) == 2, workers
    if to_group:  # Ctrl-C: the terminal signals the whole process group, workers included
        os.killpg(proc.pid, sig)
    else:  # Slurm / a closed terminal: the parent alone
        os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines() == [f"gpuprune: interrupted ({sig.name}); no output was written "
                                        "(any previous output is untouched)"], err
    assert (net / "network-synapses.hdf5").read_bytes() == PREVIOUS
    assert leftovers_in(net) == []
    deadline = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(w) for w in workers), "orphaned workers"


def test_signal_after_the_output_is_complete_says_so(network, tmp_path):
    net = fresh(network, tmp_path)
    proc, _ = start(net, "cpu", "after-output")
    out, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "after the new output was complete" in err and "Traceback" not in err, err
    assert (net / "network-synapses.hdf5").read_bytes() != PREVIOUS
    assert gpuprune.prune(net, device="cpu", workers=1, output_file=tmp_path / "again.hdf5").synapses_after > 0
    assert (tmp_path / "again.hdf5").read_bytes() == (net / "network-synapses.hdf5").read_bytes()
    assert leftovers_in(net) == []


def test_kill_9_leftovers_removed_by_next_run_but_not_a_live_runs(network, tmp_path):
    net = fresh(network, tmp_path)
    proc, marker = start(net, "cpu")
    wait_started(proc, marker)
    workers = children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers and not any(alive(w) for w in workers), "workers outlived a killed parent"
    left = leftovers_in(net)
    assert any(n.endswith(".hdf5.part") for n in left) and any(n.startswith(".gpuprune-parts-") for n in left)

    live = net / ".network-synapses-live.hdf5.part"  # another run's temporary, still held
    live.write_bytes(b"x")
    held = leftovers.Held()
    held.hold(str(live))
    try:
        gpuprune.prune(net, device="cpu", workers=1)
        assert leftovers_in(net) == [live.name]
    finally:
        held.release()
    assert (net / "network-synapses.hdf5").read_bytes() != PREVIOUS
