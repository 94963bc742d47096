"""PW112 bank_change_before_large_payment — new bank account just before a big payment.

Audit practice: an account changed shortly before pay day, followed by a payment out of the
ordinary, is a classic diversion pattern: in a regular run, net pay well above the staff
member's previous FINAL and above what the pay model pays this month; in an off-cycle run
(advances and other one-off payments), any payment (`offcycle_any_payment`). Review, not hold.

"Usual" follows the unit: when the staff member's peers (same client entity and staff
category, at least `peer_min_staff` of them in the run and in the last FINAL) are paid more
than at the last FINAL this month — a unit-wide overtime peak in a session month — the last
FINAL is scaled by the peers' rise at `peer_quantile` (never down). A bank change in such a
month is ordinary; a payment far above what the unit gets is not. Needs the whole unit:
area scope.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.money import money
from detectors.scoring import calibrated
from detectors.context import Context

CODE = "PW112"
CONFIG = (ENABLED, SEVERITY,
          Key("days_before_pay", int, "an account changed this many days or fewer before pay day counts"),
          Key("min_increase_ratio", float, "net pay at least this multiple of the last FINAL's (the threshold of "
              "the score)"),
          Key("min_increase_cents", int, "and at least this much higher, in cents"),
          Key("offcycle_any_payment", bool, "in an off-cycle run, any payment after a recent change counts"),
          Key("peer_quantile", float, "the peers' rise of net pay since the last FINAL taken at this quantile"),
          Key("peer_min_staff", int, "peers (entity and staff category) needed for their rise to count"))


def run(ctx: Context, params: Params) -> pl.DataFrame:
    hist = ctx.inp.history
    pay_date = hist.pay_date
    prev_final = hist.final_lines
    offcycle = ctx.meta.run_type == "OFFCYCLE"
    if pay_date is None or (offcycle and not params.offcycle_any_payment):
        return findings_frame([])
    days = params.days_before_pay
    bank = ctx.inp.md["bank_details"]
    recent = bank.filter((pl.col("valid_from") <= pay_date) & (pl.col("valid_to") >= pay_date)
                         & (pl.col("valid_from") > pay_date - timedelta(days=days)))
    # a change needs an account before it: a newcomer's first account is not one
    earlier = bank.select("pernr", pl.col("valid_from").alias("_earlier"))
    recent = recent.join(earlier, on="pernr").filter(pl.col("_earlier") < pl.col("valid_from")).unique(
        subset=["pernr", "valid_from"]).drop("_earlier")
    if offcycle:
        return _offcycle(ctx, params, recent.select("pernr", "valid_from"), pay_date)
    if recent.height == 0:
        return findings_frame([])  # most runs: no account changed shortly before pay day
    finals = hist.runs.filter(pl.col("run_type") == "FINAL")
    if finals.height == 0 or prev_final.height == 0:
        return findings_frame([])
    last_run = finals["run_id"][-1]
    # net pay at the last FINAL: the history's alone (kept for the month's later runs)
    prev_net = ctx.from_history(CODE, params, "prev_net", lambda: prev_final.filter(
        (pl.col("run_id") == last_run) & (pl.col("wage_type") == "/560")).group_by("pernr").agg(
        pl.col("amount_cents").sum().alias("prev_net")))
    net = ctx.current.filter(pl.col("wage_type") == "/560").group_by("pernr").agg(
        pl.col("amount_cents").sum().alias("net"), pl.col("currency").first())
    # what this month's master data pays by the pay model (overtime aside, its hours are claimed):
    # a full month after a short one (return from leave, a newcomer's first full month) is
    # no payment out of the ordinary, so the reference is the higher of it and the last FINAL
    # (read for the staff whose account changed alone: the rest of the payroll is no candidate)
    model = (ctx.expected.filter(pl.col("pernr").is_in(recent["pernr"].implode())
                                 & (pl.col("wage_type") != pm.WT_OVERTIME) & (pl.col("for_period") == ctx.meta.period))
             .group_by("pernr").agg(pl.col("expected_cents").sum().alias("_model")))
    rise = _unit_rise(ctx, params, net, prev_net, recent["pernr"])
    prev_net = (prev_net.join(rise, on="pernr", how="left").join(model, on="pernr", how="left")
                .with_columns(pl.col("unit_rise").fill_null(1.0))
                .select("pernr", "unit_rise", "unit",
                        pl.max_horizontal((pl.col("prev_net") * pl.col("unit_rise")).round(0).cast(pl.Int64),
                                          "_model").alias("prev_net")))
    ratio, floor = params.min_increase_ratio, params.min_increase_cents
    hits = (recent.select("pernr", "valid_from").join(net, on="pernr").join(prev_net, on="pernr", how="left")
            .filter(pl.col("prev_net").is_not_null() & (pl.col("net") >= pl.col("prev_net") * ratio)
                    & (pl.col("net") - pl.col("prev_net") >= floor)))
    rows = []
    for r in hits.iter_rows(named=True):
        unit = (f"; {r['unit']} staff are paid {r['unit_rise']:.2f}x their last FINAL this month"
                if r["unit_rise"] > 1 else "")
        text = (f"The bank account changed on {r['valid_from']}, {(pay_date - r['valid_from']).days} "
                f"days before pay day, and this run pays {money(r['net'], r['currency'])} against "
                f"{money(r['prev_net'], r['currency'])} usually (the last FINAL{' scaled by the unit' if unit else ''}, "
                f"or this month's pay by the pay model{unit}).")
        rows.append(finding(ctx, params, r["pernr"], "bank_change_before_large_payment", text, owner="HR",
                            wage_type="/560", amount_cents=r["net"], expected_cents=r["prev_net"],
                            currency=r["currency"], score=calibrated(r["net"] / max(r["prev_net"], 1), ratio),
                            evidence={"bank_from": str(r["valid_from"]), "pay_date": str(pay_date)}))
    return findings_frame(rows)


def _unit_rise(ctx: Context, params: Params, net: pl.DataFrame, prev_net: pl.DataFrame,
               changed: pl.Series) -> pl.DataFrame:
    """How much more the staff member's unit (entity and staff category) is paid than at the
    last FINAL, at `peer_quantile`, never below 1, for the units of the staff whose account
    `changed` (no other is read). Grain: one row per staff member of such a unit with at least
    `peer_min_staff` staff paid in both runs (pernr, unit_rise, unit)."""
    who = ctx.facts.select("pernr", "entity", "staff_category").unique("pernr", keep="first")
    units = who.filter(pl.col("pernr").is_in(changed.implode())).select("entity", "staff_category").unique()
    who = who.join(units, on=["entity", "staff_category"], how="semi", nulls_equal=True)
    both = (net.join(prev_net.filter(pl.col("prev_net") > 0), on="pernr").join(who, on="pernr")
            .with_columns((pl.col("net") / pl.col("prev_net")).alias("_r")))
    units = (both.group_by("entity", "staff_category")
             .agg(pl.col("_r").quantile(params.peer_quantile, "linear").alias("unit_rise"), pl.len().alias("_n"))
             .filter(pl.col("_n") >= params.peer_min_staff)
             .with_columns(pl.max_horizontal("unit_rise", pl.lit(1.0)),
                           pl.concat_str("entity", pl.lit(" "), "staff_category").alias("unit")))
    return who.join(units, on=["entity", "staff_category"]).select("pernr", "unit_rise", "unit")


def _offcycle(ctx: Context, params: Params, recent: pl.DataFrame, pay_date) -> pl.DataFrame:
    """Any off-cycle payment to an account changed within `days_before_pay` of its pay date."""
    net = ctx.current.filter(pl.col("wage_type") == "/560").group_by("pernr").agg(
        pl.col("amount_cents").sum().alias("net"), pl.col("currency").first())
    rows = []
    for r in recent.join(net, on="pernr").filter(pl.col("net") > 0).iter_rows(named=True):
        days = (pay_date - r["valid_from"]).days
        text = (f"The bank account changed on {r['valid_from']}, {days} days before this off-cycle run pays "
                f"{money(r['net'], r['currency'])} to it on {pay_date}.")
        rows.append(finding(ctx, params, r["pernr"], "bank_change_before_large_payment", text, owner="HR",
                            wage_type="/560", amount_cents=r["net"], currency=r["currency"],
                            score=calibrated(params.days_before_pay + 1 - days, params.days_before_pay),
                            evidence={"bank_from": str(r["valid_from"]), "pay_date": str(pay_date),
                                      "offcycle": True}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "bank_change_before_large_payment", ("bank_change_before_large_payment",), run, config=CONFIG,
                    scope="area", description="Flags a new bank account shortly before an unusually large payment.")
