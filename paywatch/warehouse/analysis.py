"""Named read queries behind the investigation and KPI notebooks (paywatch.investigate).

Amounts stay integer cents here; the notebooks' functions turn them into decimals.
"""

from __future__ import annotations

import duckdb
import polars as pl

from paywatch.warehouse.fetch import fetch_one, fetch_value
from paywatch.warehouse.queries import query_frame

# A finding whose hold no reviewer has lifted (findings_decided carries the latest decision).
OPEN_HOLD = "severity = 'hold' AND coalesce(decision, '') NOT IN ('release', 'false_positive', 'expected')"


def runs_present(con: duckdb.DuckDBPyConnection) -> tuple[set[str], set[str]]:
    """(run ids in the warehouse, those of them verified in their current version)."""
    present = {r[0] for r in con.execute("SELECT DISTINCT run_id FROM runs").fetchall()}
    verified = {r[0] for r in con.execute(
        "SELECT DISTINCT v.run_id FROM verifications v JOIN runs r ON r.run_id = v.run_id "
        "AND r.version = v.run_version AND r.is_current").fetchall()}
    return present, verified


def wage_type_texts(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Latest text and class of every wage type. Grain: one row per wage type."""
    return query_frame(con, "SELECT wage_type, arg_max(wage_type_text, record_key) AS wage_type_text, "
                       "arg_max(wage_class, record_key) AS wage_class FROM stg_wage_types GROUP BY wage_type")


def runs_overview(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Current runs in order with their exceptions and staff on hold. Grain: one row per run."""
    return query_frame(con, f"""
        SELECT r.run_id, r.payroll_area, r.period, r.run_type, r.pay_date,
               count(f.finding_id) AS exceptions, count(DISTINCT f.pernr) AS staff_with_exceptions,
               count(DISTINCT f.pernr) FILTER ({OPEN_HOLD}) AS staff_on_hold
        FROM runs r LEFT JOIN findings_decided f ON f.run_id = r.run_id
        WHERE r.is_current
        GROUP BY r.run_id, r.payroll_area, r.period, r.run_type, r.pay_date, r.order_extracted_at
        ORDER BY r.payroll_area, r.period, r.order_extracted_at, r.run_id""")


def staff_with_exceptions(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """Staff of a run with exceptions, open holds first. Grain: one row per staff member."""
    return query_frame(con, f"""
        SELECT pernr, count(*) FILTER ({OPEN_HOLD}) AS open_holds, count(*) AS exceptions,
               list(DISTINCT detector ORDER BY detector) AS detectors,
               list(DISTINCT category ORDER BY category) AS categories
        FROM findings_decided WHERE run_id = ? AND pernr IS NOT NULL
        GROUP BY pernr ORDER BY open_holds DESC, exceptions DESC, pernr""", [run_id])


def latest_run_to_investigate(con: duckdb.DuckDBPyConnection) -> str | None:
    """The latest FINAL run with exceptions, else the latest run with exceptions, else the
    latest run (None: no run)."""
    return fetch_value(con, """
        SELECT r.run_id FROM runs r
        WHERE r.is_current
        ORDER BY EXISTS (SELECT 1 FROM current_findings f WHERE f.run_id = r.run_id AND f.pernr IS NOT NULL) DESC,
                 (r.run_type = 'FINAL') DESC, r.period DESC, r.order_extracted_at DESC, r.run_id DESC
        LIMIT 1""")


def staff_findings(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """The staff member's findings in the run with the latest decision, amounts in cents.
    Grain: one row per finding, holds first."""
    return query_frame(con, """
        SELECT finding_id, detector, category, severity, owner, wage_type, for_period, amount_cents,
               expected_cents, amount_cents - expected_cents AS difference_cents, currency, explanation,
               first_seen_run, decision, decided_by, decision_reason, decided_at
        FROM findings_decided WHERE run_id = ? AND pernr = ?
        ORDER BY CASE severity WHEN 'hold' THEN 0 WHEN 'review' THEN 1 ELSE 2 END, detector, wage_type, for_period""",
                  [run_id, pernr])


def final_pay_by_period(con: duckdb.DuckDBPyConnection, pernr: str, payroll_area: str | None = None) -> pl.DataFrame:
    """Current-month lines of every current FINAL run, in cents. Grain: one row per period
    and wage type (amounts summed should a wage type be written twice)."""
    area = "AND r.payroll_area = ?" if payroll_area else ""
    return query_frame(con, f"""
        SELECT r.period, any_value(p.run_id) AS run_id, p.wage_type, sum(p.amount_cents) AS amount_cents,
               CASE WHEN count(DISTINCT p.currency) = 1 THEN min(p.currency) END AS currency, count(*) AS lines
        FROM mart_pay_lines p JOIN runs r ON r.run_id = p.run_id AND r.version = p.run_version AND r.is_current
        WHERE r.run_type = 'FINAL' AND p.pernr = ? AND p.for_period = p.in_period {area}
        GROUP BY r.period, p.wage_type""", [pernr, payroll_area] if payroll_area else [pernr])


def finding_exists(con: duckdb.DuckDBPyConnection, finding_id: str) -> bool:
    return fetch_one(con, "SELECT 1 FROM findings WHERE finding_id = ?", [finding_id]) is not None


def decisions_on_staff(con: duckdb.DuckDBPyConnection, pernr: str, run_id: str | None = None) -> pl.DataFrame:
    """Reviewers' decisions on the staff member, newest first; with `run_id` only those
    taken in that run. Grain: one row per decision."""
    where, params = "pernr = ?", [pernr]
    if run_id is not None:
        where, params = where + " AND run_id = ?", params + [run_id]
    return query_frame(con, "SELECT decision_id, decided_at, actor, action, reason, assignee, expires_on, run_id, "
                       f"finding_id, detector, category, wage_type, for_period FROM decisions WHERE {where} "
                       "ORDER BY decided_at DESC, decision_id DESC", params)


def staff_paid_at_last_final(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> int:
    """Staff with pay lines in the latest FINAL run (of the area, or of each area summed)."""
    area = "AND payroll_area = ?" if payroll_area else ""
    return int(fetch_value(con, f"""
        WITH last AS (SELECT arg_max(run_id, period) AS run_id, arg_max(version, period) AS version FROM runs
                      WHERE is_current AND run_type = 'FINAL' {area} GROUP BY payroll_area)
        SELECT count(*) FROM mart_staff_run s JOIN last l ON l.run_id = s.run_id AND l.version = s.run_version""",
                           [payroll_area] if payroll_area else None) or 0)
