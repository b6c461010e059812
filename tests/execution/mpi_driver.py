"""``mpiexec -n N python mpi_driver.py ARGS...``: the gpuprune command, where the rank named by
GPUPRUNE_TEST_KILL_RANK kills itself (SIGKILL) in its first chunk task (test_mpi.py)."""

import os
import signal
import sys

from mpi4py import MPI

if os.environ.get("GPUPRUNE_TEST_KILL_RANK") == str(MPI.COMM_WORLD.Get_rank()):
    from gpuprune.execution import remote

    def _die(*args):
        os.kill(os.getpid(), signal.SIGKILL)

    remote.remote_prune = _die  # looked up by name when the task arrives on this rank

from gpuprune.cli.main import main  # noqa: E402  (after the patch, as the test wants)

sys.exit(main(sys.argv[1:]))
