"""PW103 pay_without_active_employment — pay to someone who is not an active staff member.

Regular runs: a staff member whose PA0000 shows no day of STAT2 3 in the month must have no
lines (f = 0). Off-cycle runs pay on their own pay date, so there the payee must be active
(STAT2 3) on that day. Separated staff: pay_after_separation; on SLWOP: paid_during_slwop;
no action at all (before entry): pay_without_employment.
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


def _earned(ctx: Context) -> pl.DataFrame:
    """Current-month earnings. Grain: one row per staff member with earnings."""
    earning = ctx.wage_types.filter(pl.col("wage_class") == "EARNING").select("wage_type")
    return (ctx.current.join(earning, on="wage_type")
            .group_by("pernr").agg(pl.col("amount_cents").sum().alias("earned"), pl.col("currency").first(),
                                   pl.col("wage_type").sort().first().alias("first_wage_type")))


def status_on(actions: pl.DataFrame, day) -> pl.DataFrame:
    """STAT2 valid on `day`. Grain: one row per staff member with an action record then."""
    return (actions.filter((pl.col("valid_from") <= day) & (pl.col("valid_to") >= day))
            .group_by("pernr").agg(pl.col("employment_status").max().alias("status_on_day")))


def _offcycle(ctx: Context, params: Params) -> pl.DataFrame:
    day = ctx.inp.history.pay_date
    if day is None:
        return findings_frame([])
    paid = (_earned(ctx).join(status_on(ctx.inp.md["actions"], day), on="pernr", how="left")
            .filter(pl.col("status_on_day").fill_null("") != "3"))
    ever = ctx.inp.md["actions"].filter(pl.col("valid_from") <= day).select("pernr").unique()
    paid = paid.with_columns(pl.col("pernr").is_in(ever["pernr"].implode()).alias("entered"))
    rows = []
    for r in paid.iter_rows(named=True):
        status = r["status_on_day"]
        category = ("paid_during_slwop" if status == "1" else "pay_after_separation" if status == "0"
                    else "pay_without_employment")
        why = ("on special leave without pay" if status == "1" else "separated" if status == "0"
               else "not yet employed" if not r["entered"] else "without an employment record")
        text = (f"The off-cycle run pays {money(r['earned'], r['currency'])} on {day} to a staff member "
                f"{why} on that day.")
        rows.append(finding(ctx, params, r["pernr"], category, text, owner="HR", wage_type=r["first_wage_type"],
                            amount_cents=r["earned"], expected_cents=0, currency=r["currency"],
                            evidence={"pay_date": str(day), "status_on_pay_date": status}))
    return findings_frame(rows)


def run(ctx: Context, params: Params) -> pl.DataFrame:
    if ctx.meta.run_type == "OFFCYCLE":
        return _offcycle(ctx, params)
    paid = (_earned(ctx).join(ctx.status_days, on="pernr", how="left")
            .filter(pl.col("active_days").fill_null(0) == 0))
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
                    description="Flags pay for a month with no active day in PA0000, or an off-cycle payment "
                                "to someone not active on its pay date.")
