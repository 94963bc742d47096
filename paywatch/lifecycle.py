"""Review decisions, their effect on triage, the monthly close and the held-staff KPI.

Decisions are an append-only audit trail (who, when, why). Lifecycle, exclusions and the
KPI are views (paywatch/warehouse/views.py) over findings + decisions, so nothing here
ever edits a finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from paywatch.settings import KpiTargets
from paywatch.warehouse import closes, decisions
from paywatch.warehouse.decisions import decided
# The KPI reads live in the warehouse; re-exported here, where the notebooks and the
# monthly summary have always found them.
from paywatch.warehouse.kpi import (  # noqa: F401
    exclusions_by,
    kpi_monthly as kpi,
    repeat_offenders,
    rule_precision,
    time_to_resolution,
)

ACTIONS = ("assign", "release", "confirm", "false_positive", "expected", "reopen")
# what a decision does to the finding's severity in reports (held staff follow the views)
DECIDED_SEVERITY = {"release": "info", "false_positive": "info", "expected": "info"}
ACTION_TEXT = {"release": "Released", "false_positive": "Marked a false positive", "expected": "Marked expected",
               "confirm": "Hold confirmed", "assign": "Assigned", "reopen": "Reopened"}


class DecisionError(ValueError):
    """A decision that cannot be recorded (unknown finding, bad action, missing expiry)."""


def record_decision(con: duckdb.DuckDBPyConnection, *, action: str, actor: str, reason: str,
                    finding_id: str | None = None, run_id: str | None = None, pernr: str | None = None,
                    detector: str | None = None, wage_type: str | None = None, for_period: str | None = None,
                    expires_on: date | None = None, assignee: str | None = None) -> int:
    """Append one decision; returns its id. A finding id fills in the identity."""
    if action not in ACTIONS:
        raise DecisionError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if not actor or not reason:
        raise DecisionError("a decision needs who (actor) and why (reason)")
    if action == "assign" and not assignee:
        raise DecisionError("'assign' needs --assignee")
    if action == "expected" and expires_on is None:
        raise DecisionError("'expected' needs an expiry date (--expires YYYY-MM-DD)")
    category = None
    if finding_id:
        row = decisions.finding_identity(con, finding_id)
        if row is None:
            raise DecisionError(f"no finding {finding_id}")
        run_id, pernr, detector, wage_type, for_period, category = row
    if not (pernr and detector):
        raise DecisionError("name a finding (--finding) or a staff member and detector (--pernr, --detector)")
    return decisions.append_decision(
        con, finding_id=finding_id, run_id=run_id, pernr=pernr, detector=detector, category=category,
        wage_type=wage_type, for_period=for_period, action=action, assignee=assignee, actor=actor, reason=reason,
        expires_on=expires_on)


def apply_decisions(con: duckdb.DuckDBPyConnection, run_id: str, findings: pl.DataFrame) -> pl.DataFrame:
    """Findings as reports show them: a release, false positive or 'expected' makes the
    finding info, and the explanation says who decided and why."""
    if findings.height == 0 or "finding_id" not in findings.columns:
        return findings
    d = decided(con, run_id).filter(pl.col("decision").is_not_null())
    if d.height == 0:
        return findings
    f = findings.join(d, on="finding_id", how="left")
    note = pl.format(" {} by {} on {}: {}.", pl.col("decision").replace_strict(ACTION_TEXT, default=""),
                     pl.col("decided_by"), pl.col("decided_at").dt.date(), pl.col("decision_reason"))
    return f.with_columns(
        pl.col("decision").replace_strict(DECIDED_SEVERITY, default=None).fill_null(pl.col("severity")).alias("severity"),
        pl.when(pl.col("decision").is_not_null()).then(pl.col("explanation") + note)
        .otherwise(pl.col("explanation")).alias("explanation"),
    ).select(findings.columns)


# ------------------------------------------------------------------------------ close and KPI

@dataclass
class CloseResult:
    close_id: int
    period: str
    excluded: pl.DataFrame  # one row per excluded staff member
    advances_recommended: int


def close_period(con: duckdb.DuckDBPyConnection, payroll_area: str, period: str, policy: dict,
                 record: bool = True) -> CloseResult:
    """Record who was excluded at the period's FINAL, why, and whether a salary advance is
    recommended (policy: `advance_min_net_cents` — recommend when the held net pay is at
    least this; `advance_enabled`). `record=False` (a dry close, on a reader) records nothing:
    close_id 0."""
    final = closes.final_run_id(con, payroll_area, period)
    if final is None:
        raise DecisionError(f"no FINAL run of {payroll_area} {period} in the warehouse")
    ex = closes.exclusions_at_final(con, payroll_area, period)
    enabled, floor = bool(policy.get("advance_enabled", True)), int(policy.get("advance_min_net_cents", 50_000))
    ex = ex.with_columns((pl.lit(enabled) & (pl.col("net_pay_cents").fill_null(0) >= floor)).alias("advance_recommended"))
    close_id = closes.append_close(con, payroll_area, period, final, ex, policy) if record else 0
    return CloseResult(close_id, period, ex, int(ex["advance_recommended"].sum()))


def kpi_chart(frame: pl.DataFrame, path: Path, targets: KpiTargets, title: str = "Staff held at FINAL") -> Path:
    """Monthly excluded staff vs the 2018 baseline and the target (`[kpi]`; pass
    `targets.scaled(staff)` for a smaller area), as a PNG."""
    baseline, target = targets.baseline, targets.target
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    periods = [f"{p[:4]}-{p[4:]}" for p in frame["period"].to_list()]
    for col, label, style in (("excluded_staff", "excluded at FINAL", "o-"), ("avg_12m", "12-month average", "s--"),
                              ("baseline_excluded", "late-detection baseline", "x:")):
        if col in frame.columns:
            ax.plot(periods, frame[col].to_list(), style, label=label)
    ax.axhline(baseline, color="grey", lw=1, ls="-.", label=f"2018 average ({baseline:g})")
    ax.axhline(target, color="green", lw=1.5, label=f"target ({target:g})")
    ax.set_ylabel("staff")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper right")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
