"""Beyond one machine: chunk tasks on a Dask cluster (``dask``) or on MPI ranks (``mpi``).

Both run the same pure task (:func:`gpuprune.cluster.remote.remote_prune`) on workers that hold a
:class:`~gpuprune.cluster.remote.RemoteContext` (sent once), on the worker's GPU or with the NumPy
engine, and hand results back in chunk order through the pool contract of
:mod:`gpuprune.execution.base` -- so the output is byte-identical to a single-process run.
"""

import os

from gpuprune.cluster.remote import RemoteContext, gpu_options


def remote_pool(ctx, net, *, client=None, mpi=False, device="auto", gpus=None, gpu_memory=None, read_threads=None,
                output_file=None):
    """The pool for :meth:`Pruner.prune`'s ``client=`` (Dask) or ``mpi=`` options."""
    rctx = RemoteContext(ctx, net.sources, device, gpu_options(gpus, gpu_memory, read_threads))
    if client is not None:
        from gpuprune.cluster.dask import DaskPool

        return DaskPool(rctx, client)
    from gpuprune.cluster.mpi import MpiPool

    return MpiPool(rctx, os.path.dirname(os.path.abspath(output_file or ".")))
