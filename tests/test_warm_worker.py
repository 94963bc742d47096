"""The warm path for real (flows/warm.py): a Prefect server on 127.0.0.1 and the warm task
worker (`python -m flows.warm`) as processes started by the test; two sample runs submitted
to it (`verify_warm.delay` from the test, then from the `verify-in-warm-worker` flow) are
verified by that one worker process — the same pid, the second verify the process's second,
a repeated submission verified again, not answered from a cache — and their exceptions.csv
are byte for byte what `paywatch verify` writes for the same runs; one SIGTERM stops the
worker cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flows.processes import NotReady, free_port, healthy, wait_for

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


def test_two_runs_verified_by_one_warm_worker_process_as_paywatch_verify_does(server, tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.warm import verify_in_warm_worker, verify_in_worker

    url, env = server
    warm_db = tmp_path / "warm" / "warehouse.duckdb"
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "flows.warm", "serve", "--db", str(warm_db)], env=env,
                                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = _wait_for("warm worker subscribed", lambda: re.search(
                r"warm worker ready: pid (\d+)[\s\S]*Subscribing to runs", log_path.read_text()), worker, log_path)
            assert int(ready.group(1)) == worker.pid
            first, second = (str(SAMPLE / r) for r in RUNS)
            reports = [str(tmp_path / "warm-reports" / r) for r in RUNS]
            with temporary_settings({PREFECT_API_URL: url}):
                summaries = [verify_in_worker(first, warm_db, reports[0], timeout=300),  # a script submits
                             verify_in_warm_worker(second, str(warm_db), reports[1])]  # a flow submits
                again = verify_in_warm_worker(second, str(warm_db), reports[1])  # same arguments: verified again
            assert [s["run_id"] for s in summaries] == list(RUNS)
            assert [s["exit_code"] for s in summaries] == [0, 0], [s["message"] for s in summaries]
            # every verify ran in the worker's process, one after the other (none from a cache)
            assert [s["pid"] for s in (*summaries, again)] == [worker.pid] * 3
            assert [s["verifies_before"] for s in (*summaries, again)] == [0, 1, 2]
            assert "already verified" in again["message"] and again["exceptions"] == summaries[1]["exceptions"]
            assert all(s["exceptions"] > 0 for s in summaries)  # the sample has exceptions: compared below
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=60)
    assert code == 0, log_path.read_text()[-3000:]
    assert "Traceback" not in log_path.read_text()
    assert f"warm worker stopped: pid {worker.pid}" in log_path.read_text()

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
