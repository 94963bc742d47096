"""PW140 advance_ledger — salary advances (2000) against their recoveries (3200) across runs.

An advance is paid in an off-cycle run and recovered by deductions in later regular runs
(docs/extract-format.md). The ledger adds up, per staff member, what earlier FINAL and
off-cycle runs of the look-back window paid and recovered, plus this run:

- recovery_without_advance: this run recovers while no advance was ever paid;
- recovery_above_balance: this run recovers more than the advances still open;
- duplicate_advance: an advance paid again in a second run of the same period (two off-cycle
  runs, or an off-cycle and a regular run), or twice in this run;
- advance_not_recovered: an advance still open `recovery_months` after it was paid, and this
  regular run, which pays the staff member, recovers nothing.

Recoveries count as paid only in FINAL runs (simulations pay nothing); advances in any run.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.context import Context
from detectors.history import LOOKBACK_MONTHS
from detectors.money import money

CODE = "PW140"
CONFIG = (ENABLED, SEVERITY,
          Key("advance_wage_types", list[str], "wage types that pay a salary advance"),
          Key("recovery_wage_types", list[str], "wage types that recover an advance (deductions)"),
          Key("recovery_months", int, "an advance still open this many months after it was paid is reported"),
          Key("not_recovered_severity", str, "severity of an advance not recovered in time", SEVERITY.choices))
CATEGORIES = ("recovery_without_advance", "recovery_above_balance", "duplicate_advance", "advance_not_recovered")
CURRENT = "<this run>"


def ledger_events(ctx: Context, params: Params) -> pl.DataFrame:
    """Advances (positive) and recoveries (positive amounts recovered) of earlier runs and of
    this run. Grain: one row per run, staff member and kind (advance | recovery)."""
    h = ctx.inp.history
    adv, rec = params.advance_wage_types, params.recovery_wage_types
    cols = ["run_id", "pernr", "in_period", "wage_type", "amount_cents", "currency"]
    # each part's advance and recovery lines (a few), then stacked: the same rows, in the same
    # order, as stacking every line and filtering
    wts = pl.col("wage_type").is_in(adv + rec)
    finals = h.final_lines.filter(wts).select(cols).with_columns(pl.lit("FINAL").alias("run_type"))
    offc = h.offcycle_lines.filter(wts).select(cols).with_columns(pl.lit("OFFCYCLE").alias("run_type"))
    now = (ctx.inp.lines.filter(wts).with_columns(pl.lit(CURRENT).alias("run_id")).select(cols)
           .with_columns(pl.lit(ctx.meta.run_type).alias("run_type")))
    ev = pl.concat([finals, offc, now], how="vertical_relaxed")
    kind = pl.when(pl.col("wage_type").is_in(adv)).then(pl.lit("advance")).otherwise(pl.lit("recovery"))
    # a recovery is a deduction: it is written negative, and recovers its absolute amount;
    # simulations pay nothing, so only FINAL runs (and this run) recover
    ev = ev.with_columns(kind.alias("kind")).filter(
        (pl.col("kind") == "advance") | (pl.col("run_type") == "FINAL") | (pl.col("run_id") == CURRENT))
    amount = pl.when(pl.col("kind") == "advance").then(pl.col("amount_cents")).otherwise(-pl.col("amount_cents"))
    return (ev.group_by("run_id", "pernr", "kind").agg(
        amount.sum().alias("cents"), pl.len().alias("n_lines"), pl.col("in_period").first().alias("period"),
        pl.col("currency").first()))


def staff_ledger(ev: pl.DataFrame) -> pl.DataFrame:
    """Per staff member: advanced and recovered before this run and in it, the oldest
    advance still open (first in, first out). Grain: one row per staff member."""
    before = pl.col("run_id") != CURRENT
    adv, rec = pl.col("kind") == "advance", pl.col("kind") == "recovery"
    led = ev.group_by("pernr").agg(
        pl.col("cents").filter(adv & before).sum().alias("advanced_before"),
        pl.col("cents").filter(rec & before).sum().alias("recovered_before"),
        pl.col("cents").filter(adv & ~before).sum().alias("advanced_now"),
        pl.col("cents").filter(rec & ~before).sum().alias("recovered_now"),
        pl.col("currency").first())
    # first in, first out: an advance is open while the advances up to it exceed all recoveries
    advances = (ev.filter(adv).sort("period", "run_id").with_columns(pl.col("cents").cum_sum().over("pernr")
                                                                     .alias("_upto"))
                .join(led.select("pernr", (pl.col("recovered_before") + pl.col("recovered_now")).alias("_rec")),
                      on="pernr")
                .filter(pl.col("_upto") > pl.col("_rec"))
                .group_by("pernr").agg(pl.col("period").min().alias("oldest_open")))
    return led.join(advances, on="pernr", how="left")


def _duplicates(ctx: Context, ev: pl.DataFrame) -> pl.DataFrame:
    """Advances of this run that another run of the same period (or this run twice) also
    paid. Grain: one row per staff member."""
    adv = ev.filter(pl.col("kind") == "advance")
    now = adv.filter(pl.col("run_id") == CURRENT)
    other = (adv.filter((pl.col("run_id") != CURRENT) & (pl.col("period") == ctx.meta.period))
             .group_by("pernr").agg(pl.col("cents").sum().alias("other_cents"), pl.col("run_id").sort().alias("others")))
    return (now.join(other, on="pernr", how="left")
            .filter(pl.col("other_cents").is_not_null() | (pl.col("n_lines") > 1)))


def run(ctx: Context, params: Params) -> pl.DataFrame:
    ev = ledger_events(ctx, params)
    if ev.height == 0:
        return findings_frame([])
    led = staff_ledger(ev)
    rows = []
    adv_wt, rec_wt = params.advance_wage_types[0], params.recovery_wage_types[0]
    regular = ctx.meta.run_type != "OFFCYCLE"
    recovering = led.filter(pl.col("recovered_now") > 0)
    for r in recovering.iter_rows(named=True):
        open_cents = r["advanced_before"] + r["advanced_now"] - r["recovered_before"]
        cur = r["currency"]
        if r["advanced_before"] + r["advanced_now"] == 0:
            text = (f"This run recovers an advance of {money(r['recovered_now'], cur)} but no advance was paid to the "
                    f"staff member in the runs of the last {LOOKBACK_MONTHS} months.")
            cat, exp = "recovery_without_advance", 0
        elif r["recovered_now"] > open_cents:
            text = (f"This run recovers {money(r['recovered_now'], cur)} of advances but only "
                    f"{money(open_cents, cur)} is still open ({money(r['advanced_before'] + r['advanced_now'], cur)} "
                    f"advanced, {money(r['recovered_before'], cur)} recovered before).")
            cat, exp = "recovery_above_balance", open_cents
        else:
            continue
        rows.append(finding(ctx, params, r["pernr"], cat, text, owner="FINANCE", wage_type=rec_wt,
                            amount_cents=-r["recovered_now"], expected_cents=-max(exp, 0), currency=cur,
                            evidence={k: r[k] for k in ("advanced_before", "recovered_before", "advanced_now",
                                                        "recovered_now")}))
    for r in _duplicates(ctx, ev).iter_rows(named=True):
        where = (f"also paid in {', '.join(r['others'])} ({money(r['other_cents'], r['currency'])})"
                 if r["others"] else f"written {r['n_lines']} times in this run")
        text = (f"A salary advance of {money(r['cents'], r['currency'])} is paid for {ctx.meta.period} that was "
                f"{where}.")
        rows.append(finding(ctx, params, r["pernr"], "duplicate_advance", text, owner="FINANCE", wage_type=adv_wt,
                            amount_cents=r["cents"], currency=r["currency"],
                            evidence={"other_runs": r["others"] or [], "other_cents": r["other_cents"],
                                      "lines_in_run": r["n_lines"]}))
    if regular:
        paid = ctx.paid
        due = pm.shift_period(ctx.meta.period, -params.recovery_months)
        late = (led.join(paid, on="pernr").filter(pl.col("oldest_open").is_not_null()
                                                  & (pl.col("oldest_open") <= due) & (pl.col("recovered_now") == 0)))
        for r in late.iter_rows(named=True):
            open_cents = r["advanced_before"] + r["advanced_now"] - r["recovered_before"]
            text = (f"An advance paid in {r['oldest_open']} is still open ({money(open_cents, r['currency'])} of "
                    f"{money(r['advanced_before'] + r['advanced_now'], r['currency'])}) after "
                    f"{params.recovery_months} months or more, and this run recovers nothing.")
            rows.append(finding(ctx, params, r["pernr"], "advance_not_recovered", text, owner="FINANCE",
                                wage_type=rec_wt, amount_cents=0, expected_cents=-open_cents, currency=r["currency"],
                                severity=params.not_recovered_severity,
                                evidence={"oldest_open": r["oldest_open"], "open_cents": open_cents}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "advance_ledger", CATEGORIES, run, config=CONFIG,
                    description="Keeps the ledger of salary advances and their recoveries across runs.")
