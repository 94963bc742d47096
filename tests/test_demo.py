"""The main job as the README runs it (`make demo` = `paywatch demo`), on a small area: simulated
Umoja drops each run into landing, the Prefect flows (local ephemeral API) verify every run
into one DuckDB file, the month is closed, and each run has its reports."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

PAYWATCH = [sys.executable, "-c", "from paywatch.cli import app; app()"]


def test_demo_verifies_every_run_of_a_month_and_closes_it(tmp_path):
    env = {**os.environ, "PAYWATCH_HOME": str(tmp_path / "home")}
    done = subprocess.run([*PAYWATCH, "demo", "--staff", "300", "--months", "1", "--start", "202601", "--seed", "3"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    runs = (tmp_path / "home" / "umoja" / "GV-202601-300-seed3" / "runs.txt").read_text().split()
    assert {r.split("-")[-1] for r in runs} >= {"SIM1", "SIM2", "SIM3", "FINAL"}
    findings = 0
    for run in runs:
        reports = tmp_path / "home" / "reports" / run
        with (reports / "exceptions.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        with (reports / "cases.csv").open(newline="", encoding="utf-8") as f:
            case_ids = {r["case_id"] for r in csv.DictReader(f)}
        assert all(r["case_id"] in case_ids for r in rows), run  # every finding links to a case
        findings += len(rows)
        assert run in done.stdout  # the run table names every run with its flow run's state
    assert findings > 0  # the simulated month carries injected errors
    assert "GV 202601:" in done.stdout and "staff excluded at FINAL" in done.stdout
    assert (tmp_path / "home" / "reports" / "GV-202601-close" / "monthly_summary.html").is_file()
