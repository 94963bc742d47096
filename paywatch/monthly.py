"""The monthly summary: KPI toward the target, who was excluded and why (counts only), per-rule
precision, time to resolution, repeat offenders, exclusions by owner and entity."""

from __future__ import annotations

import html
from pathlib import Path

import duckdb
import polars as pl

from paywatch.settings import kpi_targets
from paywatch import lifecycle as lc
from paywatch.paths import private_dir, secure_file, write_private


def _md_table(frame: pl.DataFrame, limit: int = 30) -> str:
    if frame.height == 0:
        return "_none_\n"
    cols = frame.columns
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in frame.head(limit).iter_rows():
        rows.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(rows) + "\n"


def write_monthly_summary(con: duckdb.DuckDBPyConnection, area: str, period: str, out: Path,
                          cfg: dict | None = None) -> Path:
    """monthly_summary.md, monthly_summary.html and kpi.png into `out`."""
    private_dir(out)  # counts only, but of named staff: owner-only like every report
    k = lc.kpi(con, area)
    lines = kpi_targets(cfg)
    chart = lc.kpi_chart(k, out / "kpi.png", lines, title=f"Staff excluded at FINAL — payroll area {area}")
    secure_file(chart)  # matplotlib creates it with the process umask
    this = k.filter(pl.col("period") == period)
    n = this["excluded_staff"][0] if this.height else 0
    avg = this["avg_12m"][0] if this.height else 0.0
    by = lc.exclusions_by(con).filter(pl.col("period") == period)
    text = "\n".join([
        f"# Monthly close — payroll area {area}, {period[:4]}-{period[4:]}", "",
        f"- Staff excluded at FINAL: **{n}** (12-month average {avg:.1f}; 2018 average {lines.baseline:g}; target {lines.target:g})", "",
        "![KPI](kpi.png)", "", "## Staff excluded per month", _md_table(k.select("period", "excluded_staff", "avg_12m")),
        "## Exclusions by owner and client entity", _md_table(by),
        "## Time to resolution (runs until a recheck confirmed the fix)",
        _md_table(lc.time_to_resolution(con).filter(pl.col("period") == period)),
        "## Repeat offenders (excluded in two or more months)", _md_table(lc.repeat_offenders(con)),
        "## Per-rule precision from reviewers' decisions", _md_table(lc.rule_precision(con)),
    ])
    write_private(out / "monthly_summary.md", text.encode("utf-8"))
    body = "".join(f"<p>{html.escape(line)}</p>" if not line.startswith("|") else f"<pre>{html.escape(line)}</pre>"
                   for line in text.splitlines() if line and not line.startswith("!["))
    write_private(out / "monthly_summary.html", (
        f"<!doctype html><meta charset='utf-8'><title>Paywatch {html.escape(area)} {html.escape(period)}</title>"
        f"<body style='font-family:sans-serif;max-width:60em'>{body}<img src='{chart.name}' alt='KPI chart'></body>"
    ).encode("utf-8"))
    return out
