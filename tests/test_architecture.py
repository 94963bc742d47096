"""The warehouse is reached one way (docs/design.md, issue #12): SQL is written only inside
paywatch/warehouse/, and only paywatch/warehouse/ opens or locks the DuckDB file — everyone
else is handed a `Warehouse` (paths, `writer(wait)`, `reader()`) or a connection."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("paywatch", "flows")
WAREHOUSE = Path("paywatch/warehouse")
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE (TABLE|VIEW))\b")
OPENERS = ("duckdb.connect", "open_warehouse", "WarehouseLock")

# Modules allowed to keep SQL or open DuckDB outside paywatch/warehouse/: none. (Kept as
# names so that an exception, if one is ever needed, is written down and checked.)
NOT_YET_SQL: set[str] = set()
NOT_YET_OPENING: set[str] = set()


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel.is_relative_to(WAREHOUSE):
                continue
            out.append((rel.as_posix(), ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))))
    return out


def _sql_strings(tree: ast.Module) -> list[tuple[int, str]]:
    """String constants that read as SQL, with their line (f-string parts included)."""
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)]


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _opener_calls(tree: ast.Module) -> list[tuple[int, str]]:
    """Calls of duckdb.connect, open_warehouse(...) or WarehouseLock(...), however imported."""
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name == "duckdb.connect" or name.rsplit(".", 1)[-1] in OPENERS[1:]:
                calls.append((node.lineno, name))
    return calls


def test_walk_sees_the_packages():
    names = {name for name, _ in _modules()}
    assert {"paywatch/cli.py", "paywatch/lifecycle.py", "flows/monthly.py"} <= names
    assert not any(n.startswith("paywatch/warehouse/") for n in names)
    assert NOT_YET_SQL | NOT_YET_OPENING <= names  # a renamed or deleted module leaves the lists too


def test_the_checks_catch_what_they_look_for():
    tree = ast.parse('import duckdb\nq = f"SELECT a FROM {t}"\ncon = duckdb.connect("x")\n'
                     'from paywatch.warehouse import db\nlock = db.WarehouseLock(p)\n"""Update: the DELETE key"""\n')
    assert [line for line, _ in _sql_strings(tree)] == [2]
    assert [name for _, name in _opener_calls(tree)] == ["duckdb.connect", "db.WarehouseLock"]


def test_sql_is_written_only_inside_the_warehouse_package():
    found = {name: hits for name, tree in _modules() if (hits := _sql_strings(tree))}
    offenders = {name: [f"line {line}: {text.strip()[:60]!r}" for line, text in hits]
                 for name, hits in found.items() if name not in NOT_YET_SQL}
    assert not offenders, f"SQL outside paywatch/warehouse/ (add a named query there): {offenders}"
    fixed = NOT_YET_SQL - set(found)
    assert not fixed, f"no SQL left in {sorted(fixed)}: remove them from NOT_YET_SQL"


def test_only_the_warehouse_package_opens_or_locks_the_file():
    found = {name: hits for name, tree in _modules() if (hits := _opener_calls(tree))}
    offenders = {name: hits for name, hits in found.items() if name not in NOT_YET_OPENING}
    assert not offenders, f"open through Warehouse.writer()/reader() instead: {offenders}"
    fixed = NOT_YET_OPENING - set(found)
    assert not fixed, f"{sorted(fixed)} no longer open the warehouse: remove them from NOT_YET_OPENING"
