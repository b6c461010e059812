"""What the Dask and MPI pools share: the context a remote worker holds, and the task it runs.

A :class:`RemoteContext` travels to each worker process once (Dask: as one task result that every
chunk task depends on; MPI: through the executor's initializer) and stays there; it lazily opens
the worker's own GPU pool the first time a chunk runs on a GPU, so compiled kernels are reused by
every later task of that worker.  :func:`remote_prune` is a pure function of its arguments, which
is what lets Dask rerun a lost worker's tasks elsewhere with byte-identical results.
"""

import importlib
import os
import threading
import types

from gpuprune import engine
from gpuprune.errors import DeviceError, InputError, missing_extra
from gpuprune.execution.pools import prune_task


def require(module, extra, feature):
    """Import ``module``, or raise an :class:`InputError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(missing_extra(feature, extra)) from None


class RemoteContext:
    """The prune context and device choice of one run, as held by each remote worker.

    Parameters
    ----------
    ctx : engine.PruneContext
    sources : dict
        ``Network.sources`` (per-dest row index): a worker's GPU pool splits chunks with it.
    device : {"auto", "cpu", "gpu"}
        Resolved on the worker: ``"auto"`` uses the worker's GPU when it has one (philox only).
    gpu_options : dict, optional
        Passed to :class:`gpuprune.device.pool.GpuPool` (``memory_limit``, ``read_threads``, ``emulate``).
    """

    def __init__(self, ctx, sources, device="auto", gpu_options=None):
        if device not in ("auto", "cpu", "gpu"):
            raise InputError(f"unknown device {device!r}; choose one of auto, cpu, gpu")
        if device == "gpu" and ctx.mode != engine.PHILOX:
            raise DeviceError("snudda randomness runs on the CPU only (it replays NumPy's PCG64 "
                              "streams); use --device cpu, or --rng philox on the GPU")
        self.ctx, self.sources, self.device = ctx, sources, device
        self.gpu_options = dict(gpu_options or {})
        self._init_local()

    def _init_local(self):
        self._gpu, self._lock = None, threading.Lock()
        self._use_gpu = None

    def __getstate__(self):  # the GPU pool and lock stay in the process that made them
        return {k: v for k, v in self.__dict__.items() if k in ("ctx", "sources", "device", "gpu_options")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_local()

    def _want_gpu(self):
        if self._use_gpu is None:
            if self.device == "cpu" or self.ctx.mode != engine.PHILOX:
                self._use_gpu = False
            elif self.gpu_options.get("emulate"):
                self._use_gpu = True
            else:
                try:
                    from gpuprune.device.cupy_backend import device_count
                    visible = device_count()
                except ImportError:
                    visible = 0
                if visible == 0 and self.device == "gpu":
                    raise DeviceError(f"no GPU available on worker process {os.getpid()}: the GPU backend "
                                      "needs CuPy and a CUDA device (pip install 'gpuprune[gpu]')")
                self._use_gpu = visible > 0
        return self._use_gpu

    def prune(self, files, kind_name, chunk):
        """Prune one chunk here: on this worker's GPU (one device per worker) or with the NumPy engine."""
        if not self._want_gpu():
            return prune_task(files, self.ctx, kind_name, chunk)
        with self._lock:  # one pool per worker process; a Dask worker may run several tasks at once
            if self._gpu is None:
                from gpuprune.device import pool

                net = types.SimpleNamespace(sources=self.sources)  # all GpuPool reads of the network
                self._gpu = pool.GpuPool(self.ctx, net, gpus=1, **self.gpu_options)
            fut = self._gpu.submit(files, kind_name, chunk)
        return fut.result()

    def close(self):
        with self._lock:
            if self._gpu is not None:
                self._gpu.shutdown()
                self._gpu = None


def remote_prune(rctx, files, kind_name, chunk):
    """The chunk task of the Dask and MPI pools (``rctx=None``: the MPI worker's installed context)."""
    return (rctx or _installed).prune(files, kind_name, chunk)


_installed = None


def install(rctx):
    """Executor initializer: keep ``rctx`` for this worker process's tasks."""
    global _installed
    from gpuprune.execution.malloc import tune_malloc

    _installed = rctx
    tune_malloc()


def gpu_options(gpus=None, gpu_memory=None, read_threads=None):
    """The :class:`GpuPool` options a worker uses, from :meth:`Pruner.prune`'s (one device per worker)."""
    if gpus not in (None, 1):
        raise InputError(f"gpus={gpus}: on a Dask cluster or under MPI each worker uses one GPU; start one "
                         "worker per GPU (dask-cuda, or one MPI rank per GPU)")
    return {k: v for k, v in (("memory_limit", gpu_memory), ("read_threads", read_threads)) if v is not None}
