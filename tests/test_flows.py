"""Prefect flows under a throwaway Prefect server (prefect_test_harness): pick-up exactly
once and in order, the landing audit trace and housekeeping, the late-run alert (mailed to a
real SMTP server on loopback, closed when the run arrives), catch-up of a past period, the
monthly close, artifacts; and the calendar."""

from __future__ import annotations

import asyncio
import json
import re
import logging
import os
import shutil
import threading
import time
import tomllib
from decimal import Decimal
from email import message_from_bytes
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from paywatch.settings import load_settings
from flows.calendar import crons
from flows.monthly import monthly_close
from flows.verify import ALERTED, backfill, pull_and_verify, verify_run
from paywatch import landing as lnd
from paywatch.warehouse.db import open_warehouse
import smtp_server

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "gv-300"
RUNS = (SAMPLE / "runs.txt").read_text().split()


@pytest.fixture(scope="module", autouse=True)
def harness():
    with prefect_test_harness(server_startup_timeout=180):
        yield


def _artifacts(key_prefix: str) -> list:
    async def go():
        async with get_client() as client:
            return [a for a in await client.read_artifacts() if (a.key or "").startswith(key_prefix)]
    return asyncio.run(go())


def test_calendar_schedules_follow_the_config_and_prefect_yaml():
    cal = load_settings(None)["calendar"]
    c = crons(cal)
    assert c == {"verify-sim1": "0 7 10 * *", "verify-sim2": "0 7 15 * *", "verify-sim3": "0 7 20 * *",
                 "verify-final": "0 7 24 * *", "monthly-close": "0 7 1 * *"}
    import yaml  # prefect depends on pyyaml

    deployed = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    in_yaml = {d["name"]: d["schedules"][0]["cron"] for d in deployed if d.get("schedules") and "cron" in d["schedules"][0]}
    assert in_yaml == c
    assert all(d["schedules"][0]["timezone"] == cal["timezone"] for d in deployed if d.get("schedules"))
    watcher = next(d for d in deployed if d["name"] == "watch-landing")
    assert watcher["schedules"][0]["interval"] == load_settings(None)["landing"]["watch_seconds"] == 300
    assert "expect_run_type" not in watcher.get("parameters", {})  # any run type, off-cycle too
    from flows.serve import deployments  # the no-pool mode registers the same set

    assert {d.name for d in deployments()} == {d["name"] for d in deployed}
    assert tomllib.loads((ROOT / "detectors" / "defaults.toml").read_text())["calendar"]["SIM1"] == 10


def test_pull_picks_up_each_delivery_once_in_order_and_alerts_on_late_run(tmp_path):
    landing, db = tmp_path / "landing", tmp_path / "wh" / "w.duckdb"
    landing.mkdir()
    # dropped in reverse order, under folder names that sort the wrong way
    for i, name in enumerate(reversed(RUNS[:4])):
        shutil.copytree(SAMPLE / name, landing / f"drop-{i}")
    first = pull_and_verify(str(landing), str(db), settle_seconds=0)
    assert [d["run_id"] for d in first] == RUNS[:4]  # contract order, not folder order
    assert all(d["state"] == "Completed" for d in first)
    again = pull_and_verify(str(landing), str(db), settle_seconds=0)
    assert again == []  # exactly once
    con = open_warehouse(db)
    assert con.execute("SELECT count(*) FROM deliveries").fetchall()[0][0] == 4
    con.close()
    # handled folders left landing for processed/ (default after_pickup = "move")
    assert not lnd.delivery_folders(landing) and len(list((landing / "processed").iterdir())) == 4
    # a folder still being written (no manifest yet) is not read
    partial = landing / "partial"
    shutil.copytree(SAMPLE / RUNS[4], partial)
    (partial / "manifest.json").unlink()
    state = pull_and_verify(str(landing), str(db), settle_seconds=0, return_state=True)
    assert state.result() == [] and re.fullmatch(r"pull landing \d{4}-\d\d-\d\d \d\d:\d\dZ", _flow_run(state).name)
    assert partial.is_dir()


def test_verify_run_flow_publishes_artifacts_and_rejects_bad_extracts(tmp_path):
    db = tmp_path / "w.duckdb"
    for name in RUNS[:3]:
        res = verify_run(str(SAMPLE / name), str(db), str(tmp_path / "rep" / name))
        assert res["exit_code"] == 0
    keys = {a.key for a in _artifacts("")}
    assert "exceptions-gv-202512-sim2" in keys and "summary-gv-202512-sim2" in keys
    bad = tmp_path / "bad"
    shutil.copytree(SAMPLE / RUNS[3], bad)
    (bad / "T510.csv").unlink()
    state = verify_run(str(bad), str(db), return_state=True)
    assert state.is_failed() and "T510.csv" in state.message


def test_monthly_close_flow_records_kpi(tmp_path):
    db = tmp_path / "w.duckdb"
    for name in RUNS[:5]:
        verify_run(str(SAMPLE / name), str(db))
    out = monthly_close(period="202512", db=str(db))
    assert out["period"] == "202512" and out["excluded"] > 0
    assert (tmp_path / "reports" / "GV-202512-close" / "kpi.png").exists()
    md = [a for a in _artifacts("kpi-gv")]
    assert md and "295" in md[-1].data and "120" in md[-1].data


# --- alerts, audit, catch-up


@pytest.fixture
def smtp(monkeypatch):
    with smtp_server.running() as (port, inbox):
        monkeypatch.setenv("PAYWATCH_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("PAYWATCH_SMTP_PORT", str(port))
        monkeypatch.delenv("PAYWATCH_ROUTING", raising=False)
        yield inbox


def test_late_run_alert_is_mailed_once_and_closed_when_the_run_arrives(tmp_path, smtp):
    landing, db = tmp_path / "landing", tmp_path / "wh" / "w.duckdb"
    landing.mkdir()
    state = pull_and_verify(str(landing), str(db), expect_run_type="SIM1", period="202512", settle_seconds=0,
                            return_state=True)
    # a business outcome, not a crash: Completed, named so, the alert in the message
    assert state.is_completed() and state.name == ALERTED and "has not arrived" in state.message
    assert len(smtp.messages) == 1
    _, to, raw = smtp.messages[0]
    mail = message_from_bytes(raw)
    assert to == ["payroll-alerts@example.org"]  # routing.toml [alerts]
    assert "SIM1 GV 202512 is late" in mail["Subject"]
    assert (tmp_path / "wh" / "outbox" / "alerts" / "late-GV-202512-SIM1" / "message.eml").is_file()
    assert [a.key for a in _artifacts("late-run-alert")]
    # the next calendar tick: still late, but nobody is mailed twice
    pull_and_verify(str(landing), str(db), expect_run_type="SIM1", period="202512", settle_seconds=0)
    assert len(smtp.messages) == 1
    # the run lands late: the watcher (no expected run type) verifies it and closes the alert
    shutil.copytree(SAMPLE / RUNS[1], landing / "late-sim1")
    done = pull_and_verify(str(landing), str(db), settle_seconds=0)
    assert done == [{"run_id": "GV-202512-SIM1", "state": "Completed"}]
    assert not (tmp_path / "wh" / "outbox" / "alerts" / "late-GV-202512-SIM1").exists()
    alert_mails = [message_from_bytes(m)["Subject"] for _, to, m in smtp.messages if to == ["payroll-alerts@example.org"]]
    assert len(alert_mails) == 2 and "resolved" in alert_mails[-1]


def test_duplicate_delivery_leaves_an_audit_line_and_rejected_one_is_quarantined(tmp_path, smtp, caplog):
    landing, db = tmp_path / "landing", tmp_path / "wh" / "w.duckdb"
    landing.mkdir()
    shutil.copytree(SAMPLE / RUNS[0], landing / "first")
    assert pull_and_verify(str(landing), str(db), settle_seconds=0)[0]["state"] == "Completed"
    shutil.copytree(SAMPLE / RUNS[0], landing / "again")  # the same delivery, dropped twice
    bad = landing / "broken"
    shutil.copytree(SAMPLE / RUNS[1], bad)
    (bad / "T510.csv").unlink()
    sha = lnd.manifest_sha256(landing / "again")
    caplog.set_level(logging.INFO)
    state = pull_and_verify(str(landing), str(db), settle_seconds=0, return_state=True)
    assert state.name == ALERTED and "extract rejected" in state.message
    lines = (tmp_path / "wh" / lnd.AUDIT_FILE).read_text().splitlines()
    assert any(f"\tduplicate\tagain\t{sha}\t" in line for line in lines), lines
    assert any("\tquarantined\tbroken\t" in line for line in lines)
    assert any(f"landing: duplicate folder=again sha256={sha}" in r.getMessage() for r in caplog.records)
    assert not lnd.delivery_folders(landing)  # duplicate and rejected folders do not pile up
    assert any("rejected" in message_from_bytes(m)["Subject"] for _, _, m in smtp.messages)
    assert any("again" in str(a.data) and sha in str(a.data) for a in _artifacts("landing-audit"))


def test_settle_time_delays_only_a_folder_still_changing(tmp_path):
    landing = tmp_path / "landing"
    for i in (0, 1):
        shutil.copytree(SAMPLE / RUNS[i], landing / f"d{i}")
    old = time.time() - 3600
    for p in (landing / "d0").iterdir():
        os.utime(p, (old, old))
    for p in (landing / "d1").iterdir():  # copytree keeps the sample's times: d1 is written now
        os.utime(p)
    # d1 was just written but is no longer changing: read after a 0.3 s look, not 30 s later
    t0 = time.monotonic()
    ready, waiting = lnd.scan(landing, settle_seconds=30, probe_seconds=0.3)
    assert [d.folder.name for d in ready] == ["d0", "d1"] and waiting == [] and time.monotonic() - t0 < 5

    # a folder whose files keep changing waits for the next scan; the settled one does not
    done, writing = threading.Event(), threading.Event()

    def keep_writing():  # until the scan has finished, however slow the machine is
        while not done.is_set():
            with open(landing / "d1" / "RT.csv", "ab") as f:  # it grows, as a file being written does
                f.write(b"\n")
            writing.set()
            time.sleep(0.05)
    writer = threading.Thread(target=keep_writing)
    writer.start()
    assert writing.wait(30)  # the scan starts once the folder is being written, not before
    try:
        # a 2 s look: a busy CI machine can keep the writer thread off the CPU for a few tenths
        ready, waiting = lnd.scan(landing, settle_seconds=30, probe_seconds=2.0)
    finally:
        done.set()
        writer.join()
    assert [d.folder.name for d in ready] == ["d0"] and [p.name for p in waiting] == ["d1"]


def test_backfill_verifies_a_past_period_in_contract_order(tmp_path):
    landing, db = tmp_path / "landing", tmp_path / "wh" / "w.duckdb"
    landing.mkdir()
    # December's runs were dropped long ago (some already moved to processed/), in reverse
    for i, name in enumerate(reversed(RUNS[:5])):
        shutil.copytree(SAMPLE / name, (landing / "processed" if i % 2 else landing) / f"old-{i}")
    shutil.copytree(SAMPLE / RUNS[5], landing / "january")  # another period: not touched
    state = backfill("202512", "202512", str(landing), str(db), return_state=True)
    out = state.result()
    assert [d["run_id"] for d in out] == RUNS[:5]  # OC1, SIM1, SIM2, SIM3, FINAL: contract order
    assert all(d["state"] == "Completed" for d in out) and state.name == "Completed"
    con = open_warehouse(db)
    assert con.execute("SELECT count(*) FROM runs WHERE period = '202601'").fetchall()[0][0] == 0
    con.close()
    # again: nothing verified twice; a period with no runs says which are missing
    again = backfill("202512", "202601", str(landing), str(db), return_state=True)
    assert again.name == ALERTED and "GV-202601-SIM2 missing" in again.message
    assert [d["run_id"] for d in again.result()] == ["GV-202601-SIM1"]
    # named for what they catch up, not "ludicrous-shark"
    assert _flow_run(state).name == "backfill 202512" and _flow_run(again).name == "backfill 202512-202601"


# --- the Prefect UI as its users see it (issue #16)


def _flow_run(state):
    async def go():
        async with get_client() as client:
            return await client.read_flow_run(state.state_details.flow_run_id)
    return asyncio.run(go())


def test_verify_run_is_named_tagged_logged_per_stage_and_keyed_per_run(tmp_path, caplog):
    db = tmp_path / "w.duckdb"
    caplog.set_level(logging.INFO)
    state = verify_run(str(SAMPLE / RUNS[1]), str(db), str(tmp_path / "rep"), return_state=True)
    assert state.is_completed()
    fr = _flow_run(state)
    assert fr.name == RUNS[1] == "GV-202512-SIM1"
    assert {"area:GV", "period:202512", "run-type:SIM1"} <= set(fr.tags)
    # one line per stage, with a count and seconds
    stage_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stage ")]
    assert any(re.fullmatch(r"stage detect: \d+ raw findings in \d+\.\d s", m) for m in stage_lines), stage_lines
    assert {m.split(":")[0] for m in stage_lines} >= {"stage read", "stage load", "stage detect", "stage triage",
                                                      "stage send_mail"}
    assert not any(re.search(r"[A-Z]{2}\d{2}[A-Z0-9]{11,}", m) for m in stage_lines)  # no account numbers
    # the exceptions artifact: explanation, expected amount and difference (PERNR only)
    table = [a for a in _artifacts("exceptions-gv-202512-sim1")][-1]
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert {"explanation", "expected", "difference"} <= set(rows[0])
    both = [r for r in rows if r["expected"] and r["amount"]]
    assert both and all(Decimal(r["difference"]) == Decimal(r["amount"]) - Decimal(r["expected"]) for r in both)
    assert all(r["explanation"] for r in rows)
    # two rejected deliveries: two artifacts, neither overwriting the other
    for name in ("bad-a", "bad-b"):
        shutil.copytree(SAMPLE / RUNS[2 if name == "bad-a" else 3], tmp_path / name)
        (tmp_path / name / "T510.csv").unlink()
        assert verify_run(str(tmp_path / name), str(db), return_state=True).is_failed()
    keys = {a.key for a in _artifacts("rejected-")}
    assert len(keys) >= 2 and all(re.fullmatch(r"[a-z0-9-]+", k) for k in keys)
    assert any(k.startswith("rejected-gv-202512-sim2-") for k in keys)
    assert any(k.startswith("rejected-gv-202512-sim3-") for k in keys)


def test_monthly_close_run_is_named_for_its_month(tmp_path):
    state = monthly_close(period="202512", db=str(tmp_path / "w.duckdb"), return_state=True)
    fr = _flow_run(state)
    assert fr.name == "GV-202512-close" and {"area:GV", "period:202512"} <= set(fr.tags)
