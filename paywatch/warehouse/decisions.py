"""The reviewers' audit trail: decisions on findings or cases, and second persons' approvals
of releases, appended and never edited (docs/design.md). Every row written here is also
journaled outside the database by the caller (paywatch/journal.py)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from paywatch.warehouse.db import fetch_one, fetch_value, transaction
from paywatch.warehouse.queries import query_frame

# Column order of a decision row as stored and journaled.
DECISION_COLUMNS = ("decision_id", "finding_id", "case_id", "run_id", "pernr", "detector", "category", "wage_type",
                    "for_period", "action", "assignee", "actor", "reason", "decided_at", "expires_on")
APPROVAL_COLUMNS = ("decision_id", "approved_by", "reason", "approved_at")
# warehouse_meta key set once the journal holds every decision of this warehouse
JOURNAL_META_KEY = "decisions_journal"


def database_file(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The file behind `con` (None for an in-memory database)."""
    path = fetch_value(con, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
    return Path(path) if path else None


def finding_identity(con: duckdb.DuckDBPyConnection, finding_id: str) -> tuple | None:
    """What a decision on `finding_id` attaches to — grain: one row (run_id, pernr, detector,
    wage_type, for_period, category) per finding; None when there is no such finding."""
    return fetch_one(con, "SELECT run_id, pernr, detector, wage_type, for_period, category FROM findings "
                          "WHERE finding_id = ?", [finding_id])


def run_exists(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    return bool(fetch_value(con, "SELECT count(*) FROM runs WHERE run_id = ?", [run_id]))


def staff_exists(con: duckdb.DuckDBPyConnection, pernr: str) -> bool:
    """Whether any run in the warehouse paid or carried this staff member."""
    return bool(fetch_value(con, "SELECT (SELECT count(*) FROM mart_staff_run WHERE pernr = ?) "
                                 "+ (SELECT count(*) FROM findings WHERE pernr = ?)", [pernr, pernr]))


def run_period(con: duckdb.DuckDBPyConnection, run_id: str | None) -> str | None:
    if run_id is None:
        return None
    return fetch_value(con, "SELECT period FROM runs WHERE run_id = ? AND is_current", [run_id])


def run_findings(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """The current findings of a run — grain: one row per finding (id, staff member,
    detector, category, owner, severity, and case_id when findings carry one)."""
    cols = "finding_id, pernr, detector, category, owner, severity"
    if fetch_value(con, "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'findings' "
                        "AND column_name = 'case_id' AND database_name = current_database()"):
        cols += ", case_id"
    return query_frame(con, f"SELECT {cols} FROM current_findings WHERE run_id = ? ORDER BY finding_id", [run_id])


def cases_table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(fetch_value(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'cases' "
                                 "AND database_name = current_database()"))


def latest_on_identity(con: duckdb.DuckDBPyConnection, *, pernr: str, detector: str, wage_type: str | None,
                       for_period: str | None, period: str | None) -> dict | None:
    """The latest decision (in force or awaiting approval) on one finding identity in one
    period (`period` None: decisions taken without a run) — grain: one row or None."""
    row = fetch_one(con, """
        SELECT decision_id, action, assignee, expires_on, awaiting_approval FROM decision_keys
        WHERE identity = concat_ws('|', coalesce(?, ''), ?, coalesce(?, ''), coalesce(?, ''))
          AND decided_in_period IS NOT DISTINCT FROM ?
        ORDER BY decided_at DESC, decision_id DESC LIMIT 1""", [pernr, detector, wage_type, for_period, period])
    if row is None:
        return None
    return dict(zip(("decision_id", "action", "assignee", "expires_on", "awaiting_approval"), row))


def append_decision(con: duckdb.DuckDBPyConnection, *, finding_id: str | None, run_id: str | None,
                    pernr: str, detector: str, category: str | None, wage_type: str | None,
                    for_period: str | None, action: str, assignee: str | None, actor: str, reason: str,
                    expires_on: date | None, case_id: str | None = None, decision_id: int | None = None,
                    decided_at: datetime | None = None) -> int:
    """Append one row to `decisions` (grain: one row per reviewer's action); its id. A replay
    (paywatch rebuild) passes the recorded `decision_id` and `decided_at`."""
    with transaction(con):
        new_id = decision_id or (fetch_value(con, "SELECT coalesce(max(decision_id), 0) + 1 FROM decisions") or 1)
        con.execute(
            "INSERT INTO decisions (decision_id, finding_id, case_id, run_id, pernr, detector, category, wage_type, "
            "for_period, action, assignee, actor, reason, expires_on, decided_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?, coalesce(?, timezone('UTC', current_timestamp)))",
            [new_id, finding_id, case_id, run_id, pernr, detector, category, wage_type, for_period, action, assignee,
             actor, reason, expires_on, decided_at])
    return int(new_id)


def decision_row(con: duckdb.DuckDBPyConnection, decision_id: int) -> dict | None:
    """One decision as stored (DECISION_COLUMNS), or None."""
    row = fetch_one(con, f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions WHERE decision_id = ?", [decision_id])
    return dict(zip(DECISION_COLUMNS, row)) if row else None


def approval_of(con: duckdb.DuckDBPyConnection, decision_id: int) -> dict | None:
    """The first approval of a decision (APPROVAL_COLUMNS), or None."""
    row = fetch_one(con, f"SELECT {', '.join(APPROVAL_COLUMNS)} FROM decision_approvals WHERE decision_id = ? "
                         "ORDER BY approved_at LIMIT 1", [decision_id])
    return dict(zip(APPROVAL_COLUMNS, row)) if row else None


def append_approval(con: duckdb.DuckDBPyConnection, decision_id: int, approved_by: str, reason: str,
                    approved_at: datetime | None = None) -> dict:
    """Append a second person's approval of a decision (grain: one row per approval); the
    row as stored."""
    with transaction(con):
        con.execute("INSERT INTO decision_approvals (decision_id, approved_by, reason, approved_at) "
                    "VALUES (?, ?, ?, coalesce(?, timezone('UTC', current_timestamp)))",
                    [decision_id, approved_by, reason, approved_at])
        return approval_of(con, decision_id)


def all_decisions(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every decision as stored, by id (doctor compares them with the journal)."""
    rows = con.execute(f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions ORDER BY decision_id").fetchall()
    return [dict(zip(DECISION_COLUMNS, r)) for r in rows]


def all_approvals(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every approval as stored, by decision and time."""
    rows = con.execute(f"SELECT {', '.join(APPROVAL_COLUMNS)} FROM decision_approvals "
                       "ORDER BY approved_at, decision_id").fetchall()
    return [dict(zip(APPROVAL_COLUMNS, r)) for r in rows]


def journal_started(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether this warehouse's decisions are journaled (set at its first journaled decision)."""
    return bool(fetch_value(con, "SELECT count(*) FROM warehouse_meta WHERE key = ?", [JOURNAL_META_KEY]))


def mark_journal_started(con: duckdb.DuckDBPyConnection) -> None:
    with transaction(con):
        con.execute("INSERT INTO warehouse_meta VALUES (?, 'started') ON CONFLICT DO NOTHING", [JOURNAL_META_KEY])


def decided(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """The run's findings with their latest applicable decision — grain: one row per finding."""
    return query_frame(con, "SELECT finding_id, decision, decided_by, decision_reason, decided_at, "
                            "decision_expires_on, decision_approved_by FROM findings_decided WHERE run_id = ?",
                       [run_id])


def pending_releases(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """Releases proposed on the run's findings and not yet approved — grain: one row per
    finding (the latest such proposal)."""
    return query_frame(con, """
        SELECT f.finding_id, arg_max(k.actor, k.decided_at) AS proposed_by, max(k.decided_at) AS proposed_at,
               arg_max(k.decision_id, k.decided_at) AS pending_decision_id
        FROM current_findings f JOIN decision_keys k
          ON k.identity = f.identity AND (k.decided_in_period IS NULL OR k.decided_in_period = f.period)
        WHERE f.run_id = ? AND k.awaiting_approval
          AND k.decided_at >= coalesce((SELECT max(d.decided_at) FROM findings_decided d
                                        WHERE d.finding_id = f.finding_id), TIMESTAMP '1970-01-01')
        GROUP BY f.finding_id""", [run_id])


def reviewed_identities(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Findings reviewers confirmed or marked false positive — grain: one row per run, staff
    member, detector, wage type ('' when none) and decision."""
    return query_frame(con, "SELECT DISTINCT run_id, pernr, detector, coalesce(wage_type,'') AS wage_type, decision "
                            "FROM findings_decided WHERE decision IN ('confirm', 'false_positive')")
