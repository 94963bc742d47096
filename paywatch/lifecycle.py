"""Review decisions, their effect on triage, the monthly close and the held-staff KPI.

Decisions are an append-only audit trail (who, when, why), also journaled outside the
database (paywatch/journal.py). Refused (DecisionError): a blank name or reason, an expiry
that is not a real future date, a finding, case, run, staff member or detector that does not
exist. A decision identical to the one in force records nothing. A release takes effect only
when someone other than its author approves it (maker-checker). Lifecycle, exclusions and the
KPI are views (paywatch/warehouse/views.py) over findings + decisions, so nothing here
ever edits a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from paywatch import journal
from paywatch.journal import JournalError, journal_path
from paywatch.settings import KpiTargets
from paywatch.warehouse import closes, decisions
from paywatch.warehouse.db import transaction
from paywatch.warehouse.decisions import decided
# The KPI reads live in the warehouse; re-exported here, where the notebooks and the
# monthly summary have always found them.
from paywatch.warehouse.kpi import (  # noqa: F401
    case_journey,
    case_kpi_monthly,
    cases_by,
    exclusions_by,
    kpi_monthly as kpi,
    repeat_offenders,
    rule_precision,
    time_to_resolution,
)

ACTIONS = ("assign", "release", "confirm", "false_positive", "expected", "reopen")
# what a decision does to the finding's severity in reports (held staff follow the views)
DECIDED_SEVERITY = {"release": "info", "false_positive": "info", "expected": "info"}
ACTION_TEXT = {"release": "Released", "false_positive": "Marked a false positive", "expected": "Marked expected",
               "confirm": "Hold confirmed", "assign": "Assigned", "reopen": "Reopened"}
# actions that take effect only when a second person approves them (maker-checker)
NEEDS_APPROVAL = frozenset({"release"})


class DecisionError(ValueError):
    """A decision that cannot be recorded (unknown target, bad action, blank reason or name,
    expiry not a real future date, self-approval): `paywatch decide` exits 2 with this line."""


@dataclass
class Decided:
    """What one `decide` did: ids recorded, and requests that changed nothing (with why)."""

    recorded: list[int] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self, action: str) -> str:
        parts = [f"{len(self.recorded)} decision(s) recorded: {action}"] if self.recorded else []
        if self.unchanged:
            parts.append(f"{len(self.unchanged)} unchanged ({self.unchanged[0]})" if len(self.unchanged) > 1
                         else f"unchanged: {self.unchanged[0]}")
        return "; ".join(parts) or "nothing to decide"


def _text(value: str | None, what: str) -> str:
    """A name or reason: blank (or whitespace only) is refused."""
    if value is None or not str(value).strip():
        raise DecisionError(f"the {what} is blank")
    return str(value).strip()


def parse_expiry(value: date | str | None, today: date | None = None) -> date | None:
    """An expiry must be a real calendar date (YYYY-MM-DD) after today."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise DecisionError(f"expiry {value!r} is not a real date (YYYY-MM-DD)") from None
    today = today or date.today()
    if value <= today:
        raise DecisionError(f"expiry {value.isoformat()} is not in the future (today is {today.isoformat()})")
    return value


def detector_codes() -> frozenset[str]:
    from detectors.registry import ALL_DETECTORS

    return frozenset(d.code for d in ALL_DETECTORS)


# ------------------------------------------------------------------------------ journal

def _journal(con: duckdb.DuckDBPyConnection) -> Path | None:
    """This warehouse's journal, ready to append to: a warehouse journaled for the first time
    copies its earlier decisions in first; a journal gone missing stops decisions (JournalError)."""
    db = decisions.database_file(con)
    if db is None:
        return None
    path = journal_path(db)
    if decisions.journal_started(con):
        if not path.exists():
            raise JournalError(f"the decisions journal {path} is missing: restore it from the backup "
                               "(paywatch doctor compares it with the warehouse)")
        last = journal.last_entry(path)
        # a warehouse restored from an older backup than its journal would reuse decision ids
        if last is not None and decisions.decision_row(con, int(last.entry.get("decision_id") or 0)) is None:
            raise JournalError(f"the journal holds decision {last.entry.get('decision_id')}, the warehouse does not "
                               "(restored from an older backup?): run paywatch doctor, then paywatch rebuild")
        return path
    for row in decisions.all_decisions(con):
        journal.append(path, "decision", row)
    for row in decisions.all_approvals(con):
        journal.append(path, "approval", row)
    decisions.mark_journal_started(con)
    return path


def _store_decision(con: duckdb.DuckDBPyConnection, **row) -> int:
    """Append one decision to the warehouse and the journal, in one transaction (the journal
    line is on disk before the commit)."""
    with transaction(con):
        path = _journal(con)
        did = decisions.append_decision(con, **row)
        if path is not None:
            journal.append(path, "decision", decisions.decision_row(con, did))
    return did


def _unchanged(con, action: str, assignee: str | None, expires_on: date | None, *, pernr: str, detector: str,
               wage_type: str | None, for_period: str | None, run_id: str | None) -> str | None:
    """Why this decision would change nothing (the same one is already in force, or the same
    release already awaits approval), else None."""
    last = decisions.latest_on_identity(con, pernr=pernr, detector=detector, wage_type=wage_type,
                                        for_period=for_period, period=decisions.run_period(con, run_id))
    if last is None or last["action"] != action:
        return None
    if action == "assign" and last["assignee"] != assignee:
        return None
    if action == "expected" and last["expires_on"] != expires_on:
        return None
    state = "awaits approval" if last["awaiting_approval"] else "is in force"
    return f"decision {last['decision_id']} ({action}) already {state}"


def record_decision(con: duckdb.DuckDBPyConnection, *, action: str, actor: str, reason: str,
                    finding_id: str | None = None, run_id: str | None = None, pernr: str | None = None,
                    detector: str | None = None, wage_type: str | None = None, for_period: str | None = None,
                    expires_on: date | str | None = None, assignee: str | None = None,
                    case_id: str | None = None, category: str | None = None, today: date | None = None,
                    ) -> int | None:
    """Append one decision; returns its id, or None when it would change nothing (the same
    decision is in force, or the same release awaits approval). A finding id fills in the
    identity. Raises DecisionError (module docstring of the class) when it is refused."""
    if action not in ACTIONS:
        raise DecisionError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    actor, reason = _text(actor, "name (--by)"), _text(reason, "reason")
    expires_on = parse_expiry(expires_on, today)
    if action == "assign" and not (assignee or "").strip():
        raise DecisionError("'assign' needs --assignee")
    if action == "expected" and expires_on is None:
        raise DecisionError("'expected' needs an expiry date (--expires YYYY-MM-DD)")
    if finding_id:
        row = decisions.finding_identity(con, finding_id)
        if row is None:
            raise DecisionError(f"no finding {finding_id} in the warehouse")
        run_id, pernr, detector, wage_type, for_period, category = row
    else:
        if not (pernr and detector):
            raise DecisionError("name a finding (--finding), a case (--case), or a staff member and detector "
                                "(--pernr, --detector)")
        if detector not in detector_codes():
            raise DecisionError(f"no detector {detector} (known: {', '.join(sorted(detector_codes()))})")
        if not decisions.staff_exists(con, pernr):
            raise DecisionError(f"no staff member {pernr} in the warehouse")
        if run_id is not None and not decisions.run_exists(con, run_id):
            raise DecisionError(f"no run {run_id} in the warehouse")
    if _unchanged(con, action, assignee, expires_on, pernr=pernr, detector=detector, wage_type=wage_type,
                  for_period=for_period, run_id=run_id):
        return None
    return _store_decision(
        con, finding_id=finding_id, case_id=case_id, run_id=run_id, pernr=pernr, detector=detector,
        category=category, wage_type=wage_type, for_period=for_period, action=action, assignee=assignee,
        actor=actor, reason=reason, expires_on=expires_on)


def decide_findings(con: duckdb.DuckDBPyConnection, finding_ids: list[str], *, action: str, actor: str,
                    reason: str, case_id: str | None = None, **options) -> Decided:
    """One decision per finding (a case, or a bulk selection), one reason; requests that
    change nothing are counted, not recorded. All or nothing: one transaction."""
    out = Decided()
    with transaction(con):
        for fid in finding_ids:
            did = record_decision(con, action=action, actor=actor, reason=reason, finding_id=fid, case_id=case_id,
                                  **options)
            if did is None:
                out.unchanged.append(f"{fid}: the same decision is already in force or awaits approval")
            else:
                out.recorded.append(did)
    return out


def select_findings(con: duckdb.DuckDBPyConnection, run_id: str, *, category: str | None = None,
                    owner: str | None = None, entity: str | None = None) -> list[str]:
    """The current findings of a run of one category / owner / client entity (ORGEH of the
    staff member's PA0001 in the run's period), for a bulk decision."""
    if not decisions.run_exists(con, run_id):
        raise DecisionError(f"no run {run_id} in the warehouse")
    if not (category or owner or entity):
        raise DecisionError("a bulk decision needs --category, --owner or --entity")
    f = decisions.run_findings(con, run_id)
    if category:
        f = f.filter(pl.col("category") == category)
    if owner:
        f = f.filter(pl.col("owner") == owner.strip().upper())
    if entity:
        from paywatch.delivery.package import staff_directory

        who = staff_directory(con, run_id, decisions.run_period(con, run_id) or run_id.split("-")[1])
        f = f.join(who.select("pernr", "entity"), on="pernr", how="inner").filter(pl.col("entity") == entity)
    if f.height == 0:
        what = ", ".join(f"{k} {v}" for k, v in (("category", category), ("owner", owner), ("entity", entity)) if v)
        raise DecisionError(f"no finding of {what} in run {run_id}")
    return f["finding_id"].to_list()


def case_finding_ids(con: duckdb.DuckDBPyConnection, case_id: str, run_id: str | None) -> list[str]:
    """The findings of a case. Findings carrying a `case_id` (the cases of issue #14) are
    looked up by it; until then a case is a staff member and category in a run, written
    `PERNR:CATEGORY` with --run."""
    if run_id is None:
        raise DecisionError("a decision on a case needs the run (--run)")
    if not decisions.run_exists(con, run_id):
        raise DecisionError(f"no run {run_id} in the warehouse")
    f = decisions.run_findings(con, run_id)
    if "case_id" in f.columns:
        hit = f.filter(pl.col("case_id") == case_id)
    else:
        pernr, _, category = case_id.partition(":")
        hit = f.filter((pl.col("pernr") == pernr) & (pl.col("category") == category))
    if hit.height == 0:
        raise DecisionError(f"no case {case_id} in run {run_id}")
    return hit["finding_id"].to_list()


def approve_decision(con: duckdb.DuckDBPyConnection, decision_id: int, *, approver: str, reason: str) -> int | None:
    """A second person approves a release: it takes effect now. Returns the decision id, or
    None when it was already approved. The release's author cannot approve it."""
    approver, reason = _text(approver, "name (--by)"), _text(reason, "reason")
    d = decisions.decision_row(con, decision_id)
    if d is None:
        raise DecisionError(f"no decision {decision_id} in the warehouse")
    if d["action"] not in NEEDS_APPROVAL:
        raise DecisionError(f"decision {decision_id} is {d['action']!r}: only a release needs a second person's approval")
    if decisions.approval_of(con, decision_id) is not None:
        return None
    if approver.casefold() == str(d["actor"]).strip().casefold():
        raise DecisionError(f"decision {decision_id} was proposed by {d['actor']}: its author cannot approve it "
                            "(a second person must)")
    with transaction(con):
        path = _journal(con)
        row = decisions.append_approval(con, decision_id, approver, reason)
        if path is not None:
            journal.append(path, "approval", row)
    return decision_id


def apply_decisions(con: duckdb.DuckDBPyConnection, run_id: str, findings: pl.DataFrame) -> pl.DataFrame:
    """Findings as reports show them: a release (once approved), false positive or 'expected'
    makes the finding info, and the explanation says who decided, who approved and why; a
    release awaiting approval leaves the hold and says so."""
    if findings.height == 0 or "finding_id" not in findings.columns:
        return findings
    d = decided(con, run_id).filter(pl.col("decision").is_not_null())
    pending = decisions.pending_releases(con, run_id)
    if d.height == 0 and pending.height == 0:
        return findings
    f = findings.join(d, on="finding_id", how="left").join(pending, on="finding_id", how="left")
    approved = pl.when(pl.col("decision_approved_by").is_not_null()).then(
        pl.format(", approved by {}", pl.col("decision_approved_by"))).otherwise(pl.lit(""))
    note = pl.format(" {} by {} on {}{}: {}.", pl.col("decision").replace_strict(ACTION_TEXT, default=""),
                     pl.col("decided_by"), pl.col("decided_at").dt.date(), approved, pl.col("decision_reason"))
    waiting = pl.format(" Release proposed by {} on {} (decision {}) awaits a second person's approval.",
                        pl.col("proposed_by"), pl.col("proposed_at").dt.date(), pl.col("pending_decision_id"))
    explanation = (pl.when(pl.col("decision").is_not_null()).then(pl.col("explanation") + note)
                   .otherwise(pl.col("explanation")))
    return f.with_columns(
        pl.col("decision").replace_strict(DECIDED_SEVERITY, default=None).fill_null(pl.col("severity")).alias("severity"),
        pl.when(pl.col("proposed_by").is_not_null()).then(explanation + waiting).otherwise(explanation)
        .alias("explanation"),
    ).select(findings.columns)


# ------------------------------------------------------------------------------ close and KPI

@dataclass
class CloseResult:
    close_id: int
    period: str
    excluded: pl.DataFrame  # one row per excluded staff member
    advances_recommended: int


def close_period(con: duckdb.DuckDBPyConnection, payroll_area: str, period: str, policy: dict,
                 record: bool = True) -> CloseResult:
    """Record who was excluded at the period's FINAL, why, and whether a salary advance is
    recommended (policy: `advance_min_net_cents` — recommend when the held net pay is at
    least this; `advance_enabled`). `record=False` (a dry close, on a reader) records nothing:
    close_id 0."""
    final = closes.final_run_id(con, payroll_area, period)
    if final is None:
        raise DecisionError(f"no FINAL run of {payroll_area} {period} in the warehouse")
    ex = closes.exclusions_at_final(con, payroll_area, period)
    enabled, floor = bool(policy.get("advance_enabled", True)), int(policy.get("advance_min_net_cents", 50_000))
    ex = ex.with_columns((pl.lit(enabled) & (pl.col("net_pay_cents").fill_null(0) >= floor)).alias("advance_recommended"))
    close_id = closes.append_close(con, payroll_area, period, final, ex, policy) if record else 0
    return CloseResult(close_id, period, ex, int(ex["advance_recommended"].sum()))


ADVANCE_WAGE_TYPES, RECOVERY_WAGE_TYPES = ["2000"], ["3200"]  # docs/extract-format.md; [PW140] overrides


def advance_followup(con: duckdb.DuckDBPyConnection, payroll_area: str, period: str, cfg: dict | None = None
                     ) -> pl.DataFrame:
    """Every salary advance recommended by the close of a month before `period`, followed up
    to the end of `period`: paid in which run (the first advance payment to that staff member
    after the recommending FINAL), recovered how far (recoveries in FINAL runs, first in first
    out over all of the staff member's advances) and the open balance. Grain: one row per
    recommendation (staff member x recommending month). `cfg`: the loaded configuration
    (`[PW140]` names the wage types)."""
    ledger_cfg = (cfg or {}).get("PW140", {})
    adv_wt = list(ledger_cfg.get("advance_wage_types") or ADVANCE_WAGE_TYPES)
    rec_wt = list(ledger_cfg.get("recovery_wage_types") or RECOVERY_WAGE_TYPES)
    recs = closes.advance_recommendations(con, payroll_area, period)
    out_schema = {"recommended_in": pl.String, "pernr": pl.String, "recommended_cents": pl.Int64,
                  "currency": pl.String, "paid_in_run": pl.String, "paid_cents": pl.Int64,
                  "recovered_cents": pl.Int64, "recovered_in": pl.String, "open_cents": pl.Int64,
                  "status": pl.String}
    if recs.height == 0:
        return pl.DataFrame(schema=out_schema)
    ledger = closes.advance_ledger(con, payroll_area, period, sorted(set(recs["pernr"].to_list())), adv_wt, rec_wt)
    rows = []
    for (pernr,), mine in recs.sort("final_at", "period").group_by("pernr", maintain_order=True):
        ev = ledger.filter(pl.col("pernr") == pernr)
        advances = [dict(r, recovered=0, recovered_in=[]) for r in ev.filter(pl.col("kind") == "advance").iter_rows(named=True)]
        # first in, first out: each recovery pays off the oldest advance still open
        for r in ev.filter(pl.col("kind") == "recovery").iter_rows(named=True):
            left = r["cents"]
            for a in advances:
                take = min(left, a["cents"] - a["recovered"])
                if take > 0:
                    a["recovered"] += take
                    a["recovered_in"].append(r["run_id"])
                    left -= take
        used: set[int] = set()
        for rec in mine.iter_rows(named=True):
            hit = next((i for i, a in enumerate(advances) if i not in used and
                        (rec["final_at"] is None or a["order_extracted_at"] > rec["final_at"])), None)
            row = {"recommended_in": rec["period"], "pernr": pernr, "recommended_cents": rec["recommended_cents"],
                   "currency": rec["currency"], "paid_in_run": None, "paid_cents": None, "recovered_cents": None,
                   "recovered_in": None, "open_cents": None, "status": "not paid yet"}
            if hit is not None:
                used.add(hit)
                a = advances[hit]
                open_cents = a["cents"] - a["recovered"]
                row.update(paid_in_run=a["run_id"], paid_cents=a["cents"], currency=a["currency"] or rec["currency"],
                           recovered_cents=a["recovered"], recovered_in=", ".join(dict.fromkeys(a["recovered_in"])) or None,
                           open_cents=open_cents,
                           status="recovered" if open_cents == 0 else
                           ("partly recovered" if a["recovered"] else "paid, not yet recovered"))
            rows.append(row)
    return pl.DataFrame(rows, schema=out_schema).sort("recommended_in", "pernr")


def kpi_per_staff(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """The KPI with the staff paid at each FINAL and the rate per 1,000 staff paid (and its
    12-month average), so areas of any size compare with Geneva's lines — grain: one row per
    payroll area per period."""
    k = kpi(con, payroll_area).join(closes.staff_paid_at_finals(con, payroll_area),
                                    on=["payroll_area", "period"], how="left")
    rate = pl.when(pl.col("staff_paid") > 0).then(pl.col("excluded_staff") * 1000 / pl.col("staff_paid"))
    return (k.with_columns(rate.alias("per_1000_staff")).sort("payroll_area", "period")
            .with_columns(pl.col("per_1000_staff").rolling_mean(12, min_samples=1).over("payroll_area")
                          .alias("avg_12m_per_1000_staff")))


def kpi_rate_figure(frame: pl.DataFrame, targets: KpiTargets, title: str):
    """Staff excluded at FINAL per 1,000 staff paid (`kpi_per_staff` of one area), against the
    baseline and target of the `[kpi]` section expressed per 1,000 staff of the payroll they
    refer to (Geneva: 295 and 120 of 10,000 = 29.5 and 12.0), so a 300- or 2,000-staff area is
    drawn on the same scale. The right axis reads the same heights as staff at the area's
    latest head-count. A matplotlib Figure (no pyplot state: safe in notebooks and flows)."""
    from matplotlib.figure import Figure

    per = 1000 / targets.for_staff
    baseline, target = targets.baseline * per, targets.target * per
    fig = Figure(figsize=(8, 4.8))
    ax = fig.subplots()
    periods = [f"{p[:4]}-{p[4:]}" for p in frame["period"].to_list()]
    ax.plot(periods, frame["per_1000_staff"].to_list(), "o-", label="excluded at FINAL")
    ax.plot(periods, frame["avg_12m_per_1000_staff"].to_list(), "s--", label="12-month average")
    ax.axhline(baseline, color="grey", lw=1, ls="-.",
               label=f"2018 average ({targets.baseline:g} of {targets.for_staff:,} staff = {baseline:.1f})")
    ax.axhline(target, color="green", lw=1.5,
               label=f"target ({targets.target:g} of {targets.for_staff:,} staff = {target:.1f})")
    ax.set_ylabel("staff excluded per 1,000 staff paid")
    staff = [s for s in frame["staff_paid"].to_list() if s] if "staff_paid" in frame.columns else []
    if staff:
        n = staff[-1]
        sec = ax.secondary_yaxis("right", functions=(lambda y, n=n: y * n / 1000, lambda c, n=n: c * 1000 / n))
        sec.set_ylabel(f"staff, at {n:,} staff paid")
    if not periods:
        ax.text(0.5, 0.5, "No FINAL run yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_ylim(bottom=0, top=max([baseline * 1.15] + [v * 1.15 for v in frame["per_1000_staff"].to_list() if v]))
    # below the axes: the legend never hides a month's point
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def kpi_rate_chart(frame: pl.DataFrame, path: Path, targets: KpiTargets, title: str) -> Path:
    """`kpi_rate_figure` as a PNG at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kpi_rate_figure(frame, targets, title).savefig(path, dpi=110)
    return path


def kpi_chart(frame: pl.DataFrame, path: Path, targets: KpiTargets, title: str = "Staff held at FINAL") -> Path:
    """Monthly excluded staff vs the 2018 baseline and the target (`[kpi]`; pass
    `targets.scaled(staff)` for a smaller area), as a PNG."""
    baseline, target = targets.baseline, targets.target
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    periods = [f"{p[:4]}-{p[4:]}" for p in frame["period"].to_list()]
    for col, label, style in (("excluded_staff", "excluded at FINAL", "o-"), ("avg_12m", "12-month average", "s--"),
                              ("baseline_excluded", "late-detection baseline", "x:")):
        if col in frame.columns:
            ax.plot(periods, frame[col].to_list(), style, label=label)
    ax.axhline(baseline, color="grey", lw=1, ls="-.", label=f"2018 average ({baseline:g})")
    ax.axhline(target, color="green", lw=1.5, label=f"target ({target:g})")
    ax.set_ylabel("staff")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    # beside the plot, so the legend never hides a month's point
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
