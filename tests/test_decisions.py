"""Decisions with a second pair of eyes (issue #14) and a warehouse that can be rebuilt
(issue #15): decide's refusals and no-ops, maker-checker, bulk decisions, the journal and
doctor's tamper checks, and `paywatch rebuild` on the committed sample.

The contract is about exit codes and lines, so those tests run the real CLI in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from paywatch import journal
from paywatch import lifecycle as lc
from paywatch.doctor import doctor
from paywatch.pipeline import verify_run
from paywatch.rebuild import write_run_reports
from paywatch.warehouse.resource import Warehouse

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "gv-300"
RUNS = (SAMPLE / "runs.txt").read_text().split()
FINAL = "GV-202602-FINAL"


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory) -> Path:
    """The committed sample verified run by run into `<home>/warehouse.duckdb` (archive beside it)."""
    home = tmp_path_factory.mktemp("decisions-home")
    for name in RUNS:
        res = verify_run(SAMPLE / name, db=home / "warehouse.duckdb", out=home / "verified" / name)
        assert res.exit_code == 0, res.message
    return home


@pytest.fixture()
def wh(sample_home, tmp_path) -> Warehouse:
    """A private copy of the sample home (warehouse, archive, reports)."""
    home = tmp_path / "home"
    shutil.copytree(sample_home, home)
    return Warehouse.at(home / "warehouse.duckdb")


def paywatch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paywatch.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def holds(wh: Warehouse, run_id: str = FINAL) -> pl.DataFrame:
    with wh.reader() as con:
        return con.sql("SELECT finding_id, pernr, detector, category, owner, severity FROM current_findings "
                       "WHERE run_id = ? AND severity = 'hold' ORDER BY pernr, finding_id", params=[run_id]).pl()


def one_line_refusal(p: subprocess.CompletedProcess, says: str) -> None:
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], p.stderr
    assert "Traceback" not in p.stderr + p.stdout


def test_decide_refusals_exit_2_with_one_line(wh):
    f = holds(wh).row(0, named=True)
    db = str(wh.db)
    base = ["decide", "release", "--finding", f["finding_id"], "--db", db]
    one_line_refusal(paywatch(*base, "--by", "   ", "--reason", "documents checked"), "name (--by) is blank")
    one_line_refusal(paywatch(*base, "--by", "a.reviewer", "--reason", " \t "), "reason is blank")
    exp = ["decide", "expected", "--finding", f["finding_id"], "--by", "a.reviewer", "--reason", "x", "--db", db]
    one_line_refusal(paywatch(*exp, "--expires", "2001-01-01"), "not in the future")
    one_line_refusal(paywatch(*exp, "--expires", "2026-02-30"), "not a real date")
    one_line_refusal(paywatch("decide", "release", "--finding", "0000nosuchfinding", "--by", "a", "--reason", "r",
                              "--db", db), "no finding 0000nosuchfinding")
    one_line_refusal(paywatch("decide", "confirm", "--pernr", "99999999", "--detector", f["detector"], "--by", "a",
                              "--reason", "r", "--db", db), "no staff member 99999999")
    one_line_refusal(paywatch("decide", "confirm", "--pernr", f["pernr"], "--detector", "PW999", "--by", "a",
                              "--reason", "r", "--db", db), "no detector PW999")
    one_line_refusal(paywatch("decide", "release", "--case", f"{f['pernr']}:no_such_category", "--run", FINAL,
                              "--by", "a", "--reason", "r", "--db", db), "no case")
    with wh.reader() as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0  # nothing recorded
    assert not journal.journal_path(wh.db).exists()


def test_identical_decision_and_repeated_release_change_nothing(wh):
    f = holds(wh).row(0, named=True)
    args = ["decide", "confirm", "--finding", f["finding_id"], "--by", "a.reviewer", "--reason", "wrong scale",
            "--db", str(wh.db)]
    first, again = paywatch(*args), paywatch(*args)
    assert first.returncode == again.returncode == 0, again.stderr
    assert "1 decision(s) recorded" in first.stdout and "unchanged" in again.stdout
    rel = ["decide", "release", "--finding", f["finding_id"], "--reason", "documents checked", "--db", str(wh.db)]
    assert paywatch(*rel, "--by", "a.reviewer").returncode == 0
    second = paywatch(*rel, "--by", "b.reviewer")  # the same release, by anyone: a no-op
    assert second.returncode == 0 and "unchanged" in second.stdout and "awaits approval" in second.stdout
    with wh.reader() as con:
        assert con.execute("SELECT action FROM decisions ORDER BY decision_id").fetchall() == [("confirm",), ("release",)]


def test_release_needs_a_second_person(wh, tmp_path):
    f = holds(wh).row(0, named=True)
    with wh.writer() as con:
        before = lc.kpi(con, "GV").filter(pl.col("period") == "202602")["excluded_staff"][0]
        staff_holds = con.execute("SELECT finding_id FROM current_findings WHERE run_id = ? AND pernr = ? "
                                  "AND severity = 'hold'", [FINAL, f["pernr"]]).fetchall()
        ids = [lc.record_decision(con, finding_id=fid, action="release", actor="a.reviewer",
                                  reason="documents checked") for (fid,) in staff_holds]
        # proposed, not approved: the hold stands (exclusions, KPI, reports)
        assert lc.kpi(con, "GV").filter(pl.col("period") == "202602")["excluded_staff"][0] == before
    pending = write_run_reports(wh, FINAL, tmp_path / "pending") / "exceptions.csv"
    rows = pl.read_csv(pending, infer_schema_length=0).filter(pl.col("PERNR") == f["pernr"])
    assert rows.height == len(ids) and set(rows["severity"]) == {"hold"}
    assert rows["explanation"].str.contains("awaits a second person's approval", literal=True).all()
    # the author approving their own release: refused, one line, nothing changes
    p = paywatch("decide", "approve", "--decision", str(ids[0]), "--by", " A.Reviewer ", "--reason", "ok",
                 "--db", str(wh.db))
    one_line_refusal(p, "its author cannot approve it")
    # a second person approves every release: it takes effect, the trail shows both
    approve = ["decide", "approve", *[a for i in ids for a in ("--decision", str(i))], "--by", "b.checker",
               "--reason", "evidence seen", "--db", str(wh.db)]
    p = paywatch(*approve)
    assert p.returncode == 0 and "now in force" in p.stdout, p.stderr
    assert "unchanged" in paywatch(*approve).stdout  # approving again changes nothing
    with wh.reader() as con:
        assert lc.kpi(con, "GV").filter(pl.col("period") == "202602")["excluded_staff"][0] == before - 1
        trail = con.sql("SELECT proposed_by, proposed_at, approved_by, approved_at, status FROM decision_trail").pl()
    assert trail["proposed_by"].unique().to_list() == ["a.reviewer"]
    assert trail["approved_by"].unique().to_list() == ["b.checker"]
    assert (trail["approved_at"] >= trail["proposed_at"]).all() and set(trail["status"]) == {"in force"}
    # the next report of the run shows it released
    res = verify_run(SAMPLE / FINAL, db=wh.db, out=tmp_path / "approved")
    row = res.findings.filter(pl.col("finding_id") == f["finding_id"]).row(0, named=True)
    assert row["severity"] == "info" and "Released by a.reviewer" in row["explanation"]
    assert "approved by b.checker" in (tmp_path / "approved" / "exceptions.csv").read_text()


def test_approve_refuses_what_is_not_a_pending_release(wh):
    f = holds(wh).row(0, named=True)
    p = paywatch("decide", "confirm", "--finding", f["finding_id"], "--by", "a", "--reason", "r", "--db", str(wh.db))
    assert p.returncode == 0
    one_line_refusal(paywatch("decide", "approve", "--decision", "1", "--by", "b", "--reason", "r", "--db", str(wh.db)),
                     "only a release needs")
    one_line_refusal(paywatch("decide", "approve", "--decision", "42", "--by", "b", "--reason", "r", "--db", str(wh.db)),
                     "no decision 42")


def test_bulk_decision_on_a_category_of_a_run(wh):
    h = holds(wh)
    category = h["category"].mode().sort()[0]
    with wh.reader() as con:
        n = con.execute("SELECT count(*) FROM current_findings WHERE run_id = ? AND category = ?",
                        [FINAL, category]).fetchone()[0]
    args = ["decide", "confirm", "--run", FINAL, "--category", category, "--by", "a.reviewer", "--reason",
            "checked together", "--db", str(wh.db)]
    p = paywatch(*args)
    assert p.returncode == 0 and f"{n} decision(s) recorded" in p.stdout, p.stdout + p.stderr
    again = paywatch(*args)
    assert again.returncode == 0 and f"{n} unchanged" in again.stdout or (n == 1 and "unchanged" in again.stdout)
    with wh.reader() as con:
        got = con.execute("SELECT count(*), count(DISTINCT finding_id), any_value(reason) FROM decisions").fetchone()
    assert got == (n, n, "checked together")
    one_line_refusal(paywatch("decide", "confirm", "--run", FINAL, "--owner", "NOBODY", "--by", "a", "--reason", "r",
                              "--db", str(wh.db)), "no finding of owner NOBODY")


def test_bulk_by_entity_and_owner_select_the_right_findings(wh):
    with wh.writer() as con:
        hr = lc.select_findings(con, FINAL, owner="hr")
        everything = lc.decisions.run_findings(con, FINAL)
        assert sorted(hr) == sorted(everything.filter(pl.col("owner") == "HR")["finding_id"].to_list())
        from paywatch.delivery.package import staff_directory

        who = staff_directory(con, FINAL, "202602")
        entity = everything.join(who, on="pernr")["entity"].mode().sort()[0]
        picked = lc.select_findings(con, FINAL, entity=entity)
        want = everything.join(who, on="pernr").filter(pl.col("entity") == entity)["finding_id"].to_list()
        assert sorted(picked) == sorted(want) and 0 < len(picked) < everything.height
        case_id = everything["case_id"][0]  # findings carry their case (cases.csv)
        case = lc.case_finding_ids(con, case_id, FINAL)
        assert sorted(case) == sorted(everything.filter(pl.col("case_id") == case_id)["finding_id"].to_list())
        out = lc.decide_findings(con, case, action="assign", actor="a", reason="to HR", assignee="h.r")
        assert len(out.recorded) == len(case) >= 1


def test_journal_is_private_chained_and_doctor_finds_tampering(wh):
    f = holds(wh).row(0, named=True)
    with wh.writer() as con:
        d1 = lc.record_decision(con, finding_id=f["finding_id"], action="release", actor="a", reason="docs")
        lc.approve_decision(con, d1, approver="b", reason="seen")
        lc.record_decision(con, pernr=f["pernr"], detector=f["detector"], run_id=FINAL, action="expected",
                           actor="a", reason="arrangement", expires_on=date(2099, 1, 31))
    path = journal.journal_path(wh.db)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert doctor(wh).ok, doctor(wh).problems
    good = path.read_bytes()
    lines = good.splitlines(keepends=True)

    def problems_with(content: bytes) -> list[str]:
        path.write_bytes(content)
        try:
            return doctor(wh).problems
        finally:
            path.write_bytes(good)

    assert any("altered" in p for p in problems_with(good.replace(b'"reason": "docs"', b'"reason": "DOCS"')))
    assert any("removed or the lines reordered" in p for p in problems_with(lines[1] + lines[0] + lines[2]))
    assert any("not in the journal" in p for p in problems_with(b"".join(lines[:2])))  # last entry lost
    # a decision deleted or rewritten directly in the database
    with wh.writer() as con:
        con.execute("UPDATE decisions SET reason = 'rewritten' WHERE decision_id = ?", [d1])
    assert any(f"decision {d1} differs" in p and "reason" in p for p in doctor(wh).problems)
    with wh.writer() as con:
        con.execute("DELETE FROM decisions WHERE decision_id = ?", [d1])
    assert any(f"decision {d1} of the journal is missing" in p for p in doctor(wh).problems)
    # the journal itself gone: doctor says so and decide refuses rather than start a new one
    path.unlink()
    assert any("journal" in p and "missing" in p for p in doctor(wh).problems)
    p = paywatch("decide", "confirm", "--finding", f["finding_id"], "--by", "a", "--reason", "r", "--db", str(wh.db))
    assert p.returncode == 1 and "journal" in p.stderr and "Traceback" not in p.stderr


def test_doctor_on_a_damaged_warehouse_says_rebuild(wh):
    size = wh.db.stat().st_size
    with open(wh.db, "r+b") as fh:
        fh.truncate(size // 3)
    p = paywatch("doctor", "--db", str(wh.db))
    assert p.returncode == 1 and "Traceback" not in p.stdout + p.stderr
    assert [line for line in p.stdout.splitlines() if "damaged: run paywatch rebuild" in line]


def test_rebuild_gives_the_same_findings_decisions_and_reports(wh, tmp_path):
    h = holds(wh)
    with wh.writer() as con:
        d1 = lc.record_decision(con, finding_id=h["finding_id"][0], action="release", actor="a.reviewer",
                                reason="documents checked")
        lc.approve_decision(con, d1, approver="b.checker", reason="seen")
        lc.record_decision(con, finding_id=h["finding_id"][1], action="release", actor="a.reviewer",
                           reason="pending one")  # never approved: still pending after the rebuild
        lc.decide_findings(con, lc.select_findings(con, "GV-202601-FINAL", owner="FINANCE"), action="confirm",
                           actor="c.reviewer", reason="checked")
    # the warehouse file itself is lost: archive + journal are enough
    saved = Warehouse.at(tmp_path / "saved" / "warehouse.duckdb")
    saved.paths.home.mkdir()
    shutil.copy(wh.db, saved.db)
    wh.db.unlink()
    new_db = tmp_path / "rebuilt" / "warehouse.duckdb"
    p = paywatch("rebuild", "--db", str(wh.db), "--out", str(new_db), timeout=1800)  # 13 verifies
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"{len(RUNS)} deliveries replayed (0 refused again)" in p.stdout
    new = Warehouse.at(new_db)
    queries = {
        "findings": "SELECT * EXCLUDE (created_at) FROM findings ORDER BY finding_id",
        "decisions": "SELECT * FROM decisions ORDER BY decision_id",
        "approvals": "SELECT * FROM decision_approvals ORDER BY decision_id",
        "trail": "SELECT * FROM decision_trail",
        "exclusions": "SELECT * FROM exclusions ORDER BY ALL",
    }
    with saved.reader() as a, new.reader() as b:
        for name, sql in queries.items():
            old_rows, new_rows = a.sql(sql).pl(), b.sql(sql).pl()
            assert old_rows.height > 0 and old_rows.equals(new_rows), name
    assert journal.journal_path(new_db).read_bytes() == journal.journal_path(wh.db).read_bytes()
    assert doctor(new).ok, doctor(new).problems
    for run_id in RUNS:
        old = write_run_reports(saved, run_id, tmp_path / "old-reports" / run_id)
        for name in ("exceptions.csv", "cases.csv"):
            assert (old / name).read_bytes() == (new.paths.reports / run_id / name).read_bytes(), (run_id, name)
    # a run no decision touches reads as it did when it was first verified
    for name in ("exceptions.csv", "cases.csv"):
        assert ((wh.paths.home / "verified" / RUNS[0] / name).read_bytes()
                == (new.paths.reports / RUNS[0] / name).read_bytes()), name
    assert any(len((new.paths.reports / r / "cases.csv").read_text().splitlines()) > 1 for r in RUNS)
    # never over a warehouse that exists
    again = paywatch("rebuild", "--db", str(saved.db), "--out", str(new_db))
    assert again.returncode == 2 and "exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1

