"""PW120 retro — retroactive lines recomputed from history (docs/extract-format.md).

For each staff member paid in the run: the earliest pay-relevant master-data change not
yet settled by a FINAL that paid them opens the months to recalculate (up to INPER-1, at
most 12). For each such month whose FINAL is in the history, every retro wage type's
expected difference is (model amount with today's master data) - (paid so far by FINAL
runs). A written retro line that differs is `retro_mismatch`; one with no change behind
it at all is `unexplained_retro`; an expected difference with no line is `missing_retro`.
"""

from __future__ import annotations

import polars as pl

from detectors import history as h
from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.money import money
from detectors.context import Context

CODE = "PW120"
CONFIG = (ENABLED,
          Key("unexplained_retro_severity", str, "severity of a retro line with no master-data change behind it",
              SEVERITY.choices),
          Key("retro_mismatch_severity", str, "severity of a retro line that differs from the recomputed one",
              SEVERITY.choices),
          Key("missing_retro_severity", str, "severity of an expected retro difference with no line",
              SEVERITY.choices))


def _recalculated(ctx: Context, months_by_staff: dict[str, str]) -> pl.DataFrame:
    """Model amounts of the recalculated months (0 where the model has no line), every month
    of every staff member in one pass of the pay model (a year of history is twelve months:
    one pass each cost twelve times the same fixed work).
    Grain: one row per staff member, recalculated month and retro wage type."""
    period = ctx.meta.period
    months = pl.DataFrame({"for_period": sorted(m for m in h.final_periods(ctx.inp.history.runs) if m < period)},
                          schema={"for_period": pl.String})
    starts = pl.DataFrame({"pernr": list(months_by_staff), "_start": list(months_by_staff.values())},
                          schema={"pernr": pl.String, "_start": pl.String})
    pairs = (starts.join(months, how="cross").filter(pl.col("for_period") >= pl.col("_start"))
             .select("pernr", "for_period"))
    if pairs.height == 0:
        return pl.DataFrame(schema={"pernr": pl.String, "for_period": pl.String, "wage_type": pl.String,
                                    "expected_cents": pl.Int64})
    # the pay model is per staff member: another's records never change one's amounts
    _, exp = pm.expected_for_periods(ctx.inp.md, ctx.inp.ref, pairs)
    wts = pl.DataFrame({"wage_type": list(pm.RETRO_WAGE_TYPES)})
    return (pairs.join(wts, how="cross")
            .join(exp.select("pernr", "for_period", "wage_type", "expected_cents"),
                  on=["pernr", "for_period", "wage_type"], how="left")
            .with_columns(pl.col("expected_cents").fill_null(0)))


def windows(ctx: Context, params: Params) -> dict[str, str]:
    """First month to recalculate per staff member with an unsettled change."""
    hist = ctx.inp.history
    period = ctx.meta.period
    paid_now = ctx.current.filter(~pl.col("wage_type").str.starts_with("/"))["pernr"].unique()
    # the last FINAL that paid each staff member of the history (the history's alone: kept for
    # the month's later runs), read for those paid now
    last = ctx.from_history(CODE, params, "last_final", lambda: h.last_final_with_pay(
        hist.final_lines, hist.runs, hist.final_lines["pernr"].unique()))
    # staff by the FINAL that last paid them (None: never paid), grouped in polars
    by_run: dict[str | None, list[str]] = dict(
        pl.DataFrame({"pernr": paid_now}).join(last, on="pernr", how="left")
        .group_by("run_id", maintain_order=True).agg("pernr").iter_rows())
    groups = []
    for run_id, pernrs in by_run.items():
        then = hist.final_md.get(run_id) if run_id is not None else None
        if run_id is not None and then is None:
            continue  # that FINAL's master data is not available: cannot say what changed
        groups.append((then, pernrs))
    out: dict[str, str] = {}
    first_allowed = h.window_start(period)
    for p, eff in h.earliest_unsettled_changes(ctx.inp.md, groups).iter_rows():
        m = f"{eff.year:04d}{eff.month:02d}"
        if m < period:
            out[p] = max(m, first_allowed)
    return out


def run(ctx: Context, params: Params) -> pl.DataFrame:
    if ctx.meta.run_type == "OFFCYCLE":
        return findings_frame([])
    done = h.final_periods(ctx.inp.history.runs)
    win = windows(ctx, params)
    written = (ctx.retro.group_by("pernr", "for_period", "wage_type")
               .agg(pl.col("amount_cents").sum().alias("written_cents"), pl.col("currency").first()))
    written = written.filter(pl.col("for_period").is_in(list(done)))  # others cannot be checked
    recalc = _recalculated(ctx, win)
    # only staff with a window are recalculated: the ledger of the others is never read
    recalculated = pl.Series(list(win), dtype=pl.String).implode()
    final_lines = ctx.inp.history.final_lines
    paid = ctx.from_history(CODE, params, "ledger", lambda: h.ledger(final_lines)).filter(
        pl.col("pernr").is_in(recalculated))
    exp = (recalc.join(paid, on=["pernr", "for_period", "wage_type"], how="left")
           .with_columns((pl.col("expected_cents") - pl.col("paid_cents").fill_null(0)).alias("diff_cents")))
    cmp = exp.join(written, on=["pernr", "for_period", "wage_type"], how="full", coalesce=True).with_columns(
        pl.col("diff_cents").fill_null(0), pl.col("written_cents").fill_null(0))
    bad = cmp.filter(pl.col("diff_cents") != pl.col("written_cents"))
    if bad.height == 0:
        return findings_frame([])
    cur = ctx.current.group_by("pernr").agg(pl.col("currency").first().alias("pay_currency"))
    bad = bad.join(cur, on="pernr", how="left").join(ctx.owners(), on="wage_type", how="left")
    rows = []
    for r in bad.iter_rows(named=True):
        p, m, wt = r["pernr"], r["for_period"], r["wage_type"]
        c = r["currency"] or r["pay_currency"]
        label = f"Retroactive {ctx.text(wt)} ({wt}) for {m}"
        if p not in win or m < win[p]:
            category = "unexplained_retro"
            text = (f"{label} of {money(r['written_cents'], c)} has no master-data change behind it: nothing that "
                    f"affects pay for {m} was entered since the last FINAL that paid this staff member.")
        elif r["written_cents"] == 0:
            category = "missing_retro"
            text = (f"{label} is missing: with the master data now on file {m} comes to "
                    f"{money(r['expected_cents'], c)} against {money(r['paid_cents'] or 0, c)} paid, "
                    f"a difference of {money(r['diff_cents'], c)}.")
        else:
            category = "retro_mismatch"
            text = (f"{label} is {money(r['written_cents'], c)} but recomputing {m} gives "
                    f"{money(r['expected_cents'], c)} against {money(r['paid_cents'] or 0, c)} paid, "
                    f"a difference of {money(r['diff_cents'], c)}.")
        rows.append(finding(ctx, params, p, category, text, owner=r["owner"] or "HR", wage_type=wt, for_period=m,
                            amount_cents=r["written_cents"] or None, expected_cents=r["diff_cents"], currency=c,
                            severity=params[f"{category}_severity"],
                            evidence={"recomputed_cents": r["expected_cents"], "paid_so_far_cents": r["paid_cents"],
                                      "window_from": win.get(p)}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "retro", ("unexplained_retro", "retro_mismatch", "missing_retro"), run, config=CONFIG,
                    description="Recomputes retroactive differences from history and flags unexplained ones.")
