"""Package structure (issue #12): every module of paywatch/ and detectors/ imports, and
paywatch's own modules import one another without a cycle.

The import graph is read from the source with `ast`: every import statement counts, also
one inside a function (a lazy import) or under `if TYPE_CHECKING:` — a cycle hidden that way
is still a cycle in the design.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("paywatch", "detectors")


def _modules() -> dict[str, Path]:
    """Module name -> source file, for every .py file of the packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imported(module: str, path: Path) -> set[str]:
    """The modules of the packages that `module` imports, anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                # `from pkg import sub` imports the submodule pkg.sub; `from mod import name` imports mod
                found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target)
    return {m for m in found if m in MODULES and m != module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_is_read_from_every_module():
    assert "paywatch.delivery" in MODULES and "paywatch.investigate" in MODULES
    graph = {m: _imported(m, p) for m, p in MODULES.items()}
    assert "paywatch.warehouse.views" in graph["paywatch.warehouse.db"]
    assert "paywatch.pipeline" in graph["paywatch.investigate.sample"]  # lazy, inside a function


def test_no_import_cycle_among_paywatch_modules():
    graph = {m: _imported(m, p) for m, p in MODULES.items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_detectors_import_nothing_of_paywatch():
    for m, p in MODULES.items():
        if m.startswith("detectors"):
            assert not [i for i in _imported(m, p) if i.startswith("paywatch")], m


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module):
    importlib.import_module(module)
