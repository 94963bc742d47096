"""PW103 pay_without_active_employment — lines for a month in which nobody is active.

A staff member whose PA0000 shows no day of STAT2 3 in the month must have no lines
(f = 0). Separated staff: pay_after_separation; on SLWOP: paid_during_slwop.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Params
from detectors.money import money
from detectors.context import Context

CODE = "PW103"
CONFIG = (ENABLED, SEVERITY)


def run(ctx: Context, params: Params) -> pl.DataFrame:
    if ctx.meta.run_type == "OFFCYCLE":
        return findings_frame([])
    earning = ctx.wage_types.filter(pl.col("wage_class") == "EARNING").select("wage_type")
    paid = (
        ctx.current.join(earning, on="wage_type")
        .group_by("pernr").agg(pl.col("amount_cents").sum().alias("earned"), pl.col("currency").first())
        .join(ctx.status_days, on="pernr", how="left")
        .filter(pl.col("active_days").fill_null(0) == 0)
    )
    rows = []
    for r in paid.iter_rows(named=True):
        slwop = (r["slwop_days"] or 0) > (r["separated_days"] or 0)
        category = ("paid_during_slwop" if slwop else "pay_after_separation" if r["separated_days"]
                    else "pay_without_employment")
        why = (f"on special leave without pay all {r['slwop_days']} days" if slwop
               else "separated (or not yet employed) the whole month" if r["separated_days"]
               else "without any employment record for the month")
        text = f"Earnings of {money(r['earned'], r['currency'])} are paid for {ctx.meta.period} to a staff member {why}."
        rows.append(finding(ctx, params, r["pernr"], category, text, owner="HR", wage_type=pm.WT_BASE,
                            amount_cents=r["earned"], expected_cents=0, currency=r["currency"],
                            evidence={"slwop_days": r["slwop_days"], "separated_days": r["separated_days"],
                                      "days_in_month": r["days_in_month"]}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "pay_without_active_employment",
                    ("pay_after_separation", "paid_during_slwop", "pay_without_employment"), run, config=CONFIG,
                    description="Flags pay for a month with no active day in PA0000.")
