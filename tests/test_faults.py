"""Nothing lost under faults: a verify killed at named points leaves the warehouse exactly as
before or exactly as after, and the next run completes it; concurrent verifies wait for
each other; `paywatch doctor` finds damage."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paywatch.faults import CLOSE_POINTS, POINTS
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


# ------------------------------------------------------------------------------ close and decide

@pytest.fixture(scope="module")
def closable(tmp_path_factory):
    """A warehouse holding December up to its FINAL (a month that can be closed)."""
    db = tmp_path_factory.mktemp("closable") / "wh" / "w.duckdb"
    for name in RUNS[: RUNS.index("GV-202512-FINAL") + 1]:
        assert verify_run(SAMPLE / name, db=db).exit_code == 0
    return db


def _consistent(db: Path) -> dict:
    """The warehouse opens read-write (as the next writer will), each close has all its
    exclusions, the readers' snapshot opens, and doctor finds nothing."""
    con = open_warehouse(db)
    try:
        closes = con.execute("SELECT close_id, excluded_staff FROM monthly_closes").fetchall()
        for cid, n in closes:
            assert con.execute("SELECT count(*) FROM close_exclusions WHERE close_id = ?", [cid]).fetchone()[0] == n
        decisions = con.execute("SELECT count(*) FROM decisions").fetchone()[0]
    finally:
        con.close()
    from paywatch.warehouse.resource import Warehouse

    with Warehouse.at(db).reader() as r:
        assert r.execute("SELECT count(*) FROM monthly_closes").fetchone()[0] == len(closes)
    doc = _cli("doctor", "--db", str(db))
    assert doc.returncode == 0, doc.stdout + doc.stderr
    return {"closes": len(closes), "decisions": decisions}


@pytest.mark.parametrize("point", CLOSE_POINTS)
def test_close_killed_inside_its_transaction_records_nothing(point, closable, tmp_path):
    db = _copy(closable, tmp_path / "wh")
    killed = _cli("close", "202512", "--db", str(db), "--out", str(tmp_path / "c"),
                  env={"PAYWATCH_CRASH_AT": point})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert _consistent(db)["closes"] == 0
    again = _cli("close", "202512", "--db", str(db), "--out", str(tmp_path / "c"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert _consistent(db)["closes"] == 1


def _kill_at_random(args: list[str], delay: float) -> int:
    p = _cli(*args, wait=False)
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):
        p.send_signal(signal.SIGKILL)
    p.communicate(timeout=600)
    return p.returncode


@pytest.mark.parametrize("seed", range(6))
def test_close_and_decide_killed_at_random_moments_leave_the_warehouse_consistent(seed, closable, tmp_path):
    """SIGKILL after a random delay (seeded: reproducible) across the whole life of a close
    and of a decision — import, lock, open, write, publish: all or nothing each time."""
    rnd = random.Random(seed)
    db = _copy(closable, tmp_path / "wh")
    con = open_warehouse(db, read_only=True)
    finding = con.execute("SELECT finding_id FROM findings ORDER BY finding_id LIMIT 1").fetchone()[0]
    con.close()
    t0 = time.monotonic()
    ok = _cli("close", "202512", "--dry", "--db", str(db), "--out", str(tmp_path / "d"))
    span = max(time.monotonic() - t0, 1.0)  # how long a command lives here, start to exit
    assert ok.returncode == 0, ok.stderr[-2000:]
    rc = _kill_at_random(["close", "202512", "--db", str(db), "--out", str(tmp_path / "c")], rnd.uniform(0, span * 1.2))
    state = _consistent(db)
    assert state["closes"] == (1 if rc == 0 else state["closes"]) and state["closes"] in (0, 1)
    rc = _kill_at_random(["decide", "confirm", "--finding", finding, "--by", "tester", "--reason", "checked",
                          "--db", str(db)], rnd.uniform(0, span * 1.2))
    state2 = _consistent(db)
    assert state2["decisions"] in (state["decisions"], state["decisions"] + 1)
    if rc == 0:
        assert state2["decisions"] == state["decisions"] + 1


@pytest.mark.parametrize("seed", range(4))
def test_verify_killed_at_random_moments_leaves_before_or_after(seed, states, tmp_path):
    rnd = random.Random(100 + seed)
    db = _copy(states["before"], tmp_path / "wh")
    rc = _kill_at_random(["verify", str(TARGET), "--db", str(db), "--out", str(tmp_path / "r")], rnd.uniform(0.5, 12))
    assert _digest(db) in (states["digest_before"], states["digest_after"]), rc
    again = _cli("verify", str(TARGET), "--db", str(db), "--out", str(tmp_path / "r2"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert _digest(db) == states["digest_after"]


# ------------------------------------------------------------------------------ never a traceback


def test_a_damaged_warehouse_gives_one_line_and_a_private_log(tmp_path):
    db = tmp_path / "wh" / "warehouse.duckdb"
    db.parent.mkdir()
    db.write_bytes(os.urandom(200_000))  # not a DuckDB file
    for args in (["verify", str(TARGET), "--db", str(db), "--out", str(tmp_path / "r")], ["kpi", "--db", str(db)],
                 ["close", "202512", "--db", str(db)], ["backtest", "--config", str(db), "--db", str(db)]):
        p = _cli(*args)
        assert p.returncode in (1, 2), (args, p.returncode, p.stderr[-2000:])
        assert "Traceback" not in p.stderr + p.stdout, args
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, (args, p.stderr)
        if p.returncode == 1 and "details in" in lines[0]:
            log = Path(lines[0].rsplit("details in ", 1)[1])
            assert log.parent == db.parent / "logs" and log.stat().st_mode & 0o777 == 0o600
            assert "Traceback" in log.read_text()
    assert (TARGET / "manifest.json").exists()  # the delivery is untouched


def test_the_one_line_never_shows_data_values(tmp_path):
    """An unexpected error whose message carries an IBAN and a name: the line shows neither,
    the log masks the IBAN."""
    from paywatch import crashlog

    try:
        raise ValueError("row of Dupont, Marie: CH9300762011623852957 rejected")
    except ValueError as e:
        log = crashlog.write_log(tmp_path, e, "verify")
        line = crashlog.one_line(e, log)
    assert "Dupont" not in line and "CH93" not in line and str(log) in line
    assert "CH9300762011623852957" not in log.read_text() and "Traceback" in log.read_text()
