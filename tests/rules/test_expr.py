"""The safe distance-expression compiler."""

import random
import time
import tracemalloc

import numexpr
import numpy as np
import pytest

from gpuprune.errors import ExpressionError
from gpuprune.rules.expr import MAX_DEPTH, MAX_NODES, DistanceExpression

D = np.array([0.0, 18e-6, 59e-6, 102e-6, 110e-6, 183e-6, 1e-3])


@pytest.mark.parametrize("source", [
    "1-exp(-(0.4*d/60e-6)**2)",
    "exp(-(0.5*d/60e-6)**2)",
    "1*(d >= 110e-6)",
    "where(d < 50e-6, 0.2, 0.9)",
    "sqrt(abs(d)) / (1 + log(1 + d*1e6))",
    "(d > 20e-6) & (d < 150e-6)",
    "0.5",
    "-d + +d + d % 3e-5",
])
def test_matches_numexpr(source):
    e = DistanceExpression(source)
    ours = e.evaluate(D)
    theirs = np.broadcast_to(numexpr.evaluate(source, local_dict={"d": D}), D.shape)
    assert ours.shape == D.shape
    np.testing.assert_allclose(ours, theirs.astype(float), rtol=1e-14, atol=0)


def test_hand_values():
    e = DistanceExpression("1*(d >= 110e-6)")
    assert e.evaluate(np.array([109e-6, 110e-6, 111e-6])).tolist() == [0.0, 1.0, 1.0]
    assert e.names == {"d"} and not e.uses_r
    r = DistanceExpression("r*0.5 + d")
    assert r.uses_r
    assert r.evaluate(np.array([1.0]), np.array([0.5])).tolist() == [1.25]


def test_chained_comparison():
    e = DistanceExpression("1*(20e-6 < d <= 110e-6)")
    assert e.evaluate(np.array([10e-6, 50e-6, 110e-6, 120e-6])).tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("source,fragment", [
    ("__import__('os').system('true')", "not allowed"),
    ("d.__class__", "Attribute"),
    ("x * 2", "unknown name 'x'"),
    ("sin(d)", "function 'sin'"),
    ("exp(d, 2)", "takes 1"),
    ("where(d < 1, 2)", "takes 3"),
    ("(lambda: 1)()", "not allowed"),
    ("[d][0]", "not allowed"),
    ("'a'", "not a number"),
    ("d if d else 1", "IfExp"),
    ("d and 1", "BoolOp"),
    ("1 +", "cannot parse"),
    ("exp(d=1)", "keyword"),
    ("d << 2", "LShift"),
])
def test_rejects_unsafe_or_malformed(source, fragment):
    with pytest.raises(ExpressionError) as err:
        DistanceExpression(source, where="cfg.json [A,B GABA]")
    assert fragment in str(err.value)
    assert "cfg.json [A,B GABA]" in str(err.value)


def test_not_a_string():
    with pytest.raises(ExpressionError):
        DistanceExpression(3)


def test_pickles():
    import pickle

    e = pickle.loads(pickle.dumps(DistanceExpression("exp(-d)")))
    assert e.evaluate(np.array([0.0]))[0] == 1.0


# -- bounds (issue 11, item 3) ---------------------------------------------------------------------

WHERE = "cfg.json [A,B GABA]"


def refused(source, fragment):
    t0 = time.perf_counter()
    with pytest.raises(ExpressionError, match=fragment) as err:
        DistanceExpression(source, where=WHERE)
    message = str(err.value)
    assert message.startswith(WHERE) and "\n" not in message and len(message) < 400, message[:500]
    assert time.perf_counter() - t0 < 5  # refused quickly, not after a long computation
    return message


def test_huge_power_tower_refused_quickly():
    refused("9**9**9**9", "inf in float64")
    refused("9**9**9**9 * d", "inf in float64")


def test_huge_integer_constant_refused():
    refused("1" * 400 + "*d", "does not fit in a float64")


def test_ten_megabyte_expression_refused():
    refused("d+" * 5_000_000 + "d", "at most 1000")


def test_deep_parentheses_refused_with_short_message():
    refused("(" * 200_000 + "d" + ")" * 200_000, "at most 1000")
    refused("(" * 400 + "d" + ")" * 400, "cannot parse|nests")


def test_depth_and_size_limits():
    refused("exp(" * (MAX_DEPTH + 1) + "d" + ")" * (MAX_DEPTH + 1), "deep")
    refused("+".join(["d"] * (MAX_NODES // 2 + 10)), "more than")
    ok = DistanceExpression("abs(" * (MAX_DEPTH - 2) + "-d" + ")" * (MAX_DEPTH - 2))
    assert ok.evaluate(np.array([1e-6])).tolist() == [1e-6]


@pytest.mark.parametrize("source,value", [
    ("2**-1", 0.5), ("7 % 3", 1.0), ("-7 % 3", 2.0), ("1/3", 1 / 3), ("2**0.5", 2 ** 0.5), ("10**-400", 0.0),
    ("3 * 1e300 / 1e10", 3e290),
])
def test_constants_are_float64_as_numexpr_computes_them(source, value):
    e = DistanceExpression(f"{source} + 0*d")
    assert e.evaluate(np.array([1.0]))[0] == value
    assert float(e.evaluate_numexpr(np.array([1.0]))[0]) == value


@pytest.mark.parametrize("source", ["1/0*d", "1 % 0 + d", "1e308 * 10 * d", "log(0) + d"])
def test_non_finite_constants_refused(source):
    refused(source, "in float64")


@pytest.mark.parametrize("source", ["1e-4 < d < 2e-4", "1*(20e-6 < d <= 110e-6)", "0 <= d < 1e-4 < 1"])
def test_chained_comparison_same_in_both_modes(source):
    e = DistanceExpression(source)
    d = np.array([0.0, 1e-4, 1.5e-4, 2e-4, 3e-4])
    assert np.array_equal(e.evaluate(d), np.asarray(e.evaluate_numexpr(d), dtype=float))
    assert e.source == source and "<" in e.numexpr_source


def test_unchained_source_goes_to_numexpr_unchanged():
    assert DistanceExpression("1-exp(-(0.4*d/60e-6)**2)").numexpr_source == "1-exp(-(0.4*d/60e-6)**2)"


@pytest.mark.parametrize("source,fragment", [
    ("(d > 1)**2", "comparison result"),
    ("(d > 1) + 1", "comparison result"),
    ("-(d > 1)", "negated"),
    ("~d", "comparisons only"),
    ("d & d", "comparisons only"),
    ("where(d, 1, 0)", "comparison and two numbers"),
    ("exp(d > 1)", "not a comparison"),
    ("(d > 1) < 2", "not comparison results"),
])
def test_language_both_evaluators_share(source, fragment):
    """What numexpr (snudda mode) cannot do, or does differently from NumPy, is refused in both modes."""
    refused(source, fragment)


def test_numexpr_probe_runs_at_load(monkeypatch):
    """An expression numexpr cannot evaluate is refused when the config is loaded, not mid-prune."""
    import gpuprune.rules.expr as expr_module

    def broken(self, d, r=None):
        raise TypeError("no such opcode")

    monkeypatch.setattr(expr_module.DistanceExpression, "evaluate_numexpr", broken)
    refused("exp(-d)", "numexpr .snudda randomness. cannot evaluate it")


# -- fuzz: every expression compiles and evaluates in bounded time and memory, or is refused ----------

LEAVES = ["d", "r", "0", "1", "2", "3", "0.5", "1e-6", "60e-6", "1e300", "9", "1e-320", "x", "'s'", "True"]
UNARY = ["-{}", "+{}", "~{}", "exp({})", "log({})", "sqrt({})", "abs({})", "sin({})", "({})", "not {}"]
BINARY = ["{} + {}", "{} - {}", "{} * {}", "{} / {}", "{} ** {}", "{} % {}", "{} & {}", "{} | {}",
          "{} < {}", "{} <= {}", "{} == {}", "{} > {} > {}", "where({}, {}, {})", "{} // {}", "{} << {}",
          "{} if {} else {}", "{}[{}]", "{} and {}"]


def random_expression(rnd, depth):
    if depth == 0 or rnd.random() < 0.2:
        return rnd.choice(LEAVES)
    if rnd.random() < 0.35:
        return rnd.choice(UNARY).format(random_expression(rnd, depth - 1))
    form = rnd.choice(BINARY)
    return form.format(*(random_expression(rnd, depth - 1) for _ in range(form.count("{}"))))


HOSTILE = [
    "9**9**9**9", "9**9**9", "(9**9)**(9**9)", "10**10**10 % 7", "2**2**2**2**2**2", "-(-(-(-(-(-d)))))" * 50,
    "(" * 10_000 + "d" + ")" * 10_000, "d" * 100_000, "1" * 5000, "exp(" * 300 + "d" + ")" * 300,
    "[" * 500, "\x00", "d\n+\nd", "\ufeffd", "𝑑", "d # comment", "lambda: d", "__import__('os')",
    "d.real", "(d, d)", "{d}", "d[0]", "f'{d}'", "b'd'", "1j * d", "...", "*d", "d := 1",
    "where(d < 1, where(d < 2, where(d < 3, 1, 0), 0), 0)", "1e-4 < d < 2e-4 < r <= 1",
    "1e308 * 1e308 * 0 + d", "0 ** -1 + d", "(-8) ** (1/3) + d", "d ** 1e300", "exp(1e300 * d)",
]


def check_bounded(source, d, r):
    t0 = time.perf_counter()
    tracemalloc.start()
    try:
        try:
            e = DistanceExpression(source, where=WHERE)
        except ExpressionError as err:
            message = str(err)
            assert "\n" not in message and len(message) < 600, (source[:80], message[:600])
            return "refused"
        p = e.evaluate(d, r)
        q = e.evaluate_numexpr(d, r)
        assert p.shape == d.shape and p.dtype == np.float64
        np.testing.assert_allclose(np.asarray(q, dtype=float), p, rtol=1e-9, atol=1e-300, equal_nan=True)
        return "ok"
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 64 << 20, (source[:80], peak)  # 64 MiB for 10,000 distances
        assert time.perf_counter() - t0 < 10, source[:80]


def test_fuzz_random_and_hostile_expressions():
    rnd = random.Random(20261202)
    d = np.linspace(0.0, 1e-3, 10_000)
    r = np.linspace(0.0, 1.0, 10_000)
    outcomes = {"ok": 0, "refused": 0}
    sources = HOSTILE + [random_expression(rnd, rnd.randint(1, 8)) for _ in range(600)]
    for source in sources:
        outcomes[check_bounded(source, d, r)] += 1
    # the generator makes both kinds: the test would be hollow if everything were refused
    assert outcomes["ok"] > 60 and outcomes["refused"] > 60, outcomes
