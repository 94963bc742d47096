"""The decisions journal: an append-only, hash-chained copy of the audit trail, kept outside
the database file (docs/design.md). The trail is the one thing the archive cannot give back,
so archive + journal rebuild a warehouse (paywatch/rebuild.py), and `paywatch doctor` compares
the journal with the warehouse.

One JSON line per entry: `{"seq", "kind", "entry", "prev", "hash"}` where `kind` is
`decision` or `approval`, `entry` the row as stored, `prev` the previous line's hash (64
zeros for the first) and `hash` = sha256(prev + "\\n" + canonical JSON of seq, kind, entry).
A removed, edited or reordered line breaks the chain. The file is 0600 and each line is
fsynced before the decision's transaction commits.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from paywatch.paths import append_private

GENESIS = "0" * 64


class JournalError(RuntimeError):
    """The journal cannot be read or appended to (damaged, or out of step)."""


def journal_path(db: Path) -> Path:
    """`<folder of the warehouse>/journal/<warehouse name>.decisions.jsonl` — one journal per
    warehouse file, so a rebuilt warehouse beside the old one has its own."""
    db = Path(db)
    return db.parent / "journal" / f"{db.stem}.decisions.jsonl"


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def plain_entry(row: dict) -> dict:
    """A stored row as the journal keeps it (dates and timestamps as ISO text)."""
    return {k: _plain(v) for k, v in row.items()}


def _digest(prev: str, seq: int, kind: str, entry: dict) -> str:
    body = json.dumps({"seq": seq, "kind": kind, "entry": entry}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str
    entry: dict
    prev: str
    hash: str


def _last_line(path: Path) -> bytes | None:
    """The file's last non-empty line (read from the end: journals only grow)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = chunk = fh.tell()
        chunk = min(size, 1 << 16)
        while True:
            fh.seek(size - chunk)
            data = fh.read(chunk).rstrip(b"\n")
            if b"\n" in data or chunk == size:
                return data.rsplit(b"\n", 1)[-1] or None
            chunk = min(size, chunk * 4)


def _parse(line: bytes, number: int) -> Entry:
    try:
        d = json.loads(line)
        return Entry(int(d["seq"]), str(d["kind"]), dict(d["entry"]), str(d["prev"]), str(d["hash"]))
    except (ValueError, KeyError, TypeError) as e:
        raise JournalError(f"journal line {number} is not a journal entry ({type(e).__name__})") from None


def last_entry(path: Path) -> Entry | None:
    """The journal's last entry (None: empty or no file), its own hash checked."""
    path = Path(path)
    line = _last_line(path) if path.exists() else None
    if line is None:
        return None
    e = _parse(line, 0)
    if _digest(e.prev, e.seq, e.kind, e.entry) != e.hash:
        raise JournalError(f"the last entry of {path} was altered: run paywatch doctor")
    return e


def append(path: Path, kind: str, row: dict) -> Entry:
    """Append one entry after checking the current last line; returns it."""
    path = Path(path)
    prev, seq = GENESIS, 1
    last = last_entry(path)
    if last is not None:
        prev, seq = last.hash, last.seq + 1
    entry = plain_entry(row)
    h = _digest(prev, seq, kind, entry)
    line = json.dumps({"seq": seq, "kind": kind, "entry": entry, "prev": prev, "hash": h}, sort_keys=True,
                      ensure_ascii=False)
    append_private(path, (line + "\n").encode())
    return Entry(seq, kind, entry, prev, h)


def read(path: Path) -> tuple[list[Entry], list[str]]:
    """The journal's entries and what is wrong with its chain (one line per problem: an
    altered, removed or reordered entry). A missing file reads as empty."""
    path = Path(path)
    if not path.exists():
        return [], []
    entries, problems = [], []
    prev, want_seq = GENESIS, 1
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            e = _parse(line, number)
        except JournalError as err:
            problems.append(str(err))
            continue
        if _digest(e.prev, e.seq, e.kind, e.entry) != e.hash:
            problems.append(f"journal line {number} (entry {e.seq}) was altered: its hash does not match its content")
        elif e.prev != prev:
            problems.append(f"journal line {number} (entry {e.seq}) does not follow the entry before it: an entry "
                            "was removed or the lines reordered")
        elif e.seq != want_seq:
            problems.append(f"journal line {number} is entry {e.seq}, expected {want_seq}")
        entries.append(e)
        prev, want_seq = e.hash, e.seq + 1
    return entries, problems
