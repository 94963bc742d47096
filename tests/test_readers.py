"""Readers beside the writer (docs/cli-contract.md 1.1, "Readers and the writer"): a notebook's
read-only connection held open in another process never breaks a verify, and `paywatch kpi`,
`close --dry` and any reader work while a verify writes, seeing the last committed state.
Real processes, real DuckDB locks: the readers open the snapshot the writer publishes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from paywatch.pipeline import verify_run
from paywatch.warehouse.resource import Warehouse

SAMPLE = Path(__file__).resolve().parent.parent / "data_samples" / "gv-300"
RUNS = (SAMPLE / "runs.txt").read_text().split()
DEC_FINAL = RUNS.index("GV-202512-FINAL")  # the runs up to it make December closable


def _cli(*args: str, wait: bool = True, timeout: float = 600):
    cmd = [sys.executable, "-m", "paywatch.cli", *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _runs(wh: Warehouse) -> set[str]:
    with wh.reader() as con:
        return {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A warehouse holding the runs up to December's FINAL."""
    db = tmp_path_factory.mktemp("readers") / "wh" / "warehouse.duckdb"
    for name in RUNS[: DEC_FINAL + 1]:
        assert verify_run(SAMPLE / name, db=db).exit_code == 0
    return db


@pytest.fixture
def db(base, tmp_path) -> Path:
    shutil.copytree(base.parent, tmp_path / "wh", ignore=shutil.ignore_patterns("*.lock"))
    return tmp_path / "wh" / base.name


# A notebook: opens a read-only connection through the facade, says so, keeps it open and
# queries it again when told to, then reports what it saw.
NOTEBOOK = r"""
import sys, time
from pathlib import Path
from paywatch.investigate.connect import open_readonly
con = open_readonly(Path(sys.argv[1]))
print("open", con.execute("SELECT count(*) FROM runs").fetchone()[0], flush=True)
sys.stdin.readline()
print("still", con.execute("SELECT count(*) FROM runs").fetchone()[0], flush=True)
con.close()
"""


def test_a_verify_completes_while_a_notebook_holds_a_read_only_connection(db, tmp_path):
    new = RUNS[DEC_FINAL + 1]
    before = len(_runs(Warehouse.at(db)))
    nb = subprocess.Popen([sys.executable, "-c", NOTEBOOK, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        assert nb.stdout.readline().split() == ["open", str(before)], nb.stderr.read()
        res = _cli("verify", SAMPLE / new, "--db", db, "--out", tmp_path / "r", "--wait", "0")
        assert res.returncode == 0, res.stderr[-2000:]
        assert "Traceback" not in res.stderr
        nb.stdin.write("\n")
        nb.stdin.flush()
        # the notebook's open connection keeps its state; a new one sees the committed run
        assert nb.stdout.readline().split() == ["still", str(before)]
    finally:
        nb.communicate(timeout=60)
    assert nb.returncode == 0
    assert new in _runs(Warehouse.at(db))


def test_any_read_only_connection_on_what_readers_open_never_blocks_a_verify(db, tmp_path):
    wh = Warehouse.at(db)
    with wh.reader():
        pass  # publishes the snapshot for a warehouse written before snapshots existed
    con = duckdb.connect(str(wh.snapshot), read_only=True)  # a foreign tool, in this process
    try:
        res = _cli("verify", SAMPLE / RUNS[DEC_FINAL + 1], "--db", db, "--out", tmp_path / "r", "--wait", "0")
    finally:
        con.close()
    assert res.returncode == 0, res.stderr[-2000:]


def test_kpi_and_dry_close_work_while_a_writer_holds_the_warehouse(db, tmp_path):
    """A writer in the middle of its work (lock held, file open read-write, an uncommitted
    change): readers answer at once from the last committed state."""
    wh = Warehouse.at(db)
    committed = len(_runs(wh))
    with wh.writer(0) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM findings")  # uncommitted: no reader may see it
        t0 = time.monotonic()
        kpi = _cli("kpi", "--db", db, timeout=120)
        dry = _cli("close", "202512", "--dry", "--db", db, "--out", tmp_path / "close", timeout=120)
        took = time.monotonic() - t0
        with wh.reader() as r:
            assert r.execute("SELECT count(*) FROM findings").fetchone()[0] > 0
            assert r.execute("SELECT count(*) FROM runs").fetchone()[0] == committed
        con.execute("ROLLBACK")
    assert kpi.returncode == 0, kpi.stderr[-2000:]
    assert "202512" in kpi.stdout
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "dry, nothing recorded" in dry.stdout
    assert (tmp_path / "close" / "monthly_summary.html").exists()
    assert took < 120  # neither waited for the writer (its wait would be 600 s)
    with wh.reader() as r:
        assert r.execute("SELECT count(*) FROM monthly_closes").fetchone()[0] == 0  # a dry close records nothing


def test_kpi_during_a_real_verify(db, tmp_path):
    """`paywatch kpi` again and again while a verify runs: every one exits 0, and the verify too."""
    wh = Warehouse.at(db)
    with wh.reader():
        pass
    verify = _cli("verify", SAMPLE / RUNS[DEC_FINAL + 1], "--db", db, "--out", tmp_path / "r", "--wait", "0",
                  wait=False)
    kpis = []
    while verify.poll() is None:
        kpis.append(_cli("kpi", "--db", db, timeout=120))
    out, err = verify.communicate()
    assert verify.returncode == 0, err[-2000:]
    assert kpis and all(k.returncode == 0 for k in kpis), [k.stderr[-500:] for k in kpis if k.returncode]


def test_a_writer_killed_after_its_commit_is_seen_by_the_next_reader(db, tmp_path):
    """Killed after the commit, before publishing (crash point `reports`): the snapshot is
    stale; the next reader, finding no writer, publishes the committed state first."""
    wh = Warehouse.at(db)
    with wh.reader():
        pass
    new = RUNS[DEC_FINAL + 1]
    env = os.environ | {"PAYWATCH_CRASH_AT": "reports"}
    killed = subprocess.run([sys.executable, "-m", "paywatch.cli", "verify", str(SAMPLE / new), "--db", str(db),
                             "--out", str(tmp_path / "r")], env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9
    assert new in _runs(wh)


def test_a_reader_of_a_missing_warehouse_gets_one_line(tmp_path):
    res = _cli("kpi", "--db", tmp_path / "none" / "warehouse.duckdb")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.stderr


def test_snapshot_is_private_and_published_atomically(db):
    wh = Warehouse.at(db)
    with wh.writer(0):
        pass
    assert wh.snapshot.stat().st_mode & 0o777 == 0o600
    assert not list(db.parent.glob(".*.tmp"))  # no half-written snapshot left behind
