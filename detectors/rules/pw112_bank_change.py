"""PW112 bank_change_before_large_payment — new bank account just before a big payment.

Audit practice: an account changed shortly before pay day, with net pay well above the
staff member's previous FINAL, is a classic diversion pattern. Review, not hold.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from detectors.base import Detector, findings_frame, money
from detectors.context import Context

CODE = "PW112"


def run(ctx: Context, params: dict) -> pl.DataFrame:
    hist = ctx.inp.history
    pay_date = hist.get("pay_date")
    prev_final = hist.get("final_lines")
    if pay_date is None or prev_final is None or prev_final.height == 0 or ctx.meta.run_type == "OFFCYCLE":
        return findings_frame([])
    days = int(params.get("days_before_pay", 30))
    bank = ctx.inp.md["bank_details"]
    recent = bank.filter((pl.col("valid_from") <= pay_date) & (pl.col("valid_to") >= pay_date)
                         & (pl.col("valid_from") > pay_date - timedelta(days=days)))
    # a change needs an account before it: a newcomer's first account is not one
    earlier = bank.select("pernr", pl.col("valid_from").alias("_earlier"))
    recent = recent.join(earlier, on="pernr").filter(pl.col("_earlier") < pl.col("valid_from")).unique(
        subset=["pernr", "valid_from"]).drop("_earlier")
    finals = hist["runs"].filter(pl.col("run_type") == "FINAL")
    if finals.height == 0:
        return findings_frame([])
    last_run = finals["run_id"][-1]
    prev_net = prev_final.filter((pl.col("run_id") == last_run) & (pl.col("wage_type") == "/560")).group_by("pernr").agg(
        pl.col("amount_cents").sum().alias("prev_net"))
    net = ctx.current.filter(pl.col("wage_type") == "/560").group_by("pernr").agg(
        pl.col("amount_cents").sum().alias("net"), pl.col("currency").first())
    ratio, floor = float(params.get("min_increase_ratio", 1.5)), int(params.get("min_increase_cents", 100_000))
    hits = (recent.select("pernr", "valid_from").join(net, on="pernr").join(prev_net, on="pernr", how="left")
            .filter(pl.col("prev_net").is_not_null() & (pl.col("net") >= pl.col("prev_net") * ratio)
                    & (pl.col("net") - pl.col("prev_net") >= floor)))
    rows = []
    for r in hits.iter_rows(named=True):
        rows.append({"pernr": r["pernr"], "detector": CODE, "category": "bank_change_before_large_payment",
                     "severity": params.get("severity", "review"), "owner": "HR", "wage_type": "/560",
                     "for_period": ctx.meta.period, "amount_cents": r["net"], "expected_cents": r["prev_net"],
                     "currency": r["currency"], "score": min(1.0, r["net"] / max(r["prev_net"], 1) / (2 * ratio)),
                     "explanation": (f"The bank account changed on {r['valid_from']}, {(pay_date - r['valid_from']).days} "
                                     f"days before pay day, and this run pays {money(r['net'], r['currency'])} against "
                                     f"{money(r['prev_net'], r['currency'])} in the last FINAL."),
                     "evidence": {"bank_from": str(r["valid_from"]), "pay_date": str(pay_date)}})
    return findings_frame(rows)


DETECTOR = Detector(CODE, "bank_change_before_large_payment", ("bank_change_before_large_payment",), run,
                    description="Flags a new bank account shortly before an unusually large payment.")
