"""The safe distance-expression compiler."""

import numexpr
import numpy as np
import pytest

from gpuprune.errors import ExpressionError
from gpuprune.rules.expr import DistanceExpression

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
