"""ipyparallel engines as workers of :class:`gpuprune.snudda_compat.SnuddaPrune`.

As in Snudda, every engine holds a worker instance of the class, made from a
small picklable *spec* of the master (its class, network, config, seed, scratch
path and the current ``connectivity_distributions``).  The class travels in the
spec (pickled by reference), so this module never imports the class.  Tasks are plain calls of
:func:`worker_call` submitted to ipyparallel's executor (a load-balanced
view), so ranges are spread over the engines and come back as futures.  An
engine makes its worker on its first task if :func:`init_worker` did not run
there yet, and replaces it when the spec changes.
"""

import hashlib
import os
import pickle
import time

import numpy as np

from gpuprune.format import PRUNE_LOG

#: worker instances of this process (an ipyparallel engine), by spec key
_WORKERS = {}


def view_executor(d_view):
    """ipyparallel's :class:`concurrent.futures.Executor` over the engines of a direct view."""
    targets = getattr(d_view, "targets", None)
    targets = None if targets in (None, "all") else targets
    return d_view.client.load_balanced_view(targets=targets).executor


def worker_spec(master):
    """What an engine needs to make (or reuse) the worker of ``master``."""
    spec = {"cls": type(master), "network_path": master.network_path, "config_file": master.config_file,
            "random_seed": master.random_seed, "scratch_path": master.scratch_path,
            "h5libver": master.h5libver, "share": master.all_neuron_pair_synapses_share_parameter_id,
            "rng": master.rng, "logfile_name": master.logfile_name,
            "connectivity_distributions": master.connectivity_distributions,
            "population_unit_id": np.asarray(master.population_unit_id)}
    spec["key"] = hashlib.sha1(pickle.dumps(spec)).hexdigest()
    return spec


def init_worker(spec, index=None):
    """Make (or reuse) this engine's worker for ``spec``; it logs to ``<logfile_name>-<index or pid>``.

    Returns the process id.
    """
    if spec["key"] not in _WORKERS:
        _drop_workers()  # one worker per engine; its merge files stay for the next master to reuse
        base = spec["logfile_name"] or os.path.join(spec["network_path"], PRUNE_LOG)
        suffix = os.getpid() if index is None else index
        worker = spec["cls"](spec["network_path"], logfile_name=f"{base}-{suffix}", role="worker",
                             config_file=spec["config_file"], scratch_path=spec["scratch_path"],
                             h5libver=spec["h5libver"], random_seed=spec["random_seed"], keep_files=True,
                             all_neuron_pair_synapses_share_parameter_id=spec["share"], rng=spec["rng"],
                             device="cpu")
        worker.connectivity_distributions = spec["connectivity_distributions"]
        worker.population_unit_id = spec["population_unit_id"]
        _WORKERS[spec["key"]] = worker
    return os.getpid()


def worker_call(spec, method, args):
    """A task: run ``method(*args)`` on this engine's worker."""
    init_worker(spec)
    return getattr(_WORKERS[spec["key"]], method)(*args)


def clean_up_workers():
    """Remove the merge files this engine's workers wrote (their ``clean_up_merge_files``)."""
    for worker in _WORKERS.values():
        worker.clean_up_merge_files()


def _drop_workers():
    for worker in _WORKERS.values():
        worker.close()
    _WORKERS.clear()


class Parallel:
    """SnuddaPrune's ipyparallel methods (a mixin: needs ``d_view``, ``role`` and ``write_log``)."""

    def _executor(self):
        """ipyparallel's executor over the engines of ``d_view``, or None in serial."""
        if self.d_view is None:
            return None
        if self._executor_obj is None:
            self._executor_obj = view_executor(self.d_view)
        return self._executor_obj

    def setup_parallel(self, d_view):
        """Make a worker instance of this class on every engine of ``d_view``.

        Parameters
        ----------
        d_view : ipyparallel.DirectView

        Notes
        -----
        Each worker logs to ``<logfile_name>-<i>``.  Engines that join later
        make their worker when they get their first task.
        """
        if self.role != "master":
            raise RuntimeError("setup_parallel: should only be called by the master")
        if d_view is None:
            self.write_log("setup_parallel called without d_view, aborting.")
            return
        if self.workers_initialised:
            self.write_log("Workers already initialised.")
            return
        self.write_log(f"Setting up workers: {time.strftime('%Y-%m-%d %H:%M:%S')}")
        n = len(d_view)
        d_view.map_sync(init_worker, [worker_spec(self)] * n, list(range(n)))
        self.write_log(f"Workers setup: {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self.workers_initialised = True
