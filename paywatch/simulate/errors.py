"""Injected errors: what goes wrong upstream, when it arrives, how it shows in the extract.

Each error belongs to one staff member and one period. It arrives before one of the
period's regular runs (SIM1..FINAL), stays in every later run of the period until the
fixer removes it, and is gone after the period (a master-data error left at FINAL is
reverted after the close, which then shows as a legitimate retroactive correction).
`error_type` names equal the detectors' finding categories (docs/cli-contract.md, truth.csv).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction

import polars as pl

from detectors import paymodel as pm
from paywatch.simulate.plan import RunPlan, SimulationState
from paywatch.simulate.reference import WAGE_TYPES, grade_steps
from paywatch.simulate.store import Op

WAGE_CLASS = {w[0]: w[2] for w in WAGE_TYPES}
IBAN_COUNTRIES = ("CH", "FR", "GB")  # of the simulator's bank countries, those in the IBAN registry

LINE_KINDS = (
    "pay_after_separation", "scale_mismatch", "stale_multiplier", "spouse_allowance_without_dependant",
    "child_over_age_limit", "missing_pension", "duplicate_earning", "wage_type_not_allowed",
    "totals_mismatch", "negative_net", "paid_during_slwop", "part_time_ignored", "overtime_outlier",
    "special_allowance_spike", "unexplained_retro",
)
MASTER_DATA_KINDS = ("shared_iban", "grade_change_without_action", "invalid_iban", "missing_bank_record")
ERROR_KINDS = LINE_KINDS + MASTER_DATA_KINDS
# Kinds of the regimes (engine.REGIMES), drawn only when theirs is on: an advance of the month's
# off-cycle run paid again in a regular run (the second off-cycle run's duplicates are the engine's).
REGIME_KINDS = {"advances": ("duplicate_advance",)}
NEWCOMER_KINDS = ("overtime_outlier", "special_allowance_spike")  # hires regime: cold start
ARRIVAL_RUNS = ("SIM1", "SIM2", "SIM3", "FINAL")


@dataclass
class InjectedError:
    error_id: int
    kind: str
    pernr: str
    period: str
    arrival: str  # run type before which it is keyed in
    params: dict = field(default_factory=dict)
    present: bool = False
    fixed: bool = False
    op: Op | None = None


@dataclass
class RunContext:
    """What an error needs to distort one regular run's lines."""

    sim: SimulationState
    plan: RunPlan
    md: dict[str, pl.DataFrame]
    ref: dict[str, pl.DataFrame]
    facts: pl.DataFrame
    fact_rows: dict[str, dict]
    by_staff: dict[str, list[tuple]]
    totals_override: dict[str, dict[str, int]] = field(default_factory=dict)


# ---------------------------------------------------------------------------- planning

def plan_errors(sim: SimulationState, period: str) -> list[InjectedError]:
    """Choose this period's errors: how many, which kinds, which staff, when they arrive."""
    rng, cfg = sim.rng, sim.cfg
    first = date(int(period[:4]), int(period[4:]), 1)
    active = sorted(p for p, s in sim.staff.items() if s.status == "active")
    n = int(rng.binomial(len(active), cfg.error_rate))
    kinds = list(cfg.error_kinds) + [k for r in cfg.regimes for k in REGIME_KINDS.get(r, ())]
    counts = rng.multinomial(n, [1 / len(kinds)] * len(kinds)) if kinds else []
    taken: set[str] = set()
    out: list[InjectedError] = []
    prev = pm.shift_period(period, -1)
    for kind, k in zip(kinds, counts):
        pool = [p for p in _candidates(sim, kind, period, first, prev) if p not in taken]
        if not pool or k == 0:
            continue
        if kind == "duplicate_advance":  # fewer than the month's legitimate advances
            k = min(int(k), max(len(pool) // 3, 1))
        if "hires" in cfg.regimes and kind in NEWCOMER_KINDS and sim.regime_rng.random() < cfg.newcomer_error_share:
            # cold start: staff hired this month or last, with little or no history of their own
            fresh = [p for p in _newcomers(sim, kind, period, first) if p not in taken]
            pool = fresh or pool
        picks = rng.choice(len(pool), size=min(int(k), len(pool)), replace=False)
        for i in sorted(picks):
            p = pool[i]
            taken.add(p)
            arrival = ARRIVAL_RUNS[int(rng.choice(4, p=list(cfg.arrival)))]
            out.append(InjectedError(len(out) + 1, kind, p, period, arrival, _params(sim, kind, active)))
            sim.staff[p].busy.add(period)
    return out


def _candidates(sim: SimulationState, kind: str, period: str, first: date, prev: str) -> list[str]:
    staff = sim.staff
    quiet = [p for p, s in staff.items() if s.status == "active" and period not in s.busy]
    if kind == "pay_after_separation":
        return sorted(p for p, s in staff.items() if s.status == "separated" and s.separated_in == period)
    if kind == "paid_during_slwop":
        return sorted(p for p, s in staff.items() if s.status == "slwop")
    if kind in ("stale_multiplier", "spouse_allowance_without_dependant"):
        return [p for p in quiet if staff[p].category in ("P", "D")]
    if kind == "part_time_ignored":
        return [p for p in quiet if staff[p].pct < 100]
    if kind == "overtime_outlier":
        return [p for p in quiet if staff[p].category == "G"]
    if kind == "special_allowance_spike":
        return [p for p in quiet if staff[p].spa_cents]
    if kind == "duplicate_advance":
        return [p for p in quiet if p in sim.advances]
    if kind == "unexplained_retro":
        return [p for p in quiet if (p, prev, "1000") in sim.ledger]
    if kind == "grade_change_without_action":
        return [p for p in quiet if staff[p].step < _max_step(staff[p].grade)]
    if kind == "invalid_iban":
        # a mistyped IBAN; a US account number is no IBAN (no check digits to fail)
        return [p for p in quiet if staff[p].iban[:2] in IBAN_COUNTRIES]
    if kind == "child_over_age_limit":
        return [p for p in quiet if _has_overage_child(sim, p, first)]
    return quiet


def _newcomers(sim: SimulationState, kind: str, period: str, first: date) -> list[str]:
    """Staff hired this month (early enough to have 10 active days) or the month before."""
    prev = pm.shift_period(period, -1)
    out = []
    for p, hired_in in sorted(sim.newcomers.items()):
        s = sim.staff[p]
        if s.status not in ("active", "future") or hired_in not in (period, prev):
            continue
        if hired_in == period and s.hired > first + timedelta(days=15):
            continue
        if kind == "overtime_outlier" and s.category != "G" or kind == "special_allowance_spike" and not s.spa_cents:
            continue
        out.append(p)
    return out


def _max_step(grade: str) -> int:
    return grade_steps(grade)


def _has_overage_child(sim: SimulationState, pernr: str, first: date) -> bool:
    for i in sim.store.alive("family", pernr):
        r = sim.store.get("family", i)
        if (r["member_type"] == "2" and r["is_dependent"] and r["valid_from"] <= first <= r["valid_to"]
                and r["birth_date"] <= date(first.year - 18, first.month, 1) - timedelta(days=1)):
            return True
    return False


def _params(sim: SimulationState, kind: str, active: list[str]) -> dict:
    rng = sim.rng
    if kind == "scale_mismatch":
        return {"step_shift": int(rng.choice([-1, 1]))}
    if kind in ("wage_type_not_allowed", "unexplained_retro"):
        return {"amount": int(rng.integers(20, 300)) * 1000}
    if kind == "totals_mismatch":
        return {"total": str(rng.choice(["/101", "/560"])), "delta": int(rng.choice([-1, 1])) * int(rng.integers(5, 500)) * 100}
    if kind == "negative_net":
        return {"excess": int(rng.integers(100, 2000)) * 100}
    if kind == "overtime_outlier":
        return {"hours": int(rng.integers(70, 160))}
    if kind == "special_allowance_spike":
        return {"factor": int(rng.integers(3, 9))}
    if kind == "shared_iban":
        return {"other": str(rng.choice(active)), "day": int(rng.integers(1, 10))}
    if kind == "invalid_iban":
        return {"day": int(rng.integers(1, 10)), "shift": int(rng.integers(1, 96))}
    return {}


# ---------------------------------------------------------------------------- lifecycle

def activate_errors(sim: SimulationState, plan: RunPlan) -> None:
    """Errors whose arrival is this run are keyed in just before it."""
    if plan.run_type not in ARRIVAL_RUNS:
        return
    at = plan.extracted_at - timedelta(hours=20)
    for e in sim.errors:
        if e.arrival != plan.run_type or e.fixed:
            continue
        e.present = True
        if e.kind == "shared_iban":
            other_iban = sim.staff[e.params["other"]].iban
            day = date(int(e.period[:4]), int(e.period[4:]), e.params["day"])
            if other_iban != sim.staff[e.pernr].iban and sim.store.covering("bank_details", e.pernr, day) is not None:
                e.op = sim.store.split_at("bank_details", e.pernr, day, {"iban": other_iban}, at)
        elif e.kind == "invalid_iban":
            # a mistyped account: the check digits no longer match (ISO 13616 mod 97)
            day = date(int(e.period[:4]), int(e.period[4:]), e.params["day"])
            iban = sim.staff[e.pernr].iban
            wrong = (int(iban[2:4]) - 2 + e.params["shift"]) % 97 + 2
            if sim.store.covering("bank_details", e.pernr, day) is not None:
                e.op = sim.store.split_at("bank_details", e.pernr, day, {"iban": f"{iban[:2]}{wrong:02d}{iban[4:]}"}, at)
        elif e.kind == "missing_bank_record":
            # the record the pay date needs deleted by mistake
            idx = sim.store.covering("bank_details", e.pernr, plan.pay_date)
            if idx is not None:
                e.op = Op("bank_details")
                sim.store.remove("bank_details", idx, at, e.op)
        elif e.kind == "grade_change_without_action":
            s = sim.staff[e.pernr]
            first = date(int(e.period[:4]), int(e.period[4:]), 1)
            if sim.store.covering("basic_pay", e.pernr, first) is not None:
                e.op = sim.store.split_at("basic_pay", e.pernr, first, {"step": f"{s.step + 1:02d}"}, at)
                s.changes.append((at, e.period))


def fix_errors(sim: SimulationState, plan: RunPlan, fixed: list[InjectedError]) -> None:
    at = plan.extracted_at + timedelta(hours=3)
    for e in fixed:
        e.present, e.fixed = False, True
        _revert(sim, e, at)


def end_of_month(sim: SimulationState, period: str) -> None:
    """Master-data errors still there after FINAL are reverted after the close."""
    y, m = int(period[:4]), int(period[4:])
    at = sim._time(period, min(26, calendar.monthrange(y, m)[1]))
    for e in sim.errors:
        if e.present:
            _revert(sim, e, at)
        e.present = False
    sim.errors = []


def _revert(sim: SimulationState, e: InjectedError, at) -> None:
    if e.op is None:
        return
    sim.store.undo(e.op, at)
    if e.kind == "grade_change_without_action":
        sim.staff[e.pernr].changes.append((at, e.period))
    e.op = None


# ---------------------------------------------------------------------------- distortion

def apply_errors(ctx: RunContext, errors: list[InjectedError]) -> list[tuple[str, str, str]]:
    """Distort the run's lines for every present error; truth rows for those that show."""
    truth = []
    present = [e for e in errors if e.present]
    absent_staff = [e.pernr for e in present if e.kind in ("pay_after_separation", "paid_during_slwop")]
    as_if_active = _facts_as_if_active(ctx, absent_staff) if absent_staff else {}
    for e in present:
        shown = (e.op is not None) if e.kind in MASTER_DATA_KINDS else _distort(ctx, e, as_if_active)
        if shown:
            truth.append((ctx.plan.run_id, e.pernr, e.kind))
    return truth


def _facts_as_if_active(ctx: RunContext, pernrs: list[str]) -> dict[str, dict]:
    md = {k: v.filter(pl.col("pernr").is_in(pernrs)) for k, v in ctx.md.items()}
    md["actions"] = md["actions"].with_columns(pl.lit("3").alias("employment_status"))
    facts = pm.staff_month_facts(md, ctx.plan.period)
    facts = pm.attach_reference(facts, pm.reference_for_period(ctx.ref, ctx.plan.period))
    return {r["pernr"]: r for r in facts.iter_rows(named=True)}


def _model(ctx: RunContext, row: dict, pernr: str, hours: Fraction | None = None) -> dict[str, int]:
    h = hours if hours is not None else (Fraction(str(ctx.sim.overtime[pernr])) if pernr in ctx.sim.overtime else None)
    return pm.compute_lines(pm.staff_month_from_row(row, overtime_hours=h))


def _replace_model_lines(ctx: RunContext, pernr: str, amounts: dict[str, int], qty: str | None = None) -> None:
    period = ctx.plan.period
    keep = [r for r in ctx.by_staff.get(pernr, []) if not (r[1] == period and r[2] in pm.MODEL_WAGE_TYPES)]
    default_qty = str(ctx.sim.overtime.get(pernr)) if pernr in ctx.sim.overtime else None
    new = [(pernr, period, wt, a, (qty or default_qty) if wt == "1400" else None) for wt, a in amounts.items()]
    ctx.by_staff[pernr] = new + keep


def _amount(ctx: RunContext, pernr: str, wt: str) -> int | None:
    vals = [r[3] for r in ctx.by_staff.get(pernr, []) if r[1] == ctx.plan.period and r[2] == wt]
    return sum(vals) if vals else None


def _distort(ctx: RunContext, e: InjectedError, as_if_active: dict[str, dict]) -> bool:
    p, period = e.pernr, ctx.plan.period
    row = ctx.fact_rows.get(p)
    lines = ctx.by_staff.get(p, [])
    if e.kind in ("pay_after_separation", "paid_during_slwop"):
        full = as_if_active.get(p)
        if full is None or (row is not None and row["active_days"] >= full["active_days"]):
            return False  # the absence is not keyed in yet: paying in full is right
        _replace_model_lines(ctx, p, _model(ctx, full, p))
        return True
    if row is None or row.get("annual_net_cents") is None:
        return False
    if e.kind == "scale_mismatch":
        scale = pm.reference_for_period(ctx.ref, period)["scale"]
        step = f"{int(row['step']) + e.params['step_shift']:02d}"
        if step == "00" or scale.filter((pl.col("grade") == row["grade"]) & (pl.col("step") == step)).height == 0:
            step = f"{int(row['step']) - e.params['step_shift']:02d}"
        wrong = scale.filter((pl.col("grade") == row["grade"]) & (pl.col("step") == step))
        if wrong.height == 0:
            return False
        _replace_model_lines(ctx, p, _model(ctx, row | {"annual_net_cents": wrong["annual_net_cents"][0]}, p))
        return True
    if e.kind == "stale_multiplier":
        old = _previous_multiplier(ctx, row)
        _replace_model_lines(ctx, p, _model(ctx, row | {"multiplier_num": old.numerator, "multiplier_den": old.denominator}, p))
        return True
    if e.kind == "spouse_allowance_without_dependant":
        if row["has_dependent_spouse"]:
            return False
        _replace_model_lines(ctx, p, _model(ctx, row | {"has_dependent_spouse": True}, p))
        return True
    if e.kind == "child_over_age_limit":
        if len(row.get("child_birth_dates") or []) <= row["n_children"]:
            return False
        _replace_model_lines(ctx, p, _model(ctx, row | {"n_children": row["n_children"] + 1}, p))
        return True
    if e.kind == "part_time_ignored":
        if row["employment_pct"] >= 100:
            return False
        _replace_model_lines(ctx, p, _model(ctx, row | {"employment_pct": 100}, p))
        return True
    if e.kind == "missing_pension":
        ctx.by_staff[p] = [r for r in lines if not (r[1] == period and r[2] == pm.WT_PENSION)]
        return len(ctx.by_staff[p]) < len(lines)
    if e.kind == "duplicate_earning":
        dup = [r for r in lines if r[1] == period and r[2] == pm.WT_BASE]
        ctx.by_staff[p] = lines + dup[:1]
        return bool(dup)
    if e.kind == "wage_type_not_allowed":
        ctx.by_staff[p] = lines + [(p, period, pm.WT_ADVANCE, e.params["amount"], None)]
        return True
    if e.kind == "negative_net":
        gross = sum(r[3] for r in lines if WAGE_CLASS.get(r[2]) == "EARNING")
        ded = sum(r[3] for r in lines if WAGE_CLASS.get(r[2]) == "DEDUCTION")
        ctx.by_staff[p] = lines + [(p, period, pm.WT_OTHER_DED, -(gross + ded + e.params["excess"]), None)]
        return True
    if e.kind == "totals_mismatch":
        ctx.totals_override[p] = {e.params["total"]: e.params["delta"]}
        return True
    if e.kind == "overtime_outlier":
        if row["active_days"] < pm.OVERTIME_MIN_ACTIVE_DAYS:
            return False
        hours = e.params["hours"]
        _replace_model_lines(ctx, p, _model(ctx, row, p, hours=Fraction(hours)), qty=str(hours))
        return True
    if e.kind == "special_allowance_spike":
        spa = [r for r in lines if r[1] == period and r[2] == pm.WT_SPECIAL_POST]
        if not spa:
            return False
        rest = [r for r in lines if r not in spa]
        ctx.by_staff[p] = rest + [(p, period, pm.WT_SPECIAL_POST, spa[0][3] * e.params["factor"], None)]
        return True
    if e.kind == "duplicate_advance":
        # the off-cycle run's advance paid again in the regular run of the same period
        ctx.by_staff[p] = lines + [(p, period, pm.WT_ADVANCE, ctx.sim.advances[p], None)]
        return True
    if e.kind == "unexplained_retro":
        prev = pm.shift_period(period, -1)
        if any(r[1] == prev and r[2] == pm.WT_BASE for r in lines):
            return False
        ctx.by_staff[p] = lines + [(p, prev, pm.WT_BASE, e.params["amount"], None)]
        return True
    raise ValueError(f"unknown error kind {e.kind}")


def _previous_multiplier(ctx: RunContext, row: dict) -> Fraction:
    """The duty station's multiplier before the one in force (a stale table value)."""
    pa = ctx.ref["post_adjustment"].filter(pl.col("duty_station") == row["duty_station"]).sort("valid_from")
    first = date(int(ctx.plan.period[:4]), int(ctx.plan.period[4:]), 1)
    earlier = pa.filter(pl.col("valid_from") <= first)
    current = Fraction(int(row["multiplier_num"]), int(row["multiplier_den"]))
    # the latest earlier value that differs: a revision may keep the multiplier, and a
    # "stale" value equal to the current one would be an error that changes nothing
    for value in reversed(earlier["multiplier_pct"].to_list()[:-1]):
        if pm.to_fraction(value) != current:
            return pm.to_fraction(value)
    return current - Fraction(3, 2)
