"""The Finance data-quality report of a run: `finance_dq.html` (one page) and
`finance_dq.xlsx` (sheet 'Data quality').

Written for a finance officer who has never heard of Great Expectations: "checks", each
said in plain words (the suites' `description`), what was found (`finance_text`), whether it
blocked the verification, how many staff it concerns, and how the same check went in the
previous runs of the payroll area (read from `dq_results`), plus the runs of the month.
No names or bank accounts: staff are counted, and named by staff number (PERNR) only.
"""

from __future__ import annotations

import html
from pathlib import Path

import duckdb
import polars as pl

from detectors.base import RunMeta
from paywatch.delivery.text import cell_text
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

def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def _squares(trend: list[tuple[str, bool, int]], now: dict) -> str:
    """Tiny inline SVG: one square per earlier run (green pass, red fail), then this run."""
    items = [(r, ok, n) for r, ok, n in trend[-(TREND_RUNS - 1):]] + [("this run", now["success"],
                                                                      now.get("unexpected_count") or 0)]
    parts = []
    for i, (rid, ok, n) in enumerate(items):
        colour = "#2e7d32" if ok else ("#c62828" if now["severity"] == "critical" else "#ef6c00")
        stroke = ' stroke="#000" stroke-width="1.5"' if rid == "this run" else ""
        parts.append(f'<rect x="{i * 12}" y="1" width="10" height="10" fill="{colour}"{stroke}>'
                     f'<title>{_e(rid)}: {"pass" if ok else "fail"}, {n} found</title></rect>')
    return f'<svg width="{len(items) * 12}" height="12" role="img" aria-label="trend">{"".join(parts)}</svg>'


def _bars(runs: pl.DataFrame, run_id: str) -> str:
    """Inline SVG bar chart: failed checks per run (blocking red, warnings orange)."""
    if runs.height == 0:
        return ""
    top = max(1, int((runs["blocking"] + runs["warnings"]).max()))
    w, h, gap = 46, 70, 8
    parts = []
    for i, r in enumerate(runs.iter_rows(named=True)):
        x = i * (w + gap)
        hb = r["blocking"] / top * h
        hw = r["warnings"] / top * h
        parts.append(f'<rect x="{x}" y="{h - hb:.1f}" width="{w}" height="{hb:.1f}" fill="#c62828"/>')
        parts.append(f'<rect x="{x}" y="{h - hb - hw:.1f}" width="{w}" height="{hw:.1f}" fill="#ef6c00"/>')
        weight = "bold" if r["run_id"] == run_id else "normal"
        label = f'{r["period"][2:4]}-{r["period"][4:]} {r["run_type"]}'
        parts.append(f'<text x="{x + w / 2}" y="{h + 12}" font-size="9" text-anchor="middle" '
                     f'font-weight="{weight}">{_e(label)}</text>')
        parts.append(f'<text x="{x + w / 2}" y="{h - hb - hw - 2:.1f}" font-size="9" text-anchor="middle">'
                     f'{r["blocking"] + r["warnings"]}</text>')
    width = runs.height * (w + gap)
    return (f'<svg width="{width}" height="{h + 16}" role="img" aria-label="failed checks per run">'
            f'{"".join(parts)}</svg>')


CSS = """
body{font-family:Segoe UI,Helvetica,Arial,sans-serif;font-size:13px;color:#222;max-width:1100px;margin:18px auto;padding:0 12px}
h1{font-size:20px;margin:0 0 2px} h2{font-size:15px;margin:16px 0 6px} .sub{color:#555;margin-bottom:10px}
.banner{padding:10px 14px;border-radius:6px;margin:10px 0;font-size:14px}
.blocked{background:#fdecea;border:2px solid #c62828} .warning{background:#fff4e5;border:1px solid #ef6c00}
.ok{background:#edf7ed;border:1px solid #2e7d32} .banner ul{margin:6px 0 0 18px;padding:0}
.kpis{display:flex;gap:10px;margin:8px 0} .kpi{border:1px solid #ddd;border-radius:6px;padding:6px 12px;min-width:120px}
.kpi b{font-size:18px;display:block}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #e3e3e3;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f5f5f5;font-weight:600} td.n{text-align:right} .fail{color:#c62828;font-weight:600} .warn{color:#ef6c00;font-weight:600}
.pass{color:#2e7d32} details summary{cursor:pointer} .small{font-size:11px;color:#666}
@media print{details{display:none}}
"""


def html_page(meta: RunMeta, checks: list[dict], blocked: bool, texts: dict[str, dict], hist: pl.DataFrame,
              docs_link: str | None) -> str:
    rows = _rows(checks, texts, hist, meta.run_id)
    kind, headline = status_line(checks, blocked)
    failed = [r for r in rows if not r["success"]]
    crit = [r for r in failed if r["severity"] == "critical"]
    warn = [r for r in failed if r["severity"] != "critical"]
    staff = max([r.get("staff_affected") or 0 for r in failed], default=0)
    period = f"{meta.period[:4]}-{meta.period[4:]}"
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Data quality — {_e(meta.run_id)}"
           f"</title><style>{CSS}</style></head><body>",
           f"<h1>Payroll data quality — {_e(meta.run_id)}</h1>",
           f"<div class='sub'>Run {_e(meta.run_type)} of {period}, payroll area {_e(meta.payroll_area)}. "
           f"Before looking for pay errors, Paywatch checks that the extract received from Umoja is complete and "
           f"consistent: {len(checks)} checks on the payroll results, the staff records and the reference tables.</div>"]
    items = "".join(f"<li>{_e(r['detail'])}</li>" for r in (crit if kind == "blocked" else warn))
    out.append(f"<div class='banner {kind}'><b>{_e(headline)}</b>{f'<ul>{items}</ul>' if items else ''}</div>")
    out.append("<div class='kpis'>"
               f"<div class='kpi'><b>{len(checks) - len(failed)} / {len(checks)}</b>checks passed</div>"
               f"<div class='kpi'><b class='{'fail' if crit else ''}'>{len(crit)}</b>blocking failure"
               f"{'' if len(crit) == 1 else 's'}</div>"
               f"<div class='kpi'><b class='{'warn' if warn else ''}'>{len(warn)}</b>warning"
               f"{'' if len(warn) == 1 else 's'}</div>"
               f"<div class='kpi'><b>{staff}</b>staff affected (largest failed check)</div></div>")
    if failed:
        out.append("<h2>What failed</h2><table><tr><th>Check</th><th>Type</th><th>What we found</th>"
                   "<th>Staff affected</th><th>Trend</th></tr>")
        for r in failed:
            cls = "fail" if r["severity"] == "critical" else "warn"
            out.append(f"<tr><td>{_e(r['description'])}<div class='small'>{_e(r['name'])}</div></td>"
                       f"<td class='{cls}'>{_kind(r)}</td><td>{_e(r['detail'])}</td>"
                       f"<td class='n'>{_staff(r)}</td><td>{_squares(r['trend'], r)}</td></tr>")
        out.append("</table>")
    # every check, grouped by what it looks at
    out.append("<h2>All checks, by file</h2><table><tr><th>Area</th><th>Checks</th><th>Passed</th>"
               "<th>Blocking failures</th><th>Warnings</th></tr>")
    areas: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: FRAME_ORDER.index(r["frame"]) if r["frame"] in FRAME_ORDER else 99):
        areas.setdefault(r["area"], []).append(r)
    for area, rs in areas.items():
        nb = sum(1 for r in rs if not r["success"] and r["severity"] == "critical")
        nw = sum(1 for r in rs if not r["success"] and r["severity"] != "critical")
        detail = "".join(
            f"<tr><td>{_e(r['description'])} <span class='small'>({_e(r['name'])})</span></td><td>{_kind(r)}</td>"
            f"<td class='{'pass' if r['success'] else ('fail' if r['severity'] == 'critical' else 'warn')}'>"
            f"{_result_text(r)}</td><td class='n'>{_staff(r)}</td>"
            f"<td>{_squares(r['trend'], r)}</td></tr>" for r in rs)
        out.append(f"<tr><td><details><summary>{_e(area)}</summary><table><tr><th>Check</th><th>Type</th>"
                   f"<th>Result</th><th>Staff</th><th>Trend</th></tr>{detail}</table></details></td>"
                   f"<td class='n'>{len(rs)}</td><td class='n'>{len(rs) - nb - nw}</td>"
                   f"<td class='n {'fail' if nb else ''}'>{nb}</td><td class='n {'warn' if nw else ''}'>{nw}</td></tr>")
    out.append("</table>")
    runs = _runs_of(hist)
    if runs.height:
        out.append(f"<h2>Trend: failed checks in the last {runs.height} runs of payroll area "
                   f"{_e(meta.payroll_area)}</h2>{_bars(runs, meta.run_id)}"
                   "<div class='small'>Red: blocking failures; orange: warnings. Squares in the tables: one per "
                   "run, oldest first, this run outlined.</div>")
        month = runs.filter(pl.col("period") == meta.period)
        out.append(f"<h2>This month ({period})</h2><table><tr><th>Run</th><th>Type</th><th>Status</th>"
                   "<th>Blocking failures</th><th>Warnings</th></tr>")
        for r in month.iter_rows(named=True):
            st = "NOT VERIFIED — data quality" if r["status"] == "dq_blocked" else "verified"
            out.append(f"<tr><td>{_e(r['run_id'])}</td><td>{_e(r['run_type'])}</td>"
                       f"<td class='{'fail' if r['status'] == 'dq_blocked' else 'pass'}'>{st}</td>"
                       f"<td class='n'>{r['blocking']}</td><td class='n'>{r['warnings']}</td></tr>")
        out.append("</table>")
    link = (f"<a href='{_e(docs_link)}'>technical detail of every check (Great Expectations Data Docs)</a>"
            if docs_link else "technical detail: not available for this run")
    out.append(f"<p class='small'>Staff are named by staff number only. Blocking checks stop the search for pay "
               f"errors; warnings do not. {link}. The checks are kept in versioned files (paywatch/dq/suites); "
               f"thresholds are changed there.</p></body></html>")
    return "\n".join(out)


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
    page.write_text(html_page(meta, checks, blocked, texts, hist, link), encoding="utf-8")
    book = workbook(out / "finance_dq.xlsx", meta, checks, blocked, texts, hist, link)
    return {"finance_html": page, "finance_xlsx": book}
