"""The held-staff KPI and the monthly review figures, read from the lifecycle views."""

from __future__ import annotations

import duckdb
import polars as pl

from paywatch.warehouse.queries import query_frame


def kpi_monthly(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """Excluded staff, 12-month average, 2018 baseline and target (kpi_monthly view) —
    grain: one row per payroll area per period."""
    if payroll_area is None:
        return query_frame(con, "SELECT * FROM kpi_monthly")
    return query_frame(con, "SELECT * FROM kpi_monthly WHERE payroll_area = ?", [payroll_area])


def rule_precision(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Exceptions (finding identities) confirmed vs marked false positive by reviewers —
    grain: one row per detector per period with such a decision."""
    return query_frame(con, """
        SELECT detector, period, count(DISTINCT identity) FILTER (decision = 'confirm') AS confirmed,
               count(DISTINCT identity) FILTER (decision = 'false_positive') AS false_positives,
               count(DISTINCT identity) AS exceptions,
               confirmed / nullif(confirmed + false_positives, 0) AS precision
        FROM findings_decided GROUP BY ALL HAVING confirmed + false_positives > 0 ORDER BY period, detector""")


def repeat_offenders(con: duckdb.DuckDBPyConnection, min_months: int = 2) -> pl.DataFrame:
    """Staff excluded in at least `min_months` months — grain: one row per staff member."""
    return query_frame(con, "SELECT pernr, count(DISTINCT period) AS months_excluded, "
                            "list(DISTINCT period ORDER BY period) AS periods FROM exclusions GROUP BY pernr "
                            "HAVING count(DISTINCT period) >= ? ORDER BY months_excluded DESC, pernr", [min_months])


def exclusions_by(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Excluded staff by owner and client entity — grain: one row per period x owner x entity."""
    return query_frame(con, """
        WITH e AS (SELECT period, run_id, pernr, unnest(owners) AS owner FROM exclusions),
        a AS (SELECT s.pernr, s.entity, l.run_id FROM stg_assignments s
              JOIN stg_record_runs l ON l.record_key = s.record_key AND l.table_name = 'stg_assignments')
        SELECT e.period, e.owner, coalesce(any_value(a.entity), '?') AS entity, count(DISTINCT e.pernr) AS staff
        FROM e LEFT JOIN a ON a.pernr = e.pernr AND a.run_id = e.run_id GROUP BY e.period, e.owner, a.entity
        ORDER BY e.period, staff DESC""")


def time_to_resolution(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """How many runs hold/review exceptions stayed open before a recheck resolved them —
    grain: one row per period and severity."""
    return query_frame(con, """
        WITH first_res AS (
            SELECT period, identity, min(age_runs) FILTER (status = 'resolved') AS runs_to_resolve,
                   min(CASE severity WHEN 'hold' THEN 0 WHEN 'review' THEN 1 ELSE 2 END) AS sev
            FROM finding_lifecycle GROUP BY ALL)
        SELECT period, CASE sev WHEN 0 THEN 'hold' WHEN 1 THEN 'review' ELSE 'info' END AS severity,
               count(*) AS exceptions, count(runs_to_resolve) AS resolved_in_month,
               avg(runs_to_resolve) AS avg_runs_to_resolve
        FROM first_res GROUP BY ALL ORDER BY period, severity""")
