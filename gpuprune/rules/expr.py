"""A safe, bounded compiler for the distance-pruning expressions of Snudda configs.

Configs give distance dependence as numexpr-style strings in ``d`` (the
dendrite distance to the soma in metres) and, optionally, ``r`` (``d`` divided
by the dest neuron's largest soma distance), e.g. ``"1-exp(-(0.4*d/60e-6)**2)"``
or ``"1*(d >= 110e-6)"``.  They are parsed with :mod:`ast` against a whitelist
of nodes and functions and never handed to ``eval``; anything else is an
:class:`~gpuprune.errors.ExpressionError` naming the offending part.

Both randomness modes accept the same language, decided when the config is
loaded: philox mode evaluates the compiled tree with NumPy, snudda mode hands
the text to numexpr as Snudda does, and an expression is only accepted if
both evaluate it and agree on a probe.  Its size is bounded (length, nesting
depth, node count), constants are float64 and constant subexpressions are
folded in float64 (as NumPy and numexpr compute them), so that no expression
can make loading or evaluating slow or large.  Comparison results (booleans)
may be multiplied by a number, combined with ``&``, ``|``, ``~``, be
``where``'s condition, or be the whole expression; a chained comparison
``a < b < c`` means ``(a < b) & (b < c)`` in both modes.
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
#: longest expression text accepted (Snudda's configs use a few dozen characters).
MAX_LENGTH = 1000
#: deepest nesting of operations accepted.
MAX_DEPTH = 32
#: most operations and operands accepted.
MAX_NODES = 400
#: characters of an expression quoted in an error message.
QUOTE_CHARS = 60

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
NUMBER, BOOL = "number", "bool"
_PROBE_D = np.array([0.0, 50e-6, 1e-3])
_PROBE_R = np.array([0.0, 0.5, 1.0])


def quote(source):
    """``source`` for a message: repr'd, cut to :data:`QUOTE_CHARS` characters with its length."""
    if len(source) <= QUOTE_CHARS:
        return repr(source)
    return f"{source[:QUOTE_CHARS]!r}... ({len(source)} characters)"


class _Node:
    """A compiled sub-expression: ``fn(env)``, its kind (number or bool), and its value if constant."""

    __slots__ = ("fn", "kind", "const")

    def __init__(self, fn, kind, const=None):
        self.fn, self.kind, self.const = fn, kind, const


def _constant(value):
    return _Node(lambda env: value, NUMBER, value)


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
        The original text.
    numexpr_source : str
        The text snudda mode hands to numexpr: ``source`` unchanged, unless it
        chains comparisons (numexpr cannot), which are spelled out with ``&``.
    names : frozenset of str
        The variables it uses, a subset of ``{"d", "r"}``.
    """

    def __init__(self, source, where=None):
        if not isinstance(source, str):
            raise ExpressionError(f"distance expression must be a string, got {quote(repr(source))}", where)
        self.source = source
        self._where = where
        if len(source) > MAX_LENGTH:
            raise self._error(f"is {len(source)} characters long; at most {MAX_LENGTH} are allowed")
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            raise self._error(f"cannot parse it: {exc.msg}") from None
        except (MemoryError, RecursionError, ValueError):
            raise self._error("cannot parse it: nested too deeply") from None
        self._check_size(tree.body)
        names = set()
        self._chained = False
        self._fn = self._compile(tree.body, names).fn
        self.names = frozenset(names)
        self.numexpr_source = ast.unparse(_Unchain().visit(tree)) if self._chained else source
        self._probe()

    @property
    def uses_r(self):
        """Whether the expression uses ``r`` (needs ``max_soma_distance_dend``)."""
        return "r" in self.names

    def _error(self, message):
        return ExpressionError(f"distance expression {quote(self.source)}: {message}", self._where)

    def _check_size(self, root):
        """Refuse trees deeper than :data:`MAX_DEPTH` or larger than :data:`MAX_NODES` (iteratively)."""
        stack, count = [(root, 1)], 0
        while stack:
            node, depth = stack.pop()
            count += 1
            if depth > MAX_DEPTH:
                raise self._error(f"nests operations more than {MAX_DEPTH} deep")
            if count > MAX_NODES:
                raise self._error(f"has more than {MAX_NODES} operations and operands")
            stack.extend((c, depth + 1) for c in ast.iter_child_nodes(node)
                         if not isinstance(c, (ast.operator, ast.unaryop, ast.cmpop, ast.expr_context)))

    def _compile(self, node, names):
        """Turn an AST node into a :class:`_Node`, whitelisting and type-checking as we go."""
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._error(f"constant {quote(repr(value))} is not a number")
            try:
                value = float(value)
            except OverflowError:
                raise self._error(f"constant {quote(repr(value))} does not fit in a float64") from None
            return _constant(value)
        if isinstance(node, ast.Name):
            if node.id not in VARIABLES:
                allowed = ", ".join(VARIABLES)
                raise self._error(f"unknown name {quote(node.id)} (allowed variables: {allowed})")
            names.add(node.id)
            key = node.id
            return _Node(lambda env: env[key], NUMBER)
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                raise self._error(f"operator {type(node.op).__name__} is not allowed")
            left, right = self._compile(node.left, names), self._compile(node.right, names)
            kind = self._binary_kind(node.op, left.kind, right.kind)
            return self._fold(node, lambda env: op(left.fn(env), right.fn(env)), kind, (left, right),
                              lambda a, b: op(a, b))
        if isinstance(node, ast.UnaryOp):
            op = _UNARY.get(type(node.op))
            if op is None:
                raise self._error(f"operator {type(node.op).__name__} is not allowed")
            operand = self._compile(node.operand, names)
            want = BOOL if isinstance(node.op, ast.Invert) else NUMBER
            if operand.kind != want:
                raise self._error("~ applies to comparisons only" if want == BOOL
                                  else "a comparison cannot be negated with - or +; use ~ or 1 - 1*(...)")
            return self._fold(node, lambda env: op(operand.fn(env)), want, (operand,), op)
        if isinstance(node, ast.Compare):
            ops = [_COMPARE.get(type(o)) for o in node.ops]
            if None in ops:
                raise self._error("only <, <=, >, >=, ==, != comparisons are allowed")
            parts = [self._compile(node.left, names)] + [self._compile(c, names) for c in node.comparators]
            if any(p.kind != NUMBER for p in parts):
                raise self._error("comparisons compare numbers, not comparison results")
            self._chained |= len(ops) > 1
            fns = [p.fn for p in parts]

            def compare(env):
                values = [f(env) for f in fns]
                result = ops[0](values[0], values[1])
                for i in range(1, len(ops)):
                    result = np.logical_and(result, ops[i](values[i], values[i + 1]))
                return result

            return _Node(compare, BOOL)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
                allowed = ", ".join(sorted(FUNCTIONS))
                raise self._error(f"function {quote(name)} is not allowed (allowed: {allowed})")
            if node.keywords:
                raise self._error("keyword arguments are not allowed")
            fn, arity = FUNCTIONS[node.func.id]
            if len(node.args) != arity:
                raise self._error(f"{node.func.id}() takes {arity} argument(s), got {len(node.args)}")
            args = [self._compile(a, names) for a in node.args]
            want = [BOOL, NUMBER, NUMBER] if node.func.id == "where" else [NUMBER]
            if [a.kind for a in args] != want:
                raise self._error("where() takes a comparison and two numbers" if arity == 3
                                  else f"{node.func.id}() takes a number, not a comparison")
            fns = [a.fn for a in args]
            return self._fold(node, lambda env: fn(*(f(env) for f in fns)), NUMBER, args, fn)
        raise self._error(f"{type(node).__name__} is not allowed in a distance expression")

    def _binary_kind(self, op, left, right):
        if isinstance(op, (ast.BitAnd, ast.BitOr)):
            if left == right == BOOL:
                return BOOL
            raise self._error("& and | combine comparisons only")
        if left == right == NUMBER or (isinstance(op, ast.Mult) and BOOL in (left, right) and left != right):
            return NUMBER
        raise self._error("a comparison result can only be multiplied by a number, combined with & | ~, "
                          "or be where()'s condition")

    def _fold(self, node, fn, kind, operands, op):
        """Constant operands: compute once, in float64, and refuse a result that is not finite."""
        if kind != NUMBER or any(o.const is None for o in operands):
            return _Node(fn, kind)
        with np.errstate(all="ignore"):
            value = float(op(*(np.float64(o.const) for o in operands)))
        if not np.isfinite(value):
            raise self._error(f"constant {quote(ast.unparse(node))} is {value} in float64")
        return _constant(value)

    def _probe(self):
        """Evaluate with both evaluators on a few distances; refuse what either cannot do or where they disagree."""
        ours = self.evaluate(_PROBE_D, _PROBE_R)
        try:
            theirs = np.asarray(self.evaluate_numexpr(_PROBE_D, _PROBE_R), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - numexpr raises many types; any means snudda mode cannot run it
            raise self._error(f"numexpr (snudda randomness) cannot evaluate it: {type(exc).__name__}: "
                              f"{str(exc)[:QUOTE_CHARS]}") from None
        if not np.allclose(ours, theirs, rtol=1e-12, atol=1e-300, equal_nan=True):
            raise self._error(f"NumPy and numexpr evaluate it differently ({ours.tolist()} against "
                              f"{theirs.tolist()} at d = {_PROBE_D.tolist()}); the two randomness modes "
                              "must agree")

    def evaluate(self, d, r=None):
        """Evaluate on float64 arrays ``d`` (and ``r``) with NumPy; returns float64 of ``d``'s shape."""
        d = np.asarray(d, dtype=np.float64)
        env = {"d": d, "r": d if r is None else np.asarray(r, dtype=np.float64)}
        with np.errstate(all="ignore"):
            try:
                value = self._fn(env)
            except (TypeError, ValueError) as exc:
                raise self._error(str(exc)[:QUOTE_CHARS]) from None
        return np.broadcast_to(np.asarray(value, dtype=np.float64), d.shape)

    def evaluate_numexpr(self, d, r=None):
        """Evaluate with numexpr on float64 ``d`` and ``r``, exactly as Snudda does (snudda mode)."""
        import numexpr

        d = np.asarray(d, dtype=np.float64)
        local = {"d": d, "r": d if r is None else np.asarray(r, dtype=np.float64)}
        value = numexpr.evaluate(self.numexpr_source, local_dict=local, global_dict={})
        return np.broadcast_to(value, d.shape)

    def __reduce__(self):
        # Closures do not pickle: ship the text and compile again (worker processes).
        return (DistanceExpression, (self.source, self._where))

    def __repr__(self):
        return f"DistanceExpression({quote(self.source)})"


class _Unchain(ast.NodeTransformer):
    """``a < b <= c`` -> ``(a < b) & (b <= c)``: numexpr does not chain comparisons."""

    def visit_Compare(self, node):
        self.generic_visit(node)
        if len(node.ops) == 1:
            return node
        operands = [node.left] + node.comparators
        pairs = [ast.Compare(left=operands[i], ops=[o], comparators=[operands[i + 1]])
                 for i, o in enumerate(node.ops)]
        result = pairs[0]
        for p in pairs[1:]:
            result = ast.BinOp(left=result, op=ast.BitAnd(), right=p)
        return result
