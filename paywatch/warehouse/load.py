"""Loading one received run into the warehouse: archive, then ONE transaction.

Order of a load (docs/extract-format.md, "run_id is unique"):
1. identity check — a known run_id must keep its period, run_type and payroll_area, else the
   delivery is unacceptable (ExtractError, exit 2; the caller then calls `quarantine`);
2. archive every received file (content-addressed, outside the transaction: harmless if the
   transaction then fails, and the bytes are kept whatever happens);
3. same checksums as the current version → 'noop': only the delivery log grows;
   otherwise one transaction writes staging (records deduplicated by content), link rows, RT
   lines, marts, the runs row and the delivery row — and for a correction ('replaced')
   retires the old version and supersedes its findings. Any exception rolls it all back.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from paywatch.extract.model import Extract, ExtractError, Manifest
from paywatch.extract.schema import FILE_NAMES, FILES, STAGING_TABLES, Column
from paywatch.faults import checkpoint
from paywatch.privacy import mask_ibans_in
from paywatch.warehouse import marts
from paywatch.warehouse.db import (
    default_archive_dir,
    fetch_one,
    fetch_value,
    transaction,
    utc_now,
)
from paywatch.warehouse.raw import (
    MANIFEST,
    ArchivedFile,
    archive_files,
    copy_to_quarantine,
)
from paywatch.warehouse.schema import RECORD_FILES, RESULT_FILE, sql_type

_names = itertools.count()


@dataclass(frozen=True)
class LoadResult:
    """What a delivery did: outcome 'loaded' | 'noop' | 'replaced'."""

    outcome: str
    run_id: str
    run_version: int
    message: str
    delivery_id: int


# --- entry points --------------------------------------------------------------------------


def load_run(
    con: duckdb.DuckDBPyConnection,
    extract: Extract,
    files: Mapping[str, bytes | Path] | None = None,
    archive_dir: Path | None = None,
) -> LoadResult:
    """Load one validated run (see module docstring). The caller holds the WarehouseLock.

    `files`: the received files by name (bytes or paths; manifest.json optional, else
    `extract.manifest_bytes`); default: the contract's files in `extract.folder`.
    `archive_dir`: default `<db_dir>/archive`.
    Raises ExtractError for a ▣ rejection; the warehouse is then unchanged.
    """
    m = extract.manifest
    check_run_identity(con, m)
    received = _received_files(extract, files)
    archive_dir = Path(archive_dir) if archive_dir else default_archive_dir(con)
    expected = {name: entry.sha256 for name, entry in m.files.items()}
    archived = archive_files(received, archive_dir, expected=expected)
    now = utc_now()
    current = _current(con, m.run_id)
    if current and _same_checksums(con, current[1], m):
        return _record_noop(con, m, extract.folder, archived, current, now)
    return _load_version(con, extract, archived, current, now)


def check_run_identity(con: duckdb.DuckDBPyConnection, m: Manifest) -> None:
    """A known run_id keeps its period, run_type and payroll_area (▣, checked first)."""
    row = fetch_one(
        con,
        "SELECT payroll_area, period, run_type FROM runs WHERE run_id = ? "
        "ORDER BY version LIMIT 1",
        [m.run_id],
    )
    if row and tuple(row) != (m.payroll_area, m.period, m.run_type):
        raise ExtractError(
            MANIFEST, None, "run_id",
            f"run_id {m.run_id} was loaded as payroll area {row[0]}, period {row[1]}, "
            f"run type {row[2]}; this delivery says {m.payroll_area}, {m.period}, {m.run_type}",
            run_id=m.run_id,
        )


def quarantine(
    folder: Path,
    reason: str | ExtractError,
    quarantine_dir: Path,
    con: duckdb.DuckDBPyConnection | None = None,
    run_id: str | None = None,
) -> Path:
    """Keep a rejected delivery: copy its contract files (regular files only, symbolic links
    never followed) into `<quarantine_dir>/<timestamp>-<run id or 'unknown'>/` with
    REASON.txt, and — given a connection — log a 'rejected' delivery in its own small
    transaction. Returns the quarantine folder.

    Works from the raw bytes only: the manifest is never parsed again (it may be what broke
    the reader). The run id is `run_id`, else the one the reader validated (carried by the
    ExtractError), else unknown."""
    if isinstance(reason, ExtractError):
        run_id = run_id or reason.run_id
        reason = reason.one_line()
    reason = mask_ibans_in(str(reason))
    target, copied, _ = copy_to_quarantine(Path(folder), reason, quarantine_dir, run_id)
    if con is not None:
        manifest_sha = next((f.sha256 for f in copied if f.file_name == MANIFEST), None)
        with transaction(con):
            delivery_id = _next_delivery_id(con)
            _insert_delivery(
                con, delivery_id, run_id, None, utc_now(), folder, manifest_sha, "rejected",
                reason, quarantine_path=str(target),
            )
            _insert_delivery_files(con, delivery_id, copied)
    return target


# --- received files ------------------------------------------------------------------------


def _received_files(extract: Extract, files) -> dict[str, bytes | Path]:
    """The eleven contract files as received (bytes or paths), by name."""
    if files is None:
        files = {name: Path(extract.folder) / name for name in FILE_NAMES}
    received = {name: files[name] for name in FILE_NAMES if name in files}
    missing = [name for name in FILE_NAMES if name not in received]
    if missing:
        raise ExtractError(missing[0], None, None, "file not received")
    if MANIFEST in files:
        received[MANIFEST] = files[MANIFEST]
    elif extract.manifest_bytes:
        received[MANIFEST] = extract.manifest_bytes  # exactly the bytes the reader parsed
    else:
        received[MANIFEST] = Path(extract.folder) / MANIFEST
    return received


def _current(con, run_id: str) -> tuple[int, int] | None:
    """(version, delivery_id) of the run's current version, None for a new run."""
    row = fetch_one(
        con, "SELECT version, delivery_id FROM runs WHERE run_id = ? AND is_current", [run_id]
    )
    return (row[0], row[1]) if row else None


def _same_checksums(con, delivery_id: int, m: Manifest) -> bool:
    """Do the ten CSVs carry the checksums of the current version's delivery?"""
    rows = con.execute(
        "SELECT file_name, sha256 FROM delivery_files WHERE delivery_id = ?", [delivery_id]
    ).fetchall()
    stored = {name: sha for name, sha in rows if name in FILES}
    return stored == {name: m.files[name].sha256 for name in FILE_NAMES}


# --- delivery log --------------------------------------------------------------------------


def _next_delivery_id(con) -> int:
    # Single writer (WarehouseLock), so max + 1 is safe and ids stay dense and readable.
    return fetch_value(con, "SELECT coalesce(max(delivery_id), 0) + 1 FROM deliveries")


def _insert_delivery(
    con, delivery_id, run_id, run_version, received_at, folder, manifest_sha, outcome,
    reason=None, replaced_delivery_id=None, quarantine_path=None,
) -> None:
    con.execute(
        "INSERT INTO deliveries (delivery_id, run_id, run_version, received_at, source_folder, "
        "manifest_sha256, outcome, reason, replaced_delivery_id, quarantine_path) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [delivery_id, run_id, run_version, received_at, str(folder) if folder else None,
         manifest_sha, outcome, reason, replaced_delivery_id, quarantine_path],
    )


def _insert_delivery_files(con, delivery_id: int, files: list[ArchivedFile]) -> None:
    if files:
        con.executemany(
            "INSERT INTO delivery_files VALUES (?, ?, ?, ?)",
            [[delivery_id, f.file_name, f.sha256, f.size_bytes] for f in files],
        )


def _insert_raw_files(con, archived: list[ArchivedFile], now: datetime) -> None:
    # Content-addressed: a file seen before keeps its first name and first reception time.
    con.executemany(
        "INSERT OR IGNORE INTO raw_files VALUES (?, ?, ?, ?, ?)",
        [[f.sha256, f.file_name, f.size_bytes, f.archived_path, now] for f in archived],
    )


def _manifest_sha(archived: list[ArchivedFile]) -> str | None:
    return next((f.sha256 for f in archived if f.file_name == MANIFEST), None)


def _record_noop(con, m, folder, archived, current, now) -> LoadResult:
    version, _ = current
    with transaction(con):
        _insert_raw_files(con, archived, now)  # only a changed manifest can be new here
        delivery_id = _next_delivery_id(con)
        _insert_delivery(con, delivery_id, m.run_id, version, now, folder,
                         _manifest_sha(archived), "noop",
                         "same file checksums as the current version")
        _insert_delivery_files(con, delivery_id, archived)
    return LoadResult("noop", m.run_id, version,
                      f"{m.run_id} version {version} already loaded with these files: nothing to do",
                      delivery_id)


# --- the load transaction ------------------------------------------------------------------


def _load_version(con, extract: Extract, archived, current, now) -> LoadResult:
    m = extract.manifest
    version = current[0] + 1 if current else 1
    outcome = "replaced" if current else "loaded"
    with transaction(con):
        delivery_id = _next_delivery_id(con)
        _insert_raw_files(con, archived, now)
        _insert_delivery(con, delivery_id, m.run_id, version, now, extract.folder,
                         _manifest_sha(archived), outcome,
                         replaced_delivery_id=current[1] if current else None)
        _insert_delivery_files(con, delivery_id, archived)
        if current:
            _retire_version(con, m.run_id, current, delivery_id)
        new_records = sum(
            _load_records(con, name, extract.frames[name], m.run_id, version)
            for name in RECORD_FILES
        )
        n_lines = _load_pay_lines(con, extract.frames[RESULT_FILE], m.run_id, version)
        _insert_run(con, m, version, delivery_id, now)
        marts.build_run_marts(con, m.run_id, version)
        checkpoint("load-transaction")
    what = f"correction of version {current[0]}" if current else "new run"
    msg = (f"{m.run_id} version {version} loaded ({what}): {n_lines} pay lines, "
           f"{new_records} new master/reference records")
    return LoadResult(outcome, m.run_id, version, msg, delivery_id)


def _retire_version(con, run_id: str, current: tuple[int, int], delivery_id: int) -> None:
    """A correction: the old version stops being current and its findings are superseded —
    kept as history, never deleted or edited otherwise."""
    version, old_delivery = current
    con.execute("UPDATE runs SET is_current = false WHERE run_id = ? AND version = ?",
                [run_id, version])
    con.execute("UPDATE findings SET superseded = true WHERE run_id = ? AND run_version <= ? "
                "AND NOT superseded", [run_id, version])
    con.execute("UPDATE deliveries SET replaced_by = ? WHERE delivery_id = ?",
                [delivery_id, old_delivery])


def _utc_naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _insert_run(con, m: Manifest, version: int, delivery_id: int, now: datetime) -> None:
    # A correction takes the place of the run it replaces (docs/extract-format.md): its position
    # in run order stays that of version 1, whatever its own extracted_at.
    first = fetch_one(con, "SELECT order_extracted_at FROM runs WHERE run_id = ? AND version = 1",
                      [m.run_id])
    extracted = _utc_naive(m.extracted_at)
    con.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, true, ?)",
        [m.run_id, version, m.payroll_area, m.period, m.run_type, m.pay_date, extracted,
         first[0] if first else extracted, delivery_id, now],
    )


# --- staging -------------------------------------------------------------------------------


def _source_frame(frame: pl.DataFrame, cols: tuple[Column, ...]) -> pl.DataFrame:
    """The contract columns under their staging names (accepts SAP or staging names)."""
    exprs = []
    for c in cols:
        name = c.name if c.name in frame.columns else c.staging
        e = pl.col(name)
        if c.name == "DEPENDENT":
            if frame.schema[name] != pl.Boolean:
                e = e == "X"
            e = e.fill_null(False)
        elif c.kind == "number" and frame.schema[name] == pl.String:
            e = e.str.to_decimal()
        elif c.kind == "number" and frame.schema[name].is_float():
            raise TypeError(f"{c.name}: a float column cannot be stored exactly")
        exprs.append(e.alias(c.staging))
    return frame.select(exprs)


def _decimal_scale(con, table: str, column: str) -> int:
    return fetch_value(
        con,
        "SELECT numeric_scale FROM duckdb_columns() WHERE table_name = ? AND column_name = ? "
        "AND database_name = current_database() AND schema_name = 'main'",
        [table, column],
    )


def _widen_numbers(con, src_name, src: pl.DataFrame, tables, cols) -> None:
    """Keep numbers exact: widen a DECIMAL column's scale when a value needs more decimals
    than it has (within the transaction: rolled back with it)."""
    for c in cols:
        dtype = src.schema[c.staging]
        if c.kind != "number" or not isinstance(dtype, pl.Decimal):
            continue
        have = _decimal_scale(con, tables[0], c.staging)
        if dtype.scale <= have:
            continue
        lost = fetch_value(
            con,
            f"SELECT count(*) FROM {src_name} WHERE CAST(CAST({c.staging} AS "
            f"DECIMAL(38,{have})) AS DECIMAL(38,{dtype.scale})) <> {c.staging}",
        )
        if lost:
            for table in tables:
                con.execute(f"ALTER TABLE {table} ALTER {c.staging} TYPE "
                            f"DECIMAL(38,{dtype.scale})")


def _typed_select(con, table: str, cols: tuple[Column, ...]) -> str:
    """SELECT list casting each source column to its staging type (current decimal scale)."""
    parts = []
    for c in cols:
        t = sql_type(c)
        if c.kind == "number":
            t = f"DECIMAL(38,{_decimal_scale(con, table, c.staging)})"
        parts.append(f"CAST({c.staging} AS {t}) AS {c.staging}")
    return ", ".join(parts)


def record_key_sql(cols: tuple[Column, ...]) -> str:
    """md5 of a record's typed content — the same record gets the same key in every run.

    Text is length-prefixed (no separator can be forged by a value), numbers are written
    without trailing zeros (the key survives a widened scale), null is '~' (no value renders
    so). 'v1' versions the recipe.
    """
    parts = []
    for c in cols:
        v = c.staging
        if sql_type(c) == "VARCHAR":
            s = f"CAST(length({v}) AS VARCHAR) || ':' || {v}"
        elif c.kind == "number":
            s = f"rtrim(rtrim(CAST({v} AS VARCHAR), '0'), '.')"
        else:
            s = f"CAST({v} AS VARCHAR)"
        parts.append(f"coalesce({s}, '~')")
    return f"md5(concat_ws('|', 'v1', {', '.join(parts)}))"


def _load_records(con, file_name: str, frame: pl.DataFrame, run_id: str, version: int) -> int:
    """Master/reference file: insert records not stored yet (anti-join on record_key), then
    link every record of the file to this run version. Returns the number of new records."""
    table, cols = STAGING_TABLES[file_name], FILES[file_name]
    src = _source_frame(frame, cols)
    src_name, inc = f"_src_{next(_names)}", f"_incoming_{table}"
    con.register(src_name, src)
    try:
        _widen_numbers(con, src_name, src, [table], cols)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {inc} AS SELECT {record_key_sql(cols)} AS record_key, "
            f"* FROM (SELECT {_typed_select(con, table, cols)} FROM {src_name})"
        )
    finally:
        _unregister(con, src_name)
    added = fetch_value(  # an INSERT returns the number of rows it inserted
        con,
        f"INSERT INTO {table} BY NAME SELECT DISTINCT ON (record_key) * FROM {inc} "
        f"ANTI JOIN {table} USING (record_key)",
    )
    con.execute(
        f"INSERT INTO stg_record_runs SELECT ?, record_key, ?, ?, count(*) FROM {inc} "
        "GROUP BY record_key",
        [table, run_id, version],
    )
    con.execute(f"DROP TABLE {inc}")
    return added


def _load_pay_lines(con, frame: pl.DataFrame, run_id: str, version: int) -> int:
    """RT lines are per run version (not deduplicated): grain one row per RT record."""
    cols = FILES[RESULT_FILE]
    table = STAGING_TABLES[RESULT_FILE]
    # line_no = record index in the file, taken before DuckDB may scan in parallel.
    src = _source_frame(frame, cols).with_row_index("line_no", offset=1)
    src_name = f"_src_{next(_names)}"
    con.register(src_name, src)
    try:
        _widen_numbers(con, src_name, src, [table], cols)
        con.execute(
            f"INSERT INTO {table} BY NAME SELECT $1 AS run_id, $2 AS run_version, "
            f"CAST(line_no AS BIGINT) AS line_no, {_typed_select(con, table, cols)} "
            f"FROM {src_name}",
            [run_id, version],
        )
    finally:
        _unregister(con, src_name)
    return src.height


def _unregister(con, name: str) -> None:
    try:
        con.unregister(name)
    except duckdb.Error:
        pass  # in an aborted transaction: the rollback drops the view anyway
