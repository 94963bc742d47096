"""Opening the DuckDB warehouse, the single-writer lock, transactions and a content digest.

DuckDB allows one writing process per file, so every writer (verify, flows) takes
`WarehouseLock` first and then `open_warehouse`. Everything created here is readable by its
owner only: the warehouse holds names, salaries and bank accounts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import duckdb

from paywatch.paths import DIR_MODE, FILE_MODE, make_private_dir, owner_only_umask, secure_file  # noqa: F401 (re-exported)
from paywatch.warehouse import schema
from paywatch.warehouse.fetch import fetch_one, fetch_value
from paywatch.warehouse.views import ensure_views
from paywatch.warehouse.wage_types import migrate_mart_pay_lines

# DuckDB's cap (buffer pool + operators; beyond it DuckDB spills to `<db>.tmp/`). Python's
# frames come on top of it, so a whole verify's peak is this plus the run held in polars.
DEFAULT_MEMORY_LIMIT = "4GB"
MEMORY_LIMIT_ENV = "PAYWATCH_DUCKDB_MEMORY_LIMIT"

# Tables that form the delivery log: a repeated delivery (noop) changes only these.
DELIVERY_LOG_TABLES = ("deliveries", "delivery_files", "report_deliveries")


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse lock (one writer at a time)."""

    def __init__(self, message: str, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


def utc_now() -> datetime:
    """Naive UTC timestamp: the warehouse stores TIMESTAMP columns in UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def open_warehouse(
    path: str | os.PathLike,
    read_only: bool = False,
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Connect to the warehouse file, creating it and its schema if missing (idempotent).

    Spill files go to `<db>.tmp/` next to the database, so a 160,000-staff run fits in
    `memory_limit` (default: $PAYWATCH_DUCKDB_MEMORY_LIMIT, else DEFAULT_MEMORY_LIMIT). Writers must hold `WarehouseLock` (DuckDB's own lock fails immediately).
    """
    path = Path(path)
    config = {
        "memory_limit": memory_limit or os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT,
        "threads": threads or os.cpu_count() or 1,
    }
    if read_only:
        return duckdb.connect(str(path), read_only=True, config=config)
    make_private_dir(path.parent)
    spill = make_private_dir(path.parent / f"{path.name}.tmp")
    config["temp_directory"] = str(spill)
    with owner_only_umask():
        con = duckdb.connect(str(path), config=config)
        ensure_schema(con)
    for p in (path, path.parent / f"{path.name}.wal"):
        secure_file(p)
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables; record the schema version once (comments only on creation)."""
    fresh = not fetch_value(
        con,
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'warehouse_meta' "
        "AND database_name = current_database() AND NOT temporary",
    )
    with transaction(con):
        for stmt in schema.ddl_statements():
            if fresh or not stmt.startswith("COMMENT"):
                con.execute(stmt)
        if fresh:
            con.execute(
                "INSERT INTO warehouse_meta VALUES ('schema_version', ?)", [schema.SCHEMA_VERSION]
            )
        migrate_mart_pay_lines(con)  # a warehouse from before the view: its copied lines go first
        ensure_views(con)  # after the tables: views read them


def database_path(con: duckdb.DuckDBPyConnection) -> Path | None:
    """File of the connection's database (None for an in-memory one)."""
    path = fetch_value(
        con, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    )
    return Path(path) if path else None


def default_archive_dir(con: duckdb.DuckDBPyConnection) -> Path:
    """`<db_dir>/archive`: the content-addressed copy of every received file."""
    db = database_path(con)
    if db is None:
        raise ValueError("an in-memory warehouse has no default archive folder")
    return db.parent / "archive"


def default_quarantine_dir(con: duckdb.DuckDBPyConnection) -> Path:
    """`<db_dir>/quarantine`: rejected deliveries with their reason."""
    db = database_path(con)
    if db is None:
        raise ValueError("an in-memory warehouse has no default quarantine folder")
    return db.parent / "quarantine"


# --- transactions --------------------------------------------------------------------------

# Connections inside a `transaction` block. DuckDB has no nested transactions and a failed
# BEGIN would abort the open one, so nesting is tracked here: an inner block joins the outer.
_OPEN: set[int] = set()


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN .. COMMIT, ROLLBACK on any exception; nested blocks join the outermost one.

    Runs under an owner-only umask: DuckDB creates its WAL (and spill files) on the first
    write, with the process umask, and they hold the same personal data as the database.
    """
    key = id(con)
    if key in _OPEN:
        yield con
        return
    with owner_only_umask():
        con.execute("BEGIN TRANSACTION")
        _OPEN.add(key)
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")  # a failed COMMIT may already have rolled back
            raise
        finally:
            _OPEN.discard(key)


# --- the single-writer lock ----------------------------------------------------------------


class WarehouseLock:
    """Exclusive lock on `<db>.lock` (fcntl.flock), held for a whole verify.

    `wait_seconds` = how long to wait for another writer; then `WarehouseBusy` names the PID
    holding the lock. The lock dies with its process, so a crashed writer never blocks.
    """

    def __init__(self, db_path: str | os.PathLike, wait_seconds: float = 0.0, poll: float = 0.1):
        self.db_path = Path(db_path)
        self.path = self.db_path.parent / f"{self.db_path.name}.lock"
        self.wait_seconds = wait_seconds
        self.poll = poll
        self._fd: int | None = None

    def acquire(self) -> Self:
        make_private_dir(self.path.parent)
        with owner_only_umask():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise self._busy(holder) from None
                time.sleep(self.poll)
        # Record who holds it, for the message other processes show.
        os.ftruncate(fd, 0)
        note = f"{os.getpid()} {socket.gethostname()} {utc_now().isoformat(timespec='seconds')}Z\n"
        os.pwrite(fd, note.encode(), 0)
        self._fd = fd
        return self

    def _busy(self, holder: str) -> WarehouseBusy:
        parts = holder.split()
        pid = int(parts[0]) if parts and parts[0].isdigit() else None
        who = f"process PID {pid}" if pid else "another process (PID unknown)"
        if len(parts) >= 3:
            who += f" on {parts[1]} since {parts[2]}"
        msg = (
            f"warehouse {self.db_path} is busy: {who} holds the lock {self.path}; "
            f"waited {self.wait_seconds:g}s, try again when it has finished"
        )
        return WarehouseBusy(msg, pid)

    def release(self) -> None:
        if self._fd is not None:
            # The file stays: deleting it would let two processes lock different inodes.
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""


# --- digest --------------------------------------------------------------------------------


def warehouse_digest(
    con: duckdb.DuckDBPyConnection, exclude_delivery_log: bool = False, ignore_times: bool = False
) -> str:
    """sha256 over every table's name, columns and sorted rows: equal digests = same content.

    `exclude_delivery_log` leaves out `deliveries` and `delivery_files`, the only tables a
    repeated (noop) or rejected delivery may change. `ignore_times` leaves out timestamp
    columns (when something happened), to compare a crashed-and-resumed warehouse with a
    clean one.
    """
    names = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND NOT temporary ORDER BY table_name"
        ).fetchall()
    ]
    h = hashlib.sha256()
    for name in names:
        if exclude_delivery_log and name in DELIVERY_LOG_TABLES:
            continue
        cols = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
            "AND database_name = current_database() AND schema_name = 'main' "
            "ORDER BY column_index",
            [name],
        ).fetchall()
        if ignore_times:
            cols = [(c, t) for c, t in cols if not t.startswith("TIMESTAMP")]
        row = "{" + ", ".join(f"'{c}': t.\"{c}\"" for c, _ in cols) + "}" if cols else "{'_': 1}"
        n, rows_sha = fetch_one(
            con,
            f"SELECT count(*), sha256(coalesce(string_agg(r, chr(10) ORDER BY r), '')) "
            f'FROM (SELECT CAST(to_json({row}) AS VARCHAR) AS r FROM "{name}" AS t)',
        )
        h.update(f"{name}|{cols}|{n}|{rows_sha}\n".encode())
    return h.hexdigest()
