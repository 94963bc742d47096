"""Review decisions, their effect on triage, the monthly close and the held-staff KPI.

Decisions are an append-only audit trail (who, when, why). Lifecycle, exclusions and the
KPI are views (paywatch/warehouse/views.py) over findings + decisions, so nothing here
ever edits a finding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from paywatch.warehouse.db import fetch_one, fetch_value, transaction
from paywatch.warehouse.queries import _frame

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
        row = fetch_one(con, "SELECT run_id, pernr, detector, wage_type, for_period, category FROM findings "
                             "WHERE finding_id = ?", [finding_id])
        if row is None:
            raise DecisionError(f"no finding {finding_id}")
        run_id, pernr, detector, wage_type, for_period, category = row
    if not (pernr and detector):
        raise DecisionError("name a finding (--finding) or a staff member and detector (--pernr, --detector)")
    with transaction(con):
        new_id = (fetch_value(con, "SELECT coalesce(max(decision_id), 0) + 1 FROM decisions") or 1)
        con.execute(
            "INSERT INTO decisions (decision_id, finding_id, run_id, pernr, detector, category, wage_type, for_period, "
            "action, assignee, actor, reason, expires_on) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [new_id, finding_id, run_id, pernr, detector, category, wage_type, for_period, action, assignee,
             actor, reason, expires_on])
    return int(new_id)


def decided(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """The run's findings with their latest applicable decision. Grain: one row per finding."""
    return _frame(con, "SELECT finding_id, decision, decided_by, decision_reason, decided_at, decision_expires_on "
                       "FROM findings_decided WHERE run_id = ?", [run_id])


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


def close_period(con: duckdb.DuckDBPyConnection, payroll_area: str, period: str, policy: dict) -> CloseResult:
    """Record who was excluded at the period's FINAL, why, and whether a salary advance is
    recommended (policy: `advance_min_net_cents` — recommend when the held net pay is at
    least this; `advance_enabled`)."""
    final = fetch_value(con, "SELECT run_id FROM runs WHERE is_current AND payroll_area = ? AND period = ? "
                             "AND run_type = 'FINAL'", [payroll_area, period])
    if final is None:
        raise DecisionError(f"no FINAL run of {payroll_area} {period} in the warehouse")
    ex = _frame(con, """
        SELECT e.pernr, array_to_string(e.categories, ', ') AS categories, array_to_string(e.owners, ', ') AS owners,
               e.open_holds, s.paid_cents AS net_pay_cents, s.currency
        FROM exclusions e
        LEFT JOIN mart_staff_run s ON s.run_id = e.run_id AND s.pernr = e.pernr
             AND s.run_version = (SELECT version FROM runs WHERE run_id = e.run_id AND is_current)
        WHERE e.payroll_area = ? AND e.period = ? ORDER BY e.pernr""", [payroll_area, period])
    enabled, floor = bool(policy.get("advance_enabled", True)), int(policy.get("advance_min_net_cents", 50_000))
    ex = ex.with_columns((pl.lit(enabled) & (pl.col("net_pay_cents").fill_null(0) >= floor)).alias("advance_recommended"))
    with transaction(con):
        close_id = int(fetch_value(con, "SELECT coalesce(max(close_id), 0) + 1 FROM monthly_closes") or 1)
        con.execute("INSERT INTO monthly_closes (close_id, payroll_area, period, final_run_id, excluded_staff, "
                    "advances_recommended, policy) VALUES (?,?,?,?,?,?,?)",
                    [close_id, payroll_area, period, final, ex.height, int(ex["advance_recommended"].sum()),
                     json.dumps(policy, sort_keys=True)])
        if ex.height:
            rows = ex.with_columns(pl.lit(close_id, dtype=pl.Int64).alias("close_id"))
            con.register("_close", rows)
            con.execute("INSERT INTO close_exclusions SELECT close_id, pernr, categories, owners, open_holds, "
                        "net_pay_cents, currency, advance_recommended FROM _close")
            con.unregister("_close")
    return CloseResult(close_id, period, ex, int(ex["advance_recommended"].sum()))


def kpi(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """Monthly excluded staff, 12-month average, 2018 baseline and target (kpi_monthly view)."""
    if payroll_area is None:
        return _frame(con, "SELECT * FROM kpi_monthly")
    return _frame(con, "SELECT * FROM kpi_monthly WHERE payroll_area = ?", [payroll_area])


def rule_precision(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per detector and month: exceptions (finding identities) confirmed vs marked false
    positive by reviewers. Grain: one row per detector per period with such a decision."""
    return _frame(con, """
        SELECT detector, period, count(DISTINCT identity) FILTER (decision = 'confirm') AS confirmed,
               count(DISTINCT identity) FILTER (decision = 'false_positive') AS false_positives,
               count(DISTINCT identity) AS exceptions,
               confirmed / nullif(confirmed + false_positives, 0) AS precision
        FROM findings_decided GROUP BY ALL HAVING confirmed + false_positives > 0 ORDER BY period, detector""")


def repeat_offenders(con: duckdb.DuckDBPyConnection, min_months: int = 2) -> pl.DataFrame:
    """Staff excluded in several months. Grain: one row per staff member."""
    return _frame(con, "SELECT pernr, count(DISTINCT period) AS months_excluded, list(DISTINCT period ORDER BY period) "
                       "AS periods FROM exclusions GROUP BY pernr HAVING count(DISTINCT period) >= ? "
                       "ORDER BY months_excluded DESC, pernr", [min_months])


def exclusions_by(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Excluded staff per month by owner and client entity. Grain: period x owner x entity."""
    return _frame(con, """
        WITH e AS (SELECT period, run_id, pernr, unnest(owners) AS owner FROM exclusions),
        a AS (SELECT s.pernr, s.entity, l.run_id FROM stg_assignments s
              JOIN stg_record_runs l ON l.record_key = s.record_key AND l.table_name = 'stg_assignments')
        SELECT e.period, e.owner, coalesce(any_value(a.entity), '?') AS entity, count(DISTINCT e.pernr) AS staff
        FROM e LEFT JOIN a ON a.pernr = e.pernr AND a.run_id = e.run_id GROUP BY e.period, e.owner, a.entity
        ORDER BY e.period, staff DESC""")


def time_to_resolution(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """How many runs hold/review exceptions stayed open before a recheck resolved them.
    Grain: one row per period and severity."""
    return _frame(con, """
        WITH first_res AS (
            SELECT period, identity, min(age_runs) FILTER (status = 'resolved') AS runs_to_resolve,
                   min(CASE severity WHEN 'hold' THEN 0 WHEN 'review' THEN 1 ELSE 2 END) AS sev
            FROM finding_lifecycle GROUP BY ALL)
        SELECT period, CASE sev WHEN 0 THEN 'hold' WHEN 1 THEN 'review' ELSE 'info' END AS severity,
               count(*) AS exceptions, count(runs_to_resolve) AS resolved_in_month,
               avg(runs_to_resolve) AS avg_runs_to_resolve
        FROM first_res GROUP BY ALL ORDER BY period, severity""")


def kpi_chart(frame: pl.DataFrame, path: Path, title: str = "Staff held at FINAL",
              baseline: float = 295, target: float = 120) -> Path:
    """Monthly excluded staff vs the 2018 baseline (295) and the target (120), as a PNG
    (pass scaled lines for a smaller simulated area)."""
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
