"""PW101 pay_model — every deterministic wage type recomputed exactly by the pay model.

Compares each current-month line of 1000, 1010, 1100, 1110, 1400, 3000, 3100 with the
amount docs/extract-format.md prescribes (exact, any difference counts), and flags expected
lines that are missing. The category names the likely cause: the amount the run paid is
matched against what it would be had the payroll ignored an absence or the part-time
percentage; otherwise the wage type says what is off (scale, multiplier, dependants, ...).
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.money import money
from detectors.context import Context

CODE = "PW101"
CONFIG = (ENABLED, SEVERITY,
          Key("incomputable_severity", str, "severity when the pay model cannot recompute a line (master data "
              "or reference incomplete)", SEVERITY.choices))
CATEGORY_BY_WAGE_TYPE = {
    pm.WT_BASE: "scale_mismatch",
    pm.WT_POST_ADJ: "stale_multiplier",
    pm.WT_SPOUSE: "spouse_allowance_mismatch",
    pm.WT_CHILD: "child_allowance_mismatch",
    pm.WT_OVERTIME: "overtime_mismatch",
    pm.WT_PENSION: "pension_mismatch",
    pm.WT_HEALTH: "health_mismatch",
}
CATEGORIES = tuple(sorted(set(CATEGORY_BY_WAGE_TYPE.values()) | {
    "pay_after_separation", "paid_during_slwop", "part_time_ignored", "spouse_allowance_without_dependant",
    "child_over_age_limit", "missing_pension", "pay_model_incomputable"}))


def _suspects(ctx: Context) -> pl.Series:
    """The staff whose model lines may differ from the pay model: every staff member the
    comparison in `run` gives a row (an amount the model cannot compute, an expected line
    missing, a written line of another amount, with the same zero and null rules), and only
    those. Read wide, one row per staff member (the expected amounts as paymodel computes
    them, the written lines grouped by staff member alone): a third of the cost of comparing
    every line by staff member and wage type, which is then done for these staff only."""
    amount, wt = pl.col("amount_cents"), pl.col("wage_type")
    model = list(pm.MODEL_WAGE_TYPES)
    aggs = []
    for w in model:
        here = pl.when(wt == w).then(amount)
        aggs += [(wt == w).sum().alias(f"_n{w}"), here.min().alias(f"_lo{w}"), here.max().alias(f"_hi{w}")]
    written = ctx.current.lazy().filter(wt.is_in(model)).group_by("pernr").agg(aggs)
    bad = pl.lit(False)
    for w in model:
        exp, n = pl.col(w), pl.col(f"_n{w}").fill_null(0)
        exp0 = exp.fill_null(0)  # no expected line: zero, as in the comparison
        bad = (bad | exp.is_null() | ((n == 0) & (exp0 != 0))
               | ((n > 0) & ((pl.col(f"_lo{w}") != exp0) | (pl.col(f"_hi{w}") != exp0))).fill_null(False))
    # staff with no line at all are not compared (PW114), nor are staff without facts (PW103)
    return (ctx.expected_wide.lazy().join(ctx.paid.lazy(), on="pernr", how="semi")
            .join(written, on="pernr", how="left").filter(bad).select("pernr").unique().collect()["pernr"])


def _written(ctx: Context, pernrs: pl.Series) -> pl.DataFrame:
    """Written model lines of `pernrs`. Grain: one row per staff member and wage type."""
    return (
        ctx.current.filter(pl.col("wage_type").is_in(list(pm.MODEL_WAGE_TYPES))
                           & pl.col("pernr").is_in(pernrs.implode()))
        .group_by("pernr", "wage_type")
        # the lines' sum, count and range: what a finding says and whether they all match
        # (aggregates, not a list of amounts per staff member and wage type)
        .agg(pl.col("amount_cents").sum().alias("written_sum"), pl.len().alias("lines_written"),
             pl.col("amount_cents").min().alias("written_min"), pl.col("amount_cents").max().alias("written_max"),
             pl.col("amount_cents").first().alias("written_cents"),
             pl.col("currency").first().alias("currency_written"))
    )


def _alternatives(ctx: Context, pernrs: pl.Series, alternatives: dict[str, dict[str, pl.Expr]]) -> pl.DataFrame:
    """Expected 1000/3000 of `pernrs` had the payroll used other inputs (to name the cause):
    a column per alternative (`name` -> the facts it changes). One pass of the pay model for
    all: each alternative's staff stand in under a PERNR of their own (the pay model is per
    staff member, another's rows never change one's amounts).
    Grain: one row per staff member of `pernrs` and wage type (1000, 3000), null where the
    alternative has no line."""
    keep = pl.col("pernr").is_in(pernrs.implode())
    facts, written = ctx.facts.filter(keep), ctx.current.filter(keep)
    names = list(alternatives)

    def tagged(frame: pl.DataFrame, i: int) -> pl.DataFrame:
        return frame.with_columns(pl.concat_str(pl.lit(f"{i}:"), pl.col("pernr")).alias("pernr"))

    alt = pm.expected_lines(
        pl.concat([tagged(facts.with_columns(**changes), i) for i, changes in enumerate(alternatives.values())]),
        written=pl.concat([tagged(written, i) for i in range(len(names))]))
    split = pl.col("pernr").str.splitn(":", 2).struct
    long = alt.filter(pl.col("wage_type").is_in([pm.WT_BASE, pm.WT_PENSION])).select(
        split.field("field_1").alias("pernr"), "wage_type", split.field("field_0").alias("_alt"), "expected_cents")
    out = pl.DataFrame({"pernr": pernrs.unique()}).join(pl.DataFrame({"wage_type": [pm.WT_BASE, pm.WT_PENSION]}),
                                                         how="cross")
    for i, name in enumerate(names):
        out = out.join(long.filter(pl.col("_alt") == str(i)).select("pernr", "wage_type",
                                                                    pl.col("expected_cents").alias(name)),
                       on=["pernr", "wage_type"], how="left")
    return out


def run(ctx: Context, params: Params) -> pl.DataFrame:
    if ctx.meta.run_type == "OFFCYCLE":
        return findings_frame([])
    facts = ctx.facts
    # staff with no line at all are one omission (PW114 active_not_paid), not a missing line each
    paid = ctx.paid
    suspects = _suspects(ctx)
    if suspects.len() == 0:
        return findings_frame([])
    exp = (ctx.expected.filter(pl.col("pernr").is_in(suspects.implode())).join(facts.select("pernr"), on="pernr")
           .join(paid, on="pernr", how="semi"))
    written = _written(ctx, suspects).join(facts.select("pernr"), on="pernr")  # staff not active: PW103
    cmp = exp.join(written, on=["pernr", "wage_type"], how="full", coalesce=True)
    cmp = cmp.with_columns(pl.col("expected_cents").fill_null(0).alias("exp0"))
    incomputable = pl.col("expected_cents").is_null() & pl.col("for_period").is_not_null()
    missing = pl.col("written_cents").is_null() & (pl.col("exp0") != 0)
    differs = pl.col("written_cents").is_not_null() & (
        (pl.col("written_min") != pl.col("exp0")) | (pl.col("written_max") != pl.col("exp0")))
    bad = cmp.filter(incomputable | missing | differs)
    if bad.height == 0:
        return findings_frame([])
    suspects = bad["pernr"].unique()  # the causes are only looked for where amounts differ
    alternatives = _alternatives(ctx, suspects, {"full_cents": {"active_days": pl.col("days_in_month")},
                                                 "pct100_cents": {"employment_pct": pl.lit(100, dtype=pl.Int64)}})
    f = (
        bad.join(facts.drop("for_period"), on="pernr", how="left")
        .join(ctx.status_days.select("pernr", "slwop_days", "separated_days"), on="pernr", how="left")
        .join(alternatives, on=["pernr", "wage_type"], how="left")
        .join(ctx.owners(), on="wage_type", how="left")
    )
    recs = [r | {"category": _category(r)} for r in f.iter_rows(named=True)]
    # one cause per staff member: derived lines follow the cause found on 1000/3000
    cause = {}
    for r in recs:
        if r["category"] in ("pay_after_separation", "paid_during_slwop", "part_time_ignored"):
            cause.setdefault(r["pernr"], r["category"])
    for r in recs:
        if r["pernr"] in cause and r["category"] != "pay_model_incomputable":
            r["category"] = cause[r["pernr"]]
    return findings_frame([_finding(ctx, params, r) for r in recs])


def _category(r: dict) -> str:
    wt, written, exp = r["wage_type"], r["written_cents"], r["exp0"]
    if r["for_period"] is not None and r["expected_cents"] is None:
        return "pay_model_incomputable"
    if written is not None and wt in (pm.WT_BASE, pm.WT_PENSION):
        if r["active_days"] < r["days_in_month"] and written == r["full_cents"]:
            return "paid_during_slwop" if (r["slwop_days"] or 0) > (r["separated_days"] or 0) else "pay_after_separation"
        if r["employment_pct"] < 100 and written == r["pct100_cents"]:
            return "part_time_ignored"
    if wt == pm.WT_SPOUSE and exp == 0:
        return "spouse_allowance_without_dependant"
    if wt == pm.WT_CHILD and written is not None and written > exp and len(r["child_birth_dates"] or []) > r["n_children"]:
        return "child_over_age_limit"
    if wt == pm.WT_PENSION and written is None:
        return "missing_pension"
    return CATEGORY_BY_WAGE_TYPE[wt]


def _finding(ctx: Context, params: Params, r: dict) -> dict:
    category = r["category"]
    wt, cur = r["wage_type"], r["currency"] or r["currency_written"]
    written = None if r["written_cents"] is None else r["written_sum"]
    exp = r["exp0"] if r["for_period"] is None else r["expected_cents"]
    basis = (f"{r['grade']} step {r['step']}, {r['employment_pct']} %, "
             f"{r['active_days']}/{r['days_in_month']} days active") if r.get("grade") else "master data incomplete"
    label = f"{ctx.text(wt)} ({wt}) for {ctx.meta.period}"
    if category == "pay_model_incomputable":
        text = f"{label} cannot be recomputed: a grade/step, multiplier or rate is missing for {basis}."
    elif written is None:
        text = f"{label} is missing; the pay model expects {money(exp, cur)} ({basis})."
    elif not exp:
        text = f"{label} is paid at {money(written, cur)} but the pay model expects no such line ({basis})."
    else:
        text = (f"{label} is {money(written, cur)} but the pay model gives {money(exp, cur)} ({basis}): "
                f"difference {money(written - exp, cur)}.")
    if category == "pay_after_separation":
        text = text[:-1] + f"; the run pays the full month although the staff member is separated for {r['separated_days']} days."
    elif category == "paid_during_slwop":
        text = text[:-1] + f"; the run pays the full month although the staff member is on SLWOP for {r['slwop_days']} days."
    elif category == "part_time_ignored":
        text = text[:-1] + "; it is what a full-time (100 %) appointment would get."
    elif category == "child_over_age_limit":
        text = text[:-1] + (f"; {len(r['child_birth_dates'] or [])} dependent children are recorded but only "
                            f"{r['n_children']} are under the age limit on {r['reference_day']}.")
    return finding(
        ctx, params, r["pernr"], category, text, owner=r["owner"] or "HR", wage_type=wt, amount_cents=written,
        expected_cents=exp, currency=cur,
        severity=params.incomputable_severity if category == "pay_model_incomputable" else None,
        evidence={"grade": r.get("grade"), "step": r.get("step"), "employment_pct": r.get("employment_pct"),
                  "active_days": r.get("active_days"), "days_in_month": r.get("days_in_month"),
                  "n_children": r.get("n_children"), "has_dependent_spouse": r.get("has_dependent_spouse"),
                  "lines_written": r["lines_written"] or 0})


DETECTOR = Detector(CODE, "pay_model", CATEGORIES, run, config=CONFIG,
                    description="Recomputes every deterministic wage type exactly and compares it to the run.")
