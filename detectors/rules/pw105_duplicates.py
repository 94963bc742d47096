"""PW105 duplicate_line — one wage type written more than once for the same for-period.

In a correct run (PERNR, LGART, FPPER) is unique. An earning written twice is paid twice.
"""

from __future__ import annotations

import polars as pl

from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Params
from detectors.money import money
from detectors.context import Context

CODE = "PW105"
CONFIG = (ENABLED, SEVERITY)


def run(ctx: Context, params: Params) -> pl.DataFrame:
    # only the lines that can be in a group of more than one (a few: written more than once, or
    # of a wage type T512W holds twice) are joined and grouped: the same groups, of the same
    # lines in the same order, as joining and grouping every line
    wts = ctx.wage_types.select("wage_type", "wage_class", "owner", "wage_type_text")
    twice = wts.filter(pl.col("wage_type").is_duplicated())["wage_type"].implode()
    lines = ctx.inp.lines.filter(pl.struct("pernr", "wage_type", "for_period").is_duplicated()
                                 | pl.col("wage_type").is_in(twice)).join(wts, on="wage_type", how="left",
                                                                         maintain_order="left")
    dup = (
        lines.filter(pl.col("wage_class").fill_null("") != "TOTAL")  # totals: PW102
        .group_by("pernr", "wage_type", "for_period")
        .agg(pl.len().alias("n"), pl.col("amount_cents").sum().alias("total"), pl.col("amount_cents").first().alias("one"),
             pl.col("currency").first(), pl.col("wage_class").first(), pl.col("owner").first(),
             pl.col("wage_type_text").first())
        .filter(pl.col("n") > 1)
    )
    rows = []
    for r in dup.iter_rows(named=True):
        earning = r["wage_class"] == "EARNING"
        text = (f"{r['wage_type_text'] or r['wage_type']} ({r['wage_type']}) for {r['for_period']} "
                f"is written {r['n']} times, {money(r['total'], r['currency'])} in all; it must appear once.")
        rows.append(finding(ctx, params, r["pernr"], "duplicate_earning" if earning else "duplicate_line", text,
                            owner=r["owner"] or "FINANCE", wage_type=r["wage_type"], for_period=r["for_period"],
                            amount_cents=r["total"], expected_cents=r["one"], currency=r["currency"],
                            evidence={"times_written": r["n"]}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "duplicate_line", ("duplicate_earning", "duplicate_line"), run, config=CONFIG,
                    description="Flags a wage type written more than once for one for-period.")
