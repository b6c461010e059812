"""The detect work log (``log/network-detect-worklog.hdf5``): read it, check it, and check each hyper
voxel file's meta against it (DESIGN §1, §6).

:func:`read_worklog` gives a :class:`WorkLog` whose attributes :class:`gpuprune.io.network.Network`
exposes as its own; :func:`check_voxel_meta` is the one check that a hyper voxel file belongs to the
detect run of the work log.
"""

import json
from dataclasses import dataclass

import numpy as np

from gpuprune.errors import InputError
from gpuprune.format import KINDS, META_KEYS
from gpuprune.io.hdf5 import _read, _to_str, open_h5


@dataclass
class WorkLog:
    """What a prune needs from the work log; see :func:`read_worklog`."""

    worklog_path: str
    meta: dict
    hyper_voxel_ids: np.ndarray
    voxel_size: float
    simulation_origo: np.ndarray
    hyper_voxel_width: float
    connectivity_distributions: dict
    recorded_config_file: str
    completed: np.ndarray  # ids of the completed hyper voxels, in completion order
    worklog_counts: dict  # kind name -> rows per completed hyper voxel
    num_projection_synapses: int
    num_neurons: int
    type_names: list
    neuron_names: list
    neuron_type: np.ndarray
    population_unit: np.ndarray
    max_soma_distance_dend: np.ndarray | None


def _num_completed(wl, p):
    value = np.asarray(_read(wl, "num_completed", p)).reshape(-1)
    if value.size != 1:
        raise InputError("num_completed must hold one number", p)
    number = value[0]
    if not np.issubdtype(value.dtype, np.number) or not np.isfinite(number) or number != np.floor(number):
        raise InputError(f"num_completed = {number!r} is not a whole number of hyper voxels", p)
    return int(number)


def read_worklog(path):
    """Read and check the work log at ``path``; every problem is an :class:`InputError` naming it."""
    with open_h5(path) as wl:
        return _read_open(wl, path)


def _read_open(wl, p):
    meta = {k: _read(wl, f"meta/{k}", p) for k in META_KEYS}
    voxel_size = float(meta["voxel_size"])
    try:
        distributions = json.loads(_read(wl, "meta/connectivity_distributions", p))
    except (TypeError, ValueError) as exc:
        raise InputError(f"meta/connectivity_distributions is not valid JSON: {exc}", p) from None

    all_ids = np.asarray(_read(wl, "all_hyper_ids", p)).astype(np.int64)
    n_done = _num_completed(wl, p)
    completed = np.asarray(_read(wl, "completed", p)).astype(np.int64)
    if not 0 <= n_done <= completed.size:
        raise InputError(f"num_completed = {n_done} but 'completed' has {completed.size} entries", p)
    completed = completed[:n_done]
    missing = np.setdiff1d(all_ids, completed)
    if missing.size:
        shown = ", ".join(str(x) for x in missing[:10]) + (" ..." if missing.size > 10 else "")
        raise InputError(f"detect did not finish: {missing.size} of {all_ids.size} hyper voxels "
                         f"not completed (ids {shown}); rerun snudda detect", p)
    counts = {}
    for kind in KINDS.values():
        c = np.asarray(_read(wl, kind.worklog_counts, p)).astype(np.int64)
        if c.size < n_done:
            raise InputError(f"{kind.worklog_counts} has {c.size} entries, fewer than the "
                             f"{n_done} completed hyper voxels", p)
        counts[kind.name] = c[:n_done]
    n_projection = int(_read(wl, "num_projection_synapses", p)) if "num_projection_synapses" in wl else 0

    neurons = "network/neurons"
    if neurons not in wl:
        raise InputError("missing group 'network/neurons'", p)
    neuron_id = np.asarray(_read(wl, f"{neurons}/neuron_id", p))
    num_neurons = int(neuron_id.size)
    if not np.array_equal(neuron_id, np.arange(num_neurons)):
        raise InputError("network/neurons/neuron_id must be 0 .. N-1 in order", p)
    if num_neurons >= 2 ** 32:
        raise InputError("neuron ids must be below 2**32", p)
    names = [_to_str(x) for x in _read(wl, f"{neurons}/name", p)]
    if len(names) != num_neurons:
        raise InputError("network/neurons/name and neuron_id differ in length", p)
    type_of = [n.split("_")[0] for n in names]
    # Type numbering by first appearance, as Snudda's make_type_numbering.
    type_names = list(dict.fromkeys(type_of))
    index = {t: i for i, t in enumerate(type_names)}
    population_unit = np.asarray(_read(wl, f"{neurons}/population_unit_id", p)).astype(np.int64)
    if population_unit.size != num_neurons:
        raise InputError("network/neurons/population_unit_id has the wrong length", p)
    msd = None
    if f"{neurons}/max_soma_distance_dend" in wl:
        msd = np.asarray(_read(wl, f"{neurons}/max_soma_distance_dend", p))
        if msd.size != num_neurons:
            raise InputError("network/neurons/max_soma_distance_dend has the wrong length", p)
        # Snudda divides a float64 distance by the stored (float32) value: widen it as is.
        msd = msd.astype(np.float64)
    return WorkLog(
        worklog_path=p, meta=meta, hyper_voxel_ids=np.asarray(_read(wl, "meta/hyper_voxel_ids", p)),
        voxel_size=voxel_size, simulation_origo=np.asarray(meta["simulation_origo"], dtype=np.float64),
        hyper_voxel_width=voxel_size * float(meta["hyper_voxel_size"]), connectivity_distributions=distributions,
        recorded_config_file=_to_str(meta["config_file"]), completed=completed, worklog_counts=counts,
        num_projection_synapses=n_projection, num_neurons=num_neurons, type_names=type_names, neuron_names=names,
        neuron_type=np.array([index[t] for t in type_of], dtype=np.int32), population_unit=population_unit,
        max_soma_distance_dend=msd)


def expected_origo(worklog, hid):
    """Where hyper voxel ``hid`` starts, from its place in the work log's grid (None: not in the grid)."""
    where = np.argwhere(worklog.hyper_voxel_ids == hid)
    if where.shape[0] != 1:
        return None
    return worklog.simulation_origo + worklog.hyper_voxel_width * where[0]


def check_voxel_meta(worklog, f, path, hid):
    """Check that the open hyper voxel file ``f`` (id ``hid``) belongs to the work log's detect run."""
    for key in META_KEYS:
        theirs = _read(f, f"meta/{key}", path)
        ours = worklog.meta[key]
        if isinstance(ours, (bytes, str, np.bytes_)):
            same = _to_str(ours) == _to_str(theirs)
        else:
            same = np.shape(ours) == np.shape(theirs) and np.array_equal(ours, theirs)
        if not same:
            raise InputError(f"meta/{key} = {theirs!r} disagrees with the work log ({ours!r}); "
                             "the file belongs to another detect run", path)
    origo = _read(f, "meta/hyper_voxel_origo", path)
    expected = expected_origo(worklog, hid)
    if expected is None or not np.array_equal(np.asarray(origo, dtype=np.float64), expected):
        raise InputError(f"meta/hyper_voxel_origo {origo} does not match hyper voxel {hid}'s "
                         "place in the work log", path)
    if "meta/hyper_voxel_id" in f:
        stated = int(_read(f, "meta/hyper_voxel_id", path))
        if stated != hid:
            raise InputError(f"meta/hyper_voxel_id is {stated}, expected {hid}", path)
