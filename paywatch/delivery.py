"""Reports upstream: one package per recipient and run (Excel workbook + HTML e-mail), written
to the outbox first, then sent by SMTP when configured.

- `build_packages` — routes the run's exceptions (paywatch.routing) and builds, per
  recipient, an .xlsx (a cover sheet with the run, its data-quality status and counts; one
  sheet per category with a frozen header row, filters and formatted amounts) and an HTML
  body with the top items. Staff are identified by PERNR and name (PA0001 valid in the
  period); every text goes through `mask_ibans_in`; every text cell is written as a string
  and a text starting with = + - @ is prefixed with a quote, so nothing becomes a formula.
- `deliver` — writes each package to `outbox/<run_id>/<recipient>/` (message.eml, the
  workbook, body.html, package.json; files 0600, folders 0700) *before* any mail is tried,
  then sends the same message by SMTP, retrying with exponential backoff. A final failure
  is returned in the report and written to `outbox/<run_id>/DELIVERY_FAILED.txt` (reason,
  no personal data); it never raises, so the run itself is never lost.
- Idempotency (cli-contract: a repeated verify changes nothing in the warehouse but its
  delivery log): every package has a content hash (recipient, data-quality status and the
  rows as shown). A package already written to the outbox / already sent with the same hash
  (`report_deliveries`) is not delivered again and adds no row (an outbox copy that went
  missing is silently written again); a changed package (e.g. a reviewer's decision changed
  a row) or an earlier failed send is delivered and logged — the delivery log is the only
  thing a repeated verify may change.

SMTP settings come from the environment, never from the repository: PAYWATCH_SMTP_HOST
(enables mail), PAYWATCH_SMTP_PORT (25; 587 with STARTTLS), PAYWATCH_SMTP_USER,
PAYWATCH_SMTP_PASSWORD, PAYWATCH_SMTP_FROM, PAYWATCH_SMTP_STARTTLS (1/true/yes),
PAYWATCH_SMTP_SSL, PAYWATCH_SMTP_TIMEOUT; or PAYWATCH_SMTP_BLOCK = the name of a Prefect
`EmailServerCredentials` block (prefect-email, imported only then). Retries:
PAYWATCH_SMTP_RETRIES (3), PAYWATCH_SMTP_BACKOFF (2 s, doubled each retry). Without any of
these the outbox is the only channel (the embedded default).

Logs name runs, recipient keys and counts — never staff names, IBANs or amounts.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import io
import json
import logging
import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import polars as pl
import xlsxwriter

from detectors.base import FINDING_SCHEMA, SEVERITY_RANK, money
from paywatch.paths import Paths
from paywatch.privacy import mask_ibans_in
from paywatch.routing import Recipient, Routing, RoutingError, load_routing, route
from paywatch.warehouse import queries as q
from paywatch.warehouse.db import make_private_dir, owner_only_umask, transaction, utc_now

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"  # part of the content hash: a new layout is a new package
TOP_N = 25
FILE_MODE, DIR_MODE = 0o600, 0o700
XLSX_MIME = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
DEFAULT_SENDER = "paywatch@localhost"
FAILED_NOTE = "DELIVERY_FAILED.txt"
COVER_SHEET = "Summary"
# Columns of a category sheet: (header, frame column, kind, width)
SHEET_COLUMNS = (
    ("PERNR", "pernr", "text", 11), ("Name", "full_name", "text", 28), ("Entity", "entity", "text", 12),
    ("Severity", "severity", "text", 9), ("Owner", "owner", "text", 9), ("Wage type", "wage_type", "text", 10),
    ("Wage type text", "wage_type_text", "text", 26), ("For-period", "for_period", "text", 10),
    ("Amount", "amount_cents", "money", 14), ("Expected", "expected_cents", "money", 14),
    ("Currency", "currency", "text", 9), ("Explanation", "explanation", "text", 100),
    ("First seen in run", "first_seen_run", "text", 18), ("Finding ID", "finding_id", "text", 22),
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SHEET_BAD = re.compile(r"[\[\]:*?/\\']")
_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


class SmtpConfigError(ValueError):
    """SMTP settings present but unusable."""


# ------------------------------------------------------------------------------ text safety

def cell_text(value) -> str:
    """A text as it may appear in a report: IBANs masked, control characters removed, and
    never interpretable as a formula (OWASP CSV injection: a leading = + - @ gets a quote)."""
    s = _CONTROL_RE.sub("", mask_ibans_in("" if value is None else str(value)))
    if s.startswith(_FORMULA_START) or s.lstrip().startswith(_FORMULA_START[:4]):
        s = "'" + s
    return s[:32000]


def safe_name(text: str) -> str:
    """A file-name-safe form of a run id or recipient key."""
    return _SAFE_RE.sub("_", text).strip("._") or "x"


def _h(value) -> str:
    return html.escape(mask_ibans_in("" if value is None else str(value)))


# ------------------------------------------------------------------------------ data quality

def dq_status_text(status: str, checks: Iterable[dict]) -> str:
    """One line for the cover sheet and the mail: the run's data-quality status."""
    checks = list(checks or [])
    failed_crit = [c["name"] for c in checks if c.get("severity") == "critical" and not c.get("success")]
    warns = [c["name"] for c in checks if c.get("severity") != "critical" and not c.get("success")]
    if status == "dq_blocked" or failed_crit:
        return "NOT VERIFIED — critical data-quality failure: " + (", ".join(failed_crit) or "see report")
    if warns:
        return f"verified, with data-quality warnings: {', '.join(warns)}"
    return f"verified — all {len(checks)} data-quality checks passed" if checks else "verified"


def dq_details(checks: Iterable[dict]) -> list[str]:
    """The sentences of the failed checks (no personal data: checks name no one)."""
    return [f"{c['name']} ({c['severity']}): {c['detail']}" for c in (checks or []) if not c.get("success")]


# ------------------------------------------------------------------------------ packages

@dataclass
class Package:
    """What one recipient receives for one run."""

    run_id: str
    recipient: Recipient
    meta: dict
    subject: str
    html: str
    text: str
    workbook: Path
    html_path: Path
    counts: dict
    content_sha256: str
    workbook_bytes: bytes = field(repr=False, default=b"")

    @property
    def safe_name(self) -> str:
        return safe_name(self.recipient.key)

    @property
    def attachment_name(self) -> str:
        return f"paywatch_{safe_name(self.run_id)}_{self.safe_name}.xlsx"

    def message(self, sender: str = DEFAULT_SENDER) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = self.subject
        msg["From"] = sender
        msg["To"] = ", ".join(self.recipient.to)
        msg["Date"] = format_datetime(datetime.now().astimezone())
        domain = sender.rpartition("@")[2] or "localhost"
        msg["Message-ID"] = make_msgid(idstring=f"{safe_name(self.run_id)}.{self.safe_name}", domain=domain)
        msg["X-Paywatch-Run"] = self.run_id
        msg["X-Paywatch-Recipient"] = self.recipient.key
        msg["X-Paywatch-Content"] = self.content_sha256
        msg.set_content(self.text)
        msg.add_alternative(self.html, subtype="html")
        msg.add_attachment(self.workbook_bytes, maintype=XLSX_MIME[0], subtype=XLSX_MIME[1],
                           filename=self.attachment_name)
        return msg


def period_bounds(period: str) -> tuple[date, date]:
    y, m = int(period[:4]), int(period[4:6])
    return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1])


def staff_directory(con, run_id: str, period: str) -> pl.DataFrame:
    """PERNR -> name and entity from the run's PA0001: the record valid in the period (the
    latest one), else the staff member's latest record. Grain: one row per staff member."""
    a = q.master_data_as_of_run(con, run_id, "stg_assignments")
    if a.height == 0:
        return pl.DataFrame(schema={"pernr": pl.String, "full_name": pl.String, "entity": pl.String})
    start, end = period_bounds(period)
    a = a.with_columns(((pl.col("valid_from") <= end) & (pl.col("valid_to") >= start)).alias("_in"))
    return (a.sort(["pernr", "_in", "valid_from", "valid_to"], descending=[False, True, True, True])
            .unique("pernr", keep="first", maintain_order=True).select("pernr", "full_name", "entity"))


def _wage_types(con, run_id: str) -> pl.DataFrame:
    wt = q.reference_as_of_run(con, run_id, "stg_wage_types")
    return wt.select("wage_type", "wage_type_text", "wage_class").unique("wage_type", keep="first")


def enrich(con, run_id: str, period: str, findings: pl.DataFrame) -> pl.DataFrame:
    """Findings with the staff member's name and entity and the wage type's text, sorted by
    severity, PERNR, wage type and for-period."""
    f = findings
    for c, t in {**FINDING_SCHEMA, "finding_id": pl.String, "first_seen_run": pl.String}.items():
        if c not in f.columns:
            f = f.with_columns(pl.lit(None, dtype=t).alias(c))
    f = f.drop([c for c in ("full_name", "entity", "wage_type_text", "wage_class") if c in f.columns])
    f = (f.join(staff_directory(con, run_id, period), on="pernr", how="left")
         .join(_wage_types(con, run_id), on="wage_type", how="left"))
    f = f.with_columns(pl.col("severity").replace_strict(SEVERITY_RANK, default=9, return_dtype=pl.Int64).alias("_rank"))
    return f.sort(["_rank", "pernr", "category", "wage_type", "for_period"], nulls_last=True).drop("_rank")


def build_packages(con, run_id: str, findings: pl.DataFrame, dq_status: str, out_dir: Path, *,
                   routing: Routing | None = None, dq_notes: Iterable[str] = (), top_n: int = TOP_N) -> list[Package]:
    """One package per recipient (owners always, focal points when their entity has
    exceptions): the workbook and body.html in `out_dir/<recipient>/` (owner-only files)."""
    routing = routing or load_routing()
    info = q.run_info(con, run_id)
    meta = {"run_id": run_id, "period": info["period"], "run_type": info["run_type"],
            "payroll_area": info["payroll_area"], "extracted_at": info["extracted_at"],
            "dq_status": dq_status, "dq_notes": list(dq_notes)}
    rows = enrich(con, run_id, info["period"], findings)
    out_dir = Path(out_dir)
    _private_dir(out_dir)
    for old in out_dir.iterdir():  # packages of an earlier build (routing may have changed)
        if old.is_dir() and old.name.startswith(("owner-", "entity-")):
            for p in old.iterdir():
                p.unlink()
            old.rmdir()
    packages = []
    for recipient, frame in route(rows, routing).items():
        packages.append(_package(run_id, recipient, frame, meta, out_dir, top_n))
    log.info("run %s: %d report package(s) built (%s)", run_id, len(packages),
             ", ".join(f"{p.recipient.key}={p.counts['exceptions']}" for p in packages))
    return packages


def _counts(frame: pl.DataFrame) -> dict:
    c = {"exceptions": frame.height, "staff": frame["pernr"].drop_nulls().n_unique() if frame.height else 0}
    for s in SEVERITY_RANK:
        c[s] = frame.filter(pl.col("severity") == s).height
    c["redacted"] = int(frame["redacted"].sum()) if frame.height else 0
    return c


def _content_sha(recipient: Recipient, meta: dict, frame: pl.DataFrame) -> str:
    cols = [c for _, c, _, _ in SHEET_COLUMNS] + ["category", "redacted"]
    doc = {"format": FORMAT_VERSION, "run_id": meta["run_id"], "recipient": [recipient.key, recipient.name,
           list(recipient.to)], "dq": meta["dq_status"], "dq_notes": meta["dq_notes"],
           "rows": [[None if v is None else str(v) for v in r] for r in frame.select(cols).iter_rows()]}
    return hashlib.sha256(json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _package(run_id: str, recipient: Recipient, frame: pl.DataFrame, meta: dict, out_dir: Path, top_n: int) -> Package:
    counts = _counts(frame)
    folder = _private_dir(out_dir / safe_name(recipient.key))
    pkg = Package(run_id=run_id, recipient=recipient, meta=meta, subject=_subject(recipient, meta, counts), html="",
                  text="", workbook=folder / f"paywatch_{safe_name(run_id)}_{safe_name(recipient.key)}.xlsx",
                  html_path=folder / "body.html", counts=counts, content_sha256=_content_sha(recipient, meta, frame))
    pkg.workbook_bytes = workbook_bytes(recipient, meta, frame, counts)
    pkg.html = html_body(recipient, meta, frame, counts, top_n)
    pkg.text = text_body(recipient, meta, frame, counts, top_n)
    write_private(pkg.workbook, pkg.workbook_bytes)
    write_private(pkg.html_path, pkg.html.encode("utf-8"))
    return pkg


def _subject(recipient: Recipient, meta: dict, counts: dict) -> str:
    flag = "[NOT VERIFIED] " if meta["dq_status"].startswith("NOT VERIFIED") else ""
    return (f"{flag}Paywatch {meta['run_id']} ({meta['run_type']} {meta['period']}): {counts['exceptions']} "
            f"exception(s), {counts['hold']} on hold — {recipient.name}")


# ------------------------------------------------------------------------------ workbook

def _sheet_names(categories: list[str]) -> dict[str, str]:
    names, used = {}, {COVER_SHEET.lower(), "history"}
    for cat in categories:
        base = (_SHEET_BAD.sub("_", cat or "uncategorised").strip() or "uncategorised")[:31]
        name, i = base, 2
        while name.lower() in used:
            suffix = f"~{i}"
            name, i = base[:31 - len(suffix)] + suffix, i + 1
        used.add(name.lower())
        names[cat] = name
    return names


def workbook_bytes(recipient: Recipient, meta: dict, frame: pl.DataFrame, counts: dict) -> bytes:
    """The recipient's workbook: a cover sheet, then one sheet per category."""
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                                   "strings_to_numbers": False})
    created = meta.get("extracted_at")
    wb.set_properties({"title": f"Paywatch {meta['run_id']} — {recipient.key}", "author": "Paywatch",
                       "created": created if isinstance(created, datetime) else datetime(2000, 1, 1)})
    bold = wb.add_format({"bold": True})
    title = wb.add_format({"bold": True, "font_size": 14})
    head = wb.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1, "text_wrap": True, "valign": "top"})
    money_fmt = wb.add_format({"num_format": "#,##0.00;[Red]-#,##0.00"})
    alert = wb.add_format({"bold": True, "font_color": "#C00000"})

    cats = sorted(frame["category"].unique().to_list()) if frame.height else []
    names = _sheet_names(cats)

    ws = wb.add_worksheet(COVER_SHEET)
    ws.set_column(0, 0, 26)
    ws.set_column(1, 1, 40)
    ws.set_column(2, 5, 12)
    ws.write_string(0, 0, cell_text(f"Paywatch — exceptions for {recipient.name}"), title)
    dq_fmt = alert if meta["dq_status"].startswith("NOT VERIFIED") else None
    pairs = [("Run", meta["run_id"]), ("Payroll area", meta["payroll_area"]), ("Period", meta["period"]),
             ("Run type", meta["run_type"]), ("Extracted at (UTC)", str(meta.get("extracted_at") or "")),
             ("Data quality", meta["dq_status"]), ("Recipient", recipient.name), ("Scope", recipient.scope_text)]
    r = 2
    for k, v in pairs:
        ws.write_string(r, 0, k, bold)
        ws.write_string(r, 1, cell_text(v), dq_fmt if k == "Data quality" else None)
        r += 1
    for k in ("exceptions", "staff"):
        ws.write_string(r, 0, {"exceptions": "Exceptions", "staff": "Staff concerned"}[k], bold)
        ws.write_number(r, 1, counts[k])
        r += 1
    notes = ["Staff are identified by PERNR and name; bank accounts (IBAN) are masked."]
    if counts["redacted"]:
        notes.append(f"{counts['redacted']} exception(s) owned by another unit are shown without amounts or "
                     "details: that unit handles them.")
    for note in notes:
        ws.write_string(r, 0, "Note", bold)
        ws.write_string(r, 1, cell_text(note))
        r += 1
    for note in meta.get("dq_notes") or []:
        ws.write_string(r, 0, "Data-quality finding", bold)
        ws.write_string(r, 1, cell_text(note))
        r += 1

    r += 1
    ws.write_row(r, 0, ["Severity", "Exceptions", "Staff"], head)
    for s in SEVERITY_RANK:
        r += 1
        sub = frame.filter(pl.col("severity") == s) if frame.height else frame
        ws.write_string(r, 0, s)
        ws.write_number(r, 1, sub.height)
        ws.write_number(r, 2, sub["pernr"].drop_nulls().n_unique() if sub.height else 0)
    r += 2
    ws.write_row(r, 0, ["Category", "Sheet", "hold", "review", "info", "Total"], head)
    for cat in cats:
        r += 1
        sub = frame.filter(pl.col("category") == cat)
        ws.write_string(r, 0, cell_text(cat))
        ws.write_string(r, 1, cell_text(names[cat]))
        for j, s in enumerate(SEVERITY_RANK):
            ws.write_number(r, 2 + j, sub.filter(pl.col("severity") == s).height)
        ws.write_number(r, 5, sub.height)
    if not cats:
        ws.write_string(r + 1, 0, "No exceptions for this recipient in this run.")

    for cat in cats:
        sub = frame.filter(pl.col("category") == cat)
        sh = wb.add_worksheet(names[cat])
        for j, (header, _, kind, width) in enumerate(SHEET_COLUMNS):
            sh.set_column(j, j, width, money_fmt if kind == "money" else None)
            sh.write_string(0, j, header, head)
        for i, row in enumerate(sub.select([c for _, c, _, _ in SHEET_COLUMNS]).iter_rows(), start=1):
            for j, ((_, _, kind, _), v) in enumerate(zip(SHEET_COLUMNS, row, strict=True)):
                if v is None or v == "":
                    sh.write_blank(i, j, None)
                elif kind == "money":
                    sh.write_number(i, j, int(v) / 100, money_fmt)
                else:
                    sh.write_string(i, j, cell_text(v))
        sh.freeze_panes(1, 0)
        sh.autofilter(0, 0, max(sub.height, 1), len(SHEET_COLUMNS) - 1)
    wb.close()
    return buf.getvalue()


# ------------------------------------------------------------------------------ mail body

def _top(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    if frame.height == 0:
        return frame
    return (frame.with_columns(pl.col("severity").replace_strict(SEVERITY_RANK, default=9, return_dtype=pl.Int64)
                               .alias("_r"),
                               pl.coalesce(pl.col("amount_cents").abs(), pl.col("expected_cents").abs(), pl.lit(-1))
                               .alias("_a"))
            .sort(["_r", "_a", "pernr"], descending=[False, True, False], nulls_last=True).head(n).drop("_r", "_a"))


def _amount(cents, currency) -> str:
    return "" if cents is None else money(cents, currency or "")


def html_body(recipient: Recipient, meta: dict, frame: pl.DataFrame, counts: dict, top_n: int = TOP_N) -> str:
    """The e-mail body: run, data quality, counts and the top items (PERNR + name)."""
    top = _top(frame, top_n)
    blocked = meta["dq_status"].startswith("NOT VERIFIED")
    cell = 'style="border:1px solid #bbb;padding:3px 6px;vertical-align:top"'
    red = ' style="color:#C00000"'
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">',
             f"<title>{_h('Paywatch ' + meta['run_id'])}</title></head>",
             '<body style="font-family:Arial,Helvetica,sans-serif;font-size:13px">',
             f"<h2>Paywatch — {_h(meta['run_id'])}</h2>",
             f"<p>For <b>{_h(recipient.name)}</b>: {_h(recipient.scope_text)}.</p>",
             f"<p>Run {_h(meta['run_type'])} of period {_h(meta['period'])} (payroll area "
             f"{_h(meta['payroll_area'])}). Data quality: <b{red if blocked else ''}>"
             f"{_h(meta['dq_status'])}</b>.</p>",
             f"<p><b>{counts['exceptions']}</b> exception(s) for <b>{counts['staff']}</b> staff member(s): "
             f"{counts['hold']} hold, {counts['review']} review, {counts['info']} info.</p>"]
    if meta.get("dq_notes"):
        parts.append("<ul>" + "".join(f"<li>{_h(n)}</li>" for n in meta["dq_notes"]) + "</ul>")
    if top.height:
        heads = ("Severity", "PERNR", "Name", "Category", "Wage type", "For-period", "Amount", "Expected", "Explanation")
        parts.append('<table style="border-collapse:collapse">')
        parts.append("<tr>" + "".join(f'<th {cell} bgcolor="#D9E1F2">{h}</th>' for h in heads) + "</tr>")
        for r in top.iter_rows(named=True):
            wt = " ".join(x for x in (r["wage_type"], r["wage_type_text"] and f"({r['wage_type_text']})") if x)
            vals = (r["severity"], r["pernr"], r["full_name"], r["category"], wt, r["for_period"],
                    _amount(r["amount_cents"], r["currency"]), _amount(r["expected_cents"], r["currency"]),
                    r["explanation"])
            parts.append("<tr>" + "".join(f"<td {cell}>{_h(v)}</td>" for v in vals) + "</tr>")
        parts.append("</table>")
        more = (f"The top {top.height} of {counts['exceptions']}, by severity then amount. " if counts["exceptions"] > top.height
                else "")
        parts.append(f"<p>{more}All exceptions are in the attached workbook, one sheet per category.</p>")
    else:
        parts.append("<p>No exceptions for you in this run.</p>")
    parts.append('<p style="color:#666;font-size:11px">Sent by Paywatch. Staff are identified by PERNR and name; '
                 "bank accounts are masked. Please fix the source in Umoja before the FINAL run. A copy of this "
                 "message is kept in the Paywatch outbox.</p></body></html>")
    return "\n".join(parts) + "\n"


def text_body(recipient: Recipient, meta: dict, frame: pl.DataFrame, counts: dict, top_n: int = TOP_N) -> str:
    top = _top(frame, top_n)
    lines = [f"Paywatch — {meta['run_id']}", f"For {recipient.name}: {recipient.scope_text}.",
             f"Run {meta['run_type']} of period {meta['period']} (payroll area {meta['payroll_area']}).",
             f"Data quality: {meta['dq_status']}.",
             f"{counts['exceptions']} exception(s) for {counts['staff']} staff member(s): {counts['hold']} hold, "
             f"{counts['review']} review, {counts['info']} info.", ""]
    for r in top.iter_rows(named=True):
        amount = _amount(r["amount_cents"], r["currency"])
        lines.append(f"- [{r['severity']}] {r['pernr']} {r['full_name'] or ''} — {r['category']}"
                     f"{' ' + r['wage_type'] if r['wage_type'] else ''}{' ' + amount if amount else ''}: {r['explanation']}")
    lines += ["", "All exceptions are in the attached workbook, one sheet per category."]
    return mask_ibans_in("\n".join(lines)) + "\n"


# ------------------------------------------------------------------------------ files

def _private_dir(path: Path) -> Path:
    make_private_dir(path)
    os.chmod(path, DIR_MODE)
    return path


def write_private(path: Path, data: bytes) -> Path:
    """Write a file readable by its owner only (atomically: no half-written package)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with owner_only_umask():
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------ SMTP

@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = DEFAULT_SENDER
    starttls: bool = False
    use_ssl: bool = False
    timeout: float = 30.0


def _flag(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


def smtp_settings_from_env(env: dict | None = None) -> SmtpSettings | None:
    """SMTP settings from PAYWATCH_SMTP_* (or a Prefect block named by PAYWATCH_SMTP_BLOCK);
    None when mail is not configured (outbox only)."""
    env = os.environ if env is None else env
    host = env.get("PAYWATCH_SMTP_HOST", "").strip()
    timeout = env.get("PAYWATCH_SMTP_TIMEOUT", "30")
    try:
        timeout_s = float(timeout)
    except ValueError:
        raise SmtpConfigError(f"PAYWATCH_SMTP_TIMEOUT={timeout!r} is not a number") from None
    if host:
        starttls, use_ssl = _flag(env.get("PAYWATCH_SMTP_STARTTLS")), _flag(env.get("PAYWATCH_SMTP_SSL"))
        port_text = env.get("PAYWATCH_SMTP_PORT") or ("465" if use_ssl else "587" if starttls else "25")
        try:
            port = int(port_text)
        except ValueError:
            raise SmtpConfigError(f"PAYWATCH_SMTP_PORT={port_text!r} is not a port number") from None
        user = env.get("PAYWATCH_SMTP_USER") or None
        return SmtpSettings(host, port, user, env.get("PAYWATCH_SMTP_PASSWORD") or None,
                            env.get("PAYWATCH_SMTP_FROM") or user or DEFAULT_SENDER, starttls, use_ssl, timeout_s)
    if env.get("PAYWATCH_SMTP_BLOCK"):
        return _settings_from_block(env["PAYWATCH_SMTP_BLOCK"], env, timeout_s)
    return None


def _settings_from_block(name: str, env, timeout: float) -> SmtpSettings:
    """A Prefect `EmailServerCredentials` block (prefect-email), loaded only when named."""
    try:
        from prefect_email import EmailServerCredentials  # noqa: PLC0415 — optional dependency
    except ImportError:
        raise SmtpConfigError("PAYWATCH_SMTP_BLOCK is set but prefect-email is not installed") from None
    try:
        creds = EmailServerCredentials.load(name)
    except Exception as e:  # noqa: BLE001 — the block store says why
        raise SmtpConfigError(f"Prefect block {name!r} could not be loaded ({type(e).__name__})") from None
    kind = str(getattr(creds.smtp_type, "name", creds.smtp_type)).upper()
    password = creds.password.get_secret_value() if getattr(creds, "password", None) else None
    port = int(creds.smtp_port or {"SSL": 465, "STARTTLS": 587}.get(kind, 25))
    user = creds.username or None
    return SmtpSettings(str(creds.smtp_server), port, user, password,
                        env.get("PAYWATCH_SMTP_FROM") or user or DEFAULT_SENDER, kind == "STARTTLS", kind == "SSL",
                        timeout)


def _connect(s: SmtpSettings) -> smtplib.SMTP:
    if s.use_ssl:
        conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ssl.create_default_context())
    else:
        conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        if s.starttls:
            conn.starttls(context=ssl.create_default_context())
    if s.user:
        conn.login(s.user, s.password or "")
    return conn


def _describe(e: BaseException) -> str:
    """Why a delivery failed: the error type and the server's words (no message content)."""
    text = " ".join(str(e).split())[:240]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# ------------------------------------------------------------------------------ deliver

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


def delivered_before(con, run_id: str) -> set[tuple[str, str, str]]:
    """(recipient, channel, content hash) already written / sent for the run."""
    rows = con.execute("SELECT DISTINCT recipient, channel, content_sha256 FROM report_deliveries "
                       "WHERE run_id = ? AND status IN ('written', 'sent')", [run_id]).fetchall()
    return {tuple(r) for r in rows}


def record_outcomes(con, run_id: str, outcomes: list[DeliveryOutcome]) -> None:
    """Append the outcomes to the warehouse's delivery log (report_deliveries)."""
    if not outcomes:
        return
    with transaction(con):
        con.executemany(
            "INSERT INTO report_deliveries (run_id, recipient, channel, status, attempts, error, content_sha256, "
            "n_exceptions, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[run_id, o.recipient, o.channel, o.status, o.attempts, o.error, o.content_sha256, o.n_exceptions, o.at]
             for o in outcomes])


def _marker_sha(folder: Path) -> str | None:
    try:
        return json.loads((folder / "package.json").read_text(encoding="utf-8")).get("content_sha256")
    except (OSError, ValueError):
        return None


def write_to_outbox(pkg: Package, folder: Path, msg: EmailMessage) -> Path:
    """The package as files: message.eml (exactly what is mailed), the workbook, body.html,
    and package.json last (its presence says the package is complete)."""
    _private_dir(folder)
    write_private(folder / pkg.attachment_name, pkg.workbook_bytes)
    write_private(folder / "body.html", pkg.html.encode("utf-8"))
    write_private(folder / "message.eml", msg.as_bytes())
    marker = {"run_id": pkg.run_id, "recipient": pkg.recipient.key, "content_sha256": pkg.content_sha256,
              "subject": pkg.subject, "counts": pkg.counts, "format": FORMAT_VERSION}
    write_private(folder / "package.json", (json.dumps(marker, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    return folder


def deliver(packages: list[Package], smtp: SmtpSettings | None, outbox: Path, retries: int = 3,
            backoff: float = 2.0, *, con=None, smtp_error: str | None = None,
            sleep: Callable[[float], None] = time.sleep, attempt: int = 1, final: bool = True) -> DeliveryReport:
    """Write every package to `outbox/<run_id>/<recipient>/`, then send it by SMTP (when
    `smtp` is given) with up to `retries` retries, waiting `backoff`, 2×, 4×… seconds.
    With `con`, packages already delivered with the same content are skipped and the
    outcomes are appended to `report_deliveries`. Never raises for a delivery problem.
    `attempt`/`final`: this call is attempt n of the caller's retry policy; unless `final`,
    failed sends are not recorded but returned in `deferred` for the next attempt."""
    run_id = packages[0].run_id if packages else ""
    outbox = Path(outbox)
    report = DeliveryReport(run_id, outbox)
    if not packages:
        return report
    run_dir = _private_dir(make_private_dir(outbox) / safe_name(run_id))
    os.chmod(outbox, DIR_MODE)
    done = delivered_before(con, run_id) if con is not None else set()
    sender = smtp.sender if smtp else DEFAULT_SENDER
    pending: dict[str, tuple[Package, EmailMessage]] = {}
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
                pending[key] = (pkg, msg)
    if pending:
        sent = _send_all(pending, smtp, retries, backoff, sleep, run_id)
        for o in sent:
            o.attempts += attempt - 1  # the caller's earlier attempts
        report.deferred = [] if final else [o for o in sent if o.status == "failed"]
        report.outcomes += [o for o in sent if final or o.status != "failed"]
    try:
        if not report.deferred:  # a deferred send is not a failure yet
            _failure_note(report, run_dir)
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


def _send_all(pending: dict[str, tuple[Package, EmailMessage]], smtp: SmtpSettings, retries: int, backoff: float,
              sleep, run_id: str) -> list[DeliveryOutcome]:
    """Rounds over one connection each: a package still failing after 1 + retries
    attempts is a recorded failure."""
    attempts = dict.fromkeys(pending, 0)
    errors: dict[str, str] = {}
    out: list[DeliveryOutcome] = []
    total = 1 + max(int(retries), 0)
    for rnd in range(total):
        if rnd:
            sleep(backoff * 2 ** (rnd - 1))
        for k in pending:
            attempts[k] += 1
        try:
            conn = _connect(smtp)
            try:
                for key in list(pending):
                    pkg, msg = pending[key]
                    try:
                        refused = conn.send_message(msg, from_addr=smtp.sender, to_addrs=list(pkg.recipient.to))
                    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError,
                            smtplib.SMTPNotSupportedError) as e:
                        errors[key] = _describe(e)
                        continue
                    note = f"refused by the server for: {', '.join(sorted(refused))}" if refused else None
                    out.append(DeliveryOutcome(key, "smtp", "sent", attempts[key], pkg.content_sha256,
                                               pkg.counts["exceptions"], note))
                    del pending[key]
            finally:
                try:
                    conn.quit()
                except (OSError, smtplib.SMTPException):
                    conn.close()
        except (OSError, smtplib.SMTPException) as e:  # no connection, lost connection, login refused
            for key in pending:
                errors[key] = _describe(e)
        if not pending:
            break
        log.warning("run %s: SMTP attempt %d/%d failed for %d package(s): %s", run_id, rnd + 1, total, len(pending),
                    "; ".join(sorted(set(errors[k] for k in pending))))
    for key, (pkg, _) in pending.items():
        out.append(DeliveryOutcome(key, "smtp", "failed", attempts[key], pkg.content_sha256, pkg.counts["exceptions"],
                                   errors.get(key, "not sent")))
    return out


def _failure_note(report: DeliveryReport, run_dir: Path) -> None:
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


# ------------------------------------------------------------------------------ the stage

def deliver_run_reports(con, run_id: str, findings: pl.DataFrame, status: str, checks: list[dict], out_dir: Path,
                        paths: Paths, env: dict | None = None, attempt: int = 1, final: bool = True) -> DeliveryReport:
    """The whole 'reports upstream' step of a verified run, one SMTP attempt (the send_mail
    stage's retry policy, paywatch.pipeline, tries again); never raises (a broken routing
    file or mail server is recorded and surfaced, the run is kept)."""
    env = os.environ if env is None else env
    try:
        routing = load_routing(paths.home, env)
        packages = build_packages(con, run_id, findings, dq_status_text(status, checks), Path(out_dir),
                                  routing=routing, dq_notes=dq_details(checks))
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
        _failure_note(report, _private_dir(make_private_dir(paths.outbox) / safe_name(run_id)))
    except OSError:
        pass
    return report
