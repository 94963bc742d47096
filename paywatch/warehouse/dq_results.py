"""Data-quality results read back across runs (the Finance report's trend)."""

from __future__ import annotations

import duckdb
import polars as pl

from paywatch.warehouse.queries import query_frame

_HISTORY_SQL = """
        WITH ordered AS (
            SELECT run_id, version, period, run_type,
                   row_number() OVER (ORDER BY period, order_extracted_at, run_id) AS pos
            FROM runs WHERE payroll_area = ? AND is_current),
        upto AS (SELECT * FROM ordered WHERE pos <= (SELECT pos FROM ordered WHERE run_id = ?)
                 ORDER BY pos DESC LIMIT ?),
        latest AS (
            SELECT run_id, run_version, config_version, status,
                   row_number() OVER (PARTITION BY run_id, run_version ORDER BY verified_at DESC) AS rn
            FROM verifications)
        SELECT u.pos, u.run_id, u.period, u.run_type, l.status, d.check_name, d.severity, d.success,
               d.unexpected_count, d.staff_affected
        FROM upto u
        JOIN latest l ON l.run_id = u.run_id AND l.run_version = u.version AND l.rn = 1
        JOIN dq_results d ON d.run_id = u.run_id AND d.run_version = u.version
             AND coalesce(d.config_version, l.config_version) = l.config_version
        ORDER BY u.pos, d.check_name
"""


def check_history(con: duckdb.DuckDBPyConnection, payroll_area: str, run_id: str, n: int) -> pl.DataFrame:
    """Data-quality results of the area's current runs up to `run_id` (contract order; at
    most `n` runs), each from its latest verification — grain: one row per run per check;
    `pos` = the run's position in the area's history."""
    return query_frame(con, _HISTORY_SQL, [payroll_area, run_id, n])
