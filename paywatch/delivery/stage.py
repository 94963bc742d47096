"""The 'reports upstream' step of a verified run: build the packages, write them to the
outbox, mail them when SMTP is configured (paywatch.delivery.smtp). One SMTP attempt per
call: the send_mail stage's retry policy (paywatch.pipeline) tries again."""

from __future__ import annotations

import logging
import os
from datetime import date
from pathlib import Path

import polars as pl

from paywatch.cases.due import due_date
from paywatch.delivery.digest import digest_packages
from paywatch.delivery.outbox import DeliveryOutcome, DeliveryReport, deliver, record_outcomes, write_failure_note
from paywatch.delivery.package import build_packages
from paywatch.delivery.smtp import SmtpConfigError, smtp_settings_from_env
from paywatch.delivery.text import dq_lines, dq_status_text, safe_name
from paywatch.paths import Paths, private_dir
from paywatch.routing import RoutingError, load_routing
from paywatch.settings import load_settings
from paywatch.warehouse.db import make_private_dir
from paywatch.warehouse.queries import run_info, run_order

log = logging.getLogger(__name__)


def deliver_run_reports(con, run_id: str, findings: pl.DataFrame, status: str, checks: list[dict], out_dir: Path,
                        paths: Paths, env: dict | None = None, attempt: int = 1, final: bool = True) -> DeliveryReport:
    """The whole 'reports upstream' step of a verified run, attempt `attempt` of the send_mail
    stage's policy; never raises (a broken routing file or mail server is recorded and
    surfaced, the run is kept)."""
    env = os.environ if env is None else env
    try:
        routing = load_routing(paths.home, env)
        blocked = status == "dq_blocked"
        quiet: list = []
        dq_status = dq_status_text(status, checks)
        packages = build_packages(con, run_id, findings, dq_status, Path(out_dir),
                                  routing=routing, dq_notes=dq_lines(checks, blocked), blocked=blocked,
                                  due=_calendar_due(con, run_id, paths), quiet=quiet)
        if routing.mail_empty == "digest":
            packages += digest_packages(con, run_id, quiet, paths.outbox, Path(out_dir), routing, dq_status)
    except Exception as e:  # noqa: BLE001 — reports must not lose the run
        reason = str(e) if isinstance(e, RoutingError) else f"{type(e).__name__} while building the reports"
        return _not_delivered(run_id, paths, reason, con)
    try:
        smtp, smtp_error = smtp_settings_from_env(env), None
    except SmtpConfigError as e:
        smtp, smtp_error = None, f"SMTP settings unusable: {e}"
    try:
        return deliver(packages, smtp, paths.outbox, 0, con=con, smtp_error=smtp_error, attempt=attempt, final=final)
    except Exception as e:  # noqa: BLE001 — e.g. the outbox folder cannot be created
        return _not_delivered(run_id, paths, f"{type(e).__name__} while delivering: {getattr(e, 'strerror', '') or ''}",
                              con)


def _calendar_due(con, run_id: str, paths: Paths) -> date | None:
    """The due date of the run from the payroll calendar (when it has no case to carry one)."""
    try:
        info = run_info(con, run_id)
        runs = run_order(con, info["payroll_area"])
        mine = runs.filter(pl.col("run_id") == run_id)["seq"]
        earlier = (runs.filter((pl.col("period") == info["period"]) & (pl.col("seq") < mine[0]))["run_type"].to_list()
                   if mine.len() else [])
        return due_date(info["period"], info["run_type"], load_settings(paths.config)["calendar"], earlier)
    except Exception:  # noqa: BLE001 — a mail without a due date beats no mail
        return None


def _not_delivered(run_id: str, paths: Paths, reason: str, con=None) -> DeliveryReport:
    """Nothing of the run could be delivered: say so (log, warehouse, report, note if possible)."""
    log.error("run %s: reports not delivered: %s", run_id, reason)
    report = DeliveryReport(run_id, Path(paths.outbox))
    report.outcomes.append(DeliveryOutcome("all", "outbox", "failed", 1, "", 0, reason.strip(": ")))
    if con is not None:
        try:
            record_outcomes(con, run_id, report.outcomes)
        except Exception as e:  # noqa: BLE001 — the run itself must never be lost to this
            log.error("run %s: delivery failure not recorded: %s", run_id, type(e).__name__)
    try:
        write_failure_note(report, private_dir(make_private_dir(paths.outbox) / safe_name(run_id)))
    except OSError:
        pass
    return report