"""The monthly close report: the KPI toward the target (scaled to the area's staff), who is
excluded at FINAL and why (case, owner, days open), the salary advances recommended and how
earlier ones were paid and recovered, exclusions and cases by owner and entity, time to
resolution, repeat offenders and per-rule precision.

Written as monthly_summary.html (Jinja2, autoescaped, self-contained: no script, the chart
embedded as a data: URI) and monthly_summary.md from the same figures, with kpi.png beside
them. Staff are named by personnel number only: no names, no bank details.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from paywatch import lifecycle as lc
from paywatch.paths import private_dir, secure_file, write_private
from paywatch.settings import kpi_targets
from paywatch.titles import category_title, detector_title
from paywatch.warehouse import closes

DASH = "—"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def num(value, digits: int = 0) -> str:
    """A count or figure with thousands separators, rounded; '—' when there is none."""
    if value is None or (isinstance(value, float) and value != value):
        return DASH
    return f"{value:,.{digits}f}"


def pct(value) -> str:
    return DASH if value is None or (isinstance(value, float) and value != value) else f"{value:.0%}"


def money(cents, currency: str | None = None) -> str:
    if cents is None:
        return DASH
    return f"{cents / 100:,.2f}" + (f" {currency}" if currency else "")


def month_name(period) -> str:
    p = str(period or "")
    return f"{MONTHS[int(p[4:]) - 1]} {p[:4]}" if len(p) == 6 and p.isdigit() and 1 <= int(p[4:]) <= 12 else (p or DASH)


def dash(value) -> str:
    return DASH if value is None or value == "" else value


def _md(value) -> str:
    """A table cell of the Markdown file: no HTML, no cell break, one line."""
    return html.escape(str(value)).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def environment() -> Environment:
    """The templates of paywatch/templates: HTML autoescaped, Markdown through the `md` filter."""
    env = Environment(loader=PackageLoader("paywatch", "templates"), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True,
                                                   default=False),
                      trim_blocks=False, keep_trailing_newline=True)
    env.filters.update(num=num, pct=pct, money=money, month=month_name, dash=dash, md=_md)
    return env


def _causes(categories: str | None) -> str:
    return ", ".join(category_title(c.strip()) for c in (categories or "").split(",") if c.strip()) or DASH


def _excluded_rows(con, area: str, period: str, final: str, excluded: pl.DataFrame) -> list[dict]:
    """One row per case holding a staff member at FINAL; a staff member held by findings
    stored before cases existed gets one row with the causes (no case id)."""
    from paywatch.delivery.package import staff_directory

    cases = closes.excluded_cases_at_final(con, area, period)
    who = staff_directory(con, final, period).select("pernr", "entity")
    held = excluded.select("pernr", "net_pay_cents", "currency")
    rows = []
    for r in cases.join(who, on="pernr", how="left").join(held.rename({"currency": "net_currency"}), on="pernr",
                                                           how="left").iter_rows(named=True):
        rows.append({"case_id": r["case_id"], "pernr": r["pernr"], "entity": r["entity"],
                     "cause": category_title(r["root_cause"]), "owner": r["owner"], "in_copy": r["in_copy"],
                     "days_open": r["days_open"], "net_pay_cents": r["net_pay_cents"], "currency": r["net_currency"]})
    covered = set(cases["pernr"].to_list())
    for r in excluded.join(who, on="pernr", how="left").iter_rows(named=True):
        if r["pernr"] not in covered:
            rows.append({"case_id": None, "pernr": r["pernr"], "entity": r["entity"], "cause": _causes(r["categories"]),
                         "owner": r["owners"], "in_copy": None, "days_open": None,
                         "net_pay_cents": r["net_pay_cents"], "currency": r["currency"]})
    return sorted(rows, key=lambda r: (r["pernr"], r["case_id"] or ""))


def close_figures(con: duckdb.DuckDBPyConnection, area: str, period: str, cfg: dict | None = None,
                  chart_src: str = "kpi.png") -> dict:
    """Everything the close report shows for one area's month, as plain values (the
    templates format them). Reads only: the close itself is recorded by lifecycle.close_period."""
    cfg = cfg or {}
    policy = cfg.get("lifecycle", {})
    res = lc.close_period(con, area, period, policy, record=False)
    final = closes.final_run_id(con, area, period)
    targets = kpi_targets(cfg or None)
    k = lc.kpi_per_staff(con, area).filter(pl.col("period") <= period)
    this = k.filter(pl.col("period") == period)
    row = this.row(0, named=True) if this.height else {}
    staff_paid = row.get("staff_paid") or 0
    per = 1000 / targets.for_staff
    excluded = _excluded_rows(con, area, period, final, res.excluded)
    by_staff_cases: dict[str, list[str]] = {}
    for r in excluded:
        if r["case_id"]:
            by_staff_cases.setdefault(r["pernr"], []).append(r["case_id"])
    advances = [{"pernr": r["pernr"], "cases": ", ".join(by_staff_cases.get(r["pernr"], [])),
                 "net_pay_cents": r["net_pay_cents"], "currency": r["currency"]}
                for r in res.excluded.filter(pl.col("advance_recommended")).iter_rows(named=True)]
    case_month = lc.case_kpi_monthly(con, area).filter(pl.col("period") == period)
    cases_by = [(title, key, lc.cases_by(con, key, area).filter(pl.col("period") == period).to_dicts())
                for title, key in (("owner", "owner"), ("entity", "entity"))]
    repeat = (lc.repeat_offenders(con, min_months=1)
              .with_columns(pl.col("periods").list.eval(pl.element().filter(pl.element() <= period)))
              .with_columns(pl.col("periods").list.len().alias("months_excluded"))
              .filter(pl.col("months_excluded") >= 2).sort(["months_excluded", "pernr"], descending=[True, False]))
    prec = lc.rule_precision(con).filter(pl.col("period") <= period)
    prec = (prec.group_by("detector").agg(pl.col("confirmed").sum(), pl.col("false_positives").sum())
            .with_columns((pl.col("confirmed") / (pl.col("confirmed") + pl.col("false_positives"))).alias("precision"))
            .sort("detector"))
    return {
        "area": area, "period": period, "month": month_name(period), "final_run": final,
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "excluded_count": res.excluded.height, "avg_12m": row.get("avg_12m"),
        "staff_paid": staff_paid, "per_1000": row.get("per_1000_staff"),
        "baseline": targets.baseline, "target": targets.target, "for_staff": targets.for_staff,
        "baseline_per_1000": targets.baseline * per, "target_per_1000": targets.target * per,
        "baseline_here": targets.baseline * staff_paid / targets.for_staff,
        "target_here": targets.target * staff_paid / targets.for_staff,
        "cases": case_month.row(0, named=True) if case_month.height else None,
        "chart_src": chart_src,
        "excluded": excluded,
        "advances_enabled": bool(policy.get("advance_enabled", True)),
        "advance_floor_cents": int(policy.get("advance_min_net_cents", 50_000)),
        "advances": advances,
        "followup": lc.advance_followup(con, area, period, cfg).to_dicts(),
        "history": k.to_dicts(),
        "exclusions_by": lc.exclusions_by(con, area).filter(pl.col("period") == period).to_dicts(),
        "cases_by": cases_by,
        "resolution": lc.time_to_resolution(con, area).filter(pl.col("period") == period).to_dicts(),
        "repeat": [{"pernr": r["pernr"], "months_excluded": r["months_excluded"],
                    "months": ", ".join(month_name(p) for p in r["periods"])} for r in repeat.iter_rows(named=True)],
        "precision": [{"rule": f"{detector_title(r['detector'])}", **r} for r in prec.iter_rows(named=True)],
    }


def write_monthly_summary(con: duckdb.DuckDBPyConnection, area: str, period: str, out: Path,
                          cfg: dict | None = None) -> Path:
    """monthly_summary.html, monthly_summary.md and kpi.png into `out`; returns `out`."""
    private_dir(out)  # personnel numbers and held pay: owner-only like every report
    targets = kpi_targets(cfg)
    chart = lc.kpi_rate_chart(lc.kpi_per_staff(con, area).filter(pl.col("period") <= period), out / "kpi.png",
                              targets, title=f"Staff excluded at FINAL — payroll area {area}")
    secure_file(chart)  # matplotlib creates it with the process umask
    data_uri = "data:image/png;base64," + base64.b64encode(chart.read_bytes()).decode("ascii")
    figures = close_figures(con, area, period, cfg, chart_src=data_uri)
    env = environment()
    write_private(out / "monthly_summary.html", env.get_template("monthly_summary.html").render(**figures).encode("utf-8"))
    write_private(out / "monthly_summary.md", env.get_template("monthly_summary.md").render(**figures).encode("utf-8"))
    return out
