"""The recipient's Excel workbook, laid out as a payroll officer would: a Summary (the run,
its data quality, what is due when, and a linked list of the sheets), the Cases (one row per
case: new since the last run, still open, resolved since the last run), All findings (each
with its case), then one sheet per category, titled from paywatch/titles.py.

Every sheet has a frozen header row, filters, severity colours (hold, review, info) and a
print set-up (landscape, one page wide, header row repeated). Found, expected and difference
are numbers with a money format (a negative amount is not shown in red: a deduction is not an
alarm). Personnel numbers, numeric wage types and periods are stored as numbers with a number
format that keeps their digits (PERNR: 8 digits, docs/extract-format.md). Every text cell goes
through `cell_text` (IBANs masked, a leading = + - @ quoted), so nothing becomes a formula."""

from __future__ import annotations

import io
import math
import re
from datetime import date, datetime

import polars as pl
import xlsxwriter

from detectors.base import SEVERITY_RANK
from paywatch.delivery.cases import PART_TITLES
from paywatch.delivery.text import cell_text
from paywatch.routing import Recipient
from paywatch.titles import category_title

COVER_SHEET = "Summary"
CASES_SHEET = "Cases"
ALL_SHEET = "All findings"
# Columns of the Cases sheet: (header, frame column, kind, width)
CASE_COLUMNS = (
    ("Part", "part", "part", 12), ("Case ID", "case_id", "wrap", 24), ("PERNR", "pernr", "pernr", 9),
    ("Name", "full_name", "wrap", 18), ("Entity", "entity", "text", 9), ("Cause", "cause_title", "wrap", 20),
    ("Your role", "role", "wrap", 8), ("Owner", "owner", "text", 8), ("In copy", "in_copy", "wrap", 8),
    ("Severity", "severity", "severity", 8), ("Status", "status", "wrap", 10), ("Assignee", "assignee", "wrap", 12),
    ("Due date", "due_date", "date", 10), ("Days open", "days_open", "int", 5),
    ("Amount at stake", "amount_at_stake_cents", "money", 12), ("Currency", "currency", "text", 6),
    ("Findings", "n_findings", "int", 6), ("Latest decision", "latest_decision", "wrap", 30),
    ("First seen in run", "first_seen_run", "wrap", 14),
)
# Columns of the findings sheets
SHEET_COLUMNS = (
    ("PERNR", "pernr", "pernr", 9), ("Name", "full_name", "wrap", 18), ("Entity", "entity", "text", 9),
    ("Severity", "severity", "severity", 8), ("Case ID", "case_id", "wrap", 22),
    ("Category", "category_title", "wrap", 18), ("Owner", "owner", "text", 8), ("Wage type", "wage_type", "code", 6),
    ("Wage type text", "wage_type_text", "wrap", 14), ("For-period", "for_period", "period", 8),
    ("Found", "amount_cents", "money", 11), ("Expected", "expected_cents", "money", 11),
    ("Difference", "difference_cents", "money", 11), ("Currency", "currency", "text", 6),
    ("Explanation", "explanation", "wrap", 50), ("First seen in run", "first_seen_run", "wrap", 14),
    ("Finding ID", "finding_id", "wrap", 12),
)
SEVERITY_COLOURS = {"hold": "#F4B6B6", "review": "#FFE08A", "info": "#DDEBF7"}
_SHEET_BAD = re.compile(r"[\[\]:*?/\\']")
_DIGITS = re.compile(r"^\d{1,15}$")


def _sheet_names(categories: list[str]) -> dict[str, str]:
    """category -> its sheet name: its title (≤ 31 characters), made unique."""
    names, used = {}, {COVER_SHEET.lower(), CASES_SHEET.lower(), ALL_SHEET.lower(), "history"}
    for cat in categories:
        base = (_SHEET_BAD.sub("_", category_title(cat or "uncategorised")).strip() or "Uncategorised")[:31]
        name, i = base, 2
        while name.lower() in used:
            suffix = f" ({i})"
            name, i = base[:31 - len(suffix)] + suffix, i + 1
        used.add(name.lower())
        names[cat] = name
    return names


def with_difference(frame: pl.DataFrame) -> pl.DataFrame:
    """`difference_cents` = found − expected (a missing side counts as 0; none when both are missing)
    and `category_title`."""
    if "difference_cents" not in frame.columns:
        both_missing = pl.col("amount_cents").is_null() & pl.col("expected_cents").is_null()
        frame = frame.with_columns(
            pl.when(both_missing).then(None).otherwise(pl.col("amount_cents").fill_null(0)
                                                       - pl.col("expected_cents").fill_null(0))
            .alias("difference_cents"))
    return frame.with_columns(pl.col("category").map_elements(category_title, return_dtype=pl.String)
                              .alias("category_title"))


class _Formats:
    def __init__(self, wb: xlsxwriter.Workbook):
        base = {"valign": "top"}
        self.head = wb.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1, "text_wrap": True, "valign": "top"})
        self.text = wb.add_format(base)
        self.wrap = wb.add_format({**base, "text_wrap": True})
        self.money = wb.add_format({**base, "num_format": "#,##0.00;-#,##0.00"})
        self.pernr = wb.add_format({**base, "num_format": "00000000", "align": "left"})
        self.period = wb.add_format({**base, "num_format": "0", "align": "left"})
        self.int = wb.add_format({**base, "num_format": "0"})
        self.date = wb.add_format({**base, "num_format": "yyyy-mm-dd", "align": "left"})
        self.codes: dict[int, xlsxwriter.format.Format] = {}
        self.wb = wb
        self.severity = {s: wb.add_format({**base, "bg_color": c, "bold": s == "hold"})
                         for s, c in SEVERITY_COLOURS.items()}
        self.part = {p: wb.add_format({**base, "text_wrap": True, "bold": p == "new", "italic": p == "resolved"})
                     for p in PART_TITLES}
        self.bold = wb.add_format({"bold": True, "valign": "top"})
        self.title = wb.add_format({"bold": True, "font_size": 14})
        self.alert = wb.add_format({"bold": True, "font_color": "#C00000", "text_wrap": True})
        self.link = wb.add_format({"font_color": "#0563C1", "underline": 1})

    def code(self, width: int):
        if width not in self.codes:  # a wage type keeps its leading zeros
            self.codes[width] = self.wb.add_format({"valign": "top", "num_format": "0" * width, "align": "left"})
        return self.codes[width]


def _cell(ws, fm: _Formats, r: int, j: int, kind: str, v) -> None:
    if v is None or v == "":
        ws.write_blank(r, j, None, fm.severity.get(v) if kind == "severity" else None)
    elif kind == "money":
        ws.write_number(r, j, int(v) / 100, fm.money)
    elif kind == "int":
        ws.write_number(r, j, int(v), fm.int)
    elif kind == "date":
        d = v if isinstance(v, date) else date.fromisoformat(str(v)[:10])
        ws.write_datetime(r, j, datetime(d.year, d.month, d.day), fm.date)
    elif kind == "pernr" and _DIGITS.match(str(v)):
        ws.write_number(r, j, int(v), fm.pernr)
    elif kind == "period" and re.match(r"^\d{6}$", str(v)):
        ws.write_number(r, j, int(v), fm.period)
    elif kind == "code" and _DIGITS.match(str(v)):
        ws.write_number(r, j, int(v), fm.code(len(str(v))))
    elif kind == "severity":
        ws.write_string(r, j, cell_text(v), fm.severity.get(v, fm.text))
    elif kind == "part":
        ws.write_string(r, j, PART_TITLES.get(v, cell_text(v)), fm.part.get(v, fm.wrap))
    else:
        ws.write_string(r, j, cell_text(v), fm.wrap if kind == "wrap" else fm.text)


def _lines(text, width: int) -> int:
    """How many lines a wrapped text takes in a column `width` characters wide: rows are given
    their height when written, since not every spreadsheet fits wrapped rows on opening."""
    if text is None or text == "":
        return 1
    per = max(width - 1, 1)
    return sum(max(1, math.ceil(len(part) / per)) for part in str(text).split("\n"))


ROW_HEIGHT = 15  # points per line of 11-point text


def _print_setup(ws) -> None:
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)  # one page wide, as many pages tall as needed
    ws.repeat_rows(0)
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)


def _table(wb, fm: _Formats, name: str, columns, frame: pl.DataFrame) -> None:
    ws = wb.add_worksheet(name)
    for j, (header, _, kind, width) in enumerate(columns):
        ws.set_column(j, j, width)
        ws.write_string(0, j, header, fm.head)
    ws.set_row(0, ROW_HEIGHT * max(_lines(h, w) for h, _, _, w in columns))
    have = [c for _, c, _, _ in columns]
    rows = frame.select([pl.col(c) if c in frame.columns else pl.lit(None).alias(c) for c in have])
    for i, row in enumerate(rows.iter_rows(), start=1):
        lines = 1
        for j, ((_, _, kind, width), v) in enumerate(zip(columns, row, strict=True)):
            _cell(ws, fm, i, j, kind, v)
            if kind in ("wrap", "part") and v is not None:
                lines = max(lines, _lines(PART_TITLES.get(v, v) if kind == "part" else v, width))
        if lines > 1:
            ws.set_row(i, ROW_HEIGHT * lines)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(frame.height, 1), len(columns) - 1)
    _print_setup(ws)
    ws.set_header(f"&L{cell_text(name)}&RPage &P of &N")


def workbook_bytes(recipient: Recipient, meta: dict, frame: pl.DataFrame, counts: dict,
                   cases: pl.DataFrame | None = None) -> bytes:
    """The recipient's workbook: Summary, Cases, All findings, one sheet per category.
    `frame`: the recipient's findings (enriched); `cases`: its cases (paywatch.delivery.cases)."""
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                                   "strings_to_numbers": False})
    created = meta.get("extracted_at")
    wb.set_properties({"title": f"Paywatch {meta['run_id']} — {recipient.key}", "author": "Paywatch",
                       "created": created if isinstance(created, datetime) else datetime(2000, 1, 1)})
    fm = _Formats(wb)
    frame = with_difference(frame)
    cases = cases if cases is not None else pl.DataFrame()
    cats = sorted(frame["category"].unique().to_list(), key=lambda c: category_title(c or "")) if frame.height else []
    names = _sheet_names(cats)

    ws = wb.add_worksheet(COVER_SHEET)
    ws.set_column(0, 0, 30)
    ws.set_column(1, 1, 60)
    ws.set_column(2, 5, 10)
    ws.write_string(0, 0, cell_text(f"Paywatch — {meta['run_id']} — {recipient.name}"), fm.title)
    ws.write_string(1, 0, cell_text(meta.get("headline", "")), fm.alert if meta.get("blocked") else fm.bold)
    due = meta.get("due_date")
    pairs = [("Run", meta["run_id"]), ("Payroll area", meta["payroll_area"]), ("Period", meta["period"]),
             ("Run type", meta["run_type"]), ("Extracted at (UTC)", str(meta.get("extracted_at") or "")),
             ("Data quality", meta["dq_status"]), ("Fix the source by", due.isoformat() if due else ""),
             ("Recipient", recipient.name), ("Scope", recipient.scope_text)]
    r = 3
    for k, v in pairs:
        ws.write_string(r, 0, k, fm.bold)
        ws.write_string(r, 1, cell_text(v), fm.alert if k == "Data quality" and meta.get("blocked") else fm.wrap)
        ws.set_row(r, ROW_HEIGHT * _lines(v, 60))
        r += 1
    numbers = [("Cases to act on", counts.get("act", 0)), ("Cases, new and still open", counts.get("cases", 0)),
               *((PART_TITLES[p], counts.get(f"part_{p}", 0)) for p in PART_TITLES),
               ("Exceptions", counts["exceptions"]), ("Staff concerned", counts["staff"])]
    for k, v in numbers:
        ws.write_string(r, 0, k, fm.bold)
        ws.write_number(r, 1, v, fm.int)
        r += 1
    notes = ["Staff are identified by PERNR and name; bank accounts (IBAN) are masked.",
             "Severity: hold — pay must not go out as it is; review — a person should look; info — for information."]
    if meta["run_type"] == "FINAL":
        notes.insert(0, "FINAL: staff with an open hold are excluded from this month's pay.")
    if counts.get("redacted"):
        notes.append(f"{counts['redacted']} exception(s) owned by another unit are shown without amounts or "
                     "details: that unit handles them.")
    for note in notes + list(meta.get("dq_notes") or []):
        ws.write_string(r, 0, "Note", fm.bold)
        ws.write_string(r, 1, cell_text(note), fm.wrap)
        ws.set_row(r, ROW_HEIGHT * _lines(note, 60))
        r += 1

    r += 1
    top = r
    ws.write_row(r, 0, ["Sheet", "What it holds", "hold", "review", "info", "Total"], fm.head)

    def sheet_row(name: str, what: str, sub: pl.DataFrame) -> None:
        nonlocal r
        r += 1
        ws.write_url(r, 0, f"internal:'{name}'!A1", fm.link, string=name)
        ws.write_string(r, 1, cell_text(what), fm.wrap)
        ws.set_row(r, ROW_HEIGHT * _lines(what, 60))
        for j, s in enumerate(SEVERITY_RANK):
            ws.write_number(r, 2 + j, sub.filter(pl.col("severity") == s).height if sub.height else 0, fm.int)
        ws.write_number(r, 5, sub.height, fm.int)

    sheet_row(CASES_SHEET, "One row per case: new since the last run, still open, resolved since the last run",
              cases)
    sheet_row(ALL_SHEET, "Every exception of this report, with its case", frame)
    for cat in cats:
        sheet_row(names[cat], f"Exceptions: {category_title(cat)}", frame.filter(pl.col("category") == cat))
    ws.freeze_panes(1, 0)
    ws.autofilter(top, 0, r, 5)
    _print_setup(ws)

    _table(wb, fm, CASES_SHEET, CASE_COLUMNS, cases)
    _table(wb, fm, ALL_SHEET, SHEET_COLUMNS, frame)
    for cat in cats:
        _table(wb, fm, names[cat], SHEET_COLUMNS, frame.filter(pl.col("category") == cat))
    wb.close()
    return buf.getvalue()
