"""What an earlier FINAL delivered — its pay lines and its master data — kept in this process
between verifies (issue #17, the warm path).

SIM1, SIM2, SIM3 and FINAL of a month read the same earlier FINALs as their history. A
long-lived worker (flows/warm.py) or `paywatch evaluate` reads them from the warehouse once per
month instead of once per run. A delivery never changes once stored — a correction is a new
version with its own delivery id — so an entry is found only by the warehouse file, run id,
version, delivery id and load time of the delivery it holds, and is as good as a fresh read.
Frames are immutable: the detectors share them. The `KEEP` most recently used deliveries stay.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import duckdb
import polars as pl

KEEP = 8  # deliveries (three FINALs of history per area; a few areas verified in turn)

T = TypeVar("T")
_KEPT: OrderedDict[tuple, object] = OrderedDict()
_LOCK = threading.Lock()


def database_file(con: duckdb.DuckDBPyConnection) -> str | None:
    """The file behind `con` (None: an in-memory database, whose deliveries are not kept)."""
    rows = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    return rows[0][0] if rows and rows[0][0] else None


def delivery_key(con: duckdb.DuckDBPyConnection, run: dict, part: str) -> tuple | None:
    """The key of `part` of one delivery (`run`: a row of the runs table, with version,
    delivery_id and loaded_at), or None when it cannot be kept."""
    db = database_file(con)
    if db is None or run.get("delivery_id") is None or run.get("loaded_at") is None:
        return None
    return (db, run["run_id"], int(run["version"]), int(run["delivery_id"]), str(run["loaded_at"]), part)


def kept(key: tuple | None, read: Callable[[], T]) -> T:
    """`read()`, or what it returned for `key` before in this process."""
    if key is None:
        return read()
    with _LOCK:
        if key in _KEPT:
            _KEPT.move_to_end(key)
            return _KEPT[key]  # type: ignore[return-value]
    value = read()
    with _LOCK:
        _KEPT[key] = value
        while len(_KEPT) > KEEP * 2:  # two parts per delivery: lines and master data
            _KEPT.popitem(last=False)
    return value


def forget() -> None:
    """Drop everything kept (tests; a process that restores a warehouse over the same file
    keeps deliveries apart by their delivery id and load time anyway)."""
    with _LOCK:
        _KEPT.clear()


def lines_of_finals(con: duckdb.DuckDBPyConnection, finals: pl.DataFrame,
                    read: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    """`read(finals)` — the pay lines of the given run versions in their order, then file
    order — assembled from each delivery's own lines, kept per delivery."""
    if finals.height == 0:
        return read(finals)
    parts = [kept(delivery_key(con, run, "lines"), lambda run=run: read(finals.filter(
        (pl.col("run_id") == run["run_id"]) & (pl.col("version") == run["version"]))))
        for run in finals.iter_rows(named=True)]
    return pl.concat(parts, how="vertical")
