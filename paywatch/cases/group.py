"""Root-cause grouping: a run's findings into cases (docs/cli-contract.md `cases.csv`).

A case is one staff member and one root cause in a run: the finding that explains the others
together with the findings it explains (`Rules`, from the `[cases]` configuration). Pure:
frames in, frames out; what needs the warehouse or the payroll calendar (first seen, status,
due date) is added by the GROUP_CASES stage (paywatch/pipeline.py).

How a staff member's findings in one run are grouped:

1. Each finding is ranked: the line of its category's rule (categories without a rule after
   all others), then pay order of its wage type (earnings and deductions by wage type, then the
   totals /101, /550, /560, then findings without a wage type), for-period, detector.
2. Finding X is explained by finding Y when Y's rule covers X's category. When both explain
   each other (the same cause on several lines, or two causes that explain everything), the
   higher-ranked one is the cause.
3. X hangs from its highest-ranked explainer; following these links up leads to a root — a
   finding nothing explains (a circle, possible only with unusual rules, is rooted at its
   highest-ranked member).
4. The case of X is its root's (category, wage type): findings nobody explains form one case
   per category and wage type, so one injected error gives one case.

The case id is `{payroll area}-{period}-{PERNR}-{root category}[-{root wage type}]`: readable,
and the same in SIM1, SIM2, SIM3 and FINAL of a period while the cause persists.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from detectors.base import SEVERITY_RANK
from detectors.money import money
from paywatch.cases.rules import Rules

# grain: one row per case of a run (what the findings alone say; the stage adds the rest)
GROUPED_SCHEMA = {
    "case_id": pl.String,
    "pernr": pl.String,
    "root_cause": pl.String,           # category of the root finding
    "root_wage_type": pl.String,       # its wage type, null when none
    "root_finding_id": pl.String,      # null when the findings have no ids yet
    "owner": pl.String,                # who must fix the cause: the root finding's owner
    "in_copy": pl.String,              # the other owners concerned, comma-separated ("" none)
    "severity": pl.String,             # highest among the case's findings (before decisions)
    "n_findings": pl.Int64,
    "amount_at_stake_cents": pl.Int64,  # largest |found - expected| among its findings
    "currency": pl.String,             # of amount_at_stake_cents
    "summary": pl.String,              # one sentence: the cause and what follows, with numbers
}
SHOWN_CONSEQUENCES = 3  # the summary names this many explained findings, then "and N more"


@dataclass(frozen=True)
class _F:
    """One finding as grouping sees it."""

    i: int
    order: tuple
    category: str
    wage_type: str | None
    severity: str
    owner: str | None
    amount: int | None
    expected: int | None
    currency: str | None
    explanation: str
    finding_id: str | None


def pay_order(wage_type: str | None) -> tuple[int, str]:
    """Wage types as a payroll computes them: pay lines by wage type, then the totals (/101,
    /550, /560), then findings that name no wage type."""
    if not wage_type:
        return (2, "")
    return (1 if wage_type.startswith("/") else 0, wage_type)


def case_id(payroll_area: str, period: str, pernr: str | None, category: str, wage_type: str | None) -> str:
    """The id of the case rooted in `category` on `wage_type` for `pernr` in `period`."""
    base = f"{payroll_area}-{period}-{pernr or 'none'}-{category}"
    return f"{base}-{wage_type}" if wage_type else base


def at_stake(amount: int | None, expected: int | None) -> int | None:
    """|found - expected| of one finding, a missing side counting as 0; None when neither."""
    if amount is None and expected is None:
        return None
    return abs((amount or 0) - (expected or 0))


def _difference(f: _F) -> str:
    if f.amount is None and f.expected is None:
        return ""
    return f" (difference {money((f.amount or 0) - (f.expected or 0), f.currency)})"


def _roots(fs: list[_F], rules: Rules) -> dict[int, _F]:
    """finding index -> its root finding, for one staff member's findings in one run."""
    pos = {f.i: n for n, f in enumerate(sorted(fs, key=lambda f: f.order))}
    parent: dict[int, _F | None] = {}
    for x in fs:
        best = None
        for y in fs:
            if y is x or not rules.explains(y.category, x.category):
                continue
            if rules.explains(x.category, y.category) and pos[y.i] > pos[x.i]:
                continue  # they explain each other: the higher-ranked one is the cause
            if best is None or pos[y.i] < pos[best.i]:
                best = y
        parent[x.i] = best
    by_i = {f.i: f for f in fs}
    roots: dict[int, _F] = {}
    for x in fs:
        path, node = [], x
        while parent[node.i] is not None and node.i not in path:
            path.append(node.i)
            node = parent[node.i]
        if node.i in path:  # a circle: rooted at its highest-ranked member
            circle = path[path.index(node.i):]
            node = by_i[min(circle, key=lambda i: pos[i])]
        roots[x.i] = node
    return roots


def _summary(root: _F, others: list[_F], in_copy: list[str]) -> str:
    text = " ".join(root.explanation.split()).rstrip(". ")
    if others:
        n = len(others)
        parts = [f"{f.category}{' on ' + f.wage_type if f.wage_type else ''}{_difference(f)}"
                 for f in others[:SHOWN_CONSEQUENCES]]
        more = f" and {n - SHOWN_CONSEQUENCES} more" if n > SHOWN_CONSEQUENCES else ""
        text += f"; it explains {n} other finding{'s' if n > 1 else ''}: {', '.join(parts)}{more}"
    if in_copy:
        text += f"; {' and '.join(in_copy)} in copy"
    return text + "."


def group_cases(findings: pl.DataFrame, rules: Rules, payroll_area: str, period: str
                ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(findings with `case_id`, cases). Grains: the findings as given (one row per finding,
    same order) plus `case_id`; cases one row per case (GROUPED_SCHEMA), sorted by case_id."""
    ids: list[str | None] = [None] * findings.height
    cases: list[dict] = []
    if findings.height == 0:
        return findings.with_columns(pl.Series("case_id", ids, dtype=pl.String)), pl.DataFrame(schema=GROUPED_SCHEMA)
    has_id = "finding_id" in findings.columns
    by_staff: dict[str | None, list[_F]] = {}
    for i, r in enumerate(findings.iter_rows(named=True)):
        f = _F(i, (rules.rank(r["category"]), pay_order(r["wage_type"]), r["for_period"] or "", r["detector"], i),
               r["category"], r["wage_type"] or None, r["severity"], r["owner"], r["amount_cents"],
               r["expected_cents"], r["currency"], r["explanation"] or "", r["finding_id"] if has_id else None)
        by_staff.setdefault(r["pernr"], []).append(f)
    for pernr, fs in by_staff.items():
        roots = _roots(fs, rules)
        members: dict[str, list[_F]] = {}
        root_of: dict[str, _F] = {}
        for f in fs:
            root = roots[f.i]
            cid = case_id(payroll_area, period, pernr, root.category, root.wage_type)
            ids[f.i] = cid
            members.setdefault(cid, []).append(f)
            if cid not in root_of or root.order < root_of[cid].order:
                root_of[cid] = root
        for cid, group in members.items():
            root = root_of[cid]
            group.sort(key=lambda f: f.order)
            owners = [f.owner for f in group if f.owner]
            owner = root.owner or (owners[0] if owners else None)
            in_copy = sorted(set(owners) - {owner})
            stakes = [(s, f) for f in group if (s := at_stake(f.amount, f.expected)) is not None]
            top = max(stakes, key=lambda sf: sf[0], default=(None, None))  # first of equals: pay order
            cases.append({
                "case_id": cid, "pernr": pernr, "root_cause": root.category, "root_wage_type": root.wage_type,
                "root_finding_id": root.finding_id, "owner": owner, "in_copy": ",".join(in_copy),
                "severity": min((f.severity for f in group), key=lambda s: SEVERITY_RANK.get(s, 99)),
                "n_findings": len(group), "amount_at_stake_cents": top[0],
                "currency": top[1].currency if top[1] is not None else None,
                "summary": _summary(root, [f for f in group if f is not root], in_copy),
            })
    out = findings.with_columns(pl.Series("case_id", ids, dtype=pl.String))
    return out, pl.DataFrame(cases, schema=GROUPED_SCHEMA).sort("case_id")
