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


# The staff member's PA0001 entity valid in the run's month (else the latest record), as the
# run carries it: one row per run and staff member.
_ENTITY = """
    SELECT l.run_id, a.pernr,
           arg_max(a.entity, {'in_month': a.valid_from <= last_day(strptime(r.period || '01', '%Y%m%d')::DATE)
                                           AND a.valid_to >= strptime(r.period || '01', '%Y%m%d')::DATE,
                              'valid_from': a.valid_from, 'valid_to': a.valid_to, 'entity': a.entity}) AS entity
    FROM stg_record_runs l JOIN stg_assignments a ON a.record_key = l.record_key
    JOIN runs r ON r.run_id = l.run_id AND r.version = l.run_version AND r.is_current
    WHERE l.table_name = 'stg_assignments' AND r.run_type = 'FINAL' GROUP BY ALL"""


def exclusions_by(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """Excluded staff by owner and client entity — grain: one row per period x owner x entity,
    in a stable order (period, most staff first, then owner and entity)."""
    return query_frame(con, f"""
        WITH e AS (SELECT period, run_id, pernr, unnest(owners) AS owner FROM exclusions
                   WHERE ? IS NULL OR payroll_area = ?),
        a AS ({_ENTITY})
        SELECT e.period, e.owner, coalesce(a.entity, '?') AS entity, count(DISTINCT e.pernr) AS staff
        FROM e LEFT JOIN a ON a.pernr = e.pernr AND a.run_id = e.run_id GROUP BY ALL
        ORDER BY e.period, staff DESC, e.owner, entity""", [payroll_area, payroll_area])


def time_to_resolution(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """How long hold/review exceptions stayed open before a recheck resolved them, in runs
    and in days (between the first-seen and the resolving run's extraction) — grain: one
    row per period and severity."""
    return query_frame(con, """
        WITH first_res AS (
            SELECT period, identity, min(age_runs) FILTER (status = 'resolved') AS runs_to_resolve,
                   arg_min(run_id, age_runs) FILTER (status = 'resolved') AS resolved_in,
                   any_value(first_seen_run) AS first_seen_run,
                   min(CASE severity WHEN 'hold' THEN 0 WHEN 'review' THEN 1 ELSE 2 END) AS sev
            FROM finding_lifecycle WHERE ? IS NULL OR payroll_area = ? GROUP BY ALL)
        SELECT f.period, CASE f.sev WHEN 0 THEN 'hold' WHEN 1 THEN 'review' ELSE 'info' END AS severity,
               count(*) AS exceptions, count(f.runs_to_resolve) AS resolved_in_month,
               avg(f.runs_to_resolve) AS avg_runs_to_resolve,
               avg(date_diff('day', a.order_extracted_at, b.order_extracted_at)) AS avg_days_to_resolve
        FROM first_res f
        LEFT JOIN runs a ON a.run_id = f.first_seen_run AND a.is_current
        LEFT JOIN runs b ON b.run_id = f.resolved_in AND b.is_current
        GROUP BY ALL ORDER BY f.period, severity""", [payroll_area, payroll_area])


def case_journey(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """Every case of every month: first seen, fixed in which run, days to fix, fixed before
    FINAL, held at FINAL, owner and entity (view case_journey) — grain: one row per case
    per payroll area per period."""
    return query_frame(con, "SELECT * FROM case_journey WHERE ? IS NULL OR payroll_area = ? "
                            "ORDER BY payroll_area, period, case_id", [payroll_area, payroll_area])


def _case_figures(keys: str) -> str:
    # Cases that ask for action (hold or review). Fixed before FINAL counts only cases opened
    # at SIM1/SIM2 in a month whose FINAL is in: what the early routing saved.
    return f"""
        SELECT {keys}, count(*) AS cases,
               count(*) FILTER (opened_early) AS opened_at_sim1_sim2,
               count(*) FILTER (opened_early AND fixed_before_final) AS fixed_before_final,
               count(*) FILTER (opened_early AND fixed_before_final)
                   / nullif(count(*) FILTER (opened_early AND final_in), 0) AS share_fixed_before_final,
               median(days_to_fix) AS median_days_to_fix,
               count(*) FILTER (held_at_final) AS held_at_final
        FROM (SELECT j.*, EXISTS (SELECT 1 FROM runs r WHERE r.is_current AND r.run_type = 'FINAL'
                                  AND r.payroll_area = j.payroll_area AND r.period = j.period) AS final_in
              FROM case_journey j WHERE j.severity IN ('hold', 'review') AND (? IS NULL OR j.payroll_area = ?))
        GROUP BY ALL"""


def case_kpi_monthly(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """Cases asking for action (hold or review), how many were opened at SIM1/SIM2 and fixed
    before FINAL (and that share), median days to fix, cases holding staff at FINAL —
    grain: one row per payroll area per period."""
    return query_frame(con, _case_figures("payroll_area, period") + " ORDER BY payroll_area, period",
                       [payroll_area, payroll_area])


def cases_by(con: duckdb.DuckDBPyConnection, by: str, payroll_area: str | None = None) -> pl.DataFrame:
    """The same case figures per owner or per client entity (`by`: 'owner' | 'entity') —
    grain: one row per payroll area x period x owner (entity), most cases first, then by name."""
    if by not in ("owner", "entity"):
        raise ValueError(f"cases_by: by must be 'owner' or 'entity', not {by!r}")
    return query_frame(con, _case_figures(f"payroll_area, period, coalesce({by}, '?') AS {by}")
                       + f" ORDER BY payroll_area, period, cases DESC, {by}", [payroll_area, payroll_area])
