"""Where Paywatch keeps its files by default (the embedded default: one folder, one DuckDB file).

Everything lives under PAYWATCH_HOME (default `./paywatch-data`):
  warehouse.duckdb   the warehouse          landing/     where Umoja (simulated) drops runs
  archive/           received files, by checksum          quarantine/  rejected deliveries
  reports/<run_id>/  exceptions.csv and summaries         outbox/      mails as files
  paywatch.toml      thresholds payroll staff may edit
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    home: Path

    @classmethod
    def default(cls) -> "Paths":
        return cls(Path(os.environ.get("PAYWATCH_HOME", "paywatch-data")))

    @classmethod
    def for_db(cls, db: Path) -> "Paths":
        """Files kept next to a given warehouse file."""
        return cls(db.parent)

    @property
    def db(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def archive(self) -> Path:
        return self.home / "archive"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def config(self) -> Path:
        return self.home / "paywatch.toml"


# --- file modes: payroll data is personal, so everything Paywatch creates is its owner's only

FILE_MODE = 0o600
DIR_MODE = 0o700


@contextlib.contextmanager
def owner_only_umask() -> Iterator[None]:
    """Files and folders created inside (by us or by DuckDB: WAL, spill files) are private."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def make_private_dir(path: Path) -> Path:
    """Create `path` (and parents) if missing; the folders we create are 0700."""
    path = Path(path)
    with owner_only_umask():
        path.mkdir(parents=True, exist_ok=True)
    return path


def private_dir(path: Path) -> Path:
    """Create `path` if missing and make it 0700 (also when it existed)."""
    make_private_dir(path)
    os.chmod(path, DIR_MODE)
    return path


def secure_file(path: Path) -> None:
    """Make an existing file 0600 (one created by a library with its own mode)."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, FILE_MODE)


def write_private(path: Path, data: bytes) -> Path:
    """Write a file readable by its owner only (atomically: never half written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with owner_only_umask():
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
    return path


def append_private(path: Path, data: bytes) -> None:
    """Append `data` to an owner-only file (created 0600 in a 0700 folder) and fsync it: an
    append-only log (the decisions journal) must be on disk before the caller reports success."""
    path = Path(path)
    make_private_dir(path.parent)
    with owner_only_umask():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
