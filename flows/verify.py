"""Prefect flows around the verification stages (paywatch.pipeline): orchestration only.

- `verify_run`: one run folder, each declared stage (paywatch.pipeline.STAGES) a task named
  after it, retried as the stage's policy says (same code path as `paywatch verify`).
- `pull_and_verify`: pick up every new delivery in the landing folder exactly once, in
  contract order; alert when the run expected by the calendar has not arrived.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.states import Failed

from paywatch.settings import load_settings
from paywatch import landing as lnd
from paywatch import pipeline, stages
from detectors.money import plain
from paywatch.report import staff_outcomes
from paywatch.stages import Stage
from paywatch.warehouse.resource import Warehouse

RETRY_DELAY = float(os.environ.get("PAYWATCH_RETRY_DELAY_SECONDS", "10"))


def _transient(task, task_run, state) -> bool:
    """Retry on I/O trouble only: a broken extract stays broken."""
    try:
        state.result()
    except (OSError, lnd.NotReady, TimeoutError):
        return True
    except Exception:
        return False
    return False


def _retry_on(errors: tuple[type[BaseException], ...]):
    """A retry condition: the attempt failed with one of `errors` (the stage's policy)."""
    def condition(task, task_run, state) -> bool:
        try:
            state.result()
        except errors:
            return True
        except Exception:
            return False
        return False
    return condition


def _attempted(stage: Stage):
    """The stage's function as its task runs it, told which attempt this is (Prefect's run
    count against the task's retries): the last attempt settles instead of asking again."""
    @functools.wraps(stage.fn)
    def run(*args, **kwargs):
        ctx = TaskRunContext.get()
        with stages.attempting(ctx.task_run.run_count, ctx.task.retries or 0):
            return stage.fn(*args, **kwargs)
    return run


# one task per declared stage, named after it
TASKS = {s: task(_attempted(s), name=s.name, cache_policy=NO_CACHE, persist_result=False, log_prints=False)
         for s in pipeline.STAGES}


def prefect_runner(stage: Stage, *args, **kwargs):
    """Run one pipeline stage as its task, retried as the stage's policy says (read now, so
    the environment of the run decides, as for `paywatch verify`)."""
    t = TASKS[stage]
    if stage.retry is not None:
        retries, delays = stage.retry.resolved()
        t = t.with_options(retries=retries, retry_delay_seconds=delays or 0,
                           retry_condition_fn=_retry_on(stage.retry.on))
    return t(*args, **kwargs)


def _artifacts(res: pipeline.VerifyResult) -> None:
    """The run's exceptions (PERNR only: no names, no IBANs) and a summary in the UI."""
    f = res.findings if res.findings is not None else pl.DataFrame()
    rows = [{"PERNR": r["pernr"], "detector": r["detector"], "category": r["category"], "severity": r["severity"],
             "owner": r["owner"], "LGART": r["wage_type"] or "", "FPPER": r["for_period"] or "",
             "amount": plain(r["amount_cents"]), "WAERS": r["currency"] or ""}
            for r in f.iter_rows(named=True)] if f.height else []
    key = (res.run_id or "run").lower().replace("_", "-")
    create_table_artifact(key=f"exceptions-{key}", table=rows or [{"PERNR": "", "detector": "no exceptions"}],
                          description=f"Exceptions of {res.run_id}")
    outcomes = staff_outcomes(f) if f.height else None
    counts = (f.group_by("severity", "owner", "category").len().sort("len", descending=True) if f.height else None)
    lines = [f"# {res.run_id}", "", f"**Exit status {res.exit_code}** — load: {res.load_outcome or '-'}", ""]
    if outcomes is not None:
        for sev in ("hold", "review", "info"):
            lines.append(f"- staff with outcome **{sev}**: {outcomes.filter(pl.col('outcome') == sev).height}")
        lines += ["", "| severity | owner | category | exceptions |", "|---|---|---|---|"]
        lines += [f"| {s} | {o} | {c} | {n} |" for s, o, c, n in counts.iter_rows()]
    delivery = getattr(res, "delivery", None)
    if delivery is not None:
        lines += ["", f"Delivery: {delivery.summary()}"]
        if delivery.failures:  # surfaced, never silent: the run itself stays verified
            get_run_logger().error("%s: %s", res.run_id, delivery.summary())
            create_markdown_artifact(key=f"delivery-failed-{key}", markdown=f"# DELIVERY FAILED\n\n{delivery.summary()}")
    failed = [c for c in res.dq if c["severity"] == "critical" and not c["success"]]
    if failed:
        lines += ["", "## NOT VERIFIED — data quality", *[f"- {c['detail']}" for c in failed]]
    create_markdown_artifact(key=f"summary-{key}", markdown="\n".join(lines), description=f"Summary of {res.run_id}")


@flow(name="verify-run", log_prints=False)
def verify_run(run_folder: str, db: str | None = None, out: str | None = None):
    """Verify one extracted run folder: read → load → prepare → validate → detect → triage →
    store → write reports → send mail."""
    log = get_run_logger()
    res = pipeline.verify_run(Path(run_folder), db=Path(db) if db else None, out=Path(out) if out else None,
                              runner=prefect_runner)
    log.info("run %s: exit %s, %s exceptions", res.run_id or "-", res.exit_code,
             0 if res.findings is None else res.findings.height)
    if res.exit_code == 2:
        create_markdown_artifact(key="rejected-delivery", markdown=f"# Delivery rejected\n\n`{res.message}`")
        return Failed(message=f"extract rejected: {res.message}")
    _artifacts(res)
    if res.exit_code == 3:
        return Failed(message=f"{res.run_id}: not verified — data quality")
    return {"run_id": res.run_id, "exit_code": res.exit_code, "exceptions": res.findings.height,
            "report_folder": str(res.out_dir)}


@task(name="scan-landing", retries=3, retry_delay_seconds=RETRY_DELAY, retry_condition_fn=_transient,
      cache_policy=NO_CACHE, persist_result=False)
def scan_landing(landing: str, db: str, settle_seconds: float, wait_for_all: bool) -> list[lnd.Delivery]:
    """New deliveries ready to read, in contract order. Folders still being written make the
    task retry (when `wait_for_all`), so nothing is half-read."""
    ready, waiting = lnd.scan(Path(landing), settle_seconds)
    if waiting and wait_for_all:
        raise lnd.NotReady(f"{len(waiting)} folder(s) still being written")
    with Warehouse.at(db).writer(wait_seconds=600) as con:
        return [d for d in ready if not lnd.picked_up(con, d)]


@flow(name="pull-and-verify", log_prints=False)
def pull_and_verify(landing: str | None = None, db: str | None = None, expect_run_type: str | None = None,
                    period: str | None = None, settle_seconds: float | None = None):
    """Verify every new delivery in the landing folder once, oldest first; alert when the
    run the calendar expects (`expect_run_type` of `period`, default this month) is late."""
    log = get_run_logger()
    wh = Warehouse.at(db)
    paths, db_path = wh.paths, str(wh.db)
    cal = load_settings(paths.config).get("calendar", {})
    settle = float(cal.get("settle_seconds", 30) if settle_seconds is None else settle_seconds)
    land = landing or str(paths.landing)
    state = scan_landing(land, db_path, settle, True, return_state=True)
    todo = state.result() if state.is_completed() else scan_landing.fn(land, db_path, settle, False)
    log.info("%d new deliveries to verify", len(todo))
    done = []
    for d in todo:
        s = verify_run(str(d.folder), db_path, return_state=True)
        done.append({"run_id": d.run_id, "state": s.name})
    if expect_run_type:
        area = cal.get("payroll_area", "GV")
        p = period or lnd.current_period()
        with wh.writer(wait_seconds=600) as con:
            missing = lnd.expected_run_missing(con, Path(land), area, p, expect_run_type)
        if missing:
            msg = f"ALERT: the {expect_run_type} run of {area} {p} has not arrived in the landing folder by its time."
            log.error(msg)
            create_markdown_artifact(key="late-run-alert", markdown=f"# Late run\n\n{msg}")
            alert = paths.outbox / "alerts"
            alert.mkdir(parents=True, exist_ok=True)
            (alert / f"late-{area}-{p}-{expect_run_type}.txt").write_text(msg + "\n", encoding="utf-8")
            return Failed(message=msg)
    return done
