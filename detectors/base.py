"""Shared shapes of detection: the inputs a detector sees and the finding rows it returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import polars as pl

SEVERITIES = ("hold", "review", "info")
SEVERITY_RANK = {"hold": 0, "review": 1, "info": 2}

FINDING_SCHEMA = {
    "pernr": pl.String,
    "detector": pl.String,
    "category": pl.String,
    "severity": pl.String,
    "owner": pl.String,
    "wage_type": pl.String,
    "for_period": pl.String,
    "amount_cents": pl.Int64,
    "expected_cents": pl.Int64,
    "currency": pl.String,
    "score": pl.Float64,
    "explanation": pl.String,
    "evidence": pl.String,  # JSON object: the numbers that drove the finding
}


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDING_SCHEMA)


def findings_frame(rows: list[dict]) -> pl.DataFrame:
    """Finding rows (dicts with FINDING_SCHEMA keys; evidence as a dict) -> frame."""
    if not rows:
        return empty_findings()
    norm = [{k: (json.dumps(r.get(k) or {}, sort_keys=True, default=str) if k == "evidence" else r.get(k))
             for k in FINDING_SCHEMA} for r in rows]
    return pl.DataFrame(norm, schema=FINDING_SCHEMA)


@dataclass(frozen=True)
class RunMeta:
    run_id: str
    payroll_area: str
    period: str
    run_type: str


@dataclass
class DetectionInput:
    """Everything a detector may read, as frames with staging column names.

    lines: this run's pay lines (pernr, for_period, in_period, wage_type, amount_cents,
    currency, quantity). md: master data as carried by this run (actions, assignments,
    basic_pay, bank_details, family). ref: reference tables (pay_scale, post_adjustment,
    rates, wage_types). history: earlier runs of the payroll area, in contract order
    (see `paywatch.warehouse.queries`): `final_lines` (lines of earlier FINAL runs with
    `run_id`, `in_period`), `prev_md` (master data of the latest earlier FINAL, same keys as
    md), `prev_final` (RunMeta or None), and `runs` (earlier runs).
    """

    meta: RunMeta
    lines: pl.DataFrame
    md: dict[str, pl.DataFrame]
    ref: dict[str, pl.DataFrame]
    history: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Detector:
    """A rule or model: stable code, name, the categories it raises, and its function."""

    code: str
    name: str
    categories: tuple[str, ...]
    run: Callable[..., pl.DataFrame]  # (ctx, params) -> findings
    kind: str = "rule"  # rule | model
    description: str = ""
    scope: str = "staff"  # staff: each staff member on their own data | area: needs the whole population


def money(cents: int | None, currency: str | None = "") -> str:
    """Amount for explanations: 1,234.56 CHF."""
    if cents is None:
        return "none"
    sign = "-" if cents < 0 else ""
    c = abs(int(cents))
    return f"{sign}{c // 100:,}.{c % 100:02d}{(' ' + currency) if currency else ''}"
