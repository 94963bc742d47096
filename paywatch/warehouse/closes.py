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
