"""PW130 variable_pay_change — variable wage types against the staff member's own history.

Special post allowance (1500) is usually constant month to month. Amounts are compared as
a share of the month's net base salary (1000), so proration by days cancels out: a share
(and an amount, read for a whole month: amount / f) above `spike_ratio` x the usual one — the lower median of the look-back
FINAL runs, so that an earlier spike paid at FINAL does not become the yardstick — is a
spike (review), unless it repeats the latest FINAL's amount (a raise kept is the new usual).
Without FINAL history, a share above `no_history_max_share` is a spike; so is, on fewer than
`settled_runs` FINALs with a 1500, the same jump against the earlier runs of this month
(simulations: `History.period_lines`, the lowest of them) — one FINAL is no usual level yet (an
allowance multiplied at a newcomer's first FINAL and paid would otherwise vouch for the same
error when it comes back after a rehearsal that paid the right amount).
Changes of other deductions (3300) are reported as info, for context — as review when the
share is `jump_ratio` x its usual one or more (a garnishment tripled; the share may fall short
by `base_tolerance`, a revision of the base salary the same month). A recurring variable
line (1500 or 3300 in each of the last `recurring_runs` FINALs that paid the staff member, or
in each there is when the history is shorter)
missing from a run that pays them is `variable_pay_stopped` (review): an allowance or
deduction that ends is a change someone decided, and nothing in the run says who.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.money import for_whole_month, money
from detectors.scoring import calibrated
from detectors.context import Context

CODE = "PW130"
CONFIG = (ENABLED,
          Key("spike_ratio", float, "1500 above this multiple of its usual share of 1000 (and amount) is a spike "
              "(the threshold of its score)"),
          Key("change_tolerance", float, "relative changes of 3300 within this of its past range are not reported"),
          Key("no_history_max_share", float, "without FINAL history: 1500 above this share of 1000 is a spike"),
          Key("spike_severity", str, "severity of a 1500 spike", SEVERITY.choices),
          Key("change_severity", str, "severity of a 3300 change", SEVERITY.choices),
          Key("jump_ratio", float, "a 3300 share at least this multiple of its usual one is a jump ..."),
          Key("jump_severity", str, "... reported with this severity", SEVERITY.choices),
          Key("base_tolerance", float, "the share of a jump may fall short of jump_ratio x by this much (a revision "
              "of the base salary the same month)"),
          Key("settled_runs", int, "1500 on fewer FINALs than this is compared with the earlier runs of the "
              "month as well (the lowest of them; one FINAL is no usual level yet)"),
          Key("recurring_runs", int, "1500/3300 in each of this many latest FINALs that paid the staff member "
              "is recurring"),
          Key("stopped_severity", str, "severity of a recurring 1500/3300 line missing", SEVERITY.choices))


def _relative(lines: pl.DataFrame, wts: list[str]) -> pl.DataFrame:
    """Amount of each variable wage type and its share of the month's 1000 line.
    Grain: one row per run, staff member and wage type."""
    lines = lines.lazy()  # a frame or a plan: the caller's filters join the one pass, collected once
    base = (lines.filter(pl.col("wage_type") == pm.WT_BASE).group_by("run_id", "pernr")
            .agg(pl.col("amount_cents").sum().alias("_base")).filter(pl.col("_base") > 0))
    return (lines.filter(pl.col("wage_type").is_in(wts)).group_by("run_id", "pernr", "wage_type")
            .agg(pl.col("amount_cents").sum().alias("amount"), pl.col("currency").first(),
                 pl.col("in_period").max().alias("month"))
            .join(base, on=["run_id", "pernr"])
            .with_columns((pl.col("amount").abs() / pl.col("_base")).alias("rel")).collect())


def _past(hist: pl.DataFrame, wts: list[str]) -> pl.DataFrame:
    """The usual level of each variable wage type in the FINAL history. Grain: one row per
    staff member and wage type."""
    return (_relative(hist.lazy().filter(pl.col("for_period") == pl.col("in_period")), wts)
            .group_by("pernr", "wage_type").agg(
                pl.col("rel").max().alias("past_max"), pl.col("rel").min().alias("past_min"),
                # the usual level: the lower median month. Not the highest nor the latest month:
                # one earlier spike paid at FINAL would become the yardstick and hide the next one
                pl.col("rel").sort().gather((pl.len() - 1) // 2).first().alias("usual"),
                pl.col("amount").abs().sort().gather((pl.len() - 1) // 2).first().alias("usual_amount"),
                pl.col("amount").abs().sort_by("month").last().alias("latest_amount")))


def _without_history(ctx: Context, hist: pl.DataFrame, params: Params, now_all: pl.DataFrame) -> list[dict]:
    """A special post allowance with no FINAL history to compare with: flag only a share of
    net base salary no post could justify (`no_history_max_share`). `now_all`: this run's
    `_relative` 1500 and 3300."""
    limit = params.no_history_max_share
    now = (now_all.filter(pl.col("wage_type") == pm.WT_SPECIAL_POST)
           .join(_finals_with_1500(ctx, hist, params), on="pernr", how="anti").filter(pl.col("rel") > limit))
    return [finding(ctx, params, r["pernr"], "special_allowance_spike",
                    (f"{ctx.text(pm.WT_SPECIAL_POST)} ({pm.WT_SPECIAL_POST}) is {money(r['amount'], r['currency'])}, "
                     f"{r['rel']:.0%} of net base salary, with no earlier FINAL to compare with; more than "
                     f"{limit:.0%} is not plausible for a special post allowance."),
                    owner="HR", wage_type=pm.WT_SPECIAL_POST, amount_cents=r["amount"], currency=r["currency"],
                    score=calibrated(r["rel"], limit), severity=params.spike_severity,
                    evidence={"share_of_base": round(r["rel"], 4), "limit_share": limit})
            for r in now.iter_rows(named=True)]


def _finals_with_1500(ctx: Context, hist: pl.DataFrame, params: Params) -> pl.DataFrame:
    """Who had a 1500 at an earlier FINAL, at how many as their own month's (`_finals`) and the
    latest (`_final_run`): the history's alone (kept for the month's later runs).
    Grain: one row per staff member."""
    own = pl.col("for_period") == pl.col("in_period")
    return ctx.from_history(CODE, params, "finals_1500", lambda: (
        hist.filter(pl.col("wage_type") == pm.WT_SPECIAL_POST).group_by("pernr").agg(
            # a retro line of an earlier month says it was paid once, not what its month was
            pl.col("run_id").filter(own).n_unique().alias("_finals"),
            pl.col("run_id").filter(own).sort_by(pl.col("in_period").filter(own)).last().alias("_final_run"))))


def _since_rehearsal(ctx: Context, hist: pl.DataFrame, params: Params, now_all: pl.DataFrame,
                     flagged: set[str]) -> list[dict]:
    """A 1500 on fewer than `settled_runs` earlier FINALs that jumps (share and amount above
    `spike_ratio` x) against the lowest earlier run of this very month: an allowance that is
    usually the same every month does not jump between rehearsals of one month, and one FINAL
    is no usual level to say otherwise. `flagged`: staff already reported a spike."""
    prev_lines = ctx.inp.history.period_lines
    if prev_lines.height == 0:
        return []
    ratio = params.spike_ratio
    finals = _finals_with_1500(ctx, hist, params)
    settled = finals.filter(pl.col("_finals") >= params.settled_runs).select("pernr")
    # the lowest of the month's earlier runs: a spike that arrived at SIM2 is still one at SIM3
    prev = (_relative(prev_lines.lazy().filter(pl.col("for_period") == pl.col("in_period")), [pm.WT_SPECIAL_POST])
            .join(settled, on="pernr", how="anti").sort("rel", "run_id")
            .group_by("pernr").agg(pl.col("rel").first().alias("prev_rel"), pl.col("amount").first().alias("prev_amount"),
                                   pl.col("run_id").first()))
    spa_now = now_all.filter(pl.col("wage_type") == pm.WT_SPECIAL_POST)
    cur = (spa_now.join(settled, on="pernr", how="anti").drop("run_id")
           .join(finals, on="pernr", how="left")
           # beyond the no-history limit it is reported as that already
           .filter(pl.col("_finals").is_not_null() | (pl.col("rel") <= params.no_history_max_share))
           .filter(~pl.col("pernr").is_in(sorted(flagged)))
           .join(prev, on="pernr")
           .filter((pl.col("rel") > pl.col("prev_rel") * ratio) & (pl.col("amount") > pl.col("prev_amount") * ratio)))
    return [finding(ctx, params, r["pernr"], "special_allowance_spike",
                    (f"{ctx.text(pm.WT_SPECIAL_POST)} ({pm.WT_SPECIAL_POST}) is {money(r['amount'], r['currency'])}, "
                     f"{r['rel']:.1%} of net base salary, {r['rel'] / max(r['prev_rel'], 1e-9):.1f} times the "
                     f"{r['prev_rel']:.1%} ({money(r['prev_amount'], r['currency'])}) of {r['run_id']} for the same "
                     f"month ({_too_few(r)})."),
                    owner="HR", wage_type=pm.WT_SPECIAL_POST, amount_cents=r["amount"], currency=r["currency"],
                    score=calibrated(r["rel"] / max(r["prev_rel"], 1e-9), ratio), severity=params.spike_severity,
                    evidence={"share_of_base": round(r["rel"], 4), "earlier_run": r["run_id"],
                              "earlier_share": round(r["prev_rel"], 4), "earlier_cents": r["prev_amount"],
                              "finals_with_it": r["_finals"] or 0})
            for r in cur.iter_rows(named=True)]


def _too_few(r: dict) -> str:
    """Why the FINAL history of a 1500 gives no usual level, in words."""
    if not r["_finals"]:
        return "no earlier FINAL" if r["_finals"] is None else "no earlier FINAL paid it for its own month"
    if r["_finals"] == 1:
        return f"its only earlier FINAL with it, {r['_final_run']}, is no usual level yet"
    return f"only {r['_finals']} earlier FINALs with it, the latest {r['_final_run']}: no usual level yet"


def run(ctx: Context, params: Params) -> pl.DataFrame:
    hist = ctx.inp.history.final_lines
    if ctx.meta.run_type == "OFFCYCLE":
        return findings_frame([])
    wts = [pm.WT_SPECIAL_POST, pm.WT_OTHER_DED]
    now_all = _relative(ctx.current.with_columns(pl.lit("current").alias("run_id")), wts)
    rows = _without_history(ctx, hist, params, now_all)
    # a 1500 is paid as a monthly amount x f: its amount is compared for a whole month (tripled
    # in a leaver's last third of a month, it is paid as usual)
    now = pm.whole_month(now_all, ctx.facts)
    # amounts relative to the month's net base salary: proration by days cancels out (the
    # history's alone: kept for the month's later runs)
    past = ctx.from_history(CODE, params, "past", lambda: _past(hist, wts))
    cmp = now.join(past, on=["pernr", "wage_type"], how="inner")
    ratio, tol = params.spike_ratio, params.change_tolerance
    for r in cmp.iter_rows(named=True):
        rel = r["rel"]
        is_spa = r["wage_type"] == pm.WT_SPECIAL_POST
        # both the share of base pay and the amount itself (for a whole month) must jump: a
        # part-time change moves only the share
        # a raise paid at the latest FINAL and paid again at the same amount is the new usual
        month = abs(r["amount_month"]) if is_spa else abs(r["amount"])
        same_as_latest = abs(month - r["latest_amount"]) <= r["latest_amount"] * tol
        spike = (is_spa and rel > r["usual"] * ratio and month > r["usual_amount"] * ratio
                 and not same_as_latest)
        if is_spa and not spike:
            continue
        if not is_spa and r["past_min"] * (1 - tol) <= rel <= r["past_max"] * (1 + tol):
            continue
        category = "special_allowance_spike" if spike else "deduction_change"
        # the amount at least jump_ratio x its usual one, and the share too — up to a revision of
        # the base salary within base_tolerance (a garnishment tripled in the month the scale
        # rose 3 % is 2.9 x its usual share; a share of exactly 3 x must not miss by a rounding)
        jump = not is_spa and rel >= r["usual"] * params.jump_ratio * (1 - params.base_tolerance - 1e-9) and \
            abs(r["amount"]) >= r["usual_amount"] * params.jump_ratio
        whole = for_whole_month(r["amount"], r["amount_month"], r["currency"]) if is_spa else ""
        text = (f"{ctx.text(r['wage_type'])} ({r['wage_type']}) is {money(r['amount'], r['currency'])}{whole}, "
                f"{rel:.1%} of net base salary; in the last FINAL runs it was {r['past_min']:.1%} to {r['past_max']:.1%}"
                + (f", usually {r['usual']:.1%} — {rel / max(r['usual'], 1e-9):.1f} times that." if spike else "."))
        # spike: times the usual share against spike_ratio; change: how far outside the past
        # range, relative to it, against change_tolerance
        score = (calibrated(rel / max(r["usual"], 1e-9), ratio) if spike else
                 calibrated(max(rel / max(r["past_max"], 1e-9) - 1, 1 - rel / max(r["past_min"], 1e-9)), tol))
        rows.append(finding(ctx, params, r["pernr"], category, text, owner="HR" if is_spa else "FINANCE",
                            wage_type=r["wage_type"], amount_cents=r["amount"], currency=r["currency"], score=score,
                            severity=params.spike_severity if spike else (params.jump_severity if jump
                                                                           else params.change_severity),
                            evidence={"share_of_base": round(rel, 4), "past_min_share": round(r["past_min"], 4),
                                      "past_max_share": round(r["past_max"], 4), "usual_share": round(r["usual"], 4)}))
    spiked = {r["pernr"] for r in rows if r["category"] == "special_allowance_spike"}
    rows.extend(_since_rehearsal(ctx, hist, params, now_all, spiked))
    rows.extend(_stopped(ctx, hist, params, wts))
    return findings_frame(rows)


def _stopped_history(hist: pl.DataFrame, wts: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """What `_stopped` reads of the earlier FINALs: each staff member's runs with a base salary
    for their own month (pernr, run_id, in_period), the runs that paid them a negative net (a
    deduction that wrong is not one whose end is news), and the month's lines of `wts`."""
    cur = hist.filter(pl.col("for_period") == pl.col("in_period"))
    negative = hist.filter((pl.col("wage_type") == "/560") & (pl.col("amount_cents") < 0)).select("pernr", "run_id")
    base = cur.filter(pl.col("wage_type") == pm.WT_BASE).select("pernr", "run_id", "in_period").unique()
    return base, negative, cur.filter(pl.col("wage_type").is_in(wts))


def _stopped(ctx: Context, hist: pl.DataFrame, params: Params, wts: list[str]) -> list[dict]:
    """Recurring 1500/3300 lines missing this run: the wage type in each of the latest
    `recurring_runs` FINALs that paid the staff member (each of those there are, when fewer),
    none of it now though they are paid."""
    n = params.recurring_runs
    paid_now = ctx.current.filter(pl.col("wage_type") == pm.WT_BASE).select("pernr").unique()
    if hist.height == 0 or paid_now.height == 0:
        return []
    # the history's alone: kept for the month's later runs
    base, negative, cur_wts = ctx.from_history(CODE, params, "stopped", lambda: _stopped_history(hist, wts))
    # the latest n FINALs that paid each staff member (their runs in contract order = in_period)
    their = (base.join(paid_now, on="pernr").join(negative, on=["pernr", "run_id"], how="anti")
             .sort("in_period", descending=True).group_by("pernr").head(n))
    counts = their.group_by("pernr").agg(pl.len().alias("_runs"))
    have = (cur_wts.join(their.select("pernr", "run_id"), on=["pernr", "run_id"])
            .group_by("pernr", "wage_type").agg(pl.col("run_id").n_unique().alias("_with"),
                                                 pl.col("amount_cents").sort_by("in_period").last().alias("last"),
                                                 pl.col("currency").last(), pl.col("in_period").max().alias("month")))
    now = ctx.current.filter(pl.col("wage_type").is_in(wts)).select("pernr", "wage_type").unique()
    # in every one of those FINALs (fewer than n when the history is shorter: as far as it goes)
    gone = (have.join(counts, on="pernr").filter(pl.col("_with") >= pl.col("_runs"))
            .join(now, on=["pernr", "wage_type"], how="anti").sort("pernr", "wage_type"))
    return [finding(ctx, params, r["pernr"], "variable_pay_stopped",
                    (f"{ctx.text(r['wage_type'])} ({r['wage_type']}) of {money(r['last'], r['currency'])} was paid "
                     f"in each of the last {r['_runs']} FINAL runs that paid the staff member (latest {r['month']}) and is missing from this run, "
                     f"which pays the staff member."),
                    owner="HR" if r["wage_type"] == pm.WT_SPECIAL_POST else "FINANCE", wage_type=r["wage_type"],
                    amount_cents=0, expected_cents=r["last"], currency=r["currency"], severity=params.stopped_severity,
                    evidence={"recurring_runs": r["_runs"], "last_cents": r["last"], "last_period": r["month"]})
            for r in gone.iter_rows(named=True)]


DETECTOR = Detector(CODE, "variable_pay_change", ("special_allowance_spike", "deduction_change", "variable_pay_stopped"),
                    run, config=CONFIG,
                    description="Compares variable wage types with the staff member's own FINAL history.")
