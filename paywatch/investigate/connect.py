"""Connections for notebooks (DuckDB allows one writing process per file).

Read with `open_readonly(db)`. Several read-only connections, in several processes, may be
open at once; none may be while another process writes (a verify): the open then fails with
"Could not set lock on file" and `open_readonly` says so plainly.
"""

from __future__ import annotations

import os

import duckdb
import polars as pl

from paywatch.warehouse.resource import Warehouse


class WarehouseInUse(RuntimeError):
    """The warehouse cannot be opened as asked because a connection elsewhere conflicts."""


def open_readonly(db: str | os.PathLike) -> duckdb.DuckDBPyConnection:
    """A read-only connection (fails plainly while another process writes the warehouse).
    The notebook keeps it across cells and closes it itself, hence not `Warehouse.reader()`."""
    try:
        return Warehouse.at(db).read_only_connection()
    except duckdb.IOException as e:
        raise WarehouseInUse(f"cannot read {db} now: another process is writing it (a verify or a decision); "
                             f"try again when it has finished ({e})") from e


def notebook_display(rows: int = 60, text: int = 300) -> None:
    """Show whole tables in notebooks (polars truncates to 10 rows and short strings)."""
    pl.Config.set_tbl_rows(rows)
    pl.Config.set_fmt_str_lengths(text)
    pl.Config.set_tbl_cols(-1)
