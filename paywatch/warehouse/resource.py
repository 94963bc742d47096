"""`Warehouse`: the one resource through which everything reaches the DuckDB file.

It holds the paths (the warehouse file and the folders kept next to it: archive,
quarantine, reports, outbox, paywatch.toml) and hands out connections:

- `writer(wait_seconds)`: the single-writer lock, then a read-write connection (schema
  ensured, owner-only files); closed and unlocked on exit, whatever happens. After a block
  that ends without an exception it publishes the readers' snapshot (warehouse/snapshot.py).
- `reader()` / `read_only_connection()`: a read-only connection to that snapshot — the last
  committed state — so a reader never blocks a writer nor fails because one runs;
  `WarehouseMissing` (one line saying what to do) when there is no warehouse file yet.

Build it once (`Warehouse.at(db)` / `Warehouse.default()`) and pass it in; nobody else
opens, locks or closes the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from paywatch.paths import Paths
from paywatch.warehouse import snapshot
from paywatch.warehouse.db import (WarehouseBusy, WarehouseLock, make_private_dir, open_warehouse,
                                   owner_only_umask)

# a reader that finds no snapshot at all (the first verify is still writing) waits this long
FIRST_SNAPSHOT_WAIT_SECONDS = 600.0


class WarehouseMissing(FileNotFoundError):
    """Reading a warehouse that does not exist yet (nothing verified into it)."""


@dataclass(frozen=True)
class Warehouse:
    """The warehouse file and the folders kept next to it."""

    db: Path
    paths: Paths

    @classmethod
    def default(cls) -> Warehouse:
        """The embedded default: `$PAYWATCH_HOME/warehouse.duckdb` (./paywatch-data)."""
        paths = Paths.default()
        return cls(paths.db, paths)

    @classmethod
    def at(cls, db: str | Path | None) -> Warehouse:
        """The warehouse file `db` (any name) with its folders beside it; None = the default."""
        if db is None:
            return cls.default()
        db = Path(db)
        return cls(db, Paths.for_db(db))

    @classmethod
    def in_folder(cls, home: str | Path) -> Warehouse:
        """`<home>/warehouse.duckdb` with its folders: a throwaway or side warehouse (pilot,
        evaluation, benchmarks) laid out as the default one."""
        paths = Paths(Path(home))
        return cls(paths.db, paths)

    @property
    def exists(self) -> bool:
        """Whether the warehouse file is there (a writer creates it; a reader needs it)."""
        return self.db.exists()

    @property
    def snapshot(self) -> Path:
        """The readers' copy (`<db>.snapshot`), published after each successful write block."""
        return snapshot.snapshot_path(self.db)

    @contextlib.contextmanager
    def writer(self, wait_seconds: float = 0.0) -> Iterator[duckdb.DuckDBPyConnection]:
        """Lock (waiting up to `wait_seconds`, then `WarehouseBusy`), open read-write, close;
        then, if the block raised nothing, publish the readers' snapshot (lock still held)."""
        make_private_dir(self.db.parent)
        with WarehouseLock(self.db, wait_seconds=wait_seconds), owner_only_umask():
            con = open_warehouse(self.db)
            try:
                yield con
                snapshot.checkpoint(con)
            finally:
                con.close()
            snapshot.publish(self.db)

    def _current_snapshot(self) -> Path:
        """The snapshot, published first when it is missing or older than the warehouse (a
        writer killed after its commit, a warehouse from before snapshots) and no writer runs.
        While a writer runs, the existing snapshot is the last committed state: never wait."""
        if snapshot.is_current(self.db):
            return self.snapshot
        wait = 0.0 if self.snapshot.exists() else FIRST_SNAPSHOT_WAIT_SECONDS
        try:
            with WarehouseLock(self.db, wait_seconds=wait), owner_only_umask():
                if not snapshot.is_current(self.db):  # another reader may have just done it
                    snapshot.fold_wal(self.db)
                    snapshot.publish(self.db)
        except WarehouseBusy:
            if not self.snapshot.exists():
                raise
        return self.snapshot

    def read_only_connection(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the snapshot, which the caller keeps and closes (a notebook
        across cells); the warehouse must exist, else `WarehouseMissing`."""
        # DuckDB's own error (IOException) says what is missing, not what to do about it
        if not self.exists:
            raise WarehouseMissing(f"no warehouse at {self.db}: verify a run into it first (paywatch verify)")
        return open_warehouse(self._current_snapshot(), read_only=True)

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the snapshot (the warehouse must exist: else
        `WarehouseMissing`), closed on exit."""
        con = self.read_only_connection()
        try:
            yield con
        finally:
            con.close()
