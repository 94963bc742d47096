"""Alerts that reach people: a late run, a rejected delivery, a run blocked by the data-quality
gate (exit 3) and a failed mail are mailed to the payroll unit's alert address (routing.toml
`[alerts]`, else the FINANCE unit) with the delivery machinery (paywatch.delivery: outbox
first, then SMTP when configured, the delivery log).

An alert is kept open in `<outbox>/alerts/<key>/` (alert.json, message.eml; private) and
mailed once: raising the same alert again (the watcher looks every few minutes) sends
nothing new. Closing it (a late run has arrived and was verified) mails a short "resolved"
note and moves the folder to `<outbox>/alerts/closed/`.

Alert texts name runs, folders, checksums and counts — never staff names, IBANs or amounts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from paywatch.delivery.smtp import SmtpConfigError, send_all, smtp_settings_from_env
from paywatch.delivery.text import safe_name
from paywatch.paths import Paths, private_dir, write_private
from paywatch.routing import Recipient, RoutingError, load_routing
from paywatch.warehouse.db import utc_now
from paywatch.warehouse.deliveries import record_deliveries

log = logging.getLogger(__name__)

KINDS = ("late", "rejected", "blocked", "mail-failed")
RECIPIENT_KEY = "alerts"  # the delivery log's recipient column (no addresses there)


@dataclass(frozen=True)
class Alert:
    kind: str  # one of KINDS
    key: str  # stable and file-safe: the same situation gives the same key
    subject: str
    text: str
    facts: dict = field(default_factory=dict)  # what closes it (area, period, run_type)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.subject}\n{self.text}".encode()).hexdigest()


def late_run(area: str, period: str, run_type: str) -> Alert:
    msg = (f"The {run_type} run of payroll area {area}, period {period}, has not arrived in the landing folder "
           "by its time in the payroll calendar. Paywatch keeps watching the landing folder and will verify it "
           "when it lands; this alert is then closed.")
    return Alert("late", f"late-{area}-{period}-{run_type}", f"Paywatch ALERT: {run_type} {area} {period} is late",
                 msg, {"payroll_area": area, "period": period, "run_type": run_type})


def rejected(folder: str, manifest_sha256: str | None, reason: str) -> Alert:
    tag = (manifest_sha256 or hashlib.sha256(folder.encode()).hexdigest())[:12]
    return Alert("rejected", f"rejected-{tag}", f"Paywatch ALERT: delivery {Path(folder).name} rejected",
                 f"The delivery in landing folder {Path(folder).name} (manifest sha256 {manifest_sha256 or 'none'}) "
                 f"was rejected and quarantined: {reason}\nAsk for a corrected delivery.")


def blocked(run_id: str, details: list[str]) -> Alert:
    return Alert("blocked", f"blocked-{run_id}", f"Paywatch ALERT: {run_id} not verified (data quality)",
                 f"Run {run_id} was loaded but NOT verified: a critical data-quality check failed.\n"
                 + "\n".join(f"- {d}" for d in details))


def mail_failed(run_id: str, summary: str) -> Alert:
    return Alert("mail-failed", f"mail-failed-{run_id}", f"Paywatch ALERT: reports of {run_id} not mailed",
                 f"The reports of run {run_id} could not all be mailed: {summary}\n"
                 "They are in the Paywatch outbox; `paywatch` sends them again on the next verify of the run.")


def alerts_dir(paths: Paths) -> Path:
    return paths.outbox / "alerts"


def _message(alert: Alert, to: Recipient, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = alert.subject
    msg["From"] = sender
    msg["To"] = ", ".join(to.to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="paywatch.local")
    msg.set_content(alert.text + "\n\n-- Paywatch (alert " + alert.key + ")\n")
    return msg


@dataclass
class AlertOutcome:
    alert: Alert
    folder: Path
    status: str  # 'sent' | 'written' (no SMTP) | 'failed' | 'already' (open and delivered before)
    error: str | None = None


def _send(alert: Alert, paths: Paths, env, wh, folder: Path) -> AlertOutcome:
    """Write the message next to the alert and mail it when SMTP is configured; log it."""
    try:
        routing = load_routing(paths.home, env)
    except RoutingError as e:
        return AlertOutcome(alert, folder, "failed", str(e))
    try:
        smtp, smtp_error = smtp_settings_from_env(env), None
    except SmtpConfigError as e:
        smtp, smtp_error = None, f"SMTP settings unusable: {e}"
    to = routing.alert_recipient
    msg = _message(alert, to, smtp.sender if smtp else "paywatch@localhost")
    write_private(folder / "message.eml", bytes(msg))
    rows = [(alert.key, RECIPIENT_KEY, "outbox", "written", 1, None, alert.sha256, 0, utc_now())]
    if smtp is None:
        out = AlertOutcome(alert, folder, "failed" if smtp_error else "written", smtp_error)
    else:
        retries = int(env.get("PAYWATCH_ALERT_RETRIES", "2"))
        ((_, status, attempts, note, at),) = send_all({alert.key: (msg, list(to.to))}, smtp, retries, 1.0,
                                                      time.sleep, alert.key)
        rows.append((alert.key, RECIPIENT_KEY, "smtp", status, attempts, note if status == "failed" else None,
                     alert.sha256, 0, at))
        out = AlertOutcome(alert, folder, status, note if status == "failed" else None)
    if wh is not None:
        try:
            with wh.writer(wait_seconds=600) as con:
                record_deliveries(con, rows)
        except Exception as e:  # noqa: BLE001 — the alert itself must still go out
            log.error("alert %s: not recorded in the delivery log (%s)", alert.key, type(e).__name__)
    return out


def raise_alert(alert: Alert, paths: Paths, wh=None, env: dict | None = None) -> AlertOutcome:
    """Keep `alert` open and mail it to the alert address, once. Never raises for a mail or
    routing problem: the outcome says what happened (logged)."""
    env = os.environ if env is None else env
    folder = alerts_dir(paths) / safe_name(alert.key)
    state_file = folder / "alert.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text(encoding="utf-8"))
        if state.get("status") in ("sent", "written") and state.get("sha256") == alert.sha256:
            log.info("alert %s still open (mailed %s)", alert.key, state.get("raised_at"))
            return AlertOutcome(alert, folder, "already")
    private_dir(private_dir(alerts_dir(paths)) / safe_name(alert.key))
    out = _send(alert, paths, env, wh, folder)
    write_private(state_file, json.dumps(asdict(alert) | {"sha256": alert.sha256, "status": out.status,
                                                          "error": out.error, "raised_at": utc_now().isoformat()},
                                         indent=2).encode())
    (log.error if out.status == "failed" else log.warning)(
        "ALERT %s: %s — %s", alert.key, alert.subject, "mailed" if out.status == "sent" else
        "kept in the outbox (no SMTP configured)" if out.status == "written" else f"NOT mailed: {out.error}")
    return out


def open_alerts(paths: Paths, kind: str | None = None) -> list[Alert]:
    """The alerts raised and not closed yet, oldest key first."""
    root = alerts_dir(paths)
    out = []
    for f in sorted(root.glob("*/alert.json")) if root.is_dir() else []:
        d = json.loads(f.read_text(encoding="utf-8"))
        a = Alert(d["kind"], d["key"], d["subject"], d["text"], d.get("facts") or {})
        if kind is None or a.kind == kind:
            out.append(a)
    return out


def close_alert(alert: Alert, paths: Paths, why: str, wh=None, env: dict | None = None) -> AlertOutcome:
    """Mail that `alert` is resolved and move it to `<outbox>/alerts/closed/`."""
    env = os.environ if env is None else env
    folder = alerts_dir(paths) / safe_name(alert.key)
    note = Alert(alert.kind, f"{alert.key}-closed", f"Paywatch: resolved — {alert.subject.removeprefix('Paywatch ALERT: ')}",
                 f"Resolved: {why}\n(was: {alert.subject})", alert.facts)
    closed = private_dir(private_dir(alerts_dir(paths) / "closed") / f"{safe_name(alert.key)}-{int(time.time())}")
    out = _send(note, paths, env, wh, closed)
    if folder.is_dir():
        for p in folder.iterdir():
            shutil.move(str(p), closed / f"raised-{p.name}")
        folder.rmdir()
    write_private(closed / "CLOSED.txt", f"{utc_now().isoformat()} {why}\n".encode())
    log.info("alert %s closed: %s", alert.key, why)
    return out
