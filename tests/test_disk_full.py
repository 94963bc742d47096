"""Disk full for real (a small tmpfs mounted for the test): verify, close and mail end in a
contract exit — 1 with one line naming a log file, or 0 when the work was done — never a
traceback; nothing half written, the delivery kept, and once space is freed the same
command completes the work exactly as if the disk had never filled."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from paywatch.pipeline import verify_run
from paywatch.warehouse.db import open_warehouse, warehouse_digest

SAMPLE = Path(__file__).resolve().parent.parent / "data_samples" / "gv-300"
RUNS = (SAMPLE / "runs.txt").read_text().split()
UPTO = RUNS.index("GV-202512-FINAL") + 1  # December can be closed
TARGET = RUNS[UPTO]
LOG_RE = re.compile(r"details in (\S+\.log)$")


def _cli(*args, timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "paywatch.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _digest(db: Path) -> str:
    con = open_warehouse(db, read_only=True)
    try:
        return warehouse_digest(con, exclude_delivery_log=True, ignore_times=True)
    finally:
        con.close()


def _content(db: Path) -> tuple:
    """What a verify derives (runs, findings, verifications), without the delivery log: a
    failed attempt is recorded there, so later delivery ids shift — nothing else may."""
    con = open_warehouse(db, read_only=True)
    try:
        return tuple(con.execute(q).fetchall() for q in (
            "SELECT run_id, version, is_current FROM runs ORDER BY ALL",
            "SELECT finding_id, run_id, pernr, detector, category, severity FROM findings ORDER BY ALL",
            "SELECT run_id, count(*) FROM verifications GROUP BY ALL ORDER BY ALL",
            "SELECT count(*) FROM raw_files"))
    finally:
        con.close()


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextlib.contextmanager
def tmpfs(where: Path, size: int):
    """A tmpfs of `size` bytes mounted at `where` (unmounted on exit, whatever happens)."""
    where.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", f"pw-{uuid.uuid4().hex[:8]}",
                        str(where)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({p.stderr.strip()}): run as root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(folder: Path, leave: int) -> Path:
    """Take all free space of `folder`'s file system but `leave` bytes."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    filler = folder / "filler.bin"
    with open(filler, "wb") as fh:
        chunk = b"\0" * (1 << 20)
        todo = max(free - leave, 0)
        try:
            while todo > 0:
                todo -= fh.write(chunk[: min(len(chunk), todo)])
        except OSError:
            pass
    return filler


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    root = tmp_path_factory.mktemp("diskfull")
    before = root / "before" / "warehouse.duckdb"
    for name in RUNS[:UPTO]:
        assert verify_run(SAMPLE / name, db=before).exit_code == 0
    after = root / "after" / "warehouse.duckdb"
    shutil.copytree(before.parent, after.parent)
    assert verify_run(SAMPLE / TARGET, db=after, out=root / "after-report").exit_code == 0
    return {"before": before, "digest_before": _digest(before), "digest_after": _digest(after),
            "content_after": _content(after),
            "csv_after": (root / "after-report" / "exceptions.csv").read_text()}


def _one_line_exit_1(p: subprocess.CompletedProcess) -> Path:
    assert p.returncode == 1, (p.returncode, p.stderr[-3000:])
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "disk full" in lines[0], lines[0]
    m = LOG_RE.search(lines[0])
    assert m, lines[0]
    log = Path(m.group(1))
    assert "Traceback" in log.read_text() and log.stat().st_mode & 0o777 == 0o600
    return log


def _no_half_written(folder: Path) -> None:
    leftovers = [p for p in folder.rglob("*.tmp") if p.is_file()]
    assert not leftovers, leftovers


@pytest.mark.parametrize("leave", [0, 256 * 1024, 2 << 20, 6 << 20])
def test_verify_on_a_full_disk(states, tmp_path, leave):
    mnt = tmp_path / "mnt"
    home_size = _du(states["before"].parent) + _du(SAMPLE / TARGET)
    with tmpfs(mnt, home_size * 2 + (24 << 20)):
        home = mnt / "home"
        shutil.copytree(states["before"].parent, home)
        landing = shutil.copytree(SAMPLE / TARGET, mnt / "landing" / TARGET)
        db, out = home / "warehouse.duckdb", mnt / "out"
        filler = fill(mnt, leave)
        p = _cli("verify", landing, "--db", db, "--out", out)
        assert "Traceback" not in p.stderr, p.stderr[-3000:]
        if leave == 0 or p.returncode != 0:
            _one_line_exit_1(p)
        assert _digest(db) in (states["digest_before"], states["digest_after"])  # never in between
        for f in (SAMPLE / TARGET).iterdir():  # the delivery is kept as received
            assert (landing / f.name).read_bytes() == f.read_bytes()
        if (out / "exceptions.csv").exists():  # a report is whole or absent
            assert (out / "exceptions.csv").read_text() == states["csv_after"]
        _no_half_written(home)
        filler.unlink()
        again = _cli("verify", landing, "--db", db, "--out", out)
        assert again.returncode == 0, again.stderr[-3000:]
        assert _content(db) == states["content_after"]
        assert (out / "exceptions.csv").read_text() == states["csv_after"]


def test_close_on_a_full_disk(states, tmp_path):
    mnt = tmp_path / "mnt"
    with tmpfs(mnt, _du(states["before"].parent) * 2 + (24 << 20)):
        home = shutil.copytree(states["before"].parent, mnt / "home")
        db = home / "warehouse.duckdb"
        filler = fill(mnt, 0)
        p = _cli("close", "202512", "--db", db, "--out", mnt / "close")
        _one_line_exit_1(p)
        con = open_warehouse(db, read_only=True)
        assert con.execute("SELECT count(*) FROM monthly_closes").fetchone() == (0,)  # undone with the summary
        con.close()
        _no_half_written(mnt)
        filler.unlink()
        ok = _cli("close", "202512", "--db", db, "--out", mnt / "close")
        assert ok.returncode == 0, ok.stderr[-3000:]
        con = open_warehouse(db, read_only=True)
        assert con.execute("SELECT count(*) FROM monthly_closes").fetchone() == (1,)
        con.close()
        assert (mnt / "close" / "monthly_summary.html").stat().st_size > 0


def test_mail_on_a_full_disk(states, tmp_path):
    """The outbox's disk is full: the run is verified (exit 0), the failed delivery is
    recorded and said, and no half-written mail is left in the outbox."""
    home = shutil.copytree(states["before"].parent, tmp_path / "home")
    shutil.rmtree(home / "outbox", ignore_errors=True)
    with tmpfs(home / "outbox", 1 << 20):
        filler = fill(home / "outbox", 0)
        p = _cli("verify", SAMPLE / TARGET, "--db", home / "warehouse.duckdb", "--out", tmp_path / "r")
        assert p.returncode == 0, p.stderr[-3000:]
        assert "Traceback" not in p.stderr
        assert "DELIVERY FAILED" in p.stdout + p.stderr
        assert [f for f in (home / "outbox").rglob("*") if f.is_file()] == [filler]
        filler.unlink()
    con = open_warehouse(home / "warehouse.duckdb", read_only=True)
    assert con.execute("SELECT DISTINCT status FROM report_deliveries WHERE run_id = ?", [TARGET]).fetchall() \
        == [("failed",)]
    con.close()
    assert (tmp_path / "r" / "exceptions.csv").read_text() == states["csv_after"]
