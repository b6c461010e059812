"""Fitting targets: connection probabilities in distance bins and synapses per pair, from JSON, a dict
or the bundled measured striatal data (``gpuprune/data/striatum_connectivity.json``) by name.

A target for one pathway is::

    {"pathway": "dSPN,iSPN,GABA",
     "bins": [[0, 50e-6, 0.064], [0, 100e-6, 0.045]],       # (bin_start, bin_end, P), metres
     "mean_synapses": 2.5, "std_synapses": 1.0, "p20_synapses": 1}  # each optional

the bin format ``OptimisePruning`` takes.  Instead of ``bins``, ``"dataset": NAME`` names a bundled
measurement (``n`` and ``N`` are then known, so the target's own 95 % interval is too).  A file holds
one target object, a list of them, or ``{"targets": [...]}``.
"""

import json
import os
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from gpuprune.errors import InputError
from gpuprune.stats.connectivity import Bins, wilson_interval

DATA_FILE = "striatum_connectivity.json"
SYNAPSE_KEYS = ("mean_synapses", "std_synapses", "p20_synapses")


def bundled_data():
    """The bundled measured striatal connection probabilities (dict: description, datasets)."""
    text = resources.files("gpuprune.data").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def dataset_names():
    return sorted(bundled_data()["datasets"])


@dataclass
class Target:
    """What one pathway should look like after pruning."""

    pathway: tuple  # (pre, post, con_type)
    bins: Bins
    probability: np.ndarray
    n: object = None  # measured connected pairs per bin (or None)
    N: object = None  # measured tested pairs per bin (or None)
    synapses: dict = field(default_factory=dict)  # any of SYNAPSE_KEYS
    reference: str = ""

    @property
    def interval(self):
        """Wilson 95 % interval of each measured probability (NaN where counts are not published)."""
        if self.n is None:
            nan = np.full(len(self.bins), np.nan)
            return nan, nan.copy()
        return wilson_interval(self.n, self.N)

    def as_bins(self):
        """The ``[(bin_start, bin_end, P), ...]`` list ``OptimisePruning`` takes."""
        rows = zip(self.bins.start, self.bins.end, self.probability, strict=True)
        return [(float(s), float(e), float(p)) for s, e, p in rows]


def parse_pathway(text, where="pathway"):
    """``"Pre,Post,ConType"`` (or a 3-sequence) -> tuple of three names."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    parts = [str(p).strip() for p in parts]
    if len(parts) != 3 or not all(parts):
        raise InputError(f"pathway must be 'Pre,Post,ConType' (e.g. 'FS,dSPN,GABA'), got {text!r}", where)
    return tuple(parts)


def target_from_dataset(name, where="targets"):
    datasets = bundled_data()["datasets"]
    if name not in datasets:
        raise InputError(f"unknown dataset {name!r}; bundled: {', '.join(sorted(datasets))}", where)
    d = datasets[name]
    bins = Bins.of(d["bins"], where=f"{where} [{name}]")
    return Target((d["pre"], d["post"], d["con_type"]), bins, np.array([b[2] for b in d["bins"]], dtype=float),
                  np.array(d["n"]), np.array(d["N"]), {}, d["reference"])


def target_from_dict(spec, where="targets"):
    """One :class:`Target` from its dict form (see the module docstring)."""
    if not isinstance(spec, dict):
        raise InputError(f"a target must be an object, got {spec!r}", where)
    unknown = sorted(set(spec) - {"pathway", "bins", "dataset", "n", "N", "reference", *SYNAPSE_KEYS})
    if unknown:
        raise InputError(f"unknown target key(s) {', '.join(unknown)}", where)
    if "dataset" in spec:
        t = target_from_dataset(spec["dataset"], where)
        if "pathway" in spec:
            t.pathway = parse_pathway(spec["pathway"], where)
    else:
        if "pathway" not in spec or "bins" not in spec:
            raise InputError("a target needs 'pathway' and 'bins' (or 'dataset')", where)
        bins = spec["bins"]
        if not isinstance(bins, (list, tuple)) or not all(isinstance(b, (list, tuple)) and len(b) == 3 for b in bins):
            raise InputError(f"bins must be a list of [bin_start, bin_end, P], got {bins!r}", where)
        b = Bins.of(bins, where=where)
        p = np.array([x[2] for x in bins], dtype=float)
        if not np.all((p >= 0) & (p <= 1)):
            raise InputError(f"target probabilities must lie in 0..1, got {p.tolist()}", where)
        n = N = None
        if "n" in spec or "N" in spec:
            n, N = np.asarray(spec.get("n"), dtype=np.int64), np.asarray(spec.get("N"), dtype=np.int64)
            if n.shape != (len(b),) or N.shape != (len(b),) or np.any(n > N) or np.any(n < 0):
                raise InputError("'n' and 'N' need one count per bin with 0 <= n <= N", where)
        t = Target(parse_pathway(spec["pathway"], where), b, p, n, N, {}, str(spec.get("reference", "")))
    for k in SYNAPSE_KEYS:
        if spec.get(k) is not None:
            v = spec[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise InputError(f"{k} must be a non-negative number, got {v!r}", where)
            t.synapses[k] = float(v)
    return t


def load_targets(source):
    """Targets from a JSON file path, a dict, a list of dicts, or a bundled dataset name."""
    where = "targets"
    if isinstance(source, (str, os.PathLike)) and not os.path.exists(source) \
            and str(source) in bundled_data()["datasets"]:
        return [target_from_dataset(str(source))]
    if isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        try:
            with open(source, encoding="utf-8") as fh:
                source = json.load(fh)
        except FileNotFoundError:
            raise InputError("targets file not found (nor a bundled dataset name)", where) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read targets: {exc}", where) from None
    if isinstance(source, dict) and "targets" in source:
        source = source["targets"]
    specs = source if isinstance(source, list) else [source]
    if not specs:
        raise InputError("no targets given", where)
    return [target_from_dict(s, f"{where} [target {i}]") for i, s in enumerate(specs)]
