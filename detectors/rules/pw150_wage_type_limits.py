"""PW150 wage_type_limits — wage types outside the pay model (1500, 2000, 3200, 3300 and any
other earning or deduction T512W lists), which nothing recomputes:

- wage_type_limit: a line above its per-wage-type limit, as a share of the staff member's
  monthly net base salary (T510 ANNUAL_NET / 12 for the grade and step in force): `limits`
  lists "LGART:share" pairs; a wage type not listed has no limit;
- unexplained_new_wage_type: a recurring earning or deduction the staff member was paid in
  none of the earlier FINALs of the look-back window although they were paid in them, and no
  personnel action (PA0000) starts in the period or the `action_months` before it. Off-cycle
  wage types (2000, 3200: PW140's ledger) are not recurring and are left out.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.context import Context
from detectors.money import money
from detectors.scoring import calibrated

CODE = "PW150"
CONFIG = (ENABLED,
          Key("limits", list[str], '"LGART:share": a line above share x monthly net base salary is over its limit'),
          Key("limit_severity", str, "severity of a line above its limit", SEVERITY.choices),
          Key("not_recurring", list[str], "wage types that are not recurring (advances and recoveries)"),
          Key("action_months", int, "a personnel action starting this many months before the period explains a new wage type"),
          Key("new_severity", str, "severity of an unexplained new wage type", SEVERITY.choices))
CATEGORIES = ("wage_type_limit", "unexplained_new_wage_type")


def _limits(params: Params) -> pl.DataFrame:
    pairs = [item.split(":", 1) for item in params.limits]
    return pl.DataFrame({"wage_type": [w for w, _ in pairs], "limit": [float(s) for _, s in pairs]},
                        schema={"wage_type": pl.String, "limit": pl.Float64})


def _outside_wage_types(ctx: Context) -> pl.Series:
    """T512W's earnings and deductions the pay model does not compute."""
    return ctx.wage_types.filter(pl.col("wage_class").is_in(["EARNING", "DEDUCTION"])
                                 & ~pl.col("wage_type").is_in(list(pm.MODEL_WAGE_TYPES)))["wage_type"]


def _outside_model(ctx: Context, outside: pl.Series) -> pl.DataFrame:
    """This run's lines of the wage types `outside` (`_outside_wage_types`), summed.
    Grain: one row per staff member, period and wage type."""
    return (ctx.inp.lines.filter(pl.col("wage_type").is_in(outside.implode()))
            .group_by("pernr", "for_period", "wage_type")
            .agg(pl.col("amount_cents").sum().alias("amount"), pl.col("currency").first()))


def run(ctx: Context, params: Params) -> pl.DataFrame:
    outside = _outside_wage_types(ctx)
    lines = _outside_model(ctx, outside)
    rows = []
    monthly = ctx.facts.select("pernr", (pl.col("annual_net_cents").cast(pl.Float64) / 12).alias("monthly")) \
        .unique("pernr", keep="first")
    over = (lines.join(_limits(params), on="wage_type").join(monthly, on="pernr")
            .with_columns((pl.col("amount").abs() / pl.col("monthly")).alias("share"))
            .filter(pl.col("share") > pl.col("limit")))
    for r in over.iter_rows(named=True):
        text = (f"{ctx.text(r['wage_type'])} ({r['wage_type']}) of {money(r['amount'], r['currency'])} is "
                f"{r['share']:.0%} of the monthly net base salary, above its limit of {r['limit']:.0%}.")
        rows.append(finding(ctx, params, r["pernr"], "wage_type_limit", text, owner="FINANCE",
                            wage_type=r["wage_type"], for_period=r["for_period"], amount_cents=r["amount"],
                            currency=r["currency"], severity=params.limit_severity,
                            score=calibrated(r["share"], r["limit"]),
                            evidence={"share_of_monthly_net": round(r["share"], 4), "limit": r["limit"]}))
    rows += _new_wage_types(ctx, params, lines, outside)
    return findings_frame(rows)


def _new_wage_types(ctx: Context, params: Params, lines: pl.DataFrame, outside_wts: pl.Series) -> list[dict]:
    hist = ctx.inp.history.final_lines
    if ctx.meta.run_type == "OFFCYCLE" or hist.height == 0:
        return []
    recurring = lines.filter(~pl.col("wage_type").is_in(params.not_recurring)
                             & (pl.col("for_period") == ctx.meta.period))
    # the history's staff, and its (staff member, wage type) pairs of the wage types outside the
    # model (T512W's, named in the key: a catalogue that changes is another set), are the
    # history's alone: found once, kept for the month's later runs
    outside = sorted(outside_wts.to_list())
    paid_before = ctx.from_history(CODE, params, "paid_before", lambda: hist.select("pernr").unique())
    seen = ctx.from_history(CODE, params, "seen:" + ",".join(outside), lambda: hist.filter(
        pl.col("wage_type").is_in(pl.Series(outside, dtype=pl.String).implode())).select("pernr", "wage_type").unique())
    start = pm.shift_period(ctx.meta.period, -params.action_months)
    first = date(int(start[:4]), int(start[4:]), 1)
    _, last, _ = pm.month_bounds(ctx.meta.period)
    acted = (ctx.inp.md["actions"].filter((pl.col("valid_from") >= first) & (pl.col("valid_from") <= last))
             .select("pernr").unique())
    new = (recurring.lazy().join(paid_before.lazy(), on="pernr", how="semi")
           .join(seen.lazy(), on=["pernr", "wage_type"], how="anti").join(acted.lazy(), on="pernr", how="anti").collect())
    n_finals = ctx.inp.history.runs.filter(pl.col("run_type") == "FINAL").height
    return [finding(ctx, params, r["pernr"], "unexplained_new_wage_type",
                    (f"{ctx.text(r['wage_type'])} ({r['wage_type']}) of {money(r['amount'], r['currency'])} is paid "
                     f"for the first time in {n_finals} FINAL runs on record, and no personnel action since "
                     f"{first:%d.%m.%Y} explains it."),
                    owner="HR", wage_type=r["wage_type"], amount_cents=r["amount"], currency=r["currency"],
                    severity=params.new_severity, score=0.5,
                    evidence={"finals_without_it": n_finals, "actions_since": str(first)})
            for r in new.iter_rows(named=True)]


DETECTOR = Detector(CODE, "wage_type_limits", CATEGORIES, run, config=CONFIG,
                    description="Wage types outside the pay model: per-wage-type limits; a new one no action explains.")
