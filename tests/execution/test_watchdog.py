"""The MPI watchdog (cluster/watchdog.py): a process killed outright leaves none of its temporaries, and the
helper never removes those of another live run in the same folder."""

import os
import subprocess
import sys
import textwrap

import pytest

from gpuprune.io import leftovers
from gpuprune.io.layout import AtomicFile

pytestmark = pytest.mark.skipif(leftovers.fcntl is None, reason="no fcntl: nothing is locked or swept")

CHILD = textwrap.dedent("""
    import os, sys
    from gpuprune.cluster.watchdog import Watchdog
    from gpuprune.io.layout import AtomicFile
    folder = sys.argv[1]
    dog = Watchdog(folder, "gpuprune: error: the watched process died")
    temp = AtomicFile(os.path.join(folder, "network-synapses.hdf5"))
    print(temp.temp_path, flush=True)
    if sys.argv[2] == "die":
        os._exit(9)  # no clean-up runs, as under SIGKILL
    temp.discard()
    dog.close()
""")


def run_child(folder, how):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", CHILD, str(folder), how], capture_output=True, text=True,
                          timeout=60, env=env)


def wait_gone(path, timeout=20.0):
    import time

    end = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.05)
    return not os.path.exists(path)


def test_dead_process_temporary_removed_live_one_kept(tmp_path):
    live = AtomicFile(tmp_path / "other-output.hdf5")  # another run, alive, in the same folder
    try:
        proc = run_child(tmp_path, "die")
        assert proc.returncode == 9
        dead = proc.stdout.strip()
        assert os.path.basename(dead).startswith(".network-synapses-")
        assert wait_gone(dead), "the dead process's temporary was left behind"
        assert os.path.exists(live.temp_path), "the watchdog removed a live run's temporary"
    finally:
        live.discard()
    assert os.listdir(tmp_path) == []


def test_clean_exit_leaves_nothing_and_says_nothing(tmp_path):
    proc = run_child(tmp_path, "exit")
    assert proc.returncode == 0 and "died" not in proc.stderr
    assert os.listdir(tmp_path) == []
