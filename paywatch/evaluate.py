"""Measured detection quality against the simulator's ground truth (`paywatch evaluate`).

Per run: staff-level recall (error staff flagged hold or review), hold precision (held
staff who really have an error), false-alarm rate among clean staff, and recall per error
kind (a kind counts as caught only when a finding of the matching category is raised) —
once with every detector and once with the anomaly models switched off. And cases
(paywatch/cases): how many cases each caught error staff-run gives (`CaseScore`).
"""

from __future__ import annotations

import math
import statistics
import tempfile
from datetime import timedelta
from fractions import Fraction
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from detectors import paymodel as pm
from paywatch.cases import group_cases, rules_of
from paywatch.settings import load_settings
from detectors.registry import detect_with_artifacts
from paywatch.pipeline import detection_input, stage_triage, store_verification
from paywatch.simulate import RunOutput, SimConfig, Simulation
from paywatch.simulate.writer import write_run
from paywatch.extract.reader import read_run
from paywatch.warehouse.load import load_run
from paywatch.warehouse.resource import Warehouse

FLAGGED = ("hold", "review")


@dataclass
class RunScore:
    """Quality of one run's findings. Grain: one run x one detector set."""

    run_id: str
    run_type: str
    period: str
    staff: int
    error_staff: int
    caught_staff: int
    held_staff: int
    held_with_error: int
    false_alarms: int
    by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (present, caught)
    version: int = 1  # 2: a correction delivered under the same run_id

    @property
    def clean_staff(self) -> int:
        return self.staff - self.error_staff


def score_run(run_id: str, run_type: str, period: str, staff: set[str], findings: pl.DataFrame,
              truth: list[tuple[str, str, str]], neutral: set[str] = frozenset()) -> RunScore:
    """Compare one run's findings with its injected errors (truth rows run_id, PERNR, kind).
    `neutral`: staff with an error the run is not scored on (flagging them is no false alarm)."""
    findings = findings.filter(~pl.col("pernr").is_in(list(neutral)))
    flagged = findings.filter(pl.col("severity").is_in(FLAGGED))
    flagged_staff = set(flagged["pernr"].to_list())
    held = set(findings.filter(pl.col("severity") == "hold")["pernr"].to_list())
    err_staff = {p for _, p, _ in truth}
    cats = {(p, c) for p, c in flagged.select("pernr", "category").iter_rows()}
    by_kind: dict[str, tuple[int, int]] = {}
    for _, p, kind in truth:
        n, c = by_kind.get(kind, (0, 0))
        by_kind[kind] = (n + 1, c + int((p, kind) in cats))
    return RunScore(run_id, run_type, period, len(staff | err_staff), len(err_staff), len(err_staff & flagged_staff),
                    len(held), len(held & err_staff), len(flagged_staff - err_staff), by_kind)


@dataclass
class Summary:
    recall: float
    hold_precision: float
    false_alarm_rate: float
    by_kind: dict[str, float]
    runs: list[RunScore]
    peak_periods: list[str] = field(default_factory=list)  # months with a unit-wide overtime peak

    cases: CaseSummary | None = None  # grouping into cases (all detectors only)
    regimes: dict[str, "Summary"] = field(default_factory=dict)  # per regime (all detectors only)
    fa_reference: "Summary | None" = None  # a cohort's months, whose false alarms per month count

    def worst_false_alarm_rate(self, periods: list[str]) -> float:
        """The worst month's false-alarm rate among `periods`."""
        return max((r for p, r in self.false_alarm_rates_by_month().items() if p in periods), default=0.0)

    def false_alarm_rates(self) -> dict[str, float]:
        return {r.run_id: r.false_alarms / max(r.clean_staff, 1) for r in self.runs}

    def false_alarm_rates_by_month(self) -> dict[str, float]:
        """False alarms over clean staff, summed over the runs of each month (issue #13's "in
        every month": an off-cycle run of four payees is not a month of its own)."""
        out: dict[str, list[int]] = {}
        for r in self.runs:
            acc = out.setdefault(r.period, [0, 0])
            acc[0] += r.false_alarms
            acc[1] += r.clean_staff
        return {p: fa / max(clean, 1) for p, (fa, clean) in sorted(out.items())}


def summarise(scores: list[RunScore]) -> Summary:
    err = sum(s.error_staff for s in scores)
    caught = sum(s.caught_staff for s in scores)
    held = sum(s.held_staff for s in scores)
    held_ok = sum(s.held_with_error for s in scores)
    fa = sum(s.false_alarms for s in scores)
    clean = sum(s.clean_staff for s in scores)
    kinds: dict[str, list[int]] = {}
    for s in scores:
        for k, (n, c) in s.by_kind.items():
            kinds.setdefault(k, [0, 0])
            kinds[k][0] += n
            kinds[k][1] += c
    return Summary(caught / err if err else 1.0, held_ok / held if held else 1.0, fa / clean if clean else 0.0,
                   {k: c / n for k, (n, c) in sorted(kinds.items())}, scores)


REGIME_NAMES = ("first_month", "peaks", "advances", "corrections", "hires")


def regime_summaries(scores: list[RunScore], first_period: str, sim, newcomer_scores: list[RunScore]) -> dict[str, Summary]:
    """Each regime's slice of the runs (README, Detection quality):
    - first_month: the runs of the first month (no FINAL history at all);
    - peaks: the runs of months where whole units work heavy overtime (session months);
    - advances: the runs of months with a second off-cycle run, and every run with a
      duplicate advance;
    - corrections: the corrected versions (a run delivered again under its run_id); false
      alarms per month over the month's runs, the corrected version in place of the first;
    - hires: staff hired during the simulation, in their month of hire and the next (cold
      start): recall and hold precision on them; false alarms per month over all clean staff
      of those months (a newcomer cohort of ~50 cannot measure 0.3 %; `newcomer_false_alarms`)."""
    ledger_months = {r.period for r in scores if r.run_id.endswith("-OC2")}
    out = {
        "first_month": [r for r in scores if r.period == first_period],
        "peaks": [r for r in scores if r.period in set(sim.session_periods)],
        "advances": [r for r in scores if r.period in ledger_months or "duplicate_advance" in r.by_kind],
        "corrections": [r for r in scores if r.version > 1],
    }
    res = {k: summarise(v) for k, v in out.items() if v}
    if "corrections" in res:  # a re-delivered off-cycle run of five payees is not a month of its own
        months = {r.period for r in out["corrections"]}
        corrected = {r.run_id for r in out["corrections"]}
        res["corrections"].fa_reference = summarise(
            [r for r in scores if r.period in months and r.version == 1 and r.run_id not in corrected]
            + out["corrections"])
    if newcomer_scores and any(r.error_staff for r in newcomer_scores):
        h = summarise(newcomer_scores)
        months = {r.period for r in newcomer_scores}
        h.fa_reference = summarise([r for r in scores if r.period in months])
        res["hires"] = h
    return res


def month_fa(summary: Summary) -> float:
    """The worst month's false-alarm rate of a regime (for hires: over all clean staff of its months)."""
    ref = summary.fa_reference or summary
    return max(ref.false_alarm_rates_by_month().values(), default=0.0)


def meets(summary: Summary, target: dict) -> bool:
    """Issue #13's targets on one summary (overall or a regime)."""
    worst = min(summary.by_kind.values(), default=1.0)
    return (summary.recall >= target["min_recall"] and worst >= target["min_kind_recall"]
            and summary.hold_precision >= target["min_hold_precision"]
            and month_fa(summary) <= target["max_false_alarm_rate"])


def regime_line(name: str, s: Summary, target: dict) -> str:
    """The line `paywatch evaluate` prints per regime."""
    worst = min(s.by_kind.items(), key=lambda kv: kv[1], default=("-", 1.0))
    errs = sum(r.error_staff for r in s.runs)
    extra = ""
    if name == "hires":  # the newcomer cohort's own false alarms (its months' rate is over all staff)
        extra = f" newcomer_false_alarms={sum(r.false_alarms for r in s.runs)}"
    return (f"regime={name} runs={len(s.runs)} error_staff={errs} recall={s.recall:.4f} "
            f"hold_precision={s.hold_precision:.4f} worst_month_false_alarm_rate={month_fa(s):.4%} "
            f"worst_kind={worst[0]}:{worst[1]:.3f}{extra} targets={'met' if meets(s, target) else 'MISSED'}")


def month_noise(summary: Summary, special_periods: list[str], floor: float = 0.001, alpha: float = 0.01
                ) -> dict[str, tuple[float, float, bool]]:
    """False-alarm rate of each special month against the others' mean + 2 sd (at least
    `floor`: one review among a thousand staff is no population flagged), or against what
    chance alone gives, whichever is higher: the count that a Poisson draw at the others'
    mean rate (at least `floor`) exceeds with probability `alpha` at most. A month of 1,500
    clean staff with two reviews is 0.13 %, above a 0.10 % limit by one person: the count
    bound tells a population flagged (the issue's 1 %) from a count that chance gives.
    Returns {period: (rate, limit, within)}; regular runs only."""
    per_period: dict[str, list[float]] = {}
    clean: dict[str, list[int]] = {}
    for r in summary.runs:
        if r.run_type != "OFFCYCLE":
            per_period.setdefault(r.period, []).append(r.false_alarms / max(r.clean_staff, 1))
            clean.setdefault(r.period, []).append(max(r.clean_staff, 1))
    rates = {p: sum(v) / len(v) for p, v in per_period.items()}
    out = {}
    for p in special_periods:
        others = [v for q, v in rates.items() if q not in special_periods]
        if p not in rates or len(others) < 2:
            continue
        staff = statistics.mean(clean[p])
        by_chance = poisson_upper(max(statistics.mean(others), floor) * staff, alpha) / staff
        limit = max(statistics.mean(others) + 2 * statistics.stdev(others), floor, by_chance)
        out[p] = (rates[p], limit, rates[p] <= limit + 1e-12)
    return out


def poisson_upper(mean: float, alpha: float) -> int:
    """The smallest count k with P(X > k) <= alpha for X ~ Poisson(mean). Each term is taken
    from its logarithm: exp(-mean) underflows to 0 past a mean of about 745 (a large area)."""
    k, below = 0, 0.0
    while True:
        log_term = -mean + (k * math.log(mean) if mean > 0 else 0.0) - math.lgamma(k + 1)
        below += math.exp(log_term)
        if 1 - below <= alpha:
            return k
        k += 1


def evaluate(cfg: SimConfig, work: Path | None = None,
             on_run: Callable[[RunOutput, RunScore, RunScore], None] | None = None) -> tuple[Summary, Summary]:
    """Simulate with ground truth, verify run by run, score with and without models."""
    det_cfg = load_settings(None)
    tmp = tempfile.TemporaryDirectory() if work is None else None
    root = Path(tmp.name) if tmp else work
    wh = Warehouse.in_folder(root / "wh")
    all_scores, rule_scores, newcomer_scores = [], [], []
    case_rules, case_scores = rules_of(det_cfg), []  # cases: the configured grouping rules
    try:
        with wh.writer() as con:
            sim = Simulation(cfg)
            for out in sim.iter_runs():
                folder = write_run(out, root / "runs")
                loaded = load_run(con, read_run(folder), archive_dir=wh.paths.archive)
                if loaded.outcome == "noop":  # a re-delivery with nothing changed is no new run to score
                    continue
                inp = detection_input(con, loaded.run_id)
                full, _ = detect_with_artifacts(inp, det_cfg)
                rules, _ = detect_with_artifacts(inp, det_cfg, models=False)
                findings = stage_triage(con, inp, full, loaded.run_version, "evaluate")
                findings, cases = group_cases(findings, case_rules, inp.meta.payroll_area, inp.meta.period)
                case_scores.append(score_cases(out.plan.run_id, findings, cases, out.truth))
                store_verification(con, loaded.run_id, loaded.run_version, det_cfg, "evaluate", findings, [],
                                   "verified")
                staff = set(out.frames["pay_lines"]["pernr"].unique().to_list())
                plan = out.plan
                s_all = score_run(plan.run_id, plan.run_type, plan.period, staff, full, out.truth, out.neutral)
                s_rules = score_run(plan.run_id, plan.run_type, plan.period, staff, rules, out.truth, out.neutral)
                s_all.version = s_rules.version = out.version
                # hires regime: the newcomers of this month and the last (no history of their own)
                fresh = {p for p, m in sim.newcomers.items() if m in (plan.period, pm.shift_period(plan.period, -1))}
                if fresh & staff:
                    newcomer_scores.append(score_run(plan.run_id, plan.run_type, plan.period, staff & fresh,
                                                     full.filter(pl.col("pernr").is_in(list(fresh))),
                                                     [t for t in out.truth if t[1] in fresh], out.neutral))
                all_scores.append(s_all)
                rule_scores.append(s_rules)
                if on_run:
                    on_run(out, s_all, s_rules)
    finally:
        if tmp:
            tmp.cleanup()
    full, rules = summarise(all_scores), summarise(rule_scores)
    full.peak_periods = rules.peak_periods = list(sim.session_periods)
    full.cases = summarise_cases(case_scores)
    full.regimes = regime_summaries(all_scores, sim.periods[0], sim, newcomer_scores)
    return full, rules


# ------------------------------------------------------------------ mutation harness
# Generic changes written for no detector, applied to clean runs (no injected errors): each
# class changes what is paid to one staff member in a way a payroll office would want held.
# Totals are rebuilt after a line change, so that a mutation is not caught by its totals.

MUTATIONS = ("scale_line", "duplicate_line", "move_period", "drop_line", "master_data_without_action",
             "pay_inactive", "shared_account", "variable_scale", "variable_drop")
# Two groups, each with its own target (issue #13): (a) deterministic wage types (the pay
# model's, computed exactly) and master data that change pay: >= 0.99 caught; (b) variable pay
# (overtime hours, special post allowance, other deductions) scaled to >= 3x the staff member's
# usual amount, or a recurring variable line dropped: >= 0.90 caught.
DETERMINISTIC = ("scale_line", "duplicate_line", "move_period", "drop_line", "master_data_without_action",
                 "pay_inactive", "shared_account")
VARIABLE = ("variable_scale", "variable_drop")
VARIABLE_WAGE_TYPES = ("1400", "1500", "3300")
VARIABLE_FACTORS = (3.0, 4.0, 6.0, 10.0)


@dataclass
class MutationScore:
    """Per mutation class: mutations applied, caught (the staff member flagged), false alarms
    (other staff flagged beyond the clean run's own findings) and clean staff."""

    applied: int = 0
    caught: int = 0
    false_alarms: int = 0
    clean_staff: int = 0
    by_wage_type: dict[str, list[int]] = field(default_factory=dict)  # wage type -> [applied, caught]


def group_score(scores: dict[str, MutationScore], kinds: tuple[str, ...]) -> MutationScore:
    """The classes of one group added up."""
    out = MutationScore()
    for k in kinds:
        s = scores[k]
        out.applied += s.applied
        out.caught += s.caught
        out.false_alarms += s.false_alarms
        out.clean_staff += s.clean_staff
    return out


def _usual(inp, wage_type: str) -> pl.DataFrame:
    """Each staff member's usual level of a variable wage type: the lower median over the
    earlier FINALs (hours for overtime, else the amount). Grain: one row per staff member."""
    fl = inp.history.final_lines
    if fl.height == 0:
        return pl.DataFrame(schema={"pernr": pl.String, "usual": pl.Float64})
    cur = fl.filter((pl.col("for_period") == pl.col("in_period")) & (pl.col("wage_type") == wage_type))
    v = (pl.col("quantity").cast(pl.Float64) if wage_type == "1400" else pl.col("amount_cents").abs().cast(pl.Float64))
    per = cur.group_by("run_id", "pernr").agg(v.sum().alias("v")).filter(pl.col("v") > 0)
    return per.group_by("pernr").agg(pl.col("v").sort().gather((pl.len() - 1) // 2).first().alias("usual"))


def _rebuild_totals(lines: pl.DataFrame, classes: pl.DataFrame, pernrs: list[str]) -> pl.DataFrame:
    """Totals /101, /550, /560 of `pernrs` written again from their lines."""
    keep = lines.filter(~(pl.col("pernr").is_in(pernrs) & pl.col("wage_type").str.starts_with("/")))
    body = keep.filter(pl.col("pernr").is_in(pernrs)).join(classes, on="wage_type", how="left")
    t = body.group_by("pernr").agg(
        pl.col("amount_cents").filter(pl.col("wage_class") == "EARNING").sum().alias("g"),
        pl.col("amount_cents").filter(pl.col("wage_class") == "DEDUCTION").sum().alias("d"),
        pl.col("currency").first(), pl.col("in_period").first())
    tot = pl.concat([t.select("pernr", pl.col("in_period").alias("for_period"), "in_period",
                              pl.lit(wt).alias("wage_type"), e.cast(pl.Int64).alias("amount_cents"), "currency",
                              pl.lit(None).cast(lines.schema["quantity"]).alias("quantity"))
                     for wt, e in (("/101", pl.col("g")), ("/550", pl.col("g") + pl.col("d")),
                                   ("/560", pl.col("g") + pl.col("d")))])
    return pl.concat([keep, tot.select(lines.columns)], how="vertical_relaxed")


def mutate(inp, kind: str, pernrs: list[str], rng, usual: dict[str, dict[str, float]] | None = None,
           record: dict[str, str] | None = None) -> tuple[object, list[str]]:
    """`inp` with mutation `kind` applied to each of `pernrs` (where it applies); returns the
    mutated input and the staff actually changed. `usual`: wage type -> PERNR -> usual level
    (`_usual`), for the variable-pay classes; `record` receives PERNR -> wage type changed."""
    usual = usual or {}
    record = {} if record is None else record
    from dataclasses import replace as dc_replace

    from detectors import paymodel as pm

    lines, md = inp.lines, dict(inp.md)
    classes = inp.ref["wage_types"].select("wage_type", "wage_class")
    body = lines.filter(~pl.col("wage_type").str.starts_with("/") & (pl.col("for_period") == pl.col("in_period")))
    changed: list[str] = []
    if kind in VARIABLE:
        # one of the staff member's variable lines that has a usual level in the history
        for p in pernrs:
            own = body.filter((pl.col("pernr") == p) & pl.col("wage_type").is_in(list(VARIABLE_WAGE_TYPES)))
            if kind == "variable_drop":  # recurring lines only: overtime is claimed some months, not others
                own = own.filter(pl.col("wage_type") != "1400")
            options = []
            for wt in own["wage_type"].unique().sort().to_list():
                u = usual.get(wt, {}).get(p)
                if u:
                    options.append((wt, u))
            if not options:
                continue
            wt, u = options[int(rng.integers(len(options)))]
            sel = (pl.col("pernr") == p) & (pl.col("wage_type") == wt) & (pl.col("for_period") == pl.col("in_period"))
            if kind == "variable_drop":
                lines = lines.filter(~sel)
            elif wt == "1400":
                # hours to factor x the usual hours; the amount follows at the staff member's own
                # hourly rate, so the line stays consistent (no pay-model finding)
                row = lines.filter(sel).row(0, named=True)
                hours = float(row["quantity"])
                rate = pm.round_half_away(Fraction(int(row["amount_cents"])) / Fraction(str(hours)))
                new_h = Fraction(round(2 * u * float(rng.choice(VARIABLE_FACTORS))), 2)
                amount = pm.round_half_away(new_h * rate)
                q = str(float(new_h)).removesuffix(".0")
                lines = lines.with_columns(
                    pl.when(sel).then(pl.lit(amount)).otherwise(pl.col("amount_cents")).alias("amount_cents"),
                    pl.when(sel).then(pl.lit(q)).otherwise(pl.col("quantity")).alias("quantity"))
            else:
                sign = -1 if wt == "3300" else 1
                amount = sign * int(round(u * float(rng.choice(VARIABLE_FACTORS))))
                lines = lines.with_columns(pl.when(sel).then(pl.lit(amount)).otherwise(pl.col("amount_cents"))
                                           .alias("amount_cents"))
            changed.append(p)
            record[p] = wt
    elif kind in ("scale_line", "duplicate_line", "move_period", "drop_line"):
        for p in pernrs:
            # deterministic wage types only (the pay model's): variable pay is group (b)
            own = body.filter((pl.col("pernr") == p) & pl.col("wage_type").is_in(list(pm.MODEL_WAGE_TYPES)))
            if kind == "drop_line":  # an overtime line gone is a claim not made: nothing says it was
                own = own.filter(pl.col("wage_type") != pm.WT_OVERTIME)
            if own.height == 0:
                continue
            wt = own["wage_type"][int(rng.integers(own.height))]
            sel = (pl.col("pernr") == p) & (pl.col("wage_type") == wt) & (pl.col("for_period") == pl.col("in_period"))
            if kind == "scale_line":
                factor = float(rng.choice([0.5, 1.1, 1.5, 3.0]))
                if wt == pm.WT_OVERTIME:  # an amount that no longer matches its hours
                    factor = float(rng.choice([0.5, 1.1, 1.5]))
                lines = lines.with_columns(pl.when(sel).then((pl.col("amount_cents") * factor).round().cast(pl.Int64))
                                           .otherwise(pl.col("amount_cents")).alias("amount_cents"))
            elif kind == "duplicate_line":
                lines = pl.concat([lines, lines.filter(sel)])
            # (scale_line factors: 0.5 halves, 1.1 a tenth more, 1.5, 3.0)
            elif kind == "move_period":
                lines = lines.with_columns(pl.when(sel).then(pl.lit(pm.shift_period(inp.meta.period, -1)))
                                           .otherwise(pl.col("for_period")).alias("for_period"))
            else:
                lines = lines.filter(~sel)
            changed.append(p)
            record[p] = wt
    elif kind == "master_data_without_action":
        first, _, _ = pm.month_bounds(inp.meta.period)
        bp = md["basic_pay"]
        for p in pernrs:
            cur = bp.filter((pl.col("pernr") == p) & (pl.col("valid_from") <= first) & (pl.col("valid_to") >= first))
            if cur.height != 1 or int(cur["step"][0]) >= 10:
                continue
            r = cur.row(0, named=True)
            bp = pl.concat([bp.filter(~((pl.col("pernr") == p) & (pl.col("valid_from") == r["valid_from"]))),
                            pl.DataFrame([r | {"valid_to": first - timedelta(days=1)},
                                          r | {"valid_from": first, "step": f"{int(r['step']) + 1:02d}"}],
                                         schema=bp.schema)
                            .filter(pl.col("valid_to") >= pl.col("valid_from"))])
            changed.append(p)
        md["basic_pay"] = bp
        # the payroll pays what the changed master data says: the model lines recomputed
        _, exp = pm.expected_for_period(md, inp.ref, inp.meta.period, written=lines, pernrs=changed)
        new = exp.filter(pl.col("expected_cents").is_not_null() & (pl.col("expected_cents") != 0)
                         & pl.col("wage_type").is_in([pm.WT_BASE, pm.WT_POST_ADJ, pm.WT_PENSION, pm.WT_HEALTH]))
        upd = new.select("pernr", "wage_type", pl.col("expected_cents").alias("_new"))
        lines = (lines.join(upd, on=["pernr", "wage_type"], how="left")
                 .with_columns(pl.when(pl.col("for_period") == pl.col("in_period")).then(
                     pl.coalesce("_new", "amount_cents")).otherwise(pl.col("amount_cents")).alias("amount_cents"))
                 .drop("_new"))
    elif kind == "pay_inactive":
        acts = md["actions"]
        first, last, _ = pm.month_bounds(inp.meta.period)
        paid = set(lines["pernr"].unique().to_list())
        gone = (acts.filter((pl.col("valid_from") <= first) & (pl.col("valid_to") >= last)
                            & (pl.col("employment_status") != "3"))["pernr"].unique().sort().to_list())
        gone = [p for p in gone if p not in paid][:len(pernrs)]
        donors = body.filter(pl.col("wage_type") == pm.WT_BASE)
        add = [donors.row(int(rng.integers(donors.height)), named=True) | {"pernr": p} for p in gone]
        if add:
            lines = pl.concat([lines, pl.DataFrame(add, schema=lines.schema)])
        changed = gone
    elif kind == "shared_account":
        bank = md["bank_details"]
        for a, b in zip(pernrs[::2], pernrs[1::2]):
            iban_b = bank.filter(pl.col("pernr") == b).sort("valid_from")["iban"]
            if iban_b.len() == 0:
                continue
            bank = bank.with_columns(pl.when(pl.col("pernr") == a).then(pl.lit(iban_b[-1]))
                                     .otherwise(pl.col("iban")).alias("iban"))
            changed.append(a)
        md["bank_details"] = bank
    if kind not in ("master_data_without_action", "shared_account"):
        lines = _rebuild_totals(lines, classes, changed)
    elif kind == "master_data_without_action":
        lines = _rebuild_totals(lines, classes, changed)
    return dc_replace(inp, lines=lines, md=md), changed


def evaluate_mutations(cfg: SimConfig, per_class: int = 10, seed: int = 0, work: Path | None = None,
                       on_step: Callable[[str, str], None] | None = None) -> dict[str, MutationScore]:
    """Simulate a clean area (no injected errors); on every regular run after the first
    month, apply each mutation class to `per_class` random staff and score what is caught.
    Variable-pay classes pick among the staff who have a variable line with a usual level."""
    import numpy as np
    from dataclasses import replace as dc_replace

    det_cfg = load_settings(None)
    rng = np.random.default_rng(seed)
    scores = {k: MutationScore() for k in MUTATIONS}
    tmp = tempfile.TemporaryDirectory() if work is None else None
    root = Path(tmp.name) if tmp else work
    wh = Warehouse.in_folder(root / "wh")
    clean_cfg = dc_replace(cfg, error_rate=0.0)
    try:
        with wh.writer() as con:
            first_period = None
            for out in Simulation(clean_cfg).iter_runs():
                folder = write_run(out, root / "runs")
                loaded = load_run(con, read_run(folder), archive_dir=wh.paths.archive)
                first_period = first_period or out.plan.period
                if out.plan.run_type not in ("SIM1", "FINAL") or out.plan.period == first_period:
                    continue
                inp = detection_input(con, loaded.run_id)
                base, _ = detect_with_artifacts(inp, det_cfg)
                base_flagged = set(base.filter(pl.col("severity").is_in(FLAGGED))["pernr"].to_list())
                staff = sorted(set(inp.lines["pernr"].to_list()) - base_flagged)
                usual = {wt: dict(_usual(inp, wt).iter_rows()) for wt in VARIABLE_WAGE_TYPES}
                holders = sorted({p for d in usual.values() for p in d} & set(staff))
                for kind in MUTATIONS:
                    if on_step:
                        on_step(out.plan.run_id, kind)
                    pool = holders if kind in VARIABLE else staff
                    n = 2 * per_class if kind == "shared_account" else (4 * per_class if kind in VARIABLE
                                                                        else per_class)
                    picks = [pool[i] for i in rng.choice(len(pool), size=min(n, len(pool)), replace=False)]
                    record: dict[str, str] = {}
                    m_inp, changed = mutate(inp, kind, picks, rng, usual, record)
                    if kind in VARIABLE:  # at most per_class of those who had a line to change
                        changed = changed[:per_class]
                        m_inp, changed = mutate(inp, kind, changed, np.random.default_rng(rng.integers(1 << 31)),
                                                usual, record)
                    found, _ = detect_with_artifacts(m_inp, det_cfg)
                    flagged = set(found.filter(pl.col("severity").is_in(FLAGGED))["pernr"].to_list())
                    partners = set(picks[1::2]) if kind == "shared_account" else set()
                    s = scores[kind]
                    s.applied += len(changed)
                    if kind == "shared_account":
                        # one account, two holders: a shared-account finding on either holder
                        # catches it (PW111 names the newer holder, which need not be the mutated one)
                        partner = dict(zip(picks[::2], picks[1::2]))
                        shared = set(found.filter(pl.col("severity").is_in(FLAGGED)
                                                  & (pl.col("category") == "shared_iban"))["pernr"].to_list())
                        s.caught += sum(1 for a in changed if a in flagged or partner[a] in shared)
                    else:
                        s.caught += len(set(changed) & flagged)
                    for p in changed:
                        acc = s.by_wage_type.setdefault(record.get(p, "-"), [0, 0])
                        acc[0] += 1
                        acc[1] += int(p in flagged)
                    s.false_alarms += len(flagged - base_flagged - set(changed) - partners)
                    s.clean_staff += len(staff) - len(changed)
    finally:
        if tmp:
            tmp.cleanup()
    return scores


# ------------------------------------------------------------------------------ cases

@dataclass
class CaseScore:
    """Cases of one run's caught error staff (docs/cli-contract.md `cases.csv`: one injected
    error gives one case). Grain: one run. A staff member's error is caught when they have a
    hold or review finding; their cases are the cases holding such a finding (an info-only
    case is a notice, not something to fix: it does not count)."""

    run_id: str
    caught: int = 0            # error staff-runs with a hold or review finding
    errors: int = 0            # injected errors of those staff-runs
    cases: int = 0             # their hold or review cases
    one_case: int = 0          # staff-runs with as many such cases as injected errors
    all_cases_one: int = 0     # the same, counting info-only cases too
    root_match: int = 0        # staff-runs whose case roots name each injected error kind
    findings: int = 0
    findings_without_case: int = 0


def score_cases(run_id: str, findings: pl.DataFrame, cases: pl.DataFrame,
                truth: list[tuple[str, str, str]]) -> CaseScore:
    """One run's case measure: `findings` with `case_id` and their `cases` (paywatch.cases.
    group_cases) against its injected errors."""
    s = CaseScore(run_id, findings=findings.height,
                  findings_without_case=findings.filter(pl.col("case_id").is_null()).height)
    kinds: dict[str, list[str]] = {}
    for _, p, kind in truth:
        kinds.setdefault(p, []).append(kind)
    for pernr, ks in kinds.items():
        mine = findings.filter(pl.col("pernr") == pernr)
        flagged = mine.filter(pl.col("severity").is_in(FLAGGED))
        if flagged.height == 0:
            continue
        n = flagged["case_id"].n_unique()
        roots = set(cases.filter(pl.col("case_id").is_in(flagged["case_id"].implode()))["root_cause"].to_list())
        s.caught += 1
        s.errors += len(ks)
        s.cases += n
        s.one_case += int(n == len(ks))
        s.all_cases_one += int(mine["case_id"].n_unique() == len(ks))
        s.root_match += int(set(ks) <= roots)
    return s


@dataclass
class CaseSummary:
    caught: int
    cases_per_error: float
    one_case_share: float
    one_case_share_all: float
    root_match_share: float
    findings_without_case: int

    def line(self) -> str:
        """The line `paywatch evaluate` prints."""
        return (f"cases_per_error={self.cases_per_error:.4f} one_case_share={self.one_case_share:.4f} "
                f"one_case_share_with_info={self.one_case_share_all:.4f} root_cause_match={self.root_match_share:.4f} "
                f"caught_error_staff_runs={self.caught} findings_without_case={self.findings_without_case}")


def summarise_cases(scores: list[CaseScore]) -> CaseSummary:
    caught = sum(s.caught for s in scores)
    errors = sum(s.errors for s in scores)
    return CaseSummary(caught, sum(s.cases for s in scores) / errors if errors else 1.0,
                       sum(s.one_case for s in scores) / caught if caught else 1.0,
                       sum(s.all_cases_one for s in scores) / caught if caught else 1.0,
                       sum(s.root_match for s in scores) / caught if caught else 1.0,
                       sum(s.findings_without_case for s in scores))
