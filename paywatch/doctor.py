"""`paywatch doctor`: is everything received still there, intact, complete and private?

Checks: every loaded run version's received files are in the archive with their checksum;
every current run is complete (its pay lines, master data links and marts match the
manifest counts, and it has a verification); the decisions journal is unbroken and holds
exactly the warehouse's decisions and approvals (a decision removed, altered or reordered on
either side shows); the warehouse file can be read through (a damaged one: "damaged: run
paywatch rebuild"); the warehouse, archive, outbox and journal are readable by their owner
only. Reads only.
"""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from paywatch import journal
from paywatch.extract.schema import STAGING_TABLES
from paywatch.paths import Paths
from paywatch.warehouse import decisions, deliveries, health
from paywatch.warehouse.resource import Warehouse


@dataclass
class DoctorReport:
    runs_checked: int = 0
    files_checked: int = 0
    journal_entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_archive(con: duckdb.DuckDBPyConnection, archive: Path, rep: DoctorReport) -> None:
    for run_id, version, name, sha in deliveries.archived_files(con).iter_rows():
        path = archive / sha[:2] / sha
        rep.files_checked += 1
        if not path.is_file():
            rep.problems.append(f"{run_id} v{version}: archived {name} is missing ({path})")
        elif _sha256(path) != sha:
            rep.problems.append(f"{run_id} v{version}: archived {name} no longer matches its checksum")


def check_runs(con: duckdb.DuckDBPyConnection, archive: Path, rep: DoctorReport) -> None:
    import json

    for run_id, version, _, manifest_sha in deliveries.current_runs_with_manifest(con).iter_rows():
        rep.runs_checked += 1
        if manifest_sha is None or not (archive / manifest_sha[:2] / manifest_sha).is_file():
            rep.problems.append(f"{run_id} v{version}: its manifest is not in the archive")
            continue
        m = json.loads((archive / manifest_sha[:2] / manifest_sha).read_bytes())
        counts = health.run_row_counts(con, run_id, version)
        rt_rows = m["files"]["RT.csv"]["rows"]
        if counts["lines"] != rt_rows or counts["mart"] != rt_rows:
            rep.problems.append(f"{run_id} v{version}: {counts['lines']} pay lines staged and {counts['mart']} in the "
                                f"mart, the manifest says {rt_rows}")
        links = health.record_copies(con, run_id, version)
        for file_name, table in STAGING_TABLES.items():
            if file_name == "RT.csv":
                continue
            if int(links.get(table) or 0) != m["files"][file_name]["rows"]:
                rep.problems.append(f"{run_id} v{version}: {table} carries {links.get(table) or 0} records, the "
                                    f"manifest says {m['files'][file_name]['rows']} for {file_name}")
        if not counts["verified"]:
            rep.problems.append(f"{run_id} v{version}: loaded but not verified — run `paywatch verify` on it again")


def check_permissions(paths: Paths, db: Path, rep: DoctorReport) -> None:
    roots = (paths.archive, paths.outbox, journal.journal_path(db).parent)
    targets = [db] + [p for root in roots if root.exists() for p in root.rglob("*")]
    for p in targets:
        if not p.exists() or p.is_symlink():
            continue
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o077:
            rep.problems.append(f"{p} is readable or writable by others (mode {mode:o})")


def _compare(kind: str, stored: dict[object, dict], journaled: dict[object, dict], rep: DoctorReport) -> None:
    for k in sorted(set(stored) | set(journaled), key=str):
        if k not in journaled:
            rep.problems.append(f"{kind} {k} is in the warehouse but not in the journal (added behind Paywatch's "
                                "back, or the journal lost its last entries)")
        elif k not in stored:
            rep.problems.append(f"{kind} {k} of the journal is missing from the warehouse (deleted from the "
                                "database?): paywatch rebuild restores it")
        elif stored[k] != journaled[k]:
            fields = ", ".join(sorted(f for f in stored[k] if stored[k].get(f) != journaled[k].get(f)))
            rep.problems.append(f"{kind} {k} differs between the warehouse and the journal ({fields}): one of "
                                "them was altered")


def check_journal(con: duckdb.DuckDBPyConnection, db: Path, rep: DoctorReport) -> None:
    """The journal's chain, then the journal against the warehouse's decisions and approvals."""
    path = journal.journal_path(db)
    stored = {d["decision_id"]: journal.plain_entry(d) for d in decisions.all_decisions(con)}
    approvals = {(a["decision_id"], journal.plain_entry(a)["approved_at"]): journal.plain_entry(a)
                 for a in decisions.all_approvals(con)}
    if not decisions.journal_started(con):
        if stored:
            rep.problems.append(f"{len(stored)} decision(s) recorded before the journal existed are not journaled "
                                "yet: the next paywatch decide copies them into it")
        return
    if not path.exists():
        rep.problems.append(f"the decisions journal {path} is missing: restore it from the backup")
        return
    entries, chain = journal.read(path)
    rep.problems.extend(chain)
    rep.journal_entries = len(entries)
    journaled = {e.entry.get("decision_id"): e.entry for e in entries if e.kind == "decision"}
    journaled_approvals = {(e.entry.get("decision_id"), e.entry.get("approved_at")): e.entry
                           for e in entries if e.kind == "approval"}
    _compare("decision", stored, journaled, rep)
    _compare("approval of decision", approvals, journaled_approvals, rep)


def doctor(wh: Warehouse) -> DoctorReport:
    rep = DoctorReport()
    try:
        with wh.reader() as con:
            health.read_every_table(con)
            check_archive(con, wh.paths.archive, rep)
            check_runs(con, wh.paths.archive, rep)
            check_journal(con, wh.db, rep)
    except duckdb.Error as e:
        # DuckDB names the block or byte it could not read; the line says what to do
        rep.problems.append(f"{wh.db}: damaged: run paywatch rebuild ({type(e).__name__})")
        return rep
    check_permissions(wh.paths, wh.db, rep)
    return rep


def settings_in_use(wh: Warehouse, env: dict | None = None) -> list[str]:
    """Where this Paywatch lives and talks to (docs/production.md): printed by `paywatch
    doctor` so an administrator sees what the scheduled flows will use."""
    import os

    from paywatch.landing import landing_folder
    from paywatch.routing import routing_file
    from paywatch.settings import load_settings, warm_worker_wanted

    env = os.environ if env is None else env
    cfg = load_settings(wh.paths.config)
    routing = routing_file(wh.paths.home, env)
    smtp = env.get("PAYWATCH_SMTP_HOST") or (f"Prefect block {env['PAYWATCH_SMTP_BLOCK']}"
                                             if env.get("PAYWATCH_SMTP_BLOCK") else "not configured (outbox only)")
    return ["settings in use:",
            f"  PAYWATCH_HOME    {env.get('PAYWATCH_HOME') or '(not set: ./paywatch-data)'}",
            f"  warehouse        {wh.db.resolve()}",
            f"  landing          {landing_folder(wh.paths, cfg).resolve()}",
            f"  reports, outbox  {wh.paths.reports.resolve()}, {wh.paths.outbox.resolve()}",
            f"  paywatch.toml    {wh.paths.config.resolve()}{'' if wh.paths.config.is_file() else ' (absent: defaults)'}",
            f"  routing          {routing or 'built-in default'}",
            f"  SMTP             {smtp}",
            f"  watcher          every {cfg['landing']['watch_seconds']} s, after pick-up: "
            f"{cfg['landing']['after_pickup']}",
            f"  warm worker      {'on: pick-ups verify in flows.warm (else in their own process)' if warm_worker_wanted(env) else 'off: each pick-up verifies in its own process'}",
            f"  PREFECT_API_URL  {env.get('PREFECT_API_URL') or '(not set: each command starts a throw-away server)'}",
            f"  PREFECT_HOME     {env.get('PREFECT_HOME') or '(not set: ~/.prefect)'}"]
