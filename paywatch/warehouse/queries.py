"""Read side for detectors and reports: polars frames of a run and of its history.

History follows docs/extract-format.md: runs of one payroll area are ordered by period, then
extracted_at, then run_id, and a correction takes the place of the run it replaces (its
position is that of version 1: `runs.order_extracted_at`). Only current versions count.
"""

from __future__ import annotations

import itertools

import duckdb
import polars as pl

from paywatch.extract.schema import FILES, STAGING_TABLES
from paywatch.warehouse.db import fetch_one
from paywatch.warehouse.schema import MASTER_TABLES, RECORD_TABLES, REFERENCE_TABLES

_names = itertools.count()
_ORDER = "period, order_extracted_at, run_id"
_RUN_COLUMNS = ("run_id, version, payroll_area, period, run_type, pay_date, extracted_at, "
                "order_extracted_at, delivery_id, is_current, loaded_at")


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> pl.DataFrame:
    """The result of `sql` as a polars frame (grain: whatever the query's is)."""
    # DuckDB 2.0 refuses con.sql() while a caller's execute() result is unread: finish it.
    con.complete()
    return con.sql(sql, params=params).pl()



def current_version(con: duckdb.DuckDBPyConnection, run_id: str) -> int | None:
    """Version number of the run's current version (None: run not loaded)."""
    row = fetch_one(con, "SELECT version FROM runs WHERE run_id = ? AND is_current", [run_id])
    return row[0] if row else None


def _require_version(con, run_id: str, run_version: int | None) -> int:
    version = run_version if run_version is not None else current_version(con, run_id)
    if version is None:
        raise KeyError(f"run {run_id!r} is not in the warehouse")
    return version


def run_info(con: duckdb.DuckDBPyConnection, run_id: str) -> dict:
    """The runs row of the run's current version, as a dict."""
    df = query_frame(con, f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ? AND is_current",
                [run_id])
    if df.is_empty():
        raise KeyError(f"run {run_id!r} is not in the warehouse")
    return df.row(0, named=True)


def run_order(con: duckdb.DuckDBPyConnection, payroll_area: str) -> pl.DataFrame:
    """Current runs of a payroll area in contract order — grain: one row per run, with
    `seq` = its position (1 = first)."""
    return query_frame(
        con,
        f"SELECT row_number() OVER (ORDER BY {_ORDER}) AS seq, {_RUN_COLUMNS} FROM runs "
        f"WHERE payroll_area = ? AND is_current ORDER BY {_ORDER}",
        [payroll_area],
    )


def history_before(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """Current runs of the same payroll area before `run_id` in contract order (its history)."""
    info = run_info(con, run_id)
    order = run_order(con, info["payroll_area"])
    seq = order.filter(pl.col("run_id") == run_id)["seq"][0]
    return order.filter(pl.col("seq") < seq)


def final_runs_before(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """The FINAL runs in the history of `run_id` (those that paid)."""
    return history_before(con, run_id).filter(pl.col("run_type") == "FINAL")


def _table_name(table_name: str, allowed: tuple[str, ...]) -> str:
    """Accept a staging table name ('stg_actions') or its file name ('PA0000.csv')."""
    name = STAGING_TABLES.get(table_name, table_name)
    if name not in allowed:
        raise ValueError(f"{table_name!r} is not one of {sorted(allowed)}")
    return name


def _records_as_of_run(con, run_id, table, run_version) -> pl.DataFrame:
    version = _require_version(con, run_id, run_version)
    cols = ", ".join(c.staging for c in FILES[RECORD_TABLES[table]])
    # A record occurring twice in the file is stored once with copies = 2 and returned
    # twice: the frame is exactly the file's records (duplicates are a detector's concern).
    return query_frame(
        con,
        f"SELECT {cols} FROM (SELECT s.*, unnest(range(l.copies)) AS _copy FROM {table} s "
        f"JOIN stg_record_runs l ON l.record_key = s.record_key AND l.table_name = ? "
        f"AND l.run_id = ? AND l.run_version = ?) ORDER BY ALL",
        [table, run_id, version],
    )


def master_data_as_of_run(
    con: duckdb.DuckDBPyConnection, run_id: str, table_name: str, run_version: int | None = None
) -> pl.DataFrame:
    """Infotype records carried by the run (current version unless given) — grain: one row
    per record of the run's file, staging column names, sorted by content."""
    return _records_as_of_run(con, run_id, _table_name(table_name, MASTER_TABLES), run_version)


def reference_as_of_run(
    con: duckdb.DuckDBPyConnection, run_id: str, table_name: str, run_version: int | None = None
) -> pl.DataFrame:
    """Reference table records carried by the run — grain: one row per record of the file."""
    return _records_as_of_run(con, run_id, _table_name(table_name, REFERENCE_TABLES),
                              run_version)


def pay_lines(
    con: duckdb.DuckDBPyConnection, run_id: str, run_version: int | None = None
) -> pl.DataFrame:
    """mart_pay_lines of the run — grain: one row per pay line, in file order (line_no)."""
    version = _require_version(con, run_id, run_version)
    return query_frame(con, "SELECT * FROM mart_pay_lines WHERE run_id = ? AND run_version = ? "
                       "ORDER BY line_no", [run_id, version])


def staff_run(
    con: duckdb.DuckDBPyConnection, run_id: str, run_version: int | None = None
) -> pl.DataFrame:
    """mart_staff_run of the run — grain: one row per staff member with lines in the run."""
    version = _require_version(con, run_id, run_version)
    return query_frame(con, "SELECT * FROM mart_staff_run WHERE run_id = ? AND run_version = ? "
                       "ORDER BY pernr", [run_id, version])


def final_lines_before(
    con: duckdb.DuckDBPyConnection, run_id: str, pernr_list: list[str] | None = None
) -> pl.DataFrame:
    """Pay lines of the FINAL runs in the history of `run_id` — grain: one row per pay line
    of each such run (current versions), with its run_id and in_period."""
    finals = final_runs_before(con, run_id).select(
        "run_id", pl.col("version").alias("run_version"))
    where, params = "", []
    if pernr_list is not None:
        where, params = "WHERE p.pernr IN (SELECT unnest(?::VARCHAR[]))", [list(pernr_list)]
    src = f"_final_runs_{next(_names)}"
    con.register(src, finals)
    try:
        return query_frame(
            con,
            f"SELECT p.* FROM mart_pay_lines p JOIN {src} USING (run_id, run_version) {where} "
            "ORDER BY p.in_period, p.run_id, p.line_no",
            params or None,
        )
    finally:
        con.unregister(src)


def paid_so_far(
    con: duckdb.DuckDBPyConnection,
    payroll_area: str,
    pernr_list: list[str] | None = None,
    before_run_id: str | None = None,
) -> pl.DataFrame:
    """The pay ledger for retro checks — grain: one row per (pernr, for_period, wage_type):
    paid_cents = sum of amounts over the current FINAL runs of the area (only those before
    `before_run_id` in contract order, when given: a run's history). Simulations pay
    nothing and so are left out."""
    if before_run_id is not None:
        if run_info(con, before_run_id)["payroll_area"] != payroll_area:
            raise ValueError(f"run {before_run_id} is not of payroll area {payroll_area}")
        finals = final_runs_before(con, before_run_id)
    else:
        finals = run_order(con, payroll_area).filter(pl.col("run_type") == "FINAL")
    keys = finals.select("run_id", pl.col("version").alias("run_version"))
    where, params = "", []
    if pernr_list is not None:
        where, params = "WHERE p.pernr IN (SELECT unnest(?::VARCHAR[]))", [list(pernr_list)]
    src = f"_paid_runs_{next(_names)}"
    con.register(src, keys)
    try:
        return query_frame(
            con,
            "SELECT p.pernr, p.for_period, p.wage_type, sum(p.amount_cents) AS paid_cents, "
            "CASE WHEN count(DISTINCT p.currency) = 1 THEN min(p.currency) END AS currency, "
            "count(*) AS n_lines "
            f"FROM mart_pay_lines p JOIN {src} USING (run_id, run_version) {where} "
            "GROUP BY ALL ORDER BY ALL",
            params or None,
        )
    finally:
        con.unregister(src)


def lines_of_runs(con: duckdb.DuckDBPyConnection, runs: pl.DataFrame) -> pl.DataFrame:
    """Pay lines of the given run versions (frame with run_id, version) — grain: one row
    per pay line per run, with run_id; in contract order of the runs, then file order."""
    keys = runs.select("run_id", pl.col("version").cast(pl.Int32).alias("run_version")).with_row_index("_seq")
    src = f"_runs_{next(_names)}"
    con.register(src, keys)
    try:
        return query_frame(
            con,
            "SELECT p.run_id, p.pernr, p.for_period, p.in_period, p.wage_type, p.amount_cents, p.currency, "
            f"p.quantity FROM mart_pay_lines p JOIN {src} k USING (run_id, run_version) ORDER BY k._seq, p.line_no",
        )
    finally:
        con.unregister(src)


def current_runs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Current runs of every payroll area in contract order — grain: one row per run
    (run_id, period, run_type)."""
    return query_frame(con, "SELECT run_id, period, run_type FROM runs WHERE is_current "
                            "ORDER BY payroll_area, period, order_extracted_at, run_id")


def count_current_runs(con: duckdb.DuckDBPyConnection) -> int:
    """How many runs (current versions) the warehouse holds, over all payroll areas."""
    return int(fetch_one(con, "SELECT count(*) FROM runs WHERE is_current")[0])
