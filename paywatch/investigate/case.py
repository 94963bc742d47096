"""Choosing a case, and what the notebook shows about one staff member in one run: who
they are (IBAN masked), their exceptions, personnel actions, dependants, their peers and
the reviewers' decisions on them."""

from __future__ import annotations

import duckdb
import polars as pl

from detectors import paymodel as pm
from detectors.money import decimal_columns
from paywatch.investigate.frames import _md, _record_on, _ref, _wage_type_order, age_on
from paywatch.privacy import mask_iban, mask_ibans_in
from paywatch.warehouse import analysis as wh
from paywatch.warehouse import queries as q

ACTION_NAMES = {  # PA0000 MASSN (docs/extract-format.md)
    "01": "appointment", "02": "promotion", "03": "step increment", "04": "transfer in",
    "05": "separation", "06": "special leave without pay (SLWOP) starts", "07": "return from SLWOP",
    "08": "change in family status", "09": "contract extension",
}
STATUS_NAMES = {"3": "active (paid)", "1": "inactive (SLWOP, not paid)", "0": "withdrawn (separated, not paid)"}
MEMBER_TYPES = {"1": "spouse", "2": "child"}


# ------------------------------------------------------------------------------ choosing a case

def runs_overview(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Current runs in order with their exceptions and staff on hold. Grain: one row per run."""
    return wh.runs_overview(con)


def staff_with_exceptions(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """Staff of a run with exceptions, open holds first. Grain: one row per staff member."""
    return wh.staff_with_exceptions(con, run_id)


def default_case(con: duckdb.DuckDBPyConnection, run_id: str | None = None,
                 pernr: str | None = None) -> tuple[str, str]:
    """(run, staff member) to investigate: the given ones, else the latest FINAL run with
    exceptions (else the latest run with exceptions, else the latest run) and its staff
    member with the most open holds (then the most exceptions, then the lowest PERNR)."""
    if run_id is None:
        run_id = wh.latest_run_to_investigate(con)
        if run_id is None:
            raise LookupError("the warehouse holds no run")
    q.run_info(con, run_id)  # KeyError for an unknown run
    if pernr is None:
        staff = staff_with_exceptions(con, run_id)
        if staff.height == 0:
            raise LookupError(f"run {run_id} has no exceptions: set PERNR")
        pernr = staff["pernr"][0]
    return run_id, str(pernr)


# ------------------------------------------------------------------------------ the staff member

def staff_header(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """Who this is, as of the run (records valid on the pay model's reference day). The IBAN
    is masked. Grain: one row per field (field, value)."""
    info = q.run_info(con, run_id)
    first, last, days = pm.month_bounds(info["period"])
    md = _md(con, run_id, pernr)
    facts = pm.staff_month_facts(md, info["period"])
    day = facts["reference_day"][0] if facts.height else first
    a = _record_on(md["assignments"], day, last) or {}
    b = _record_on(md["basic_pay"], day, last) or {}
    k = _record_on(md["bank_details"], last, last) or {}
    active = f"{facts['active_days'][0]}/{days}" if facts.height else f"0/{days}"
    rows = [
        ("PERNR", pernr), ("name", a.get("full_name")),
        ("grade", b.get("grade")), ("step", b.get("step")),
        ("employment %", None if b.get("employment_pct") is None else str(b["employment_pct"])),
        ("staff category", a.get("staff_category")), ("entity", a.get("entity")),
        ("duty station", a.get("duty_station")), ("payroll area", a.get("payroll_area")),
        ("bank country", k.get("bank_country")), ("IBAN (masked)", mask_iban(k.get("iban"))),
        ("pay currency", k.get("currency")),
        ("run", f"{run_id} ({info['run_type']} of {info['period']}, pay date {info['pay_date']})"),
        ("active days in the month", active), ("reference day", str(day)),
    ]
    return pl.DataFrame({"field": [r[0] for r in rows], "value": [None if r[1] is None else str(r[1]) for r in rows]},
                        schema={"field": pl.String, "value": pl.String})


def staff_exceptions(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """The staff member's exceptions in the run with their case, explanation and the
    reviewer's latest decision (findings_decided). Grain: one row per finding, holds first."""
    f = wh.staff_findings(con, run_id, pernr)
    f = f.with_columns(pl.col("explanation").map_elements(mask_ibans_in, return_dtype=pl.String))
    f = decimal_columns(f, {"amount_cents": "amount", "expected_cents": "expected", "difference_cents": "difference"})
    from paywatch.warehouse.decisions import run_findings

    found = run_findings(con, run_id)
    case_of = (found.select("finding_id", "case_id") if "case_id" in found.columns
               else pl.DataFrame(schema={"finding_id": pl.String, "case_id": pl.String}))
    f = f.join(case_of, on="finding_id", how="left", maintain_order="left")
    return f.select("finding_id", "case_id", "detector", "category", "severity", "owner", "wage_type", "for_period", "amount",
                    "expected", "difference", "currency", "explanation", "first_seen_run", "decision", "decided_by",
                    "decision_reason", "decided_at")


def personnel_actions(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """PA0000 as carried by the run, with the action and status in words. Grain: one row
    per action record, oldest first."""
    a = _md(con, run_id, pernr, ("actions",))["actions"]
    return a.with_columns(
        pl.col("action_type").replace_strict(ACTION_NAMES, default="(unknown action)").alias("action"),
        pl.col("employment_status").replace_strict(STATUS_NAMES, default="(unknown status)").alias("status"),
    ).sort("valid_from").select("valid_from", "valid_to", "action_type", "action", "action_reason",
                                "employment_status", "status")


def dependants(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """PA0021 as carried by the run, with each member's age on the first day of the run's
    period and whether the record makes them a dependant on that day (children also: under
    CHILD_AGE_LIMIT). Grain: one row per family record."""
    info = q.run_info(con, run_id)
    first, _, _ = pm.month_bounds(info["period"])
    fam = _md(con, run_id, pernr, ("family",))["family"]
    limit = pm.reference_for_period(_ref(con, run_id), info["period"])["rates"].get("CHILD_AGE_LIMIT")
    ages = [age_on(b, first) for b in fam["birth_date"].to_list()]
    valid = (pl.col("valid_from") <= first) & (pl.col("valid_to") >= first) & pl.col("is_dependent")
    f = fam.with_columns(
        pl.col("member_type").replace_strict(MEMBER_TYPES, default="(unknown)").alias("member"),
        pl.Series("age_on_first_day", ages, dtype=pl.Int64),
    ).with_columns(
        valid.alias("dependent_on_first_day"),
        pl.when(pl.col("member_type") != "2").then(None)
        .otherwise(pl.lit(None if limit is None else int(limit), dtype=pl.Int64) > pl.col("age_on_first_day"))
        .alias("child_under_age_limit"),
    )
    return f.sort("member_id", "valid_from").select(
        "member_id", "member", "birth_date", "age_on_first_day", "valid_from", "valid_to", "is_dependent",
        "dependent_on_first_day", "child_under_age_limit")


def peers_typical(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str, min_entity_peers: int = 5) -> pl.DataFrame:
    """Typical (median) current-month amount per wage type among the staff member's peers in
    the same run: same grade and staff category — and the same entity when it has at least
    `min_entity_peers` of them. Grain: one row per wage type the staff member or peers have."""
    info = q.run_info(con, run_id)
    facts = pm.staff_month_facts(_md(con, run_id), info["period"])
    me = facts.filter(pl.col("pernr") == pernr)
    if me.height:
        grade, cat, entity = me.row(0, named=True)["grade"], me["staff_category"][0], me["entity"][0]
    else:  # not active in the month: describe them by their records
        h = dict(staff_header(con, run_id, pernr).iter_rows())
        grade, cat, entity = h["grade"], h["staff category"], h["entity"]
    peers = facts.filter((pl.col("grade") == grade) & (pl.col("staff_category") == cat) & (pl.col("pernr") != pernr))
    same_entity = peers.filter(pl.col("entity") == entity)
    if same_entity.height >= min_entity_peers:
        peers, group = same_entity, f"grade {grade}, category {cat}, entity {entity}"
    else:
        group = f"grade {grade}, category {cat} (all entities: fewer than {min_entity_peers} in {entity})"
    current = q.pay_lines(con, run_id).filter(pl.col("for_period") == pl.col("in_period"))
    per_staff = current.group_by("pernr", "wage_type").agg(pl.col("amount_cents").sum(), pl.col("currency").first())
    typical = (per_staff.join(peers.select("pernr"), on="pernr")
               .group_by("wage_type")
               .agg(pl.col("amount_cents").median().round(0).cast(pl.Int64).alias("peers_median_cents"),
                    pl.col("amount_cents").quantile(0.25, "nearest").alias("peers_p25_cents"),
                    pl.col("amount_cents").quantile(0.75, "nearest").alias("peers_p75_cents"),
                    pl.len().alias("peers_with_line"), pl.col("currency").first().alias("peers_currency")))
    mine = per_staff.filter(pl.col("pernr") == pernr).select(
        "wage_type", pl.col("amount_cents").alias("this_staff_cents"), "currency")
    f = mine.join(typical, on="wage_type", how="full", coalesce=True).with_columns(
        pl.coalesce("currency", "peers_currency").alias("currency"),
        pl.lit(peers.height, dtype=pl.Int64).alias("peers"), pl.lit(group).alias("peer_group"),
    ).join(wh.wage_type_texts(con).select("wage_type", "wage_type_text"), on="wage_type", how="left")
    f = decimal_columns(f, {"this_staff_cents": "this_staff", "peers_median_cents": "peers_median",
                   "peers_p25_cents": "peers_p25", "peers_p75_cents": "peers_p75"})
    return _wage_type_order(f).select("wage_type", "wage_type_text", "this_staff", "peers_median", "peers_p25",
                                      "peers_p75", "peers_with_line", "peers", "currency", "peer_group")


def pick_finding(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str, finding_id: str | None = None) -> str:
    """`finding_id` if given (checked), else the staff member's first exception in the run
    (holds first, as `staff_exceptions` lists them)."""
    if finding_id is not None:
        if not wh.finding_exists(con, finding_id):
            raise LookupError(f"no finding {finding_id}")
        return finding_id
    ex = staff_exceptions(con, run_id, pernr)
    if ex.height == 0:
        raise LookupError(f"staff member {pernr} has no exception in {run_id}")
    return ex["finding_id"][0]


def audit_trail(con: duckdb.DuckDBPyConnection, pernr: str, run_id: str | None = None) -> pl.DataFrame:
    """Reviewers' decisions on the staff member (append-only), newest first; with `run_id`
    only those taken in that run. Grain: one row per decision."""
    return wh.decisions_on_staff(con, pernr, run_id)


# ------------------------------------------------------------------------------ the case

def staff_cases(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """The staff member's cases in the run (one staff member + one root cause each), as the
    reports show them: the cause in words, what it explains, who must fix it (and who is in
    copy), status after the reviewers' decisions, due date and days open. Holds first, then
    the largest amount at stake. Grain: one row per case."""
    from paywatch.cases.status import with_decisions
    from paywatch.titles import category_title
    from paywatch.warehouse import cases as cases_db
    from paywatch.warehouse.decisions import run_findings

    cases = cases_db.current_cases(con, run_id).filter(pl.col("pernr") == pernr)
    findings = run_findings(con, run_id)
    if "case_id" in findings.columns:
        cases = with_decisions(cases, findings.filter(pl.col("pernr") == pernr), cases_db.case_decisions(con, run_id),
                               cases_db.DECISION_STATUS)
    rank = {"hold": 0, "review": 1, "info": 2}
    cases = cases.with_columns(
        pl.col("root_cause").map_elements(category_title, return_dtype=pl.String).alias("cause"),
        pl.col("severity").replace_strict(rank, default=3, return_dtype=pl.Int64).alias("_rank"),
        (pl.col("n_findings") - 1).alias("consequences"),
    ).sort("_rank", pl.col("amount_at_stake_cents").fill_null(0).abs(), "case_id", descending=[False, True, False])
    cases = decimal_columns(cases, {"amount_at_stake_cents": "amount_at_stake"})
    return cases.select("case_id", "cause", "root_wage_type", "consequences", "summary", "owner", "in_copy",
                        "severity", "status", "due_date", "days_open", "first_seen_run", "amount_at_stake",
                        "currency")


def case_overview(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """The staff member's first case (holds first, largest amount at stake) as a card:
    cause, consequences, owner, status, due date. Grain: one row per field (field, value)."""
    cases = staff_cases(con, run_id, pernr)
    if cases.height == 0:
        return pl.DataFrame({"field": ["case"], "value": [f"no case for staff member {pernr} in {run_id}"]})
    c = cases.row(0, named=True)
    n = c["consequences"] or 0
    amount = "" if c["amount_at_stake"] is None else f"{c['amount_at_stake']:,.2f} {c['currency'] or ''}".strip()
    rows = [
        ("case", c["case_id"]),
        ("cause", f"{c['cause']}" + (f" (wage type {c['root_wage_type']})" if c["root_wage_type"] else "")),
        ("what happened", c["summary"]),
        ("consequences", "none besides the cause" if n == 0 else f"{n} other finding(s) explained by this cause"),
        ("amount at stake", amount),
        ("owner (must fix the source)", c["owner"]),
        ("in copy", c["in_copy"] or ""),
        ("severity", {"hold": "hold: excluded from pay at FINAL", "review": "review"}.get(c["severity"], c["severity"])),
        ("status", c["status"]),
        ("due date", "" if c["due_date"] is None else str(c["due_date"])),
        ("days open", str(c["days_open"])),
        ("first seen in", c["first_seen_run"]),
        ("other cases of this staff member", str(cases.height - 1)),
    ]
    rows = [(k, mask_ibans_in(v) if isinstance(v, str) else v) for k, v in rows]
    return pl.DataFrame({"field": [r[0] for r in rows], "value": [None if r[1] is None else str(r[1]) for r in rows]},
                        schema={"field": pl.String, "value": pl.String})
