"""SnuddaPrune's reading of the network: work log, config, type numbering, rules and seeds.

The work log is read and checked by io (:func:`gpuprune.io.worklog.read_worklog`, the checks a
:class:`gpuprune.io.network.Network` makes), the config by rules
(:class:`gpuprune.rules.PruningRules`); this module keeps Snudda's attributes and its editable
``connectivity_distributions``, from which the engine's rules are rebuilt when they change.
"""

import json
import os

import numpy as np

from gpuprune import engine
from gpuprune.compat.snudda.log import once
from gpuprune.errors import ConfigError
from gpuprune.format import SCRATCH_DIR
from gpuprune.io.hdf5 import _read, _to_str, open_h5
from gpuprune.io.network import Network, find_config
from gpuprune.io.worklog import read_worklog
from gpuprune.rng.philox import DEFAULT_SEED, check_seed
from gpuprune.rules.config import config_seed, load_config
from gpuprune.rules.params import GAP_JUNCTION_CHANNEL, PRUNING_KEYS, PruningRules


def _key_splitter(config_file):
    """The config's connection-key split (``"Pre,Post"``, ``"Pre,['A','B']"`` -> [(pre, post), ...]).

    It is rules' (:meth:`PruningRules._split_key`), whose errors name ``config_file``; an empty
    rule set carries the file name.
    """
    return PruningRules({"regions": {}}, config_file, [], {})._split_key


class Settings:
    """SnuddaPrune's work log and config methods (a mixin)."""

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
        voxel (Snudda 3.0 means to, but its check never fires), or the work log
        is malformed (io's checks).  Sets the random seed from the config's
        ``random_seed.prune`` unless one was given, else 1003.
        """
        path = os.path.abspath(work_history_file or self.work_history_file)
        self.write_log(f"Opening work history file: {path}")
        if self.hist_file is not None:
            self.hist_file.close()
            self.hist_file = None
        self._worklog = worklog = read_worklog(path)
        self.hist_file = hist = open_h5(path)
        self.work_history_file = path
        self.slurm_id = hist["meta/slurm_id"][()]
        self.hyper_voxel_id_list = hist["meta/hyper_voxel_ids"][()]
        self.all_hyper_id_list = hist["all_hyper_ids"][()]
        self.voxel_size = hist["meta/voxel_size"][()]
        self.hyper_voxel_size = hist["meta/hyper_voxel_size"][()]
        self.simulation_origo = hist["meta/simulation_origo"][()]
        self.position_file = hist["meta/position_file"][()]
        self.detect_config = json.loads(_read(hist, "meta/config", path))
        self.max_soma_distance_dend = worklog.max_soma_distance_dend
        self.snudda_data = _to_str(hist["meta/snudda_data"][()]) if "meta/snudda_data" in hist else None
        self.hyper_voxel_width = self.voxel_size * self.hyper_voxel_size
        ids = np.asarray(self.hyper_voxel_id_list)
        self.hyper_voxel_offset = np.zeros((ids.size, 3), dtype=int)
        xyz = np.indices(ids.shape).reshape(3, -1).T
        self.hyper_voxel_offset[ids.reshape(-1)] = xyz * self.hyper_voxel_size
        self.num_projection_synapses = worklog.num_projection_synapses
        self.num_synapses_total = int(worklog.worklog_counts["synapses"].sum()) + self.num_projection_synapses
        self.num_gap_junctions_total = int(worklog.worklog_counts["gap_junctions"].sum())
        self.config_file = find_config(self.network_path, config_file, worklog.recorded_config_file)
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
        detected = self._worklog.connectivity_distributions
        types = set(self._worklog.type_names)
        split = _key_splitter(config_file)
        missing = []
        for region in (config.get("regions") or {}).values():
            for con_name, con_data in ((region or {}).get("connectivity") or {}).items():
                for pre, post in split(con_name):
                    if pre in types and post in types:
                        have = detected.get(f"{pre}$${post}", {})
                        missing += [f"{pre},{post} {c}" for c in (con_data or {}) if c not in have]
        if missing:
            self.write_log(f"!!! Connection(s) {missing} is present in {config_file}, but was not included "
                           "in config file used for detect. Please rerun snudda detect", is_error=True)
            raise ConfigError(f"connection(s) {', '.join(missing)} were not part of detect; rerun detect "
                              "with this config", config_file)

    def make_type_numbering(self):
        """Number the neuron types (the name up to the first ``_``) from 1 in order of first appearance.

        Sets ``type_id_lookup`` (type name -> id) and ``type_id_list`` (id of each neuron).
        """
        self.type_id_lookup = {t: i + 1 for i, t in enumerate(self._worklog.type_names)}
        self.type_id_list = (self._worklog.neuron_type.astype(np.int64) + 1).tolist()

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
        detected = self._worklog.connectivity_distributions
        names = list(self.type_id_lookup)
        with once(self._seen_warnings):  # rules validates the config; the loop below only collects blocks
            rules = PruningRules(config, config_file, names, detected,
                                 has_max_soma_distance=self.max_soma_distance_dend is not None)
        dists, con_names = {}, {}
        for region in config["regions"].values():
            for con_name, con_data in (region.get("connectivity") or {}).items():
                for pre, post in rules._split_key(con_name):
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
        num_neurons = self._worklog.num_neurons
        if self.cache_neuron_seeds is None or self.cache_old_seed != self.random_seed \
                or self.cache_num_neurons != num_neurons:
            self.cache_neuron_seeds = np.random.SeedSequence(check_seed(self.random_seed)) \
                .generate_state(num_neurons)
            self.cache_old_seed, self.cache_num_neurons = self.random_seed, num_neurons
        return self.cache_neuron_seeds
