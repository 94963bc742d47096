"""Read one extracted run folder (docs/extract-format.md 1.0) into typed polars frames.

Every ▣ format rule is enforced here; the first broken one raises ExtractError with the file,
the physical line where the offending record starts (header = line 1) and the column.

Design: each CSV is read into memory once (hashed for the checksum), split into physical
lines and grouped into records by quote parity (a line break inside a quoted field leaves an
odd number of quotes before it). The dialect is checked on all records at once with regular
expressions, so line numbers are exact without a per-record Python loop. Single-line records
(the normal case) are then parsed by polars; files holding quoted line breaks are parsed by
the small scanner below, which is exact but slower. Values are checked and typed column-wise.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

from paywatch.extract import schema
from paywatch.extract.model import Extract, ExtractError, FileEntry, Manifest
from paywatch.privacy import WITHHELD, shown_value

__all__ = ["MANIFEST_NAME", "parse_manifest", "read_manifest", "read_run"]

MANIFEST_NAME = "manifest.json"
_BOM = b"\xef\xbb\xbf"

# A field of the dialect: quoted (anything, quotes doubled) or unquoted (no comma, quote or
# line break; a bare CR is not a line end in this contract, so it is refused too).
_QUOTED = r'"(?:[^"]|"")*"'
_FIELD = rf'(?:{_QUOTED}|[^,"\r\n]*)'
_RECORD_SHAPE = rf"^{_FIELD}(?:,{_FIELD})*$"
_UNQUOTED = re.compile(r'[^,"\r\n]*')

_ONLY_LINE_BREAKS = re.compile(rb"[\r\n]*")
_PERIOD_RE = re.compile(r"[0-9]{4}(?:0[1-9]|1[0-2])")
_DATE_RE = re.compile(r"[0-9]{8}")
_STAMP_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
# Both name folders and files downstream (revised December 2026): nothing else may pass.
RUN_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
PAYROLL_AREA_RE = re.compile(r"[A-Z0-9]{1,8}")
# A manifest is about 2 KB and 3 levels deep; these bounds only stop hostile ones early
# (a 100,000-deep nesting would otherwise exhaust the parser's recursion).
_MAX_MANIFEST_BYTES = 1 << 20
_MAX_MANIFEST_DEPTH = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')

# Amounts become Int64 cents: at most 16 integer digits keeps |cents| < 2**63.
_MAX_AMOUNT_DIGITS = 16
_DECIMAL_PRECISION = 38

_KIND_DESC = {
    "id": "an id of exactly 8 digits",
    "date": "a date YYYYMMDD",
    "period": "a period YYYYMM",
    "amount": "an amount (optional leading '-', digits, optional '.' and 1-2 decimals)",
    "number": "a number (optional leading '-', digits, optional '.' and decimals)",
    "integer": "an integer",
    "seqnr": "a string of digits",
}
_CODE_DESC = {
    "TRFST": "a step 01-15",
    "MASSN": "an action type 01-09",
    "OBJPS": "2 digits",
    "FAMSA": "1 or 2",
    "STAT2": "0, 1 or 3",
    "PERSG": "P, D or G",
    "TRFGR": "a grade P-1..P-5, D-1, D-2, G-1..G-7",
    "DEPENDENT": "X or empty",
    "LGART": "4 characters",
    "CLASS": "EARNING, DEDUCTION or TOTAL",
    "RUN_TYPES": "REGULAR and/or OFFCYCLE separated by '|'",
    "OWNER": "HR or FINANCE",
    "WAERS": "USD or CHF",
}


# --------------------------------------------------------------------------- public API


def read_run(folder: Path) -> Extract:
    """Read and validate one run folder; raise ExtractError on the first broken ▣ rule."""
    folder = Path(folder)
    manifest, manifest_bytes = read_manifest(folder)
    try:
        frames = _read_files(folder, manifest)
    except ExtractError as e:
        # quarantine and the delivery log take the run_id from here, never from a new parse
        e.run_id = e.run_id or manifest.run_id
        raise
    return Extract(folder=folder, manifest=manifest, frames=frames, manifest_bytes=manifest_bytes)


def _read_files(folder: Path, manifest: Manifest) -> dict[str, pl.DataFrame]:
    # Presence first: a missing or linked file is a more basic fault than a bad value.
    for name in schema.FILE_NAMES:
        _lstat_regular(folder, name)
    frames = {}
    for name in schema.FILE_NAMES:
        data = _read_regular(folder, name)
        entry = manifest.files[name]
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise ExtractError(name, None, None, "sha256 checksum differs from the manifest")
        frames[name] = _parse_csv(name, data, entry.rows, manifest)
        del data
    return frames


def read_manifest(folder: Path) -> tuple[Manifest, bytes]:
    """Validate the folder and its manifest.json (cheap: no CSV is opened)."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ExtractError("-", None, None, f"run folder {str(folder)!r} {what}")
    data = _read_regular(folder, MANIFEST_NAME)
    return parse_manifest(data), data


def parse_manifest(data: bytes) -> Manifest:
    """Parse and validate the bytes of a manifest.json."""

    known_run_id = None  # set once run_id itself passed: later errors carry it

    def bad(reason: str, key: str | None = None) -> ExtractError:
        return ExtractError(MANIFEST_NAME, None, key, reason, run_id=known_run_id)

    if len(data) > _MAX_MANIFEST_BYTES:
        raise bad(f"too large ({len(data)} bytes; a manifest is at most {_MAX_MANIFEST_BYTES})")
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad(f"not UTF-8 (invalid byte at offset {e.start})") from None
    if _nesting_depth(text) > _MAX_MANIFEST_DEPTH:
        raise bad(f"not valid JSON: nested more than {_MAX_MANIFEST_DEPTH} levels deep")
    try:
        obj = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise bad(f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise bad("not valid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise bad("not a JSON object")

    def text_field(key: str, column: str | None = None) -> str:
        if key not in obj:
            raise bad(f"{key} is missing", column)
        value = obj[key]
        if not isinstance(value, str) or not value:
            raise bad(f"{key} must be a non-empty string, got {_show(value)}", column)
        return value

    version = text_field("format_version")
    if version != schema.FORMAT_VERSION:
        raise bad(f"format_version {_show(version)} is not {schema.FORMAT_VERSION!r}")
    run_id = text_field("run_id", "run_id")
    if not RUN_ID_RE.fullmatch(run_id):
        raise bad(
            f"run_id {_show(run_id)} is not 1-64 characters from A-Z, a-z, 0-9, '.', '_', '-' "
            "not starting with '.'", "run_id",
        )
    known_run_id = run_id
    payroll_area = text_field("payroll_area", "payroll_area")
    if not PAYROLL_AREA_RE.fullmatch(payroll_area):
        raise bad(
            f"payroll_area {_show(payroll_area)} is not 1-8 characters from A-Z, 0-9",
            "payroll_area",
        )
    period = text_field("period")
    if not _PERIOD_RE.fullmatch(period):
        raise bad(f"period {_show(period)} is not YYYYMM with month 01-12")
    run_type = text_field("run_type")
    if run_type not in schema.RUN_TYPES:
        raise bad(f"run_type {_show(run_type)} is not one of {', '.join(schema.RUN_TYPES)}")
    pay_text = text_field("pay_date")
    pay_date = _calendar_date(pay_text) if _DATE_RE.fullmatch(pay_text) else None
    if pay_date is None:
        raise bad(f"pay_date {_show(pay_text)} is not a real date YYYYMMDD")
    stamp = text_field("extracted_at")
    extracted_at = _utc_stamp(stamp)
    if extracted_at is None:
        raise bad(f"extracted_at {_show(stamp)} is not a UTC time YYYY-MM-DDThh:mm:ssZ")
    return Manifest(
        format_version=version,
        run_id=run_id,
        payroll_area=payroll_area,
        period=period,
        run_type=run_type,
        pay_date=pay_date,
        extracted_at=extracted_at,
        files=_manifest_files(obj.get("files"), bad),
    )


# --------------------------------------------------------------------------- manifest helpers


def _nesting_depth(text: str) -> int:
    """The deepest [ / { nesting outside strings (cheap: only brackets are walked)."""
    brackets = _JSON_STRING.sub("", text)
    brackets = "".join(ch for ch in brackets if ch in "[]{}") if len(brackets) > 64 else brackets
    depth = deepest = 0
    for ch in brackets:
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif ch in "]}":
            depth -= 1
    return deepest


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    # json.loads silently keeps the last of duplicate keys; in a manifest that hides mistakes.
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ExtractError(MANIFEST_NAME, None, None, f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> object:
    raise ExtractError(MANIFEST_NAME, None, None, f"not valid JSON: {name} is not allowed")


def _manifest_files(files: object, bad) -> dict[str, FileEntry]:
    if not isinstance(files, dict):
        raise bad(f"files must be an object, got {_show(files)}")
    # Names are only compared, never used as paths, so "../../etc/passwd" is never opened.
    unknown = sorted(set(files) - set(schema.FILE_NAMES))
    if unknown:
        raise bad(f"files lists unknown file(s) {', '.join(map(repr, unknown))}")
    missing = [n for n in schema.FILE_NAMES if n not in files]
    if missing:
        raise bad(f"files does not list {', '.join(missing)}")
    out = {}
    for name in schema.FILE_NAMES:
        entry = files[name]
        if not isinstance(entry, dict):
            raise bad(f"files[{name!r}] must be an object")
        rows = entry.get("rows")
        # bool is an int in Python; true/false are not row counts.
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise bad(f"files[{name!r}].rows must be an integer >= 0, got {_show(rows)}")
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
            raise bad(f"files[{name!r}].sha256 must be 64 lower-case hex digits, got {_show(sha)}")
        out[name] = FileEntry(rows=rows, sha256=sha)
    return out


def _calendar_date(text: str) -> date | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _utc_stamp(text: str) -> datetime | None:
    m = _STAMP_RE.fullmatch(text)
    if not m:
        return None
    try:
        return datetime(*map(int, m.groups()), tzinfo=timezone.utc)
    except ValueError:
        return None


def _show(value: object, file: str = "", column: str = "") -> str:
    shown = shown_value(file, column, value)
    if shown is WITHHELD:
        return WITHHELD
    # repr keeps a message on one line (line breaks, controls and bidi marks escaped)
    text = repr(shown)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- file access


def _lstat_regular(folder: Path, name: str) -> None:
    try:
        st = os.lstat(folder / name)
    except FileNotFoundError:
        raise ExtractError(name, None, None, "file is missing") from None
    except OSError as e:
        raise ExtractError(name, None, None, f"cannot access file: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ExtractError(name, None, None, "is a symbolic link (only regular files are accepted)")
    if not stat.S_ISREG(st.st_mode):
        raise ExtractError(name, None, None, "is not a regular file")


def _read_regular(folder: Path, name: str) -> bytes:
    """The bytes of folder/name, refusing symlinks and non-regular files without following."""
    _lstat_regular(folder, name)
    # O_NOFOLLOW closes the gap between lstat and open; O_NONBLOCK keeps a FIFO swapped in
    # meanwhile from blocking us (fstat then refuses it).
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(folder / name, flags)
    except OSError as e:
        raise ExtractError(name, None, None, f"cannot open file: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ExtractError(name, None, None, "is not a regular file")
        return f.read()


# --------------------------------------------------------------------------- CSV dialect


def _decode(name: str, data: bytes) -> pl.Series:
    """The file as a one-element String series; invalid UTF-8 names the line of the bad byte."""
    try:
        # Validating in polars avoids a second full copy of the text as a Python str.
        return pl.Series([data], dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.PolarsError:
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        reason = f"invalid UTF-8 (byte 0x{data[e.start]:02x})"
        raise ExtractError(name, line, None, reason) from None
    return pl.Series([text], dtype=pl.String)


def _records(data: bytes, text: pl.Series) -> tuple[pl.Series, pl.Series | None]:
    """Split the text into records (line ends removed) and their physical start lines.

    The start-line series is None when every record is one line (record k starts on line
    k + 1). Parity works because a valid record holds an even number of quotes and a line
    break inside a quoted field follows an odd number; for the first bad record the grouping
    up to it is still right, so its start line is exact.
    """
    lines = text.str.split("\n").explode()
    del text
    if data.endswith(b"\n"):  # the final line break is optional; it does not open a line
        lines = lines.head(len(lines) - 1)
    starts = None
    if b'"' in data:
        odd = (lines.str.count_matches('"', literal=True).cum_sum() % 2) == 1
        if odd.any():
            first = ~odd.shift(1, fill_value=False)
            group = first.cum_sum()
            lines = (
                pl.DataFrame({"g": group, "l": lines})
                .group_by("g", maintain_order=True)
                .agg(pl.col("l").str.join("\n"))
                .get_column("l")
            )
            starts = first.arg_true() + 1
    # Strip the CR of a CRLF. A CR at the very end of a file without a final LF is no line
    # end: it is kept so that the record fails the shape check as a bare CR.
    if b"\r" not in data:
        pass  # LF-only file: nothing to strip, spare the copy
    elif data.endswith(b"\n") or not data.endswith(b"\r"):
        lines = lines.str.strip_suffix("\r")
    elif len(lines) > 1:
        lines = pl.concat([lines.head(len(lines) - 1).str.strip_suffix("\r"), lines.tail(1)])
    return lines, starts


def _split_record(rec: str) -> tuple[list[str], str | None, int]:
    """Split one record into fields: (fields, problem or None, index of the bad field)."""
    fields: list[str] = []
    i, end = 0, len(rec)
    while True:
        if i < end and rec[i] == '"':
            parts, j = [], i + 1
            while True:
                k = rec.find('"', j)
                if k < 0:
                    return fields, "unterminated quoted field", len(fields)
                if rec.startswith('""', k):
                    parts.append(rec[j : k + 1])
                    j = k + 2
                    continue
                parts.append(rec[j:k])
                i = k + 1
                break
            fields.append("".join(parts))
            if i == end:
                return fields, None, -1
            if rec[i] != ",":
                return fields, f"unexpected {rec[i]!r} after a closing quote", len(fields) - 1
            i += 1
        else:
            m = _UNQUOTED.match(rec, i)
            k = m.end()
            if k < end and rec[k] != ",":
                if rec[k] == '"':
                    what = "quote inside an unquoted field"
                elif rec[k] == "\r":
                    what = "bare CR (line ends must be LF or CRLF)"
                else:
                    what = "line break outside quotes"
                return fields, what, len(fields)
            fields.append(rec[i:k])
            if k == end:
                return fields, None, -1
            i = k + 1


def _diagnose(rec: str, header: list[str]) -> tuple[str, str | None]:
    """Why a record failed the vectorised dialect check: (reason, column or None)."""
    if rec == "":
        return "blank line", None
    fields, problem, index = _split_record(rec)
    if problem:
        return problem, header[index] if 0 <= index < len(header) else None
    n = len(header)
    if len(fields) < n:
        return f"too few fields ({len(fields)}, the header has {n}): truncated record", None
    if len(fields) > n:
        return f"too many fields ({len(fields)}, the header has {n})", None
    return "malformed record", None  # not reached: the checks above mirror the regexes


def _header(name: str, record: str) -> tuple[list[str], dict[str, int]]:
    """The header fields and the position of each contract column."""
    if record == "":
        raise ExtractError(name, 1, None, "blank line where the header is expected")
    header, problem, index = _split_record(record)
    if problem:
        raise ExtractError(name, 1, None, f"header: {problem}")
    position: dict[str, int] = {}
    contract = [c.name for c in schema.FILES[name]]
    for i, field in enumerate(header):
        if field in contract:
            if field in position:
                raise ExtractError(name, 1, field, f"duplicate column {field}")
            position[field] = i
    missing = [c for c in contract if c not in position]
    if missing:
        reason = f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        # A semicolon or tab file reads as one long column: say what is likely wrong.
        if len(header) == 1 or any(sep in f for f in header for sep in ";\t|"):
            reason += " (is the file comma-separated?)"
        raise ExtractError(name, 1, missing[0], reason)
    return header, position


def _parse_csv(name: str, data: bytes, expected_rows: int, manifest: Manifest) -> pl.DataFrame:
    """Check the dialect and values of one CSV and return its typed contract columns."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if _ONLY_LINE_BREAKS.fullmatch(data):  # (not data.strip(): that copies the whole file)
        raise ExtractError(name, None, None, "empty file (no header)")
    records, starts = _records(data, _decode(name, data))

    def line_of(record_index: int) -> int:
        return record_index + 1 if starts is None else int(starts[record_index])

    header, position = _header(name, records[0])
    n = len(header)
    if b'"' in data:
        shape_ok = records.str.contains(_RECORD_SHAPE)
        separators = records.str.replace_all(_QUOTED, "").str.count_matches(",", literal=True)
    else:  # without quotes a line can only go wrong by a bare CR or its field count
        shape_ok = ~records.str.contains("\r", literal=True)
        separators = records.str.count_matches(",", literal=True)
    bad = (~shape_ok) | (separators != n - 1)
    if bad.any():
        k = int(bad.arg_true()[0])
        reason, column = _diagnose(records[k], header)
        raise ExtractError(name, line_of(k), column, reason)
    del shape_ok, separators, bad

    rows = len(records) - 1
    if rows != expected_rows:
        reason = f"{rows} data records, the manifest says {expected_rows}"
        raise ExtractError(name, None, None, reason)
    if name == "RT.csv" and rows == 0 and manifest.run_type in schema.REGULAR_RUN_TYPES:
        reason = f"no payroll results in a regular run ({manifest.run_type})"
        raise ExtractError(name, None, None, reason)

    columns = schema.FILES[name]
    if starts is None:
        del records  # free it before the parser allocates the columns
        raw = pl.read_csv(
            data,
            has_header=False,
            skip_lines=1,  # the header is one physical line here
            schema={f"_{i}": pl.String for i in range(n)},
            quote_char='"',
            raise_if_empty=False,
            truncate_ragged_lines=False,
        ).select(pl.col(f"_{position[c.name]}").alias(c.name) for c in columns)
    else:  # quoted line breaks: parse with the exact scanner (rare, so speed matters less)
        parsed = [_split_record(r)[0] for r in records[1:]]
        raw = pl.DataFrame(
            {c.name: [f[position[c.name]] for f in parsed] for c in columns},
            schema={c.name: pl.String for c in columns},
        )
        del parsed, records
    if raw.height != rows:  # the dialect check and the parser must agree on records
        raise RuntimeError(f"{name}: parser read {raw.height} records, dialect check {rows}")
    # Empty cells, quoted or not, are nulls.
    raw = raw.with_columns(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in raw.columns)
    return _typed(name, raw, manifest.period, line_of)


# --------------------------------------------------------------------------- values


def _full(pattern: str) -> str:
    # Python and Rust both read \d as any Unicode digit; the contract means ASCII digits.
    return "(?s)^(?:" + pattern.replace(r"\d", "[0-9]") + ")$"


def _typed(name: str, raw: pl.DataFrame, period: str, line_of) -> pl.DataFrame:
    """Check every value (the first offending row wins) and return the typed frame."""
    columns = schema.FILES[name]
    patterns = {
        c.name: _full(p.pattern) for c in columns if (p := schema.column_pattern(c)) is not None
    }
    # Shapes first, once: conversions, checks and the RT rules all reuse them.
    frame = raw.with_columns(pl.col(c).str.contains(p).alias(c + _OK) for c, p in patterns.items())
    conversions = {c.name: _convert(c, frame) for c in columns}
    frame = frame.with_columns(expr.alias(c + _TYPED) for c, (expr, _) in conversions.items())

    # (column, bad-row mask, reason(value, row)) in the order they are reported within one
    # row: contract column order, then empty / shape / meaning.
    checks: list[tuple[str, pl.Expr, object]] = []
    for col in columns:
        c, s = col.name, pl.col(col.name)
        ok = pl.col(c + _OK) if c in patterns else pl.lit(True)
        if not col.nullable:
            checks.append((c, s.is_null(), lambda v, r, c=c: f"{c} must not be empty"))
        if c in patterns:
            desc = _CODE_DESC.get(c) if col.kind == "code" else _KIND_DESC.get(col.kind)
            checks.append(
                (c, s.is_not_null() & ~ok,
                 lambda v, r, c=c, d=desc: f"{c} {_show(v, name, c)} is not {d}")
            )
        meaning = conversions[c][1]
        if meaning is not None:
            checks.append((c, ok & pl.col(c + _TYPED).is_null(), meaning))
        if name == "RT.csv" and c == "FPPER":
            both_ok = ok & pl.col("INPER" + _OK)
            checks.append(
                (c, both_ok & (s > pl.col("INPER")),
                 lambda v, r: f"FPPER {v!r} is after INPER {raw[r, 'INPER']!r}")
            )
        if name == "RT.csv" and c == "INPER":
            checks.append(
                (c, ok & (s != period),
                 lambda v, r: f"INPER {v!r} differs from the manifest period {period!r}")
            )

    firsts = frame.select(
        mask.fill_null(False).arg_true().first().alias(str(i))
        for i, (_, mask, _) in enumerate(checks)
    ).row(0)
    hits = [(row, i) for i, row in enumerate(firsts) if row is not None]
    if hits:
        row, i = min(hits)
        column, _, reason = checks[i]
        raise ExtractError(name, line_of(row + 1), column, reason(raw[row, column], row))
    return frame.select(pl.col(c.name + _TYPED).alias(c.name) for c in columns)


# Suffixes of a column's helper twins while they share the frame: shape ok, typed value.
_OK, _TYPED = "__ok", "__typed"


def _convert(col: schema.Column, frame: pl.DataFrame) -> tuple[pl.Expr, object]:
    """The typed value of a column (null where it cannot be typed) and the reason given when
    a well-shaped value still cannot be typed (None: every well-shaped value can)."""
    c = col.name
    s = pl.col(c)
    if col.kind == "date":
        # to_date accepts year 0 (proleptic), which is no real calendar date.
        value = pl.when(~s.str.starts_with("0000")).then(s.str.to_date("%Y%m%d", strict=False))
        return value, lambda v, r: f"{c} {v!r} is not a real calendar date"
    if col.kind == "amount":
        # Exact text arithmetic into cents, never through a float: drop the point and scale
        # by the missing decimals ("-12.5" -> -125 * 10 = -1250, "7" -> 7 * 100 = 700).
        point = s.str.find(".", literal=True)
        decimals = (s.str.len_bytes() - point - 1).fill_null(0).cast(pl.Int64)
        digits = s.str.replace(".", "", literal=True)
        factor = pl.when(decimals == 0).then(100).when(decimals == 1).then(10).otherwise(1)
        # 18 significant digits of cents always fit in Int64 (2**63 ~ 9.2e18).
        significant = (
            digits.str.strip_chars_start("-0").str.len_bytes().cast(pl.Int64) + 2 - decimals
        )
        value = pl.when(significant <= _MAX_AMOUNT_DIGITS + 2).then(
            digits.cast(pl.Int64, strict=False) * factor
        )
        return value, lambda v, r: (
            f"{c} {_show(v)} is out of range (at most {_MAX_AMOUNT_DIGITS} integer digits)"
        )
    if col.kind == "number":
        decimals = s.str.extract(r"\.([0-9]+)$", 1).str.len_chars().fill_null(0)
        scale = frame.select(pl.when(pl.col(c + _OK)).then(decimals).max()).item() or 0
        scale = min(scale, _DECIMAL_PRECISION)
        whole = s.str.extract(r"^-?0*([0-9]*)", 1).str.len_chars()
        # The string cast parses the text exactly (no float) but rounds to the scale and
        # gives null past 38 digits: refuse a value that cannot be held exactly instead.
        fits = (whole + scale <= _DECIMAL_PRECISION) & (decimals <= scale)
        value = pl.when(fits).then(s.cast(pl.Decimal(_DECIMAL_PRECISION, scale), strict=False))
        return value, lambda v, r: (
            f"{c} {_show(v)} needs more than {_DECIMAL_PRECISION} digits "
            f"at the column's {scale} decimals"
        )
    if col.kind == "integer":
        n = s.cast(pl.Int64, strict=False)
        value = pl.when(n.is_between(1, 100)).then(n)
        return value, lambda v, r: f"{c} {v!r} is not between 1 and 100"
    return s, None  # id, code, text, period, seqnr stay text
