"""The landing folder where (simulated) Umoja drops run folders: what is ready to pick up,
in which order, what has already been picked up, and which expected run is late."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from paywatch.warehouse.deliveries import delivery_received, run_received


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


def settled(folder: Path, settle_seconds: float) -> bool:
    """No file in the folder changed during the last `settle_seconds`."""
    now = time.time()
    return all(now - p.lstat().st_mtime >= settle_seconds for p in folder.iterdir())


def scan(landing: Path, settle_seconds: float = 0.0) -> tuple[list[Delivery], list[Path]]:
    """Deliveries ready in the landing folder (manifest written, files settled), in contract
    order, and the folders not ready yet. A folder without manifest.json is still being
    written (Umoja writes the manifest last)."""
    ready, waiting = [], []
    if not landing.exists():
        return [], []
    for folder in sorted(p for p in landing.iterdir() if p.is_dir() and not p.is_symlink()):
        found = _manifest(folder)
        if found is None or not settled(folder, settle_seconds):
            waiting.append(folder)
            continue
        m, sha = found
        ready.append(Delivery(folder, str(m.get("run_id", "")), str(m.get("period", "")), str(m.get("run_type", "")),
                              str(m.get("extracted_at", "")), sha))
    return sorted(ready, key=lambda d: d.order), waiting


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


def current_period(today: date | None = None) -> str:
    d = today or datetime.now(timezone.utc).date()
    return f"{d.year:04d}{d.month:02d}"
