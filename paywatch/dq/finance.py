"""The Finance data-quality report of a run: `finance_dq.html` (one page) and
`finance_dq.xlsx` (sheet 'Data quality').

Written for a finance officer who has never heard of Great Expectations: "checks", each
said in plain words (the suites' `description`), what was found (`finance_text`), whether it
blocked the verification, how many staff it concerns, and how the same check went in the
previous runs of the payroll area (read from `dq_results`), plus the runs of the month.
No names or bank accounts: staff are counted, and named by staff number (PERNR) only.
"""

from __future__ import annotations

import functools
from pathlib import Path

import duckdb
import polars as pl

from detectors.base import RunMeta
from paywatch.delivery.text import cell_text
from paywatch.paths import write_private
from paywatch.warehouse.dq_results import check_history

TREND_RUNS = 12
FRAME_ORDER = ("staff", "stations", "run", "RT", "PA0000", "PA0001", "PA0008", "PA0009", "PA0021", "T510",
               "T7UNPA", "T512W", "T7UNRATE")


def history(con: duckdb.DuckDBPyConnection, meta: RunMeta, n: int = TREND_RUNS) -> pl.DataFrame:
    """Data-quality results of the area's current runs up to this one (contract order; at
    most `n` runs), each from its latest verification — grain: one row per run per check;
    `pos` = the run's position in the area's history."""
    return check_history(con, meta.payroll_area, meta.run_id, n)


def _runs_of(hist: pl.DataFrame) -> pl.DataFrame:
    if hist.height == 0:
        return pl.DataFrame(schema={"pos": pl.Int64, "run_id": pl.String, "period": pl.String, "run_type": pl.String,
                                    "status": pl.String, "blocking": pl.UInt32, "warnings": pl.UInt32})
    return (hist.group_by("pos", "run_id", "period", "run_type", "status")
            .agg(((pl.col("severity") == "critical") & ~pl.col("success")).sum().alias("blocking"),
                 ((pl.col("severity") == "warning") & ~pl.col("success")).sum().alias("warnings"))
            .sort("pos"))


def _result_text(c: dict) -> str:
    if not c["success"]:
        return "FAILED"
    if c.get("unexpected_count"):
        return "Passed (within tolerance)"
    return "Passed"


STAFF_FRAMES = ("staff", "stations", "RT", "PA0000", "PA0001", "PA0008", "PA0009", "PA0021")


def _staff(c: dict) -> str:
    """Staff affected, or a dash where the check is not about staff (reference tables, volumes)."""
    return str(c.get("staff_affected") or 0) if c.get("frame") in STAFF_FRAMES else "–"


def _kind(c: dict) -> str:
    return "Blocking" if c["severity"] == "critical" else "Warning"


def _rows(checks: list[dict], texts: dict[str, dict], hist: pl.DataFrame, run_id: str) -> list[dict]:
    """One row per check, with its area, plain description and trend over earlier runs."""
    earlier = hist.filter(pl.col("run_id") != run_id)
    by_check: dict[str, list[tuple[str, bool, int]]] = {}
    for r in earlier.sort("pos").iter_rows(named=True):
        by_check.setdefault(r["check_name"], []).append((r["run_id"], bool(r["success"]), r["unexpected_count"] or 0))
    out = []
    for c in checks:
        t = texts.get(c["name"], {})
        area = t.get("title", c.get("suite", ""))
        out.append({**c, "area": area[:1].upper() + area[1:], "frame": t.get("frame", ""),
                    "description": c.get("description") or t.get("description") or c["name"],
                    "trend": by_check.get(c["name"], [])})
    order = {f: i for i, f in enumerate(FRAME_ORDER)}
    return sorted(out, key=lambda r: (r["success"], r["severity"] != "critical", order.get(r["frame"], 99)))


def status_line(checks: list[dict], blocked: bool) -> tuple[str, str]:
    crit = [c for c in checks if c["severity"] == "critical" and not c["success"]]
    warn = [c for c in checks if c["severity"] != "critical" and not c["success"]]
    if blocked or crit:
        return "blocked", ("NOT VERIFIED — data quality. Paywatch did not check this run for pay errors, "
                           "because the extract cannot be trusted:")
    if warn:
        return "warning", (f"Verified, with {len(warn)} data-quality warning{'s' if len(warn) != 1 else ''}. "
                           "Paywatch checked the run for pay errors; the points below may explain some of them.")
    return "ok", f"Verified — all {len(checks)} data-quality checks passed."


# ------------------------------------------------------------------------------ HTML

TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def _env():
    import jinja2

    # autoescape: every value (suite texts, codes from the extract) is text on the page
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _squares(trend: list[tuple[str, bool, int]], now: dict) -> list[dict]:
    """One square per earlier run (green pass, red/orange fail), then this run (outlined)."""
    items = [(r, ok, n) for r, ok, n in trend[-(TREND_RUNS - 1):]] + [("this run", now["success"],
                                                                      now.get("unexpected_count") or 0)]
    return [{"x": i * 12, "outlined": rid == "this run",
             "colour": "#2e7d32" if ok else ("#c62828" if now["severity"] == "critical" else "#ef6c00"),
             "title": f"{rid}: {'pass' if ok else 'fail'}, {n} found"}
            for i, (rid, ok, n) in enumerate(items)]


def _bars(runs: pl.DataFrame, run_id: str) -> dict | None:
    """Bar chart geometry: failed checks per run (blocking red, warnings orange)."""
    if runs.height == 0:
        return None
    top_n = max(1, int((runs["blocking"] + runs["warnings"]).max()))
    w, h, gap, top = 46, 70, 8, 12  # top: room for the count above the highest bar
    items = []
    for i, r in enumerate(runs.iter_rows(named=True)):
        hb = r["blocking"] / top_n * h
        hw = r["warnings"] / top_n * h
        base = top + h
        items.append({"x": i * (w + gap), "mid": i * (w + gap) + w / 2,
                      "y_blocking": f"{base - hb:.1f}", "h_blocking": f"{hb:.1f}",
                      "y_warnings": f"{base - hb - hw:.1f}", "h_warnings": f"{hw:.1f}",
                      "y_total": f"{base - hb - hw - 2:.1f}", "total": r["blocking"] + r["warnings"],
                      "label": f"{r['period'][2:4]}-{r['period'][4:]} {r['run_type']}", "this": r["run_id"] == run_id})
    return {"runs": runs.height, "width": runs.height * (w + gap), "height": top + h + 16, "bar": w,
            "label_y": top + h + 12, "axis_y": top + h + 0.5, "cols": items}


def _result_cls(r: dict) -> str:
    return "pass" if r["success"] else ("fail" if r["severity"] == "critical" else "warn")


def page_context(meta: RunMeta, checks: list[dict], blocked: bool, texts: dict[str, dict], hist: pl.DataFrame,
                 docs_link: str | None) -> dict:
    """What the Finance page shows, as plain values (the template lays them out)."""
    rows = _rows(checks, texts, hist, meta.run_id)
    kind, headline = status_line(checks, blocked)
    failed = [r for r in rows if not r["success"]]
    crit = [r for r in failed if r["severity"] == "critical"]
    warn = [r for r in failed if r["severity"] != "critical"]

    def row(r: dict) -> dict:
        return {"description": r["description"], "name": r["name"], "kind": _kind(r), "cls": _result_cls(r),
                "detail": r["detail"], "staff": _staff(r), "result": _result_text(r), "result_cls": _result_cls(r),
                "squares": _squares(r["trend"], r)}

    areas: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: FRAME_ORDER.index(r["frame"]) if r["frame"] in FRAME_ORDER else 99):
        areas.setdefault(r["area"], []).append(r)
    area_rows = []
    for name, rs in areas.items():
        nb = sum(1 for r in rs if not r["success"] and r["severity"] == "critical")
        nw = sum(1 for r in rs if not r["success"] and r["severity"] != "critical")
        area_rows.append({"name": name, "n": len(rs), "passed": len(rs) - nb - nw, "blocking": nb, "warnings": nw,
                          "rows": [row(r) for r in rs]})
    runs = _runs_of(hist)
    month = [{"run_id": m["run_id"], "run_type": m["run_type"], "blocked": m["status"] == "dq_blocked",
              "blocking": m["blocking"], "warnings": m["warnings"]}
             for m in runs.filter(pl.col("period") == meta.period).iter_rows(named=True)]
    return {
        "run_id": meta.run_id, "run_type": meta.run_type, "area": meta.payroll_area,
        "period_text": f"{meta.period[:4]}-{meta.period[4:]}", "n_checks": len(checks),
        "kind": kind, "headline": headline,
        "banner_items": [r["detail"] for r in (crit if kind == "blocked" else warn)],
        "n_passed": len(checks) - len(failed), "n_blocking": len(crit), "n_warnings": len(warn),
        "staff_affected": max([r.get("staff_affected") or 0 for r in failed], default=0),
        "failed": [row(r) for r in failed], "areas": area_rows, "bars": _bars(runs, meta.run_id), "month": month,
        "docs_link": docs_link,
    }


def html_page(meta: RunMeta, checks: list[dict], blocked: bool, texts: dict[str, dict], hist: pl.DataFrame,
              docs_link: str | None) -> str:
    """The page (templates/finance_dq.html.j2, autoescaped)."""
    ctx = page_context(meta, checks, blocked, texts, hist, docs_link)
    return _env().get_template("finance_dq.html.j2").render(ctx)


# ------------------------------------------------------------------------------ workbook

def workbook(path: Path, meta: RunMeta, checks: list[dict], blocked: bool, texts: dict[str, dict],
             hist: pl.DataFrame, docs_link: str | None) -> Path:
    import xlsxwriter
    from xlsxwriter.utility import xl_rowcol_to_cell

    rows = _rows(checks, texts, hist, meta.run_id)
    runs = _runs_of(hist)
    earlier = [r for r in runs.iter_rows(named=True) if r["run_id"] != meta.run_id][-(TREND_RUNS - 1):]
    kind, headline = status_line(checks, blocked)
    # text is text: never a formula or a link, whatever a value in the extract starts with
    wb = xlsxwriter.Workbook(str(path), {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                                         "strings_to_numbers": False})
    ws = wb.add_worksheet("Data quality")
    bold = wb.add_format({"bold": True})
    title = wb.add_format({"bold": True, "font_size": 14})
    head = wb.add_format({"bold": True, "bg_color": "#EEEEEE", "border": 1, "text_wrap": True, "valign": "top"})
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    banner = wb.add_format({"bold": True, "font_color": "#FFFFFF", "text_wrap": True,
                            "bg_color": {"blocked": "#C62828", "warning": "#EF6C00", "ok": "#2E7D32"}[kind]})
    red = wb.add_format({"bold": True, "font_color": "#C62828", "valign": "top"})
    orange = wb.add_format({"bold": True, "font_color": "#EF6C00", "valign": "top"})
    green = wb.add_format({"font_color": "#2E7D32", "valign": "top"})
    ws.write_string(0, 0, cell_text(f"Payroll data quality — {meta.run_id}"), title)
    ws.write_string(1, 0, cell_text(f"Run {meta.run_type} of {meta.period[:4]}-{meta.period[4:]}, payroll area {meta.payroll_area}"))
    ws.merge_range(2, 0, 2, 6, cell_text(headline), banner)
    r = 3
    for c in rows:
        if not c["success"] and (c["severity"] == "critical" or kind != "blocked"):
            ws.merge_range(r, 0, r, 6, cell_text(f"• {c['detail']}"), wrap)
            r += 1
    if docs_link:
        url = docs_link if "://" in docs_link else f"external:{docs_link}"
        ws.write_url(r, 0, url, string="Technical detail (Great Expectations Data Docs)")
        r += 1
    r += 1
    cols = ["Area", "Check", "Type", "Result", "What was found", "Staff affected", "Staff numbers (sample)"]
    cols += [f"{e['run_id']}" for e in earlier] + ["Trend"]
    for j, name in enumerate(cols):
        ws.write_string(r, j, cell_text(name), head)
    first = r + 1
    for c in rows:
        r += 1
        fmt = green if c["success"] else (red if c["severity"] == "critical" else orange)
        ws.write_string(r, 0, cell_text(c["area"]), wrap)
        ws.write_string(r, 1, cell_text(c["description"]), wrap)
        ws.write_string(r, 2, cell_text(_kind(c)), wrap)
        ws.write_string(r, 3, cell_text(_result_text(c)), fmt)
        ws.write_string(r, 4, cell_text(c["detail"] if not c["success"] else c.get("observed", "")), wrap)
        ws.write_number(r, 5, int(c.get("staff_affected") or 0))
        ws.write_string(r, 6, cell_text(c.get("sample") or ""), wrap)
        past = {rid: (ok, n) for rid, ok, n in c["trend"]}
        for k, e in enumerate(earlier):
            ok_n = past.get(e["run_id"])
            ws.write(r, 7 + k, "" if ok_n is None else ("pass" if ok_n[0] else "FAIL"))
    # sparkline: rows found per run (earlier runs, then this one), from hidden cells on the right
    trend_col = 7 + len(earlier)
    data_col = trend_col + 2
    for i, c in enumerate(rows):
        past = {rid: n for rid, ok, n in c["trend"]}
        values = [past.get(e["run_id"], 0) for e in earlier] + [int(c.get("unexpected_count") or 0)]
        for k, v in enumerate(values):
            ws.write_number(first + i, data_col + k, v)
        cells = (f"{xl_rowcol_to_cell(first + i, data_col)}:"
                 f"{xl_rowcol_to_cell(first + i, data_col + len(values) - 1)}")
        ws.add_sparkline(first + i, trend_col, {"range": f"'Data quality'!{cells}", "type": "column"})
    if rows:
        ws.set_column(data_col, data_col + len(earlier), None, None, {"hidden": True})
    r += 2
    month = runs.filter(pl.col("period") == meta.period)
    if month.height:
        ws.write(r, 0, f"This month ({meta.period[:4]}-{meta.period[4:]})", bold)
        r += 1
        for j, name in enumerate(["Run", "Type", "Status", "Blocking failures", "Warnings"]):
            ws.write(r, j, name, head)
        for m in month.iter_rows(named=True):
            r += 1
            ws.write_string(r, 0, cell_text(m["run_id"]))
            ws.write_string(r, 1, cell_text(m["run_type"]))
            ws.write(r, 2, "NOT VERIFIED — data quality" if m["status"] == "dq_blocked" else "verified")
            ws.write_number(r, 3, int(m["blocking"]))
            ws.write_number(r, 4, int(m["warnings"]))
    ws.set_column(0, 0, 28)
    ws.set_column(1, 1, 60)
    ws.set_column(2, 3, 14)
    ws.set_column(4, 4, 70)
    ws.set_column(5, 5, 10)
    ws.set_column(6, 6, 24)
    ws.set_column(7, 7 + len(earlier), 16)
    ws.freeze_panes(first, 2)
    wb.close()
    return path


def write(out: Path, con: duckdb.DuckDBPyConnection, meta: RunMeta, checks: list[dict], blocked: bool,
          texts: dict[str, dict], docs: Path | None = None) -> dict[str, Path]:
    """finance_dq.html and finance_dq.xlsx into `out`."""
    hist = history(con, meta)
    link = None
    if docs is not None:
        try:
            link = docs.relative_to(out).as_posix()
        except ValueError:
            link = docs.resolve().as_uri()
    page = out / "finance_dq.html"
    write_private(page, html_page(meta, checks, blocked, texts, hist, link).encode("utf-8"))
    book = workbook(out / "finance_dq.xlsx", meta, checks, blocked, texts, hist, link)
    return {"finance_html": page, "finance_xlsx": book}
