"""Warm-worker benchmark: a verify inside the long-lived Prefect task worker (flows/warm.py)
against the cold `paywatch verify` of the same run.

Builds what bench_scale.py builds for one size (a simulated payroll area: two FINAL months of
history loaded, then the SIM1 of the third month), starts a real Prefect server (temporary
PREFECT_HOME, a free port) and the warm worker (`python -m flows.warm serve`) as processes,
then submits the SIM1's verify twice (`verify_warm.delay`), each time on the warehouse as it
was before that run (a copy) and in the same folder:

- first: the worker's first verify (imports and the GX context preloaded; no fitted model
  of the month yet: it fits them, as a month's first run does);
- second: a verify in a process that has verified before (imports, GX context, the fitted
  models in memory and beside the warehouse) — the warm path of issue #17.

Then the cold verify, `paywatch verify` as a fresh process on the same copy with no fitted
model (bench_scale.py's cold verify), after the worker and the server have stopped. The
three exceptions.csv must be identical.

    uv run python benchmarks/bench_warm.py                  # 10,000 staff (~4 min)
    uv run python benchmarks/bench_warm.py --staff 300      # a quick look

Prints each submission's wall time as the submitter sees it (queueing, pick-up and the
result included) and as the worker timed the verify, the cold verify's wall and CPU time,
the load average, and last: warm_worker_verify_10k_s=Y cold_verify_10k_s=Z (Y: the second
submission's wall time; the size in the key is the --staff given).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flows.processes import NotReady, free_port, healthy, wait_for

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent


def _wait(what: str, check, proc: subprocess.Popen, log: Path, seconds: float = 300) -> object:
    try:
        return wait_for(what, check, proc, log, seconds)
    except NotReady as e:
        sys.exit(str(e))


def _label(staff: int) -> str:
    return f"{staff // 1000}k" if staff % 1000 == 0 else str(staff)


def build(staff: int, work: Path) -> tuple[Path, Path]:
    """bench_scale.py's payroll: simulate 3 months, load the history; (the SIM1 of the third
    month, the warehouse as it was before that run)."""
    from paywatch import pipeline
    from paywatch.warehouse.resource import Warehouse

    subprocess.run([sys.executable, "-m", "paywatch.cli", "simulate", "--out", str(work / "sim"), "--staff",
                    str(staff), "--months", "3", "--start", "202601", "--seed", "3"], check=True,
                   capture_output=True)
    runs = (work / "sim" / "runs.txt").read_text(encoding="utf-8").split()
    target = next(r for r in runs if r.endswith("202603-SIM1"))
    history = [r for r in runs[: runs.index(target)] if r.endswith("FINAL") or r.endswith("OC1")]
    db = Warehouse.in_folder(work / "hist").db
    for r in history:
        res = pipeline.verify_run(work / "sim" / r, db=db, out=work / "rep" / r)
        assert res.exit_code == 0, res.message
    shutil.copy(db, work / "before.duckdb")
    return work / "sim" / target, work / "before.duckdb"


def fresh_copy(before: Path, folder: Path) -> Path:
    """The warehouse as it was before the run, in `folder`, with no fitted model on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "models", ignore_errors=True)
    shutil.copy(before, folder / "warehouse.duckdb")
    return folder / "warehouse.duckdb"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--staff", type=int, default=10000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="paywatch-bench-warm-"))
    # Prefect reads these at import: the benchmark's own server, home and settings
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    os.environ |= {"PREFECT_HOME": str(work / "prefect"), "PREFECT_API_URL": url,
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
                   "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore", "PYTHONWARNINGS": "ignore"}
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    sys.path.insert(0, str(ROOT))
    from bench_scale import _LAST_CPU, _timed_child

    load_before = os.getloadavg()
    procs: list[subprocess.Popen] = []
    lines: list[str] = []
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True) as progress:
            step = progress.add_task(f"simulating {args.staff:,} staff and loading two months of history")
            target, before = build(args.staff, work)
            lines.append(f"staff={args.staff} run={target.name} history built")

            progress.update(step, description="starting a Prefect server")
            slog = work / "server.log"
            server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                                       str(port)], stdout=open(slog, "w"), stderr=subprocess.STDOUT, cwd=work)
            procs.append(server)
            _wait("Prefect server", lambda: healthy(url), server, slog)

            progress.update(step, description="starting the warm worker (preloading GX, scikit-learn, detectors)")
            warm_dir = work / "warm"
            db = fresh_copy(before, warm_dir)
            wlog = work / "worker.log"
            t = time.perf_counter()
            worker = subprocess.Popen([sys.executable, "-m", "flows.warm", "serve", "--db", str(db)], cwd=ROOT,
                                      stdout=open(wlog, "w"), stderr=subprocess.STDOUT)
            procs.append(worker)
            _wait("warm worker", lambda: "Subscribing to runs" in wlog.read_text(), worker, wlog)
            lines.append(f"worker pid {worker.pid} ready in {time.perf_counter() - t:.2f} s")

            from flows.warm import verify_in_worker

            walls, summaries = [], []
            for i in (1, 2):
                progress.update(step, description=f"submission {i}: verify {target.name} in the worker")
                db = fresh_copy(before, warm_dir)
                t = time.perf_counter()
                s = verify_in_worker(target, db, work / f"rep-warm{i}", timeout=1800)
                walls.append(time.perf_counter() - t)
                summaries.append(s)
                assert s["exit_code"] == 0, s["message"]
                assert s["pid"] == worker.pid, (s["pid"], worker.pid)
                lines.append(f"submission {i}: wall {walls[-1]:.2f} s (verify in the worker {s['seconds']:.2f} s), "
                             f"pid {s['pid']}, verifies before {s['verifies_before']}, "
                             f"{s['exceptions']} exceptions, load {os.getloadavg()[0]:.2f}")

            progress.update(step, description="stopping the worker and the server")
            for p in reversed(procs):
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=120)
            lines.append(f"worker exit {worker.returncode}, server exit {server.returncode}")
            procs.clear()

            progress.update(step, description="cold verify: paywatch verify in a fresh process")
            db = fresh_copy(before, work / "cold")
            cold, code, rss = _timed_child(["-m", "paywatch.cli", "verify", str(target), "--db", str(db), "--out",
                                            str(work / "rep-cold")])
            lines.append(f"cold paywatch verify: wall {cold:.2f} s, CPU {_LAST_CPU[0]:.2f} s, exit {code}, "
                         f"peak RSS {rss:,.0f} MB, load {os.getloadavg()[0]:.2f}")
            csvs = [(work / d / "exceptions.csv").read_bytes() for d in ("rep-warm1", "rep-warm2", "rep-cold")]
            assert csvs[0] == csvs[1] == csvs[2], "the warm worker found other exceptions than paywatch verify"
            lines.append("exceptions.csv: identical (both submissions and the cold verify)")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=120)
        log = work / "worker.log"
        warm_log = log.read_text() if log.exists() else ""
    for line in lines:
        print(line)
    for line in warm_log.splitlines():
        if re.search(r"warm verify|stopped|Traceback", line):
            print("worker log:", line)
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}".format(
        *load_before, *os.getloadavg()))
    label = _label(args.staff)
    print(f"warm_worker_first_{label}_s={walls[0]:.2f} warm_worker_verify_{label}_s={walls[1]:.2f} "
          f"cold_verify_{label}_s={cold:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
