"""The compat layer's modules import one another without a cycle (function-level imports count)."""

import ast
from pathlib import Path

import gpuprune

PACKAGE = Path(gpuprune.__file__).parent / "compat"


def _imports(path, known):
    """Modules of ``known`` that the file imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


def test_no_import_cycle_in_compat():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    graph = {name: {d for d in deps if not name.startswith(d + ".")} for name, deps in graph.items()}  # not parents

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for dep in graph[todo.pop()]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    assert len(modules) > 8
    cycles = sorted(name for name in graph if name in reach(name))
    assert cycles == [], f"import cycle through {cycles}"
    # the engines' side never imports the class it runs: the class travels in the worker spec
    assert "gpuprune.compat.snudda.prune" not in reach("gpuprune.compat.snudda.workers")
