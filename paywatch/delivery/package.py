"""Report packages: one per recipient and run (paywatch.routing), with the workbook and
body.html built in `out_dir/<recipient>/` (owner-only files).

Staff are identified by PERNR and name (PA0001 valid in the period). Every package has a
content hash (recipient, data-quality status and the rows as shown): the outbox and the
delivery log use it so that an unchanged package is never delivered twice.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import polars as pl

from detectors.base import FINDING_SCHEMA, SEVERITY_RANK
from paywatch.paths import private_dir, write_private
from paywatch.delivery.cases import PART_TITLES, cases_for, report_cases
from paywatch.delivery.mail import DEFAULT_SENDER, TOP_N, build_message, html_body, mail_context, text_body
from paywatch.delivery.text import safe_name
from paywatch.delivery.workbook import CASE_COLUMNS, SHEET_COLUMNS, workbook_bytes
from paywatch.routing import Recipient, Routing, load_routing, route
from paywatch.warehouse import queries as q

log = logging.getLogger(__name__)

FORMAT_VERSION = "2"  # part of the content hash: a new layout is a new package


@dataclass
class Package:
    """What one recipient receives for one run."""

    run_id: str
    recipient: Recipient
    meta: dict
    subject: str
    html: str
    text: str
    workbook: Path
    html_path: Path
    counts: dict
    content_sha256: str
    workbook_bytes: bytes = field(repr=False, default=b"")

    @property
    def safe_name(self) -> str:
        return safe_name(self.recipient.key)

    @property
    def attachment_name(self) -> str:
        return f"paywatch_{safe_name(self.run_id)}_{self.safe_name}.xlsx"

    def message(self, sender: str = DEFAULT_SENDER) -> EmailMessage:
        return build_message(self, sender)


def period_bounds(period: str) -> tuple[date, date]:
    y, m = int(period[:4]), int(period[4:6])
    return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1])


def staff_directory(con, run_id: str, period: str) -> pl.DataFrame:
    """PERNR -> name and entity from the run's PA0001: the record valid in the period (the
    latest one), else the staff member's latest record. Grain: one row per staff member."""
    a = q.master_data_as_of_run(con, run_id, "stg_assignments")
    if a.height == 0:
        return pl.DataFrame(schema={"pernr": pl.String, "full_name": pl.String, "entity": pl.String})
    start, end = period_bounds(period)
    a = a.with_columns(((pl.col("valid_from") <= end) & (pl.col("valid_to") >= start)).alias("_in"))
    return (a.sort(["pernr", "_in", "valid_from", "valid_to"], descending=[False, True, True, True])
            .unique("pernr", keep="first", maintain_order=True).select("pernr", "full_name", "entity"))


def _wage_types(con, run_id: str) -> pl.DataFrame:
    wt = q.reference_as_of_run(con, run_id, "stg_wage_types")
    return wt.select("wage_type", "wage_type_text", "wage_class").unique("wage_type", keep="first")


def enrich(con, run_id: str, period: str, findings: pl.DataFrame, staff: pl.DataFrame | None = None) -> pl.DataFrame:
    """Findings with the staff member's name and entity and the wage type's text, sorted by
    severity, PERNR, wage type and for-period."""
    staff = staff_directory(con, run_id, period) if staff is None else staff
    f = findings
    for c, t in {**FINDING_SCHEMA, "finding_id": pl.String, "first_seen_run": pl.String, "case_id": pl.String}.items():
        if c not in f.columns:
            f = f.with_columns(pl.lit(None, dtype=t).alias(c))
    f = f.drop([c for c in ("full_name", "entity", "wage_type_text", "wage_class") if c in f.columns])
    f = (f.join(staff, on="pernr", how="left")
         .join(_wage_types(con, run_id), on="wage_type", how="left"))
    f = f.with_columns(pl.col("severity").replace_strict(SEVERITY_RANK, default=9, return_dtype=pl.Int64).alias("_rank"))
    return f.sort(["_rank", "pernr", "category", "wage_type", "for_period"], nulls_last=True).drop("_rank")


def build_packages(con, run_id: str, findings: pl.DataFrame, dq_status: str, out_dir: Path, *,
                   routing: Routing | None = None, dq_notes: Iterable[str] = (), top_n: int = TOP_N,
                   blocked: bool | None = None, due: date | None = None,
                   quiet: list | None = None) -> list[Package]:
    """One package per recipient with something to act on (or every owner, when the run was
    blocked by the data-quality gate): the workbook and body.html in `out_dir/<recipient>/`
    (owner-only files). Recipients with nothing to act on get no package; they are appended to
    `quiet` as (recipient, counts) when a list is given (routing `[mail] empty`)."""
    routing = routing or load_routing()
    info = q.run_info(con, run_id)
    blocked = dq_status.startswith("NOT VERIFIED") if blocked is None else blocked
    meta = {"run_id": run_id, "period": info["period"], "run_type": info["run_type"],
            "payroll_area": info["payroll_area"], "extracted_at": info["extracted_at"],
            "dq_status": dq_status, "dq_notes": list(dq_notes), "blocked": blocked}
    staff = staff_directory(con, run_id, info["period"])
    rows = enrich(con, run_id, info["period"], findings, staff)
    cases = report_cases(con, run_id, findings, staff)
    live = cases.filter(pl.col("part") != "resolved")["due_date"].drop_nulls() if cases.height else None
    meta["due_date"] = live[0] if live is not None and live.len() else due
    out_dir = Path(out_dir)
    private_dir(out_dir)
    for old in out_dir.iterdir():  # packages of an earlier build (routing may have changed)
        if old.is_dir() and old.name.startswith(("owner-", "entity-", "digest-")):
            for p in old.iterdir():
                p.unlink()
            old.rmdir()
    packages = []
    routed = route(rows, routing)
    for recipient in routing.recipients:
        frame = routed.get(recipient)
        mine = cases_for(cases, recipient, routing)
        if frame is None:
            frame = rows.clear().with_columns(pl.lit(False).alias("redacted"))
        counts = _counts(frame, mine, meta["run_type"])
        if not (counts["act"] or (blocked and recipient.kind == "owner")):
            if quiet is not None and (recipient.kind == "owner" or frame.height or mine.height):
                quiet.append((recipient, counts))
            continue
        packages.append(_package(run_id, recipient, frame, mine, meta, counts, out_dir, top_n))
    log.info("run %s: %d report package(s) built (%s)", run_id, len(packages),
             ", ".join(f"{p.recipient.key}={p.counts['act']} case(s)" for p in packages) or "nothing to act on")
    return packages


def _counts(frame: pl.DataFrame, cases: pl.DataFrame, run_type: str) -> dict:
    c = {"exceptions": frame.height, "staff": frame["pernr"].drop_nulls().n_unique() if frame.height else 0}
    for s in SEVERITY_RANK:
        c[s] = frame.filter(pl.col("severity") == s).height
    c["redacted"] = int(frame["redacted"].sum()) if frame.height else 0
    act = cases.filter(pl.col("act")) if cases.height else cases
    c["cases"] = cases.filter(pl.col("part") != "resolved").height if cases.height else 0
    c["act"] = act.height
    c["act_new"] = act.filter(pl.col("part") == "new").height if act.height else 0
    for p in PART_TITLES:
        c[f"part_{p}"] = cases.filter(pl.col("part") == p).height if cases.height else 0
    c["held"] = (act.filter(pl.col("severity") == "hold")["pernr"].n_unique()
                 if act.height and run_type == "FINAL" else 0)
    return c


def _content_sha(recipient: Recipient, meta: dict, frame: pl.DataFrame, cases: pl.DataFrame) -> str:
    cols = [c for _, c, _, _ in SHEET_COLUMNS if c in frame.columns] + ["category", "redacted"]
    ccols = [c for _, c, _, _ in CASE_COLUMNS if c in cases.columns]
    doc = {"format": FORMAT_VERSION, "run_id": meta["run_id"], "recipient": [recipient.key, recipient.name,
           list(recipient.to)], "dq": meta["dq_status"], "dq_notes": meta["dq_notes"],
           "due": str(meta.get("due_date")),
           "rows": [[None if v is None else str(v) for v in r] for r in frame.select(cols).iter_rows()],
           "cases": [[None if v is None else str(v) for v in r] for r in cases.select(ccols).iter_rows()]}
    return hashlib.sha256(json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _package(run_id: str, recipient: Recipient, frame: pl.DataFrame, cases: pl.DataFrame, meta: dict, counts: dict,
             out_dir: Path, top_n: int) -> Package:
    folder = private_dir(out_dir / safe_name(recipient.key))
    ctx = mail_context(recipient, meta, cases, counts, top_n)
    meta = {**meta, "headline": ctx["first_line"]}
    pkg = Package(run_id=run_id, recipient=recipient, meta=meta, subject=ctx["subject"], html="",
                  text="", workbook=folder / f"paywatch_{safe_name(run_id)}_{safe_name(recipient.key)}.xlsx",
                  html_path=folder / "body.html", counts=counts,
                  content_sha256=_content_sha(recipient, meta, frame, cases))
    pkg.workbook_bytes = workbook_bytes(recipient, meta, frame, counts, cases)
    pkg.html = html_body(ctx)
    pkg.text = text_body(ctx)
    write_private(pkg.workbook, pkg.workbook_bytes)
    write_private(pkg.html_path, pkg.html.encode("utf-8"))
    return pkg
