"""The benchmark scripts run end to end on a tiny payroll and report what they promise.

No timing is asserted here (speed is read from the scripts' printed numbers, README): these
tests keep the scripts working — every stage measured, the verify a success, every
detector timed, every notebook query timed, the notebooks executed on a copy.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import duckdb

from detectors.registry import ALL_DETECTORS

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("simulate_s", "read_s", "load_s", "prepare_s", "validate_s", "detect_fit_s", "detect_s", "report_s",
          "verify_wall_s", "warm_verify_s", "floor_s")


def _run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_scale_benchmark_measures_every_stage(tmp_path):
    out = _run("benchmarks/bench_scale.py", "--sizes", "300", "--out", str(tmp_path), "--interleave", "3")
    (row,) = list(csv.DictReader(open(tmp_path / "scale.csv", encoding="utf-8")))
    assert int(row["staff"]) == 300 and int(row["verify_exit"]) == 0
    assert int(row["rt_rows"]) > 300 * 5  # a few pay lines per staff member
    assert all(float(row[s]) > 0 for s in STAGES)
    assert float(row["verify_cpu_s"]) > 0 and float(row["warm_verify_cpu_s"]) > 0
    assert {f"det_{d.code}_s" for d in ALL_DETECTORS} <= set(row)
    # peak memory of the verify is its own process's, not the benchmark's
    assert 50 < float(row["verify_peak_rss_mb"]) < 4096
    assert (tmp_path / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "detect/floor" in out and "Detection by detector" in out
    # detection and the floor also timed turn about: the best and the median of each
    assert all(0 < float(row[f"interleaved_{k}_{s}_s"]) for k in ("floor", "detect") for s in ("best", "median"))
    assert float(row["interleaved_detect_best_s"]) <= float(row["interleaved_detect_median_s"])
    assert re.search(r"^300 staff, detection and the floor timed turn about: detect/floor [\d.]+x best to best "
                     r"\([\d.]+ / [\d.]+ s\), [\d.]+x median to median", out, re.M), out[-2000:]
    # the one line issue #17 asks for, last: no size of 10,000 staff or more was run here
    assert out.strip().splitlines()[-1] == "detect_floor_ratio_max=nan warm_verify_10k_s=nan cold_verify_10k_s=nan"


def test_query_benchmark_builds_times_and_runs_the_notebooks(tmp_path):
    db = tmp_path / "w.duckdb"
    out = _run("benchmarks/bench_queries.py", "--staff", "300", "--months", "2", "--db", str(db),
               "--out", str(tmp_path), "--cases", "2", "--repeat", "1", "--notebooks")
    con = duckdb.connect(str(db), read_only=True)
    try:
        runs = [r[0] for r in con.execute("SELECT run_type FROM runs ORDER BY run_id").fetchall()]
        closes = con.execute("SELECT count(*) FROM monthly_closes").fetchone()[0]
        decisions = con.execute("SELECT count(*) FROM decisions").fetchone()[0]
    finally:
        con.close()
    assert sorted(runs) == sorted(["SIM1", "SIM2", "SIM3", "FINAL"] * 2)  # 4 regular runs a month
    assert closes == 2
    assert decisions == 0  # the notebook's decision went to a copy
    rows = {r["query"]: r for r in csv.DictReader(open(tmp_path / "queries.csv", encoding="utf-8"))}
    assert {"runs_overview", "staff_header", "compare_with_pay_model", "peers_typical", "kpi_frame"} <= set(rows)
    assert all(int(r["calls"]) >= 1 and float(r["max_s"]) > 0 for r in rows.values())
    assert re.search(r"notebook investigate: \d+ cells in", out) and re.search(r"notebook kpi: \d+ cells in", out)
