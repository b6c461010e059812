"""Drop-in replacement for ``snudda.detect.prune.SnuddaPrune``, on gpuprune's engine.

Switch by changing one import::

    from gpuprune import SnuddaPrune      # instead of snudda.detect.prune

The class has Snudda 3.0's constructor and methods, writes the same files
(per-range merge files in ``temp/``, ``pruning_merge_info.json``,
``network-synapses.hdf5``, ``log/synapse-pruning.txt``) and, with the
default ``rng="snudda"``, the same pruned network bit for bit.  Every step
runs on the vectorised engine instead of Snudda's per-row loops and heap
merge.  ``rng="philox"`` (with ``device``) prunes the hyper voxel files
directly through gpuprune's pipeline instead, on a GPU when asked.

Logging goes through :mod:`logging`: the logger ``gpuprune.snudda`` (which
does not propagate; add a handler to it to receive the messages elsewhere)
writes to Snudda's log file, and to standard output when ``verbose`` is set
or the message is an error or forced, as Snudda's ``write_log`` does.
Warnings of the core modules (logger ``gpuprune``) also go to the log file.

With ``rc`` or ``d_view`` (ipyparallel), the merge ranges and the pruning of
each merge file run on the engines through ipyparallel's executor; each engine
holds a worker instance of this class, as in Snudda.

The class is composed of one mixin per concern, each in its own module:
:mod:`~gpuprune.compat.snudda.settings` (work log, config, rules, seeds),
:mod:`~gpuprune.compat.snudda.voxels` (hyper voxel files, lookup iterators),
:mod:`~gpuprune.compat.snudda.merge` (merge files), :mod:`~gpuprune.compat.snudda.merge_info`
(``pruning_merge_info.json``), :mod:`~gpuprune.compat.snudda.output` (pruning merge files into the
output; blocks in :mod:`~gpuprune.compat.snudda.blocks`), :mod:`~gpuprune.compat.snudda.workers`
(ipyparallel) and :mod:`~gpuprune.compat.snudda.log`.  This module holds the constructor, the
object's lifetime and :meth:`SnuddaPrune.prune`.  File layouts and atomic writes are io's
(:mod:`gpuprune.io.layout`), shared with ``gpuprune.prune``.
"""

import glob
import os
import sys
import time

from gpuprune import engine
from gpuprune.api import DEVICES, Pruner
from gpuprune.compat.snudda.log import Logging, once
from gpuprune.compat.snudda.merge import MergeFiles
from gpuprune.compat.snudda.merge_info import MergeInfo
from gpuprune.compat.snudda.output import PruneFiles
from gpuprune.compat.snudda.settings import Settings
from gpuprune.compat.snudda.voxels import HyperVoxels
from gpuprune.compat.snudda.workers import Parallel
from gpuprune.errors import (
    DeviceError,
    InputError,
    snudda_cpu_only_message,
    unknown_device_message,
    unknown_mode_message,
)
from gpuprune.format import (
    CHUNK_ROWS,
    COMPRESSION,
    COUNT,
    KINDS,
    MERGE_INFO_FILE,
    OUTPUT_FILE,
    PROJECTION_FILE,
    SCRATCH_DIR,
    VOXEL_DIR,
    WORKLOG,
)
from gpuprune.io.layout import AtomicFile
from gpuprune.io.reader import close_files

#: Snudda's synapse type names (``synapse_type_lookup``).
SYNAPSE_TYPES = {1: "GABA", 2: "AMPA_NMDA", 3: "gap_junction", 4: "ACh", 5: "NO"}


class SnuddaPrune(Settings, HyperVoxels, MergeFiles, MergeInfo, PruneFiles, Parallel, Logging):
    """Prunes detected network synapses to match pairwise connectivity statistics.

    A drop-in replacement for ``snudda.detect.prune.SnuddaPrune`` (Snudda 3.0):
    same constructor, methods and files, each step vectorised.

    Parameters
    ----------
    network_path : str
        Network directory.
    logfile : file, optional
        Open file to log to; default derived from ``logfile_name``.
    logfile_name : str, optional
        Log file (truncated); default ``NETWORK/log/synapse-pruning.txt``.
    rc : ipyparallel.Client, optional
        Run merge ranges and pruning on its engines.
    d_view : ipyparallel.DirectView, optional
        The engines to use; default all engines of ``rc``.
    role : {"master", "worker"}
        Workers run tasks for a master; only a master prunes.
    verbose : bool
        Print every log message (errors and forced messages are always printed).
    config_file : str, optional
        Pruning config; default ``NETWORK/network-config.json``, else the file detect recorded.
    scratch_path : str, optional
        Directory for merge and temporary files; default ``NETWORK/temp``.
    h5libver : str
        HDF5 library version bound for the files written (default "latest").
    random_seed : int, optional
        Master prune seed; default the config's ``random_seed.prune``, else 1003.
    keep_files : bool
        If False (default), remove the files in ``temp/`` and ``voxels/`` after
        pruning; if True, pruning can be repeated (e.g. with another config)
        without merging again.
    all_neuron_pair_synapses_share_parameter_id : bool
        Give all synapses of a neuron pair (and channel type) the parameter id
        of the first one.
    rng : {"snudda", "philox"}
        gpuprune extension.  ``"snudda"``: Snudda's random streams and merge
        files, output identical to Snudda's.  ``"philox"``: gpuprune's
        counter-based draws; :meth:`prune` then prunes the hyper voxel files
        directly with gpuprune's pipeline (no merge files).
    device : {"auto", "cpu", "gpu"}
        gpuprune extension: where ``rng="philox"`` prunes.  Snudda randomness
        runs on the CPU only.

    Notes
    -----
    Deliberate differences from Snudda 3.0, each also noted where it applies:
    errors are exceptions (:class:`gpuprune.InputError` and subclasses), never
    ``assert``, ``sys.exit`` or ``pdb``; the config defaults to the one in the
    network directory (networks get moved); a malformed config or an unfinished
    detect is refused when the object is made; the final output is written
    under a temporary name and renamed into place.
    """

    def __init__(self, network_path, logfile=None, logfile_name=None, rc=None, d_view=None, role="master",
                 verbose=False, config_file=None, scratch_path=None, h5libver="latest", random_seed=None,
                 keep_files=False, all_neuron_pair_synapses_share_parameter_id=True, *, rng=engine.SNUDDA,
                 device="auto"):
        self.network_path = os.path.abspath(os.fspath(network_path))
        if not os.path.isdir(self.network_path):
            raise InputError("network directory not found", self.network_path)
        if rng not in engine.MODES:
            raise InputError(unknown_mode_message(rng, engine.MODES))
        if device not in DEVICES:
            raise InputError(unknown_device_message(device, DEVICES))
        if rng == engine.SNUDDA and device == "gpu":
            raise DeviceError(snudda_cpu_only_message("use device='cpu', or rng='philox' on the GPU"))
        if role not in ("master", "worker"):
            raise InputError(f"role must be 'master' or 'worker', got {role!r}")
        self.rng, self.device = rng, device
        self.rc, self.d_view, self.role = rc, d_view, role
        self.verbose, self.h5libver, self.h5driver = verbose, h5libver, "sec2"
        self.keep_files = keep_files
        self.all_neuron_pair_synapses_share_parameter_id = all_neuron_pair_synapses_share_parameter_id
        self.work_history_file = os.path.join(self.network_path, WORKLOG)
        self.merge_info_file = os.path.join(self.network_path, MERGE_INFO_FILE)
        self.projection_synapse_file = os.path.join(self.network_path, PROJECTION_FILE)
        self.synapse_type_lookup = dict(SYNAPSE_TYPES)
        self.synapse_type_reverse_lookup = {v: k for k, v in SYNAPSE_TYPES.items()}
        self.synapse_chunk_size = self.gap_junction_chunk_size = CHUNK_ROWS
        self.h5compression = COMPRESSION
        self.synapse_buffer_size = 100000
        self.cluster_distance = engine.CLUSTER_DISTANCE
        self.data_loc = {k.name: (k.matrix, k.worklog_counts, COUNT[k.name].split("/")[1], k.lookup)
                         for k in KINDS.values()}
        self._reset_state()
        self._setup_log(logfile, logfile_name)
        self.random_seed = random_seed
        self.write_log(f"Using hdf5 driver {self.h5driver}, {self.h5libver} version")
        if self.rc is not None and self.d_view is None:
            self.d_view = self.rc.direct_view(targets="all")
        try:
            self.open_work_history_file(work_history_file=self.work_history_file, config_file=config_file)
            self.set_scratch_path(scratch_path)
            self.load_pruning_information(config_file=self.config_file)
        except BaseException:
            self.close()
            raise

    def _reset_state(self):
        self.hist_file = self.out_file = self.buffer_out_file = None
        self.max_channel_type = None
        self.synapse_write_buffer = None
        self.next_buffer_write_pos = self.next_file_write_pos = 0
        self.file_list, self.file_buffers = [], []
        self.merge_data_type = None
        self.temp_file_list = []
        self.scratch_path = None
        self.voxel_overflow_counter = 0
        self.overflow_files = []
        self.workers_initialised = False
        self.cache_neuron_seeds = self.cache_old_seed = self.cache_num_neurons = None
        self.connectivity_distributions = None
        self._network = self._worklog = None
        self._executor_obj = None
        self._rules_cache = (None, None)
        self._seen_warnings = set()
        self._log = None

    # -- lifetime ----------------------------------------------------------------------------------

    def close(self):
        """Close the work log, any open output or merge file, and the log handlers."""
        for attr in ("out_file", "buffer_out_file", "hist_file"):
            f = getattr(self, attr, None)
            if f is not None:
                try:
                    f.close()
                except (OSError, ValueError, RuntimeError):
                    pass
                setattr(self, attr, None)
        if getattr(self, "_log", None) is not None:
            self.close_log_file()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        if sys is None or getattr(sys, "meta_path", None) is None:  # interpreter shutdown
            return
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a destructor
            pass

    def prune(self):
        """Merge the hyper voxel files (unless valid merge files exist), prune, write the output.

        Notes
        -----
        ``rng="snudda"``: Snudda's steps (:meth:`get_merge_info` or
        :meth:`gather_neuron_synapses` + :meth:`save_merge_info`, then
        :meth:`prune_synapses_parallel` for synapses and gap junctions).
        ``rng="philox"``: gpuprune's pipeline on the hyper voxel files (device
        ``device``, engines as executor), with the rules of
        ``connectivity_distributions``.  Either way the output is written under a
        temporary name and renamed into place (unless the caller already opened
        ``out_file``, which then receives the rows), and with ``keep_files=False``
        :meth:`cleanup` removes ``temp/`` and ``voxels/`` files afterwards.
        """
        start = time.perf_counter()
        if self.role != "master":
            self.write_log("prune should only be called on master")
            return
        try:
            if self.rng == engine.PHILOX:
                self._prune_native()
            else:
                self._prune_merged()
        except BaseException as exc:
            self.write_log(f"prune failed: {type(exc).__name__}: {exc}", is_error=True)
            raise
        if not self.keep_files:
            self.cleanup()
        self.write_log(f"prune synapses and gap junctions: {time.perf_counter() - start:.1f}s")

    def _prune_merged(self):
        if self.out_file is not None:  # the caller's open file receives the rows
            self._merge_and_prune()
            return
        with AtomicFile(os.path.join(self.network_path, OUTPUT_FILE)) as temp:
            try:
                self.setup_output_file(temp)
                self._merge_and_prune()
            finally:
                if self.out_file is not None:
                    self.out_file.close()
                    self.out_file = None

    def _merge_and_prune(self):
        info = self.get_merge_info()
        if info is None:
            info = self.gather_neuron_synapses()
            self.save_merge_info(*info)
        files_syn, _, ctr_syn, files_gj, _, ctr_gj = info
        self.prune_synapses_parallel(files_syn, ctr_syn, "synapses", close_input_file=False)
        self.prune_synapses_parallel(files_gj, ctr_gj, "gap_junctions", close_input_file=True)

    def _prune_native(self):
        with once(self._seen_warnings):
            pruner = Pruner(self.network_path, config_file=self.config_file, random_seed=self.random_seed)
        pruner.network.rules = self._current_rules()  # edits of connectivity_distributions apply
        pruner.network.config = self.config
        result = pruner.prune(rng=engine.PHILOX, device=self.device, executor=self._executor(),
                              share_parameter_id=self.all_neuron_pair_synapses_share_parameter_id)
        self.write_log(f"pruned with philox on {result.device}: synapses {result.synapses_before} -> "
                       f"{result.synapses_after}, gap junctions {result.gap_junctions_before} -> "
                       f"{result.gap_junctions_after}", force_print=True)

    def cleanup(self):
        """Remove the files in ``NETWORK/temp`` and ``NETWORK/voxels``, freeing disk space.

        Notes
        -----
        Called by :meth:`prune` when ``keep_files`` is False.  Only this class
        deletes inputs; ``gpuprune.prune`` and the command line never do.
        """
        close_files()
        self._network = None
        for path in (os.path.join(self.network_path, d) for d in (SCRATCH_DIR, VOXEL_DIR)):
            self.write_log(f"Removing temp files from {path}")
            for name in glob.glob(os.path.join(path, "*")):
                if os.path.isfile(name):
                    try:
                        os.remove(name)
                    except OSError as exc:
                        self.write_log(f"cleanup: failed to remove {name}: {exc}")
