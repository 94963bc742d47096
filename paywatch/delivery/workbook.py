"""The recipient's Excel workbook: a cover sheet with the run, its data-quality status and
counts, then one sheet per category with a frozen header row, filters and formatted
amounts. Every text cell is written as a string through `cell_text` (IBANs masked, a
leading = + - @ quoted), so nothing becomes a formula."""

from __future__ import annotations

import io
import re
from datetime import datetime

import polars as pl
import xlsxwriter

from detectors.base import SEVERITY_RANK
from paywatch.delivery.text import cell_text
from paywatch.routing import Recipient

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
_SHEET_BAD = re.compile(r"[\[\]:*?/\\']")


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
