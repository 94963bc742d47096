"""PW114 active_not_paid — an active staff member of the payroll area with no pay at all.

A staff member with at least one day of STAT2 3 in the month (f > 0) whose organisational
assignment (PA0001 ABKRS) puts them in this payroll area must have lines in every regular
run of the month (docs/extract-format.md). A whole omission is one finding here, not one
per missing wage type: PW101 and PW102 leave staff with no lines to this rule.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Params
from detectors.context import Context
from detectors.money import money

CODE = "PW114"
CONFIG = (ENABLED, SEVERITY)


def unpaid_active(ctx: Context) -> pl.DataFrame:
    """Active staff of this area with no line in the run. Grain: one row per staff member."""
    first, last, _ = pm.month_bounds(ctx.meta.period)
    area = (ctx.inp.md["assignments"]
            .filter((pl.col("valid_from") <= last) & (pl.col("valid_to") >= first)
                    & (pl.col("payroll_area") == ctx.meta.payroll_area))
            .select("pernr").unique())
    paid = ctx.paid
    expected = (ctx.expected.filter(pl.col("expected_cents").is_not_null())
                .join(ctx.wage_types.select("wage_type", "wage_class"), on="wage_type", how="left")
                .group_by("pernr").agg(pl.col("expected_cents").sum().alias("expected_net"),
                                       pl.col("expected_cents").filter(pl.col("wage_type") == pm.WT_BASE).sum()
                                       .alias("expected_base")))
    return (ctx.facts.join(area, on="pernr").join(paid, on="pernr", how="anti")
            .join(expected, on="pernr", how="left"))


def run(ctx: Context, params: Params) -> pl.DataFrame:
    if ctx.meta.run_type == "OFFCYCLE":
        return findings_frame([])  # off-cycle runs hold only the staff paid in them
    rows = []
    for r in unpaid_active(ctx).iter_rows(named=True):
        cur = r["currency"]
        text = (f"The staff member is active {r['active_days']} of {r['days_in_month']} days in {ctx.meta.period} "
                f"({r['grade']} step {r['step']}, {r['employment_pct']} %) but this run pays nothing; the pay model "
                f"expects a net base salary of {money(r['expected_base'] or 0, cur)} and net pay of "
                f"{money(r['expected_net'] or 0, cur)}.")
        rows.append(finding(ctx, params, r["pernr"], "active_not_paid", text, owner="HR", wage_type="/560",
                            amount_cents=0, expected_cents=r["expected_net"], currency=cur,
                            evidence={"active_days": r["active_days"], "days_in_month": r["days_in_month"],
                                      "grade": r["grade"], "step": r["step"],
                                      "expected_base_cents": r["expected_base"]}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "active_not_paid", ("active_not_paid",), run, config=CONFIG,
                    description="Flags an active staff member of the payroll area with no pay in a regular run.")
