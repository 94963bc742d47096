"""Nothing lost under faults: a verify killed at named points leaves the warehouse exactly as
before or exactly as after, and the next run completes it; concurrent verifies wait for
each other; `paywatch doctor` finds damage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paywatch.faults import POINTS
from paywatch.pipeline import verify_run
from paywatch.warehouse.db import open_warehouse, warehouse_digest

SAMPLE = Path(__file__).resolve().parent.parent / "data_samples" / "gv-300"
RUNS = (SAMPLE / "runs.txt").read_text().split()
TARGET = SAMPLE / RUNS[3]  # GV-202512-SIM3, with history


def _cli(*args: str, env: dict | None = None, wait: bool = True):
    cmd = [sys.executable, "-m", "paywatch.cli", *args]
    if not wait:
        return subprocess.Popen(cmd, env=os.environ | (env or {}), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(cmd, env=os.environ | (env or {}), capture_output=True, text=True, timeout=600)


def _digest(db: Path) -> str:
    con = open_warehouse(db, read_only=True)
    try:
        return warehouse_digest(con, exclude_delivery_log=True, ignore_times=True)
    finally:
        con.close()


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    """A warehouse with the history of TARGET (before), and the same after a clean verify."""
    root = tmp_path_factory.mktemp("faults")
    before = root / "before" / "w.duckdb"
    for name in RUNS[:3]:
        assert verify_run(SAMPLE / name, db=before).exit_code == 0
    after = root / "after" / "w.duckdb"
    shutil.copytree(before.parent, after.parent)
    clean = verify_run(TARGET, db=after, out=root / "after-report")
    assert clean.exit_code == 0
    return {"before": before, "after": after, "digest_before": _digest(before), "digest_after": _digest(after),
            "csv_after": (root / "after-report" / "exceptions.csv").read_text()}


def _copy(db: Path, dest: Path) -> Path:
    shutil.copytree(db.parent, dest)
    return dest / db.name


@pytest.mark.parametrize("point", POINTS)
def test_killed_verify_leaves_before_or_after_and_resumes(point, states, tmp_path):
    db = _copy(states["before"], tmp_path / "wh")
    killed = _cli("verify", str(TARGET), "--db", str(db), "--out", str(tmp_path / "r1"),
                  env={"PAYWATCH_CRASH_AT": point})
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL at the named point
    state = _digest(db)
    expected = states["digest_after"] if point == "reports" else states["digest_before"]
    assert state == expected  # reports are written after the commit; everything else rolls back
    resumed = _cli("verify", str(TARGET), "--db", str(db), "--out", str(tmp_path / "r2"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _digest(db) == states["digest_after"]
    assert (tmp_path / "r2" / "exceptions.csv").read_text() == states["csv_after"]
    doc = _cli("doctor", "--db", str(db))
    assert doc.returncode == 0, doc.stdout


def test_two_verifies_at_once_wait_for_each_other(states, tmp_path):
    db = _copy(states["before"], tmp_path / "wh")
    procs = [_cli("verify", str(TARGET), "--db", str(db), "--out", str(tmp_path / f"r{i}"), wait=False)
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    con = open_warehouse(db, read_only=True)
    outcomes = sorted(r[0] for r in con.execute(
        "SELECT outcome FROM deliveries WHERE run_id = 'GV-202512-SIM3'").fetchall())
    con.close()
    assert outcomes == ["loaded", "noop"]  # one loaded it, the other waited and found it there
    assert _digest(db) == states["digest_after"]
    assert (tmp_path / "r0" / "exceptions.csv").read_text() == (tmp_path / "r1" / "exceptions.csv").read_text()


def test_a_verify_that_will_not_wait_stops_with_a_clear_message(states, tmp_path):
    from paywatch.warehouse.db import WarehouseLock

    db = _copy(states["before"], tmp_path / "wh")
    with WarehouseLock(db):
        res = _cli("verify", str(TARGET), "--db", str(db), "--wait", "0")
    assert res.returncode == 4
    line = res.stderr.strip().splitlines()[-1]
    assert "busy" in line and str(os.getpid()) in line
    assert _digest(db) == states["digest_before"]


def test_doctor_finds_a_damaged_archive_and_an_incomplete_run(states, tmp_path):
    db = _copy(states["after"], tmp_path / "wh")
    assert _cli("doctor", "--db", str(db)).returncode == 0
    victim = next(p for p in (db.parent / "archive").rglob("*") if p.is_file() and ".tmp" not in p.parts)
    os.chmod(victim, 0o600)
    victim.write_bytes(victim.read_bytes() + b"tampered")
    con = open_warehouse(db)
    con.execute("DELETE FROM verifications WHERE run_id = 'GV-202512-SIM3'")
    con.close()
    os.chmod(db, 0o644)
    res = _cli("doctor", "--db", str(db))
    assert res.returncode == 1
    assert "no longer matches its checksum" in res.stdout
    assert "loaded but not verified" in res.stdout
    assert "readable or writable by others" in res.stdout


def test_unwritable_outbox_is_recorded_and_surfaced_and_the_run_kept(states, tmp_path):
    db = _copy(states["before"], tmp_path / "wh")
    shutil.rmtree(db.parent / "outbox", ignore_errors=True)
    (db.parent / "outbox").write_text("not a folder")  # the outbox cannot be created
    res = _cli("verify", str(TARGET), "--db", str(db), "--out", str(tmp_path / "r"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "DELIVERY FAILED" in res.stdout + res.stderr
    assert (tmp_path / "r" / "exceptions.csv").read_text() == states["csv_after"]
    con = open_warehouse(db, read_only=True)
    failed = con.execute("SELECT status FROM report_deliveries WHERE run_id = 'GV-202512-SIM3'").fetchall()
    verified = con.execute("SELECT count(*) FROM verifications WHERE run_id = 'GV-202512-SIM3'").fetchall()[0][0]
    con.close()
    assert failed == [("failed",)] and verified == 1
