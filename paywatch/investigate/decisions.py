"""The notebooks' one write: recording a reviewer's decision.

Close your read-only connections first (`con.close()`), in this process and in other
notebooks on the same file. In one process DuckDB refuses a read-write connection next to a
read-only one ("different configuration"); across processes a read-only connection holds a
lock that blocks the writer. `decide` writes through the warehouse's writer (the
single-writer lock every verify takes) and explains either conflict.
"""

from __future__ import annotations

import os

import duckdb

from paywatch import lifecycle as lc
from paywatch.investigate.connect import WarehouseInUse
from paywatch.warehouse import Warehouse


def decide(db: str | os.PathLike, *, wait_seconds: float = 30.0, **decision) -> int:
    """Record one reviewer decision (paywatch.lifecycle.record_decision keywords: action,
    actor, reason, finding_id or pernr + detector, ...) under the single-writer lock, with the
    same refusals as `paywatch decide` (DecisionError) and journaled; returns the decision id,
    or None when it changes nothing (the same decision is in force). A release takes effect
    once someone else approves it (`paywatch decide approve`). Close every read-only
    connection on `db` first (module docstring)."""
    wh = Warehouse.at(db)
    opened = False
    try:
        with wh.writer(wait_seconds) as con:
            opened = True
            return lc.record_decision(con, **decision)
    except duckdb.ConnectionException as e:  # same process, read-only connection still open
        if opened:
            raise
        raise WarehouseInUse(f"close the read-only connection on {wh.db} first (con.close()): DuckDB cannot open "
                             "it for writing while this process reads it") from e
    except duckdb.IOException as e:  # another process holds it (e.g. a second notebook)
        if opened:
            raise
        raise WarehouseInUse(f"another process has {wh.db} open (another notebook or report?): close it "
                             f"there first ({e})") from e


def decide_if_asked(db: str | os.PathLike, record: bool, switch: str = "RECORD_DECISION", **decision) -> str:
    """The notebook's decision cell: records the decision (`decide`) only when `record` is
    True — running a notebook top to bottom must never write. Returns what happened, in
    words: 'not recorded: set RECORD_DECISION = True to record' by default."""
    what = f"{decision.get('action')} on finding {decision.get('finding_id')} by {decision.get('actor')}"
    if record is not True:
        return f"not recorded: set {switch} = True to record ({what})"
    did = decide(db, **decision)
    if did is None:
        return f"unchanged: the same decision is already in force or awaits approval ({what})"
    note = " (a release takes effect once someone else approves it)" if decision.get("action") == "release" else ""
    return f"decision {did} recorded: {what}{note}"
