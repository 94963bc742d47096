"""Investigation queries on a big warehouse: do the notebooks still answer in under a second?

Builds (once) a warehouse of `--months` months x 4 runs (SIM1, SIM2, SIM3, FINAL) x `--staff`
staff by bulk-loading simulated runs: each run is read and loaded exactly as `paywatch
verify` does, detectors run and their findings are stored, each month is closed — only the
Great Expectations gate and the reports are skipped (they do not change what the notebook
queries read). Then times every query the notebooks (investigate.ipynb, kpi.ipynb) run,
for several cases, and prints the slowest time of each against the 1 s target.

    uv run python benchmarks/bench_queries.py                       # 40,000 staff x 24 months
    uv run python benchmarks/bench_queries.py --staff 2000 --months 3   # a quick look
    ... --notebooks     also execute investigate.ipynb and kpi.ipynb on (a copy of) it
Output: a table on stdout and benchmarks/results/queries.csv (`--out` for another folder). The warehouse is kept (default
benchmarks/results/warehouse-<staff>x<months>.duckdb) so that the timing can be repeated.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE.parent / "notebooks"
sys.path.insert(0, str(HERE.parent))
REGULAR = ("SIM1", "SIM2", "SIM3", "FINAL")
TARGET_S = 1.0


def build(db: Path, staff: int, months: int, start: str, seed: int) -> None:
    """Simulate and bulk-load every regular run, detect, store findings, close each month."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from detectors.config import config_version
    from paywatch.settings import load_settings
    from paywatch import pipeline
    from paywatch.extract.reader import read_run
    from paywatch.lifecycle import close_period
    from paywatch.simulate import SimConfig, Simulation
    from paywatch.simulate.writer import write_run
    from paywatch.warehouse.load import load_run
    from paywatch.warehouse.resource import Warehouse

    wh = Warehouse.at(db)
    cfg = load_settings(None)
    cfg_version = config_version(cfg)
    sim = Simulation(SimConfig(staff=staff, months=months, start=start, seed=seed))
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with wh.writer() as con:
        with Progress(*columns) as progress, tempfile.TemporaryDirectory() as tmp:
            task = progress.add_task("building", total=months * len(REGULAR))
            for out in sim.iter_runs():
                plan = out.plan
                if plan.run_type not in REGULAR:
                    continue
                progress.update(task, description=f"{plan.run_id}")
                folder = write_run(out, Path(tmp))
                loaded = load_run(con, read_run(folder), archive_dir=wh.paths.archive)
                shutil.rmtree(folder)
                inp = pipeline.detection_input(con, loaded.run_id)
                findings = pipeline.stage_triage(con, inp, pipeline.stage_detect(inp, cfg), loaded.run_version,
                                                 cfg_version)
                pipeline.store_verification(con, loaded.run_id, loaded.run_version, cfg, cfg_version, findings, [],
                                            "verified")
                if plan.run_type == "FINAL":
                    close_period(con, inp.meta.payroll_area, plan.period, cfg.get("lifecycle", {}))
                progress.advance(task)
        con.execute("CHECKPOINT")


def cases(con, n: int) -> list[tuple[str, str]]:
    """(run, staff member) pairs to investigate: flagged staff of the latest FINAL, of a
    simulation run half-way through the history, and the staff member with most exceptions."""
    import polars as pl

    from paywatch import investigate as inv

    runs = inv.runs_overview(con)
    finals = runs.filter(pl.col("run_type") == "FINAL")["run_id"].to_list()
    sims = runs.filter(pl.col("run_type") == "SIM1")["run_id"].to_list()
    picks = []
    for run_id in (finals[-1], sims[len(sims) // 2]):
        staff = inv.staff_with_exceptions(con, run_id)["pernr"].to_list()
        picks += [(run_id, p) for p in staff[: max(1, n // 2)]]
    return picks


def time_queries(db: Path, n_cases: int, repeat: int) -> list[dict]:
    """Slowest and median seconds of each notebook query over the cases (fresh connection,
    as the notebook opens one)."""
    from paywatch import investigate as inv
    from paywatch import lifecycle
    from paywatch.warehouse.health import table_sizes
    from paywatch.warehouse.resource import Warehouse

    with Warehouse.at(db).reader() as con:
        picks = cases(con, n_cases)
        per_case = {
            "staff_header": inv.staff_header, "staff_exceptions": inv.staff_exceptions,
            "compare_with_previous_final": inv.compare_with_previous_final,
            "compare_with_pay_model": inv.compare_with_pay_model, "personnel_actions": inv.personnel_actions,
            "dependants": inv.dependants, "peers_typical": inv.peers_typical,
        }
        whole = {
            "default_case": lambda: inv.default_case(con, None, None),
            "runs_overview": lambda: inv.runs_overview(con),
            "kpi_frame": lambda: inv.kpi_frame(con, None),
            "precision_frame": lambda: inv.precision_frame(con),
            "exclusions_by": lambda: lifecycle.exclusions_by(con),
            "time_to_resolution": lambda: lifecycle.time_to_resolution(con),
            "repeat_offenders": lambda: lifecycle.repeat_offenders(con),
        }
        times: dict[str, list[float]] = {}

        def clock(name, fn):
            for _ in range(repeat):
                t = time.perf_counter()
                fn()
                times.setdefault(name, []).append(time.perf_counter() - t)

        for name, fn in whole.items():
            clock(name, fn)
        for run_id, pernr in picks:
            clock("staff_with_exceptions", lambda: inv.staff_with_exceptions(con, run_id))
            clock("pay_history", lambda: inv.pay_history(con, pernr))
            clock("audit_trail", lambda: inv.audit_trail(con, pernr))
            for name, fn in per_case.items():
                clock(name, lambda: fn(con, run_id, pernr))
        sizes = table_sizes(con)
    print("warehouse: " + ", ".join(f"{t} {n:,} rows" for t, n in sizes.items())
          + f"; {db.stat().st_size / 2**30:.2f} GiB; {len(picks)} cases x {repeat} repeats")
    return [{"query": k, "calls": len(v), "median_s": statistics.median(v), "max_s": max(v),
             "meets_1s": max(v) <= TARGET_S} for k, v in times.items()]


def run_notebooks(db: Path) -> list[dict]:
    """Execute both notebooks for real on a copy of the warehouse (the investigation
    notebook records a decision). One row per notebook: wall time and its slowest cell."""
    import re
    from datetime import datetime

    import nbformat
    from nbclient import NotebookClient

    def seconds(cell) -> float:
        t = cell.metadata.get("execution", {})
        start, end = t.get("iopub.execute_input"), t.get("shell.execute_reply")
        if not (start and end):
            return 0.0
        return (datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "warehouse.duckdb"
        shutil.copy(db, copy)
        for name in ("investigate", "kpi"):
            nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
            params = next(c for c in nb.cells if c.cell_type == "code")
            params.source = re.sub(r"^DB = None", f"DB = {str(copy)!r}", params.source, flags=re.M)
            t = time.perf_counter()
            NotebookClient(nb, timeout=600, startup_timeout=120, kernel_name="python3",
                           resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
            wall = time.perf_counter() - t
            cells = [(seconds(c), c.source.strip().splitlines()[-1]) for c in nb.cells if c.cell_type == "code"]
            slow = max(cells)
            rows.append({"notebook": name, "cells": len(cells), "wall_s": wall, "slowest_cell_s": slow[0],
                         "slowest_cell": slow[1]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--staff", type=int, default=40_000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--start", default="202501")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--notebooks", action="store_true", help="also execute both notebooks on the warehouse")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder for queries.csv")
    args = ap.parse_args()
    results = args.out
    results.mkdir(parents=True, exist_ok=True)
    db = args.db or HERE / "results" / f"warehouse-{args.staff}x{args.months}.duckdb"
    if not db.exists():
        t = time.perf_counter()
        build(db, args.staff, args.months, args.start, args.seed)
        print(f"built {db} in {time.perf_counter() - t:,.0f} s")
    rows = time_queries(db, args.cases, args.repeat)
    from rich.console import Console
    from rich.table import Table

    table = Table("query", "calls", "median s", "max s", "<= 1 s",
                  title=f"Notebook queries, {args.staff:,} staff x {args.months} months x 4 runs ({os.cpu_count()} cores)")
    for r in rows:
        table.add_row(r["query"], str(r["calls"]), f"{r['median_s']:.3f}", f"{r['max_s']:.3f}",
                      "yes" if r["meets_1s"] else "NO")
    Console().print(table)
    with open(results / "queries.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if args.notebooks:
        for r in run_notebooks(db):
            print(f"notebook {r['notebook']}: {r['cells']} cells in {r['wall_s']:.1f} s (kernel start included); "
                  f"slowest cell {r['slowest_cell_s']:.2f} s: {r['slowest_cell']}")
    slow = [r["query"] for r in rows if not r["meets_1s"]]
    print("all notebook queries answer in <= 1 s" if not slow else f"slower than 1 s: {', '.join(slow)}")


if __name__ == "__main__":
    main()
