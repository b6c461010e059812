"""A safe compiler for the distance-pruning expressions of Snudda configs.

Configs give distance dependence as numexpr-style strings in ``d`` (the
dendrite distance to the soma in metres) and, optionally, ``r`` (``d`` divided
by the dest neuron's largest soma distance), e.g. ``"1-exp(-(0.4*d/60e-6)**2)"``
or ``"1*(d >= 110e-6)"``.  They are parsed with :mod:`ast` against a whitelist
of nodes and functions and never handed to ``eval``; anything else is an
:class:`~gpuprune.errors.ExpressionError` naming the offending part.
"""

import ast
import operator

import numpy as np

from gpuprune.errors import ExpressionError

#: functions an expression may call, with their NumPy implementation and arity.
FUNCTIONS = {
    "exp": (np.exp, 1),
    "log": (np.log, 1),
    "sqrt": (np.sqrt, 1),
    "abs": (np.abs, 1),
    "where": (np.where, 3),
}
#: variables an expression may use.
VARIABLES = ("d", "r")

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
    ast.BitAnd: np.logical_and,
    ast.BitOr: np.logical_or,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: np.logical_not}
_COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


class DistanceExpression:
    """A compiled distance expression.

    Parameters
    ----------
    source : str
        The expression text from the config.
    where : str, optional
        Where the expression comes from (file and pathway), for error messages.

    Attributes
    ----------
    source : str
        The original text (snudda mode hands it to numexpr unchanged).
    names : frozenset of str
        The variables it uses, a subset of ``{"d", "r"}``.
    """

    def __init__(self, source, where=None):
        if not isinstance(source, str):
            raise ExpressionError(f"distance expression must be a string, got {source!r}", where)
        self.source = source
        self._where = where
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"cannot parse distance expression {source!r}: {exc.msg}", where) from None
        names = set()
        self._fn = self._compile(tree.body, names)
        self.names = frozenset(names)
        # Catch type errors (e.g. bad argument counts surface here) before any work starts.
        probe = np.array([0.0, 50e-6, 1e-3])
        self.evaluate(probe, np.array([0.0, 0.5, 1.0]))

    @property
    def uses_r(self):
        """Whether the expression uses ``r`` (needs ``max_soma_distance_dend``)."""
        return "r" in self.names

    def _error(self, message):
        return ExpressionError(f"distance expression {self.source!r}: {message}", self._where)

    def _compile(self, node, names):
        """Turn an AST node into a closure ``f(env) -> value``, whitelisting as we go."""
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._error(f"constant {value!r} is not a number")
            return lambda env: value
        if isinstance(node, ast.Name):
            if node.id not in VARIABLES:
                allowed = ", ".join(VARIABLES)
                raise self._error(f"unknown name {node.id!r} (allowed variables: {allowed})")
            names.add(node.id)
            key = node.id
            return lambda env: env[key]
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                raise self._error(f"operator {type(node.op).__name__} is not allowed")
            left, right = self._compile(node.left, names), self._compile(node.right, names)
            return lambda env: op(left(env), right(env))
        if isinstance(node, ast.UnaryOp):
            op = _UNARY.get(type(node.op))
            if op is None:
                raise self._error(f"operator {type(node.op).__name__} is not allowed")
            operand = self._compile(node.operand, names)
            return lambda env: op(operand(env))
        if isinstance(node, ast.Compare):
            ops = [_COMPARE.get(type(o)) for o in node.ops]
            if None in ops:
                raise self._error("only <, <=, >, >=, ==, != comparisons are allowed")
            parts = [self._compile(node.left, names)] + [self._compile(c, names) for c in node.comparators]

            def compare(env):
                values = [p(env) for p in parts]
                result = ops[0](values[0], values[1])
                for i in range(1, len(ops)):
                    result = np.logical_and(result, ops[i](values[i], values[i + 1]))
                return result

            return compare
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
                allowed = ", ".join(sorted(FUNCTIONS))
                raise self._error(f"function {name!r} is not allowed (allowed: {allowed})")
            if node.keywords:
                raise self._error("keyword arguments are not allowed")
            fn, arity = FUNCTIONS[node.func.id]
            if len(node.args) != arity:
                raise self._error(f"{node.func.id}() takes {arity} argument(s), got {len(node.args)}")
            args = [self._compile(a, names) for a in node.args]
            return lambda env: fn(*(a(env) for a in args))
        raise self._error(f"{type(node).__name__} is not allowed in a distance expression")

    def evaluate(self, d, r=None):
        """Evaluate on float64 arrays ``d`` (and ``r``) with NumPy; returns float64 of ``d``'s shape."""
        d = np.asarray(d, dtype=np.float64)
        env = {"d": d, "r": d if r is None else np.asarray(r, dtype=np.float64)}
        with np.errstate(all="ignore"):
            try:
                value = self._fn(env)
            except (TypeError, ValueError) as exc:
                raise self._error(str(exc)) from None
        return np.broadcast_to(np.asarray(value, dtype=np.float64), d.shape)

    def evaluate_numexpr(self, d, r=None):
        """Evaluate with numexpr on float64 ``d`` and ``r``, exactly as Snudda does (snudda mode)."""
        import numexpr

        d = np.asarray(d, dtype=np.float64)
        local = {"d": d, "r": d if r is None else np.asarray(r, dtype=np.float64)}
        value = numexpr.evaluate(self.source, local_dict=local, global_dict={})
        return np.broadcast_to(value, d.shape)

    def __reduce__(self):
        # Closures do not pickle: ship the text and compile again (worker processes).
        return (DistanceExpression, (self.source, self._where))

    def __repr__(self):
        return f"DistanceExpression({self.source!r})"
