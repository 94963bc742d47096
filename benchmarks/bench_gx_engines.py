"""Great Expectations on pandas frames (what Paywatch runs) against GX on a SQL datasource,
the same suites on the same rows (issue #17: "measure GX validating inside the database").

duckdb-engine is not in the lock and GX's SQL datasource on a DuckDB file fails silently
(docs/stack-notes.md), so the SQL side is a SQLite file holding the same frames: it measures
GX's SQL execution path (one query per metric), not DuckDB's speed. Per suite and result
format: median seconds of 3 validations and how many expectations passed — a SQL datasource
that is faster but answers differently is no replacement.

    uv run python benchmarks/bench_gx_engines.py [--staff 10000] [--frames RT,PA0001,T510]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--staff", type=int, default=10_000)
    ap.add_argument("--frames", default="RT,PA0001,T510", help="suites (by frame) to run, comma-separated")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from paywatch import dq, pipeline
    from paywatch.dq import catalog, frames, runner
    from paywatch.settings import load_settings
    from paywatch.warehouse.resource import Warehouse

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        subprocess.run([sys.executable, "-m", "paywatch.cli", "simulate", "--out", str(work / "sim"), "--staff",
                        str(args.staff), "--months", "1", "--start", "202601", "--seed", "3"], check=True,
                       capture_output=True)
        first = next(r for r in (work / "sim" / "runs.txt").read_text(encoding="utf-8").split() if r.endswith("SIM1"))
        wh = Warehouse.in_folder(work / "wh")
        with wh.writer() as con:
            loaded = pipeline.stage_load(con, pipeline.stage_read(work / "sim" / first), wh.paths)
            inp = pipeline.detection_input(con, loaded.run_id)
            cfg = dq.with_suites_version(load_settings(None), con)
            suites = {s.frame: s for s in catalog.load_suites(dq.suites_folder(cfg, con))}
            rf = frames.build(inp, pipeline.previous_of_kind(con, inp), cfg.get("PW106", {}).get("lookback_months"))
        gx = runner._import_gx()
        ctx = gx.get_context(mode="ephemeral")
        from great_expectations.data_context.types.base import ProgressBarsConfig
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        names = args.frames.split(",")
        db = work / "frames.sqlite"
        with sqlite3.connect(db) as sq:
            for n in names:
                rf.frames[n].to_pandas().to_sql(n, sq, index=False)
        ds_pd = ctx.data_sources.add_pandas("pandas")
        ds_sql = ctx.data_sources.add_sqlite("sql", connection_string=f"sqlite:///{db}")
        print(f"{args.staff:,} staff, run {first}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for n in names:
            s = suites[n]
            suite = ctx.suites.add(runner._gx_suite(gx, s))
            bd_pd = ds_pd.add_dataframe_asset(n).add_batch_definition_whole_dataframe("all")
            bd_sql = ds_sql.add_table_asset(n, table_name=n).add_batch_definition_whole_table("all")
            pdf = runner.html_safe(rf.frames[n]).to_pandas()
            for fmt in ("BASIC", "COMPLETE"):
                rfmt: dict = {"result_format": fmt}
                if fmt == "COMPLETE":
                    rfmt |= {"unexpected_index_column_names": [*s.key_columns, "record"],
                             "partial_unexpected_count": 20}
                engines = (("pandas", lambda: bd_pd.get_batch(batch_parameters={"dataframe": pdf})),
                           ("sql", bd_sql.get_batch))
                for label, batch in engines:
                    batch().validate(suite, result_format=rfmt)  # warm
                    ts = []
                    for _ in range(3):
                        t = time.perf_counter()
                        res = batch().validate(suite, result_format=rfmt)
                        ts.append(time.perf_counter() - t)
                    passed = sum(bool(r.success) for r in res.results)
                    print(f"{n:9s} rows {rf.frames[n].height:7,}  expectations {len(s.expectations):2d}  {fmt:8s} "
                          f"{label:6s} {sorted(ts)[1]:.3f} s  passed {passed}/{len(res.results)}")


if __name__ == "__main__":
    main()
