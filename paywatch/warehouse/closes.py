"""The monthly close: who was excluded at a period's FINAL, recorded once per close."""

from __future__ import annotations

import json

import duckdb
import polars as pl

from paywatch.faults import checkpoint
from paywatch.warehouse.db import fetch_value, transaction
from paywatch.warehouse.queries import query_frame


def final_run_id(con: duckdb.DuckDBPyConnection, payroll_area: str, period: str) -> str | None:
    """The current FINAL run of the area's period — grain: one value (None: not loaded)."""
    return fetch_value(con, "SELECT run_id FROM runs WHERE is_current AND payroll_area = ? AND period = ? "
                            "AND run_type = 'FINAL'", [payroll_area, period])


def exclusions_at_final(con: duckdb.DuckDBPyConnection, payroll_area: str, period: str) -> pl.DataFrame:
    """Staff excluded at the period's FINAL with why and their held net pay — grain: one row
    per excluded staff member, by pernr."""
    return query_frame(con, """
        SELECT e.pernr, array_to_string(e.categories, ', ') AS categories, array_to_string(e.owners, ', ') AS owners,
               e.open_holds, s.paid_cents AS net_pay_cents, s.currency
        FROM exclusions e
        LEFT JOIN mart_staff_run s ON s.run_id = e.run_id AND s.pernr = e.pernr
             AND s.run_version = (SELECT version FROM runs WHERE run_id = e.run_id AND is_current)
        WHERE e.payroll_area = ? AND e.period = ? ORDER BY e.pernr""", [payroll_area, period])


def append_close(con: duckdb.DuckDBPyConnection, payroll_area: str, period: str, final_run: str,
                 excluded: pl.DataFrame, policy: dict) -> int:
    """Append one close (grain of `monthly_closes`: one row per close; of `close_exclusions`:
    one row per excluded staff member per close) in one transaction; the new close id.
    `excluded` is `exclusions_at_final` with `advance_recommended` added."""
    with transaction(con):
        close_id = int(fetch_value(con, "SELECT coalesce(max(close_id), 0) + 1 FROM monthly_closes") or 1)
        con.execute("INSERT INTO monthly_closes (close_id, payroll_area, period, final_run_id, excluded_staff, "
                    "advances_recommended, policy) VALUES (?,?,?,?,?,?,?)",
                    [close_id, payroll_area, period, final_run, excluded.height,
                     int(excluded["advance_recommended"].sum()), json.dumps(policy, sort_keys=True)])
        if excluded.height:
            rows = excluded.with_columns(pl.lit(close_id, dtype=pl.Int64).alias("close_id"))
            con.register("_close", rows)
            con.execute("INSERT INTO close_exclusions SELECT close_id, pernr, categories, owners, open_holds, "
                        "net_pay_cents, currency, advance_recommended FROM _close")
            con.unregister("_close")
        checkpoint("close-recorded")
    return close_id


def excluded_cases_at_final(con: duckdb.DuckDBPyConnection, payroll_area: str, period: str) -> pl.DataFrame:
    """The cases that hold staff at the period's FINAL: a case with at least one hold finding
    that no reviewer released, marked false positive or expected — grain: one row per case
    of the FINAL run (findings stored before cases had a case id are left out here: the
    staff member is still in `exclusions_at_final`)."""
    return query_frame(con, """
        WITH open_holds AS (
            SELECT DISTINCT run_id, case_id FROM findings_decided
            WHERE run_type = 'FINAL' AND severity = 'hold' AND case_id IS NOT NULL
              AND coalesce(decision, '') NOT IN ('release', 'false_positive', 'expected'))
        SELECT c.case_id, c.pernr, c.root_cause, c.owner, c.in_copy, c.days_open, c.first_seen_run,
               c.n_findings, c.amount_at_stake_cents, c.currency
        FROM current_cases c JOIN open_holds h ON h.run_id = c.run_id AND h.case_id = c.case_id
        WHERE c.payroll_area = ? AND c.period = ? AND c.run_type = 'FINAL'
        ORDER BY c.pernr, c.case_id""", [payroll_area, period])


def advance_recommendations(con: duckdb.DuckDBPyConnection, payroll_area: str, before_period: str) -> pl.DataFrame:
    """Salary advances recommended by the latest close of each month before `before_period`
    (the close recorded them; the amount is the net pay held at that FINAL) — grain: one row
    per staff member per closed month, with the FINAL's place in the run order."""
    return query_frame(con, """
        WITH latest AS (SELECT arg_max(close_id, close_id) AS close_id FROM monthly_closes
                        WHERE payroll_area = ? AND period < ? GROUP BY period)
        SELECT m.period, x.pernr, x.net_pay_cents AS recommended_cents, x.currency, m.final_run_id,
               r.order_extracted_at AS final_at
        FROM latest l JOIN monthly_closes m USING (close_id)
        JOIN close_exclusions x ON x.close_id = m.close_id
        LEFT JOIN runs r ON r.run_id = m.final_run_id AND r.is_current
        WHERE x.advance_recommended ORDER BY m.period, x.pernr""", [payroll_area, before_period])


def advance_ledger(con: duckdb.DuckDBPyConnection, payroll_area: str, up_to_period: str, pernrs: list[str],
                   advance_wage_types: list[str], recovery_wage_types: list[str]) -> pl.DataFrame:
    """Salary advances paid (advance wage types, any run) and recovered (recovery wage types,
    FINAL runs only: simulations pay nothing, as detector PW140 counts them) for the given
    staff up to and including `up_to_period`, current run versions — grain: one row per run,
    staff member and kind ('advance' | 'recovery'); `cents` is positive for both kinds."""
    if not pernrs:
        return pl.DataFrame(schema={"pernr": pl.String, "run_id": pl.String, "run_type": pl.String,
                                    "period": pl.String, "order_extracted_at": pl.Datetime, "kind": pl.String,
                                    "cents": pl.Int64, "currency": pl.String})
    return query_frame(con, """
        SELECT l.pernr, r.run_id, r.run_type, r.period, r.order_extracted_at,
               CASE WHEN list_contains(?, l.wage_type) THEN 'advance' ELSE 'recovery' END AS kind,
               sum(abs(l.amount_cents))::BIGINT AS cents, any_value(l.currency) AS currency
        FROM mart_pay_lines l JOIN runs r ON r.run_id = l.run_id AND r.version = l.run_version AND r.is_current
        WHERE r.payroll_area = ? AND r.period <= ? AND list_contains(?, l.pernr)
          AND (list_contains(?, l.wage_type) OR (list_contains(?, l.wage_type) AND r.run_type = 'FINAL'))
        GROUP BY ALL ORDER BY l.pernr, r.period, r.order_extracted_at, r.run_id, kind""",
                       [advance_wage_types, payroll_area, up_to_period, pernrs, advance_wage_types, recovery_wage_types])


def staff_paid_at_finals(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """Staff with pay lines in each current FINAL run — grain: one row per payroll area per period."""
    return query_frame(con, """
        SELECT r.payroll_area, r.period, count(s.pernr) AS staff_paid
        FROM runs r LEFT JOIN mart_staff_run s ON s.run_id = r.run_id AND s.run_version = r.version
        WHERE r.is_current AND r.run_type = 'FINAL' AND (? IS NULL OR r.payroll_area = ?)
        GROUP BY ALL ORDER BY r.payroll_area, r.period""", [payroll_area, payroll_area])
