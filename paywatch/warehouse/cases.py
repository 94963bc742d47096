"""Cases in the warehouse: what GROUP_CASES stores and what reports read (docs/design.md).

Grains: `cases` one row per case per run version per configuration version; the view
`current_cases` one row per case of the current version of each run under its latest
verification's configuration. The reviewers' decisions on cases are read here
(`case_decisions`: the one in force, for the status; `case_decision_trail`: the latest of any
kind and the assignee, for the reports), from the decisions trail as it is stored: one place to
change when decisions on cases are recorded another way. What the reports compare with the last
run of the period: `previous_run_case_ids`, `resolved_since`.
"""

from __future__ import annotations

import duckdb
import polars as pl

from paywatch.warehouse.db import transaction
from paywatch.warehouse.queries import query_frame

CASE_COLUMNS = ("case_id", "run_id", "run_version", "config_version", "payroll_area", "period", "pernr",
                "root_cause", "root_wage_type", "root_finding_id", "owner", "in_copy", "severity", "status",
                "first_seen_run", "due_date", "days_open", "n_findings", "amount_at_stake_cents", "currency",
                "summary")
# a decision in force as a case's status (docs/cli-contract.md `cases.csv` status); 'assign'
# names who handles it and leaves the status as it is, 'reopen' makes it open again
DECISION_STATUS = {"release": "released", "false_positive": "false_positive", "expected": "expected",
                   "confirm": "confirmed", "reopen": "open"}


def store_cases(con: duckdb.DuckDBPyConnection, cases: pl.DataFrame) -> None:
    """Append a run version's cases (grain: one row per case, CASE_COLUMNS)."""
    if cases.height == 0:
        return
    cols = ", ".join(CASE_COLUMNS)
    with transaction(con):
        con.register("_cases", cases.select(CASE_COLUMNS))
        con.execute(f"INSERT INTO cases ({cols}) SELECT {cols} FROM _cases")
        con.unregister("_cases")


def first_seen_runs(con: duckdb.DuckDBPyConnection, earlier_runs: list[str], case_ids: list[str]) -> dict[str, str]:
    """case id -> the earliest of `earlier_runs` (their order is the history's) whose current
    version has that case, under any configuration; cases seen in none are left out."""
    if not earlier_runs or not case_ids:
        return {}
    seen = query_frame(
        con,
        "SELECT DISTINCT c.case_id, c.run_id FROM cases c "
        "JOIN runs r ON r.run_id = c.run_id AND r.version = c.run_version AND r.is_current "
        "WHERE c.run_id IN (SELECT unnest(?::VARCHAR[])) AND c.case_id IN (SELECT unnest(?::VARCHAR[]))",
        [earlier_runs, case_ids])
    order = {r: i for i, r in enumerate(earlier_runs)}
    out: dict[str, str] = {}
    for cid, run in seen.iter_rows():
        if cid not in out or order[run] < order[out[cid]]:
            out[cid] = run
    return out


def run_cases(con: duckdb.DuckDBPyConnection, run_id: str, run_version: int, config_version: str) -> pl.DataFrame:
    """The stored cases of one verification (grain: one row per case, CASE_COLUMNS)."""
    return query_frame(con, f"SELECT {', '.join(CASE_COLUMNS)} FROM cases WHERE run_id = ? AND run_version = ? "
                            "AND config_version = ? ORDER BY case_id", [run_id, run_version, config_version])


def current_cases(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """The cases of the run's current version as last verified (grain: one row per case)."""
    return query_frame(con, f"SELECT {', '.join(CASE_COLUMNS)} FROM current_cases WHERE run_id = ? ORDER BY case_id",
                       [run_id])


# the previous regular run of the same payroll area and period, in contract order
_PREVIOUS_RUN = """
WITH this AS (SELECT payroll_area, period, order_extracted_at, run_id FROM runs WHERE run_id = ? AND is_current),
prev AS (SELECT r.run_id FROM runs r, this t
         WHERE r.is_current AND r.run_type <> 'OFFCYCLE' AND r.payroll_area = t.payroll_area AND r.period = t.period
           AND (r.order_extracted_at < t.order_extracted_at
                OR (r.order_extracted_at = t.order_extracted_at AND r.run_id < t.run_id))
         ORDER BY r.order_extracted_at DESC, r.run_id DESC LIMIT 1)"""


def resolved_since(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """Cases of the previous regular run of the same period that this run no longer has —
    resolved since the last run (grain: one row per case, CASE_COLUMNS of that earlier run)."""
    return query_frame(con, f"""{_PREVIOUS_RUN}
SELECT {', '.join('c.' + c for c in CASE_COLUMNS)} FROM current_cases c JOIN prev USING (run_id)
WHERE c.case_id NOT IN (SELECT case_id FROM current_cases WHERE run_id = ?)
ORDER BY c.case_id""", [run_id, run_id])


def previous_run_case_ids(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """Case ids of the previous regular run of the same period (none before its first run):
    what "new since the last run" is measured against."""
    return query_frame(con, f"""{_PREVIOUS_RUN}
SELECT c.case_id FROM current_cases c JOIN prev USING (run_id) ORDER BY c.case_id""", [run_id])["case_id"].to_list()


def case_decision_trail(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """The latest decision on the findings of each case of the run (within the run's period, or
    an 'expected' still valid) — an 'assign' only when nothing else was decided, since naming
    who fixes it changes no status — and the latest assignee (grain: one row per
    case that has a decision). Columns case_id, action, decided_by, decided_at, reason,
    awaiting_approval, approved_by, assignee."""
    return query_frame(con, """
WITH d AS (
    SELECT f.case_id, k.decision_id, k.action, k.actor, k.decided_at, k.reason, k.awaiting_approval,
           k.approved_by, k.assignee
    FROM current_findings f JOIN decision_keys k
      ON (k.identity = f.identity AND (k.decided_in_period IS NULL OR k.decided_in_period = f.period)
          AND k.action <> 'expected')
      OR (k.action = 'expected' AND k.pernr = f.pernr AND k.detector = f.detector
          AND coalesce(k.wage_type, '') = coalesce(f.wage_type, '')
          AND (k.expires_on IS NULL OR k.expires_on >= strptime(f.period || '01', '%Y%m%d')::DATE))
    WHERE f.run_id = ? AND f.case_id IS NOT NULL)
SELECT case_id, arg_max(action, (action <> 'assign', decided_at, decision_id)) AS action,
       arg_max(actor, (action <> 'assign', decided_at, decision_id)) AS decided_by, arg_max(decided_at, (action <> 'assign', decided_at, decision_id)) AS decided_at,
       arg_max(reason, (action <> 'assign', decided_at, decision_id)) AS reason,
       arg_max(awaiting_approval, (action <> 'assign', decided_at, decision_id)) AS awaiting_approval,
       arg_max(approved_by, (action <> 'assign', decided_at, decision_id)) AS approved_by,
       arg_max(assignee, (decided_at, decision_id)) FILTER (WHERE action = 'assign') AS assignee
FROM d GROUP BY case_id ORDER BY case_id""", [run_id])


def case_decisions(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """The reviewers' decision in force on each case of the run (grain: one row per case that
    has one): the decision on the case's root finding; else the decision every finding of the
    case carries, when they all carry the same. Columns case_id, decision, decided_by,
    decided_at."""
    d = query_frame(con, """
SELECT f.case_id, f.finding_id, f.decision, f.decided_by, f.decided_at,
       f.finding_id = c.root_finding_id AS is_root
FROM findings_decided f
LEFT JOIN current_cases c ON c.run_id = f.run_id AND c.case_id = f.case_id
WHERE f.run_id = ? AND f.case_id IS NOT NULL""", [run_id])
    schema = {"case_id": pl.String, "decision": pl.String, "decided_by": pl.String, "decided_at": pl.Datetime}
    if d.height == 0:
        return pl.DataFrame(schema=schema)
    root = d.filter(pl.col("is_root").fill_null(False) & pl.col("decision").is_not_null())
    same = (d.group_by("case_id")
            .agg(pl.col("decision").n_unique().alias("n"), pl.col("decision").null_count().alias("nulls"),
                 pl.col("decision").first(), pl.col("decided_by").sort_by("decided_at").last(),
                 pl.col("decided_at").max())
            .filter((pl.col("n") == 1) & (pl.col("nulls") == 0)))
    cols = list(schema)
    picked = pl.concat([root.select(cols), same.filter(~pl.col("case_id").is_in(root["case_id"].implode()))
                        .select(cols)], how="vertical_relaxed")
    return picked.unique("case_id", keep="first").sort("case_id")
