"""The landing folder where (simulated) Umoja drops run folders: what is ready to pick up,
in which order, what has already been picked up, which expected run is late; the audit
trace of every folder handled and where it goes afterwards (`[landing]` settings)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from paywatch.paths import Paths, make_private_dir, owner_only_umask
from paywatch.warehouse.deliveries import delivery_received, run_received

log = logging.getLogger(__name__)

PROCESSED = "processed"  # <landing>/processed/: handled folders (after_pickup = "move")
AUDIT_FILE = "landing-audit.tsv"  # <PAYWATCH_HOME>/landing-audit.tsv: one line per folder handled
AFTER_PICKUP = ("move", "remove", "keep")
RUN_TYPE_ORDER = ("SIM1", "SIM2", "SIM3", "FINAL")


@dataclass(frozen=True)
class Delivery:
    folder: Path
    run_id: str
    period: str
    run_type: str
    extracted_at: str
    manifest_sha256: str

    @property
    def order(self) -> tuple[str, str, str]:
        """Contract order: period, then extracted_at, then run_id."""
        return (self.period, self.extracted_at, self.run_id)


class NotReady(Exception):
    """A folder still being written (its files changed moments ago): try again later."""


def _manifest(folder: Path) -> tuple[dict, str] | None:
    path = folder / "manifest.json"
    if path.is_symlink() or not path.is_file():
        return None
    data = path.read_bytes()
    try:
        m = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        m = {}
    return (m if isinstance(m, dict) else {}), hashlib.sha256(data).hexdigest()


def manifest_facts(folder: Path) -> dict[str, str]:
    """What a folder's manifest.json says the delivery is (run_id, payroll_area, period,
    run_type; strings, possibly empty), unchecked; empty when there is no manifest."""
    found = _manifest(folder)
    return {k: str(found[0].get(k) or "") for k in ("run_id", "payroll_area", "period", "run_type")} if found else {}


def manifest_sha256(folder: Path) -> str | None:
    """The checksum of a folder's manifest.json (None: no manifest)."""
    found = _manifest(folder)
    return found[1] if found else None


def settled(folder: Path, settle_seconds: float) -> bool:
    """No file in the folder changed during the last `settle_seconds`."""
    now = time.time()
    return all(now - p.lstat().st_mtime >= settle_seconds for p in folder.iterdir())


def _signature(folder: Path) -> tuple:
    """What changes while a folder is being written: its files, their sizes and times."""
    try:
        return tuple(sorted((p.name, st.st_size, st.st_mtime_ns) for p in folder.iterdir()
                            for st in [p.lstat()]))
    except FileNotFoundError:
        return ("gone",)


def delivery_folders(landing: Path) -> list[Path]:
    """Candidate delivery folders: sub-folders of landing, not `processed/`, not hidden."""
    if not landing.is_dir():
        return []
    return sorted(p for p in landing.iterdir() if p.is_dir() and not p.is_symlink()
                  and p.name != PROCESSED and not p.name.startswith("."))


def scan(landing: Path, settle_seconds: float = 0.0, probe_seconds: float = 0.0) -> tuple[list[Delivery], list[Path]]:
    """Deliveries ready in the landing folder (manifest written, files settled), in contract
    order, and the folders not ready yet. A folder without manifest.json is still being
    written (Umoja writes the manifest last). A folder changed within `settle_seconds` is
    looked at twice, `probe_seconds` apart (one wait for all of them): unchanged, it is read
    now; still changing, it waits for the next scan — it never holds up the others."""
    ready, waiting, recent = [], [], {}
    for folder in delivery_folders(landing):
        found = _manifest(folder)
        if found is None:
            waiting.append(folder)
        elif settled(folder, settle_seconds):
            ready.append((folder, found))
        elif probe_seconds > 0:
            recent[folder] = (_signature(folder), found)
        else:
            waiting.append(folder)
    if recent:
        time.sleep(probe_seconds)
        for folder, (sig, found) in recent.items():
            same = _signature(folder) == sig and _manifest(folder) == found
            (ready.append((folder, found)) if same else waiting.append(folder))
    return sorted((_delivery(f, m) for f, m in ready), key=lambda d: d.order), sorted(waiting)


def _delivery(folder: Path, found: tuple[dict, str]) -> Delivery:
    m, sha = found
    return Delivery(folder, str(m.get("run_id", "")), str(m.get("period", "")), str(m.get("run_type", "")),
                    str(m.get("extracted_at", "")), sha)


def picked_up(con: duckdb.DuckDBPyConnection, delivery: Delivery) -> bool:
    """Whether this exact delivery (same manifest bytes) was already received, whatever
    the outcome. A correction of a run has another manifest: a new delivery."""
    return delivery_received(con, delivery.manifest_sha256)


def expected_run_missing(con: duckdb.DuckDBPyConnection, landing: Path, payroll_area: str, period: str,
                         run_type: str) -> bool:
    """True when no run of that type and period is in the warehouse or ready in landing."""
    if run_received(con, payroll_area, period, run_type):
        return False
    ready, _ = scan(landing)
    return not any(d.period == period and d.run_type == run_type for d in ready)


def current_period(today: date | None = None, tz: str | None = None) -> str:
    """This month (YYYYMM) in the payroll calendar's time zone `tz` (UTC when not given):
    at 00:30 on the 1st in Geneva it is already the new month."""
    d = today or datetime.now(ZoneInfo(tz) if tz else timezone.utc).date()
    return f"{d.year:04d}{d.month:02d}"


# --- the audit trace and housekeeping


class LandingBusy(TimeoutError):
    """Another pick-up held the landing folder longer than we would wait."""


@contextlib.contextmanager
def pickup_lock(landing: Path, wait_seconds: float = 600.0) -> Iterator[None]:
    """One pick-up at a time per landing folder (the watcher and a calendar deployment may
    start together): without it both would verify, then move, the same folder."""
    make_private_dir(landing)
    with owner_only_umask():
        fd = os.open(landing / ".pickup.lock", os.O_RDWR | os.O_CREAT)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LandingBusy(f"{landing}: another pick-up has been running for over {wait_seconds:.0f} s")
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)  # releases the lock


def landing_folder(paths: Paths, settings: dict) -> Path:
    """The landing folder in force: `[landing] folder` when set, else <PAYWATCH_HOME>/landing."""
    folder = str(settings.get("landing", {}).get("folder", "") or "")
    return Path(folder).expanduser() if folder else paths.landing


@dataclass(frozen=True)
class AuditEntry:
    action: str  # picked-up | duplicate | quarantined | waiting | moved | removed
    folder: str
    manifest_sha256: str
    run_id: str = ""
    note: str = ""

    def line(self) -> str:
        return (f"landing: {self.action} folder={self.folder} sha256={self.manifest_sha256 or '-'}"
                f"{' run=' + self.run_id if self.run_id else ''}{' (' + self.note + ')' if self.note else ''}")


def audit(paths: Paths, entries: Iterable[AuditEntry], logger=None) -> list[AuditEntry]:
    """Log each entry (one line, folder and checksum: no personal data) and append it to
    <PAYWATCH_HOME>/landing-audit.tsv (private, append-only)."""
    entries = list(entries)
    if not entries:
        return entries
    for e in entries:
        (logger or log).info(e.line())
    make_private_dir(paths.home)
    with owner_only_umask(), open(paths.home / AUDIT_FILE, "a", encoding="utf-8") as fh:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for e in entries:
            fh.write("\t".join((now, e.action, e.folder, e.manifest_sha256 or "-", e.run_id or "-",
                                e.note.replace("\t", " "))) + "\n")
    return entries


def put_away(folder: Path, landing: Path, after_pickup: str, archived: bool, sha: str = "",
             run_id: str = "") -> AuditEntry | None:
    """A handled folder leaves landing: moved to <landing>/processed/ ("move"), deleted
    ("remove": only once its files are archived by checksum or quarantined), or left
    ("keep"). Returns the audit entry of what was done (None: left in place)."""
    if after_pickup not in AFTER_PICKUP:
        raise ValueError(f"[landing] after_pickup = {after_pickup!r}: must be one of {', '.join(AFTER_PICKUP)}")
    if after_pickup == "keep" or not folder.is_dir():
        return None
    if after_pickup == "remove":
        if not archived:
            return AuditEntry("kept", folder.name, sha, run_id, "not archived: left in landing")
        shutil.rmtree(folder)
        return AuditEntry("removed", folder.name, sha, run_id)
    target = make_private_dir(landing / PROCESSED) / folder.name
    if target.exists():  # the same folder name delivered again (a duplicate): keep both
        target = target.with_name(f"{folder.name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    shutil.move(str(folder), target)
    return AuditEntry("moved", folder.name, sha, run_id, f"to {PROCESSED}/{target.name}")


# --- catch-up


def in_periods(d: Delivery, start: str, end: str) -> bool:
    return start <= d.period <= end


def catch_up(landing: Path, start: str, end: str, already: Callable[[Delivery], bool],
             verify: Callable[[Delivery], object]) -> tuple[list[tuple[Delivery, object]], list[Delivery]]:
    """Verify the deliveries of periods `start`..`end` (YYYYMM) found in landing and in its
    processed/ folder, in contract order, each once: (verified with `verify`'s result,
    skipped as already received by `already`)."""
    found: dict[str, Delivery] = {}
    for root in (landing, landing / PROCESSED):
        ready, _ = scan(root)
        for d in ready:
            found.setdefault(d.manifest_sha256, d)
    todo = sorted((d for d in found.values() if in_periods(d, start, end)), key=lambda d: d.order)
    done, skipped = [], []
    for d in todo:
        if already(d):
            skipped.append(d)
        else:
            done.append((d, verify(d)))
    return done, skipped


def periods_between(start: str, end: str) -> list[str]:
    """YYYYMM from `start` to `end`, both included."""
    out, y, m = [], int(start[:4]), int(start[4:])
    while f"{y:04d}{m:02d}" <= end:
        out.append(f"{y:04d}{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out
