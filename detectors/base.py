"""Shared shapes of detection: the inputs a detector sees and the finding rows it returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Mapping

import polars as pl

from detectors.config import SEVERITIES, Key, Params, params_for
from detectors.scoring import CERTAIN
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


LINE_SCHEMA = {"pernr": pl.String, "for_period": pl.String, "in_period": pl.String, "wage_type": pl.String,
               "amount_cents": pl.Int64, "currency": pl.String, "quantity": pl.Decimal(38, 2)}
RUN_SCHEMA = {"run_id": pl.String, "version": pl.Int64, "payroll_area": pl.String, "period": pl.String,
              "run_type": pl.String, "pay_date": pl.Date, "extracted_at": pl.Datetime}


@dataclass(frozen=True)
class History:
    """What detectors read of the payroll area's past (built by paywatch.pipeline).

    runs: earlier runs of the area in contract order (RUN_SCHEMA). final_lines: pay lines of
    the earlier FINAL runs of the look-back window, with `run_id`. offcycle_lines: the same for
    the earlier OFFCYCLE runs (advances paid between regular runs). final_md: master data as
    carried by the earlier FINALs the retro check needs (run_id -> same keys as
    DetectionInput.md), for the staff it needs. pay_date and extracted_at: this run's.
    period_lines: pay lines of the earlier regular runs of this run's own period (SIM1..FINAL;
    what the month looked like at its earlier rehearsals), with `run_id`; empty when none.
    final_digests: the digest of each earlier FINAL's rows in final_lines
    (models/cache.py `run_digests`) when the loader computed it once per delivery (a warm
    worker's month reads the same FINALs); None: detection computes it. A history cut to
    some staff (partition.split) has other rows, and None.
    """

    runs: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=RUN_SCHEMA))
    final_lines: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema={"run_id": pl.String,
                                                                                   **LINE_SCHEMA}))
    offcycle_lines: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema={"run_id": pl.String,
                                                                                      **LINE_SCHEMA}))
    final_md: Mapping[str, dict[str, pl.DataFrame]] = field(default_factory=dict)
    pay_date: date | None = None
    extracted_at: str = ""
    period_lines: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema={"run_id": pl.String,
                                                                                    **LINE_SCHEMA}))
    final_digests: Mapping[str, str] | None = None


@dataclass
class DetectionInput:
    """Everything a detector may read, as frames with staging column names.

    lines: this run's pay lines (pernr, for_period, in_period, wage_type, amount_cents,
    currency, quantity). md: master data as carried by this run (actions, assignments,
    basic_pay, bank_details, family). ref: reference tables (pay_scale, post_adjustment,
    rates, wage_types). history: earlier runs of the payroll area (`History`). models: where
    fitted models are kept between runs (detectors/models/cache.py `ModelCache`; None = every
    model is fitted again — the findings are the same either way).
    """

    meta: RunMeta
    lines: pl.DataFrame
    md: dict[str, pl.DataFrame]
    ref: dict[str, pl.DataFrame]
    history: History = field(default_factory=History)
    models: Any = None


@dataclass(frozen=True)
class Detector:
    """A rule or model: stable code, name, the categories it raises, its function and its
    declared configuration keys (defaults in defaults.toml)."""

    code: str
    name: str
    categories: tuple[str, ...]
    fn: Callable[..., pl.DataFrame]  # (ctx, params: Params) -> findings
    kind: str = "rule"  # rule | model
    description: str = ""
    scope: str = "staff"  # staff: each staff member on their own data | area: needs the whole population
    config: tuple[Key, ...] = ()

    def params(self, section: Mapping[str, Any]) -> Params:
        """A section of the configuration, checked against the declared keys."""
        return params_for(self.code, self.config, section)

    def run(self, ctx, params: Params | Mapping[str, Any]) -> pl.DataFrame:
        """Findings of this detector on a prepared run (`params` checked when a plain mapping)."""
        return self.fn(ctx, params if isinstance(params, Params) else self.params(params))


def finding(ctx, params: Params, pernr: str, category: str, explanation: str, *, owner: str,
            wage_type: str | None = None, for_period: str | None = None, amount_cents: int | None = None,
            expected_cents: int | None = None, currency: str | None = None, score: float = CERTAIN,
            evidence: dict | None = None, severity: str | None = None) -> dict:
    """One finding row: detector code from `params`, period the run's unless given, severity
    `params.severity` unless given (detectors with one severity per category pass it)."""
    return {"pernr": pernr, "detector": params.code, "category": category,
            "severity": severity if severity is not None else params.severity, "owner": owner,
            "wage_type": wage_type, "for_period": for_period if for_period is not None else ctx.meta.period,
            "amount_cents": amount_cents, "expected_cents": expected_cents, "currency": currency, "score": score,
            "explanation": explanation, "evidence": evidence or {}}
