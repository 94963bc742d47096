"""The cases of a run as workbooks and mails show them, and which of them each recipient sees.

`report_cases` reads the run's cases (status after the reviewers' decisions in force, as
cases.csv shows them), puts each in its part — `new` since the last run of the same period,
still `open`, or `resolved` since the last run (a case of the previous regular run that this
run no longer has) — and adds what a payroll officer works with: the staff member's entity,
the cause's title (paywatch/titles.py), the assignee and the latest decision.

`cases_for` gives one recipient its cases: an owner the cases it must fix, and those it is in
copy of; a focal point the cases of its entity's staff. Amounts at stake of a case owned by a
unit whose details the recipient may not see are withheld, as `route` does for findings.
"""

from __future__ import annotations

import polars as pl

from detectors.base import SEVERITY_RANK
from paywatch.cases.status import with_decisions
from paywatch.routing import Recipient, Routing
from paywatch.titles import category_title
from paywatch.warehouse import cases as cases_db

PARTS = ("new", "open", "resolved")
PART_TITLES = {"new": "New since the last run", "open": "Still open", "resolved": "Resolved since the last run"}
# statuses that leave nothing to do: a reviewer released it, or judged it a false alarm / expected
SETTLED = ("released", "false_positive", "expected", "resolved")
ACTION_WORDS = {"release": "released", "confirm": "hold confirmed", "false_positive": "marked a false positive",
                "expected": "marked expected", "assign": "assigned", "reopen": "reopened"}

# grain: one row per case shown in a run's reports (its cases and those resolved since the last run)
REPORT_CASE_SCHEMA = {
    "case_id": pl.String, "part": pl.String, "pernr": pl.String, "full_name": pl.String, "entity": pl.String,
    "root_cause": pl.String, "cause_title": pl.String, "owner": pl.String, "in_copy": pl.String,
    "severity": pl.String, "status": pl.String, "assignee": pl.String, "due_date": pl.Date, "days_open": pl.Int64,
    "amount_at_stake_cents": pl.Int64, "currency": pl.String, "n_findings": pl.Int64, "latest_decision": pl.String,
    "first_seen_run": pl.String, "summary": pl.String,
}


def _decision_text(r: dict) -> str | None:
    if not r.get("action"):
        return None
    words = ACTION_WORDS.get(r["action"], r["action"])
    if r["action"] == "assign" and r.get("assignee"):
        words += f" to {r['assignee']}"
    when = r["decided_at"].date().isoformat() if r.get("decided_at") is not None else ""
    text = f"{words} by {r['decided_by']} on {when}"
    if r.get("awaiting_approval"):
        text += " — awaiting a second person's approval"
    elif r.get("approved_by"):
        text += f", approved by {r['approved_by']}"
    return f"{text}: {r['reason']}" if r.get("reason") else text


def report_cases(con, run_id: str, findings: pl.DataFrame, staff: pl.DataFrame) -> pl.DataFrame:
    """The run's cases and those resolved since the last run, sorted by part (new, open,
    resolved), severity, amount at stake (largest first) and PERNR. `findings`: the run's
    findings after decisions; `staff`: pernr, full_name, entity (grain REPORT_CASE_SCHEMA)."""
    parts = []
    if findings.height and "case_id" in findings.columns and findings["case_id"].drop_nulls().len():
        stored = cases_db.run_cases(con, run_id, int(findings["run_version"][0]), findings["config_version"][0])
        now = with_decisions(stored, findings, cases_db.case_decisions(con, run_id), cases_db.DECISION_STATUS)
        before = set(cases_db.previous_run_case_ids(con, run_id))
        parts.append(now.with_columns(pl.when(pl.col("case_id").is_in(list(before))).then(pl.lit("open"))
                                      .otherwise(pl.lit("new")).alias("part")))
    gone = cases_db.resolved_since(con, run_id)
    if gone.height:
        parts.append(gone.with_columns(pl.lit("resolved").alias("part"), pl.lit("resolved").alias("status")))
    if not parts:
        return pl.DataFrame(schema=REPORT_CASE_SCHEMA)
    cols = ["case_id", "part", "pernr", "root_cause", "owner", "in_copy", "severity", "status", "due_date",
            "days_open", "amount_at_stake_cents", "currency", "n_findings", "first_seen_run", "summary"]
    c = pl.concat([p.select(cols).cast({"due_date": pl.Date, "days_open": pl.Int64, "n_findings": pl.Int64,
                                        "amount_at_stake_cents": pl.Int64}) for p in parts], how="vertical_relaxed")
    trail = cases_db.case_decision_trail(con, run_id)
    notes = {r["case_id"]: (r["assignee"], _decision_text(r)) for r in trail.iter_rows(named=True)}
    c = c.with_columns(
        pl.col("case_id").replace_strict({k: v[0] for k, v in notes.items()}, default=None, return_dtype=pl.String)
        .alias("assignee"),
        pl.col("case_id").replace_strict({k: v[1] for k, v in notes.items()}, default=None, return_dtype=pl.String)
        .alias("latest_decision"),
        pl.col("root_cause").map_elements(category_title, return_dtype=pl.String).alias("cause_title"),
        pl.col("in_copy").fill_null(""),
    ).join(staff.select("pernr", "full_name", "entity"), on="pernr", how="left")
    return sort_report_cases(c.select(list(REPORT_CASE_SCHEMA)))


def sort_report_cases(c: pl.DataFrame) -> pl.DataFrame:
    """Part (new, open, resolved), severity (hold first), amount at stake (largest first, none
    last), PERNR, case id."""
    return (c.with_columns(pl.col("part").replace_strict({p: i for i, p in enumerate(PARTS)}, default=9,
                                                         return_dtype=pl.Int64).alias("_p"),
                           pl.col("severity").replace_strict(SEVERITY_RANK, default=9, return_dtype=pl.Int64)
                           .alias("_s"))
            .sort(["_p", "_s", "amount_at_stake_cents", "pernr", "case_id"],
                  descending=[False, False, True, False, False], nulls_last=True)
            .drop("_p", "_s"))


def cases_for(cases: pl.DataFrame, recipient: Recipient, routing: Routing) -> pl.DataFrame:
    """One recipient's cases with `role` ('to fix', 'in copy', 'your staff'), `act` (whether it
    is this recipient's to act on) and amounts withheld where the recipient may not see them."""
    if cases.height == 0:
        return cases.with_columns(pl.lit(None, dtype=pl.String).alias("role"), pl.lit(None, dtype=pl.Boolean)
                                  .alias("act"), pl.lit(False).alias("redacted"))
    owner = pl.col("owner").fill_null("FINANCE")
    if recipient.kind == "owner":
        copy = pl.col("in_copy").fill_null("").str.split(",").list.contains(recipient.scope)
        mine = cases.filter((owner == recipient.scope) | copy).with_columns(
            pl.when(owner == recipient.scope).then(pl.lit("to fix")).otherwise(pl.lit("in copy")).alias("role"))
        sees = owner == recipient.scope
    else:
        mine = cases.filter(pl.col("entity").is_not_null()
                            & (pl.col("entity").str.to_uppercase() == recipient.scope.upper()))
        sees = owner.is_in(list(routing.focal_points_see_details_of))
        mine = mine.with_columns(pl.when(sees).then(pl.lit("your staff")).otherwise(pl.lit("for information"))
                                 .alias("role"))
    open_ = ~pl.col("status").is_in(list(SETTLED)) & pl.col("severity").is_in(["hold", "review"])
    return mine.with_columns(
        (sees & open_ & pl.col("part").is_in(["new", "open"])).alias("act"),
        (~sees).alias("redacted"),
        pl.when(sees).then(pl.col("amount_at_stake_cents")).otherwise(None).alias("amount_at_stake_cents"),
        pl.when(sees).then(pl.col("currency")).otherwise(None).alias("currency"),
        pl.when(sees).then(pl.col("summary")).otherwise(None).alias("summary"),
    )
