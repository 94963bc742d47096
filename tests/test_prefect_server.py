"""Production mode for real, on a Prefect server on 127.0.0.1 started by the test:

- the no-pool mode (`python -m flows.serve`) registers every deployment with its schedule,
  and its landing watcher verifies an off-cycle run dropped into landing, no manual trigger;
- the work-pool mode: the pool and the deployments of the repo's prefect.yaml (the watcher's
  interval shortened to seconds in a copy), a worker runs the watcher, which verifies the
  dropped run; the API shows the verify with its artifacts.

The watcher interval is a few seconds here (PAYWATCH_WATCH_SECONDS / the yaml copy); the
time from drop to pick-up is printed (run with -s to see it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "gv-300"
PREFECT = str(Path(sys.executable).parent / "prefect")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, path: str, body: dict | None = None, method: str | None = None):
    req = urllib.request.Request(url + path, method=method or ("POST" if body is not None else "GET"),
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    for attempt in range(30):  # a busy SQLite-backed server answers 503 now and then
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            if e.code != 503 or attempt == 29:
                raise
            time.sleep(3)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = os.environ | {"PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1",
                        "PREFECT_UI_ENABLED": "false", "PAYWATCH_HOME": str(home / "paywatch"),
                        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2", "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    for k in ("PAYWATCH_SMTP_HOST", "PAYWATCH_SMTP_BLOCK", "PAYWATCH_WATCH_SECONDS"):
        env.pop(k, None)
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 240
    while time.time() < deadline:
        try:
            _api(url, "/health")
            break
        except OSError:
            time.sleep(1)
    else:
        proc.terminate()
        pytest.fail("Prefect server did not become healthy: " + (home / "server.log").read_text()[-2000:])
    yield url, env, home
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    log.close()


def _run(args: list[str], env: dict, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    res = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{args}: {res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res


WATCH = 5  # seconds between two looks of the landing watcher in these tests
OFF_CYCLE = "GV-202512-OC1"  # an off-cycle run: no calendar date expects it


def _drop(landing: Path, name: str) -> float:
    """Umoja drops the off-cycle run (files written now, manifest last); returns when."""
    target = landing / name
    target.mkdir(parents=True)
    for f in sorted((SAMPLE / OFF_CYCLE).iterdir(), key=lambda p: p.name == "manifest.json"):
        shutil.copyfile(f, target / f.name)
    return time.time()


def _picked_up(home: Path, dropped: float, deadline_s: float) -> float:
    """Seconds from the drop to the reports of the off-cycle run (the verify is done)."""
    done = home / "reports" / OFF_CYCLE / "exceptions.csv"
    deadline = dropped + deadline_s
    while time.time() < deadline:
        if done.exists():
            return time.time() - dropped
        time.sleep(0.5)
    audit = home / "landing-audit.tsv"
    pytest.fail(f"{OFF_CYCLE} not verified {deadline_s:.0f} s after the drop; audit: "
                f"{audit.read_text() if audit.exists() else 'none'}")


def _pickup_delay(home: Path, dropped: float, name: str) -> float:
    """Seconds from the drop to the watcher's picked-up audit line."""
    from datetime import datetime

    for line in (home / "landing-audit.tsv").read_text().splitlines():
        at, action, folder, *_ = line.split("\t")
        if action == "picked-up" and folder == name:
            return datetime.fromisoformat(at).timestamp() - dropped
    pytest.fail("no picked-up line in the landing audit")


def _watching(url: str, timeout: float = 180) -> None:
    """Wait for a watcher run started from now to complete (the serve process or the worker is up)."""
    from datetime import datetime, timezone

    dep = next(d for d in _api(url, "/deployments/filter", {}) if d["name"] == "watch-landing")
    flt = {"flow_runs": {"deployment_id": {"any_": [dep["id"]]}, "state": {"type": {"any_": ["COMPLETED"]}},
                         "start_time": {"after_": datetime.now(timezone.utc).isoformat()}}}
    deadline = time.time() + timeout
    while time.time() < deadline and not _api(url, "/flow_runs/filter", flt):
        time.sleep(1)


def _quiesce(url: str) -> None:
    """Pause the watcher and let its running flow runs finish (a stop mid-run is no test of
    business outcomes): nothing runs when this returns."""
    dep = next(d for d in _api(url, "/deployments/filter", {}) if d["name"] == "watch-landing")
    _api(url, f"/deployments/{dep['id']}", {"paused": True}, "PATCH")
    deadline = time.time() + 120
    busy = {"flow_runs": {"state": {"type": {"any_": ["RUNNING", "PENDING"]}}}}
    while time.time() < deadline and _api(url, "/flow_runs/filter", busy):
        time.sleep(1)


RECORD = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \| ", re.M)


def _tracebacks(log: str) -> list[str]:
    """The log records (a header line and what follows it) that carry a traceback, but for one
    race the test itself causes: `_quiesce` pauses the watcher, the server deletes its scheduled
    runs, and a runner that had already fetched one gets 404 proposing it Pending (Prefect logs
    that with a traceback, then skips the run, which is what pausing asks for)."""
    starts = [m.start() for m in RECORD.finditer(log)] + [len(log)]
    records = [log[a:b] for a, b in zip(starts, starts[1:])]
    deleted = re.compile(r"Failed to update state of flow run '([0-9a-f-]+)'.*404 Not Found.*"
                         r"Flow run with id \1 not found.*prefect\.exceptions\.ObjectNotFound", re.S)
    return [r for r in records if "Traceback" in r and not deleted.search(r)]


def test_the_log_check_lets_only_a_paused_runs_404_through():
    paused = ("20:30:10.841 | ERROR   | prefect.runner.state_proposer - Failed to update state of flow run "
              "'01a2-70e0'\nTraceback (most recent call last):\n  ...\nPrefectHTTPStatusError: Client error "
              "'404 Not Found' for url '.../set_state' - Response: {'exception_message': 'Flow run with id "
              "01a2-70e0 not found'}\n\nTraceback (most recent call last):\nprefect.exceptions.ObjectNotFound: None\n")
    other = ("20:30:11.000 | ERROR   | prefect.runner - Unexpected\nTraceback (most recent call last):\n"
             "RuntimeError: boom\n")
    fine = "20:30:12.000 | INFO    | prefect.runner - SIGTERM received, initiating graceful shutdown...\n"
    assert _tracebacks(paused + fine) == []
    assert _tracebacks(paused + other + fine) == [other]
    assert _tracebacks(paused.replace("with id 01a2-70e0", "with id ffff")) != []  # another run's 404 is not it


def _scheduled_after_drop(url: str, dropped: float, name: str) -> float:
    """Seconds from the drop to the scheduled start of the watcher run that picked it up,
    checking it was the first watcher run to start after the drop (a tick that comes while
    the previous run still works is dropped: concurrency limit 1, CANCEL_NEW)."""
    from datetime import datetime

    arts = [a for a in _api(url, "/artifacts/filter", {"artifacts": {"key": {"any_": ["landing-audit"]}}})
            if name in json.dumps(a["data"]) and "picked-up" in json.dumps(a["data"])]
    assert arts, "no landing-audit artifact names the dropped folder"
    run = _api(url, f"/flow_runs/{arts[0]['flow_run_id']}")
    started = datetime.fromisoformat(run["start_time"]).timestamp()
    ran = _api(url, "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [run["deployment_id"]]},
                                                        "state": {"type": {"any_": ["COMPLETED"]}}}})
    between = [r["name"] for r in ran if r["start_time"]
               and dropped < datetime.fromisoformat(r["start_time"]).timestamp() < started]
    assert not between, f"watcher runs started after the drop without picking it up: {between}"
    return datetime.fromisoformat(run["expected_start_time"]).timestamp() - dropped


def _schedules(url: str) -> dict[str, dict]:
    return {d["name"]: (d["schedules"][0]["schedule"] if d["schedules"] else {})
            for d in _api(url, "/deployments/filter", {})}


EXPECTED = {"verify-sim1": "0 7 10 * *", "verify-sim2": "0 7 15 * *", "verify-sim3": "0 7 20 * *",
            "verify-final": "0 7 24 * *", "monthly-close": "0 7 1 * *"}


def _check_registered(url: str) -> None:
    got = _schedules(url)
    assert set(got) >= set(EXPECTED) | {"watch-landing", "verify-one", "backfill"}, got
    for name, cron in EXPECTED.items():
        assert got[name]["cron"] == cron and got[name]["timezone"] == "Europe/Zurich", (name, got[name])
    assert got["watch-landing"]["interval"] == WATCH, got["watch-landing"]


def test_serve_registers_every_deployment_and_its_watcher_verifies_an_off_cycle_run(server):
    url, env, home = server
    pw = home / "serve-home"
    env = env | {"PAYWATCH_HOME": str(pw), "PAYWATCH_WATCH_SECONDS": str(WATCH)}
    log = open(home / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "flows.serve"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not {"backfill", "verify-one"} <= set(_schedules(url)):
            assert proc.poll() is None, (home / "serve.log").read_text()[-3000:]
            time.sleep(1)
        _check_registered(url)
        _watching(url)
        dropped = _drop(pw / "landing", "oc1-serve")
        verified = _picked_up(pw, dropped, 180)
        picked = _pickup_delay(pw, dropped, "oc1-serve")
        deadline = time.time() + 60  # the flow puts the folder away after the verify
        while time.time() < deadline and not (pw / "landing" / "processed" / "oc1-serve").is_dir():
            time.sleep(0.5)
        assert (pw / "landing" / "processed" / "oc1-serve").is_dir()
        _quiesce(url)
        due = _scheduled_after_drop(url, dropped, "oc1-serve")
        print(f"\nserve: watcher run due {due:.1f} s after the drop, picked up after {picked:.1f} s, "
              f"verified after {verified:.1f} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    assert not _tracebacks((home / "serve.log").read_text())


def test_work_pool_deployments_and_a_worker_verify_an_off_cycle_run(server, tmp_path):
    url, env, home = server
    pw = home / "worker-home"
    env = env | {"PAYWATCH_HOME": str(pw)}
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for d in spec["deployments"]:
        if d["name"] == "watch-landing":
            d["schedules"][0]["interval"] = WATCH
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(spec))
    _run([PREFECT, "work-pool", "create", "paywatch", "--type", "process"], env)
    _run([PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml")], env)
    _check_registered(url)
    # the serve test paused its watcher (same deployment): deployed again, it watches again
    watcher = next(d for d in _api(url, "/deployments/filter", {}) if d["name"] == "watch-landing")
    _api(url, f"/deployments/{watcher['id']}", {"paused": False}, "PATCH")
    log = open(home / "worker.log", "w")
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "paywatch"], env=env, cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        _watching(url)
        dropped = _drop(pw / "landing", "oc1-worker")
        verified = _picked_up(pw, dropped, 240)
        picked = _pickup_delay(pw, dropped, "oc1-worker")
        _quiesce(url)
        due = _scheduled_after_drop(url, dropped, "oc1-worker")
        print(f"\nworker: watcher run due {due:.1f} s after the drop, picked up after {picked:.1f} s, "
              f"verified after {verified:.1f} s")
    finally:
        worker.send_signal(signal.SIGTERM)  # a prefect worker needs two (docs/stack-notes.md)
        time.sleep(1)
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        log.close()
    arts = _api(url, "/artifacts/filter", {"artifacts": {"key": {"any_": ["exceptions-gv-202512-oc1",
                                                                          "summary-gv-202512-oc1"]}}})
    assert {a["key"] for a in arts} == {"exceptions-gv-202512-oc1", "summary-gv-202512-oc1"}
    runs = _api(url, "/flow_runs/filter", {"flow_runs": {"id": {"any_": [arts[0]["flow_run_id"]]}}})
    assert runs[0]["state"]["type"] == "COMPLETED"
    assert not _tracebacks((home / "worker.log").read_text())
