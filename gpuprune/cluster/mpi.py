"""Prune under MPI (``mpiexec -n N gpuprune prune NETWORK --mpi``): rank 0 plans and writes, the others prune.

Built on :class:`mpi4py.futures.MPICommExecutor`: every rank but the root serves chunk tasks until
the root is done.  The :class:`RemoteContext` reaches each serving rank once, through the executor's
initializer.  With ``--device gpu`` each rank prunes on one GPU, chosen by its local rank on the node
(:func:`pick_local_gpu`).
"""

import os

from gpuprune.cluster.remote import install, remote_prune, require
from gpuprune.cluster.watchdog import Watchdog
from gpuprune.errors import InputError
from gpuprune.execution.base import SubmitPool

ROOT = 0
#: where MPI launchers put a process's rank on its node (MPICH/Hydra, Open MPI, Slurm)
LOCAL_RANK_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "PMI_LOCAL_RANK")

_RANK_DIED = ("gpuprune: error: an MPI rank ended abruptly (killed, or out of memory?), so mpiexec stopped "
              "the run; no output was written")


def _mpi():
    return require("mpi4py.MPI", "mpi", "--mpi")


def _futures():
    require("mpi4py.MPI", "mpi", "--mpi")
    from mpi4py import futures

    return futures


def world_size():
    return _mpi().COMM_WORLD.Get_size()


def serve_unless_root():
    """On a rank other than the root, serve chunk tasks until the root is done and return True.

    On the root, return False (it goes on to plan and write).  Every rank of ``mpiexec -n N`` calls
    this before opening the network, so that only the root reads the plan and writes the output.
    """
    comm = _mpi().COMM_WORLD
    if comm.Get_size() < 2:
        raise InputError("--mpi needs at least 2 MPI processes (rank 0 writes, the others prune): "
                         "run it as mpiexec -n N gpuprune prune NETWORK --mpi, with N >= 2")
    if comm.Get_rank() == ROOT:
        return False
    with _futures().MPICommExecutor(comm, root=ROOT):
        pass  # returns when the root shuts its executor down
    return True


def pick_local_gpu():
    """Restrict this process to one GPU, chosen by its rank on the node (before CUDA starts here).

    Serving ranks are numbered on each node from the launcher's local rank; with k visible devices,
    local rank r uses device ``r % k``.  Leaves a single visible device as it is.
    """
    local = next((int(os.environ[v]) for v in LOCAL_RANK_VARS if os.environ.get(v, "").isdigit()), None)
    if local is None:
        local = _mpi().COMM_WORLD.Get_rank()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d for d in visible.split(",") if d.strip()]
    else:
        try:
            import pynvml

            pynvml.nvmlInit()
            devices = [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no NVML: leave the devices as they are (the GPU pool reports what it finds)
            return None
    if len(devices) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[local % len(devices)]
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def _install_rank(rctx):
    if rctx.device != "cpu":
        pick_local_gpu()
    install(rctx)


class MpiPool(SubmitPool):
    """Chunk tasks on the serving ranks of ``MPI.COMM_WORLD`` (made on the root; see :func:`serve_unless_root`)."""

    def __init__(self, rctx, output_dir="."):
        comm = _mpi().COMM_WORLD
        if comm.Get_size() < 2:
            serve_unless_root()  # raises the one-line error
        self.workers = comm.Get_size() - 1
        self._cm = _futures().MPICommExecutor(comm, root=ROOT, initializer=_install_rank, initargs=(rctx,))
        self.executor = self._cm.__enter__()
        # when one rank dies, mpiexec SIGKILLs all of them: the watchdog then removes the temporary output
        self._watchdog = Watchdog(output_dir, _RANK_DIED)

    def submit(self, files, kind_name, chunk):
        return self.executor.submit(remote_prune, None, files, kind_name, chunk)

    def shutdown(self):
        self._cm.__exit__(None, None, None)
        self._watchdog.close()
