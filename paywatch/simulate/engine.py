"""The simulated Umoja payroll area: staff, life events, runs, injected errors.

One `Simulation` walks month by month. Each month it plans life events (entered into the
record store at realistic times), then produces the runs of the period (an off-cycle run
when advances are paid, SIM1, SIM2, SIM3, FINAL). Pay is computed by `detectors.paymodel`
from the master data as known at the run's extraction time; retroactive lines follow the
contract's settlement rule. Injected errors arrive through the month and are fixed between
runs by a fixer (one-shot share, or the pilot's feedback loop).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Callable, Iterator

import numpy as np
import polars as pl

from detectors import paymodel as pm
from paywatch.simulate import errors as err
from paywatch.simulate.plan import RunPlan
from paywatch.simulate.population import (
    BANK_COUNTRIES, DUTY_STATIONS, ENTITIES, make_iban, make_name,
)
from paywatch.simulate.reference import (
    G_SCALE, OPEN_END, P_SCALE, WAGE_TYPES, ScaleYear, build_scales, day_before, grade_category,
    grade_steps, utc,
)
from paywatch.simulate.store import RecordStore

RUN_DAYS = {"OFFCYCLE": 5, "SIM1": 10, "SIM2": 15, "SIM3": 20, "FINAL": 24}
REGULAR = ("SIM1", "SIM2", "SIM3", "FINAL")
REGIMES = ("peaks", "advances", "corrections", "hires")
WAGE_CLASS = {w[0]: w[2] for w in WAGE_TYPES}
PAY_INFOTYPES = ("actions", "assignments", "basic_pay", "family")


@dataclass(frozen=True)
class SimConfig:
    """Knobs of the simulated area. Rates are per staff member per month."""

    staff: int = 10_000
    months: int = 12
    start: str = "202507"
    seed: int = 1
    payroll_area: str = "GV"
    error_rate: float = 0.0275
    fix_rate: float = 0.5
    arrival: tuple[float, float, float, float] = (0.50, 0.25, 0.15, 0.10)
    error_kinds: tuple[str, ...] = err.ERROR_KINDS
    separation_rate: float = 0.008
    step_late_share: float = 0.04
    promotion_rate: float = 0.003
    slwop_rate: float = 0.003
    birth_rate: float = 0.003
    marriage_rate: float = 0.0015
    dependant_end_rate: float = 0.001
    bank_change_rate: float = 0.005
    part_time_change_rate: float = 0.0015
    extension_rate: float = 0.01
    late_change_rate: float = 0.004
    advance_rate: float = 0.004
    session_month_share: float = 0.5    # months in which some units service sessions ...
    session_units: int = 3              # ... this many client entities (ORGEH) ...
    session_claim_share: float = 0.85   # ... whose G staff mostly claim heavy overtime together
    session_hours: tuple[int, int] = (20, 60)
    # Regimes (REGIMES): "peaks" is the session months above; the others add what a real area
    # also sees. `paywatch evaluate` switches every one on; the default keeps the plain area.
    regimes: tuple[str, ...] = ("peaks",)
    second_offcycle_share: float = 0.6  # advances: months with a second off-cycle run (new advances) ...
    duplicate_advance_share: float = 0.3  # ... that pays again this share of the first run's advances (errors)
    correction_share: float = 0.2       # corrections: runs re-delivered as a new version (same run_id)
    hire_wave_share: float = 0.03       # hires: a month that hires this share of the staff on top ...
    newcomer_error_share: float = 0.5   # ... and variable-pay errors drawn among newcomers this often


@dataclass
class Staff:
    """The simulator's truth about one staff member (not what the extract says)."""

    pernr: str
    category: str
    grade: str
    step: int
    pct: int
    duty_station: str
    entity: str
    hired: date
    anniversary: int
    iban: str
    status: str = "active"  # active | slwop | separated | future
    spa_cents: int = 0
    other_ded_cents: int = 0
    next_member: int = 1
    changes: list[tuple[datetime, str]] = field(default_factory=list)
    settled_at: datetime | None = None
    busy: set[str] = field(default_factory=set)  # periods with a life event or error
    separated_in: str | None = None
    slwop_return: date | None = None

    @property
    def currency(self) -> str:
        return "CHF" if self.category == "G" else "USD"


@dataclass
class RunOutput:
    """One run as the simulated Umoja extracts it: staging-named frames + truth rows."""

    plan: RunPlan
    frames: dict[str, pl.DataFrame]
    truth: list[tuple[str, str, str]]
    version: int = 1  # 2: a correction of the run delivered before under the same run_id
    # staff with an error in the run's master data who are not paid in it (an off-cycle run
    # extracted while a master-data error is keyed in): neither an error to catch in this run
    # nor a false alarm when flagged
    neutral: set[str] = field(default_factory=set)


class Simulation:
    """A payroll area walked month by month (see module docstring)."""

    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.rng = np.random.default_rng([cfg.seed, 1])
        self.regime_rng = np.random.default_rng([cfg.seed, 3])  # regimes' own draws
        unknown = set(cfg.regimes) - set(REGIMES)
        if unknown:
            raise ValueError(f"unknown regime(s) {sorted(unknown)}; known: {', '.join(REGIMES)}")
        self.fix_rng = np.random.default_rng([cfg.seed, 2])
        self.store = RecordStore()
        self.staff: dict[str, Staff] = {}
        self.next_pernr = 10_000_001
        self.periods = [pm.shift_period(cfg.start, i) for i in range(cfg.months)]
        y0, y1 = int(cfg.start[:4]) - 1, int(self.periods[-1][:4]) + 1
        self.revisions = {y: Decimal(str(round(float(self.rng.uniform(0.012, 0.03)), 4))) for y in range(y0 + 1, y1 + 1)}
        self.scales = {s.year: s for s in build_scales(y0, y1, self.revisions)}
        self.multipliers: list[tuple[str, date, Decimal, datetime]] = []
        self.child_rates: list[tuple[str, date, Decimal, datetime]] = []
        self.ledger: dict[tuple[str, str, str], int] = {}
        self.final_done: set[str] = set()
        self.errors: list[err.InjectedError] = []
        self.overtime: dict[str, Decimal] = {}
        self.advances: dict[str, int] = {}
        self.advances2: dict[str, int] = {}  # advances regime: the second off-cycle run's payees
        self.duplicates: set[str] = set()    # ... of which paid again (truth: duplicate_advance)
        self.wave_periods: list[str] = []    # hires regime: months with a hiring wave
        self.newcomers: dict[str, str] = {}  # PERNR -> period of hire (hired during the simulation)
        self.corrected: list[str] = []       # corrections regime: run ids delivered twice
        self.session_units: set[str] = set()
        self.session_periods: list[str] = []  # months with a session peak (the evaluation reports them)
        self.recoveries: dict[tuple[str, str], int] = {}
        self.run_index = 0
        self._init_reference()
        self._init_population()

    # ------------------------------------------------------------------ reference data
    def _init_reference(self) -> None:
        start = date(int(self.cfg.start[:4]) - 1, 1, 1)
        known = utc(start)
        for ws, base in (("GVA", Decimal("81.7")), ("BON", Decimal("52.3")), ("TRN", Decimal("40.6"))):
            self.multipliers.append((ws, start, base, known))
            value = base
            for p in [pm.shift_period(self.cfg.start, i) for i in range(-6, self.cfg.months + 1)]:
                if p[4:] in ("04", "10"):
                    value += Decimal(str(round(float(self.rng.uniform(-1.5, 3.0)), 1)))
                    eff = date(int(p[:4]), int(p[4:]), 1)
                    self.multipliers.append((ws, eff, value, utc(eff - timedelta(days=25))))
        for cur, base in (("USD", Decimal("3150.00")), ("CHF", Decimal("4200.00"))):
            self.child_rates.append((cur, start, base, known))
            for y in range(start.year + 1, int(self.periods[-1][:4]) + 2):
                base = (base * Decimal("1.02")).quantize(Decimal("0.01"))
                self.child_rates.append((cur, date(y, 1, 1), base, utc(date(y - 1, 12, 1))))

    def reference_frames(self, at: datetime) -> dict[str, pl.DataFrame]:
        """Reference tables as known at `at` (a record from a future first day appears once
        entered; its predecessor is then delimited, never a past month changed)."""
        scale_rows = []
        years = sorted(y for y in self.scales if y == min(self.scales) or utc(date(y - 1, 12, 1)) <= at)
        for i, y in enumerate(years):
            end = date(y, 12, 31) if i + 1 < len(years) else OPEN_END
            for (grade, step), (net, pr) in self.scales[y].amounts.items():
                scale_rows.append((grade, step, date(y, 1, 1), end, int(net * 100), int(pr * 100),
                                   "CHF" if grade.startswith("G") else "USD"))
        pay_scale = pl.DataFrame(scale_rows, orient="row", schema={
            "grade": pl.String, "step": pl.String, "valid_from": pl.Date, "valid_to": pl.Date,
            "annual_net_cents": pl.Int64, "annual_pr_cents": pl.Int64, "currency": pl.String})
        post_adj = self._timeline(self.multipliers, at, "duty_station", "multiplier_pct")
        rates = [("PENSION_STAFF_RATE", Decimal("0.079")), ("SPOUSE_RATE", Decimal("0.06")),
                 ("CHILD_AGE_LIMIT", Decimal("18")), ("HEALTH_RATE", Decimal("0.04"))]
        start = date(int(self.cfg.start[:4]) - 1, 1, 1)
        rate_rows = [(k, v, start, OPEN_END) for k, v in rates]
        child = self._timeline(self.child_rates, at, "rate_key", "rate_value")
        child = child.with_columns(("CHILD_ANNUAL_" + pl.col("rate_key")).alias("rate_key"))
        rates_df = pl.concat([
            pl.DataFrame(rate_rows, orient="row", schema={"rate_key": pl.String, "rate_value": pl.Decimal(38, 4),
                                                          "valid_from": pl.Date, "valid_to": pl.Date}),
            child.select("rate_key", pl.col("rate_value").cast(pl.Decimal(38, 4)), "valid_from", "valid_to"),
        ])
        wage_types = pl.DataFrame(list(WAGE_TYPES), orient="row", schema=[
            "wage_type", "wage_type_text", "wage_class", "run_types", "owner"])
        return {"pay_scale": pay_scale, "post_adjustment": post_adj, "rates": rates_df, "wage_types": wage_types}

    @staticmethod
    def _timeline(items, at, key_name, value_name) -> pl.DataFrame:
        rows = []
        for key in sorted({i[0] for i in items}):
            recs = sorted((i for i in items if i[0] == key and i[3] <= at), key=lambda i: i[1])
            for j, (_, begda, value, _) in enumerate(recs):
                end = day_before(recs[j + 1][1]) if j + 1 < len(recs) else OPEN_END
                rows.append((key, begda, end, value))
        return pl.DataFrame(rows, orient="row", schema={key_name: pl.String, "valid_from": pl.Date,
                                                        "valid_to": pl.Date, value_name: pl.Decimal(38, 4)})

    # ------------------------------------------------------------------ population
    def _new_pernr(self) -> str:
        self.next_pernr += int(self.rng.integers(1, 4))
        return f"{self.next_pernr:08d}"

    def _pick_grade(self) -> tuple[str, str]:
        r = self.rng.random()
        if r < 0.45:
            return "P", str(self.rng.choice(list(P_SCALE)[:5], p=[0.05, 0.2, 0.35, 0.28, 0.12]))
        if r < 0.50:
            return "D", str(self.rng.choice(["D-1", "D-2"], p=[0.7, 0.3]))
        return "G", str(self.rng.choice(list(G_SCALE), p=[0.03, 0.10, 0.20, 0.27, 0.22, 0.12, 0.06]))

    def _init_population(self) -> None:
        start = self._first_day(self.cfg.start)
        for _ in range(self.cfg.staff):
            years = float(self.rng.uniform(0.3, 25))
            hired = start - timedelta(days=int(years * 365.25))
            self._hire(hired, at=utc(hired - timedelta(days=10)), initial=True)

    def _hire(self, hired: date, at: datetime, initial: bool = False, transfer: bool = False) -> Staff:
        rng = self.rng
        category, grade = self._pick_grade()
        steps = grade_steps(grade)
        step = int(min(steps, 1 + rng.integers(0, steps) if initial else 1 + rng.integers(0, 3)))
        pct = 100 if rng.random() < 0.9 else int(rng.choice([50, 60, 80, 90]))
        ws = str(rng.choice([d[0] for d in DUTY_STATIONS], p=[d[1] for d in DUTY_STATIONS]))
        pernr = self._new_pernr()
        bank_country = str(rng.choice(BANK_COUNTRIES["CHF" if category == "G" else "USD"]))
        s = Staff(pernr, category, grade, step, pct, ws, str(rng.choice(ENTITIES)), hired,
                  anniversary=int(rng.integers(1, 13)), iban=make_iban(rng, bank_country),
                  status="active" if initial else "future")
        if rng.random() < (0.05 if category != "G" else 0.02):
            s.spa_cents = int(rng.integers(200, 900)) * 100
        if rng.random() < 0.05:
            s.other_ded_cents = int(rng.integers(50, 800)) * 100
        self.staff[pernr] = s
        st = self.store
        first_day = self._first_day(self.cfg.start)
        last_step = date(first_day.year - (1 if s.anniversary >= first_day.month else 0), s.anniversary, 1)
        split_history = initial and step > 1 and last_step > hired + timedelta(days=40)
        end0 = day_before(last_step) if split_history else OPEN_END
        st.add("actions", (pernr, hired, end0, "04" if transfer else "01", str(rng.choice(["01", "02", "11"])), "3"), at)
        st.add("basic_pay", (pernr, hired, end0, grade, f"{step - 1 if split_history else step:02d}", pct), at)
        if split_history:
            st.add("actions", (pernr, last_step, OPEN_END, "03", "01", "3"), at)
            st.add("basic_pay", (pernr, last_step, OPEN_END, grade, f"{step:02d}", pct), at)
        st.add("assignments", (pernr, hired, OPEN_END, make_name(rng), ws, category, s.entity,
                               self.cfg.payroll_area, f"GV{int(rng.integers(100000, 999999))}"), at)
        st.add("bank_details", (pernr, hired, OPEN_END, bank_country, s.iban, s.currency), at)
        if rng.random() < 0.5:
            married = hired - timedelta(days=int(rng.integers(-2000, 5000)))
            self._add_member(s, "1", married - timedelta(days=9000), married, at, dependent=rng.random() < 0.8)
        for _ in range(int(rng.poisson(0.9))):
            born = first_day - timedelta(days=int(rng.integers(30, 24 * 365)))
            self._add_member(s, "2", born, born, at, dependent=rng.random() < 0.92)
        return s

    def _add_member(self, s: Staff, famsa: str, born: date, begda: date, at: datetime, dependent: bool = True) -> None:
        self.store.add("family", (s.pernr, f"{s.next_member:02d}", famsa, born, begda, OPEN_END, dependent), at)
        s.next_member += 1

    # ------------------------------------------------------------------ calendar helpers
    @staticmethod
    def _first_day(period: str) -> date:
        return date(int(period[:4]), int(period[4:]), 1)

    @staticmethod
    def _period_of(d: date) -> str:
        return f"{d.year:04d}{d.month:02d}"

    def _day(self, period: str, day: int) -> date:
        y, m = int(period[:4]), int(period[4:])
        return date(y, m, min(day, calendar.monthrange(y, m)[1]))

    def _time(self, period: str, day: int, hour: int | None = None) -> datetime:
        """A moment of working hours on `day` of `period` (day may be <1 or past month end)."""
        h = int(self.rng.integers(7, 19)) if hour is None else hour
        return utc(self._first_day(period) + timedelta(days=day - 1), h)

    def run_plans(self, period: str) -> list[RunPlan]:
        types = (["OFFCYCLE"] if self.advances else []) + list(REGULAR)
        plans = []
        for rt in types:
            suffix = "OC1" if rt == "OFFCYCLE" else rt
            extracted = self._time(period, RUN_DAYS[rt], hour=6)
            pay_day = self._day(period, 7 if rt == "OFFCYCLE" else 25)
            plans.append(RunPlan(f"{self.cfg.payroll_area}-{period}-{suffix}", period, rt, extracted, pay_day, 0))
        if self.advances2:  # advances regime: a second off-cycle run between SIM1 and SIM2
            plans.insert(len(plans) - 3, RunPlan(f"{self.cfg.payroll_area}-{period}-OC2", period, "OFFCYCLE",
                                                 self._time(period, 12, hour=6), self._day(period, 14), 0))
        return plans

    # ------------------------------------------------------------------ changes
    def _touch(self, s: Staff, effective: date, at: datetime) -> None:
        s.changes.append((at, self._period_of(effective)))

    def _split(self, s: Staff, it: str, day: date, changes: dict, at: datetime):
        op = self.store.split_at(it, s.pernr, day, changes, at)
        if it in PAY_INFOTYPES:
            self._touch(s, day, at)
        return op

    def _entry_time(self, period: str, effective: date, late: bool = False) -> datetime:
        """When a change is keyed in: usually before the period's SIM1 (or before it takes
        effect); late ones after the FINAL that should have carried them."""
        if late:
            return self._time(period, int(self.rng.integers(25, 29)))
        lo = (effective - self._first_day(period)).days + 1 - int(self.rng.integers(3, 25))
        day = int(min(max(lo, -20), 21))
        return self._time(period, day)

    # ------------------------------------------------------------------ monthly plan
    def plan_month(self, period: str) -> None:
        """Life events, variable pay and errors of one period, keyed into the store."""
        rng, first = self.rng, self._first_day(period)
        dim = calendar.monthrange(first.year, first.month)[1]
        for s in [s for s in self.staff.values() if s.status == "future" and s.hired <= first + timedelta(days=dim)]:
            s.status = "active"
        active = sorted(p for p, s in self.staff.items() if s.status == "active")
        pending_slwop = [s for s in self.staff.values() if s.status == "slwop"]
        self._separations(period, active, dim)
        self._hires(period, dim)
        self._step_increments(period, active)
        self._promotions(period, active)
        self._slwop(period, active, dim, pending_slwop)
        self._family_events(period, active, dim)
        self._bank_and_contract(period, active, dim)
        self._late_changes(period, active)
        self._variable_pay(period)
        self.errors = err.plan_errors(self, period)

    def _free(self, active: list[str], rate: float, period: str) -> list[Staff]:
        n = int(self.rng.binomial(len(active), rate))
        picks = self.rng.choice(len(active), size=min(n, len(active)), replace=False) if active else []
        out = [self.staff[active[i]] for i in sorted(picks)]
        out = [s for s in out if s.status == "active" and period not in s.busy]
        for s in out:
            s.busy.add(period)
        return out

    def _separations(self, period: str, active: list[str], dim: int) -> None:
        for s in self._free(active, self.cfg.separation_rate, period):
            day = self._day(period, int(self.rng.integers(2, dim + 1)))
            at = self._entry_time(period, day)
            self._split(s, "actions", day, {"action_type": "05", "action_reason": "10", "employment_status": "0"}, at)
            s.status, s.separated_in = "separated", period

    def _hires(self, period: str, dim: int) -> None:
        n = int(self.rng.binomial(self.cfg.staff, self.cfg.separation_rate))
        wave = 0
        if "hires" in self.cfg.regimes and period != self.periods[0] and (
                not self.wave_periods or self.regime_rng.random() < 0.3):
            # a hiring wave (a unit set up, a surge): newcomers with no history of their own, who
            # mostly start early in the month
            wave = int(self.regime_rng.binomial(self.cfg.staff, self.cfg.hire_wave_share))
            self.wave_periods.append(period)
        for i in range(n + wave):
            last = dim if i < n else 15
            day = self._day(period, int(self.rng.integers(1, last + 1)))
            at = self._entry_time(period, day)
            s = self._hire(day, at, transfer=self.rng.random() < 0.2)
            s.busy.add(period)
            self._touch(s, day, at)
            self.newcomers[s.pernr] = period

    def _step_increments(self, period: str, active: list[str]) -> None:
        first = self._first_day(period)
        for p in active:
            s = self.staff[p]
            if s.anniversary != first.month or s.step >= grade_steps(s.grade) or period in s.busy:
                continue
            cur = self.store.covering("basic_pay", p, first)
            if cur is None or self.store.get("basic_pay", cur)["valid_from"] > first - timedelta(days=300):
                continue
            late = self.rng.random() < self.cfg.step_late_share and period != self.periods[-1]
            at = self._entry_time(period, first, late=late)
            s.step += 1
            s.busy.add(period)
            self._split(s, "basic_pay", first, {"step": f"{s.step:02d}"}, at)
            self._split(s, "actions", first, {"action_type": "03", "action_reason": "01"}, at)

    def _promotions(self, period: str, active: list[str]) -> None:
        first = self._first_day(period)
        order = list(P_SCALE) + list(G_SCALE)
        for s in self._free(active, self.cfg.promotion_rate, period):
            if s.grade in ("P-5", "D-2", "G-7") or self.store.covering("basic_pay", s.pernr, first) is None:
                continue
            s.grade, s.step = order[order.index(s.grade) + 1], 1
            at = self._entry_time(period, first)
            self._split(s, "basic_pay", first, {"grade": s.grade, "step": "01"}, at)
            self._split(s, "actions", first, {"action_type": "02", "action_reason": "01"}, at)

    def _slwop(self, period: str, active: list[str], dim: int, on_leave: list[Staff]) -> None:
        first = self._first_day(period)
        for s in on_leave:
            if s.slwop_return is not None and s.slwop_return <= first + timedelta(days=dim - 1):
                s.status = "active"
                s.busy.add(period)
        for s in self._free(active, self.cfg.slwop_rate, period):
            day = self._day(period, int(self.rng.integers(1, dim + 1)))
            back = self._first_day(pm.shift_period(period, int(self.rng.integers(1, 4))))
            at = self._entry_time(period, day)
            self._split(s, "actions", day, {"action_type": "06", "action_reason": "01", "employment_status": "1"}, at)
            self._split(s, "actions", back, {"action_type": "07", "action_reason": "01", "employment_status": "3"}, at)
            s.status, s.slwop_return = "slwop", back

    def _family_events(self, period: str, active: list[str], dim: int) -> None:
        for s in self._free(active, self.cfg.birth_rate, period):
            born = self._day(period, int(self.rng.integers(1, dim + 1)))
            at = self._entry_time(period, born + timedelta(days=int(self.rng.integers(2, 12))))
            self._add_member(s, "2", born, born, at)
            self._touch(s, born, at)
            self._split(s, "actions", born, {"action_type": "08", "action_reason": "03"}, at)
        for s in self._free(active, self.cfg.marriage_rate, period):
            day = self._day(period, int(self.rng.integers(1, dim + 1)))
            at = self._entry_time(period, day)
            self._add_member(s, "1", day - timedelta(days=10000), day, at)
            self._touch(s, day, at)
            self._split(s, "actions", day, {"action_type": "08", "action_reason": "01"}, at)
        for s in self._free(active, self.cfg.dependant_end_rate, period):
            day = self._day(period, int(self.rng.integers(2, dim + 1)))
            rec = next((i for i in self.store.alive("family", s.pernr)
                        if self.store.get("family", i)["member_type"] == "1"
                        and self.store.get("family", i)["is_dependent"]
                        and self.store.get("family", i)["valid_to"] == OPEN_END
                        and self.store.get("family", i)["valid_from"] < day), None)
            if rec is None:
                continue
            at = self._entry_time(period, day)
            self.store.end_at("family", rec, day_before(day), at)
            self._touch(s, day, at)

    def _bank_and_contract(self, period: str, active: list[str], dim: int) -> None:
        for s in self._free(active, self.cfg.bank_change_rate, period):
            day = self._day(period, int(self.rng.integers(1, dim + 1)))
            s.iban = make_iban(self.rng, s.iban[:2])
            self._split(s, "bank_details", day, {"iban": s.iban}, self._entry_time(period, day))
        for s in self._free(active, self.cfg.part_time_change_rate, period):
            first = self._first_day(period)
            s.pct = 100 if s.pct < 100 else int(self.rng.choice([50, 80]))
            self._split(s, "basic_pay", first, {"employment_pct": s.pct}, self._entry_time(period, first))
        for s in self._free(active, self.cfg.extension_rate, period):
            day = self._day(period, int(self.rng.integers(1, dim + 1)))
            self._split(s, "actions", day, {"action_type": "09", "action_reason": "01"}, self._entry_time(period, day))

    def _late_changes(self, period: str, active: list[str]) -> None:
        """Changes keyed in after the FINAL of the month they take effect in: retro lines."""
        idx = self.periods.index(period)
        if idx == 0:
            return
        for s in self._free(active, self.cfg.late_change_rate, period):
            back = int(self.rng.integers(1, min(idx, 3) + 1))
            eff_period = pm.shift_period(period, -back)
            first = self._first_day(eff_period)
            at = self._time(period, int(self.rng.integers(1, 23)))
            kind = self.rng.random()
            recent = [self.store.get(it, i)["valid_from"] for it in ("basic_pay", "actions")
                      for i in self.store.alive(it, s.pernr)]
            if max(recent) >= first or s.hired >= first:
                continue
            if kind < 0.35:
                born = first + timedelta(days=int(self.rng.integers(0, 27)))
                self._add_member(s, "2", born, born, at)
                self._touch(s, born, at)
            elif kind < 0.55 and s.category != "G":
                self._add_member(s, "1", first - timedelta(days=11000), first, at)
                self._touch(s, first, at)
            elif kind < 0.8 and s.step < grade_steps(s.grade):
                s.step += 1
                self._split(s, "basic_pay", first, {"step": f"{s.step:02d}"}, at)
                self._split(s, "actions", first, {"action_type": "03", "action_reason": "01"}, at)
            else:
                s.pct = 100 if s.pct < 100 else 80
                self._split(s, "basic_pay", first, {"employment_pct": s.pct}, at)

    def _variable_pay(self, period: str) -> None:
        rng = self.rng
        self.overtime = {}
        # a session month: conference-servicing units work heavy overtime together, legitimately
        cfg = self.cfg
        self.session_units = (set(str(e) for e in rng.choice(ENTITIES, cfg.session_units, replace=False))
                              if rng.random() < cfg.session_month_share else set())
        if "peaks" not in cfg.regimes:
            self.session_units = set()
        if self.session_units:
            self.session_periods.append(period)
        lo, hi = cfg.session_hours
        for p, s in self.staff.items():
            if s.status == "active" and s.category == "G" and s.entity in self.session_units \
                    and rng.random() < cfg.session_claim_share:
                self.overtime[p] = Decimal(int(rng.integers(2 * lo, 2 * hi + 1))) / 2
            elif s.status == "active" and s.category == "G" and rng.random() < 0.2:
                self.overtime[p] = Decimal(int(rng.integers(1, 41))) / 2
            if s.other_ded_cents and rng.random() < 0.03:
                s.other_ded_cents = int(rng.integers(50, 800)) * 100
        self.advances = {}
        first = self._first_day(period)
        for p in sorted(p for p, s in self.staff.items() if s.status == "active"):
            # drawn for every active staff member (the random stream stays the same), paid
            # only to those employed before the month: the off-cycle run pays on the 7th
            if rng.random() < self.cfg.advance_rate and self.staff[p].hired < first and not any(k[0] == p for k in self.recoveries):
                amount = int(rng.integers(5, 31)) * 10_000
                self.advances[p] = amount
                third = amount // 3
                for i, part in enumerate((third, third, amount - 2 * third)):
                    self.recoveries[(p, pm.shift_period(period, i + 1))] = part
        self.advances2, self.duplicates = {}, set()
        if "advances" in cfg.regimes and self.regime_rng.random() < cfg.second_offcycle_share:
            self._second_offcycle(period)

    def _second_offcycle(self, period: str) -> None:
        """Advances regime: a second off-cycle run of the month pays new advances (legitimate,
        recovered like the first run's) and, by mistake, some of the first run's again."""
        rng, first = self.regime_rng, self._first_day(period)
        owing = {k[0] for k in self.recoveries}
        pool = [p for p, s in sorted(self.staff.items())
                if s.status == "active" and s.hired < first and p not in owing and p not in self.advances]
        n = max(2, int(rng.binomial(len(pool), 2 * self.cfg.advance_rate)))
        for i in sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False)) if pool else []:
            p = pool[int(i)]
            amount = int(rng.integers(5, 31)) * 10_000
            self.advances2[p] = amount
            third = amount // 3
            for j, part in enumerate((third, third, amount - 2 * third)):
                self.recoveries[(p, pm.shift_period(period, j + 1))] = part
        # fewer duplicates than legitimate payments in the run (errors are the exception)
        dup = [p for p in sorted(self.advances) if rng.random() < self.cfg.duplicate_advance_share]
        for p in dup[:max(len(self.advances2) - 1, 0)]:
            self.advances2[p] = self.advances[p]
            self.duplicates.add(p)

    # ------------------------------------------------------------------ runs
    def master_frames(self, at: datetime) -> dict[str, pl.DataFrame]:
        return {it: self.store.frame(it, at) for it in self.store.rows}

    def build_run(self, plan: RunPlan) -> RunOutput:
        md, ref = self.master_frames(plan.extracted_at), self.reference_frames(plan.extracted_at)
        if plan.run_type == "OFFCYCLE":
            lines = self._offcycle_lines(plan, md)
            truth: list[tuple[str, str, str]] = []
            if plan.run_id.endswith("-OC2"):
                truth = [(plan.run_id, p, "duplicate_advance") for p in sorted(self.duplicates)]
            # master-data errors keyed in before this off-cycle run are in its extract too
            payees = set(lines["pernr"].to_list())
            md_err = [e for e in self.errors if e.present and e.kind in err.MASTER_DATA_KINDS and e.op is not None]
            truth += [(plan.run_id, e.pernr, e.kind) for e in md_err if e.pernr in payees]
            return RunOutput(plan, {**md, **ref, "pay_lines": lines}, truth,
                             neutral={e.pernr for e in md_err if e.pernr not in payees} | self._involved(truth))
        else:
            lines, truth = self._regular_lines(plan, md, ref)
        frames = {**md, **ref, "pay_lines": lines}
        return RunOutput(plan, frames, truth, neutral=self._involved(truth))

    def _involved(self, truth: list[tuple[str, str, str]]) -> set[str]:
        """Staff an error involves without causing it: the holder of the account a shared_iban
        error copies (flagging them is no false alarm, nor a catch; tests/foreign_writer.py
        counts them the same way)."""
        wrong = {p for _, p, _ in truth}
        return {e.params["other"] for e in self.errors
                if e.kind == "shared_iban" and e.present and e.op is not None} - wrong

    def _offcycle_lines(self, plan: RunPlan, md: dict[str, pl.DataFrame]) -> pl.DataFrame:
        rows = []
        paid = self.advances2 if plan.run_id.endswith("-OC2") else self.advances
        for p, amount in sorted(paid.items()):
            cur = self.staff[p].currency
            for wt in ("2000", "/101", "/550", "/560"):
                rows.append((p, plan.period, wt, amount, cur, None))
        return self._line_frame(rows, plan)

    def _regular_lines(self, plan: RunPlan, md, ref) -> tuple[pl.DataFrame, list[tuple[str, str, str]]]:
        period = plan.period
        fr = {p: Fraction(str(h)) for p, h in self.overtime.items()}
        hours = pl.DataFrame(
            {"pernr": list(fr), "hours_num": [f.numerator for f in fr.values()],
             "hours_den": [f.denominator for f in fr.values()]},
            schema={"pernr": pl.String, "hours_num": pl.Int64, "hours_den": pl.Int64})
        facts, expected = pm.expected_for_period(md, ref, period, overtime_hours=hours)
        base = expected.filter(pl.col("expected_cents").is_not_null())
        rows = [(p, fp, wt, amt, None) for p, fp, wt, amt in base.select("pernr", "for_period", "wage_type", "expected_cents").iter_rows()]
        fact_rows = {r["pernr"]: r for r in facts.iter_rows(named=True)}
        qty = {p: str(h) for p, h in self.overtime.items()}
        rows = [(p, fp, wt, amt, qty.get(p) if wt == "1400" else None) for p, fp, wt, amt, _ in rows]
        for p, r in fact_rows.items():
            s = self.staff[p]
            if s.spa_cents:
                rows.append((p, period, "1500", pm.round_half_away(Fraction(s.spa_cents * r["active_days"], r["days_in_month"])), None))
            f = Fraction(r["active_days"], r["days_in_month"])
            if s.other_ded_cents:
                rows.append((p, period, "3300", -pm.round_half_away(s.other_ded_cents * f), None))
            rec = self.recoveries.get((p, period))
            if rec and f == 1:  # a short month defers the instalment (it would net negative)
                rows.append((p, period, "3200", -rec, None))
        rows.extend(self._retro_lines(plan, md, ref, set(fact_rows)))
        by_staff: dict[str, list[tuple]] = {}
        for row in rows:
            by_staff.setdefault(row[0], []).append(row)
        ctx = err.RunContext(self, plan, md, ref, facts, fact_rows, by_staff)
        truth = err.apply_errors(ctx, self.errors)
        cur = {p: r["currency"] for p, r in fact_rows.items()}
        out = []
        totals_fix = ctx.totals_override
        for p in sorted(by_staff):
            staff_rows = by_staff[p]
            currency = cur.get(p) or self.staff[p].currency
            gross = sum(a for _, _, wt, a, _ in staff_rows if WAGE_CLASS.get(wt) == "EARNING")
            net = gross + sum(a for _, _, wt, a, _ in staff_rows if WAGE_CLASS.get(wt) == "DEDUCTION")
            for pp, fp, wt, a, q in staff_rows:
                out.append((pp, fp, wt, a, currency, q))
            totals = {"/101": gross, "/550": net, "/560": net}
            for wt in ("/101", "/550", "/560"):
                out.append((p, period, wt, totals[wt] + totals_fix.get(p, {}).get(wt, 0), currency, None))
        return self._line_frame(out, plan), truth

    def _retro_lines(self, plan: RunPlan, md, ref, paid_now: set[str]) -> list[tuple]:
        """Differences for months with unsettled late changes (docs/extract-format.md)."""
        period, at = plan.period, plan.extracted_at
        need: dict[str, str] = {}
        for p in paid_now:
            s = self.staff[p]
            eff = [e for t, e in s.changes if t <= at and (s.settled_at is None or t > s.settled_at) and e < period]
            if eff:
                need[p] = max(min(eff), pm.shift_period(period, -12))
        rows = []
        months = sorted({m for p, e in need.items() for m in self.periods if e <= m < period})
        for m in months:
            pernrs = sorted(p for p, e in need.items() if e <= m)
            _, exp = pm.expected_for_period(md, ref, m, pernrs=pernrs)
            recomputed = {(p, wt): a for p, wt, a in exp.select("pernr", "wage_type", "expected_cents").iter_rows()
                          if wt in pm.RETRO_WAGE_TYPES and a is not None}
            for p in pernrs:
                for wt in pm.RETRO_WAGE_TYPES:
                    diff = recomputed.get((p, wt), 0) - self.ledger.get((p, m, wt), 0)
                    if diff:
                        rows.append((p, m, wt, diff, None))
        return rows

    def _line_frame(self, rows: list[tuple], plan: RunPlan) -> pl.DataFrame:
        df = pl.DataFrame(rows, orient="row", schema={
            "pernr": pl.String, "for_period": pl.String, "wage_type": pl.String,
            "amount_cents": pl.Int64, "currency": pl.String, "quantity": pl.String})
        return df.with_columns(
            pl.lit(f"{plan.index + 1:05d}").alias("result_seq"),
            pl.lit(plan.period).alias("in_period"),
        ).select("pernr", "result_seq", "for_period", "in_period", "wage_type", "amount_cents", "currency", "quantity")

    def close_run(self, out: RunOutput) -> None:
        """Book what a FINAL paid (the ledger for retro) and settle changes it carried."""
        if out.plan.run_type != "FINAL":
            return
        lines = out.frames["pay_lines"].filter(pl.col("wage_type").is_in(list(pm.RETRO_WAGE_TYPES)))
        for p, fp, wt, a in lines.select("pernr", "for_period", "wage_type", "amount_cents").iter_rows():
            self.ledger[(p, fp, wt)] = self.ledger.get((p, fp, wt), 0) + a
        for p in out.frames["pay_lines"]["pernr"].unique().to_list():
            self.staff[p].settled_at = out.plan.extracted_at
        # an instalment the FINAL could not deduct (a short month) moves to the next month
        period = out.plan.period
        taken = set(out.frames["pay_lines"].filter(pl.col("wage_type") == "3200")["pernr"].to_list())
        for (p, m) in [k for k in self.recoveries if k[1] == period and k[0] not in taken]:
            nxt = (p, pm.shift_period(period, 1))
            self.recoveries[nxt] = self.recoveries.get(nxt, 0) + self.recoveries.pop((p, m))
        self.final_done.add(out.plan.period)

    # ------------------------------------------------------------------ driver
    def iter_runs(self, fixer: Callable[[RunOutput, list[err.InjectedError]], set[int]] | None = None) -> Iterator[RunOutput]:
        """Every run in verification order. After each regular run but FINAL, `fixer`
        returns ids of present errors that upstream fixes before the next run (default:
        each with probability `fix_rate`, the one-shot mode of docs/cli-contract.md)."""
        fixer = fixer or self.one_shot_fixer
        for period in self.periods:
            self.plan_month(period)
            for plan in self.run_plans(period):
                self.run_index += 1
                plan = RunPlan(plan.run_id, plan.period, plan.run_type, plan.extracted_at, plan.pay_date, self.run_index)
                err.activate_errors(self, plan)
                out = self.build_run(plan)
                if "corrections" in self.cfg.regimes and self.regime_rng.random() < self.cfg.correction_share:
                    yield out
                    out = self._correction(out, fixer)
                yield out
                self.close_run(out)
                if plan.run_type in ("SIM1", "SIM2", "SIM3"):
                    present = [e for e in self.errors if e.present]
                    fixed = fixer(out, present)
                    err.fix_errors(self, plan, [e for e in present if e.error_id in fixed])
            err.end_of_month(self, period)

    def _correction(self, out: RunOutput,
                    fixer: Callable[[RunOutput, list[err.InjectedError]], set[int]]) -> RunOutput:
        """Corrections regime: the run delivered again under its run_id (docs/extract-format.md,
        re-delivery) a few hours later — errors the office fixed in between are gone, a late
        approved advance joins an off-cycle run; what was not fixed is still there."""
        plan = out.plan
        present = [e for e in self.errors if e.present]
        err.fix_errors(self, plan, [e for e in present if e.error_id in fixer(out, present)])
        if plan.run_type == "OFFCYCLE":
            paid = self.advances2 if plan.run_id.endswith("-OC2") else self.advances
            first = self._first_day(plan.period)
            owing = {k[0] for k in self.recoveries}
            late = [p for p, s in sorted(self.staff.items()) if s.status == "active" and s.hired < first
                    and p not in owing and p not in self.advances and p not in self.advances2]
            if late:
                p = late[int(self.regime_rng.integers(len(late)))]
                paid[p] = int(self.regime_rng.integers(5, 31)) * 10_000
                third = paid[p] // 3
                for j, part in enumerate((third, third, paid[p] - 2 * third)):
                    self.recoveries[(p, pm.shift_period(plan.period, j + 1))] = part
        again = RunPlan(plan.run_id, plan.period, plan.run_type, plan.extracted_at + timedelta(hours=5),
                        plan.pay_date, plan.index)
        self.corrected.append(plan.run_id)
        new = self.build_run(again)
        new.version = out.version + 1
        return new

    def one_shot_fixer(self, out: RunOutput, present: list[err.InjectedError]) -> set[int]:
        return {e.error_id for e in present if self.fix_rng.random() < self.cfg.fix_rate}
