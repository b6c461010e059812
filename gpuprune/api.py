"""The Python interface: :func:`prune`, :class:`Pruner` and :class:`PruneResult`."""

import contextlib
import copy
import logging
import math
import os
import signal
import time

import numpy as np

from gpuprune import engine
from gpuprune.engine.pathway import PathwayCodes
from gpuprune.errors import DeviceError, InputError, Interrupted, output_write_error, snudda_cpu_only_message
from gpuprune.execution.pools import ExecutorPool, InlinePool, LocalPool
from gpuprune.execution.signals import signals_deferred, stop_on_signals
from gpuprune.format import GAP_JUNCTIONS, OUTPUT_FILE, SYNAPSES
from gpuprune.io import leftovers
from gpuprune.io.leftovers import check_output, same_file
from gpuprune.io.network import Network
from gpuprune.io.reader import close_files, default_workers
from gpuprune.io.writer import COMPRESSIONS, OutputWriter
from gpuprune.result import PathwayStats, PruneResult  # noqa: F401 - re-exported: gpuprune.api.PruneResult
from gpuprune.rng.philox import check_seed
from gpuprune.rules.params import GAP_JUNCTION_CHANNEL

log = logging.getLogger("gpuprune")

#: rows per chunk when the user gives no budget (about 52 MB of synapse rows)
DEFAULT_ROW_BUDGET = 1_000_000
#: chunks per worker process when the user gives no budget (runs of them share HDF5 chunk caches)
CHUNKS_PER_WORKER = 8
#: never cut chunks smaller than this just to feed more workers
MIN_ROW_BUDGET = 100_000
DEVICES = ("auto", "cpu", "gpu")


_lzf_warned = False


def _warn_without_lzf():
    """Say once per process when the C extension is missing (reads and writes then go through h5py)."""
    global _lzf_warned
    from gpuprune.io import reader as stream
    from gpuprune.io import writer

    if not _lzf_warned and (stream._lzf_decompress_into is None or writer._lzf_compress is None):
        _lzf_warned = True
        log.warning("gpuprune.io._lzf is not built (no C compiler when gpuprune was installed): reading and "
                    "compressing through h5py, about 1.5x slower; reinstall where a C compiler is available")


def _gpu_available():
    try:
        from gpuprune.device import cupy_backend
    except ImportError:
        return False
    return cupy_backend.device_count() > 0


class Pruner:
    """A network opened once and pruned as often as needed (e.g. while tuning parameters).

    Parameters
    ----------
    network_path : str
        The Snudda network directory.
    config_file : str, optional
        Pruning config (default ``NETWORK/network-config.json``).
    random_seed : int, optional
        Master seed (default: the config's ``random_seed.prune``, else 1003).
    """

    def __init__(self, network_path, config_file=None, random_seed=None):
        t0 = time.perf_counter()
        self.network = Network(network_path, config_file=config_file, random_seed=random_seed)
        self.open_s = time.perf_counter() - t0

    @property
    def config(self):
        """A copy of the config the next :meth:`prune` applies and stores in its output.

        It is a copy so that the output's ``config`` dataset is always the config whose rules were
        applied: editing the returned dict changes nothing until it is passed to :meth:`set_config`.
        """
        return copy.deepcopy(self.network.config)

    def set_config(self, config):
        """Use ``config`` (a dict or a path) for the following prunes; see :meth:`Network.set_config`."""
        self.network.set_config(config)

    def _device(self, device, rng):
        if device not in DEVICES:
            raise InputError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
        if device == "gpu":
            if rng == engine.SNUDDA:
                raise DeviceError(snudda_cpu_only_message())
            if not _gpu_available():
                raise DeviceError("no GPU available: the GPU backend needs CuPy and a CUDA device "
                                  "(pip install 'gpuprune[gpu]')")
            return "gpu"
        if device == "auto":
            if rng != engine.SNUDDA and _gpu_available():
                log.info("device auto: using the GPU")
                return "gpu"
            log.info("device auto: using the CPU (%s)", "snudda randomness is CPU-only"
                     if rng == engine.SNUDDA else "no GPU backend or device available")
        return "cpu"

    def prune(self, output_file=None, *, rng="philox", device="auto", random_seed=None, row_budget=None,
              workers=None, executor=None, compression="lzf", share_parameter_id=True, file_order=None,
              progress=None, gpus=None, gpu_memory=None, client=None, mpi=False):
        """Prune the network and write the output file.

        Parameters
        ----------
        output_file : str, optional
            Default ``NETWORK/network-synapses.hdf5``.
        rng : {"philox", "snudda"}
            Randomness mode (DESIGN §4).
        device : {"auto", "cpu", "gpu"}
        random_seed : int, optional
            Master seed for this run (default: the one the network was opened with).
        row_budget : int, optional
            Rows per chunk (default: 1 M, less to give every worker several chunks).
        workers : int, optional
            Worker processes (default: one per available core).  On the GPU path: the threads
            that decode the input (default one per core, at most ``gpuprune.device.pool.READ_THREADS``).
        executor : concurrent.futures.Executor, optional
            Run chunk tasks on this executor instead of a local process pool.
        compression : {"lzf", "gzip", None}
        share_parameter_id : bool
            Give every row of a group its first row's parameter id (Snudda's default).
        file_order : sequence of int, optional
            Hyper voxel ids in the order to read their files (-1: projection file);
            for testing, as the result does not depend on it.
        progress : callable, optional
            ``progress(done_rows, total_rows)`` after each chunk.
        gpus : int, optional
            GPU path: how many of the visible devices to use (default all).
        gpu_memory : int or str, optional
            GPU path: cap on the device memory to plan with, per device (bytes, or e.g. ``"8G"``);
            default a share of the free memory NVML reports.
        client : distributed.Client, optional
            Run chunk tasks on this Dask cluster (each worker on its own GPU with ``device="gpu"``;
            ``"auto"`` is then decided per worker); see :mod:`gpuprune.cluster.dask`.
        mpi : bool
            Run chunk tasks on the other ranks of ``mpiexec`` (this must be rank 0); see
            :mod:`gpuprune.cluster.mpi`.

        Returns
        -------
        PruneResult
        """
        t_start = time.perf_counter()
        net = self.network
        engine.check_mode(rng)
        remote = client is not None or bool(mpi)  # the workers pick their own devices
        device = device if remote else self._device(device, rng)
        _warn_without_lzf()
        output_file = os.path.abspath(output_file or os.path.join(net.path, OUTPUT_FILE))
        self._refuse_input_as_output(output_file)
        if compression not in COMPRESSIONS:
            raise InputError(f"unknown compression {compression!r}; choose lzf, gzip or none")
        check_output(output_file)
        written = {}  # the temporary output's inode, once made: tells whether it was moved into place
        with stop_on_signals():
            try:
                return self._prune(output_file, written, t_start, rng=rng, device=device, random_seed=random_seed,
                                   row_budget=row_budget, workers=workers, executor=executor,
                                   compression=compression, share_parameter_id=share_parameter_id,
                                   file_order=file_order, progress=progress, gpus=gpus, gpu_memory=gpu_memory,
                                   client=client, mpi=mpi)
            except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM / SIGHUP through stop_on_signals
                signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
                done = same_file(output_file, written.get("inode"))
                log.debug("interrupted by signal %d; new output complete: %s", signum, done)
                raise Interrupted(signum, output_file, done) from None

    def _prune(self, output_file, written, t_start, *, rng, device, random_seed, row_budget, workers, executor,
               compression, share_parameter_id, file_order, progress, gpus, gpu_memory, client=None, mpi=False):
        """:meth:`prune` once the arguments and the output are checked; ``written["inode"]`` is set to the
        temporary output's inode as soon as it exists."""
        net = self.network
        folder = os.path.dirname(output_file)
        with leftovers.folder_lock(folder):
            leftovers.sweep(folder)  # what a run killed here (kill -9) left; never a live run's files
        ctx = engine.PruneContext.from_network(net, mode=rng, share_parameter_id=share_parameter_id)
        if random_seed is not None:
            ctx.seed = check_seed(random_seed)
        n_workers = default_workers() if workers is None else int(workers)
        if n_workers < 1:
            raise InputError(f"workers must be at least 1, got {workers}")
        totals = {k: net.num_rows(k) for k in ("synapses", "gap_junctions")}
        # GPU and cluster pools are made before planning: a GPU pool sizes the chunks to its devices
        pool = gpu = None
        if client is not None or mpi:
            from gpuprune.cluster import remote_pool

            pool = remote_pool(ctx, net, client=client, mpi=mpi, device=device, gpus=gpus, gpu_memory=gpu_memory,
                               output_file=output_file)
            n_workers = pool.workers
        elif device == "gpu":
            from gpuprune.device import pool as device_pool

            options = {k: v for k, v in (("gpus", gpus), ("memory_limit", gpu_memory), ("read_threads", workers))
                       if v is not None}
            pool = gpu = device_pool.GpuPool(ctx, net, **options)
        try:
            plans = {}
            for kind in (SYNAPSES, GAP_JUNCTIONS):
                if gpu is not None:
                    budget = row_budget or gpu.row_budget(kind.name)
                else:
                    budget = row_budget or self._auto_budget(sum(totals.values()), n_workers)
                plans[kind.name] = net.plan(kind.name, budget, file_order=file_order)
        except BaseException:
            if pool is not None:
                pool.shutdown()
            raise
        n_chunks = sum(len(v) for v in plans.values())
        t_plan = time.perf_counter()

        if pool is None:  # else the GPU or cluster pool made above
            if executor is not None:
                pool = ExecutorPool(ctx, executor, n_workers)
            elif n_workers == 1 or n_chunks <= 1 or (row_budget is None and sum(totals.values()) <= MIN_ROW_BUDGET):
                pool = InlinePool(ctx)  # one process: nothing to share, or too little to pay for starting workers
            else:
                pool = LocalPool(ctx, min(n_workers, n_chunks), scratch_dir=os.path.dirname(output_file))
        stats = np.zeros((4, engine.pathway_code_size(ctx)), dtype=np.int64)
        read_s = compute_s = 0.0
        done, total_rows = 0, sum(totals.values())
        try:
            try:
                with contextlib.ExitStack() as stack:
                    # the writer's temporary is made and locked at once (io.layout.AtomicFile)
                    out = stack.enter_context(
                        OutputWriter(output_file, net.worklog_path, net.config, compression=compression))
                    written["inode"] = os.stat(out.temp_path).st_ino
                    spec = net.spec()["files"]
                    jobs = [(kind.name, spec[kind.name], plans[kind.name]) for kind in (SYNAPSES, GAP_JUNCTIONS)]
                    for kind_name, chunk, res in pool.run(jobs):
                        out.append(kind_name, res.rows)
                        stats += res.stats
                        read_s += res.read_s
                        compute_s += res.compute_s
                        done += chunk.num_rows
                        if progress is not None:
                            progress(done, total_rows)
                counts = dict(out.counts)  # final after close
            except OSError as exc:  # HDF5's messages take several lines; a full disk is one
                raise output_write_error(output_file, exc) from None
        finally:
            with signals_deferred():  # a second signal must not cut the cleanup short
                pool.shutdown()
                close_files()
        t_end = time.perf_counter()
        result = PruneResult(
            output_file=output_file,
            synapses_before=totals["synapses"], synapses_after=counts["synapses"],
            gap_junctions_before=totals["gap_junctions"], gap_junctions_after=counts["gap_junctions"],
            pathways=self._pathways(ctx, stats), device=device, rng=rng, random_seed=ctx.seed,
            workers=getattr(pool, "workers", 1), chunks=n_chunks,
            timings={"open": self.open_s, "plan": t_plan - t_start, "prune": t_end - t_plan,
                     "total": t_end - t_start, "read": read_s, "compute": compute_s})
        log.info("pruned %s: synapses %d -> %d, gap junctions %d -> %d in %.2f s (%s, %s)", net.path,
                 result.synapses_before, result.synapses_after, result.gap_junctions_before,
                 result.gap_junctions_after, result.timings["total"], device, rng)
        return result

    @staticmethod
    def _auto_budget(total_rows, workers):
        if workers <= 1:
            return DEFAULT_ROW_BUDGET
        per = math.ceil(total_rows / (CHUNKS_PER_WORKER * workers))
        return max(MIN_ROW_BUDGET, min(DEFAULT_ROW_BUDGET, per))

    def _refuse_input_as_output(self, output_file):
        net = self.network
        inputs = {net.worklog_path, net.config_path}
        for files in net.sources.values():
            inputs.update(sf.path for sf in files)
        if any(os.path.exists(p) and os.path.exists(output_file) and os.path.samefile(p, output_file)
               for p in inputs):
            raise InputError("the output file would overwrite an input file", output_file)

    def _pathways(self, ctx, stats):
        net = self.network
        codes = PathwayCodes.from_context(ctx)
        out = []
        for code in np.flatnonzero(stats[0]):
            pre, post, ch = (int(v) for v in codes.decode(int(code)))
            names = net.rules.describe(pre, post, ch)
            if names is not None:
                name = names[2]
            else:
                name = "gap_junction" if ch == GAP_JUNCTION_CHANNEL else f"channel {ch}"
                name += " (no pruning rule: all removed)"
            kind = "gap_junctions" if ch == GAP_JUNCTION_CHANNEL else "synapses"
            out.append(PathwayStats(net.type_names[pre], net.type_names[post], name, kind,
                                    *(int(stats[i, code]) for i in range(4))))
        return out


def prune(network_path, *, config_file=None, random_seed=None, rng="philox", device="auto", output_file=None,
          **options):
    """Prune a Snudda network directory and write ``network-synapses.hdf5``.

    Parameters
    ----------
    network_path : str
        The network directory (detect output).
    config_file : str, optional
        Pruning config; default ``NETWORK/network-config.json``.
    random_seed : int, optional
        Master seed; default the config's ``random_seed.prune``, else 1003.
    rng : {"philox", "snudda"}
        ``"philox"``: counter-based draws, identical on CPU and GPU for any
        chunking.  ``"snudda"``: reproduces ``SnuddaPrune`` bit for bit (CPU).
    device : {"auto", "cpu", "gpu"}
        ``"auto"`` uses a GPU when the GPU backend and a device are present.
    output_file : str, optional
        Default ``NETWORK/network-synapses.hdf5``.
    **options
        Passed to :meth:`Pruner.prune` (``row_budget``, ``workers``, ``executor``,
        ``compression``, ``progress``, ...).

    Returns
    -------
    PruneResult
        ``None`` on the MPI ranks other than 0 with ``mpi=True`` (they prune for rank 0).

    Examples
    --------
    >>> result = gpuprune.prune("networks/striatum")          # doctest: +SKIP
    >>> print(result.table())                                  # doctest: +SKIP
    """
    if options.get("mpi"):
        from gpuprune.cluster.mpi import serve_unless_root

        if serve_unless_root():  # this rank pruned chunks for rank 0, which writes and returns the result
            return None
    pruner = Pruner(network_path, config_file=config_file, random_seed=random_seed)
    result = pruner.prune(output_file, rng=rng, device=device, **options)
    result.timings["total"] += pruner.open_s  # this call opened the network too
    return result
