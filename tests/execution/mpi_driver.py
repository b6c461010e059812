"""Run under ``mpiexec -n N`` by test_mpi.py.

``mpi_driver.py prune ARGS...``: the gpuprune command.  ``mpi_driver.py api RUNS.json``: one
``gpuprune.prune(..., mpi=True)`` per entry ``[network, rng, row_budget, output]`` (one launch, many runs).
The rank named by GPUPRUNE_TEST_KILL_RANK kills itself (SIGKILL) in its first chunk task.
"""

import json
import os
import signal
import sys

from mpi4py import MPI

if os.environ.get("GPUPRUNE_TEST_KILL_RANK") == str(MPI.COMM_WORLD.Get_rank()):
    from gpuprune.cluster import remote

    def _die(*args):
        os.kill(os.getpid(), signal.SIGKILL)

    remote.remote_prune = _die  # looked up by name when a task arrives on this rank

import gpuprune  # noqa: E402  (after the patch)
from gpuprune.cli.main import main  # noqa: E402

if sys.argv[1] == "api":
    with open(sys.argv[2]) as fh:
        for net, rng, budget, out in json.load(fh):
            result = gpuprune.prune(net, rng=rng, device="cpu", row_budget=budget, output_file=out, mpi=True)
            if result is not None:
                print(json.dumps({"out": out, "chunks": result.chunks, "workers": result.workers}), flush=True)
    sys.exit(0)
sys.exit(main(sys.argv[1:]))
