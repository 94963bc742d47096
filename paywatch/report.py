"""Reports of one run: exceptions.csv (docs/cli-contract.md) and a human-readable summary."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl

from detectors.base import SEVERITY_RANK
from detectors.money import plain

EXCEPTIONS_HEADER = ("run_id", "PERNR", "detector", "category", "severity", "owner", "LGART", "FPPER",
                     "amount", "expected", "WAERS", "score", "explanation")


def fmt_score(score: float | None) -> str:
    if score is None:
        return ""
    text = f"{max(0.0, min(1.0, float(score))):.4f}".rstrip("0").rstrip(".")
    return text or "0"


def exceptions_csv_text(run_id: str, findings: pl.DataFrame) -> str:
    """The contract's projection of findings: header, one row per exception, sorted."""
    rows = findings.sort(["pernr", "detector", "wage_type", "for_period"], nulls_last=False).iter_rows(named=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EXCEPTIONS_HEADER)
    for r in rows:
        w.writerow([run_id, r["pernr"], r["detector"], r["category"], r["severity"], r["owner"],
                    r["wage_type"] or "", r["for_period"] or "", plain(r["amount_cents"]),
                    plain(r["expected_cents"]), r["currency"] or "" if (r["amount_cents"] is not None or r["expected_cents"] is not None) else "",
                    fmt_score(r["score"]), r["explanation"]])
    return buf.getvalue()


def write_exceptions(out: Path, run_id: str, findings: pl.DataFrame) -> Path:
    path = out / "exceptions.csv"
    path.write_text(exceptions_csv_text(run_id, findings), encoding="utf-8", newline="")
    return path


def staff_outcomes(findings: pl.DataFrame) -> pl.DataFrame:
    """A staff member's outcome is the highest severity among their rows. Grain: staff."""
    if findings.height == 0:
        return pl.DataFrame(schema={"pernr": pl.String, "outcome": pl.String, "n_findings": pl.UInt32})
    ranked = findings.with_columns(pl.col("severity").replace_strict(SEVERITY_RANK, return_dtype=pl.Int64).alias("_r"))
    inv = {v: k for k, v in SEVERITY_RANK.items()}
    return (ranked.group_by("pernr").agg(pl.col("_r").min().alias("_r"), pl.len().alias("n_findings"))
            .with_columns(pl.col("_r").replace_strict(inv, return_dtype=pl.String).alias("outcome"))
            .select("pernr", "outcome", "n_findings").sort("pernr"))


def summary_markdown(meta: dict, findings: pl.DataFrame, dq: list[dict] | None = None, load_outcome: str = "") -> str:
    """A one-screen summary: counts by severity, owner and category; no personal data."""
    out = staff_outcomes(findings)
    lines = [f"# Paywatch — {meta['run_id']}", "",
             f"Run {meta['run_type']} of period {meta['period']} (payroll area {meta['payroll_area']}), "
             f"extracted {meta.get('extracted_at', '')}. Load: {load_outcome or 'loaded'}.", ""]
    held = out.filter(pl.col("outcome") == "hold").height
    review = out.filter(pl.col("outcome") == "review").height
    lines += [f"- Staff on **hold**: {held}", f"- Staff to **review**: {review}",
              f"- Exceptions: {findings.height}", ""]
    if findings.height:
        lines += ["| category | owner | severity | exceptions | staff |", "|---|---|---|---|---|"]
        agg = (findings.group_by("category", "owner", "severity")
               .agg(pl.len().alias("n"), pl.col("pernr").n_unique().alias("staff"))
               .sort("n", "category", descending=[True, False]))
        lines += [f"| {r['category']} | {r['owner']} | {r['severity']} | {r['n']} | {r['staff']} |"
                  for r in agg.iter_rows(named=True)]
        lines.append("")
    if dq:
        lines += ["## Data quality", "", "| check | severity | result | detail |", "|---|---|---|---|"]
        lines += [f"| {c['name']} | {c['severity']} | {'pass' if c['success'] else 'FAIL'} | {c['detail']} |" for c in dq]
        lines.append("")
    return "\n".join(lines)
