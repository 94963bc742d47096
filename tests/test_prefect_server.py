"""Production mode for real: a Prefect server on 127.0.0.1 started by the test, the work pool
and deployments created from the repo's prefect.yaml, one deployment triggered, a worker
runs it, and the API says it completed with its artifacts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "gv-300"
PREFECT = str(Path(sys.executable).parent / "prefect")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, path: str, body: dict | None = None):
    req = urllib.request.Request(url + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = os.environ | {"PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1",
                        "PREFECT_UI_ENABLED": "false", "PAYWATCH_HOME": str(home / "paywatch")}
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


def test_deployments_from_repo_run_on_a_worker_with_artifacts(server, tmp_path):
    url, env, home = server
    _run([PREFECT, "work-pool", "create", "paywatch", "--type", "process"], env)
    _run([PREFECT, "--no-prompt", "deploy", "--all"], env)
    deployments = {d["name"]: d for d in _api(url, "/deployments/filter", {})}
    assert {"verify-sim1", "verify-sim2", "verify-sim3", "verify-final", "monthly-close", "verify-one"} <= set(deployments)
    sim1 = deployments["verify-sim1"]
    assert sim1["schedules"][0]["schedule"]["cron"] == "0 7 10 * *"
    run_folder = SAMPLE / (SAMPLE / "runs.txt").read_text().split()[1]
    db = tmp_path / "w.duckdb"
    flow_run = _api(url, f"/deployments/{deployments['verify-one']['id']}/create_flow_run",
                    {"parameters": {"run_folder": str(run_folder), "db": str(db)}})
    worker = subprocess.run([PREFECT, "worker", "start", "--pool", "paywatch", "--run-once"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    state = None
    deadline = time.time() + 300
    while time.time() < deadline:
        state = _api(url, f"/flow_runs/{flow_run['id']}")["state"]
        if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        time.sleep(2)
    assert state and state["type"] == "COMPLETED", (state, worker.stdout[-3000:], worker.stderr[-3000:])
    arts = _api(url, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}})
    kinds = {a["type"] for a in arts}
    assert {"table", "markdown"} <= kinds
    keys = {a["key"] for a in arts}
    assert "exceptions-gv-202512-sim1" in keys and "summary-gv-202512-sim1" in keys
    # the run's reports exist next to the warehouse, as with `paywatch verify`
    assert (tmp_path / "reports" / "GV-202512-SIM1" / "exceptions.csv").exists()
