"""`paywatch rebuild`: a new warehouse from the archive and the decisions journal.

Everything in the warehouse but the reviewers' decisions derives from the received files,
and the archive keeps every one of them by checksum. So a rebuild:

1. finds the archived manifests (each names its run and the checksums of its files) and puts
   the runs in contract order (docs/extract-format.md "Run order": period, extracted_at,
   run_id — a correction, extracted later, comes after the version it replaces);
2. verifies each through the normal path (`verify_run`) into the NEW warehouse — no mail is
   sent, reports are written at the end;
3. replays the journal's decisions and approvals as recorded (same ids, same times), which
   also writes the new warehouse's own journal (identical lines);
4. writes every run's reports (`<new home>/reports/<run_id>`), decisions applied.

It reads nothing from the old warehouse file (it may be the damaged thing), only the archive,
the journal and the configuration files beside it (paywatch.toml, routing.toml: copied to
the new home when it has none).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from paywatch import journal, stages
from paywatch.delivery.outbox import DeliveryReport
from paywatch.lifecycle import apply_decisions
from paywatch.paths import make_private_dir, write_private
from paywatch.pipeline import (
    SEND_MAIL, WRITE_REPORTS, cases_as_reported, process_loaded, stage_write_reports, verify_run,
)
from paywatch.settings import load_settings
from paywatch.warehouse import decisions
from paywatch.warehouse import queries as q
from paywatch.warehouse.resource import Warehouse

CONFIG_FILES = ("paywatch.toml", "routing.toml")
# a manifest is a small JSON file; anything bigger in the archive is a data file
MANIFEST_MAX_BYTES = 1 << 20


class RebuildError(RuntimeError):
    """A rebuild that cannot start (target exists, journal broken, nothing archived)."""


@dataclass(frozen=True)
class ArchivedRun:
    manifest_sha: str
    run_id: str
    payroll_area: str
    period: str
    extracted_at: str
    files: dict[str, str]  # file name -> sha256

    @property
    def order(self) -> tuple[str, str, str, str]:
        return (self.payroll_area, self.period, self.extracted_at, self.run_id)


@dataclass
class RebuildResult:
    db: Path
    runs: list[tuple[str, int]] = field(default_factory=list)  # (run_id, exit code) in replay order
    decisions: int = 0
    approvals: int = 0
    skipped: list[str] = field(default_factory=list)  # archived manifests that could not be replayed


def _blob(archive: Path, sha: str) -> Path:
    return archive / sha[:2] / sha


def archived_runs(archive: Path) -> tuple[list[ArchivedRun], list[str]]:
    """Every archived manifest, in contract order, and why others could not be used."""
    runs, skipped = [], []
    for path in sorted(Path(archive).glob("??/*")):
        if not path.is_file() or path.stat().st_size > MANIFEST_MAX_BYTES:
            continue
        data = path.read_bytes()
        if not data.lstrip()[:1] == b"{":
            continue
        try:
            m = json.loads(data)
            files = {name: str(entry["sha256"]) for name, entry in m["files"].items()}
            run = ArchivedRun(path.name, str(m["run_id"]), str(m["payroll_area"]), str(m["period"]),
                              str(m["extracted_at"]), files)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            continue  # not a manifest (or one the reader rejected when it came)
        missing = [n for n, sha in files.items() if not _blob(archive, sha).is_file()]
        if missing:
            skipped.append(f"{run.run_id} (manifest {path.name[:12]}): {', '.join(sorted(missing))} not in the archive")
            continue
        runs.append(run)
    return sorted(runs, key=lambda r: r.order), skipped


def _no_mail(stage, *args, **kwargs):
    """The plain runner without mail and without reports (written once, at the end)."""
    if stage is SEND_MAIL:
        return DeliveryReport(run_id="", outbox=Path())
    if stage is WRITE_REPORTS:
        return None
    return stages.run(stage, *args, **kwargs)


def _materialise(run: ArchivedRun, archive: Path, folder: Path) -> Path:
    """The run folder as received: the manifest and its files, from the archive."""
    make_private_dir(folder)
    shutil.copyfile(_blob(archive, run.manifest_sha), folder / "manifest.json")
    for name, sha in run.files.items():
        shutil.copyfile(_blob(archive, sha), folder / name)
    return folder


def _row(entry: dict, dates: tuple[str, ...], times: tuple[str, ...]) -> dict:
    out = dict(entry)
    for k in dates:
        out[k] = date.fromisoformat(out[k]) if out.get(k) else None
    for k in times:
        out[k] = datetime.fromisoformat(out[k]) if out.get(k) else None
    return out


def replay_journal(wh: Warehouse, entries: list[journal.Entry]) -> tuple[int, int]:
    """Decisions and approvals as recorded, into the warehouse and its own journal; counts."""
    path = journal.journal_path(wh.db)
    n_dec = n_app = 0
    if not entries:  # nothing journaled: the new warehouse starts its journal on its first decision
        return n_dec, n_app
    with wh.writer() as con:
        decisions.mark_journal_started(con)
        for e in entries:
            if e.kind == "decision":
                row = _row(e.entry, ("expires_on",), ("decided_at",))
                decisions.append_decision(con, **row)
                journal.append(path, "decision", decisions.decision_row(con, row["decision_id"]))
                n_dec += 1
            elif e.kind == "approval":
                row = _row(e.entry, (), ("approved_at",))
                stored = decisions.append_approval(con, row["decision_id"], row["approved_by"], row["reason"],
                                                   row["approved_at"])
                journal.append(path, "approval", stored)
                n_app += 1
    return n_dec, n_app


def write_run_reports(wh: Warehouse, run_id: str, out: Path) -> Path:
    """A stored run's reports from the warehouse as it is now (decisions applied), without
    detecting again or mailing: exceptions.csv and the rest, as `paywatch verify` writes them."""
    with wh.writer() as con:
        cfg = load_settings(wh.paths.config)
        version = q.current_version(con, run_id)
        status, findings, checks, inp = process_loaded(con, run_id, version, cfg)
        findings = apply_decisions(con, run_id, findings)
        cases = cases_as_reported(con, run_id, version, findings)
        stage_write_reports(Path(out), inp, findings, checks, "loaded", status == "dq_blocked", con=con, cfg=cfg,
                            cases=cases)
    return Path(out)


def rebuild(old: Warehouse, new_db: Path, on_run: Callable[[str], None] | None = None) -> RebuildResult:
    """Rebuild `old` (its archive, journal and configuration) into the new file `new_db`."""
    new = Warehouse.at(new_db)
    if new.db.exists():
        raise RebuildError(f"{new.db} exists: name a new file (--out); a rebuild never overwrites a warehouse")
    if new.db.resolve() == old.db.resolve() or journal.journal_path(new.db) == journal.journal_path(old.db):
        raise RebuildError("--out must be another warehouse file than --db")
    entries, broken = journal.read(journal.journal_path(old.db))
    if broken:
        raise RebuildError(f"the decisions journal is broken ({broken[0]}): restore it from the backup first")
    runs, skipped = archived_runs(old.paths.archive)
    if not runs:
        raise RebuildError(f"no archived run in {old.paths.archive}: nothing to rebuild from")
    make_private_dir(new.paths.home)
    for name in CONFIG_FILES:
        src, dst = old.paths.home / name, new.paths.home / name
        if src.is_file() and not dst.exists():
            write_private(dst, src.read_bytes())
    result = RebuildResult(new.db, skipped=skipped)
    with tempfile.TemporaryDirectory(prefix="paywatch-rebuild-") as tmp:
        for i, run in enumerate(runs):
            folder = _materialise(run, old.paths.archive, Path(tmp) / f"{i:05d}-{run.manifest_sha[:12]}")
            res = verify_run(folder, db=new.db, out=Path(tmp) / "unused", wait_seconds=0, runner=_no_mail)
            result.runs.append((run.run_id, res.exit_code))
            shutil.rmtree(folder, ignore_errors=True)
            if on_run:
                on_run(run.run_id)
    result.decisions, result.approvals = replay_journal(new, entries)
    for run_id in dict.fromkeys(r for r, code in result.runs if code in (0, 3)):
        write_run_reports(new, run_id, new.paths.reports / run_id)
    return result
