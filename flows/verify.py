"""Prefect flows around the verification stages (paywatch.pipeline): orchestration only.

- `verify_run`: one run folder, each declared stage (paywatch.pipeline.STAGES) a task named
  after it, retried as the stage's policy says (same code path as `paywatch verify`).
- `pull_and_verify`: pick up every new delivery in the landing folder exactly once, in
  contract order; alert when the run expected by the calendar has not arrived.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from prefect import flow, get_client, get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.states import Completed, Failed

from paywatch.settings import load_settings, warm_worker_wanted
from paywatch.privacy import mask_ibans_in
from paywatch import alerts
from paywatch import landing as lnd
from paywatch import pipeline, stages
from detectors.money import plain
from paywatch.report import staff_outcomes
from paywatch.stages import Stage, stage_count
from paywatch.titles import category_title
from paywatch.warehouse.deliveries import delivery_received, run_received
from paywatch.warehouse.resource import Warehouse
from flows import warm

RETRY_DELAY = float(os.environ.get("PAYWATCH_RETRY_DELAY_SECONDS", "10"))
ALERTED = "Completed with alerts"  # the state of a flow run that did its work and raised alerts


@dataclass(frozen=True)
class Scan:
    new: list[lnd.Delivery]
    duplicates: list[lnd.Delivery]
    waiting: list[Path]


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
    the environment of the run decides, as for `paywatch verify`); one log line per stage
    with its count and seconds."""
    t = TASKS[stage]
    if stage.retry is not None:
        retries, delays = stage.retry.resolved()
        t = t.with_options(retries=retries, retry_delay_seconds=delays or 0,
                           retry_condition_fn=_retry_on(stage.retry.on))
    t0 = time.monotonic()
    result = t(*args, **kwargs)
    get_run_logger().info("stage %s: %s in %.1f s", stage.name, stage_count(stage, result), time.monotonic() - t0)
    return result


_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def delivery_facts(folder: str | Path) -> dict[str, str]:
    """What the manifest says the delivery is (run id, area, period, run type), each value
    kept only when it looks like one; empty when there is no readable manifest."""
    m = lnd.manifest_facts(Path(folder)) if folder else {}
    facts = {"run_id": m.get("run_id"), "area": m.get("payroll_area"), "period": m.get("period"),
             "run_type": m.get("run_type")}
    return {k: v for k, v in facts.items() if v and _SAFE.match(v)}


def _verify_run_name() -> str:
    """The flow run named for its payroll run (`GV-202601-SIM1`), else for its folder."""
    folder = str(runtime.flow_run.parameters.get("run_folder", ""))
    return delivery_facts(folder).get("run_id") or f"delivery {Path(folder).name or '-'}"[:80]


def run_tags(facts: dict[str, str]) -> list[str]:
    return [f"{k.replace('_', '-')}:{facts[k]}" for k in ("area", "period", "run_type") if k in facts]


def tag_flow_run(tags: list[str]) -> None:
    """Tag the running flow run (however it was started: CLI, deployment, parent flow)."""
    fr = runtime.flow_run
    if not tags or not fr.id:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(fr.id, tags=sorted(set(fr.tags or []) | set(tags)))


def artifact_key(*parts: str | None) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes only) from `parts`."""
    text = "-".join(p for p in parts if p)
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-") or "run"


def rejected_key(run_folder: str) -> str:
    """A key per rejected delivery: its run id (when the manifest says one) and the manifest's
    checksum — or, with no manifest, a hash of the folder — so no rejection overwrites another."""
    sha = lnd.manifest_sha256(Path(run_folder)) or hashlib.sha256(str(Path(run_folder).resolve()).encode()).hexdigest()
    return artifact_key("rejected", delivery_facts(run_folder).get("run_id"), sha[:12])


def _artifacts(res: pipeline.VerifyResult, paths, db) -> None:
    """The run's exceptions (PERNR only: no names, no IBANs) and a summary in the UI."""
    f = res.findings if res.findings is not None else pl.DataFrame()
    rows = [{"PERNR": r["pernr"], "case": r.get("case_id") or "", "detector": r["detector"],
             "category": category_title(r["category"]), "severity": r["severity"],
             "owner": r["owner"], "LGART": r["wage_type"] or "", "FPPER": r["for_period"] or "",
             "amount": plain(r["amount_cents"]), "expected": plain(r.get("expected_cents")),
             "difference": _difference(r.get("amount_cents"), r.get("expected_cents")), "WAERS": r["currency"] or "",
             "explanation": mask_ibans_in(r.get("explanation") or "")}
            for r in f.iter_rows(named=True)] if f.height else []
    key = artifact_key(res.run_id or "run")
    create_table_artifact(key=f"exceptions-{key}", table=rows or [{"PERNR": "", "detector": "no exceptions"}],
                          description=f"Exceptions of {res.run_id}")
    outcomes = staff_outcomes(f) if f.height else None
    counts = (f.group_by("severity", "owner", "category").len().sort("len", descending=True) if f.height else None)
    lines = [f"# {res.run_id}", "", f"**Exit status {res.exit_code}** — {pipeline.OUTCOME_WORDS.get(res.load_outcome, res.load_outcome or '-')}", ""]
    if outcomes is not None:
        for sev in ("hold", "review", "info"):
            lines.append(f"- staff with outcome **{sev}**: {outcomes.filter(pl.col('outcome') == sev).height}")
        lines += ["", "| severity | owner | category | exceptions |", "|---|---|---|---|"]
        lines += [f"| {s} | {o} | {category_title(c)} | {n} |" for s, o, c, n in counts.iter_rows()]
    delivery = getattr(res, "delivery", None)
    if delivery is not None:
        lines += ["", f"Delivery: {delivery.summary()}"]
        if delivery.failures:  # surfaced, never silent: the run itself stays verified
            get_run_logger().error("%s: %s", res.run_id, delivery.summary())
            create_markdown_artifact(key=f"delivery-failed-{key}", markdown=f"# DELIVERY FAILED\n\n{delivery.summary()}")
            alerts.raise_alert(alerts.mail_failed(res.run_id, delivery.summary()), paths, Warehouse.at(db))
    failed = [c for c in res.dq if c["severity"] == "critical" and not c["success"]]
    if failed:
        lines += ["", "## NOT VERIFIED — data quality", *[f"- {c['detail']}" for c in failed]]
    create_markdown_artifact(key=f"summary-{key}", markdown="\n".join(lines), description=f"Summary of {res.run_id}")


def _difference(amount: int | None, expected: int | None) -> str:
    """Found minus expected, as the amounts are shown ("" when either is missing)."""
    return "" if amount is None or expected is None else plain(amount - expected)


def _verify(run_folder: str, db: str | None, out: str | None, warm_worker: bool, log):
    """The verify itself, and the pid of the warm worker that did it (None: this process).
    In the warm worker when asked for and one answers; else here, stage by stage as tasks."""
    if warm_worker:
        try:
            summary = warm.verify_result_in_worker(run_folder, db, out)
            log.info("verified in the warm worker (pid %s, its verify %d) in %.1f s", summary["pid"],
                     summary["verifies_before"] + 1, summary["seconds"])
            return summary["result"], summary["pid"]
        except warm.NoWarmWorker as e:
            log.warning("no warm worker answered (%s): verifying in this flow run's process instead", e)
    res = pipeline.verify_run(Path(run_folder), db=Path(db) if db else None, out=Path(out) if out else None,
                              runner=prefect_runner)
    return res, None


@flow(name="verify-run", flow_run_name=_verify_run_name, log_prints=False)
def verify_run(run_folder: str, db: str | None = None, out: str | None = None, warm_worker: bool = False):
    """Verify one extracted run folder: read → load → prepare → validate → detect → triage →
    store → write reports → send mail; with `warm_worker`, in the warm worker's process when
    one answers (else here, said in the log). Alerts, artifacts and the outcome are the same
    either way."""
    log = get_run_logger()
    tag_flow_run(run_tags(delivery_facts(run_folder)))
    res, pid = _verify(run_folder, db, out, warm_worker, log)
    log.info("run %s: exit %s, %s exceptions", res.run_id or "-", res.exit_code,
             0 if res.findings is None else res.findings.height)
    paths = Warehouse.at(db).paths
    if res.exit_code == 2:
        sha = lnd.manifest_sha256(Path(run_folder))
        out = alerts.raise_alert(alerts.rejected(run_folder, sha, res.message), paths, Warehouse.at(db))
        create_markdown_artifact(key=rejected_key(run_folder), markdown=f"# Delivery rejected\n\n`{res.message}`\n\n"
                                 f"Alert mail: {out.status}")
        return Failed(message=f"extract rejected: {res.message}", data=_where(warm_worker, pid))
    _artifacts(res, paths, db)
    if res.exit_code == 3:
        failed = [c["detail"] for c in res.dq if c["severity"] == "critical" and not c["success"]]
        alerts.raise_alert(alerts.blocked(res.run_id, failed), paths, Warehouse.at(db))
        return Failed(message=f"{res.run_id}: not verified — data quality", data=_where(warm_worker, pid))
    return {"run_id": res.run_id, "exit_code": res.exit_code, "exceptions": res.findings.height,
            "report_folder": str(res.out_dir)} | (_where(warm_worker, pid) or {})


def _where(warm_worker: bool, pid: int | None) -> dict | None:
    return {"warm_worker_pid": pid} if warm_worker else None


@task(name="scan-landing", retries=3, retry_delay_seconds=RETRY_DELAY, retry_condition_fn=_transient,
      cache_policy=NO_CACHE, persist_result=False)
def scan_landing(landing: str, db: str, settle_seconds: float, probe_seconds: float = 0.0) -> Scan:
    """Deliveries ready to read, in contract order: new ones and duplicates (this exact
    manifest was received before). A folder still being written is left for the next scan."""
    ready, waiting = lnd.scan(Path(landing), settle_seconds, probe_seconds)
    with Warehouse.at(db).writer(wait_seconds=600) as con:
        seen = {d.manifest_sha256 for d in ready if lnd.picked_up(con, d)}
    return Scan([d for d in ready if d.manifest_sha256 not in seen], [d for d in ready if d.manifest_sha256 in seen],
                waiting)


def _received(wh: Warehouse, sha: str) -> bool:
    with wh.writer(wait_seconds=600) as con:
        return delivery_received(con, sha)


def _settings(wh: Warehouse) -> tuple[dict, dict, str]:
    cfg = load_settings(wh.paths.config)
    return cfg, cfg.get("calendar", {}), str(lnd.landing_folder(wh.paths, cfg))


def _audit_artifact(entries: list[lnd.AuditEntry]) -> None:
    if entries:
        create_table_artifact(key="landing-audit", table=[{"action": e.action, "folder": e.folder,
                                                          "manifest_sha256": e.manifest_sha256, "run_id": e.run_id,
                                                          "note": e.note} for e in entries],
                              description="Landing folders handled by this flow run")


def _with_alerts(done: list, alerts_raised: list[str]):
    """Did its work and raised alerts: Completed (the verifies stay visible), named so."""
    if not alerts_raised:
        return done
    return Completed(name=ALERTED, message=f"{len(done)} delivery(ies) handled; ALERT: " + "; ".join(alerts_raised),
                     data=done)


def _pick_up(land: str, wh: Warehouse, settle: float, lcfg: dict, log):
    """Under the landing lock: scan, verify the new deliveries, audit and put away."""
    paths, db_path = wh.paths, str(wh.db)
    found = scan_landing(land, db_path, settle, float(lcfg.get("probe_seconds", 1.0)))
    for f in found.waiting:
        log.info("landing: waiting folder=%s (still being written: next scan)", Path(f).name)
    log.info("%d new deliveries to verify, %d duplicate(s) skipped", len(found.new), len(found.duplicates))
    entries: list[lnd.AuditEntry] = []
    after = lcfg.get("after_pickup", "move")

    def note(*es: lnd.AuditEntry | None) -> None:  # logged and appended as it happens
        entries.extend(lnd.audit(paths, [e for e in es if e is not None], log))

    done, raised = [], []
    in_warm = warm_worker_wanted()
    for d in found.duplicates:
        note(lnd.AuditEntry("duplicate", d.folder.name, d.manifest_sha256, d.run_id, "already received: skipped"),
             lnd.put_away(d.folder, Path(land), after, True, d.manifest_sha256, d.run_id))
    for d in found.new:
        note(lnd.AuditEntry("picked-up", d.folder.name, d.manifest_sha256, d.run_id))
        s = verify_run(str(d.folder), db_path, warm_worker=in_warm, return_state=True)
        if s.is_failed() and (s.message or "").startswith("extract rejected"):
            note(lnd.AuditEntry("quarantined", d.folder.name, d.manifest_sha256, d.run_id, s.message or ""))
        if s.is_failed():
            raised.append(f"{d.run_id or d.folder.name}: {s.message}")
        done.append({"run_id": d.run_id, "state": s.name} | _warm_pid(s, in_warm))
        note(lnd.put_away(d.folder, Path(land), after, _received(wh, d.manifest_sha256), d.manifest_sha256, d.run_id))
    return entries, done, raised


def _warm_pid(state, asked: bool) -> dict:
    """`warm_worker_pid` of a verify-run state when the warm worker was asked for: the pid of
    the worker that verified, None when this process did (no worker answered)."""
    if not asked:
        return {}
    try:
        data = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - a crashed run's result may not be readable: no pid then
        data = None
    return {"warm_worker_pid": data.get("warm_worker_pid") if isinstance(data, dict) else None}


def _pull_run_name() -> str:
    """`pull GV-202601` when a period is expected, else `pull landing` with the UTC minute."""
    from datetime import datetime, timezone

    period = runtime.flow_run.parameters.get("period")
    return f"pull {period}" if period else f"pull landing {datetime.now(timezone.utc):%Y-%m-%d %H:%M}Z"


def _backfill_run_name() -> str:
    params = runtime.flow_run.parameters
    start, end = params.get("start"), params.get("end")
    return f"backfill {start}" + (f"-{end}" if end and end != start else "")


@flow(name="pull-and-verify", flow_run_name=_pull_run_name, log_prints=False)
def pull_and_verify(landing: str | None = None, db: str | None = None, expect_run_type: str | None = None,
                    period: str | None = None, settle_seconds: float | None = None):
    """Verify every new delivery in the landing folder once, oldest first; log, audit and put
    away every folder handled; close the late-run alerts of runs that have now arrived; and,
    for a calendar deployment, alert when the run it expects (`expect_run_type` of `period`,
    YYYYMM, default this month in the calendar's time zone) has not arrived."""
    log = get_run_logger()
    wh = Warehouse.at(db)
    paths = wh.paths
    cfg, cal, land = _settings(wh)
    land = landing or land
    lcfg = cfg.get("landing", {})
    settle = float(cal.get("settle_seconds", 30) if settle_seconds is None else settle_seconds)
    with lnd.pickup_lock(Path(land)):
        entries, done, raised = _pick_up(land, wh, settle, lcfg, log)
    _audit_artifact(entries)
    area = cal.get("payroll_area", "GV")
    with wh.writer(wait_seconds=600) as con:
        arrived = [a for a in alerts.open_alerts(paths, "late")
                   if run_received(con, a.facts["payroll_area"], a.facts["period"], a.facts["run_type"])]
    for a in arrived:
        f = a.facts
        alerts.close_alert(a, paths, f"the {f['run_type']} run of {f['payroll_area']} {f['period']} arrived and "
                           "was verified", wh)
        log.info("late-run alert %s closed: the run has arrived", a.key)
        create_markdown_artifact(key="late-run-closed", markdown=f"# Late run arrived\n\n{a.key}: closed")
    if expect_run_type:
        p = period or lnd.current_period(tz=cal.get("timezone"))
        with wh.writer(wait_seconds=600) as con:
            missing = lnd.expected_run_missing(con, Path(land), area, p, expect_run_type)
        if missing:
            alert = alerts.late_run(area, p, expect_run_type)
            out = alerts.raise_alert(alert, paths, wh)
            log.warning("%s (alert %s)", alert.subject, out.status)
            create_markdown_artifact(key="late-run-alert", markdown=f"# Late run\n\n{alert.text}\n\nAlert mail: "
                                     f"{out.status}{' — ' + out.error if out.error else ''}")
            raised.append(f"the {expect_run_type} run of {area} {p} has not arrived")
    return _with_alerts(done, raised)


@flow(name="backfill", flow_run_name=_backfill_run_name, log_prints=False)
def backfill(start: str, end: str | None = None, landing: str | None = None, db: str | None = None):
    """Catch up: verify the deliveries of periods `start`..`end` (YYYYMM, end default
    `start`) found in landing and landing/processed, in contract order, each once; report
    the calendar's runs (SIM1..FINAL) of those periods that are still missing."""
    log = get_run_logger()
    wh = Warehouse.at(db)
    _, cal, land = _settings(wh)
    land = landing or land
    def verify(d: lnd.Delivery):
        lnd.audit(wh.paths, [lnd.AuditEntry("picked-up", d.folder.name, d.manifest_sha256, d.run_id, "catch-up")], log)
        return verify_run(str(d.folder), str(wh.db), warm_worker=warm_worker_wanted(), return_state=True)

    with lnd.pickup_lock(Path(land)):
        done, skipped = lnd.catch_up(Path(land), start, end or start, lambda d: _received(wh, d.manifest_sha256),
                                     verify)
    entries = lnd.audit(wh.paths, [lnd.AuditEntry("duplicate", d.folder.name, d.manifest_sha256, d.run_id,
                                                  "already received: skipped") for d in skipped], log)
    _audit_artifact(entries)
    missing = _missing_runs(wh, cal.get("payroll_area", "GV"), start, end or start)
    for m in missing:
        log.info("catch-up: %s has not been received", m)
    out = [{"run_id": d.run_id, "state": s.name} for d, s in done]
    log.info("catch-up %s..%s: %d verified, %d already received, %d expected run(s) missing", start, end or start,
             len(out), len(skipped), len(missing))
    return _with_alerts(out, [f"{m} missing" for m in missing])


def _missing_runs(wh: Warehouse, area: str, start: str, end: str) -> list[str]:
    with wh.writer(wait_seconds=600) as con:
        return [f"{area}-{p}-{rt}" for p in lnd.periods_between(start, end) for rt in lnd.RUN_TYPE_ORDER
                if not run_received(con, area, p, rt)]
