"""The e-mail of a package: HTML and plain-text bodies with the top items (PERNR + name,
every text through `mask_ibans_in`), and the MIME message with the workbook attached."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import polars as pl

from detectors.base import SEVERITY_RANK
from detectors.money import money
from paywatch.delivery.text import html_text as _h
from paywatch.delivery.text import safe_name
from paywatch.privacy import mask_ibans_in
from paywatch.routing import Recipient

TOP_N = 25
DEFAULT_SENDER = "paywatch@localhost"
XLSX_MIME = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


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
    msg.add_attachment(pkg.workbook_bytes, maintype=XLSX_MIME[0], subtype=XLSX_MIME[1],
                       filename=pkg.attachment_name)
    return msg


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
