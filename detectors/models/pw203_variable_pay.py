"""PW203 variable_pay_context — special post allowance (1500) and other deductions (3300) as
a share of the month's net base salary, against the staff member's own usual share AND
peers this month (models/context.py; the same reading as PW201).

1500 with own history is PW130's (per the contract it is usually the same every month, so
a jump against own history alone is enough); this model covers its cold start — a newcomer,
an allowance new to the staff member, an area's first month — where peers of the same entity
and grade band (else the category) stand in. 3300 is read against both references; the
contract does not prorate it, so an amount no higher than the staff member's usual one is
never an outlier, however large its share of a partial month's base; without one's own, an
amount the area deducts from others paid in the same currency (its continuum of 3300 amounts
from the 90th percentile up, each within 1.5 x of the one before: `deduction_area_*`) is not
one either — a garnishment's amount follows no grade. A 1500 on fewer than `vouch_min_runs`
own FINALs, each beyond `peak_ratio` x the peers' peak this month as a share and as an amount
(an allowance multiplied at a newcomer's first FINAL and paid), is read as a cold start again.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, Key, Params
from detectors.context import Context
from detectors.models.context import ContextModel, area_reference, describe, severity
from detectors.models.pw201_overtime import CONTEXT_KEYS, PEAK_KEYS, _round
from detectors.money import for_whole_month, money
from detectors.scoring import calibrated

CODE = "PW203"
CONFIG = (ENABLED, *CONTEXT_KEYS, Key("min_scale_share", float, "floor of the spread, as a share of base salary"),
          Key("dual_threshold", float, "without own history: robust z against the peers, as a share of base salary "
              "AND as an amount, at which a value is unusual ..."),
          Key("dual_min_peers", int, "... in a peer group of at least this many ..."),
          Key("dual_peak_ratio", float, "... and this multiple of the peers' peak (their second highest) as a "
              "share or as an amount: what two others are paid is the group's top"), *PEAK_KEYS,
          Key("peak_amount_ratio", float, "... for 1500, its amount beyond the peers' peak amount (their second "
              "highest) by this multiple too (3300, whose amount follows no grade: by peak_ratio)"),
          Key("same_amount_tolerance", float, "3300 within this share above the staff member's usual amount is "
              "their usual deduction, whatever its share of a prorated base"),
          Key("vouch_min_runs", int, "1500 on fewer own FINALs than this, each beyond the peers' peak this month "
              "(peak_ratio x, as a share and as an amount), is read as a cold start"),
          Key("deduction_area_quantile", float, "3300 without own history: the area's ceiling of 3300 amounts this month "
              "(in the pay currency, every unit): from this quantile upward, amounts go on ..."),
          Key("deduction_area_ratio", float, "... while each is within this multiple of the one before; an amount not "
              "this multiple beyond that ceiling is a deduction the area has, not an outlier ..."),
          Key("deduction_area_min", int, "... read when at least this many others paid in the currency have a 3300"))
CATEGORY = {pm.WT_SPECIAL_POST: "special_allowance_spike", pm.WT_OTHER_DED: "deduction_outlier"}


def run(ctx: Context, params: Params) -> pl.DataFrame:
    if ctx.meta.run_type == "OFFCYCLE":
        return findings_frame([])
    hist = ctx.inp.history
    rows = []
    for wt, category in CATEGORY.items():
        # a special post allowance follows the grade gap, so a share beyond every holder's needs
        # only an amount beyond theirs; a garnishment follows no grade: 3300 keeps peak_ratio
        by = params.peak_amount_ratio if wt == pm.WT_SPECIAL_POST else None
        model = ctx.fitted_on_history(CODE, params, ContextModel(params, wt, "share", by),
                                      lambda m: m.fit(hist.final_lines, hist.runs), wt)
        ctx.artifacts[f"{CODE}:{wt}"] = model
        scored = model.score(ctx.current, ctx.facts)
        if wt == pm.WT_SPECIAL_POST:
            # one own FINAL beyond the peers' peak this month (as a share and as an amount) is no
            # usual level: an allowance multiplied at a newcomer's first FINAL and paid is read again
            # as a cold start, not as their habit
            unvouched = scored.filter(
                (pl.col("own_n") < params.vouch_min_runs) & (pl.col("peer_n") >= params.peak_min_peers)
                & (pl.col("own_median") >= pl.col("peer_max") * params.peak_ratio)
                & (pl.col("own_amount") >= pl.col("peer_amount_max") * params.peak_ratio))["pernr"]
            if unvouched.len():
                aside = model.own_.filter(pl.col("pernr").is_in(unvouched.implode())).select(
                    "pernr", pl.col("own_amount").alias("own_aside"))
                model.own_ = model.own_.filter(~pl.col("pernr").is_in(unvouched.implode()))
                scored = pl.concat([scored.filter(~pl.col("pernr").is_in(unvouched.implode())),
                                    model.score(ctx.current, ctx.facts).filter(pl.col("pernr").is_in(unvouched.implode()))],
                                   how="diagonal_relaxed").join(aside, on="pernr", how="left")
            hits = scored.filter(pl.col("unusual") & pl.col("own_median").is_null())
        else:  # a garnishment is a fixed amount: the same as usual is no outlier, whatever the
            # month's base (a partial month's prorated 1000 makes its share look larger); without
            # one's own, an amount the area deducts from others in that currency is no outlier either
            hits = _deduction_area(scored, params).filter(pl.col("unusual") & (
                pl.col("own_amount").is_null() & ((pl.col("ded_n") < params.deduction_area_min)
                                                  | pl.col("ded_beyond"))
                | (pl.col("amount").abs() > pl.col("own_amount") * (1 + params.same_amount_tolerance))))
        for r in hits.iter_rows(named=True):
            area, said = "", describe(r, "share")
            if r.get("own_aside") is not None:  # the own month set aside, named instead of "no earlier FINAL"
                said = said.replace("no earlier FINAL of this staff member to compare with",
                                    f"its only earlier FINAL ({money(round(r['own_aside']), r['currency'])}) was itself "
                                    f"beyond the peers' peak, no usual level")
            if r.get("ded_beyond") and r["own_amount"] is None and r["ded_n"] >= params.deduction_area_min:
                area = (f"; beyond every 3300 of the area in {r['currency']} this month, which run up to "
                        f"{money(round(r['ded_ceiling']), r['currency'])} (n = {r['ded_n']})")
            whole = for_whole_month(r["amount"], r.get("amount_month"), r["currency"])
            text = (f"{ctx.text(wt)} ({wt}) of {money(r['amount'], r['currency'])}{whole} is {said}{area}: "
                    f"far above the usual level.")
            rows.append(finding(ctx, params, r["pernr"], category, text, owner="HR" if wt == pm.WT_SPECIAL_POST
                                else "FINANCE", wage_type=wt, amount_cents=r["amount"], currency=r["currency"],
                                severity=severity(r, params), score=calibrated(float(r["raw"]), model.threshold_),
                                evidence={"share_of_base": _round(r["value"]), "own_median": r["own_median"],
                                          "own_n": r["own_n"], "peer_group": r["peer_group"],
                                          "peer_median": r["peer_median"], "peer_n": r["peer_n"],
                                          "peer_amount_median": _round(r.get("peer_amount_median")),
                                          "amount_month": _round(r.get("amount_month")),
                                          "z_own": _round(r["z_own"]), "z_peer": _round(r["z_peer"]),
                                          "z_amount": _round(r.get("z_amount")), "raw": _round(r["raw"])}))
    return findings_frame(rows)


def _deduction_area(x: pl.DataFrame, params: Params) -> pl.DataFrame:
    """`x` with the area's ceiling of 3300 amounts in the pay currency this month (a garnishment's
    amount follows no grade: ded_ceiling, in cents; ded_n: the others with a 3300) and
    ded_beyond: the amount at least `deduction_area_ratio` x that ceiling."""
    amounts = x.select("pernr", "currency", pl.col("amount").abs().cast(pl.Float64).alias("value"))
    area = area_reference(amounts, params.deduction_area_quantile, params.deduction_area_ratio, 0.0, ("currency",))
    return x.join(area.select("pernr", pl.col("area_ceiling").alias("ded_ceiling"), pl.col("area_n").alias("ded_n")),
                  on="pernr", how="left").with_columns(
        (pl.col("amount").abs() >= pl.col("ded_ceiling") * params.deduction_area_ratio).fill_null(False)
        .alias("ded_beyond"))


DETECTOR = Detector(CODE, "variable_pay_context", tuple(CATEGORY.values()), run, kind="model", config=CONFIG,
                    description="1500 (cold start) and 3300 against own history and peers of the unit this month.",
                    scope="area")
