"""What the reader hands on: a validated manifest and typed source frames of one run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from paywatch.privacy import mask_ibans_in


class ExtractError(Exception):
    """A broken format rule (▣): the whole run is unacceptable (exit 2).

    `line` is the physical line where the offending record starts (header = 1), None for
    what is in no CSV row; `column` the column name, None when no column is concerned.
    `run_id` is the manifest's run_id once the reader has validated it (None before, or when
    it is itself the problem): quarantine names its folder and log row from it and never
    parses the manifest again.
    """

    def __init__(
        self, file: str, line: int | None, column: str | None, reason: str,
        run_id: str | None = None,
    ):
        # Masked here, where the text is made: stderr, REASON.txt, logs and the delivery log
        # all carry this reason, and none may show an account number.
        reason = mask_ibans_in(reason)
        super().__init__(reason)
        self.file, self.line, self.column, self.reason = file, line, column, reason
        self.run_id = run_id

    def __reduce__(self):  # pickled whole when a read on a Dask worker hands it back
        return (type(self), (self.file, self.line, self.column, self.reason, self.run_id))

    def one_line(self) -> str:
        line = "-" if self.line is None else str(self.line)
        column = "-" if self.column is None else self.column
        return mask_ibans_in(f"{self.file}:{line}:{column}: {self.reason}")

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
