"""The stages of a verification, declared as data (`STAGES`, after Kedro's pipeline.py):
read ▸ load ▸ prepare ▸ validate ▸ detect ▸ triage ▸ group cases ▸ store ▸ write reports ▸ send mail,
and `verify_run`, which walks them in that order through a runner. `paywatch verify` runs
them with `paywatch.stages.run`; the Prefect flow maps each stage to a task (same retry
policy, detection fanned out per duty station); both run exactly these functions.
"""

from __future__ import annotations

import gc
import hashlib
import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from detectors import history as dh
from detectors.base import DetectionInput, History, RunMeta, empty_findings
from detectors.config import config_version
from detectors.registry import detect
from detectors.registry import detect_partitioned
from paywatch import cases as cs
from paywatch import dq, quality, report, stages
from paywatch.cases.status import with_decisions
from paywatch.delivery import DeliveryReport, deliver_run_reports
from paywatch.extract.model import Extract, ExtractError
from paywatch.faults import checkpoint
from paywatch.extract.reader import read_run
from paywatch.landing import NotReady
from paywatch.lifecycle import apply_decisions
from paywatch.paths import Paths
from paywatch.settings import load_settings
from paywatch.stages import Retry, Stage
from paywatch.warehouse import cases as cases_db
from paywatch.warehouse import kept
from paywatch.warehouse import queries as q
from paywatch.warehouse.db import database_path, make_private_dir, transaction
from paywatch.warehouse.findings import FINDING_COLUMNS, first_seen, store_verification, stored_verification
from paywatch.warehouse.load import LoadResult, load_run, quarantine
from paywatch.warehouse.models import model_cache
from paywatch.warehouse.resource import Warehouse

REGULAR_RUNS = ("SIM1", "SIM2", "SIM3", "FINAL")

MASTER = ("actions", "assignments", "basic_pay", "bank_details", "family")
REFERENCE = ("pay_scale", "post_adjustment", "rates", "wage_types")
LINE_COLUMNS = ("pernr", "for_period", "in_period", "wage_type", "amount_cents", "currency", "quantity")


@dataclass
class VerifyResult:
    exit_code: int
    message: str = ""
    run_id: str | None = None
    out_dir: Path | None = None
    findings: pl.DataFrame | None = None
    load_outcome: str = ""
    dq: list[dict] = field(default_factory=list)
    delivery: DeliveryReport | None = None  # reports upstream (outbox, mail)
    cases: pl.DataFrame | None = None  # one row per case, as cases.csv shows them


# ------------------------------------------------------------------------------ stages

def stage_read(folder: Path) -> Extract:
    """Read and check every format rule (raises ExtractError: exit 2)."""
    return read_run(folder)


def stage_load(con: duckdb.DuckDBPyConnection, extract: Extract, paths: Paths) -> LoadResult:
    """One transaction: the run is fully in the warehouse, or not at all."""
    return load_run(con, extract, archive_dir=paths.archive)


def detection_input(con: duckdb.DuckDBPyConnection, run_id: str) -> DetectionInput:
    """The run as detectors see it: its lines, master data, reference tables, history."""
    info = q.run_info(con, run_id)
    meta = RunMeta(run_id, info["payroll_area"], info["period"], info["run_type"])
    lines = q.pay_lines(con, run_id).select(LINE_COLUMNS)
    md = _master_data(con, run_id)
    ref = {t: q.reference_as_of_run(con, run_id, f"stg_{t}") for t in REFERENCE}
    runs = q.history_before(con, run_id)
    recent = runs.filter(pl.col("period") >= dh.window_start(meta.period))
    # the earlier FINALs' lines and master data: the same for every run of the month, kept
    # in this process per delivery (a warm worker reads them once a month)
    db = database_path(con)
    final_lines, final_digests = kept.lines_of_finals(db, recent.filter(pl.col("run_type") == "FINAL"),
                                                      lambda finals: q.lines_of_runs(con, finals))
    history = History(
        runs=runs,
        final_lines=final_lines,
        offcycle_lines=q.lines_of_runs(con, recent.filter(pl.col("run_type") == "OFFCYCLE")),
        final_md={fid: _final_master_data(con, db, runs, fid, pernrs)
                  for fid, pernrs in dh.final_runs_needed(lines, final_lines, runs).items()},
        pay_date=info["pay_date"],
        extracted_at=str(info["extracted_at"]),
        period_lines=q.lines_of_runs(con, runs.filter((pl.col("period") == meta.period)
                                                      & pl.col("run_type").is_in(REGULAR_RUNS))),
        final_digests=final_digests,
    )
    return DetectionInput(meta, lines, md, ref, history, models=model_cache(con))


def _final_master_data(con, db: Path | None, runs: pl.DataFrame, run_id: str,
                       pernrs: list[str]) -> dict[str, pl.DataFrame]:
    """An earlier FINAL's master data (kept per delivery: warehouse/kept.py), of `pernrs`."""
    run = runs.filter(pl.col("run_id") == run_id).row(0, named=True)
    md = kept.kept(db, run, "master_data", lambda: _master_data(con, run_id))
    keep = pl.Series(pernrs, dtype=pl.String)
    return {t: f.filter(pl.col("pernr").is_in(keep)) for t, f in md.items()}


def _master_data(con, run_id: str) -> dict[str, pl.DataFrame]:
    return {t: q.master_data_as_of_run(con, run_id, f"stg_{t}") for t in MASTER}


def previous_of_kind(con: duckdb.DuckDBPyConnection, inp: DetectionInput) -> DetectionInput | None:
    """The latest earlier run of the same run type (for volume checks), lines only."""
    runs = inp.history.runs
    if runs.height == 0:
        return None
    same = runs.filter(pl.col("run_type") == inp.meta.run_type)
    if same.height == 0:
        return None
    r = same.row(-1, named=True)
    meta = RunMeta(r["run_id"], r["payroll_area"], r["period"], r["run_type"])
    return DetectionInput(meta, q.pay_lines(con, r["run_id"]).select(LINE_COLUMNS), {}, {})


def stage_validate(con: duckdb.DuckDBPyConnection, inp: DetectionInput, cfg: dict) -> list[dict]:
    """Data-quality gate: the Great Expectations suites (paywatch/dq/suites) on frames taken
    from the warehouse; one check per expectation (critical failures stop detection)."""
    return dq.run_checks(con, inp, previous_of_kind(con, inp), cfg)


def stage_detect(inp: DetectionInput, cfg: dict) -> pl.DataFrame:
    """Every enabled detector; one row per finding."""
    return detect(inp, cfg)


def stage_triage(con: duckdb.DuckDBPyConnection, inp: DetectionInput, findings: pl.DataFrame,
                 run_version: int, cfg_version: str) -> pl.DataFrame:
    """Give each finding its identity, first-seen run and storage columns."""
    meta = inp.meta
    earlier = inp.history.runs.filter(pl.col("period") == meta.period)["run_id"].to_list()
    seen = first_seen(con, earlier, cfg_version)
    key = pl.concat_str([pl.col(c).fill_null("") for c in ("pernr", "detector", "wage_type", "for_period")],
                        separator="|")
    f = findings.with_columns(key.alias("_key"))
    f = f.with_columns(pl.int_range(pl.len()).over("_key", "category").alias("_seq"))
    f = f.join(seen, on="_key", how="left").with_columns(
        pl.col("first_seen_run").fill_null(meta.run_id),
        pl.lit(meta.run_id).alias("run_id"),
        pl.lit(run_version, dtype=pl.Int32).alias("run_version"),
        pl.lit(cfg_version).alias("config_version"),
    )
    ids = [
        hashlib.sha1(f"{meta.run_id}|{run_version}|{cfg_version}|{k}|{c}|{s}".encode()).hexdigest()[:20]
        for k, c, s in f.select("_key", "category", "_seq").iter_rows()
    ]
    return f.with_columns(pl.Series("finding_id", ids, dtype=pl.String)).select(FINDING_COLUMNS)


def _day(value) -> date | None:
    """The date of an extraction timestamp (a datetime, or its text)."""
    if value is None or value == "":
        return None
    return value.date() if hasattr(value, "date") else date.fromisoformat(str(value)[:10])


def stage_group_cases(con: duckdb.DuckDBPyConnection, inp: DetectionInput, findings: pl.DataFrame,
                      run_version: int, cfg_version: str, cfg: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Group the run's findings into cases by the `[cases]` rules (paywatch/cases): every
    finding gets its `case_id`; each case (one row per case, paywatch.warehouse.cases.CASE_COLUMNS)
    its first-seen run in the period, status `new`/`open`, due date ([calendar]) and days open."""
    meta = inp.meta
    findings, grouped = cs.group_cases(findings, cs.rules_of(cfg), meta.payroll_area, meta.period)
    period_runs = inp.history.runs.filter(pl.col("period") == meta.period)
    seen = cases_db.first_seen_runs(con, period_runs["run_id"].to_list(), grouped["case_id"].to_list())
    extracted = {r: _day(x) for r, x in zip(period_runs["run_id"].to_list(), period_runs["extracted_at"].to_list())}
    today = _day(inp.history.extracted_at)
    first = [seen.get(c, meta.run_id) for c in grouped["case_id"].to_list()]
    days = [max((today - extracted[f]).days, 0) if f in extracted and today and extracted[f] else 0 for f in first]
    due = cs.due_date(meta.period, meta.run_type, cfg["calendar"], period_runs["run_type"].to_list())
    cases = grouped.with_columns(
        pl.lit(meta.run_id).alias("run_id"), pl.lit(run_version, dtype=pl.Int32).alias("run_version"),
        pl.lit(cfg_version).alias("config_version"), pl.lit(meta.payroll_area).alias("payroll_area"),
        pl.lit(meta.period).alias("period"), pl.Series("first_seen_run", first, dtype=pl.String),
        pl.Series("days_open", days, dtype=pl.Int32), pl.lit(due, dtype=pl.Date).alias("due_date"),
    ).with_columns(pl.when(pl.col("first_seen_run") == meta.run_id).then(pl.lit("new")).otherwise(pl.lit("open"))
                   .alias("status"))
    return findings, cases.select(cases_db.CASE_COLUMNS)


def stage_store(con: duckdb.DuckDBPyConnection, run_id: str, run_version: int, cfg: dict, cfg_version: str,
                findings: pl.DataFrame, cases: pl.DataFrame, checks: list[dict], status: str) -> None:
    """Findings, cases, data-quality results and the verification row: one transaction."""
    with transaction(con):
        store_verification(con, run_id, run_version, cfg, cfg_version, findings, checks, status)
        cases_db.store_cases(con, cases)


def cases_as_reported(con: duckdb.DuckDBPyConnection, run_id: str, run_version: int,
                      findings: pl.DataFrame) -> pl.DataFrame:
    """The run's cases as reports show them (one row per case): those stored with its findings'
    verification, status and severity after the reviewers' decisions in force."""
    if findings.height == 0 or "case_id" not in findings.columns:
        return pl.DataFrame(schema=dict(zip(cases_db.CASE_COLUMNS, [pl.String] * len(cases_db.CASE_COLUMNS))))
    stored = cases_db.run_cases(con, run_id, run_version, findings["config_version"][0])
    return with_decisions(stored, findings, cases_db.case_decisions(con, run_id), cases_db.DECISION_STATUS)


def stage_write_reports(out: Path, inp: DetectionInput, findings: pl.DataFrame, checks: list[dict],
                  load_outcome: str, blocked: bool, con: duckdb.DuckDBPyConnection | None = None,
                  cfg: dict | None = None, cases: pl.DataFrame | None = None) -> Path:
    """exceptions.csv, cases.csv and the run summary into the run's report folder; with the
    warehouse connection also the run's Data Docs and the Finance data-quality report (finance_dq.*)."""
    make_private_dir(out)
    report.write_exceptions(out, inp.meta.run_id, findings)
    report.write_cases(out, inp.meta.run_id, None if blocked else cases)
    checkpoint("reports")
    meta = {"run_id": inp.meta.run_id, "run_type": inp.meta.run_type, "period": inp.meta.period,
            "payroll_area": inp.meta.payroll_area, "extracted_at": inp.history.extracted_at}
    failed = [c for c in checks if not c["success"]]  # the summary lists failed checks only
    text = report.summary_markdown(meta, findings, failed, load_outcome, cases)
    if con is not None:
        dq.publish(out, con, inp, checks, blocked, cfg or {}, revalidate=lambda: stage_validate(con, inp, cfg or {}))
        text += (f"\nData quality: {len(checks) - len(failed)} of {len(checks)} checks passed; "
                 "see finance_dq.html (Data Docs in data_docs/index.html).\n")
    if blocked:
        failed = quality.critical_failures(checks)
        text = ("# NOT VERIFIED — data quality\n\nDetection was stopped because the extract cannot be trusted:\n\n"
                + "".join(f"- {c['detail']}\n" for c in failed) + "\n" + text)
        (out / "data_quality.md").write_text(text, encoding="utf-8")
    (out / "summary.md").write_text(text, encoding="utf-8")
    return out


class MailDeferred(Exception):
    """An SMTP send failed on an attempt that is not the last: SEND_MAIL's retry policy
    tries again (only what was not delivered is sent again)."""


def stage_send_mail(con, out: Path, inp: DetectionInput, findings: pl.DataFrame, checks: list[dict],
                    status: str, paths: Paths) -> DeliveryReport:
    """Reports upstream: one package per recipient (routing.toml) built in `<out>/recipients/`,
    written to the outbox, then mailed when PAYWATCH_SMTP_* is set — one SMTP attempt per
    call. A failed send raises MailDeferred while the stage's retry policy has attempts left;
    after the last one it is recorded (report_deliveries, outbox/<run>/DELIVERY_FAILED.txt)
    and returned, never raised."""
    now = stages.attempt()
    sent = deliver_run_reports(con, inp.meta.run_id, findings, status, checks, out / "recipients", paths,
                               attempt=now.number, final=now.final)
    if sent.deferred:
        raise MailDeferred(f"run {inp.meta.run_id}: attempt {now.number}: "
                           + "; ".join(sorted({o.error or "not sent" for o in sent.deferred})))
    return sent


# ------------------------------------------------------------------------------ the declared stages

# transient trouble only (a folder still being written, I/O): a broken extract stays broken
READ = Stage("read", stage_read, ("folder",), ("extract",),
             retry=Retry((OSError, TimeoutError, NotReady), retries=3, delay=10.0,
                         delay_env="PAYWATCH_RETRY_DELAY_SECONDS"))
LOAD = Stage("load", stage_load, ("warehouse", "extract", "paths"), ("run_id", "run_version", "load_outcome"))
PREPARE = Stage("prepare", detection_input, ("warehouse", "run_id"), ("detection_input",))
VALIDATE = Stage("validate", stage_validate, ("warehouse", "detection_input", "config"), ("checks", "status"))
DETECT = Stage("detect", stage_detect, ("detection_input", "config"), ("raw_findings",),
               per_partition=detect_partitioned)
TRIAGE = Stage("triage", stage_triage, ("warehouse", "detection_input", "raw_findings", "run_version",
                                        "config_version"), ("findings",))
GROUP_CASES = Stage("group_cases", stage_group_cases, ("warehouse", "detection_input", "findings", "run_version",
                                                     "config_version", "config"), ("findings", "cases"))
STORE = Stage("store", stage_store, ("warehouse", "run_id", "run_version", "config", "config_version",
                                     "findings", "cases", "checks", "status"), ("stored",))
WRITE_REPORTS = Stage("write_reports", stage_write_reports,
                      ("report_folder", "detection_input", "findings", "checks", "load_outcome", "status",
                       "warehouse", "config", "cases"), ("reports",))
# the stage that meets flaky mail servers: PAYWATCH_SMTP_RETRIES (3) more attempts, waiting
# PAYWATCH_SMTP_BACKOFF (2 s), doubled before each further one
SEND_MAIL = Stage("send_mail", stage_send_mail,
                  ("warehouse", "report_folder", "detection_input", "findings", "checks", "status", "paths"),
                  ("delivery",),
                  retry=Retry((MailDeferred,), retries=3, delay=2.0, retries_env="PAYWATCH_SMTP_RETRIES",
                              delay_env="PAYWATCH_SMTP_BACKOFF", backoff=True))

STAGES = (READ, LOAD, PREPARE, VALIDATE, DETECT, TRIAGE, GROUP_CASES, STORE, WRITE_REPORTS, SEND_MAIL)
# what a verification starts from (everything else is some stage's output)
RUN_INPUTS = ("folder", "warehouse", "paths", "config", "config_version", "report_folder")


# ------------------------------------------------------------------------------ driver

_WARM_UP: threading.Thread | None = None


def warm_up() -> threading.Thread:
    """Import, in a background thread, what a verify needs later but read, load and prepare
    do not: Great Expectations (validate, ~2 s) and scikit-learn (detect: the isolation
    forest). A fresh `paywatch verify` starts it first, so the imports run while the main
    thread reads and loads the extract (mostly native code that releases the GIL). Nothing
    waits for it: whoever needs a module imports it as usual (the import lock makes them
    wait for the thread, never import twice). Once per process; failures are ignored (the
    stage that needs the module meets the error itself). Then freezes the collector's view
    of what is alive (`gc.freeze`): the modules stay, so no full collection walks them."""
    global _WARM_UP
    if _WARM_UP is None:
        def run() -> None:
            import sys  # noqa: PLC0415

            interval = sys.getswitchinterval()
            # the main thread, back from native code, waits for the GIL up to one interval
            sys.setswitchinterval(min(interval, 0.0005))
            try:
                import pyarrow  # noqa: F401, PLC0415 - both sides need it: imported once, first
                from paywatch.dq import runner  # noqa: PLC0415

                runner._quiet_import()
                import sklearn.ensemble  # noqa: F401, PLC0415
            except Exception:  # noqa: BLE001 - a warm-up only
                pass
            finally:
                sys.setswitchinterval(interval)
            # the imported modules' ~300,000 objects live as long as the process: out of the
            # collector's full passes (0.4 s of a 10,000-staff verify went to walking them)
            gc.freeze()

        _WARM_UP = threading.Thread(target=run, name="paywatch-warm-up", daemon=True)
        _WARM_UP.start()
    return _WARM_UP

def verify_run(folder: Path, db: Path | None = None, out: Path | None = None,
               wait_seconds: float = 600.0, runner=stages.run) -> VerifyResult:
    """Process one run folder end to end (docs/cli-contract.md `paywatch verify`), walking STAGES
    in order through `runner(stage, *args)`."""
    wh = Warehouse.at(db)
    paths = wh.paths
    try:
        extract = runner(READ, Path(folder))
    except ExtractError as e:
        with wh.writer(wait_seconds) as con:
            quarantine(Path(folder), e, paths.quarantine, con=con)
        return VerifyResult(2, e.one_line())
    with wh.writer(wait_seconds) as con:
        cfg = load_settings(paths.config)
        run_id = extract.manifest.run_id
        try:
            # one transaction from load to stored findings: a verify killed anywhere
            # leaves the warehouse exactly as before, or (once committed) as after
            with transaction(con):
                loaded = runner(LOAD, con, extract, paths)
                extract = None  # its frames are in the warehouse now: free them for detection
                processed = process_loaded(con, loaded.run_id, loaded.run_version, cfg, runner)
        except ExtractError as e:
            quarantine(Path(folder), e, paths.quarantine, con=con, run_id=run_id)
            return VerifyResult(2, e.one_line())
        return _verify_loaded(con, loaded, processed, cfg, paths, out, runner)


def process_loaded(con, run_id: str, version: int, cfg: dict,
                   runner=stages.run) -> tuple[str, pl.DataFrame, list[dict], DetectionInput]:
    """Validate, detect, triage and store a loaded run — or return what an identical earlier
    verification stored (a repeated verify changes nothing but the delivery log)."""
    cfg = dq.with_suites_version(cfg, con)  # editing a suite file is a new configuration
    cfg_version = config_version(cfg)
    inp = runner(PREPARE, con, run_id)
    stored = stored_verification(con, run_id, version, cfg_version)
    if stored is not None:
        status, findings, checks = stored
        return status, findings, checks, inp
    checks = runner(VALIDATE, con, inp, cfg)
    if quality.critical_failures(checks):
        status, raw = "dq_blocked", empty_findings()
    else:
        status, raw = "verified", runner(DETECT, inp, cfg)
    checkpoint("detection")
    findings = runner(TRIAGE, con, inp, raw, version, cfg_version)
    findings, cases = runner(GROUP_CASES, con, inp, findings, version, cfg_version, cfg)
    runner(STORE, con, run_id, version, cfg, cfg_version, findings, cases, checks, status)
    return status, findings, checks, inp


# what a delivery did, in words (the load outcomes of paywatch.warehouse.load)
OUTCOME_WORDS = {"loaded": "verified", "noop": "already verified: nothing changed",
                 "replaced": "verified, replacing the earlier delivery of this run"}


def _verify_loaded(con, loaded: LoadResult, processed, cfg: dict, paths: Paths, out: Path | None,
                   runner=stages.run) -> VerifyResult:
    """Reports of a loaded and processed run, after the commit (they can always be written
    again from the warehouse: a verify killed while writing them is completed by the next)."""
    run_id = loaded.run_id
    status, findings, checks, inp = processed
    out_dir = Path(out) if out else paths.reports / run_id
    blocked = status == "dq_blocked"
    findings = apply_decisions(con, run_id, findings)  # reviewers' decisions since detection
    cases = cases_as_reported(con, run_id, loaded.run_version, findings)
    runner(WRITE_REPORTS, out_dir, inp, findings, checks, loaded.outcome, blocked, con=con, cfg=cfg, cases=cases)
    sent = runner(SEND_MAIL, con, out_dir, inp, findings, checks, status, paths)
    undelivered = f" {sent.summary()}" if sent.failures else ""
    staff = report.staff_outcomes(findings)
    held = staff.filter(pl.col("outcome") == "hold").height
    review = staff.filter(pl.col("outcome") == "review").height
    if blocked:
        msg = (f"{run_id}: NOT VERIFIED — data quality; detection stopped "
               f"({'; '.join(c['name'] for c in quality.critical_failures(checks))}). Report: {out_dir}{undelivered}")
        return VerifyResult(3, msg, run_id, out_dir, findings, loaded.outcome, checks, sent)
    msg = (f"{run_id}: {OUTCOME_WORDS.get(loaded.outcome, loaded.outcome)}; {findings.height} exceptions in "
           f"{cases.height} cases, {held} staff on hold, "
           f"{review} to review. Reports: {out_dir}{undelivered}")
    return VerifyResult(0, msg, run_id, out_dir, findings, loaded.outcome, checks, sent, cases)

