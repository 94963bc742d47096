"""`Warehouse`: the one resource through which everything reaches the DuckDB file.

It holds the paths (the warehouse file and the folders kept next to it: archive,
quarantine, reports, outbox, paywatch.toml) and hands out connections:

- `writer(wait_seconds)`: the single-writer lock, then a read-write connection (schema
  ensured, owner-only files); closed and unlocked on exit, whatever happens.
- `reader()`: a read-only connection, closed on exit; `WarehouseMissing` (one line saying
  what to do) when there is no warehouse file yet.

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
from paywatch.warehouse.db import WarehouseLock, make_private_dir, open_warehouse, owner_only_umask


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

    @contextlib.contextmanager
    def writer(self, wait_seconds: float = 0.0) -> Iterator[duckdb.DuckDBPyConnection]:
        """Lock (waiting up to `wait_seconds`, then `WarehouseBusy`), open read-write, close."""
        make_private_dir(self.db.parent)
        with WarehouseLock(self.db, wait_seconds=wait_seconds), owner_only_umask():
            con = open_warehouse(self.db)
            try:
                yield con
            finally:
                con.close()

    def read_only_connection(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection the caller keeps and closes (a notebook across cells); the
        file must exist, else `WarehouseMissing`."""
        # DuckDB's own error (IOException) says what is missing, not what to do about it
        if not self.exists:
            raise WarehouseMissing(f"no warehouse at {self.db}: verify a run into it first (paywatch verify)")
        return open_warehouse(self.db, read_only=True)

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection (the file must exist: else `WarehouseMissing`), closed on exit."""
        con = self.read_only_connection()
        try:
            yield con
        finally:
            con.close()
