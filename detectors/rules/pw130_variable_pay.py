"""PW130 variable_pay_change — variable wage types against the staff member's own history.

Special post allowance (1500) is usually constant month to month: an amount above
`spike_ratio` x the highest amount of the look-back FINAL runs is a spike (review).
Other changes of 1500 and 3300 are reported as info so the reviewer sees them in context.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, findings_frame, money
from detectors.context import Context

CODE = "PW130"


def run(ctx: Context, params: dict) -> pl.DataFrame:
    hist = ctx.inp.history.get("final_lines")
    if hist is None or hist.height == 0 or ctx.meta.run_type == "OFFCYCLE":
        return findings_frame([])
    wts = [pm.WT_SPECIAL_POST, pm.WT_OTHER_DED]
    past = (hist.filter(pl.col("wage_type").is_in(wts) & (pl.col("for_period") == pl.col("in_period")))
            .group_by("pernr", "wage_type").agg(pl.col("amount_cents").abs().max().alias("past_max"),
                                                pl.col("amount_cents").abs().min().alias("past_min")))
    now = (ctx.current.filter(pl.col("wage_type").is_in(wts)).group_by("pernr", "wage_type")
           .agg(pl.col("amount_cents").sum().alias("amount"), pl.col("currency").first()))
    cmp = now.join(past, on=["pernr", "wage_type"], how="inner")
    ratio = float(params.get("spike_ratio", 1.5))
    rows = []
    for r in cmp.iter_rows(named=True):
        amount = abs(r["amount"])
        if r["past_min"] <= amount <= r["past_max"]:
            continue
        spike = r["wage_type"] == pm.WT_SPECIAL_POST and amount > r["past_max"] * ratio
        if r["wage_type"] == pm.WT_SPECIAL_POST and amount < r["past_max"] and not spike:
            continue  # lower 1500: usually a shorter month (prorated)
        category = "special_allowance_spike" if spike else (
            "special_allowance_change" if r["wage_type"] == pm.WT_SPECIAL_POST else "deduction_change")
        text = (f"{ctx.text(r['wage_type'])} ({r['wage_type']}) is {money(r['amount'], r['currency'])}; in the last "
                f"FINAL runs it was between {money(r['past_min'], r['currency'])} and {money(r['past_max'], r['currency'])}"
                + (f" — {amount / max(r['past_max'], 1):.1f} times the highest." if spike else "."))
        rows.append({"pernr": r["pernr"], "detector": CODE, "category": category,
                     "severity": params.get("spike_severity", "review") if spike else params.get("change_severity", "info"),
                     "owner": "HR" if r["wage_type"] == pm.WT_SPECIAL_POST else "FINANCE",
                     "wage_type": r["wage_type"], "for_period": ctx.meta.period, "amount_cents": r["amount"],
                     "expected_cents": r["past_max"] if r["amount"] >= 0 else -r["past_max"], "currency": r["currency"],
                     "score": min(1.0, 1 - r["past_max"] / amount) if spike else 0.5, "explanation": text,
                     "evidence": {"past_min_cents": r["past_min"], "past_max_cents": r["past_max"]}})
    return findings_frame(rows)


DETECTOR = Detector(CODE, "variable_pay_change", ("special_allowance_spike", "special_allowance_change",
                                                  "deduction_change"), run,
                    description="Compares variable wage types with the staff member's own FINAL history.")
