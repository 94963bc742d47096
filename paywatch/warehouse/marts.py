"""Marts built per run version from staging, by SQL, inside the load transaction.

Other stages (expected pay, findings) add their own per-run tables through
`replace_run_rows`, which keeps the same "one run version at a time" discipline.
"""

from __future__ import annotations

import itertools

import duckdb
import polars as pl

from paywatch.extract.schema import TOTAL_GROSS, TOTAL_NET, TOTAL_PAID
from paywatch.warehouse.db import transaction
from paywatch.warehouse.wage_types import build_run_wage_types

_names = itertools.count()


def build_run_marts(con: duckdb.DuckDBPyConnection, run_id: str, run_version: int) -> None:
    """(Re)build every mart of one run version from staging."""
    with transaction(con):
        build_run_wage_types(con, run_id, run_version)
        _build_mart_staff_run(con, run_id, run_version)


def _build_mart_staff_run(con, run_id: str, run_version: int) -> None:
    """mart_staff_run — grain: one row per staff member per run version present in RT.

    Totals are taken as written (/101, /550, /560): checking them is a detector's job.
    """
    con.execute("DELETE FROM mart_staff_run WHERE run_id = $1 AND run_version = $2",
                [run_id, run_version])
    con.execute(
        """
        INSERT INTO mart_staff_run BY NAME
        SELECT run_id, run_version, pernr,
               count(*) AS n_lines,
               sum(amount_cents) FILTER (WHERE wage_type = $3) AS gross_cents,
               sum(amount_cents) FILTER (WHERE wage_type = $4) AS net_cents,
               sum(amount_cents) FILTER (WHERE wage_type = $5) AS paid_cents,
               CASE WHEN count(DISTINCT currency) = 1 THEN min(currency) END AS currency,
               count(DISTINCT currency) AS n_currencies
        FROM stg_pay_lines
        WHERE run_id = $1 AND run_version = $2
        GROUP BY run_id, run_version, pernr
        """,
        [run_id, run_version, TOTAL_GROSS, TOTAL_NET, TOTAL_PAID],
    )


def _table_columns(con, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
        "AND database_name = current_database() AND schema_name = 'main' "
        "ORDER BY column_index",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def replace_run_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    run_id: str,
    run_version: int,
    frame: pl.DataFrame,
) -> int:
    """Replace the rows of one run version in a per-run table by `frame`; return rows inserted.

    For tables whose grain starts with "per run version" (marts, expected pay). Frame
    columns are matched by name; run_id and run_version are set here (a frame that carries
    them must carry these values). Joins the caller's transaction, else runs in its own.
    """
    cols = _table_columns(con, table)
    if not {"run_id", "run_version"} <= set(cols):
        raise ValueError(f"{table!r} is not a per-run table of the warehouse")
    unknown = [c for c in frame.columns if c not in cols]
    if unknown:
        raise ValueError(f"{table}: no such column(s) {unknown}")
    for col, value in (("run_id", run_id), ("run_version", run_version)):
        if col in frame.columns and frame.height and (frame[col] != value).any():
            raise ValueError(f"{table}: frame rows belong to another {col} than {value!r}")
    body = [c for c in frame.columns if c not in ("run_id", "run_version")]
    src = f"_replace_src_{next(_names)}"
    select = ", ".join([f'"{c}"' for c in body] + ["$1 AS run_id", "$2 AS run_version"])
    with transaction(con):
        con.execute(f'DELETE FROM "{table}" WHERE run_id = $1 AND run_version = $2',
                    [run_id, run_version])
        con.register(src, frame)
        try:
            con.execute(f'INSERT INTO "{table}" BY NAME SELECT {select} FROM {src}',
                        [run_id, run_version])
        finally:
            con.unregister(src)
    return frame.height
