"""PW113 new_staff_high_first_pay — a newcomer's first pay far above a month's salary.

A staff member with no pay in any FINAL of the look-back history whose amount paid
exceeds `max_months` x a full month of net base + post adjustment (their own grade and
step, from the pay scale) is flagged for review.
"""

from __future__ import annotations

import polars as pl

from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.money import money
from detectors.scoring import calibrated
from detectors.paymodel import round_div
from detectors.context import Context

CODE = "PW113"
CONFIG = (ENABLED, SEVERITY,
          Key("max_months", float, "first pay above this many months of salary + post adjustment is flagged "
              "(the threshold of the score)"))


def run(ctx: Context, params: Params) -> pl.DataFrame:
    final_lines = ctx.inp.history.final_lines
    runs = ctx.inp.history.runs
    if (ctx.meta.run_type == "OFFCYCLE"
            or runs.filter(pl.col("run_type") == "FINAL").height == 0):
        return findings_frame([])  # no FINAL yet: everyone would look new
    # staff paid at an earlier FINAL: the history's alone (kept for the month's later runs)
    seen = ctx.from_history(CODE, params, "seen", lambda: final_lines.select("pernr").unique())
    paid = (ctx.current.filter(pl.col("wage_type") == "/560").group_by("pernr")
            .agg(pl.col("amount_cents").sum().alias("paid"), pl.col("currency").first())
            .join(seen, on="pernr", how="anti"))
    # a full month of net base + post adjustment, exact: net x pct x (100 + multiplier) / 120000
    f = ctx.facts.with_columns(
        pl.when(pl.col("staff_category") == "G").then(pl.lit(1, dtype=pl.Int128))
        .otherwise(pl.col("multiplier_den").cast(pl.Int128)).alias("_den"),
        pl.when(pl.col("staff_category") == "G").then(pl.lit(0, dtype=pl.Int128))
        .otherwise(pl.col("multiplier_num").cast(pl.Int128)).alias("_num"),
    ).select("pernr", round_div(
        pl.col("annual_net_cents").cast(pl.Int128) * pl.col("employment_pct").cast(pl.Int128)
        * (pl.col("_den") * 100 + pl.col("_num")), pl.col("_den") * 120000).alias("month_ref"))
    k = params.max_months
    hits = paid.join(f, on="pernr").filter(pl.col("paid") > pl.col("month_ref") * k)
    rows = []
    for r in hits.iter_rows(named=True):
        ref = int(r["month_ref"])
        text = (f"First pay of a new staff member is {money(r['paid'], r['currency'])}, more than "
                f"{k:g} x a full month of salary and post adjustment ({money(ref, r['currency'])}).")
        rows.append(finding(ctx, params, r["pernr"], "new_staff_high_first_pay", text, owner="HR", wage_type="/560",
                            amount_cents=r["paid"], expected_cents=ref, currency=r["currency"],
                            score=calibrated(r["paid"] / max(ref, 1), k), evidence={"month_reference_cents": ref}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "new_staff_high_first_pay", ("new_staff_high_first_pay",), run, config=CONFIG,
                    description="Flags a newcomer whose first pay is far above a month's salary.")
