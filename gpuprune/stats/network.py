"""Neurons (soma positions, types) and connected pairs, read from a network directory or a pruned file."""

import os
from dataclasses import dataclass

import h5py
import numpy as np

from gpuprune.errors import InputError
from gpuprune.format import WORKLOG

#: rows read at a time when counting the pairs of a pruned file
READ_ROWS = 1 << 20


@dataclass
class Neurons:
    """Soma positions (metres), names and types of a network's neurons."""

    position: np.ndarray
    names: list
    type_names: list
    neuron_type: np.ndarray
    population_unit: np.ndarray
    path: str = ""

    def ids_of(self, type_name):
        """Neuron ids of one type (``name`` up to its first ``_``); unknown type: :class:`InputError`."""
        if type_name not in self.type_names:
            raise InputError(f"no neuron of type {type_name!r} in the network (types: "
                             f"{', '.join(self.type_names)})", self.path)
        return np.flatnonzero(self.neuron_type == self.type_names.index(type_name))


def _neuron_file(path):
    path = os.fspath(path)
    if os.path.isdir(path):
        return os.path.join(path, WORKLOG)
    return path


def read_neurons(path):
    """Neurons of a network directory (its work log), a work log, or a pruned ``network-synapses`` file."""
    file = _neuron_file(path)
    try:
        with h5py.File(file, "r") as f:
            g = f.get("network/neurons")
            if g is None or "position" not in g or "name" not in g:
                raise InputError("no network/neurons/position and name", file)
            position = np.asarray(g["position"][()], dtype=np.float64)
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in g["name"][()]]
            unit = np.asarray(g["population_unit_id"][()]) if "population_unit_id" in g \
                else np.zeros(len(names), dtype=np.int64)
    except OSError as exc:
        raise InputError(f"cannot read neurons: {exc}", file) from None
    if position.shape != (len(names), 3):
        raise InputError(f"network/neurons/position has shape {position.shape}, expected ({len(names)}, 3)", file)
    type_of = [n.split("_")[0] for n in names]
    type_names = list(dict.fromkeys(type_of))  # numbered by first appearance, as Snudda does
    index = {t: i for i, t in enumerate(type_names)}
    return Neurons(position, names, type_names, np.array([index[t] for t in type_of], dtype=np.int32),
                   unit.astype(np.int64), file)


def pair_counts(pruned_file, pre_ids, post_ids, channel=None, kind="synapses"):
    """Rows per (src, dest) pair of a pruned file, for src in ``pre_ids`` and dest in ``post_ids``.

    Parameters
    ----------
    channel : int, optional
        Only synapses of this channel model id (column 6); default all.
    kind : {"synapses", "gap_junctions"}

    Returns
    -------
    src, dest, count : ndarray of int64
        Pairs with at least one row, ordered by (dest, src).
    """
    if kind not in ("synapses", "gap_junctions"):
        raise InputError(f"unknown kind {kind!r}; use synapses or gap_junctions")
    try:
        f = h5py.File(os.fspath(pruned_file), "r")
    except OSError as exc:
        raise InputError(f"cannot open pruned file: {exc}", pruned_file) from None
    with f:
        if f"network/{kind}" not in f:
            raise InputError(f"no network/{kind} (not a pruned network file?)", pruned_file)
        ds = f[f"network/{kind}"]
        n_neurons = int(f["network/neurons/neuron_id"].shape[0]) if "network/neurons/neuron_id" in f \
            else int(max(np.max(pre_ids, initial=0), np.max(post_ids, initial=0))) + 1
        is_pre = np.zeros(n_neurons, dtype=bool)
        is_post = np.zeros(n_neurons, dtype=bool)
        is_pre[pre_ids], is_post[post_ids] = True, True
        keys = []
        for r0 in range(0, ds.shape[0], READ_ROWS):  # bounded memory for any file size
            rows = ds[r0:r0 + READ_ROWS]
            src, dest = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
            sel = is_pre[src] & is_post[dest]
            if channel is not None and kind == "synapses":
                sel &= rows[:, 6] == channel
            keys.append(dest[sel] * n_neurons + src[sel])
    key, count = np.unique(np.concatenate(keys) if keys else np.zeros(0, np.int64), return_counts=True)
    return key % n_neurons, key // n_neurons, count.astype(np.int64)
