"""The kernels' ``__host__ __device__`` functions, compiled for the host, against the NumPy reference.

``tests/host_twins.cpp`` wraps the functions of ``kernels/philox.cuh`` and
``kernels/prune_rules.cuh`` in plain loops; it is built with nvcc (as CUDA
source, so the functions go through nvcc's host/device path) and with the host
C++ compiler, and called through ctypes.  Philox outputs must equal Random123's
known answers and :mod:`gpuprune.rng`; keep/drop decisions must equal the
NumPy engine's, row for row, on the fixture networks.
"""

import ctypes
import shutil
from pathlib import Path

import numpy as np
import pytest
from gpu_helpers import PHILOX_CASES, case_id, network_path

from gpuprune import engine, rng
from gpuprune.device import emulated as _emulate
from gpuprune.device import kernels
from gpuprune.device import program as _device
from gpuprune.format import GAP_JUNCTIONS, SYNAPSES
from gpuprune.io.network import Network
from gpuprune.io.reader import close_files, read_chunk

TWIN_SOURCE = Path(__file__).with_name("host_twins.cpp")
COMPILERS = {
    "nvcc": lambda: shutil.which("nvcc"),
    "c++": _emulate.host_compiler,
}
#: Random123's kat_vectors for philox4x32_10: counter, key, expected output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
U32P = np.ctypeslib.ndpointer(np.uint32, flags="C_CONTIGUOUS")
F64P = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
I64 = ctypes.c_int64


def _build(compiler_name):
    compiler = COMPILERS[compiler_name]()
    if compiler is None:
        pytest.skip(f"{compiler_name} not found")
    source = kernels.define_block() + "\n" + TWIN_SOURCE.read_text()
    if compiler_name == "nvcc":
        flags, language = ("-O2", "-shared", "--fmad=false", "-Xcompiler", "-fPIC,-ffp-contract=off"), "cu"
    else:
        flags, language = _emulate.CXX_FLAGS, "c++"
    path = _emulate.compile_shared_library(source, f"gpuprune-twins-{compiler_name}", compiler=compiler,
                                           flags=flags, include_dirs=(kernels.kernel_dir(),), language=language)
    lib = ctypes.CDLL(path)
    lib.twin_philox.argtypes = [I64] + [U32P] * 10
    lib.twin_u01.argtypes = [I64, U32P, U32P, F64P]
    lib.twin_neuron_keys.argtypes = [I64, ctypes.c_uint64, U32P, U32P, U32P]
    lib.twin_row_draws.argtypes = [I64, U32P, U32P, U32P, U32P, U32P, ctypes.c_uint32, F64P, F64P, F64P]
    lib.twin_group_draws.argtypes = [I64, U32P, U32P, U32P, U32P, ctypes.c_uint32, F64P, F64P]
    lib.twin_rules_at.argtypes = [I64, F64P, F64P, np.ctypeslib.ndpointer(np.uint8, flags="C_CONTIGUOUS")]
    return lib


@pytest.fixture(scope="session", params=sorted(COMPILERS))
def twins(request):
    """The host-twin library, built once per session with each available compiler."""
    return _build(request.param)


def _u32(*arrays):
    return [np.ascontiguousarray(a, dtype=np.uint32) for a in arrays]


def _philox(lib, c, k):
    c0, c1, c2, c3, k0, k1 = _u32(*c, *k)
    out = [np.empty(c0.size, np.uint32) for _ in range(4)]
    lib.twin_philox(c0.size, c0, c1, c2, c3, k0, k1, *out)
    return out


def test_philox_known_answers(twins):
    for ctr, key, expected in KAT:
        got = _philox(twins, [[v] for v in ctr], [[v] for v in key])
        assert tuple(int(x[0]) for x in got) == expected
        assert tuple(int(x[0]) for x in rng.philox4x32(*ctr, *key)) == expected


def test_philox_and_u01_equal_numpy_on_random_counters(twins):
    g = np.random.default_rng(5)
    words = g.integers(0, 2 ** 32, size=(6, 20_000), dtype=np.uint64)
    words[:, :4] = np.array([0, 2 ** 32 - 1, 1, 2 ** 31], dtype=np.uint64)  # edge values in every word
    got = _philox(twins, words[:4], words[4:])
    expected = rng.philox4x32(*words)
    for a, b in zip(got, expected, strict=True):
        assert np.array_equal(a, b)
    u = np.empty(words.shape[1])
    hi, lo = _u32(words[0], words[1])
    twins.twin_u01(hi.size, hi, lo, u)
    assert np.array_equal(u, rng.u01(words[0], words[1]))
    assert u[1] == 1.0 - 2.0 ** -53 and u[0] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 1003, 2 ** 32 - 1, 2 ** 32, 2471459376, 2 ** 64 - 1])
def test_neuron_keys_equal_numpy(twins, seed):
    dest = np.arange(0, 300_000, 7, dtype=np.uint32)
    k0, k1 = np.empty_like(dest), np.empty_like(dest)
    twins.twin_neuron_keys(dest.size, seed, dest, k0, k1)
    e0, e1 = rng.neuron_keys(seed, dest)
    assert np.array_equal(k0, e0) and np.array_equal(k1, e1)


# -- on the fixture networks: draws and decisions row for row -------------------------------------


def _whole_kind(case, kind):
    """Every row of one kind as one chunk, tagged with its row index in an unused column."""
    net = Network(network_path(case[0]), config_file=network_path(case[0]) / case[1])
    chunks = net.plan(kind.name, 10 ** 12)
    if not chunks:
        pytest.skip(f"no {kind.name}")
    (chunk,) = chunks
    rows, _ = read_chunk(net.spec()["files"][kind.name], kind, chunk)
    close_files()
    tag = 11 if kind is SYNAPSES else 10  # conductance: the engine never reads it
    rows[:, tag] = np.arange(rows.shape[0], dtype=np.int32)
    return net, chunk, rows, tag


def _c_arg(a):
    """A ctypes argument: ``(ctype, value)`` for scalars, a pointer to the data of arrays."""
    if isinstance(a, tuple):
        return a[0](a[1])
    assert a.flags.c_contiguous
    return a.ctypes.data_as(ctypes.c_void_p)


def _sorted_groups(ctx, kind, rows, chunk):
    typ = rows[:, 6] if kind is SYNAPSES else np.full(rows.shape[0], 3, np.int32)
    key = engine.group_key(ctx, rows[:, 1], rows[:, 0], typ, chunk.dest_lo, chunk.dest_hi)
    order = np.argsort(key, kind="stable").astype(np.int64)
    sk = key[order]
    starts = np.flatnonzero(np.concatenate(([True], sk[1:] != sk[:-1]))).astype(np.int64)
    return typ, order, starts


@pytest.mark.parametrize("kind", [SYNAPSES, GAP_JUNCTIONS], ids=lambda k: k.name)
@pytest.mark.parametrize("case", PHILOX_CASES, ids=case_id)
def test_decisions_equal_engine_row_for_row(twins, case, kind):
    net, chunk, rows, tag = _whole_kind(case, kind)
    ctx = engine.PruneContext.from_network(net, mode="philox")
    expected = engine.prune_chunk(ctx, kind, rows, chunk.dest_lo, chunk.dest_hi)
    engine_keep = np.zeros(rows.shape[0], dtype=bool)
    engine_keep[expected.rows[:, tag]] = True

    typ, order, starts = _sorted_groups(ctx, kind, rows, chunk)
    n, n_groups = rows.shape[0], starts.size
    t = _device.RuleTables(ctx)
    p_keep, p_mu = ctx.probability_tables(int(np.diff(np.append(starts, n)).max()))
    dist = _device.distance_tables(ctx, kind, rows)
    keep, cand = np.zeros(n, np.uint8), np.zeros(n, np.uint8)
    count = np.zeros(n, np.int64)
    args = [
        (I64, n), (I64, n_groups), rows, (ctypes.c_int32, kind.width), (ctypes.c_int32, kind is SYNAPSES),
        (ctypes.c_uint32, kind.kind_id), order, starts, t.lut, (ctypes.c_int32, t.lut_types),
        (ctypes.c_int32, t.lut_channels), t.flags, t.f1, t.soft_max, t.a3, t.dist_index,
        np.ascontiguousarray(p_keep), np.ascontiguousarray(p_mu), (I64, p_keep.shape[1]), dist["mode"],
        dist["lo"], dist["offset"], dist["p"], t.neuron_type, t.unit, (ctypes.c_uint64, ctx.seed),
        (ctypes.c_double, t.cluster_threshold), keep, cand, count,
    ]
    twins.twin_decide(*(_c_arg(a) for a in args))
    twin_keep = np.zeros(n, dtype=bool)
    twin_keep[order] = keep.astype(bool)
    assert np.array_equal(twin_keep, engine_keep), f"{int((twin_keep != engine_keep).sum())} decisions differ"


@pytest.mark.parametrize("case", [("striatum_300", "network-config.json"), ("prune3", "network-config.json")],
                         ids=case_id)
def test_row_and_group_draws_equal_numpy(twins, case):
    net, chunk, rows, _ = _whole_kind(case, SYNAPSES)
    ctx = engine.PruneContext.from_network(net, mode="philox")
    typ, order, starts = _sorted_groups(ctx, SYNAPSES, rows, chunk)
    n = rows.shape[0]
    pos = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
    src, dest, t = rows[order, 0], rows[order, 1], typ[order]
    k0, k1 = rng.neuron_keys(ctx.seed, dest)
    src, pos_u, t, k0, k1 = _u32(src, pos, t, k0, k1)
    r = [np.empty(n) for _ in range(3)]
    twins.twin_row_draws(n, k0, k1, src, pos_u, t, SYNAPSES.kind_id, *r)
    tword = rng.type_word(t, SYNAPSES.kind_id)
    r_f1, r_dist = rng.row_draws(k0, k1, src, pos_u, tword)
    assert np.array_equal(r[0], r_f1) and np.array_equal(r[1], r_dist)
    assert np.array_equal(r[2], rng.row_draws(k0, k1, src, pos_u, tword, second=True))
    g = [np.empty(starts.size) for _ in range(2)]
    gk0, gk1, gsrc, gt = (np.ascontiguousarray(a[starts]) for a in (k0, k1, src, t))
    twins.twin_group_draws(starts.size, gk0, gk1, gsrc, gt, SYNAPSES.kind_id, *g)
    r_a3, r_mu2 = rng.group_draws(gk0, gk1, gsrc, rng.type_word(gt, SYNAPSES.kind_id))
    assert np.array_equal(g[0], r_a3) and np.array_equal(g[1], r_mu2)


def test_every_rule_at_its_exact_threshold(twins):
    """Explicit draws equal to the threshold, and one ulp either side: f1 keeps only r < f1, a3 drops
    only r > a3, soft_max keeps only r < p_keep(n), mu2 drops only p_mu(n) < r (the NumPy engine's
    comparisons; tests/device/test_thresholds.py pins the same draws through the kernels and the engine)."""
    g = np.random.default_rng(11)
    t = np.concatenate([g.random(50), [0.0, 0.5, 1.0 - 2.0 ** -53]])
    draw = np.concatenate([t, np.nextafter(t, -1.0), np.nextafter(t, 2.0)])
    thr = np.concatenate([t, t, t])
    out = np.zeros((draw.size, 4), np.uint8)
    twins.twin_rules_at(draw.size, draw, thr, out)
    expected = np.stack([draw < thr, draw > thr, draw < thr, thr < draw], axis=1)
    assert np.array_equal(out.astype(bool), expected)
    equal = slice(0, t.size)
    assert not out[equal, 0].any() and not out[equal, 1].any()  # at equality: f1 drops, a3 keeps
    assert not out[equal, 2].any() and not out[equal, 3].any()  # soft_max drops, mu2 keeps
