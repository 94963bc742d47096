"""The report delivery log (`report_deliveries`): what paywatch.delivery wrote and sent.

Grain: one row per report package per recipient per channel per delivery outcome;
append-only (schema.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from paywatch.warehouse.db import transaction

# Column order of `record_deliveries` rows.
DELIVERY_COLUMNS = ("run_id", "recipient", "channel", "status", "attempts", "error", "content_sha256",
                    "n_exceptions", "recorded_at")


def delivered_before(con: duckdb.DuckDBPyConnection, run_id: str) -> set[tuple[str, str, str]]:
    """(recipient, channel, content hash) already written / sent for the run."""
    rows = con.execute("SELECT DISTINCT recipient, channel, content_sha256 FROM report_deliveries "
                       "WHERE run_id = ? AND status IN ('written', 'sent')", [run_id]).fetchall()
    return {tuple(r) for r in rows}


def record_deliveries(con: duckdb.DuckDBPyConnection, rows: Iterable[tuple]) -> None:
    """Append delivery outcomes (tuples in DELIVERY_COLUMNS order) in one transaction."""
    rows = [list(r) for r in rows]
    if not rows:
        return
    with transaction(con):
        con.executemany(f"INSERT INTO report_deliveries ({', '.join(DELIVERY_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(DELIVERY_COLUMNS))})", rows)
