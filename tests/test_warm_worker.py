"""The warm path for real (flows/warm.py): a Prefect server on 127.0.0.1 and the warm task
worker (`python -m flows.warm`) as processes started by the test, one of each for the module.

- Two sample runs submitted to it (`verify_warm.delay` from the test, then from the
  `verify-in-warm-worker` flow) are verified by that one worker process — the same pid, one
  verify after the other, a repeated submission verified again, not answered from a cache —
  and their exceptions.csv are byte for byte what `paywatch verify` writes for the same runs.
- The landing watcher with PAYWATCH_WARM_WORKER=1: deliveries dropped in the landing folder
  are verified by the worker's pid, and the watcher raises what it raises today — a rejected
  delivery and reports that could not be mailed each mail an alert (a real SMTP server on
  loopback) — audits and puts the folders away. With no worker subscribed, it verifies in
  its own process and says so.
- One SIGTERM stops the worker cleanly.
- A worker killed mid-verify leaves the warehouse as before its verify; the watcher then
  verifies the delivery in its own process, as one clean verify would.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from email import message_from_bytes
from pathlib import Path

import pytest

from flows.processes import NotReady, free_port, healthy, wait_for
from paywatch import landing as lnd
import smtp_server

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "gv-300"
RUNS = ("GV-202512-FINAL", "GV-202601-SIM1")  # a month's FINAL, then the next SIM1 (history in play)
PREFECT = str(Path(sys.executable).parent / "prefect")


def _wait_for(what: str, check, proc: subprocess.Popen, log: Path, seconds: float = 240):
    try:
        return wait_for(what, check, proc, log, seconds)
    except NotReady as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real `prefect server start`; the test process and the worker share its PREFECT_HOME
    (the delayed task's parameters and result are stored there)."""
    home = Path(os.environ["PREFECT_HOME"])
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = os.environ | {"PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                        "PREFECT_UI_ENABLED": "false"}
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home)
        try:
            _wait_for("Prefect server healthy", lambda: healthy(url), proc, log_path)
            yield url, env
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


@pytest.fixture(scope="module")
def smtp():
    """A real SMTP server on loopback: the watcher's alert mails arrive here."""
    with smtp_server.running() as (port, inbox):
        yield port, inbox


@pytest.fixture
def watcher_env(server, smtp, monkeypatch):
    """The watcher (this process) hands verifies to the warm worker and mails alerts to `smtp`."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url, _ = server
    monkeypatch.setenv("PAYWATCH_WARM_WORKER", "1")
    monkeypatch.setenv("PAYWATCH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PAYWATCH_SMTP_PORT", str(smtp[0]))
    monkeypatch.setenv("PAYWATCH_SMTP_RETRIES", "0")
    monkeypatch.delenv("PAYWATCH_ROUTING", raising=False)
    with temporary_settings({PREFECT_API_URL: url}):
        yield smtp[1]


def _pull_and_verify_logged(landing: Path, db: Path, caplog) -> list[dict]:
    """The landing watcher's flow on `landing`, with its flow-run log lines in `caplog`."""
    from flows.verify import pull_and_verify

    runs_log = logging.getLogger("prefect.flow_runs")  # Prefect's loggers do not propagate
    runs_log.addHandler(caplog.handler)
    try:
        return pull_and_verify(str(landing), str(db), settle_seconds=0)
    finally:
        runs_log.removeHandler(caplog.handler)


def test_watcher_verifies_in_its_own_process_when_no_warm_worker_answers(watcher_env, tmp_path, caplog):
    """Runs before the module's worker starts: nobody is subscribed to verify-warm."""
    landing, db = tmp_path / "landing", tmp_path / "wh" / "warehouse.duckdb"
    landing.mkdir()
    shutil.copytree(SAMPLE / RUNS[0], landing / "drop")
    done = _pull_and_verify_logged(landing, db, caplog)
    assert done == [{"run_id": RUNS[0], "state": "Completed", "warm_worker_pid": None}]
    said = [r.getMessage() for r in caplog.records if "no warm worker answered" in r.getMessage()]
    assert said and "verifying in this flow run's process instead" in said[0], said
    assert (tmp_path / "wh" / "reports" / RUNS[0] / "exceptions.csv").is_file()
    assert not lnd.delivery_folders(landing)


@pytest.fixture(scope="module")
def worker(server, smtp, tmp_path_factory):
    """`python -m flows.warm serve`, subscribed; its report mails go to a port where nothing
    listens (so every report mail fails: the watcher must raise that alert)."""
    _, env = server
    home = tmp_path_factory.mktemp("worker")
    env = env | {"PAYWATCH_SMTP_HOST": "127.0.0.1", "PAYWATCH_SMTP_PORT": str(free_port()),
                 "PAYWATCH_SMTP_RETRIES": "0", "PAYWATCH_SMTP_TIMEOUT": "5"}
    log_path = home / "worker.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "flows.warm", "serve", "--db", str(home / "warehouse.duckdb")],
                                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = _wait_for("warm worker subscribed", lambda: re.search(
                r"warm worker ready: pid (\d+)[\s\S]*Subscribing to runs", log_path.read_text()), proc, log_path)
            assert int(ready.group(1)) == proc.pid
            yield proc, log_path
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)


def test_two_runs_verified_by_one_warm_worker_process_as_paywatch_verify_does(server, worker, tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.warm import verify_in_warm_worker, verify_in_worker

    url, env = server
    proc, _ = worker
    warm_db = tmp_path / "warm" / "warehouse.duckdb"
    first, second = (str(SAMPLE / r) for r in RUNS)
    reports = [str(tmp_path / "warm-reports" / r) for r in RUNS]
    with temporary_settings({PREFECT_API_URL: url}):
        summaries = [verify_in_worker(first, warm_db, reports[0], timeout=300),  # a script submits
                     verify_in_warm_worker(second, str(warm_db), reports[1])]  # a flow submits
        again = verify_in_warm_worker(second, str(warm_db), reports[1])  # same arguments: verified again
    assert [s["run_id"] for s in summaries] == list(RUNS)
    assert [s["exit_code"] for s in summaries] == [0, 0], [s["message"] for s in summaries]
    # every verify ran in the worker's process, one after the other (none from a cache)
    assert [s["pid"] for s in (*summaries, again)] == [proc.pid] * 3
    n = summaries[0]["verifies_before"]
    assert [s["verifies_before"] for s in (*summaries, again)] == [n, n + 1, n + 2]
    assert "already verified" in again["message"] and again["exceptions"] == summaries[1]["exceptions"]
    assert all(s["exceptions"] > 0 for s in summaries)  # the sample has exceptions: compared below

    # the same two runs through `paywatch verify`, in a warehouse of their own
    cold_db = tmp_path / "cold" / "warehouse.duckdb"
    cli = str(Path(sys.executable).parent / "paywatch")
    for r, s in zip(RUNS, summaries):
        res = subprocess.run([cli, "verify", str(SAMPLE / r), "--db", str(cold_db), "--out",
                              str(tmp_path / "cold-reports" / r)], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        warm_csv = (tmp_path / "warm-reports" / r / "exceptions.csv").read_bytes()
        cold_csv = (tmp_path / "cold-reports" / r / "exceptions.csv").read_bytes()
        assert warm_csv == cold_csv, r
        assert warm_csv.count(b"\n") - 1 == s["exceptions"]


def test_landing_watcher_hands_each_delivery_to_the_warm_worker_with_todays_alerts(watcher_env, worker, tmp_path):
    from flows.verify import ALERTED, pull_and_verify

    inbox = watcher_env
    proc, _ = worker
    landing, db = tmp_path / "landing", tmp_path / "wh" / "warehouse.duckdb"
    landing.mkdir()
    shutil.copytree(SAMPLE / RUNS[0], landing / "good")
    bad = landing / "broken"
    shutil.copytree(SAMPLE / RUNS[1], bad)
    (bad / "T510.csv").unlink()
    start = len(inbox.messages)
    state = pull_and_verify(str(landing), str(db), settle_seconds=0, return_state=True)
    # both verified by the worker's process; the rejected one fails its verify-run, as today
    assert state.result() == [{"run_id": RUNS[0], "state": "Completed", "warm_worker_pid": proc.pid},
                              {"run_id": RUNS[1], "state": "Failed", "warm_worker_pid": proc.pid}]
    assert state.name == ALERTED and "extract rejected" in state.message and "T510.csv" in state.message
    alerts = {message_from_bytes(m.raw)["Subject"] for m in inbox.messages[start:]
              if m.recipients == ["payroll-alerts@example.org"]}
    assert alerts == {"Paywatch ALERT: delivery broken rejected",  # raised by the watcher from the worker's result
                      f"Paywatch ALERT: reports of {RUNS[0]} not mailed"}, alerts  # the worker's mail failed
    lines = (tmp_path / "wh" / lnd.AUDIT_FILE).read_text().splitlines()
    assert [line.split("\t")[1:3] for line in lines] == [["picked-up", "good"], ["moved", "good"],
                                                          ["picked-up", "broken"], ["quarantined", "broken"],
                                                          ["moved", "broken"]], lines
    assert not lnd.delivery_folders(landing)
    assert any((tmp_path / "wh" / "quarantine").iterdir())
    assert (tmp_path / "wh" / "reports" / RUNS[0] / "exceptions.csv").is_file()


def test_one_sigterm_stops_the_warm_worker(worker):
    proc, log_path = worker
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    assert "Traceback" not in log_path.read_text()
    assert f"warm worker stopped: pid {proc.pid}" in log_path.read_text()


def test_a_warm_worker_killed_mid_verify_leaves_no_half_loaded_run_and_the_watcher_verifies_it(
        server, watcher_env, tmp_path, monkeypatch, caplog):
    """After the module's worker has stopped: a warm worker that SIGKILLs itself inside the
    verify's transaction (PAYWATCH_CRASH_AT=detection: loaded, validated, detected, nothing
    committed) takes the landing watcher's delivery and dies. The watcher notices the worker is
    gone, verifies the delivery in its own process, and the warehouse ends exactly as one clean
    verify of the run leaves it (no second version, no half-loaded rows), with the same
    exceptions.csv."""
    from flows import warm
    from paywatch.pipeline import verify_run
    from paywatch.warehouse.db import open_warehouse, warehouse_digest

    def digest(db: Path) -> str:
        con = open_warehouse(db, read_only=True)
        try:
            return warehouse_digest(con, exclude_delivery_log=True, ignore_times=True)
        finally:
            con.close()

    _, env = server
    db = tmp_path / "wh" / "warehouse.duckdb"
    assert verify_run(SAMPLE / RUNS[0], db=db, out=tmp_path / "first").exit_code == 0  # history of RUNS[1]
    reference = tmp_path / "reference" / "warehouse.duckdb"
    shutil.copytree(db.parent, reference.parent)
    assert verify_run(SAMPLE / RUNS[1], db=reference, out=tmp_path / "reference-report").exit_code == 0

    log_path = tmp_path / "dying-worker.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "flows.warm", "serve", "--db", str(db)],
                                env=env | {"PAYWATCH_CRASH_AT": "detection"}, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        _wait_for("dying warm worker subscribed", lambda: re.search(
            r"warm worker ready: pid (\d+)[\s\S]*Subscribing to runs", log_path.read_text()), proc, log_path)
        landing = tmp_path / "landing"
        landing.mkdir()
        shutil.copytree(SAMPLE / RUNS[1], landing / "drop")
        monkeypatch.setattr(warm, "GRACE_SECONDS", 5.0)
        done = _pull_and_verify_logged(landing, db, caplog)
        assert proc.wait(timeout=60) == -signal.SIGKILL, log_path.read_text()[-3000:]  # died at the point
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    assert done == [{"run_id": RUNS[1], "state": "Completed", "warm_worker_pid": None}]
    said = [r.getMessage() for r in caplog.records if "no warm worker answered" in r.getMessage()]
    assert said and "is gone" in said[0] and "verifying in this flow run's process instead" in said[0], said
    assert digest(db) == digest(reference)
    assert ((tmp_path / "wh" / "reports" / RUNS[1] / "exceptions.csv").read_bytes()
            == (tmp_path / "reference-report" / "exceptions.csv").read_bytes())
    assert not lnd.delivery_folders(landing)


@pytest.mark.parametrize("api, folder, says", [
    (None, SAMPLE / RUNS[0], "no Prefect server: set PREFECT_API_URL"),
    ("http://127.0.0.1:{port}/api", ROOT / "no-such-run", "no-such-run: no such run folder"),
    ("http://127.0.0.1:{port}/api", SAMPLE / RUNS[0], "does not answer (ConnectError)"),
])
def test_submit_refuses_in_one_line_when_there_is_nothing_to_talk_to(api, folder, says, tmp_path):
    """No server configured (an ephemeral one would have no worker: the submit would wait
    forever), no such folder, a server that does not answer: exit 2, one line, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    if api:
        env["PREFECT_API_URL"] = api.format(port=free_port())  # nothing listens there
    r = subprocess.run([sys.executable, "-m", "flows.warm", "submit", str(folder), "--timeout", "5"], env=env,
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("value, on", [("1", True), ("yes", True), ("", False), ("0", False)])
def test_doctor_says_whether_pick_ups_verify_in_the_warm_worker(tmp_path, value, on):
    from paywatch.doctor import settings_in_use
    from paywatch.settings import warm_worker_wanted
    from paywatch.warehouse.resource import Warehouse

    env = {"PAYWATCH_WARM_WORKER": value}
    assert warm_worker_wanted(env) is on
    line = next(x for x in settings_in_use(Warehouse.at(tmp_path / "w.duckdb"), env) if "warm worker" in x)
    assert line.split()[2].startswith("on" if on else "off"), line
