"""Exception lifecycle, reviewers' decisions, the monthly close and the KPI (issue: lifecycle)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from paywatch.settings import load_settings
from paywatch import lifecycle as lc
from paywatch.pilot import PilotResult, pilot
from paywatch.pipeline import verify_run
from paywatch.simulate import SimConfig
from paywatch.warehouse.db import fetch_one, open_warehouse

SAMPLE = Path(__file__).resolve().parent.parent / "data_samples" / "gv-300"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    """The committed sample verified run by run (13 runs, three months)."""
    root = tmp_path_factory.mktemp("lifecycle")
    db = root / "w.duckdb"
    for name in (SAMPLE / "runs.txt").read_text().split():
        res = verify_run(SAMPLE / name, db=db, out=root / "rep" / name)
        assert res.exit_code == 0, res.message
    return db


@pytest.fixture()
def db(warehouse, tmp_path) -> Path:
    copy = tmp_path / "w.duckdb"
    shutil.copy(warehouse, copy)
    return copy


def test_lifecycle_statuses_follow_rechecks(db):
    con = open_warehouse(db)
    lcy = con.sql("SELECT * FROM finding_lifecycle").pl()
    assert set(lcy["status"].unique()) <= {"new", "persisting", "resolved", "reopened"}
    # every identity is new exactly once, in its first-seen run
    firsts = lcy.filter(pl.col("status") == "new")
    assert firsts.group_by("identity", "period").len()["len"].max() == 1
    assert (firsts["run_id"] == firsts["first_seen_run"]).all()
    # a resolved identity was seen in an earlier run of the month and is absent from this one
    resolved = lcy.filter(pl.col("status") == "resolved").row(0, named=True)
    present = fetch_one(con, "SELECT count(*) FROM current_findings WHERE run_id = ? AND identity = ?", [resolved["run_id"], resolved["identity"]])[0]
    assert present == 0 and resolved["age_runs"] >= 1
    con.close()


def test_kpi_counts_staff_with_open_holds_at_final(db):
    con = open_warehouse(db)
    kpi = lc.kpi(con, "GV")
    assert kpi["period"].to_list() == ["202512", "202601", "202602"]
    for period, n in kpi.select("period", "excluded_staff").iter_rows():
        holds = fetch_one(con, "SELECT count(DISTINCT pernr) FROM current_findings WHERE period = ? AND run_type = 'FINAL' "
                        "AND severity = 'hold'", [period])[0]
        assert n == holds > 0
    assert "baseline_2018" not in kpi.columns  # the reference lines are configuration, not data
    con.close()


def test_kpi_reference_lines_come_from_configuration(tmp_path):
    from paywatch.settings import kpi_targets, load_settings

    shipped = kpi_targets()
    assert (shipped.baseline, shipped.target, shipped.for_staff) == (295, 120, 10_000)
    assert shipped.scaled(1_000) == type(shipped)(29.5, 12.0, 1_000)
    (tmp_path / "paywatch.toml").write_text("[kpi]\nbaseline_staff_held = 200\ntarget_staff_held = 80\n")
    office = kpi_targets(load_settings(tmp_path / "paywatch.toml"))
    assert (office.baseline, office.target) == (200, 80)


def test_release_takes_staff_out_of_exclusions_and_is_audited(db, tmp_path):
    con = open_warehouse(db)
    f = fetch_one(con, "SELECT finding_id, pernr, run_id FROM current_findings WHERE run_type = 'FINAL' AND period = '202602' "
                "AND severity = 'hold' ORDER BY pernr LIMIT 1")
    before = lc.kpi(con, "GV").filter(pl.col("period") == "202602")["excluded_staff"][0]
    holds = fetch_one(con, "SELECT count(*) FROM current_findings WHERE run_id = ? AND pernr = ? AND severity = 'hold'", [f[2], f[1]])[0]
    for (fid,) in con.execute("SELECT finding_id FROM current_findings WHERE run_id = ? AND pernr = ? AND severity = 'hold'", [f[2], f[1]]).fetchall():
        did = lc.record_decision(con, finding_id=fid, action="release", actor="a.reviewer", reason="documents checked")
        # a release takes effect once a second person approves it (maker-checker)
        assert lc.kpi(con, "GV").filter(pl.col("period") == "202602")["excluded_staff"][0] == before
        lc.approve_decision(con, did, approver="b.checker", reason="evidence seen")
    after = lc.kpi(con, "GV").filter(pl.col("period") == "202602")["excluded_staff"][0]
    assert after == before - 1
    assert fetch_one(con, "SELECT count(*) FROM decisions")[0] == holds
    con.close()
    # the report of the same run now shows the decision (docs/cli-contract.md: a decision may change triage)
    res = verify_run(SAMPLE / f[2], db=db, out=tmp_path / "again")
    row = res.findings.filter(pl.col("finding_id") == f[0]).row(0, named=True)
    assert row["severity"] == "info" and "Released by a.reviewer" in row["explanation"]
    text = (tmp_path / "again" / "exceptions.csv").read_text()
    assert "Released by a.reviewer" in text


def test_false_positive_feeds_rule_precision(db):
    con = open_warehouse(db)
    rows = con.sql("SELECT finding_id, detector FROM current_findings WHERE severity = 'hold' ORDER BY finding_id "
                   "LIMIT 3").fetchall()
    lc.record_decision(con, finding_id=rows[0][0], action="confirm", actor="r", reason="wrong scale")
    lc.record_decision(con, finding_id=rows[1][0], action="false_positive", actor="r", reason="special case")
    prec = lc.rule_precision(con)
    assert prec["confirmed"].sum() == 1 and prec["false_positives"].sum() == 1
    con.close()


def test_expected_needs_expiry_and_applies_until_it(db):
    con = open_warehouse(db)
    with pytest.raises(lc.DecisionError):
        lc.record_decision(con, pernr="10000001", detector="PW101", action="expected", actor="r", reason="x")
    with pytest.raises(lc.DecisionError, match="not in the future"):
        lc.record_decision(con, pernr="10000001", detector="PW101", action="expected", actor="r", reason="x",
                           expires_on=date(2001, 1, 1))
    f = fetch_one(con, "SELECT pernr, detector, wage_type FROM current_findings WHERE period = '202601' AND severity = 'hold' "
                "ORDER BY pernr LIMIT 1")
    lc.record_decision(con, pernr=f[0], detector=f[1], wage_type=f[2], action="expected", actor="r",
                       reason="known arrangement", expires_on=date(2026, 1, 31), today=date(2026, 1, 15))
    d = con.sql("SELECT period, decision FROM findings_decided WHERE pernr = ? AND detector = ? "
                "AND coalesce(wage_type,'') = coalesce(?, '')", params=list(f)).pl()
    assert set(d.filter(pl.col("period") == "202601")["decision"].to_list()) == {"expected"}
    assert d.filter(pl.col("period") == "202602")["decision"].is_null().all()
    con.close()


def test_monthly_close_records_exclusions_and_advance_policy(db):
    con = open_warehouse(db)
    res = lc.close_period(con, "GV", "202601", {"advance_enabled": True, "advance_min_net_cents": 0})
    n = lc.kpi(con, "GV").filter(pl.col("period") == "202601")["excluded_staff"][0]
    assert res.excluded.height == n and res.advances_recommended == (res.excluded["net_pay_cents"] >= 0).sum()
    stored = fetch_one(con, "SELECT count(*) FROM close_exclusions WHERE close_id = ?", [res.close_id])[0]
    assert stored == n
    none = lc.close_period(con, "GV", "202601", {"advance_enabled": False})
    assert none.advances_recommended == 0 and none.close_id == res.close_id + 1  # appended, not rewritten
    con.close()


def test_pilot_closes_the_loop_against_the_baseline(tmp_path):
    res = pilot(SimConfig(staff=400, months=2, start="202601", seed=23, error_rate=0.05), load_settings(None),
                fix_probability=0.6, work=tmp_path)
    assert len(res.baseline) == len(res.paywatch) == 2
    for b in res.baseline:
        assert b.held >= b.at_final > 0  # late detection: every error present at FINAL holds its staff
    assert PilotResult.avg(res.paywatch) < PilotResult.avg(res.baseline) * 0.6
    assert all(p.reported_early > 0 for p in res.paywatch)
    # every held staff member is held by at least one case, and a case holds one staff member
    assert all(r.held <= r.held_cases for r in res.baseline + res.paywatch)
    assert all(r.held_cases > 0 for r in res.baseline)
