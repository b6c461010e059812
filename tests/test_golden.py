"""Golden outputs: the sha256 of every output, recorded once from a reviewed main and pinned here.

A change in draws, grouping, rules, the output layout or the compressed bytes that CPU and GPU share
(and so no CPU-vs-GPU comparison can see) fails these tests.  The recorded digests live in
``tests/golden.json``; record them again only for a reviewed, intended change of output::

    python tests/test_golden.py --record

Two digests per case:

``content``
    sha256 over every dataset and attribute of the output (name, dtype, shape, chunking, filter,
    values) -- what SnuddaLoad reads.  Independent of where the file was written.
``file``
    sha256 of the file's bytes, checked where the output is path-independent and the install has
    the LZF extension (``gpuprune.io._lzf``; without it h5py's encoder writes other compressed bytes).
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import data_path  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden.json"

_PRUNE3 = ["network-config.json"] + [f"network-config-test-{i}.json" for i in range(1, 10)]
_STRIATUM = ["network-config.json", "network-config-cluster.json", "network-config-seed42.json"]


def _cases():
    cases = []
    for rng in ("philox", "snudda"):
        cases += [("prune", "prune3", c, rng, {}) for c in _PRUNE3]
        cases += [("prune", "striatum_300", c, rng, {}) for c in _STRIATUM]
        cases += [("prune", "striatum_300_pop", "network-config.json", rng, {})]
        cases += [("prune", "synth", None, rng, {"row_budget": 2_000, "workers": 2})]
    cases += [("prune", "striatum_300", "network-config.json", "philox", {"compression": "gzip"}),
              ("prune", "prune3", "network-config.json", "philox", {"compression": None}),
              ("prune", "striatum_300", "network-config.json", "philox", {"row_budget": 7_000, "workers": 2})]
    cases += [("emulated", "prune3", c, "philox", {}) for c in ("network-config.json",
                                                                 "network-config-test-4.json")]
    cases += [("emulated", "striatum_300", c, "philox", {}) for c in _STRIATUM]
    cases += [("emulated", "synth", None, "philox", {"row_budget": 2_000})]
    cases += [("snuddaprune", "prune3", "network-config.json", "snudda", {}),
              ("snuddaprune", "striatum_300", "network-config-cluster.json", "snudda", {}),
              ("snuddaprune", "striatum_300", "network-config.json", "philox", {})]
    return cases


CASES = _cases()


def case_id(case):
    how, net, config, rng, options = case
    opts = ",".join(f"{k}={v}" for k, v in sorted(options.items()))
    return f"{how}:{net}:{config or '-'}:{rng}" + (f":{opts}" if opts else "")


def content_digest(path, network=None):
    """sha256 over every dataset and attribute of an HDF5 file, in name order.

    Occurrences of ``network`` (the network directory's path, recorded in the meta data of a
    generated network) are replaced by a placeholder, so the digest does not depend on where the
    network was made.
    """
    h = hashlib.sha256()
    where = None if network is None else str(network).encode()

    def update(data):
        h.update(data if where is None else data.replace(where, b"<NETWORK>"))

    def add(name, obj):
        update(name.encode())
        for key in sorted(obj.attrs):
            update(f"@{key}={obj.attrs[key]!r}".encode())
        if isinstance(obj, h5py.Dataset):
            update(f"{obj.dtype.str}{obj.shape}{obj.chunks}{obj.compression}{obj.compression_opts}".encode())
            value = obj[()]
            if obj.dtype.kind in "OS":
                update(repr(np.asarray(value).tolist()).encode())
            else:
                h.update(np.ascontiguousarray(value).tobytes())

    with h5py.File(path, "r") as f:
        names = []
        f.visit(names.append)
        add("/", f)
        for name in sorted(names):
            add(name, f[name])
    return h.hexdigest()


def _network(name, tmp):
    if name == "synth":
        from gpuprune.synth import generate_network

        path = Path(tmp) / "synth"
        if not path.exists():
            generate_network(path, num_neurons=300, synapses_per_neuron=120, seed=5)
        return path
    return data_path(name)


def run_case(case, tmp):
    """Run one case in ``tmp``; return the output file's path and the network's."""
    import gpuprune

    how, name, config, rng, options = case
    net = _network(name, tmp)
    config_file = None if config is None else net / config
    out = Path(tmp) / (case_id(case).replace(":", "_").replace("/", "_") + ".hdf5")
    if how == "prune":
        gpuprune.prune(net, config_file=config_file, rng=rng, device="cpu", output_file=out,
                       **{"workers": 1, **options})
    elif how == "emulated":
        from gpuprune import api
        from gpuprune.device import pool as cuda

        real = cuda.GpuPool
        saved = api._gpu_available, cuda.GpuPool
        cuda.GpuPool = lambda ctx, network, **kw: real(ctx, network, emulate=True, **kw)
        api._gpu_available = lambda: True
        try:
            gpuprune.prune(net, config_file=config_file, rng=rng, device="gpu", output_file=out, **options)
        finally:
            api._gpu_available, cuda.GpuPool = saved
    else:  # the drop-in SnuddaPrune writes into (a copy of) the network directory
        from gpuprune import SnuddaPrune

        copy = Path(tmp) / f"copy-{name}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(net, copy, ignore=shutil.ignore_patterns("expected"))
        for p in [copy, *copy.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
        with SnuddaPrune(str(copy), config_file=str(copy / config), rng=rng, device="cpu") as sp:
            sp.prune()
        shutil.move(copy / "network-synapses.hdf5", out)
        net = copy
    return out, net


def _has_lzf():
    try:
        import gpuprune.io._lzf  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def golden():
    if not GOLDEN.exists():
        pytest.fail(f"{GOLDEN} is missing: record it with python tests/test_golden.py --record")
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_output_matches_golden(case, golden, tmp_path_factory):
    expected = golden[case_id(case)]
    tmp = tmp_path_factory.getbasetemp() / "golden"
    tmp.mkdir(exist_ok=True)
    out, net = run_case(case, tmp)
    assert content_digest(out, net) == expected["content"], f"{case_id(case)}: output content changed"
    if expected["file"] is not None and _has_lzf():
        assert hashlib.sha256(out.read_bytes()).hexdigest() == expected["file"], \
            f"{case_id(case)}: output file bytes changed"


def record():
    import tempfile

    if not _has_lzf():
        sys.exit("record with the LZF extension built (pip install -e .)")
    golden = {}
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        for case in CASES:
            (first, net_a), (second, net_b) = run_case(case, a), run_case(case, b)
            content = content_digest(first, net_a)
            assert content == content_digest(second, net_b), f"{case_id(case)} is not deterministic"
            files = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (first, second)]
            golden[case_id(case)] = {"content": content, "file": files[0] if files[0] == files[1] else None}
            print(case_id(case), content[:16], files[0][:16] if files[0] == files[1] else "(path-dependent)")
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_golden.py --record")
    record()
