"""The outbox and the delivery of packages: every package is written to
`outbox/<run_id>/<recipient>/` (message.eml, the workbook, body.html, package.json; files
0600, folders 0700) *before* any mail is tried, then sent by SMTP, retrying with exponential
backoff. A final failure is returned in the report and written to
`outbox/<run_id>/DELIVERY_FAILED.txt` (reason, no personal data); nothing here raises for a
delivery problem, so the run itself is never lost.

Idempotency (docs/cli-contract.md: a repeated verify changes nothing in the warehouse but its
delivery log): a package already written to the outbox / already sent with the same content
hash (`report_deliveries`) is not delivered again and adds no row (an outbox copy that went
missing is silently written again); a changed package or an earlier failed send is delivered
and logged.

`deliver` writes and sends in one go; `send_outbox` mails what is already in a run's outbox
folder and not yet logged as sent (callable on its own, e.g. as a retried stage).

Logs name runs, recipient keys and counts — never staff names, IBANs or amounts.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from paywatch.paths import DIR_MODE, private_dir, write_private
from paywatch.delivery.mail import DEFAULT_SENDER
from paywatch.delivery.package import FORMAT_VERSION, Package
from paywatch.delivery.smtp import SmtpSettings, send_all
from paywatch.delivery.text import safe_name
from paywatch.warehouse.db import make_private_dir, utc_now
from paywatch.warehouse.deliveries import delivered_before, record_deliveries

log = logging.getLogger(__name__)

FAILED_NOTE = "DELIVERY_FAILED.txt"


@dataclass
class DeliveryOutcome:
    recipient: str
    channel: str  # 'outbox' | 'smtp'
    status: str  # 'written' | 'sent' | 'failed'
    attempts: int
    content_sha256: str
    n_exceptions: int
    error: str | None = None
    at: datetime = field(default_factory=utc_now)


@dataclass
class DeliveryReport:
    run_id: str
    outbox: Path
    outcomes: list[DeliveryOutcome] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (recipient, channel) already delivered
    failure_note: Path | None = None
    deferred: list[DeliveryOutcome] = field(default_factory=list)  # failed sends a later attempt retries

    @property
    def failures(self) -> list[DeliveryOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One line for the verify message (no personal data)."""
        n = {k: sum(1 for o in self.outcomes if o.status == k) for k in ("written", "sent", "failed")}
        text = (f"reports: {n['written']} written to the outbox, {n['sent']} mailed"
                + (f", {len(self.skipped)} already delivered" if self.skipped else ""))
        if self.failures:
            who = ", ".join(sorted({f"{o.recipient} ({o.channel})" for o in self.failures}))
            text += f"; DELIVERY FAILED for {who} — see {self.failure_note or self.outbox}"
        return text


def record_outcomes(con, run_id: str, outcomes: list[DeliveryOutcome]) -> None:
    """Append the outcomes to the warehouse's delivery log (report_deliveries)."""
    record_deliveries(con, [(run_id, o.recipient, o.channel, o.status, o.attempts, o.error, o.content_sha256,
                             o.n_exceptions, o.at) for o in outcomes])


def _marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _marker_sha(folder: Path) -> str | None:
    marker = _marker(folder)
    return marker.get("content_sha256") if marker else None


def write_to_outbox(pkg: Package, folder: Path, msg: EmailMessage) -> Path:
    """The package as files: message.eml (exactly what is mailed), the workbook, body.html,
    and package.json last (its presence says the package is complete)."""
    private_dir(folder)
    if pkg.workbook_bytes:  # a digest has no workbook
        write_private(folder / pkg.attachment_name, pkg.workbook_bytes)
    write_private(folder / "body.html", pkg.html.encode("utf-8"))
    write_private(folder / "message.eml", msg.as_bytes())
    marker = {"run_id": pkg.run_id, "recipient": pkg.recipient.key, "content_sha256": pkg.content_sha256,
              "subject": pkg.subject, "counts": pkg.counts, "format": FORMAT_VERSION}
    write_private(folder / "package.json", (json.dumps(marker, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    return folder


def deliver(packages: list[Package], smtp: SmtpSettings | None, outbox: Path, retries: int = 3,
            backoff: float = 2.0, *, con=None, smtp_error: str | None = None,
            sleep: Callable[[float], None] = time.sleep, sender: str | None = None, attempt: int = 1,
            final: bool = True) -> DeliveryReport:
    """Write every package to `outbox/<run_id>/<recipient>/`, then send it by SMTP (when
    `smtp` is given) with up to `retries` retries, waiting `backoff`, 2×, 4×… seconds.
    With `con`, packages already delivered with the same content are skipped and the
    outcomes are appended to `report_deliveries`. `sender` (default: the SMTP sender) is the
    From of the messages written. Never raises for a delivery problem.
    `attempt`/`final`: this call is attempt n of the caller's retry policy; unless `final`,
    failed sends are not recorded but returned in `deferred` for the next attempt."""
    run_id = packages[0].run_id if packages else ""
    outbox = Path(outbox)
    report = DeliveryReport(run_id, outbox)
    if not packages:
        return report
    run_dir = private_dir(make_private_dir(outbox) / safe_name(run_id))
    os.chmod(outbox, DIR_MODE)
    done = delivered_before(con, run_id) if con is not None else set()
    sender = sender or (smtp.sender if smtp else DEFAULT_SENDER)
    pending: dict[str, tuple[EmailMessage | bytes, list[str], str, int]] = {}
    for pkg in packages:
        key, sha, folder = pkg.recipient.key, pkg.content_sha256, run_dir / pkg.safe_name
        present = _marker_sha(folder) == sha
        # logged as written before: an outbox copy that went missing (outbox cleaned, warehouse
        # moved) is written again without a new log row — the log already says so
        logged = present if con is None else (key, "outbox", sha) in done
        want_mail = (smtp is not None or smtp_error is not None) and (key, "smtp", sha) not in done
        if logged:
            report.skipped.append((key, "outbox"))
        if not want_mail and (smtp is not None or smtp_error is not None):
            report.skipped.append((key, "smtp"))
        if present and logged and not want_mail:
            continue
        msg = pkg.message(sender)
        try:
            write_to_outbox(pkg, folder, msg)  # first: nothing depends on mail alone
            if not logged:
                report.outcomes.append(DeliveryOutcome(key, "outbox", "written", 1, sha, pkg.counts["exceptions"]))
        except OSError as e:
            log.error("run %s: outbox write failed for %s: %s", run_id, key, type(e).__name__)
            report.outcomes.append(DeliveryOutcome(key, "outbox", "failed", 1, sha, pkg.counts["exceptions"],
                                                   f"{type(e).__name__}: {e.strerror or ''}".strip()))
        if want_mail:
            if smtp_error is not None:
                report.outcomes.append(DeliveryOutcome(key, "smtp", "failed", 0, sha, pkg.counts["exceptions"],
                                                       smtp_error))
            else:
                pending[key] = (msg, list(pkg.recipient.to), sha, pkg.counts["exceptions"])
    return _send_and_log(report, pending, smtp, retries, backoff, sleep, run_dir, con, attempt, final)


def send_outbox(run_id: str, smtp: SmtpSettings, outbox: Path, retries: int = 3, backoff: float = 2.0, *,
                con=None, sleep: Callable[[float], None] = time.sleep) -> DeliveryReport:
    """Mail the complete packages already in `outbox/<run_id>/` (their message.eml, as
    written) that the delivery log (`con`) does not record as sent with the same content;
    without `con` every package is sent. Calling it again sends only what is still unsent.
    Outcomes, DELIVERY_FAILED.txt and the log as in `deliver`; never raises for a delivery
    problem."""
    outbox = Path(outbox)
    report = DeliveryReport(run_id, outbox)
    run_dir = outbox / safe_name(run_id)
    done = delivered_before(con, run_id) if con is not None else set()
    pending: dict[str, tuple[EmailMessage | bytes, list[str], str, int]] = {}
    for folder in sorted(p for p in run_dir.iterdir() if p.is_dir()) if run_dir.is_dir() else []:
        marker = _marker(folder)
        if marker is None:  # incomplete package (package.json is written last)
            continue
        key, sha = marker.get("recipient"), marker.get("content_sha256")
        if not key or not sha:  # not a package written by `write_to_outbox`
            continue
        if (key, "smtp", sha) in done:
            report.skipped.append((key, "smtp"))
            continue
        n = int((marker.get("counts") or {}).get("exceptions", 0))
        try:
            raw = (folder / "message.eml").read_bytes()
        except OSError as e:
            report.outcomes.append(DeliveryOutcome(key, "smtp", "failed", 0, sha, n, f"message.eml: {type(e).__name__}"))
            continue
        to = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)["To"].addresses
        pending[key] = (raw, [a.addr_spec for a in to], sha, n)
    if not pending and not report.skipped:
        return report
    return _send_and_log(report, pending, smtp, retries, backoff, sleep, run_dir, con)


def _send_and_log(report: DeliveryReport, pending: dict[str, tuple[EmailMessage | bytes, list[str], str, int]],
                  smtp: SmtpSettings | None, retries: int, backoff: float, sleep, run_dir: Path, con,
                  attempt: int = 1, final: bool = True) -> DeliveryReport:
    """Send what is pending, then the failure note, the delivery log and the log lines."""
    run_id = report.run_id
    if pending:
        sent = send_all({k: (msg, to) for k, (msg, to, _, _) in pending.items()}, smtp, retries, backoff, sleep,
                        run_id)
        # attempts count the caller's earlier attempts too
        outcomes = [DeliveryOutcome(key, "smtp", status, attempts + attempt - 1, pending[key][2], pending[key][3],
                                    note, at) for key, status, attempts, note, at in sent]
        report.deferred = [] if final else [o for o in outcomes if o.status == "failed"]
        report.outcomes += [o for o in outcomes if final or o.status != "failed"]
    try:
        if not report.deferred:  # a deferred send is not a failure yet
            write_failure_note(report, run_dir)
    except OSError as e:
        log.error("run %s: %s not written: %s", run_id, FAILED_NOTE, type(e).__name__)
    if con is not None:
        try:
            record_outcomes(con, run_id, report.outcomes)
        except Exception as e:  # noqa: BLE001 — the log entry is lost, not the delivery
            log.error("run %s: delivery log not recorded: %s", run_id, type(e).__name__)
    for o in report.outcomes:
        log.info("run %s: %s via %s: %s after %d attempt(s)%s", run_id, o.recipient, o.channel, o.status,
                 o.attempts, f" ({o.error})" if o.error else "")
    return report


def write_failure_note(report: DeliveryReport, run_dir: Path) -> None:
    """DELIVERY_FAILED.txt while something of the run is undelivered; removed once a later
    delivery of the run has succeeded."""
    note = run_dir / FAILED_NOTE
    if not report.failures:
        note.unlink(missing_ok=True)
        return
    lines = [f"Paywatch could not deliver reports of run {report.run_id}.", "",
             "The packages below are complete in this outbox folder; send them by hand or verify the run "
             "again once the mail server is back (only what was not delivered is sent again).", ""]
    for o in report.failures:
        lines.append(f"- recipient {o.recipient}, channel {o.channel}, {o.attempts} attempt(s), at {o.at:%Y-%m-%d %H:%M:%S} "
                     f"UTC: {o.error or 'failed'} — package: {run_dir / safe_name(o.recipient)}")
    write_private(note, ("\n".join(lines) + "\n").encode("utf-8"))
    report.failure_note = note
