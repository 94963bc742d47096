"""Reading single rows and values. Below db.py and views.py, which both use it (so the
views module does not import db.py, which creates the views)."""

from __future__ import annotations

import duckdb


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> tuple | None:
    """First row of a query, or None. Reads the result to its end: DuckDB 2.0 refuses
    `con.sql(...)` while an `execute()` result is still unread (ResourceInUseException)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def fetch_value(con: duckdb.DuckDBPyConnection, sql: str, params=None):
    """The single value of a one-row, one-column query (None when there is no row)."""
    row = fetch_one(con, sql, params)
    return row[0] if row else None
