"""What an earlier FINAL delivered — its pay lines and its master data — kept in this process
between verifies (issue #17, the warm path).

SIM1, SIM2, SIM3 and FINAL of a month read the same earlier FINALs as their history. A
long-lived worker (flows/warm.py) or `paywatch evaluate` reads them from the warehouse once per
month instead of once per run. A delivery never changes once stored — a correction is a new
version with its own delivery id — so an entry is found only by the warehouse file, run id,
version, delivery id and load time of the delivery it holds, and is as good as a fresh read.
Frames are immutable: the detectors share them. The `KEEP` most recently used deliveries stay
(in a `MemoryCache`, as fitted models are kept).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import polars as pl

from detectors.models.cache import MemoryCache, fitted, run_digests

KEEP = 8  # deliveries (three FINALs of history per area; a few areas verified in turn)

T = TypeVar("T")
_KEPT = MemoryCache(size=KEEP * 3)  # three parts per delivery: lines, their digest and master data
_LOCK = threading.Lock()  # verifies of two warehouses may run on two threads of one process


def kept(db: Path | None, run: dict, part: str, read: Callable[[], T]) -> T:
    """`read()` — `part` of the delivery `run` (a row of the runs table: run_id, version,
    delivery_id, loaded_at) of the warehouse file `db` — or what it returned before in this
    process. An in-memory warehouse (`db` None) is read each time."""
    if db is None or run.get("delivery_id") is None or run.get("loaded_at") is None:
        return read()
    key = "|".join((str(db), run["run_id"], str(run["version"]), str(run["delivery_id"]), str(run["loaded_at"]), part))
    with _LOCK:
        return fitted(_KEPT, key, read)


def forget() -> None:
    """Drop everything kept (tests; a process that restores a warehouse over the same file
    keeps deliveries apart by their delivery id and load time anyway)."""
    global _KEPT
    with _LOCK:
        _KEPT = MemoryCache(size=KEEP * 3)


def lines_of_finals(db: Path | None, finals: pl.DataFrame,
                    read: Callable[[pl.DataFrame], pl.DataFrame]) -> tuple[pl.DataFrame, dict[str, str] | None]:
    """`read(finals)` — the pay lines of the given run versions in their order, then file
    order — assembled from each delivery's own lines, kept per delivery; with the digest of
    each delivery's rows (detectors/models/cache.py `run_digests`, what detection keys models
    on), kept beside them: a month's runs read the same FINALs. None when a run id is there
    twice (its rows are then one digest)."""
    if finals.height == 0:
        return read(finals), {}
    parts, digests = [], {}
    for run in finals.iter_rows(named=True):
        part = kept(db, run, "lines", lambda run=run: read(finals.filter(
            (pl.col("run_id") == run["run_id"]) & (pl.col("version") == run["version"]))))
        parts.append(part)
        digests[run["run_id"]] = kept(db, run, "digest", lambda part=part, run=run: run_digests(part).get(run["run_id"]))
    lines = pl.concat(parts, how="vertical")
    if finals["run_id"].n_unique() < finals.height or None in digests.values():
        return lines, None
    return lines, digests
