"""The delivery logs: deliveries received (`deliveries`, `delivery_files`: one row per received
delivery; one row per file per delivery) and reports delivered upstream (`report_deliveries`:
one row per report package per recipient per channel per delivery outcome; append-only).
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import polars as pl

from paywatch.warehouse.db import fetch_value, transaction
from paywatch.warehouse.queries import query_frame

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


# --- deliveries received


def delivery_received(con: duckdb.DuckDBPyConnection, manifest_sha256: str) -> bool:
    """Whether a delivery with exactly this manifest was received, whatever its outcome
    (grain of `deliveries`: one row per received delivery)."""
    return bool(fetch_value(con, "SELECT count(*) FROM deliveries WHERE manifest_sha256 = ?", [manifest_sha256]))


def run_received(con: duckdb.DuckDBPyConnection, payroll_area: str, period: str, run_type: str) -> bool:
    """Whether any version of a run of that area, period and type is loaded."""
    n = fetch_value(con, "SELECT count(*) FROM runs WHERE payroll_area = ? AND period = ? AND run_type = ?",
                    [payroll_area, period, run_type])
    return bool(n)


def archived_files(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The received files of every loaded run version (current or replaced) — grain: one row
    per file per run version (run_id, version, file_name, sha256), sorted."""
    return query_frame(con, """
        SELECT r.run_id, r.version, f.file_name, f.sha256
        FROM runs r JOIN delivery_files f ON f.delivery_id = r.delivery_id ORDER BY ALL""")


def current_runs_with_manifest(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Current run versions with the checksum of their manifest (null when not logged) —
    grain: one row per run (run_id, version, delivery_id, manifest_sha), by run_id."""
    return query_frame(con, "SELECT r.run_id, r.version, r.delivery_id, f.sha256 AS manifest_sha FROM runs r "
                            "LEFT JOIN delivery_files f ON f.delivery_id = r.delivery_id "
                            "AND f.file_name = 'manifest.json' WHERE r.is_current ORDER BY r.run_id")
