"""Reports of one run: exceptions.csv and cases.csv (docs/cli-contract.md) and a human-readable
summary. Text cells pass through `cell_text` (paywatch/delivery/text.py, the one home of
report-safe text: IBANs masked, control characters dropped): none starts with = + - @, a tab
or a carriage return — such a cell gets a leading ' — so no spreadsheet runs one as a formula;
amounts are numbers and may be negative."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl

from detectors.base import SEVERITY_RANK
from detectors.money import plain
from paywatch.delivery.text import cell_text

EXCEPTIONS_HEADER = ("run_id", "PERNR", "detector", "category", "severity", "owner", "LGART", "FPPER",
                     "amount", "expected", "WAERS", "score", "explanation", "case_id")
CASES_HEADER = ("run_id", "case_id", "PERNR", "root_cause", "owner", "severity", "status", "first_seen_run",
                "due_date", "findings", "amount_at_stake", "WAERS", "summary")


def fmt_score(score: float | None) -> str:
    if score is None:
        return ""
    text = f"{max(0.0, min(1.0, float(score))):.4f}".rstrip("0").rstrip(".")
    return text or "0"


def _t(value) -> str:
    """A text cell: never a formula (a leading = + - @ tab or CR gets a quote)."""
    return cell_text(value)


def exceptions_csv_text(run_id: str, findings: pl.DataFrame) -> str:
    """The contract's projection of findings: header, one row per exception, sorted."""
    # the contract's order, then category and text: rows of one PERNR, detector, LGART and FPPER
    # (a detector raising two categories on one line) come out the same every time
    rows = findings.sort(["pernr", "detector", "wage_type", "for_period", "category", "explanation"],
                         nulls_last=False).iter_rows(named=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EXCEPTIONS_HEADER)
    for r in rows:
        w.writerow([_t(run_id), _t(r["pernr"]), _t(r["detector"]), _t(r["category"]), _t(r["severity"]),
                    _t(r["owner"]), _t(r["wage_type"]), _t(r["for_period"]), plain(r["amount_cents"]),
                    plain(r["expected_cents"]), _t(r["currency"]),
                    fmt_score(r["score"]), _t(r["explanation"]), _t(r.get("case_id"))])
    return buf.getvalue()


def write_exceptions(out: Path, run_id: str, findings: pl.DataFrame) -> Path:
    path = out / "exceptions.csv"
    path.write_text(exceptions_csv_text(run_id, findings), encoding="utf-8", newline="")
    return path


def sort_cases(cases: pl.DataFrame) -> pl.DataFrame:
    """cases.csv order: severity (hold, review, info), amount at stake descending (none last),
    PERNR, then case id."""
    return (cases.with_columns(pl.col("severity").replace_strict(SEVERITY_RANK, default=len(SEVERITY_RANK),
                                                                 return_dtype=pl.Int64).alias("_r"))
            .sort(["_r", "amount_at_stake_cents", "pernr", "case_id"], descending=[False, True, False, False],
                  nulls_last=True)
            .drop("_r"))


def cases_csv_text(run_id: str, cases: pl.DataFrame | None) -> str:
    """The contract's projection of cases: header, one row per case, sorted (`sort_cases`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CASES_HEADER)
    if cases is not None and cases.height:
        for r in sort_cases(cases).iter_rows(named=True):
            due = r["due_date"]
            w.writerow([_t(run_id), _t(r["case_id"]), _t(r["pernr"]), _t(r["root_cause"]), _t(r["owner"]),
                        _t(r["severity"]), _t(r["status"]), _t(r["first_seen_run"]),
                        _t(due.isoformat() if hasattr(due, "isoformat") else due), str(int(r["n_findings"])),
                        plain(r["amount_at_stake_cents"]),
                        _t(r["currency"]) if r["amount_at_stake_cents"] is not None else "", _t(r["summary"])])
    return buf.getvalue()


def write_cases(out: Path, run_id: str, cases: pl.DataFrame | None) -> Path:
    """cases.csv beside exceptions.csv (header only when there is no case)."""
    path = out / "cases.csv"
    path.write_text(cases_csv_text(run_id, cases), encoding="utf-8", newline="")
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


def summary_markdown(meta: dict, findings: pl.DataFrame, dq: list[dict] | None = None, load_outcome: str = "",
                     cases: pl.DataFrame | None = None) -> str:
    """A one-screen summary: counts by severity, owner and category, and of cases; no personal data."""
    out = staff_outcomes(findings)
    lines = [f"# Paywatch — {meta['run_id']}", "",
             f"Run {meta['run_type']} of period {meta['period']} (payroll area {meta['payroll_area']}), "
             f"extracted {meta.get('extracted_at', '')}. Load: {load_outcome or 'loaded'}.", ""]
    held = out.filter(pl.col("outcome") == "hold").height
    review = out.filter(pl.col("outcome") == "review").height
    lines += [f"- Staff on **hold**: {held}", f"- Staff to **review**: {review}",
              f"- Exceptions: {findings.height}"]
    if cases is not None:
        by = {s: cases.filter(pl.col("severity") == s).height for s in SEVERITY_RANK}
        new = cases.filter(pl.col("status") == "new").height
        lines.append(f"- Cases (cases.csv): {cases.height} — {by['hold']} hold, {by['review']} review, "
                     f"{by['info']} info; {new} new in this run")
    lines.append("")
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
