"""The e-mail of a package: the subject and first line say what the run is and what to do by
when; the body lists the recipient's cases in three parts (new since the last run, still
open, resolved since the last run), each ranked by amount at stake. HTML and plain text are
rendered from Jinja2 templates (templates/, HTML autoescaped); every text is IBAN-masked
first. Staff appear by PERNR only: names are in the attached workbook."""

from __future__ import annotations

from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import polars as pl
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from detectors.money import money
from paywatch.cases.due import next_regular
from paywatch.delivery.cases import PART_TITLES
from paywatch.delivery.text import safe_name
from paywatch.delivery.workbook import SEVERITY_COLOURS
from paywatch.privacy import mask_ibans_in
from paywatch.routing import Recipient

TOP_N = 25  # rows per part in the mail; the workbook has them all
DEFAULT_SENDER = "paywatch@localhost"
XLSX_MIME = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
HEADERS = ("PERNR", "Cause", "Severity", "Status", "Amount at stake", "Due", "Assignee / decision", "Case")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")

_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), undefined=StrictUndefined,
                   autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
                   keep_trailing_newline=True, trim_blocks=False)


def build_message(pkg, sender: str = DEFAULT_SENDER) -> EmailMessage:
    """The message of a package (paywatch.delivery.package.Package): exactly what is mailed
    and kept in the outbox."""
    msg = EmailMessage()
    msg["Subject"] = pkg.subject
    msg["From"] = sender
    msg["To"] = ", ".join(pkg.recipient.to)
    msg["Date"] = format_datetime(datetime.now().astimezone())
    domain = sender.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid(idstring=f"{safe_name(pkg.run_id)}.{pkg.safe_name}", domain=domain)
    msg["X-Paywatch-Run"] = pkg.run_id
    msg["X-Paywatch-Recipient"] = pkg.recipient.key
    msg["X-Paywatch-Content"] = pkg.content_sha256
    msg.set_content(pkg.text)
    msg.add_alternative(pkg.html, subtype="html")
    if pkg.workbook_bytes:
        msg.add_attachment(pkg.workbook_bytes, maintype=XLSX_MIME[0], subtype=XLSX_MIME[1],
                           filename=pkg.attachment_name)
    return msg


def period_text(period: str) -> str:
    """'202503' -> 'March 2025'."""
    try:
        return f"{MONTHS[int(period[4:6]) - 1]} {period[:4]}"
    except (ValueError, IndexError):
        return period


def headline(recipient: Recipient, meta: dict, counts: dict) -> tuple[str, str]:
    """(subject, first line): what the run is and what to do by when."""
    run, rt, month = meta["run_id"], meta["run_type"], period_text(meta["period"])
    due: date | None = meta.get("due_date")
    by = f" by {due.isoformat()}" if due else ""
    if meta.get("blocked"):
        n = len(meta.get("dq_notes") or [])
        return (f"NOT CHECKED: {run} ({rt} {month}) — the extract failed the data-quality checks; "
                f"ask for a corrected extract{by}",
                f"Run {run} ({rt}, {month}) was NOT checked: the extract failed {n or 'its'} critical data-quality "
                f"check{'s' if n != 1 else ''}, so Paywatch did not look for exceptions. Ask Umoja for a corrected "
                f"extract{by}.")
    nxt_period, nxt = next_regular(meta["period"], rt)
    nxt_text = nxt if nxt_period == meta["period"] else f"{nxt} of {period_text(nxt_period)}"
    act = counts.get("act", 0)
    if rt == "FINAL":
        held = counts.get("held", 0)
        return (f"{run} FINAL {month}: {held} staff held — excluded from this month's pay; "
                f"{act} case(s) to fix{by} — {recipient.name}",
                f"FINAL run {run}: {held} staff member(s) with an open hold are excluded from this month's pay. "
                f"Fix the source of your {act} case(s) in Umoja{by}, before {nxt_text}.")
    if act:
        return (f"{run}: {act} case(s) to fix{by} ({counts.get('act_new', 0)} new) — {recipient.name}",
                f"{rt} run {run} ({month}): {act} case(s) for you to act on ({counts.get('act_new', 0)} new since "
                f"the last run). Fix the source in Umoja{by} so that {nxt_text} pays correctly.")
    return (f"{run}: nothing for you to act on — {recipient.name}",
            f"{rt} run {run} ({month}) was checked: nothing for you to act on.")


def _amount(cents, currency) -> str:
    return "" if cents is None else money(cents, currency or "")


def _rows(sub: pl.DataFrame) -> list[dict]:
    out = []
    for r in sub.iter_rows(named=True):
        note = " · ".join(x for x in (f"assigned to {r['assignee']}" if r.get("assignee") else "",
                                      r.get("latest_decision") or "") if x)
        due = r.get("due_date")
        out.append({k: mask_ibans_in(str(v)) if isinstance(v, str) else v for k, v in {
            "pernr": r["pernr"] or "", "cause": r["cause_title"] or r["root_cause"] or "",
            "role": r["role"] if r.get("role") in ("in copy", "for information") else "",
            "severity": r["severity"] or "", "colour": SEVERITY_COLOURS.get(r["severity"], "#FFFFFF"),
            "status": r["status"] or "", "amount": _amount(r["amount_at_stake_cents"], r["currency"]),
            "due": due.isoformat() if isinstance(due, date) and r["part"] != "resolved" else "",
            "note": note, "case_id": r["case_id"]}.items()})
    return out


def rank_by_stake(cases: pl.DataFrame) -> pl.DataFrame:
    """Largest amount at stake first (none last), then the cases to act on, then PERNR."""
    if cases.height == 0:
        return cases
    return cases.sort(["amount_at_stake_cents", "act", "pernr", "case_id"], descending=[True, True, False, False],
                      nulls_last=True)


def mail_context(recipient: Recipient, meta: dict, cases: pl.DataFrame, counts: dict, top_n: int = TOP_N) -> dict:
    """Everything the templates show (texts IBAN-masked; HTML escaping is the template's)."""
    subject, first = headline(recipient, meta, counts)
    parts = []
    for p, title in PART_TITLES.items():
        sub = rank_by_stake(cases.filter(pl.col("part") == p)) if cases.height else cases
        parts.append({"title": title, "total": sub.height, "rows": _rows(sub.head(top_n)),
                      "more": max(sub.height - top_n, 0)})
    due = meta.get("due_date")
    return {"subject": mask_ibans_in(subject), "first_line": mask_ibans_in(first), "blocked": bool(meta.get("blocked")),
            "final": meta["run_type"] == "FINAL", "recipient_name": recipient.name, "scope": recipient.scope_text,
            "run_type": meta["run_type"], "period": meta["period"], "payroll_area": meta["payroll_area"],
            "dq_status": mask_ibans_in(meta["dq_status"]), "dq_lines": [mask_ibans_in(x) for x in meta.get("dq_notes") or []],
            "counts": counts, "due": due.isoformat() if due else "", "parts": [] if meta.get("blocked") else parts,
            "headers": HEADERS}


def html_body(ctx: dict) -> str:
    """The HTML body (autoescaped template)."""
    return _ENV.get_template("mail.html.j2").render(**ctx)


def text_body(ctx: dict) -> str:
    """The plain-text body."""
    return mask_ibans_in(_ENV.get_template("mail.txt.j2").render(**ctx))
