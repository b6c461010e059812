"""Batched evaluation on a device: the model resident, one kernel launch per batch (DESIGN §7).

:class:`DeviceEvaluator` is the twin of :class:`gpuprune.tune.evaluate.Evaluator` on a device
backend (:class:`gpuprune.device.cupy_backend.CupyBackend`, or the emulated device that runs the
same kernel source on the host, so that every CI run checks it).  The model's draws stay on the
device; a batch uploads only its parameters and the probability tables the host computed
(:func:`~gpuprune.tune.evaluate.batch_tables`, the same the NumPy evaluation reads), and kernel
``gp_tune_kept`` (``kernels/tune.cuh``: one thread per group, each row read once for all P sets)
writes the kept rows of every (set, group).  Comparisons only, so the integers are the CPU's.
"""

import numpy as np

from gpuprune.device import abi, memory
from gpuprune.errors import DeviceError, InputError
from gpuprune.tune.evaluate import batch_tables, thresholds

#: the kernel
KERNEL = "gp_tune_kept"


def device_backend(device):
    """``(backend, array module)`` for ``device`` "gpu" (CUDA device 0 through CuPy) or "emulated"."""
    if device == "emulated":
        from gpuprune.device.emulated import EmulatedBackend

        return EmulatedBackend(0), np
    from gpuprune.device.cupy_backend import CupyBackend, device_count

    if device_count() < 1:
        raise DeviceError("device='gpu' needs CuPy and a CUDA device (pip install 'gpuprune[gpu]')")
    import cupy

    return CupyBackend(0), cupy


class DeviceEvaluator:
    """A model resident on one device backend, evaluated in batches with one launch each.

    Parameters
    ----------
    model : gpuprune.tune.model.PathwayModel
    backend : gpuprune.device.backend.DeviceBackend
    sets_per_thread : int, optional
        Parameter sets each thread evaluates for its group (default all of a launch's: each row is
        read once per batch).  Smaller tiles start more threads, ``groups x ceil(P / tile)``, for
        pathways with few groups; the counts are the same (benchmarks/bench_tune.py --tile).
    """

    def __init__(self, model, backend, sets_per_thread=None):
        if sets_per_thread is not None and int(sets_per_thread) < 1:
            raise InputError(f"sets_per_thread must be >= 1, got {sets_per_thread!r}")
        self.sets_per_thread = None if sets_per_thread is None else int(sets_per_thread)
        self.model, self.backend = model, backend
        g = self.num_groups = model.num_groups
        bounds, self.n_max = model.row_bounds()
        self.cut = model.row_inside is not None
        need = memory.tune_resident_bytes(model.num_rows, g, self.cut)
        budget = backend.memory_budget()
        if need > budget:
            raise DeviceError(f"{backend.description}: the model of {','.join(model.pathway)} needs {need:,} bytes, "
                              f"{budget:,} are free; tune fewer pathways per device or use device='cpu'")
        with backend.device_scope():
            put = backend.upload
            self._resident = {
                "tune.lo": put(bounds), "tune.block": put(model.group_block.astype(np.uint8)),
                "tune.r_f1": put(model.r_f1.astype(np.float64)), "tune.r_sm": put(model.r_sm.astype(np.float64)),
                "tune.r_a3": put(model.r_a3.astype(np.float64)), "tune.r_mu2": put(model.r_mu2.astype(np.float64)),
            }
            if self.cut:
                self._resident["tune.inside"] = put(model.row_inside.astype(np.uint8))
            backend.synchronize_device()
        self._scratch = None
        self._fits = 0  # the largest batch known to fit in one launch

    def _sets_per_launch(self, p, blocks, budget):
        """Parameter sets one launch may take within ``budget`` bytes (all P when they fit)."""
        one = memory.tune_launch_bytes(self.num_groups, 1, blocks, self.n_max + 1)
        fit = int(budget // max(one, 1))
        if fit < 1:
            raise DeviceError(f"{self.backend.description}: no memory left for one parameter set of "
                              f"{','.join(self.model.pathway)} ({one:,} bytes)")
        return min(p, fit)

    def _work(self, sets):
        """The (sets, groups) scratch of the kernel, kept between batches while it is large enough."""
        if self._scratch is None or self._scratch.size < sets * self.num_groups:
            self._scratch = None  # free the smaller one first
            self._scratch = self.backend.empty(sets * self.num_groups, np.int32)
        return self._scratch

    def evaluate_pg(self, batch):
        """``(kept, counted)``: kept rows per group, int32 (P, groups), new device arrays (NumPy-backed on
        the emulated device), and of those the rows inside the model's z cut (``kept`` without a cut)."""
        p, g, be = batch.size, self.num_groups, self.backend
        blocks = batch.f1.shape[1]
        if p == 0:
            with be.device_scope():
                empty = be.empty(0, np.int32).reshape(0, g)
            return empty, empty
        # the free memory is asked (NVML on a GPU: milliseconds) only for a batch larger than any before
        step = p if p <= self._fits else None
        if step is None:
            out = memory.tune_output_bytes(g, p, self.cut)
            budget = be.memory_budget()
            if out > budget:
                raise DeviceError(f"{be.description}: the kept counts of {p:,} parameter sets of "
                                  f"{','.join(self.model.pathway)} need {out:,} bytes, {budget:,} are free; "
                                  "evaluate smaller batches")
            step = self._sets_per_launch(p, blocks, budget - out)
            if step == p:
                self._fits = p
        a3, soft_max = thresholds(batch)
        p_keep, p_mu = batch_tables(batch, self.n_max)
        with be.device_scope():
            kept = be.empty(p * g, np.int32)
            counted = be.empty(p * g, np.int32) if self.cut else None
            for s in range(0, p, step):  # one launch for the whole batch whenever it fits the device
                e = min(s + step, p)
                tile = min(e - s, self.sets_per_thread or e - s)
                args = abi.Args(self._resident)
                args.update({
                    "tune.n_groups": g, "tune.n_sets": e - s, "tune.sets_per_thread": tile,
                    "tune.n_blocks": blocks, "tune.width": self.n_max + 1,
                    "tune.f1": be.upload(batch.f1[s:e]), "tune.a3": be.upload(a3[s:e]),
                    "tune.soft_max": be.upload(soft_max[s:e]),
                    "tune.p_keep": be.upload(p_keep[s:e].reshape(-1)), "tune.p_mu": be.upload(p_mu[s:e].reshape(-1)),
                    "tune.work": self._work(e - s), "tune.kept": kept[s * g:e * g],
                    "tune.counted": None if counted is None else counted[s * g:e * g]})
                be.launch(KERNEL, g * -(-(e - s) // tile), args)
            be.synchronize_device()
        kept = kept.reshape(p, g)
        return kept, kept if counted is None else counted.reshape(p, g)

    def kept(self, batch, counted=False):
        """Kept rows per group, (P, groups), as :meth:`Evaluator.kept`."""
        return self.evaluate_pg(batch)[1 if counted else 0]

    def kept_gp(self, batch):
        """Kept rows per group, (groups, P) (a transposed view)."""
        return self.kept(batch).T


__all__ = ["KERNEL", "DeviceEvaluator", "device_backend"]
