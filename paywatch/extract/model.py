"""What the reader hands on: a validated manifest and typed source frames of one run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl


class ExtractError(Exception):
    """A broken format rule (▣): the whole run is unacceptable (exit 2).

    `line` is the physical line where the offending record starts (header = 1), None for
    what is in no CSV row; `column` the column name, None when no column is concerned.
    """

    def __init__(self, file: str, line: int | None, column: str | None, reason: str):
        super().__init__(reason)
        self.file, self.line, self.column, self.reason = file, line, column, reason

    def __reduce__(self):  # pickled whole when a read on a Dask worker hands it back
        return (type(self), (self.file, self.line, self.column, self.reason))

    def one_line(self) -> str:
        line = "-" if self.line is None else str(self.line)
        column = "-" if self.column is None else self.column
        return f"{self.file}:{line}:{column}: {self.reason}"

    def __str__(self) -> str:
        return self.one_line()


@dataclass(frozen=True)
class FileEntry:
    rows: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    format_version: str
    run_id: str
    payroll_area: str
    period: str  # YYYYMM
    run_type: str  # SIM1 | SIM2 | SIM3 | FINAL | OFFCYCLE
    pay_date: date
    extracted_at: datetime  # timezone-aware UTC
    files: dict[str, FileEntry]


@dataclass(frozen=True)
class Extract:
    """One run as received. `frames` is keyed by file name ("RT.csv", ...) and holds the
    contract's columns only (extra columns dropped), in the contract's order, typed:
    id/code/text/period/seqnr -> String, date -> Date (99991231 kept as 9999-12-31),
    amount -> Int64 **cents**, number -> Decimal(38, s), integer -> Int64; empty -> null."""

    folder: Path
    manifest: Manifest
    frames: dict[str, pl.DataFrame]
    manifest_bytes: bytes = field(repr=False, default=b"")
