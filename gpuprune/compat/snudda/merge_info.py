"""``pruning_merge_info.json``: the merge files of a network, written, read and checked for reuse.

With ``keep_files=True`` a later :class:`gpuprune.SnuddaPrune` (or Snudda's own) prunes the
merge files again without merging, if the merge info still describes them.
"""

import json
import os

import h5py
import numpy as np

from gpuprune.format import KINDS
from gpuprune.io.layout import AtomicFile

MERGE_INFO_KEYS = ("merge_files_syn", "merge_neuron_range_syn", "merge_syn_ctr",
                   "merge_files_gj", "merge_neuron_range_gj", "merge_gj_ctr")


def _plain(value):
    """JSON encoder fallback for NumPy values (Snudda writes them with its NumpyEncoder)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_merge_info(path, values):
    """Write ``pruning_merge_info.json`` (atomically) from the six lists of :data:`MERGE_INFO_KEYS`."""
    data = dict(zip(MERGE_INFO_KEYS, values, strict=True))
    with AtomicFile(path, prefix=".pruning_merge_info-", suffix=".json.part") as tmp, open(tmp, "w") as fh:
        json.dump(data, fh, indent=4, default=_plain)


def read_merge_info(path):
    """The six lists of a merge info file, in :data:`MERGE_INFO_KEYS` order."""
    with open(path) as fh:
        data = json.load(fh)
    return tuple(data[k] for k in MERGE_INFO_KEYS)


def merge_info_problem(path, info, newer_than=()):
    """Why merge info cannot be reused, or None when it can.

    Checks, as Snudda does: every referenced file exists and is not newer than
    the merge info; a missing file (None) was expected to hold no rows; each
    file holds the recorded number of rows, and its first and last dest lie in
    the recorded neuron range.  Also: the merge info is not older than any of
    ``newer_than`` (e.g. the work log).
    """
    files_syn, range_syn, ctr_syn, files_gj, range_gj, ctr_gj = info
    stamp = os.path.getmtime(path)
    for other in newer_than:
        if os.path.exists(other) and os.path.getmtime(other) > stamp:
            return f"{other} is newer than {path}"
    for name in list(files_syn) + list(files_gj):
        if name is None:
            continue
        if not os.path.exists(name):
            return f"{name} referenced by {path} does not exist"
        if os.path.getmtime(name) > stamp:
            return f"{name} is newer than {path}"
    for kind, files, ranges, ctrs in ((KINDS["synapses"], files_syn, range_syn, ctr_syn),
                                      (KINDS["gap_junctions"], files_gj, range_gj, ctr_gj)):
        if not len(files) == len(ranges) == len(ctrs):
            return (f"{path} lists {len(files)} {kind.name} files but {len(ranges)} ranges and "
                    f"{len(ctrs)} counts")
        for name, (lo, hi), ctr in zip(files, ranges, ctrs, strict=True):
            if name is None:
                if ctr > 0:
                    return f"no {kind.name} file recorded, but {ctr} {kind.name} expected"
                continue
            with h5py.File(name, "r") as f:
                ds = f[kind.matrix]
                if ds.shape[0] != ctr:
                    return f"{name} should hold {ctr} {kind.name}, found {ds.shape[0]}"
                if ctr > 0 and (lo > ds[0, 1] or ds[-1, 1] > hi):
                    return f"{name} has {kind.name} onto neurons outside {lo}-{hi}"
    return None


class MergeInfo:
    """SnuddaPrune's merge info methods (a mixin: needs ``merge_info_file``, ``work_history_file``, ``write_log``)."""

    def save_merge_info(self, merge_files_syn, merge_neuron_range_syn, merge_syn_ctr, merge_files_gj,
                        merge_neuron_range_gj, merge_gj_ctr):
        """Write ``pruning_merge_info.json`` so that pruning can be repeated without merging again."""
        write_merge_info(self.merge_info_file, (merge_files_syn, merge_neuron_range_syn, merge_syn_ctr,
                                                merge_files_gj, merge_neuron_range_gj, merge_gj_ctr))

    def get_merge_info_helper(self):
        """Read ``pruning_merge_info.json`` without checks (use :meth:`get_merge_info`).

        Returns
        -------
        tuple
            ``(merge_files_syn, merge_neuron_range_syn, merge_syn_ctr,
            merge_files_gj, merge_neuron_range_gj, merge_gj_ctr)``.
        """
        return read_merge_info(self.merge_info_file)

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
            problem = merge_info_problem(self.merge_info_file, info, newer_than=(self.work_history_file,))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.write_log(f"Problem reading merge info from {self.merge_info_file}: {exc}")
            return None
        if problem is not None:
            self.write_log(f"Bad merge info: {problem}")
            return None
        self.write_log(f"Found merge info in {self.merge_info_file}")
        return info
