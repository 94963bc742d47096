"""Prefect flows under a throwaway Prefect server (prefect_test_harness): pick-up exactly
once and in order, the late-run alert, the monthly close, artifacts; and the calendar."""

from __future__ import annotations

import asyncio
import shutil
import tomllib
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from paywatch.settings import load_settings
from flows.calendar import crons
from flows.monthly import monthly_close
from flows.verify import pull_and_verify, verify_run
from paywatch.warehouse.db import open_warehouse

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
    in_yaml = {d["name"]: d["schedules"][0]["cron"] for d in deployed if d.get("schedules")}
    assert in_yaml == c
    assert all(d["schedules"][0]["timezone"] == cal["timezone"] for d in deployed if d.get("schedules"))
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
    # SIM1 of the next month has not arrived: a clear alert, the flow run fails
    state = pull_and_verify(str(landing), str(db), expect_run_type="SIM1", period="202601", settle_seconds=0,
                            return_state=True)
    assert state.is_failed() and "has not arrived" in state.message
    assert any((tmp_path / "wh" / "outbox" / "alerts").glob("late-GV-202601-SIM1.txt"))
    # a folder still being written (no manifest yet) is not read
    partial = landing / "partial"
    shutil.copytree(SAMPLE / RUNS[4], partial)
    (partial / "manifest.json").unlink()
    assert pull_and_verify(str(landing), str(db), settle_seconds=0) == []


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
