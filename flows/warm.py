"""The warm path: one long-lived process that verifies the runs submitted to it, keeping
between verifies what a fresh process pays for again every time — the imports (Great
Expectations, scikit-learn, the detectors), the GX file context of each warehouse and the
fitted models in memory. Orchestration only: the verify is `paywatch.pipeline.verify_run`,
the same as `paywatch verify`.

Prefect 3 starts every served or worker-run *flow* run in a fresh process
(docs/stack-notes.md); a **task worker** (`prefect.task_worker.serve`) is one process that
runs the background task runs submitted to it (`task.delay(...)`) in its threads.

    uv run python -m flows.warm                               # start the worker (PREFECT_API_URL set)
    uv run python -m flows.warm submit RUN_FOLDER [--db DB] [--out DIR]   # verify in it, print the summary

From Python (a flow, a script): `verify_in_worker(folder, db, out)` (or
`verify_warm.delay(...).result()`), which waits for the summary; as a flow (deployable like
`verify-run`): `verify_in_warm_worker`. One verify at a time
(`limit=1`): DuckDB takes one writer. The submitter and the worker share the Prefect server
and PREFECT_HOME (the parameters and results are persisted there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.states import Failed
from prefect.task_worker import StopTaskWorker, aserve

_VERIFIES = {"count": 0}  # verifies run by this process (the first one may still be cold)


def _logged(stage, *args, **kwargs):
    """`paywatch verify`'s runner (the stage's own retry policy), with the flow's log line
    per stage (its count and seconds) in the worker's task-run log."""
    from paywatch import stages  # noqa: PLC0415

    t0 = time.perf_counter()
    result = stages.run(stage, *args, **kwargs)
    get_run_logger().info("stage %s: %s in %.1f s", stage.name, stages.stage_count(stage, result),
                          time.perf_counter() - t0)
    return result


@task(name="verify-warm", persist_result=True, log_prints=False)
def verify_warm(run_dir: str, db: str | None = None, out: str | None = None, wait_seconds: float = 600.0,
                full: bool = False) -> dict:
    """Verify one run folder (as `paywatch verify RUN_DIR --db DB --out OUT`) in this
    process; a small summary back: run id, exit code (0, 2, 3, or 4 warehouse busy, 1
    configuration error, as the CLI), counts, the worker's pid and how many verifies the
    process had run before. With `full`, the summary also holds the whole
    `pipeline.VerifyResult` (`result`: findings, checks, delivery report) for a flow that
    raises the verify's alerts and artifacts itself, and a busy warehouse or a configuration
    error is raised, as a verify in the flow's own process raises it."""
    from detectors.config import ConfigError  # noqa: PLC0415 - imported by `preload` in the worker;
    from paywatch import pipeline  # noqa: PLC0415 - a submitter does not need them
    from paywatch.warehouse.db import WarehouseBusy  # noqa: PLC0415

    before = _VERIFIES["count"]
    _VERIFIES["count"] += 1
    t0 = time.perf_counter()
    base = {"pid": os.getpid(), "verifies_before": before, "run_dir": str(run_dir)}
    try:
        res = pipeline.verify_run(Path(run_dir), db=Path(db) if db else None, out=Path(out) if out else None,
                                  wait_seconds=wait_seconds, runner=_logged)
    except WarehouseBusy as e:
        if full:
            raise
        return base | {"run_id": None, "exit_code": 4, "message": f"warehouse busy: {e}",
                       "seconds": time.perf_counter() - t0}
    except ConfigError as e:
        if full:
            raise
        return base | {"run_id": None, "exit_code": 1, "message": str(e), "seconds": time.perf_counter() - t0}
    summary = base | {
        "run_id": res.run_id, "exit_code": res.exit_code, "message": res.message,
        "exceptions": None if res.findings is None else res.findings.height,
        "cases": None if res.cases is None else res.cases.height,
        "report_folder": str(res.out_dir) if res.out_dir else None,
        "seconds": time.perf_counter() - t0}
    get_run_logger().info("warm verify %s: exit %s, %s exceptions in %.1f s (verify %d of pid %d)",
                          res.run_id or run_dir, res.exit_code, summary["exceptions"], summary["seconds"],
                          before + 1, summary["pid"])
    return summary | {"result": res} if full else summary


def verify_in_worker(run_dir: str | Path, db: str | Path | None = None, out: str | Path | None = None,
                     timeout: float | None = None) -> dict:
    """Submit a verify to the running warm worker and wait for its summary."""
    future = verify_warm.delay(str(run_dir), str(db) if db else None, str(out) if out else None)
    return future.result(timeout=timeout)


class NoWarmWorker(RuntimeError):
    """No warm worker took the verify (none subscribed, or the one that took it went away):
    the caller verifies in its own process instead. Nothing of the submission is left to
    run later (a task run still waiting is deleted)."""


GRACE_SECONDS = float(os.environ.get("PAYWATCH_WARM_GRACE_SECONDS", "30"))


def _task_workers(client, key: str) -> set[str]:
    """Ids (`host-pid`) of the task workers the server sees subscribed to task `key`."""
    r = client._client.post("/task_workers/filter", json={"task_worker_filter": {"task_keys": [key]}})
    r.raise_for_status()
    return {w["identifier"] for w in r.json()}


def verify_result_in_worker(run_dir: str | Path, db: str | Path | None = None, out: str | Path | None = None,
                            grace: float | None = None, poll: float = 2.0) -> dict:
    """Hand one verify to the warm worker and wait for it, however long it takes while a
    worker is there to do it: the summary with the whole `VerifyResult` (`result`) and the
    worker's `pid`. NoWarmWorker, at once, when no Prefect server is configured or no worker
    is subscribed; and when, for `grace` seconds (PAYWATCH_WARM_GRACE_SECONDS, 30), the run is
    still waiting with no worker subscribed, or was taken by a worker that is gone (killed
    mid-verify: the verify's transaction left the warehouse as before)."""
    import httpx  # noqa: PLC0415 - Prefect's client
    from prefect import get_client  # noqa: PLC0415
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    grace = GRACE_SECONDS if grace is None else grace
    if not PREFECT_API_URL.value():
        raise NoWarmWorker("no Prefect server (PREFECT_API_URL is not set)")
    key = verify_warm.task_key
    try:
        with get_client(sync_client=True) as client:
            if not _task_workers(client, key):
                raise NoWarmWorker(f"no warm worker is subscribed at {PREFECT_API_URL.value()}")
            future = verify_warm.delay(str(run_dir), str(db) if db else None, str(out) if out else None, full=True)
            taken_by: set[str] | None = None
            seen = time.monotonic()
            while True:
                future.wait(timeout=poll)
                run = client.read_task_run(future.task_run_id)
                if run.state is not None and run.state.is_final():
                    break
                workers = _task_workers(client, key)
                if run.state is not None and not run.state.is_scheduled() and taken_by is None:
                    taken_by = workers  # who was there when it was taken
                if workers if taken_by is None else workers & taken_by:
                    seen = time.monotonic()
                elif time.monotonic() - seen > grace:
                    if taken_by is None:  # withdrawn: a worker that comes back must not verify it too
                        client.delete_task_run(future.task_run_id)
                        raise NoWarmWorker(f"no warm worker took the verify within {grace:.0f} s")
                    raise NoWarmWorker(f"the warm worker that took the verify is gone ({', '.join(sorted(taken_by))})")
    except httpx.HTTPError as e:
        raise NoWarmWorker(f"the Prefect server at {PREFECT_API_URL.value()} does not answer "
                           f"({type(e).__name__})") from e
    return future.result()


@flow(name="verify-in-warm-worker", log_prints=False)
def verify_in_warm_worker(run_folder: str, db: str | None = None, out: str | None = None):
    """Verify one run folder in the warm worker and wait for it: the flow run's own process
    stays light (no GX, no scikit-learn); Failed, as `verify-run`, when the extract is
    rejected (2), data quality stopped detection (3) or the verify could not run."""
    summary = verify_warm.delay(run_folder, db, out).result()
    get_run_logger().info("run %s: exit %s, %s exceptions (warm worker pid %s)", summary["run_id"] or run_folder,
                          summary["exit_code"], summary.get("exceptions"), summary["pid"])
    if summary["exit_code"]:
        return Failed(message=summary["message"], data=summary)
    return summary


def preload(db: str | Path | None = None) -> None:
    """Import what a verify needs (GX, scikit-learn, the detectors: `pipeline.warm_up`) and
    open the GX context of the warehouse `db` (default: PAYWATCH_HOME's), so the first
    submitted verify starts warm too."""
    from paywatch import pipeline  # noqa: PLC0415

    pipeline.warm_up().join()
    from paywatch.dq import runner  # noqa: PLC0415
    from paywatch.warehouse.resource import Warehouse  # noqa: PLC0415

    runner.context(Warehouse.at(db).paths.home)


def serve_warm(db: str | Path | None = None, timeout: float | None = None) -> None:
    """Preload, then run the task worker until SIGTERM / Ctrl-C (or `timeout` seconds).
    The worker runs in this (main) thread's event loop: only there does it install its
    SIGTERM handler (`prefect.task_worker.serve` runs it in a loop thread, where a SIGTERM
    kills the process outright). That handler stops the worker by raising StopTaskWorker,
    which (Prefect 3.9) escapes `aserve` once its tasks are cancelled: the normal end."""
    preload(db)
    print(f"warm worker ready: pid {os.getpid()}", flush=True)
    try:
        asyncio.run(aserve(verify_warm, limit=1, timeout=timeout))
    except StopTaskWorker:
        pass
    print(f"warm worker stopped: pid {os.getpid()}", flush=True)


SUBMIT_TIMEOUT = 900.0


def _submit(run_dir: str, db: str | None, out: str | None, timeout: float) -> int:
    """`submit`: one line on stderr and exit 2 when there is nothing to talk to or nothing to
    verify, 4 when no worker answers in time; otherwise the summary (JSON) and its exit code."""
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    where = "python -m flows.warm submit"
    if not PREFECT_API_URL.value():  # an ephemeral server would have no worker behind it: wait forever
        print(f"{where}: no Prefect server: set PREFECT_API_URL to the server the warm worker uses",
              file=sys.stderr)
        return 2
    if not Path(run_dir).is_dir():
        print(f"{where}: {run_dir}: no such run folder", file=sys.stderr)
        return 2
    import httpx  # noqa: PLC0415 - Prefect's client

    try:
        summary = verify_in_worker(run_dir, db, out, timeout)
    except httpx.HTTPError as e:
        print(f"{where}: the Prefect server at {PREFECT_API_URL.value()} does not answer ({type(e).__name__})",
              file=sys.stderr)
        return 2
    except TimeoutError:
        print(f"{where}: no warm worker answered within {timeout:.0f} s (is `python -m flows.warm` running "
              f"against {PREFECT_API_URL.value()}?)", file=sys.stderr)
        return 4
    print(json.dumps(summary))
    return int(summary["exit_code"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flows.warm", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("serve", help="start the warm worker (the default)")
    s.add_argument("--db", help="warehouse whose GX context to open first (default: PAYWATCH_HOME's)")
    s.add_argument("--timeout", type=float, help="stop after this many seconds")
    v = sub.add_parser("submit", help="verify a run folder in the running worker; prints the summary (JSON)")
    v.add_argument("run_dir")
    v.add_argument("--db")
    v.add_argument("--out")
    v.add_argument("--timeout", type=float, default=SUBMIT_TIMEOUT,
                   help=f"seconds to wait for the worker's answer (default {SUBMIT_TIMEOUT:.0f})")
    args = ap.parse_args(argv)
    if args.cmd == "submit":
        return _submit(args.run_dir, args.db, args.out, args.timeout)
    serve_warm(getattr(args, "db", None), getattr(args, "timeout", None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
