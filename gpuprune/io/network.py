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

import h5py
import numpy as np

from gpuprune import plan
from gpuprune.errors import ConfigError, InputError
from gpuprune.format import (
    CONFIG_FILE,
    KINDS,
    META_KEYS,
    PROJECTION_FILE,
    PROJECTION_HID,
    VOXEL_FILE,
    WORKLOG,
)
from gpuprune.rng.philox import DEFAULT_SEED, check_seed
from gpuprune.rules.params import PruningRules, config_seed, load_config

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


def _read(group, key, path, what="dataset"):
    """Read a whole (small) dataset; a missing or unreadable one is an :class:`InputError` naming ``path``.

    Uses h5py's low-level calls: the many small meta reads cost half as much.
    """
    try:
        dsid = h5py.h5d.open(group.id, key.encode())
    except (KeyError, ValueError):
        raise InputError(f"missing {what} '{key}'", path) from None
    try:
        out = np.empty(dsid.shape, dtype=dsid.dtype)
        dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    except OSError as exc:
        raise InputError(f"cannot read '{key}' (truncated or corrupt file?): {exc}", path) from None
    return out[()] if out.ndim == 0 else out


def _to_str(value):
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode()
    return str(value)


def _cat(parts):
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def open_h5(path, **options):
    """Open an HDF5 file read-only; a missing or unreadable file is an :class:`InputError`."""
    if not os.path.exists(path):
        raise InputError("file not found", path)
    try:
        return h5py.File(path, "r", **options)
    except OSError as exc:
        raise InputError(f"cannot open HDF5 file (truncated or corrupt?): {exc}", path) from None


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
        with open_h5(self.worklog_path) as wl:
            self._read_worklog(wl)
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

    # -- work log ------------------------------------------------------------------------------

    def _read_worklog(self, wl):
        p = self.worklog_path
        self.meta = {k: _read(wl, f"meta/{k}", p) for k in META_KEYS}
        self.hyper_voxel_ids = np.asarray(_read(wl, "meta/hyper_voxel_ids", p))
        self.voxel_size = float(self.meta["voxel_size"])
        self.simulation_origo = np.asarray(self.meta["simulation_origo"], dtype=np.float64)
        self.hyper_voxel_width = self.voxel_size * float(self.meta["hyper_voxel_size"])
        try:
            self.connectivity_distributions = json.loads(_read(wl, "meta/connectivity_distributions", p))
        except (TypeError, ValueError) as exc:
            raise InputError(f"meta/connectivity_distributions is not valid JSON: {exc}", p) from None
        self.recorded_config_file = _to_str(self.meta["config_file"])

        all_ids = np.asarray(_read(wl, "all_hyper_ids", p)).astype(np.int64)
        num_completed = np.asarray(_read(wl, "num_completed", p)).reshape(-1)
        if num_completed.size != 1:
            raise InputError("num_completed must hold one number", p)
        n_done = int(num_completed[0])
        completed = np.asarray(_read(wl, "completed", p)).astype(np.int64)
        if not 0 <= n_done <= completed.size:
            raise InputError(f"num_completed = {n_done} but 'completed' has {completed.size} entries", p)
        completed = completed[:n_done]
        missing = np.setdiff1d(all_ids, completed)
        if missing.size:
            shown = ", ".join(str(x) for x in missing[:10]) + (" ..." if missing.size > 10 else "")
            raise InputError(f"detect did not finish: {missing.size} of {all_ids.size} hyper voxels "
                             f"not completed (ids {shown}); rerun snudda detect", p)
        self.completed = completed
        self.worklog_counts = {}
        for kind in KINDS.values():
            counts = np.asarray(_read(wl, kind.worklog_counts, p)).astype(np.int64)
            if counts.size < n_done:
                raise InputError(f"{kind.worklog_counts} has {counts.size} entries, fewer than the "
                                 f"{n_done} completed hyper voxels", p)
            self.worklog_counts[kind.name] = counts[:n_done]
        self.num_projection_synapses = int(wl["num_projection_synapses"][()]) \
            if "num_projection_synapses" in wl else 0

        neurons = "network/neurons"
        if neurons not in wl:
            raise InputError("missing group 'network/neurons'", p)
        neuron_id = np.asarray(_read(wl, f"{neurons}/neuron_id", p))
        self.num_neurons = int(neuron_id.size)
        if not np.array_equal(neuron_id, np.arange(self.num_neurons)):
            raise InputError("network/neurons/neuron_id must be 0 .. N-1 in order", p)
        if self.num_neurons >= 2 ** 32:
            raise InputError("neuron ids must be below 2**32", p)
        names = [_to_str(x) for x in _read(wl, f"{neurons}/name", p)]
        if len(names) != self.num_neurons:
            raise InputError("network/neurons/name and neuron_id differ in length", p)
        type_of = [n.split("_")[0] for n in names]
        # Type numbering by first appearance, as Snudda's make_type_numbering.
        self.type_names = list(dict.fromkeys(type_of))
        index = {t: i for i, t in enumerate(self.type_names)}
        self.neuron_names = names
        self.neuron_type = np.array([index[t] for t in type_of], dtype=np.int32)
        self.population_unit = np.asarray(_read(wl, f"{neurons}/population_unit_id", p)).astype(np.int64)
        if self.population_unit.size != self.num_neurons:
            raise InputError("network/neurons/population_unit_id has the wrong length", p)
        if f"{neurons}/max_soma_distance_dend" in wl:
            msd = np.asarray(wl[f"{neurons}/max_soma_distance_dend"][()])
            if msd.size != self.num_neurons:
                raise InputError("network/neurons/max_soma_distance_dend has the wrong length", p)
            # Snudda divides a float64 distance by the stored (float32) value: widen it as is.
            self.max_soma_distance_dend = msd.astype(np.float64)
        else:
            self.max_soma_distance_dend = None

    def _find_config(self, config_file):
        return find_config(self.path, config_file, self.recorded_config_file)

    # -- files ---------------------------------------------------------------------------------

    def voxel_file(self, hid):
        return os.path.join(self.path, VOXEL_FILE.format(hid))

    @property
    def projection_file(self):
        return os.path.join(self.path, PROJECTION_FILE)

    def _expected_origo(self, hid):
        where = np.argwhere(self.hyper_voxel_ids == hid)
        if where.shape[0] != 1:
            return None
        return self.simulation_origo + self.hyper_voxel_width * where[0]

    def _check_meta(self, f, path, hid):
        for key in META_KEYS:
            theirs = _read(f, f"meta/{key}", path)
            ours = self.meta[key]
            if isinstance(ours, (bytes, str, np.bytes_)):
                same = _to_str(ours) == _to_str(theirs)
            else:
                same = np.shape(ours) == np.shape(theirs) and np.array_equal(ours, theirs)
            if not same:
                raise InputError(f"meta/{key} = {theirs!r} disagrees with the work log ({ours!r}); "
                                 "the file belongs to another detect run", path)
        origo = _read(f, "meta/hyper_voxel_origo", path)
        expected = self._expected_origo(hid)
        if expected is None or not np.array_equal(np.asarray(origo, dtype=np.float64), expected):
            raise InputError(f"meta/hyper_voxel_origo {origo} does not match hyper voxel {hid}'s "
                             "place in the work log", path)
        if "meta/hyper_voxel_id" in f and int(f["meta/hyper_voxel_id"][()]) != hid:
            raise InputError(f"meta/hyper_voxel_id is {int(f['meta/hyper_voxel_id'][()])}, "
                             f"expected {hid}", path)

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
                    self._check_meta(f, path, hid)
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


# -- the work log alone (SnuddaPrune reads it without the hyper voxel files) ---------------------------


def read_worklog(path):
    """Read and check the work log at ``path`` alone: no config, no hyper voxel file is read.

    Returns an object with :class:`Network`'s work-log attributes (``meta``, ``hyper_voxel_ids``,
    ``completed``, ``worklog_counts``, ``num_neurons``, ``type_names``, ``neuron_type``, ...);
    every problem is an :class:`InputError` naming the file, as when a :class:`Network` is opened.
    """
    worklog = Network.__new__(Network)  # only the work-log half of a Network is filled in
    worklog.worklog_path = os.path.abspath(os.fspath(path))
    with open_h5(worklog.worklog_path) as wl:
        worklog._read_worklog(wl)
    return worklog


def check_voxel_meta(worklog, f, path, hid):
    """Check that the open hyper voxel file ``f`` (id ``hid``) belongs to the work log's detect run."""
    Network._check_meta(worklog, f, path, hid)
