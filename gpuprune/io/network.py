"""Read and validate a Snudda network directory, and plan the work from its lookup tables.

A network directory (DESIGN §1) holds the detect work log, one HDF5 file per
hyper voxel and, optionally, a file of projection synapses.  Every file's rows
are sorted by dest neuron, so the rows onto a range of dest neurons are one
contiguous slice of each file; the lookup tables give each slice's bounds
without reading a synapse row.  :meth:`Network.plan` cuts the dest neurons
into ranges whose rows fit a row budget.
"""

import copy
import json
import logging
import os
from dataclasses import dataclass

import numpy as np

from gpuprune import plan
from gpuprune.errors import ConfigError, InputError
from gpuprune.format import CONFIG_FILE, KINDS, PROJECTION_FILE, PROJECTION_HID, VOXEL_FILE, WORKLOG
from gpuprune.io.hdf5 import _cat, _read, open_h5
from gpuprune.io.worklog import check_voxel_meta, read_worklog
from gpuprune.rng.philox import DEFAULT_SEED, check_seed
from gpuprune.rules.config import check_depth, config_seed, load_config
from gpuprune.rules.params import PruningRules

log = logging.getLogger("gpuprune")



@dataclass
class SourceFile:
    """One input file of one kind, with its sparse per-dest index.

    ``dests`` are the dest neurons that have rows in the file (ascending);
    ``row_start[i]`` is the first row of ``dests[i]`` and ``lut_start[i]`` its
    first lookup row; both have one more entry, the totals.
    """

    path: str
    hid: int
    num_rows: int
    dests: np.ndarray
    row_start: np.ndarray
    lut_start: np.ndarray


def find_config(network_path, config_file=None, recorded=None):
    """The pruning config to use: ``config_file``, else ``NETWORK/network-config.json``, else
    the path detect recorded (networks get moved, so the recorded path is only a fallback)."""
    if config_file is not None:
        path = os.path.abspath(os.fspath(config_file))
        if not os.path.isfile(path):
            raise InputError("config file not found", path)
        return path
    local = os.path.join(network_path, CONFIG_FILE)
    if os.path.isfile(local):
        return local
    if recorded and os.path.isfile(recorded):
        log.warning("%s not found; using the config detect recorded: %s", local, recorded)
        return os.path.abspath(recorded)
    raise InputError(f"no config file: neither {local} nor the recorded {recorded!r} exists; "
                     "pass one explicitly", network_path)


class Network:
    """A validated Snudda network directory.

    Parameters
    ----------
    path : str
        The network directory.
    config_file : str, optional
        The pruning config; default ``NETWORK/network-config.json``, falling back
        to the path detect recorded in the work log.
    random_seed : int, optional
        Master prune seed; default the config's ``random_seed.prune``, else 1003.

    Notes
    -----
    Construction reads the work log, the config, each file's meta and lookup
    tables, and checks them (DESIGN §6); it reads no synapse rows.  Input files
    are only ever opened read-only.
    """

    def __init__(self, path, config_file=None, random_seed=None):
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.isdir(self.path):
            raise InputError("network directory not found", self.path)
        self.worklog_path = os.path.join(self.path, WORKLOG)
        # the work log's fields (meta, neurons, types, completed hyper voxels ...) are the network's
        vars(self).update(vars(read_worklog(self.worklog_path)))
        self.config_path = self._find_config(config_file)
        self.config = load_config(self.config_path)
        seed = random_seed
        if seed is None:
            seed = config_seed(self.config, self.config_path)
        self.random_seed = check_seed(DEFAULT_SEED if seed is None else seed)
        self.rules = self._rules(self.config, self.config_path)
        self.max_channel_type_id = None
        self.sources = self._index_sources()

    def _rules(self, config, config_path):
        return PruningRules(config, config_path, self.type_names, self.connectivity_distributions,
                            has_max_soma_distance=self.max_soma_distance_dend is not None)

    def set_config(self, config):
        """Prune with ``config`` from now on: a dict (e.g. the current :attr:`config`, edited) or a path.

        Only the pruning rules are rebuilt; the hyper voxel files are not read again, so a
        notebook can try parameters quickly.  The seed stays the one the network was opened
        with.  A bad config raises :class:`ConfigError` and leaves the current one in place.
        """
        if isinstance(config, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(config))
            config = load_config(path)
        elif isinstance(config, dict):
            path = "<config set in Python>"
            check_depth(config, path)  # before deepcopy, which would recurse as deep (or forever, for a cycle)
            config = copy.deepcopy(config)
            try:
                json.dumps(config)  # it is stored in the output file as JSON
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"config cannot be stored as JSON: {exc}", path) from None
        else:
            raise ConfigError(f"config must be a dict or a file path, not {type(config).__name__}",
                              "<config set in Python>")
        self.rules = self._rules(config, path)
        self.config, self.config_path = config, path

    def _find_config(self, config_file):
        return find_config(self.path, config_file, self.recorded_config_file)

    # -- files ---------------------------------------------------------------------------------

    def voxel_file(self, hid):
        return os.path.join(self.path, VOXEL_FILE.format(hid))

    @property
    def projection_file(self):
        return os.path.join(self.path, PROJECTION_FILE)

    def _check_max_channel(self, f, path):
        value = int(_read(f, "network/max_channel_type_id", path))
        if value <= 0 or value >= 2 ** 16:
            raise InputError(f"network/max_channel_type_id = {value} is out of range", path)
        if self.max_channel_type_id is None:
            self.max_channel_type_id = value
        elif value != self.max_channel_type_id:
            raise InputError(f"network/max_channel_type_id = {value} differs from "
                             f"{self.max_channel_type_id} in the other files", path)

    def _index_sources(self):
        """Open, check and index every file that takes part (each once), in DESIGN §4 order per kind."""
        counts = {}  # hid -> {kind name: rows}
        if self.num_projection_synapses > 0:
            counts[PROJECTION_HID] = {"synapses": self.num_projection_synapses}
        for i in np.argsort(self.completed, kind="stable"):
            per_kind = {k: int(self.worklog_counts[k][i]) for k in KINDS if self.worklog_counts[k][i] > 0}
            if per_kind:
                counts[int(self.completed[i])] = per_kind
        sources = {k: [] for k in KINDS}
        for hid, per_kind in counts.items():  # projection first, then ascending hyper voxel id
            path = self.projection_file if hid == PROJECTION_HID else self.voxel_file(hid)
            with open_h5(path) as f:
                if hid == PROJECTION_HID:
                    stated = int(_read(f, "network/num_synapses", path))
                    if stated != per_kind["synapses"]:
                        raise InputError(f"network/num_synapses = {stated} but the work log's "
                                         f"num_projection_synapses = {per_kind['synapses']}", path)
                else:
                    check_voxel_meta(self, f, path, hid)
                self._check_max_channel(f, path)
                for name, count in per_kind.items():
                    sources[name].append(self._index_file(f, KINDS[name], hid, path, count))
        return sources

    def _index_file(self, f, kind, hid, path, count):
        if kind.matrix not in f or kind.lookup not in f:
            raise InputError(f"missing '{kind.matrix}' or '{kind.lookup}'", path)
        mat, lut = f[kind.matrix], f[kind.lookup]
        if mat.ndim != 2 or mat.shape[1] != kind.width or mat.dtype != np.int32:
            raise InputError(f"'{kind.matrix}' must be int32 (n, {kind.width}), "
                             f"found {mat.dtype} {mat.shape}", path)
        if mat.shape[0] != count:
            source = "num_projection_synapses" if hid == PROJECTION_HID else kind.worklog_counts
            raise InputError(f"'{kind.matrix}' has {mat.shape[0]} rows but the work log's "
                             f"{source} says {count}", path)
        if lut.ndim != 2 or lut.shape[1] != 3:
            raise InputError(f"'{kind.lookup}' must be (k, 3), found {lut.shape}", path)
        dests, row_start, lut_start = self._index_lookup(lut, count, path, kind)
        return SourceFile(path=path, hid=hid, num_rows=count, dests=dests, row_start=row_start,
                          lut_start=lut_start)

    def _index_lookup(self, lut, num_rows, path, kind, block=1 << 20):
        """Check a lookup table and reduce it to per-dest row and lookup offsets (streamed)."""
        n = lut.shape[0]
        per_dest = np.int64(self.num_neurons) * np.int64(self.max_channel_type_id)
        dests, row_starts, lut_starts = [], [], []
        prev_uid, prev_end, prev_dest = -1, 0, -1
        for s in range(0, n, block):
            try:
                t = np.asarray(lut[s:s + block], dtype=np.int64)
            except OSError as exc:
                raise InputError(f"cannot read '{kind.lookup}' (truncated?): {exc}", path) from None
            uid, start, end = t[:, 0], t[:, 1], t[:, 2]
            uid_prev = np.concatenate(([prev_uid], uid[:-1]))
            end_prev = np.concatenate(([prev_end], end[:-1]))
            if np.any(uid <= uid_prev):
                raise InputError(f"'{kind.lookup}' unique ids are not strictly increasing "
                                 f"(near lookup row {s + int(np.argmax(uid <= uid_prev))})", path)
            if np.any(start != end_prev) or np.any(end <= start):
                bad = s + int(np.argmax((start != end_prev) | (end <= start)))
                raise InputError(f"'{kind.lookup}' row {bad} does not continue the previous run "
                                 "(lookup runs must cover the rows contiguously)", path)
            dest = uid // per_dest
            if uid[0] < 0 or dest[-1] >= self.num_neurons:
                raise InputError(f"'{kind.lookup}' refers to a dest neuron outside 0 .. "
                                 f"{self.num_neurons - 1}", path)
            new = np.flatnonzero(dest != np.concatenate(([prev_dest], dest[:-1])))
            dests.append(dest[new])
            row_starts.append(start[new])
            lut_starts.append(new + s)
            prev_uid, prev_end, prev_dest = int(uid[-1]), int(end[-1]), int(dest[-1])
        if prev_end != num_rows:
            raise InputError(f"'{kind.lookup}' covers {prev_end} rows but the file has {num_rows}", path)
        return (_cat(dests), np.append(_cat(row_starts), num_rows).astype(np.int64),
                np.append(_cat(lut_starts), n).astype(np.int64))

    # -- planning ------------------------------------------------------------------------------

    def rows_per_dest(self, kind):
        """Putative rows onto each dest neuron (int64, length num_neurons)."""
        counts = np.zeros(self.num_neurons, dtype=np.int64)
        for sf in self.sources[kind]:
            counts[sf.dests] += np.diff(sf.row_start)
        return counts

    def num_rows(self, kind):
        return sum(sf.num_rows for sf in self.sources[kind])

    def plan(self, kind, row_budget, file_order=None):
        """Cut the dest neurons into ranges of at most ``row_budget`` rows.

        A dest neuron whose rows alone exceed the budget gets a range of its own.
        Ranges without rows are left out.  ``file_order`` (hyper voxel ids,
        -1 for the projection file; unlisted files follow) changes only the
        order in which a chunk lists, and so reads, its slices.
        """
        sources = self.sources[kind]
        order = range(len(sources))
        if file_order is not None:
            rank = {int(h): i for i, h in enumerate(file_order)}
            order = sorted(order, key=lambda i: rank.get(sources[i].hid, len(rank)))
        return plan.ranges(sources, self.rows_per_dest(kind), 0, row_budget, order=order)

    def spec(self):
        """A small picklable description that worker processes use to read chunks."""
        return {
            "path": self.path,
            "files": {k: [(sf.path, sf.hid) for sf in v] for k, v in self.sources.items()},
        }
