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
"""

import glob
import json
import os
import sys
import tempfile
import time

import h5py
import numpy as np

from gpuprune import engine
from gpuprune.api import DEVICES, OUTPUT_FILE, Pruner
from gpuprune.compat.snudda import files as sf
from gpuprune.compat.snudda.log import LogSink, once
from gpuprune.compat.snudda.workers import clean_up_workers, init_worker, view_executor, worker_call, worker_spec
from gpuprune.errors import ConfigError, DeviceError, InputError, snudda_cpu_only_message
from gpuprune.format import META_KEYS, PROJECTION_FILE, VOXEL_FILE, WORKLOG
from gpuprune.io.network import Network, find_config, open_h5
from gpuprune.io.reader import close_files
from gpuprune.rng.philox import DEFAULT_SEED, check_seed
from gpuprune.rules.config import split_connection_key as _split_connection
from gpuprune.rules.params import GAP_JUNCTION_CHANNEL, PRUNING_KEYS, PruningRules, config_seed, load_config

LOG_FILE = os.path.join("log", "synapse-pruning.txt")
SCRATCH_DIR = "temp"
VOXEL_DIR = "voxels"
#: Snudda's synapse type names (``synapse_type_lookup``).
SYNAPSE_TYPES = {1: "GABA", 2: "AMPA_NMDA", 3: "gap_junction", 4: "ACh", 5: "NO"}


# -- small helpers ---------------------------------------------------------------------------------


def _text(value):
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


def _same(a, b):
    if isinstance(a, (bytes, str, np.bytes_)) or isinstance(b, (bytes, str, np.bytes_)):
        return _text(a) == _text(b)
    return np.shape(a) == np.shape(b) and bool(np.all(np.asarray(a) == np.asarray(b)))


def _temp_output(directory):
    fd, path = tempfile.mkstemp(prefix=".network-synapses-", suffix=".hdf5.part", dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
    return path


def _discard(path):
    if path is not None and os.path.exists(path):
        os.remove(path)


# -- the class -------------------------------------------------------------------------------------


class SnuddaPrune:
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
        engine.check_mode(rng)
        if device not in DEVICES:
            raise InputError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
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
        self.merge_info_file = os.path.join(self.network_path, sf.MERGE_INFO_FILE)
        self.projection_synapse_file = os.path.join(self.network_path, PROJECTION_FILE)
        self.synapse_type_lookup = dict(SYNAPSE_TYPES)
        self.synapse_type_reverse_lookup = {v: k for k, v in SYNAPSE_TYPES.items()}
        self.synapse_chunk_size = self.gap_junction_chunk_size = sf.CHUNK_ROWS
        self.h5compression = sf.COMPRESSION
        self.synapse_buffer_size = 100000
        self.cluster_distance = engine.CLUSTER_DISTANCE
        self.data_loc = {k.name: (k.matrix, k.worklog_counts, sf.COUNT[k.name].split("/")[1], k.lookup)
                         for k in (sf.kind_of("synapses"), sf.kind_of("gap_junctions"))}
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
        self._network = None
        self._executor_obj = None
        self._rules_cache = (None, None)
        self._seen_warnings = set()
        self._log = None

    # -- logging -----------------------------------------------------------------------------------

    def _setup_log(self, logfile, logfile_name):
        self.logfile = logfile
        if logfile_name:
            self.logfile_name = os.fspath(logfile_name)
        elif logfile is not None:
            self.logfile_name = getattr(logfile, "name", None)
        else:
            self.logfile_name = os.path.join(self.network_path, LOG_FILE)
        self._log = LogSink(self, logfile, self.logfile_name)
        self.write_log(f"Log file {self.logfile_name} created.")

    def write_log(self, text, flush=True, is_error=False, force_print=False):
        """Write to the log file; also print if ``verbose``, ``is_error`` or ``force_print``.

        Parameters
        ----------
        text : str
            Text to write.
        flush : bool
            Flush the log handlers after writing.
        is_error : bool
            Log at ERROR level; always printed.
        force_print : bool
            Print even if not verbose.

        Notes
        -----
        Goes through the ``gpuprune.snudda`` logger (INFO, or ERROR for errors).
        """
        if self._log is not None:
            self._log.write(text, flush=flush, is_error=is_error, force_print=force_print)

    def close_log_file(self):
        """Detach and close this instance's log handlers (a file object given by the caller stays open)."""
        if self._log is not None:
            self._log.close()
        self._log = None
        self.logfile = None

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

    # -- reading the network -----------------------------------------------------------------------

    def open_work_history_file(self, work_history_file=None, config_file=None):
        """Open the detect work log and read the network's settings and the config.

        Parameters
        ----------
        work_history_file : str, optional
            Default ``NETWORK/log/network-detect-worklog.hdf5``.
        config_file : str, optional
            Pruning config; default ``NETWORK/network-config.json``, else the
            path detect recorded (Snudda uses the recorded path directly).

        Notes
        -----
        Raises :class:`gpuprune.InputError` if detect did not complete every hyper
        voxel (Snudda 3.0 means to, but its check never fires).  Sets the
        random seed from the config's ``random_seed.prune`` unless one was
        given, else 1003.
        """
        path = os.path.abspath(work_history_file or self.work_history_file)
        self.write_log(f"Opening work history file: {path}")
        if self.hist_file is not None:
            self.hist_file.close()
        self.hist_file = hist = open_h5(path)
        self.work_history_file = path
        try:
            self.slurm_id = hist["meta/slurm_id"][()]
            self.hyper_voxel_id_list = hist["meta/hyper_voxel_ids"][()]
            self.all_hyper_id_list = hist["all_hyper_ids"][()]
            self.voxel_size = hist["meta/voxel_size"][()]
            self.hyper_voxel_size = hist["meta/hyper_voxel_size"][()]
            self.simulation_origo = hist["meta/simulation_origo"][()]
            self.position_file = hist["meta/position_file"][()]
            self.detect_config = json.loads(hist["meta/config"][()])
            n_done = int(hist["num_completed"][0])
            completed = hist["completed"][:n_done]
            counts = {k: hist[k][()] for k in ("num_hypervoxel_synapses", "num_hypervoxel_gap_junctions")}
        except KeyError as exc:
            raise InputError(f"missing entry in the work log: {exc}", path) from None
        # widened from float32 as Snudda's division widens it; None for older detect versions
        key = "network/neurons/max_soma_distance_dend"
        self.max_soma_distance_dend = hist[key][()].astype(np.float64) if key in hist else None
        self.snudda_data = _text(hist["meta/snudda_data"][()]) if "meta/snudda_data" in hist else None
        self.hyper_voxel_width = self.voxel_size * self.hyper_voxel_size
        ids = np.asarray(self.hyper_voxel_id_list)
        self.hyper_voxel_offset = np.zeros((ids.size, 3), dtype=int)
        xyz = np.indices(ids.shape).reshape(3, -1).T
        self.hyper_voxel_offset[ids.reshape(-1)] = xyz * self.hyper_voxel_size
        remaining = np.setdiff1d(self.all_hyper_id_list, completed)
        if remaining.size:
            raise InputError(f"Detection not done. There are {remaining.size} hypervoxels not completed: "
                             f"{', '.join(str(x) for x in remaining)}", path)
        self.num_projection_synapses = int(hist["num_projection_synapses"][()]) \
            if "num_projection_synapses" in hist else 0
        self.num_synapses_total = int(np.sum(counts["num_hypervoxel_synapses"])) \
            + self.num_projection_synapses
        self.num_gap_junctions_total = int(np.sum(counts["num_hypervoxel_gap_junctions"]))
        self.config_file = self._resolve_config(config_file)
        self.config = load_config(self.config_file)
        if self.random_seed is None:
            seed = config_seed(self.config, self.config_file)
            if seed is None:
                self.random_seed = DEFAULT_SEED
                self.write_log(f"No random seed provided, using: {self.random_seed}")
            else:
                self.random_seed = check_seed(seed)
                self.write_log(f"Reading random seed from config file: {self.random_seed}")
        else:
            self.random_seed = check_seed(self.random_seed)
            self.write_log(f"Using random seed provided by command line: {self.random_seed}")
        self._network = None

    def _resolve_config(self, config_file):
        return find_config(self.network_path, config_file, _text(self.hist_file["meta/config_file"][()]))

    def set_scratch_path(self, scratch_path=None):
        """Set the directory for merge and temporary files (default ``NETWORK/temp``, created).

        Parameters
        ----------
        scratch_path : str, optional
            Directory to use; created if missing.
        """
        if self.work_history_file is None or self.work_history_file == "last":
            raise RuntimeError("call open_work_history_file before set_scratch_path")
        if scratch_path is None:
            self.scratch_path = os.path.join(self.network_path, SCRATCH_DIR)
            self.write_log(f"Using default scratch path: {self.scratch_path}")
        else:
            self.scratch_path = os.path.abspath(os.fspath(scratch_path))
            self.write_log(f"User selected scratch path: {self.scratch_path}")
        os.makedirs(self.scratch_path, exist_ok=True)

    def check_network_config_integrity(self, config_file):
        """Check that every connection of a pruning config was looked for by detect.

        Parameters
        ----------
        config_file : str
            Path to the new config file.

        Notes
        -----
        Raises :class:`gpuprune.ConfigError` naming the missing connections.
        Compares (pre type, post type, connection type) of the connections whose
        types exist in the network against what detect recorded in
        ``meta/connectivity_distributions``; Snudda 3.0 means to compare the
        connection keys of ``meta/config`` but its check never fires.
        """
        config = load_config(config_file)
        detected = json.loads(self.hist_file["meta/connectivity_distributions"][()])
        types = set(self._type_names())
        missing = []
        for region in (config.get("regions") or {}).values():
            for con_name, con_data in ((region or {}).get("connectivity") or {}).items():
                pre, posts = _split_connection(con_name, config_file)
                for post in posts:
                    if pre in types and post in types:
                        have = detected.get(f"{pre}$${post}", {})
                        missing += [f"{pre},{post} {c}" for c in (con_data or {}) if c not in have]
        if missing:
            self.write_log(f"!!! Connection(s) {missing} is present in {config_file}, but was not included "
                           "in config file used for detect. Please rerun snudda detect", is_error=True)
            raise ConfigError(f"connection(s) {', '.join(missing)} were not part of detect; rerun detect "
                              "with this config", config_file)

    def _type_names(self):
        return [_text(x).split("_")[0] for x in self.hist_file["network/neurons/name"][()]]

    def make_type_numbering(self):
        """Number the neuron types (the name up to the first ``_``) from 1 in order of first appearance.

        Sets ``type_id_lookup`` (type name -> id) and ``type_id_list`` (id of each neuron).
        """
        type_of = self._type_names()
        self.type_id_lookup = {t: i + 1 for i, t in enumerate(dict.fromkeys(type_of))}
        self.type_id_list = [self.type_id_lookup[t] for t in type_of]

    @staticmethod
    def complete_pruning_info(prune_info):
        """Fill in the defaults of a pruning block, in place, and return it.

        Parameters
        ----------
        prune_info : dict
            A ``pruning`` block: ``dist_pruning``, ``soft_max``, ``mu2``, ``a3``
            default to None, ``f1`` (also when None) to 1.0, ``cluster_pruning`` to False.
        """
        for key in ("dist_pruning", "soft_max", "mu2", "a3"):
            prune_info.setdefault(key, None)
        if prune_info.get("f1") is None:
            prune_info["f1"] = 1.0
        prune_info.setdefault("cluster_pruning", False)
        return prune_info

    def load_pruning_information(self, config_file=None):
        """Read the pruning parameters of a config.

        Parameters
        ----------
        config_file : str, optional
            Default the config chosen when the object was made.

        Notes
        -----
        Sets ``config`` (with every pruning block completed, as Snudda stores
        it in the output), ``population_unit_id``, the type numbering, and
        ``connectivity_distributions``: ``(pre type id, post type id, channel
        model id) -> (pruning, pruning_other or None)``.  Pruning follows that
        dict, so it may be edited before pruning, as Snudda's optimiser does.
        The config is validated here (a malformed block, distance pruning of gap
        junctions, a connection detect did not look for): errors come before any work.
        """
        config_file = os.path.abspath(config_file) if config_file is not None else self.config_file
        self.check_network_config_integrity(config_file=config_file)
        config = load_config(config_file)
        self.population_unit_id = self.hist_file["network/neurons/population_unit_id"][()].copy()
        self.make_type_numbering()
        detected = json.loads(self.hist_file["meta/connectivity_distributions"][()])
        names = list(self.type_id_lookup)
        with once(self._seen_warnings):
            PruningRules(config, config_file, names, detected,
                         has_max_soma_distance=self.max_soma_distance_dend is not None)
        dists, con_names = {}, {}
        for region in config["regions"].values():
            for con_name, con_data in (region.get("connectivity") or {}).items():
                pre, posts = _split_connection(con_name, config_file)
                for post in posts:
                    if pre not in self.type_id_lookup or post not in self.type_id_lookup:
                        self.write_log(f"Skipping {pre} to {post} connection")
                        continue
                    for con_type, data in con_data.items():
                        pruning = self.complete_pruning_info(data["pruning"])
                        other = self.complete_pruning_info(data["pruning_other"]) \
                            if "pruning_other" in data else None
                        channel = detected[f"{pre}$${post}"][con_type]["channel_model_id"]
                        key = (self.type_id_lookup[pre], self.type_id_lookup[post], channel)
                        dists[key] = (pruning, other)
                        con_names[key] = con_type
        self.config = config
        self.connectivity_distributions = dists
        self._connection_names = con_names
        self._rules_cache = (None, None)

    @property
    def network(self):
        """The validated network (:class:`gpuprune.network.Network`), read on first use."""
        if self._network is None:
            with once(self._seen_warnings):
                self._network = Network(self.network_path, config_file=self.config_file,
                                        random_seed=self.random_seed)
            self.max_channel_type = self._network.max_channel_type_id
        return self._network

    def _current_rules(self):
        """Pruning rules of the current ``connectivity_distributions`` (rebuilt when it changes)."""
        dists = self.connectivity_distributions or {}
        fingerprint = json.dumps(sorted((list(map(int, k)), v) for k, v in dists.items()), default=str)
        if self._rules_cache[0] == fingerprint:
            return self._rules_cache[1]
        names = list(self.type_id_lookup)
        config, detected = {"regions": {"connectivity_distributions": {"connectivity": {}}}}, {}
        connectivity = config["regions"]["connectivity_distributions"]["connectivity"]
        for (pre_id, post_id, channel), (pruning, other) in dists.items():
            pre, post = names[int(pre_id) - 1], names[int(post_id) - 1]
            con = getattr(self, "_connection_names", {}).get((pre_id, post_id, channel), f"channel {channel}")
            con = con if con not in detected.get(f"{pre}$${post}", {}) else f"{con} (channel {channel})"
            entry = {"pruning": {k: v for k, v in pruning.items() if k in PRUNING_KEYS}}
            if other is not None:
                entry["pruning_other"] = {k: v for k, v in other.items() if k in PRUNING_KEYS}
            connectivity.setdefault(f"{pre},{post}", {})[con] = entry
            detected.setdefault(f"{pre}$${post}", {})[con] = {"channel_model_id": int(channel)}
        rules = PruningRules(config, self.config_file, names, detected,
                             has_max_soma_distance=self.max_soma_distance_dend is not None)
        self._rules_cache = (fingerprint, rules)
        return rules

    def _context(self, mode=None):
        """The engine's context for the current rules, seed and neuron data."""
        rules = self._current_rules()
        max_channel = max(int(self.max_channel_type or 0), rules.lut.shape[2] - 1, GAP_JUNCTION_CHANNEL)
        ctx = engine.PruneContext(
            rules=rules, neuron_type=np.asarray(self.type_id_list, dtype=np.int32) - 1,
            population_unit=np.asarray(self.population_unit_id, dtype=np.int64),
            max_soma_distance_dend=self.max_soma_distance_dend, num_neurons=len(self.type_id_list),
            max_channel_type_id=max_channel, voxel_size=float(self.voxel_size),
            seed=check_seed(self.random_seed), mode=mode or self.rng,
            share_parameter_id=self.all_neuron_pair_synapses_share_parameter_id,
            worklog_path=self.work_history_file)
        if ctx.mode == engine.SNUDDA:
            ctx.neuron_seeds = self.get_neuron_random_seeds()
        return ctx

    def get_neuron_random_seeds(self):
        """Per-neuron seeds: ``SeedSequence(random_seed).generate_state(num_neurons)`` (cached)."""
        num_neurons = self.hist_file["network/neurons/neuron_id"].shape[0]
        if self.cache_neuron_seeds is None or self.cache_old_seed != self.random_seed \
                or self.cache_num_neurons != num_neurons:
            self.cache_neuron_seeds = np.random.SeedSequence(check_seed(self.random_seed)) \
                .generate_state(num_neurons)
            self.cache_old_seed, self.cache_num_neurons = self.random_seed, num_neurons
        return self.cache_neuron_seeds

    # -- hyper voxels ------------------------------------------------------------------------------

    def check_hyper_voxel_integrity(self, hypervoxel_file, hypervoxel_file_name, verbose=False):
        """Check a hyper voxel file against the work log; count voxel overflows.

        Parameters
        ----------
        hypervoxel_file : h5py.File
            The open hyper voxel file.
        hypervoxel_file_name : str
            Its name, for messages.
        verbose : bool
            Log the check.

        Notes
        -----
        Compares voxel size, hyper voxel size, simulation origo, config and
        position file, SLURM id and the hyper voxel origo; a mismatch raises
        :class:`gpuprune.InputError` (Snudda asserts).  A positive
        ``meta/voxel_overflow_counter`` is added to ``voxel_overflow_counter``
        and logged as an error.
        """
        name = _text(hypervoxel_file_name)
        if verbose:
            self.write_log(f"Checking that {name} matches circuit settings")
        for key in META_KEYS:
            if f"meta/{key}" not in hypervoxel_file or \
                    not _same(self.hist_file[f"meta/{key}"][()], hypervoxel_file[f"meta/{key}"][()]):
                raise InputError(f"Mismatch of {key} with the work log: the file belongs to another detect "
                                 "run", name)
        hid = hypervoxel_file["meta/hyper_voxel_id"][()]
        xyz = np.argwhere(np.asarray(self.hyper_voxel_id_list) == hid)
        origo = self.simulation_origo + self.hyper_voxel_width * (xyz[0] if xyz.shape[0] == 1 else np.nan)
        if not np.array_equal(origo, hypervoxel_file["meta/hyper_voxel_origo"][()]):
            raise InputError(f"Hyper voxel origo mismatch for hyper voxel {hid}", name)
        key = "meta/voxel_overflow_counter"
        overflow = int(hypervoxel_file[key][()]) if key in hypervoxel_file else 0
        if overflow > 0:
            self.voxel_overflow_counter += overflow
            self.overflow_files.append(name)
            self.write_log(f"Overflow of {overflow} in {name}", is_error=True)

    def open_hyper_voxel(self, hyper_voxel_id, verbose=False, verify=True):
        """Open a hyper voxel file read-only (``voxels/network-putative-synapses-<id>.hdf5``).

        Parameters
        ----------
        hyper_voxel_id : int
        verbose : bool
        verify : bool
            Check it with :meth:`check_hyper_voxel_integrity`.

        Returns
        -------
        h5py.File
        """
        if verbose:
            self.write_log(f"Reading hypervoxel {hyper_voxel_id}")
        name = os.path.join(self.network_path, VOXEL_FILE.format(hyper_voxel_id))
        h_file = open_h5(name)
        if verify:
            try:
                self.check_hyper_voxel_integrity(h_file, name, verbose=verbose)
            except BaseException:
                h_file.close()
                raise
        return h_file

    def get_hyper_voxel_list(self, neuron_range):
        """Ids of the hyper voxels holding any part of a neuron in ``[neuron_range[0], neuron_range[1])``."""
        lo, hi = int(neuron_range[0]), int(neuron_range[1])
        hyper_voxels = json.loads(self.hist_file["hyper_voxels"][()])
        return [int(hid) for hid, data in hyper_voxels.items()
                if any(lo <= int(n) < hi for n in data["neurons"])]

    # -- iterators ---------------------------------------------------------------------------------

    @staticmethod
    def file_row_lookup_iterator(h5mat, chunk_size=10000):
        """Iterate over the rows of a matrix (e.g. a lookup table), reading ``chunk_size`` rows at a time."""
        return sf.lookup_rows(h5mat, chunk_size=chunk_size)

    def file_row_lookup_iterator_subset(self, h5mat_lookup, min_dest_id, max_dest_id, chunk_size=10000):
        """Iterate over the lookup rows whose runs end on dest neurons ``min_dest_id`` .. ``max_dest_id``.

        Parameters
        ----------
        h5mat_lookup : h5py.Dataset or ndarray
            Lookup table ``(unique_id, start_row, end_row)``.
        min_dest_id, max_dest_id : int
            Dest range.  As in Snudda 3.0's code (not its docstring), the upper
            end is exclusive: unique ids in ``[min, max) * num_neurons * max_channel_type``.
        chunk_size : int
            Lookup rows read at a time.

        Notes
        -----
        ``max_channel_type`` comes from the hyper voxel files (read when
        merging), else from the lookup's own file.
        """
        num_neurons = np.int64(self.hist_file["network/neurons/neuron_id"].shape[0])
        mct = self.max_channel_type
        if mct is None and isinstance(h5mat_lookup, h5py.Dataset) \
                and "network/max_channel_type_id" in h5mat_lookup.file:
            mct = int(h5mat_lookup.file["network/max_channel_type_id"][()])
        if mct is None:
            raise InputError("max_channel_type is unknown: merge first or pass a lookup dataset of a hyper "
                             "voxel file")
        lo = np.int64(min_dest_id) * num_neurons * np.int64(mct)
        hi = np.int64(max_dest_id) * num_neurons * np.int64(mct)
        self.write_log(f"min_unique_id: {lo}, max_unique_id: {hi}")
        return sf.lookup_rows(h5mat_lookup, lo, hi, chunk_size)

    @staticmethod
    def synapse_set_iterator(h5mat_lookup, h5mat, chunk_size=10000, lookup_iterator=None):
        """Iterate over the lookup runs of a matrix: yields ``(rows, unique_id)``, one pair per run.

        Parameters
        ----------
        h5mat_lookup : h5py.Dataset or ndarray
            Lookup table (used when ``lookup_iterator`` is None).
        h5mat : h5py.Dataset or ndarray
            The synapse (or gap junction) matrix.
        chunk_size : int
            Matrix rows read at a time.
        lookup_iterator : iterator, optional
            Lookup rows to visit, e.g. from :meth:`file_row_lookup_iterator_subset`.
        """
        runs = lookup_iterator if lookup_iterator else sf.lookup_rows(h5mat_lookup, chunk_size=chunk_size)
        return sf.row_sets(runs, h5mat, chunk_size)

    # -- merge -------------------------------------------------------------------------------------

    def setup_merge_file(self, big_cache=False, outfile_name=None, save_morphologies=False, num_synapses=None,
                         num_gap_junctions=None, delete_after=True):
        """Create a merge file with Snudda's layout.

        Parameters
        ----------
        big_cache : bool
            Use a larger HDF5 chunk cache.
        outfile_name : str, optional
            Default ``NETWORK/network-putative-synapses-MERGED.hdf5``.
        save_morphologies : bool
            Not supported (as in Snudda 3.0); True raises ValueError.
        num_synapses, num_gap_junctions : int, optional
            Rows to allocate (default: all putative rows of the network);
            datasets are trimmed by the flush of :meth:`buffer_merge_write`.
        delete_after : bool
            Add the file to ``temp_file_list`` (removed by :meth:`clean_up_merge_files`).

        Returns
        -------
        (h5py.File, str)
            The open file and its name.
        """
        if save_morphologies:
            raise ValueError("setup_merge_file: save_morphologies is not supported")
        if outfile_name is None:
            outfile_name = os.path.join(self.network_path, "network-putative-synapses-MERGED.hdf5")
        if delete_after:
            self.temp_file_list.append(outfile_name)
        self.write_log(f"Setting up out file {outfile_name}")
        num_syn = self.num_synapses_total if num_synapses is None else num_synapses
        num_gj = self.num_gap_junctions_total if num_gap_junctions is None else num_gap_junctions
        out = sf.create_merge_file(outfile_name, self.hist_file, num_syn, num_gj,
                                   libver=self.h5libver, driver=self.h5driver, big_cache=big_cache,
                                   chunk_rows=self.synapse_chunk_size, compression=self.h5compression)
        self.next_file_write_pos = 0
        return out, outfile_name

    def buffer_merge_write(self, synapse_matrix_loc, synapses=None, flush=False):
        """Buffer rows and write them to ``buffer_out_file`` in large batches.

        Parameters
        ----------
        synapse_matrix_loc : str
            Dataset to write to, e.g. ``"network/synapses"``.
        synapses : ndarray, optional
            Rows to append.
        flush : bool
            Write what is buffered and trim the dataset to the rows written
            (needed after the last call).

        Notes
        -----
        Blocks larger than the buffer are written directly; a flush with
        nothing buffered only trims (Snudda asserts there).
        """
        dataset = self.buffer_out_file[synapse_matrix_loc]

        def spill():
            if self.synapse_write_buffer is not None and self.next_buffer_write_pos:
                self.next_file_write_pos = sf.write_rows(
                    dataset, self.next_file_write_pos, self.synapse_write_buffer[:self.next_buffer_write_pos])
            self.next_buffer_write_pos = 0

        if synapses is not None:
            synapses = np.asarray(synapses)
            if self.synapse_write_buffer is None:
                width = synapses.shape[1]
                self.synapse_write_buffer = np.zeros((self.synapse_buffer_size, width), dtype=np.int32)
                self.next_buffer_write_pos = 0
            if synapses.shape[0] + self.next_buffer_write_pos >= self.synapse_buffer_size:
                spill()
            if synapses.shape[0] >= self.synapse_buffer_size:
                self.next_file_write_pos = sf.write_rows(dataset, self.next_file_write_pos, synapses)
            else:
                end = self.next_buffer_write_pos + synapses.shape[0]
                self.synapse_write_buffer[self.next_buffer_write_pos:end] = synapses
                self.next_buffer_write_pos = end
        if flush:
            self.write_log(f"Flushing {self.buffer_out_file.filename} data: {synapse_matrix_loc}")
            spill()
            sf.trim_rows(dataset, self.next_file_write_pos)
            self.write_log(f"{synapse_matrix_loc} new size {dataset.shape}")
            self.synapse_write_buffer = None

    def big_merge_helper(self, neuron_range, merge_data_type):
        """Gather the rows onto dest neurons ``[neuron_range[0], neuron_range[1])`` into one merge file.

        The rows of every hyper voxel file (and the projection file) are put in
        Snudda's merge order and written, block by block, to
        ``SCRATCH/<merge_data_type>-for-neurons-<lo>-to-<hi>-MERGE-ME.hdf5``
        with Snudda's layout.

        Parameters
        ----------
        neuron_range : sequence of int
            ``(lo, hi)``, hi exclusive.
        merge_data_type : {"synapses", "gap_junctions"}

        Returns
        -------
        (str or None, neuron_range, int)
            The merge file (None when the range has no rows; Snudda then still
            creates an empty file), the range, and the number of rows.
        """
        kind = sf.kind_of(merge_data_type)
        lo, hi = int(neuron_range[0]), int(neuron_range[1])
        self.write_log(f"big_merge_helper ({kind.name}): neuron_range = {neuron_range}")
        self.merge_data_type = kind.name
        net = self.network
        chunks = sf.range_chunks(net, kind.name, lo, hi)
        num = sum(c.num_rows for c in chunks)
        if num == 0:
            self.clean_up_merge_read_buffers()
            return None, neuron_range, 0
        voxel_counters = self._check_merge_sources(chunks) if kind.name == "synapses" else {}
        name = os.path.join(self.scratch_path, sf.MERGE_FILE.format(kind=kind.name, lo=lo, hi=hi))
        total = net.num_rows(kind.name)
        self.buffer_out_file, _ = self.setup_merge_file(
            big_cache=True, outfile_name=name, num_synapses=total if kind.name == "synapses" else 0,
            num_gap_junctions=total if kind.name == "gap_junctions" else 0)
        try:
            if kind.name == "synapses":
                for key, value in voxel_counters.items():
                    if value > 0:
                        self.buffer_out_file["meta"].create_dataset(key, data=value)
            for chunk in chunks:  # one block of dest neurons at a time
                self.buffer_merge_write(kind.matrix, sf.merged_rows(net, kind.name, chunk))
            self.buffer_merge_write(kind.matrix, flush=True)
        finally:
            self.buffer_out_file.close()
            self.buffer_out_file = None
            self.clean_up_merge_read_buffers()
        self.write_log(f"Read {num} out of total {total} {kind.name}", force_print=True)
        return name, neuron_range, num

    def _check_merge_sources(self, chunks):
        """Check the hyper voxel files a merge reads (as Snudda does for synapses); their voxel counters."""
        counters = {"max_axon_voxel_ctr": 0, "max_dend_voxel_ctr": 0}
        sources = self.network.sources["synapses"]
        for i in sf.files_in_chunks(chunks):
            if sources[i].hid < 0:  # the projection file has no hyper voxel meta
                continue
            with self.open_hyper_voxel(sources[i].hid, verbose=self.verbose) as h_file:
                for key in counters:
                    if f"meta/{key}" in h_file:
                        value = h_file[f"meta/{key}"][()]  # keeps the file's integer type, as Snudda does
                        counters[key] = value if value > counters[key] else counters[key]
        return counters

    def gather_neuron_synapses(self):
        """Write the merge files of all neurons: one range in serial, one range per engine in parallel.

        Returns
        -------
        tuple
            ``(merge_files_syn, merge_neuron_range_syn, merge_syn_ctr,
            merge_files_gj, merge_neuron_range_gj, merge_gj_ctr)``, ranges in order.
        """
        if self.role != "master":
            self.write_log("gather_neuron_synapses is only run on master node, aborting")
            return None
        start = time.perf_counter()
        num_neurons = self.hist_file["network/neurons/neuron_id"].shape[0]
        executor = self._executor()
        if executor is None:
            whole = np.array([0, num_neurons], dtype=np.int64)
            results = {k: [self.big_merge_helper(whole, k)] for k in ("synapses", "gap_junctions")}
        else:
            self.setup_parallel(d_view=self.d_view)
            borders = np.linspace(0, num_neurons, len(self.d_view) + 1).astype(int)
            ranges = [np.array(r, dtype=np.int64) for r in zip(borders[:-1], borders[1:], strict=True)]
            spec = worker_spec(self)
            futures = {k: [executor.submit(worker_call, spec, "big_merge_helper", (r, k)) for r in ranges]
                       for k in ("synapses", "gap_junctions")}
            results = {k: [f.result() for f in v] for k, v in futures.items()}
        out = []
        for k in ("synapses", "gap_junctions"):
            res = sorted(results[k], key=lambda x: int(x[1][0]))
            out += [[x[0] for x in res], [x[1] for x in res], [int(x[2]) for x in res]]
        self.write_log(f"gather_neuron_synapses took {time.perf_counter() - start:.1f} s")
        return tuple(out)

    def clean_up_merge_read_buffers(self):
        """Close the input files held open for merging and drop the read buffers."""
        self.merge_data_type = None
        for f in self.file_list.values() if isinstance(self.file_list, dict) else self.file_list or []:
            if f is not None:
                f.close()
        self.file_list, self.file_buffers = [], None
        self.next_file_read_pos = self.next_buffer_read_pos = None
        close_files()

    def clean_up_merge_files(self):
        """Remove the files listed in ``temp_file_list`` (and ask the engines to do the same)."""
        if self.role == "master" and self.d_view is not None:
            self.d_view.apply_sync(clean_up_workers)
        if not self.temp_file_list:
            self.temp_file_list = []
            return
        self.write_log("Cleaning up old merge files")
        for name in self.temp_file_list:
            try:
                _discard(name)
            except OSError as exc:
                self.write_log(f"Removing {name} failed: {exc}")
        self.temp_file_list = []

    # -- merge info --------------------------------------------------------------------------------

    def save_merge_info(self, merge_files_syn, merge_neuron_range_syn, merge_syn_ctr, merge_files_gj,
                        merge_neuron_range_gj, merge_gj_ctr):
        """Write ``pruning_merge_info.json`` so that pruning can be repeated without merging again."""
        sf.write_merge_info(self.merge_info_file, (merge_files_syn, merge_neuron_range_syn, merge_syn_ctr,
                                                   merge_files_gj, merge_neuron_range_gj, merge_gj_ctr))

    def get_merge_info_helper(self):
        """Read ``pruning_merge_info.json`` without checks (use :meth:`get_merge_info`).

        Returns
        -------
        tuple
            ``(merge_files_syn, merge_neuron_range_syn, merge_syn_ctr,
            merge_files_gj, merge_neuron_range_gj, merge_gj_ctr)``.
        """
        return sf.read_merge_info(self.merge_info_file)

    def get_merge_info(self):
        """Read ``pruning_merge_info.json`` if it can still be used, else return None.

        It can be used if it is readable, every merge file it names exists, is
        not newer than it and holds the recorded number of rows onto the
        recorded neuron range, and (an extra check) the work log is not newer
        than it.

        Returns
        -------
        tuple or None
            As :meth:`get_merge_info_helper`.
        """
        if not os.path.exists(self.merge_info_file):
            self.write_log(f"No file {self.merge_info_file}")
            return None
        try:
            info = self.get_merge_info_helper()
            problem = sf.merge_info_problem(self.merge_info_file, info, newer_than=(self.work_history_file,))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.write_log(f"Problem reading merge info from {self.merge_info_file}: {exc}")
            return None
        if problem is not None:
            self.write_log(f"Bad merge info: {problem}")
            return None
        self.write_log(f"Found merge info in {self.merge_info_file}")
        return info

    # -- output ------------------------------------------------------------------------------------

    def setup_output_file(self, output_file=None, save_morphologies=False):
        """Create the output file (default ``NETWORK/network-synapses.hdf5``) with Snudda's layout.

        Parameters
        ----------
        output_file : str or h5py.File, optional
            A name, or an open file to fill.  A file that already has
            ``config`` is used as it is (Snudda 3.0 then forgets to set ``out_file``).
        save_morphologies : bool
            Not supported (as in Snudda 3.0); True raises ValueError.

        Notes
        -----
        Does nothing if ``out_file`` is already set.
        """
        if save_morphologies:
            raise ValueError("setup_output_file: save_morphologies is not supported")
        if self.out_file is not None:
            self.write_log(f"Output file already set: {self.out_file.filename}")
            return
        if output_file is None:
            output_file = os.path.join(self.network_path, OUTPUT_FILE)
        if isinstance(output_file, h5py.File):
            self.write_log(f"Writing to {output_file.filename}")
            if "config" in output_file:
                self.write_log(f"Output file already has config, assuming all data present: "
                               f"{output_file.filename}")
            else:
                sf.fill_output_file(output_file, self.hist_file, self.config, self.synapse_chunk_size,
                                    self.h5compression)
            self.out_file = output_file
            return
        self.write_log(f"Writing to {output_file}")
        out = h5py.File(output_file, "w", libver=self.h5libver, driver=self.h5driver)
        try:
            sf.fill_output_file(out, self.hist_file, self.config, self.synapse_chunk_size, self.h5compression)
        except BaseException:
            out.close()
            raise
        self.out_file = out

    def combine_files(self, source_filenames, merge_data_type, output_filename=None):
        """Concatenate the rows of pruned part files into the output file (from its first row).

        Parameters
        ----------
        source_filenames : list of str
            Part files, in order; missing ones are skipped.
        merge_data_type : {"synapses", "gap_junctions"}
        output_filename : str, optional
            Output file, if none is open yet.

        Returns
        -------
        int
            Rows in the output.
        """
        start = time.perf_counter()
        kind = sf.kind_of(merge_data_type)
        if not self.out_file:
            self.setup_output_file(output_file=output_filename)
        present = [f for f in source_filenames if f is not None and os.path.isfile(f)]
        total = sf.copy_rows(present, self.out_file, kind)
        self.write_log(f"combine_files ({kind.name}): {time.perf_counter() - start:.1f}s")
        return total

    # -- pruning -----------------------------------------------------------------------------------

    def find_ranges(self, synapses, num_workers, start_pos=0, num_syn=None):
        """Split rows into ``num_workers`` ranges that keep each dest neuron's rows together.

        Parameters
        ----------
        synapses : h5py.Dataset or ndarray
            Synapse matrix (only column 1 near the block starts is read).
        num_workers : int
        start_pos : int
        num_syn : int, optional
            Rows from ``start_pos`` (default: to the end).

        Returns
        -------
        list of tuple
            ``(start, end)`` per worker, padded with None entries.

        Notes
        -----
        Unlike Snudda 3.0, the last range always ends at ``start_pos + num_syn``:
        Snudda's floor division can leave the last few rows out of every range.
        """
        ranges = sf.block_ranges(synapses, num_workers, start_pos, num_syn)
        self.write_log(f"synapse_range={ranges}")
        return ranges

    def prune_synapses_helper(self, synapses, output_file, merge_data_type):
        """Prune a block of merged rows held in memory and append the kept rows to ``output_file``.

        Parameters
        ----------
        synapses : ndarray
            Rows in merge order; all rows onto a dest neuron must be in the block.
        output_file : h5py.File or h5py.Group
            File with Snudda's output layout (``network/synapses``, ``network/num_synapses``, ...).
        merge_data_type : {"synapses", "gap_junctions"}

        Returns
        -------
        int
            Rows kept.

        Notes
        -----
        Vectorised on the engine.  Snudda randomness: groups are runs of equal
        (src, dest, channel type) in row order, and each dest neuron's stream
        restarts where the dest changes, as in Snudda.  Philox: a group is all
        rows of a (src, dest, channel type) in the block, numbered in row order.
        ``synapses`` is not modified (Snudda writes the shared parameter ids into it).
        """
        kind = sf.kind_of(merge_data_type)
        kept = sf.prune_block(self._context(), kind, np.asarray(synapses))
        sf.append_rows(output_file, kind, kept)
        if kept.shape[0] == 0:
            self.write_log("No synapses kept, resizing")
        return int(kept.shape[0])

    def prune_synapses(self, synapse_file, output_filename, merge_data_type, row_range=None,
                       close_input_file=True, close_out_file=True):
        """Prune (a row range of) a merge file into the output file.

        Parameters
        ----------
        synapse_file : str or h5py.File or None
            Merge file; None means nothing to prune.
        output_filename : str or h5py.File or None
            Output (see :meth:`setup_output_file`); ignored if ``out_file`` is set.
        merge_data_type : {"synapses", "gap_junctions"}
        row_range : (int, int), optional
            Rows to prune; default all.
        close_input_file, close_out_file : bool
            Close the input file (if a name was given) / the output file afterwards.

        Returns
        -------
        (int, int)
            Rows before and after pruning.

        Notes
        -----
        Rows are pruned in blocks of at most 1,000,000 rows that never split a
        dest neuron (:meth:`find_ranges`).  Errors are raised (Snudda logs them
        and exits the process).
        """
        kind = sf.kind_of(merge_data_type)
        if synapse_file is None:
            self.write_log(f"prune_synapses: No synapse_file specified for {kind.name} -- none detected?")
            return 0, 0
        opened = not isinstance(synapse_file, (h5py.File, h5py.Group))
        if opened:
            self.write_log(f"Opening synapse file: {synapse_file}")
            synapse_file = open_h5(synapse_file)
        try:
            matrix = synapse_file[kind.matrix]
            row_start, row_end = (0, matrix.shape[0]) if row_range is None else (row_range[0], row_range[-1])
            if row_start is None or row_end is None or row_start == row_end or matrix.shape[0] == 0:
                self.write_log(f"prune_synapses: nothing to do for {kind.name}")
                return 0, 0
            num = row_end - row_start
            num_blocks = max(1, -(-num // sf.PRUNE_BLOCK_ROWS))
            blocks = self.find_ranges(matrix, num_blocks, row_start, num)
            self.setup_output_file(output_filename)
            kept = 0
            for a, b in blocks:
                if a is None or b is None or a == b:
                    continue
                self.write_log(f"Pruning range: {(a, b)}")
                kept += self.prune_synapses_helper(matrix[a:b], self.out_file, kind.name)
        except BaseException as exc:
            self.write_log(f"prune_synapses failed: {type(exc).__name__}: {exc}", is_error=True)
            raise
        finally:
            if opened and close_input_file:
                synapse_file.close()
        if close_out_file and self.out_file is not None:
            self.out_file.close()
            self.out_file = None
        return num, kept

    def prune_synapses_parallel(self, synapse_file, synapse_ctr, merge_data_type="synapses",
                                close_input_file=True):
        """Prune merge files: on the engines when there are any, else one after another.

        Parameters
        ----------
        synapse_file : list of str or str
            Merge files (None entries: no rows).
        synapse_ctr : list of int or int
            Rows expected in each.
        merge_data_type : {"synapses", "gap_junctions"}
        close_input_file : bool

        Notes
        -----
        In parallel each engine prunes whole files into
        ``SCRATCH/worker-temp-<kind>-file-<i>``, then :meth:`combine_files`
        joins them in order; any number of files works with any number of
        engines (Snudda requires one file per engine).  A row count that
        differs from ``synapse_ctr`` raises RuntimeError.
        """
        kind = sf.kind_of(merge_data_type)
        counts = np.atleast_1d(np.asarray(synapse_ctr, dtype=np.int64))
        if not isinstance(synapse_file, (list, tuple)):
            before, _ = self.prune_synapses(synapse_file, None, kind.name, close_out_file=False,
                                            close_input_file=close_input_file)
            self._check_count(before, counts.sum(), kind)
            return
        executor = self._executor()
        start = time.perf_counter()
        if executor is not None:
            self.setup_parallel(d_view=self.d_view)
            parts = [os.path.join(self.scratch_path, f"worker-temp-{kind.name}-file-{x}")
                     for x in range(len(synapse_file))]
            spec = worker_spec(self)
            jobs = []
            for name, part in zip(synapse_file, parts, strict=True):
                _discard(part)
                if name is not None:
                    args = (name, part, kind.name)
                    jobs.append((part, executor.submit(worker_call, spec, "prune_synapses", args)))
            results = [(part, fut.result()) for part, fut in jobs]
            self._check_count(sum(r[0] for _, r in results), counts.sum(), kind)
            self.temp_file_list += parts
            after = self.combine_files([part for part, _ in results], kind.name)
            if after != sum(r[1] for _, r in results):
                raise RuntimeError(f"combine_files gathered {after} {kind.name}, the engines kept "
                                   f"{sum(r[1] for _, r in results)}")
            before = counts.sum()
        else:
            self.setup_output_file()
            before = 0
            for name in synapse_file:
                before += self.prune_synapses(name, None, kind.name, close_input_file=close_input_file,
                                              close_out_file=False)[0]
            self._check_count(before, counts.sum(), kind)
            for k in (sf.kind_of("synapses"), sf.kind_of("gap_junctions")):
                sf.trim_rows(self.out_file[k.matrix], self.out_file[sf.COUNT[k.name]][()])
            after = int(self.out_file[sf.COUNT[kind.name]][()])
        self.write_log(f"prune_synapses_parallel ({after}/{before} {kind.name}, "
                       f"{100 * after / max(1, before):.1f}% kept): {time.perf_counter() - start:.1f}s",
                       force_print=True)

    @staticmethod
    def _check_count(found, expected, kind):
        if int(found) != int(expected):
            raise RuntimeError(f"prune_synapses_parallel: found {int(found)} {kind.name} in the merge files, "
                               f"expected {int(expected)}; delete pruning_merge_info.json and prune again")

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
        temp = None
        if self.out_file is None:
            temp = _temp_output(self.network_path)
            self.setup_output_file(temp)
        try:
            info = self.get_merge_info()
            if info is None:
                info = self.gather_neuron_synapses()
                self.save_merge_info(*info)
            files_syn, _, ctr_syn, files_gj, _, ctr_gj = info
            self.prune_synapses_parallel(files_syn, ctr_syn, "synapses", close_input_file=False)
            self.prune_synapses_parallel(files_gj, ctr_gj, "gap_junctions", close_input_file=True)
            if temp is not None:
                self.out_file.close()
                self.out_file = None
                os.replace(temp, os.path.join(self.network_path, OUTPUT_FILE))
                temp = None
        finally:
            if temp is not None:
                if self.out_file is not None:
                    self.out_file.close()
                    self.out_file = None
                _discard(temp)

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

    # -- parallel ----------------------------------------------------------------------------------

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
