"""`paywatch doctor`: is everything received still there, intact, complete and private?

Checks: every loaded run version's received files are in the archive with their checksum;
every current run is complete (its pay lines, master data links and marts match the
manifest counts, and it has a verification); the warehouse, archive and outbox are
readable by their owner only. Reads only.
"""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from paywatch.paths import Paths
from paywatch.warehouse.queries import _frame


@dataclass
class DoctorReport:
    runs_checked: int = 0
    files_checked: int = 0
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
    files = _frame(con, """
        SELECT r.run_id, r.version, f.file_name, f.sha256
        FROM runs r JOIN delivery_files f ON f.delivery_id = r.delivery_id ORDER BY ALL""")
    for run_id, version, name, sha in files.iter_rows():
        path = archive / sha[:2] / sha
        rep.files_checked += 1
        if not path.is_file():
            rep.problems.append(f"{run_id} v{version}: archived {name} is missing ({path})")
        elif _sha256(path) != sha:
            rep.problems.append(f"{run_id} v{version}: archived {name} no longer matches its checksum")


def check_runs(con: duckdb.DuckDBPyConnection, archive: Path, rep: DoctorReport) -> None:
    import json

    runs = _frame(con, "SELECT r.run_id, r.version, r.delivery_id, f.sha256 AS manifest_sha FROM runs r "
                       "LEFT JOIN delivery_files f ON f.delivery_id = r.delivery_id AND f.file_name = 'manifest.json' "
                       "WHERE r.is_current ORDER BY r.run_id")
    for run_id, version, _, manifest_sha in runs.iter_rows():
        rep.runs_checked += 1
        if manifest_sha is None or not (archive / manifest_sha[:2] / manifest_sha).is_file():
            rep.problems.append(f"{run_id} v{version}: its manifest is not in the archive")
            continue
        m = json.loads((archive / manifest_sha[:2] / manifest_sha).read_bytes())
        counts = _frame(con, """
            SELECT (SELECT count(*) FROM stg_pay_lines WHERE run_id = $1 AND run_version = $2) AS lines,
                   (SELECT count(*) FROM mart_pay_lines WHERE run_id = $1 AND run_version = $2) AS mart,
                   (SELECT count(*) FROM verifications WHERE run_id = $1 AND run_version = $2) AS verified""",
                        [run_id, version]).row(0, named=True)
        rt_rows = m["files"]["RT.csv"]["rows"]
        if counts["lines"] != rt_rows or counts["mart"] != rt_rows:
            rep.problems.append(f"{run_id} v{version}: {counts['lines']} pay lines staged and {counts['mart']} in the "
                                f"mart, the manifest says {rt_rows}")
        links = dict(_frame(con, "SELECT table_name, sum(copies) FROM stg_record_runs WHERE run_id = ? AND "
                                 "run_version = ? GROUP BY ALL", [run_id, version]).iter_rows())
        from paywatch.extract.schema import STAGING_TABLES

        for file_name, table in STAGING_TABLES.items():
            if file_name == "RT.csv":
                continue
            if int(links.get(table) or 0) != m["files"][file_name]["rows"]:
                rep.problems.append(f"{run_id} v{version}: {table} carries {links.get(table) or 0} records, the "
                                    f"manifest says {m['files'][file_name]['rows']} for {file_name}")
        if not counts["verified"]:
            rep.problems.append(f"{run_id} v{version}: loaded but not verified — run `paywatch verify` on it again")


def check_permissions(paths: Paths, db: Path, rep: DoctorReport) -> None:
    targets = [db] + [p for root in (paths.archive, paths.outbox) if root.exists() for p in root.rglob("*")]
    for p in targets:
        if not p.exists() or p.is_symlink():
            continue
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o077:
            rep.problems.append(f"{p} is readable or writable by others (mode {mode:o})")


def doctor(db: Path, paths: Paths) -> DoctorReport:
    from paywatch.warehouse.db import open_warehouse

    rep = DoctorReport()
    con = open_warehouse(db, read_only=True)
    try:
        check_archive(con, paths.archive, rep)
        check_runs(con, paths.archive, rep)
    finally:
        con.close()
    check_permissions(paths, db, rep)
    return rep
