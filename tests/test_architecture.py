"""The package layout keeps its promises: imports go downward, no cycle, modules stay small.

Every ``import`` and ``from ... import`` of every module is read with :mod:`ast` -- the ones inside
functions too, which a cycle hides behind most easily -- and checked against the layer order of
``gpuprune/ARCHITECTURE.md``.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gpuprune"

#: the layers, lowest first; a module may import its own layer and the layers below it
LAYERS = [
    ("errors", "data"),  # data: bundled measurements (JSON), no imports
    ("format",),
    ("rules",),  # config -> parameter tables; pure functions of the config, no files
    ("rng",),
    ("plan",),
    ("io",),  # the network index checks the config's seed and builds its rules
    ("synth",),  # may use only errors, format and io (checked below)
    ("engine",),
    ("execution",),
    ("device",),  # the GPU pool is an execution pool
    ("cluster",),  # Dask and MPI pools; each worker may prune on its own GPU
    ("stats",),
    ("tune",),
    ("result", "api"),
    ("report",),
    ("compat", "cli", "snudda_compat", "__main__", "__init__"),
]
RANK = {area: rank for rank, areas in enumerate(LAYERS) for area in areas}
SYNTH_MAY_USE = {"errors", "format", "io", "synth"}

#: modules allowed over MAX_LINES, with the reason
MAX_LINES = 400
LONGER = {
    "rng/pcg64.py": "one algorithm: PCG64's 128-bit state stepped, jumped and output in 64-bit NumPy lanes "
                    "(seeding is rng/seeding.py); splitting it would scatter the carry handling",
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


MODULES = dict(_modules())


def _resolve(name):
    """The module a dotted name refers to: itself, or its parent package when it names an attribute."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module, path):
    """Every gpuprune module that ``module`` imports, at module level or inside functions."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # ``from a.b import c``: module a.b.c if there is one, else the attribute c of a.b
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("gpuprune"):
                target = _resolve(name)
                if target and target != module:
                    found.add(target)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _area(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_is_in_a_layer():
    assert {_area(m) for m in MODULES} <= set(RANK), sorted({_area(m) for m in MODULES} - set(RANK))


def test_no_import_cycle():
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(GRAPH.get(m, ())):
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_only_go_downward():
    upward = sorted(f"{m} -> {n}" for m, ns in GRAPH.items() for n in ns
                    if RANK[_area(n)] > RANK[_area(m)] and _area(n) != "__init__")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_synth_uses_only_format_and_io():
    bad = sorted(f"{m} -> {n}" for m, ns in GRAPH.items() if _area(m) == "synth" for n in ns
                 if _area(n) not in SYNTH_MAY_USE)
    assert not bad, bad


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_size(module):
    path = MODULES[module]
    rel = str(path.relative_to(PACKAGE))
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES or rel in LONGER, f"{rel}: {lines} lines (> {MAX_LINES}; split it, or name it in LONGER)"
