"""Tables for people, in notebooks: `show(frame)` renders a polars frame with great_tables —
thousands separators, amounts with two decimals, no dtype row, no `shape:`, no quotes, an
empty cell for a missing value (never `null`), column names in words.

Display only: the frames the other functions return keep their exact types (amounts as
`Decimal(38, 2)`); `show` turns a copy into text at the last moment.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import polars as pl

# column names people read (the rest: underscores become spaces)
LABELS = {
    "pernr": "PERNR", "run_id": "run", "wage_type": "wage type", "wage_type_text": "wage type text",
    "for_period": "for period", "in_period": "in period", "finding_id": "finding", "case_id": "case",
    "first_seen_run": "first seen in", "due_date": "due date", "days_open": "days open",
    "n_findings": "findings", "amount_at_stake": "amount at stake", "staff_on_hold": "staff on hold",
    "open_holds": "open holds", "with_these_numbers": "with these numbers", "decided_by": "decided by",
    "decision_reason": "reason", "decided_at": "decided at", "in_copy": "in copy",
}


def _cell(v) -> str:
    """One value as text: '' for missing, 1,234 for integers, 1,234.50 for amounts."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, Decimal):
        return f"{v:,.2f}"
    if isinstance(v, float):
        if v != v:  # NaN
            return ""
        return f"{v:,.0f}" if v.is_integer() and abs(v) >= 1000 else f"{v:,.4g}" if abs(v) < 1 else f"{v:,.1f}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v)
    return str(v)


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as display text (grain unchanged), headers in words."""
    cols = {LABELS.get(c, c.replace("_", " ")): [_cell(v) for v in frame[c].to_list()] for c in frame.columns}
    return pl.DataFrame(cols, schema={c: pl.String for c in cols})


def _numeric(frame: pl.DataFrame) -> list[str]:
    return [LABELS.get(c, c.replace("_", " ")) for c, t in frame.schema.items() if t.is_numeric()]


def show(frame: pl.DataFrame, title: str | None = None, subtitle: str | None = None, empty: str = "none"):
    """A great_tables table of `frame` for a notebook cell (numbers right-aligned). An empty
    frame shows the `empty` words under the title instead of a bare header."""
    from great_tables import GT

    if frame.height == 0:
        frame = pl.DataFrame({"": [empty]})
    text = as_text(frame)
    gt = GT(text)
    if title:
        gt = gt.tab_header(title=title, subtitle=subtitle)
    numeric = _numeric(frame)
    if numeric:
        gt = gt.cols_align(align="right", columns=numeric)
    return gt.opt_row_striping().tab_options(table_font_size="13px", column_labels_font_weight="bold")


def show_fields(frame: pl.DataFrame, title: str | None = None, subtitle: str | None = None):
    """A two-column (field, value) frame as a card: no header row, fields in bold."""
    from great_tables import GT, loc, style

    gt = GT(as_text(frame)).cols_label(**{c: "" for c in as_text(frame).columns})
    if title:
        gt = gt.tab_header(title=title, subtitle=subtitle)
    first = as_text(frame).columns[0]
    return gt.tab_style(style=style.text(weight="bold"), locations=loc.body(columns=first)).tab_options(
        table_font_size="13px")
