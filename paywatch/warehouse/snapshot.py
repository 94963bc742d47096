"""The readers' copy of the warehouse: `<db>.snapshot` (docs/design.md, "Readers and the writer").

DuckDB lets one process write a file, and a read-only connection from another process makes
the writer's open fail. So readers (KPI, close --dry, backtest, notebooks) never open the
warehouse file itself: they open this snapshot, which the writer publishes after each
successful write block — checkpointed (no WAL to replay), copied to a temporary name and
renamed over the old one. A reader holding the previous snapshot keeps its open file (the
rename does not touch it) and sees the state of the last commit when it opens again.

Measured on the committed sample (gv-300, 13 runs) and at 10,000 staff: see README,
"Readers and the writer".
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

from paywatch.paths import FILE_MODE, owner_only_umask


def snapshot_path(db: Path) -> Path:
    """Where the readers' copy of `db` lives (beside it, same file system: rename is atomic)."""
    return db.parent / f"{db.name}.snapshot"


def checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    """Fold the WAL into the database file, so that the file alone is the committed state."""
    con.execute("CHECKPOINT")


def fold_wal(db: Path) -> None:
    """Open the warehouse read-write just long enough to replay and checkpoint the WAL a killed
    writer left (no schema work, no mode changes: doctor must see the file as it is)."""
    with owner_only_umask():
        con = duckdb.connect(str(db))
        try:
            checkpoint(con)
        finally:
            con.close()


def publish(db: Path) -> Path:
    """Copy the (checkpointed, closed) warehouse file to its snapshot, atomically. Called with
    the writer lock held and no connection open, so the file does not change while copied."""
    db = Path(db)
    target = snapshot_path(db)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with owner_only_umask():
            # copyfile uses sendfile/copy_file_range: the kernel copies, no Python buffer
            shutil.copyfile(db, tmp)
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "rb") as fh:  # on disk before the rename makes it the readers' state
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def is_current(db: Path) -> bool:
    """A snapshot exists, no WAL waits to be folded in (a killed writer leaves its last commits
    there) and the warehouse file has not changed since the snapshot was taken."""
    db = Path(db)
    if db.with_name(f"{db.name}.wal").exists():
        return False
    try:
        return snapshot_path(db).stat().st_mtime_ns >= db.stat().st_mtime_ns
    except FileNotFoundError:
        return False
