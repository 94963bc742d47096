"""Where Paywatch keeps its files by default (the embedded default: one folder, one DuckDB file).

Everything lives under PAYWATCH_HOME (default `./paywatch-data`):
  warehouse.duckdb   the warehouse          landing/     where Umoja (simulated) drops runs
  archive/           received files, by checksum          quarantine/  rejected deliveries
  reports/<run_id>/  exceptions.csv and summaries         outbox/      mails as files
  paywatch.toml      thresholds payroll staff may edit
"""

from __future__ import annotations

import os
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


def private_dir(path: Path) -> Path:
    """Create a folder readable by its owner only (payroll data is personal)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path
