"""The reviewers' audit trail: decisions on findings, appended and never edited (docs/design.md)."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from paywatch.warehouse.db import fetch_one, fetch_value, transaction
from paywatch.warehouse.queries import query_frame


def finding_identity(con: duckdb.DuckDBPyConnection, finding_id: str) -> tuple | None:
    """What a decision on `finding_id` attaches to — grain: one row (run_id, pernr, detector,
    wage_type, for_period, category) per finding; None when there is no such finding."""
    return fetch_one(con, "SELECT run_id, pernr, detector, wage_type, for_period, category FROM findings "
                          "WHERE finding_id = ?", [finding_id])


def append_decision(con: duckdb.DuckDBPyConnection, *, finding_id: str | None, run_id: str | None,
                    pernr: str, detector: str, category: str | None, wage_type: str | None,
                    for_period: str | None, action: str, assignee: str | None, actor: str, reason: str,
                    expires_on: date | None) -> int:
    """Append one row to `decisions` (grain: one row per reviewer's action); its new id."""
    with transaction(con):
        new_id = (fetch_value(con, "SELECT coalesce(max(decision_id), 0) + 1 FROM decisions") or 1)
        con.execute(
            "INSERT INTO decisions (decision_id, finding_id, run_id, pernr, detector, category, wage_type, for_period, "
            "action, assignee, actor, reason, expires_on) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [new_id, finding_id, run_id, pernr, detector, category, wage_type, for_period, action, assignee,
             actor, reason, expires_on])
    return int(new_id)


def decided(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """The run's findings with their latest applicable decision — grain: one row per finding."""
    return query_frame(con, "SELECT finding_id, decision, decided_by, decision_reason, decided_at, "
                            "decision_expires_on FROM findings_decided WHERE run_id = ?", [run_id])


def reviewed_identities(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Findings reviewers confirmed or marked false positive — grain: one row per run, staff
    member, detector, wage type ('' when none) and decision."""
    return query_frame(con, "SELECT DISTINCT run_id, pernr, detector, coalesce(wage_type,'') AS wage_type, decision "
                            "FROM findings_decided WHERE decision IN ('confirm', 'false_positive')")
