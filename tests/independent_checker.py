"""Independent line-by-line checker of simulated extracts (docs/extract-format.md 1.0).

A second, deliberately simple implementation of the pay model, written straight from the
contract text (docs/extract-format.md: "The pay model", "Retroactive lines",
"Payroll results", "Off-cycle runs") so that a bug in the real pay model (``detectors``) or
in the simulator (``paywatch``) cannot hide itself.  It imports neither: only the standard
library.  Clarity beats speed; all arithmetic is exact (``fractions.Fraction``), rounded once
per line, half away from zero, to cents.

Entry point: ``check_simulation(out_dir)`` reads ``runs.txt`` and ``truth.csv`` written by
``paywatch simulate`` (docs/cli-contract.md) and checks, run by run in the order of ``runs.txt``,
every staff member that ``truth.csv`` does NOT list for that run ("clean" staff):

1. Current-month lines (FPPER = INPER) of regular runs: 1000, 1010, 1100, 1110, 1400, 3000,
   3100 recomputed exactly; a deterministic wage type (all but 1400) expected but missing,
   or present but not expected, is a mismatch; every line's WAERS is the pay currency;
   staff with f = 0 in INPER have no lines at all (any run type).
2. Technical totals /101, /550, /560 for every staff member with lines.
3. Run type: wage types allowed by T512W RUN_TYPES (totals always allowed);
   (PERNR, LGART, FPPER) unique.
4. Retroactive lines of regular runs (forward check) and missing retroactive lines
   (reverse check, see ``_check_missing_retro`` for its exact, conservative conditions).

Dates are kept as ``YYYYMMDD`` strings and periods as ``YYYYMM`` strings: for these fixed
width digit strings, text order is calendar order, which keeps validity tests readable
(``BEGDA <= day <= ENDDA``).
"""

from __future__ import annotations

import calendar
import csv
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

REGULAR_RUN_TYPES = frozenset({"SIM1", "SIM2", "SIM3", "FINAL"})
# Wage types whose amount follows from master data and tables alone (expected iff non-zero).
DETERMINISTIC = ("1000", "1010", "1100", "1110", "3000", "3100")
OVERTIME = "1400"
RETRO_WAGE_TYPES = DETERMINISTIC  # "recalculated for 1000, 1010, 1100, 1110, 3000 and 3100"
TOTALS = ("/101", "/550", "/560")
RETRO_WINDOW = 12  # "up to the month before INPER (at most 12 months)"
INFOTYPES = ("PA0000", "PA0001", "PA0008", "PA0009", "PA0021")
# Contract columns of each infotype (extra columns are ignored everywhere).
INFOTYPE_COLUMNS = {
    "PA0000": ("PERNR", "BEGDA", "ENDDA", "MASSN", "MASSG", "STAT2"),
    "PA0001": ("PERNR", "BEGDA", "ENDDA", "ENAME", "WERKS", "PERSG", "ORGEH", "ABKRS", "KOSTL"),
    "PA0008": ("PERNR", "BEGDA", "ENDDA", "TRFGR", "TRFST", "BSGRD"),
    "PA0009": ("PERNR", "BEGDA", "ENDDA", "BANKS", "IBAN", "WAERS"),
    "PA0021": ("PERNR", "OBJPS", "FAMSA", "FGBDT", "BEGDA", "ENDDA", "DEPENDENT"),
}
# Infotypes whose late entry may cause retroactive lines in the reverse check.
RETRO_INFOTYPES = ("PA0000", "PA0001", "PA0008", "PA0021")


# --------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------


def round_half_away(x: Fraction) -> Fraction:
    """Round an exact amount to cents, half away from zero; the result is exact (n/100)."""
    x = Fraction(x)
    cents = abs(x) * 100
    whole = int(cents)  # floor, since cents >= 0
    if cents - whole >= Fraction(1, 2):
        whole += 1
    return Fraction(whole if x >= 0 else -whole, 100)


def fmt(x: Fraction | None) -> str | None:
    """An exact cents amount as text with 2 decimals (``-89.87``); None stays None."""
    if x is None:
        return None
    x = round_half_away(x)
    sign = "-" if x < 0 else ""
    cents = abs(x.numerator * 100 // x.denominator)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def period_add(period: str, months: int) -> str:
    """``YYYYMM`` shifted by ``months`` (may be negative)."""
    n = int(period[:4]) * 12 + int(period[4:]) - 1 + months
    return f"{n // 12:04d}{n % 12 + 1:02d}"


def days_of(period: str) -> list[str]:
    """All days of the month ``YYYYMM`` as ``YYYYMMDD``."""
    y, m = int(period[:4]), int(period[4:])
    return [f"{y:04d}{m:02d}{d:02d}" for d in range(1, calendar.monthrange(y, m)[1] + 1)]


def age_in_years(birth: str, day: str) -> int:
    """Completed years on ``day``; a 29 February birthday falls on 1 March in other years."""
    by, bm, bd = int(birth[:4]), int(birth[4:6]), int(birth[6:])
    y, m, d = int(day[:4]), int(day[4:6]), int(day[6:])
    birthday = (bm, bd)
    if birthday == (2, 29) and not calendar.isleap(y):
        birthday = (3, 1)
    return y - by - (1 if (m, d) < birthday else 0)


@dataclass(frozen=True)
class StaffMonth:
    """Plain inputs of the pay model for one staff member and one month.

    ``written`` holds the referred lines (1000, 1010) as written in the run (already summed
    when written twice); a wage type absent from it is replaced by the model's own amount.
    ``rates`` maps T7UNRATE keys to values read on the first of the month.
    ``multiplier`` is the post adjustment (percent) of the duty station, P and D only.
    """

    category: str  # P, D or G on the reference day
    active_days: int
    days_in_month: int
    annual_net: Fraction
    annual_pr: Fraction
    bsgrd: Fraction
    rates: dict
    multiplier: Fraction | None = None
    spouse: bool = False  # at least one dependent spouse on the reference day
    children: int = 0  # dependent children under CHILD_AGE_LIMIT on the reference day
    overtime_hours: Fraction | None = None  # ANZHL of the 1400 line, if any
    written: dict = field(default_factory=dict)

    @property
    def currency(self) -> str:
        return "CHF" if self.category == "G" else "USD"


def overtime_rate(annual_net: Fraction) -> Fraction:
    """Hourly overtime rate: round(ANNUAL_NET × 1.5 / 2080), itself rounded to cents."""
    return round_half_away(Fraction(annual_net) * Fraction(3, 2) / 2080)


def expected_lines(ctx: StaffMonth) -> dict[str, Fraction]:
    """The model's lines (1000, 1010, 1100, 1110, 1400, 3000, 3100) for one staff-month.

    Returns only the lines that are written, i.e. whose rounded amount is not zero.
    Later lines refer to earlier ones as written (``ctx.written``) or, where not written,
    to the model's own rounded amount.  1400 only when ``ctx.overtime_hours`` is given and
    the staff member is G with at least 10 active days.
    """
    f = Fraction(ctx.active_days, ctx.days_in_month)
    if f == 0:
        return {}
    r = {k: Fraction(v) for k, v in ctx.rates.items()}
    model: dict[str, Fraction] = {}

    def referred(lgart: str) -> Fraction:
        if lgart in ctx.written:
            return Fraction(ctx.written[lgart])
        return model.get(lgart, Fraction(0))

    pct = Fraction(ctx.bsgrd) / 100
    model["1000"] = round_half_away(Fraction(ctx.annual_net) / 12 * pct * f)
    if ctx.category in ("P", "D"):
        model["1010"] = round_half_away(referred("1000") * Fraction(ctx.multiplier) / 100)
        if ctx.spouse:
            model["1100"] = round_half_away(referred("1000") * r["SPOUSE_RATE"])
    if ctx.children >= 1:
        child_annual = r["CHILD_ANNUAL_" + ctx.currency]
        model["1110"] = round_half_away(ctx.children * child_annual / 12 * f)
    if ctx.overtime_hours is not None and ctx.category == "G" and ctx.active_days >= 10:
        model["1400"] = round_half_away(
            Fraction(ctx.overtime_hours) * overtime_rate(ctx.annual_net)
        )
    model["3000"] = round_half_away(
        -(Fraction(ctx.annual_pr) / 12 * pct * f * r["PENSION_STAFF_RATE"])
    )
    model["3100"] = round_half_away(-(referred("1000") + referred("1010")) * r["HEALTH_RATE"])
    return {lgart: amount for lgart, amount in model.items() if amount != 0}


def technical_totals(
    earnings: list[Fraction],
    deductions: list[Fraction],
    written_101: Fraction | None = None,
    written_550: Fraction | None = None,
) -> dict[str, Fraction]:
    """/101 = sum of earnings; /550 = /101 (as written, else model) + deductions; /560 = /550."""
    t101 = sum(earnings, Fraction(0))
    t550 = (t101 if written_101 is None else written_101) + sum(deductions, Fraction(0))
    t560 = t550 if written_550 is None else written_550
    return {"/101": t101, "/550": t550, "/560": t560}


# --------------------------------------------------------------------------------------
# Reading run folders
# --------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict]:
    """Rows of a contract CSV as dicts by header name (BOM tolerated, any column order)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@dataclass
class Run:
    """One run folder as read: manifest facts, master data and RT grouped by PERNR, tables."""

    folder: Path
    run_id: str
    period: str
    run_type: str
    infotypes: dict  # infotype -> PERNR -> [row]
    rt: dict  # PERNR -> [row]
    t510: list
    t7unpa: list
    t512w: dict  # LGART -> row
    t7unrate: list

    @property
    def regular(self) -> bool:
        return self.run_type in REGULAR_RUN_TYPES

    def records(self, infotype: str, pernr: str) -> list[dict]:
        return self.infotypes[infotype].get(pernr, [])

    def staff(self) -> set[str]:
        pernrs = set(self.rt)
        for by_pernr in self.infotypes.values():
            pernrs |= set(by_pernr)
        return pernrs


def _group(rows: list[dict]) -> dict:
    out = defaultdict(list)
    for row in rows:
        out[row["PERNR"]].append(row)
    return dict(out)


def load_run(folder: Path) -> Run:
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return Run(
        folder=folder,
        run_id=manifest["run_id"],
        period=manifest["period"],
        run_type=manifest["run_type"],
        infotypes={it: _group(read_csv(folder / f"{it}.csv")) for it in INFOTYPES},
        rt=_group(read_csv(folder / "RT.csv")),
        t510=read_csv(folder / "T510.csv"),
        t7unpa=read_csv(folder / "T7UNPA.csv"),
        t512w={row["LGART"]: row for row in read_csv(folder / "T512W.csv")},
        t7unrate=read_csv(folder / "T7UNRATE.csv"),
    )


# --------------------------------------------------------------------------------------
# Pay model inputs from an extract
# --------------------------------------------------------------------------------------


class CheckError(Exception):
    """The data needed to compute a staff member's pay is missing or ambiguous."""


def valid_on(rows: list[dict], day: str) -> list[dict]:
    return [row for row in rows if row["BEGDA"] <= day <= row["ENDDA"]]


def _one(rows: list[dict], what: str) -> dict:
    if len(rows) != 1:
        raise CheckError(f"{len(rows)} {what} records (expected exactly 1)")
    return rows[0]


def _rates_on(run: Run, day: str) -> dict[str, Fraction]:
    """T7UNRATE on ``day``; a key with no or several valid records is left out."""
    by_key = defaultdict(list)
    for row in valid_on(run.t7unrate, day):
        by_key[row["KEY"]].append(row)
    return {key: Fraction(rows[0]["VALUE"]) for key, rows in by_key.items() if len(rows) == 1}


@dataclass(frozen=True)
class MonthFacts:
    """Master-data facts of one staff member in one month (those the pay model uses)."""

    active_days: int
    days_in_month: int
    reference_day: str | None = None
    category: str | None = None
    werks: str | None = None
    trfgr: str | None = None
    trfst: str | None = None
    bsgrd: Fraction | None = None
    spouse: bool = False
    children: int = 0

    def pay_inputs(self) -> tuple:
        """Everything that drives the month's pay (reference day itself excluded)."""
        return (self.active_days, self.category, self.werks, self.trfgr, self.trfst,
                self.bsgrd, self.spouse, self.children)

    @property
    def currency(self) -> str | None:
        if self.category is None:
            return None
        return "CHF" if self.category == "G" else "USD"


def month_facts(run: Run, pernr: str, period: str) -> MonthFacts:
    """f, the reference day and what is valid on it, from ``run``'s master data."""
    days = days_of(period)
    actions = run.records("PA0000", pernr)
    active = []
    for day in days:
        on_day = valid_on(actions, day)
        if len(on_day) > 1:
            raise CheckError(f"overlapping PA0000 records on {day}")
        if on_day and on_day[0]["STAT2"] == "3":
            active.append(day)
    if not active:
        return MonthFacts(active_days=0, days_in_month=len(days))

    basic_pay = run.records("PA0008", pernr)
    first = days[0]
    reference_day = first if valid_on(basic_pay, first) else active[0]
    pa0008 = _one(valid_on(basic_pay, reference_day), f"PA0008 on {reference_day}")
    pa0001 = _one(valid_on(run.records("PA0001", pernr), reference_day),
                  f"PA0001 on {reference_day}")

    family = [row for row in valid_on(run.records("PA0021", pernr), reference_day)
              if row["DEPENDENT"] == "X"]
    spouse = any(row["FAMSA"] == "1" for row in family)
    children_rows = [row for row in family if row["FAMSA"] == "2"]
    children = 0
    if children_rows:
        limit = _rates_on(run, first).get("CHILD_AGE_LIMIT")
        if limit is None:
            raise CheckError(f"no single CHILD_AGE_LIMIT on {first}")
        children = len({row["OBJPS"] for row in children_rows
                        if age_in_years(row["FGBDT"], reference_day) < limit})
    return MonthFacts(
        active_days=len(active),
        days_in_month=len(days),
        reference_day=reference_day,
        category=pa0001["PERSG"],
        werks=pa0001["WERKS"],
        trfgr=pa0008["TRFGR"],
        trfst=pa0008["TRFST"],
        bsgrd=Fraction(pa0008["BSGRD"]),
        spouse=spouse,
        children=children,
    )


def month_context(run: Run, facts: MonthFacts, period: str, written=None,
                  overtime_hours=None) -> StaffMonth:
    """Combine month facts with the reference tables read on the first day of the month."""
    first = period + "01"
    scale = _one([row for row in valid_on(run.t510, first)
                  if row["TRFGR"] == facts.trfgr and row["TRFST"] == facts.trfst],
                 f"T510 {facts.trfgr}/{facts.trfst} on {first}")
    multiplier = None
    if facts.category in ("P", "D"):
        pa = _one([row for row in valid_on(run.t7unpa, first) if row["WERKS"] == facts.werks],
                  f"T7UNPA {facts.werks} on {first}")
        multiplier = Fraction(pa["MULTIPLIER"])
    return StaffMonth(
        category=facts.category,
        active_days=facts.active_days,
        days_in_month=facts.days_in_month,
        annual_net=Fraction(scale["ANNUAL_NET"]),
        annual_pr=Fraction(scale["ANNUAL_PR"]),
        bsgrd=facts.bsgrd,
        rates=_rates_on(run, first),
        multiplier=multiplier,
        spouse=facts.spouse,
        children=facts.children,
        overtime_hours=overtime_hours,
        written=dict(written or {}),
    )


def _expected(ctx: StaffMonth) -> dict[str, Fraction]:
    try:
        return expected_lines(ctx)
    except KeyError as exc:  # a T7UNRATE key missing or ambiguous
        raise CheckError(f"T7UNRATE {exc.args[0]} missing or ambiguous") from None


def recomputed_month(run: Run, pernr: str, period: str) -> dict[str, Fraction]:
    """The model's lines for ``period`` with ``run``'s master data, each computed from the
    month's recalculated (not written) amounts, as a retroactive recalculation does."""
    facts = month_facts(run, pernr, period)
    if facts.active_days == 0:
        return {}
    return _expected(month_context(run, facts, period))


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


@dataclass
class Mismatch:
    run_id: str
    PERNR: str
    LGART: str  # "" when the finding concerns no single wage type
    FPPER: str
    written: str | None  # BETRG as written, None when the line is missing
    expected: str | None  # expected amount, None when no line is expected
    reason: str  # "<kind>: <detail>"

    @property
    def kind(self) -> str:
        return self.reason.split(":", 1)[0]


@dataclass
class CheckReport:
    runs_checked: int = 0
    staff_checked: int = 0  # (run, PERNR) pairs of clean staff
    staff_skipped: int = 0  # (run, PERNR) pairs listed in truth.csv
    lines_checked: Counter = field(default_factory=Counter)  # current-month + totals, by LGART
    retro_checked: Counter = field(default_factory=Counter)  # retro lines checked, by LGART
    retro_unchecked: Counter = field(default_factory=Counter)  # FINAL of FPPER not earlier
    missing_retro_checked: int = 0  # (run, PERNR, month, LGART) probes of the reverse check
    mismatches: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self, limit: int = 20) -> str:
        lines = [
            (f"runs {self.runs_checked}, clean staff-runs {self.staff_checked}, "
             f"skipped (truth) {self.staff_skipped}"),
            f"current/total lines checked {dict(sorted(self.lines_checked.items()))}",
            (f"retro lines checked {dict(sorted(self.retro_checked.items()))}, "
             f"unchecked {dict(sorted(self.retro_unchecked.items()))}, "
             f"missing-retro probes {self.missing_retro_checked}"),
            f"mismatches {len(self.mismatches)}",
        ]
        lines += [f"  {m}" for m in self.mismatches[:limit]]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------


class _History:
    """Runs listed before the current one (a re-delivered run_id replaces its earlier copy)."""

    def __init__(self) -> None:
        self.runs: list[Run] = []

    def add(self, run: Run) -> None:
        for i, old in enumerate(self.runs):
            if old.run_id == run.run_id:
                self.runs[i] = run
                return
        self.runs.append(run)

    def final_of(self, period: str) -> Run | None:
        finals = [r for r in self.runs if r.run_type == "FINAL" and r.period == period]
        return finals[-1] if finals else None

    def paid_so_far(self, pernr: str, period: str, lgart: str) -> Fraction:
        """Lines for ``period`` in its FINAL plus retro lines for it in later FINALs."""
        total = Fraction(0)
        for run in self.runs:
            if run.run_type == "FINAL" and run.period >= period:
                for row in run.rt.get(pernr, []):
                    if row["FPPER"] == period and row["LGART"] == lgart:
                        total += Fraction(row["BETRG"])
        return total

    def last_final_with_pay(self, pernr: str) -> Run | None:
        finals = [r for r in self.runs if r.run_type == "FINAL" and r.rt.get(pernr)]
        return finals[-1] if finals else None


class _StaffCheck:
    """All checks of one clean staff member in one run."""

    def __init__(self, run: Run, pernr: str, history: _History, report: CheckReport):
        self.run, self.pernr, self.history, self.report = run, pernr, history, report
        self.lines = run.rt.get(pernr, [])
        self.inper = run.period

    def mismatch(self, lgart, fpper, written, expected, reason) -> None:
        self.report.mismatches.append(Mismatch(
            self.run.run_id, self.pernr, lgart, fpper,
            written, fmt(expected) if isinstance(expected, Fraction) else expected, reason))

    def run_checks(self) -> None:
        self.check_unique_and_run_type()
        try:
            facts = month_facts(self.run, self.pernr, self.inper)
        except CheckError as exc:
            self.mismatch("", self.inper, None, None, f"master_data: {exc}")
            facts = None
        if facts is not None and facts.active_days == 0:
            for row in self.lines:  # f = 0: no lines at all, whatever the run type
                self.mismatch(row["LGART"], row["FPPER"], row["BETRG"], None,
                              "no_pay_expected: staff member has f = 0 in INPER")
            return
        if facts is not None:
            for row in self.lines:
                if row["WAERS"] != facts.currency:
                    self.mismatch(row["LGART"], row["FPPER"], row["BETRG"], None,
                                  f"currency: WAERS {row['WAERS']}, pay currency "
                                  f"{facts.currency}")
        if self.run.regular and facts is not None:
            self.guarded(self.check_current_month, facts)
            self.guarded(self.check_retro_lines)
            self.guarded(self.check_missing_retro)
        self.check_totals()

    def guarded(self, check, *args) -> None:
        try:
            check(*args)
        except CheckError as exc:
            self.mismatch("", "", None, None, f"master_data: {exc}")

    # -- 3. uniqueness and run type ----------------------------------------------------
    def check_unique_and_run_type(self) -> None:
        keys = Counter((row["LGART"], row["FPPER"]) for row in self.lines)
        for (lgart, fpper), n in sorted(keys.items()):
            if n > 1:
                self.mismatch(lgart, fpper, None, None,
                              f"duplicate: (PERNR, LGART, FPPER) written {n} times")
        wanted = "REGULAR" if self.run.regular else "OFFCYCLE"
        for row in self.lines:
            lgart = row["LGART"]
            wage_type = self.run.t512w.get(lgart)
            if wage_type is None:
                self.mismatch(lgart, row["FPPER"], row["BETRG"], None,
                              "unknown_wage_type: not in T512W")
            elif lgart not in TOTALS and wanted not in wage_type["RUN_TYPES"].split("|"):
                self.mismatch(lgart, row["FPPER"], row["BETRG"], None,
                              f"run_type: RUN_TYPES {wage_type['RUN_TYPES']} exclude "
                              f"{self.run.run_type}")

    # -- 1. current-month lines of regular runs ----------------------------------------
    def check_current_month(self, facts: MonthFacts) -> None:
        current = defaultdict(list)
        for row in self.lines:
            if row["FPPER"] == self.inper:
                current[row["LGART"]].append(row)
        written = {lgart: sum((Fraction(row["BETRG"]) for row in current[lgart]), Fraction(0))
                   for lgart in ("1000", "1010") if current.get(lgart)}
        ctx = month_context(self.run, facts, self.inper, written=written)
        expected = _expected(ctx)
        for lgart in DETERMINISTIC:
            rows, exp = current.get(lgart, []), expected.get(lgart)
            if not rows and exp is not None:
                self.mismatch(lgart, self.inper, None, exp, "missing: expected line not written")
            for row in rows:
                self.compare(row, exp, "amount")
        for row in current.get(OVERTIME, []):
            if not row["ANZHL"]:
                self.mismatch(OVERTIME, self.inper, row["BETRG"], None,
                              "overtime: 1400 without ANZHL hours")
                continue
            ot_ctx = month_context(self.run, facts, self.inper, written=written,
                                   overtime_hours=Fraction(row["ANZHL"]))
            self.compare(row, _expected(ot_ctx).get(OVERTIME), "amount")

    def compare(self, row: dict, expected: Fraction | None, kind: str, counter=None) -> None:
        """Compare one written line exactly; ``expected`` None (or 0 outside totals, since a
        line that rounds to zero is not written) means no line should be there."""
        lgart = row["LGART"]
        (self.report.lines_checked if counter is None else counter)[lgart] += 1
        if expected is None or (expected == 0 and lgart not in TOTALS):
            self.mismatch(lgart, row["FPPER"], row["BETRG"], None,
                          f"unexpected: no {lgart} line expected for {row['FPPER']}")
        elif Fraction(row["BETRG"]) != expected:
            self.mismatch(lgart, row["FPPER"], row["BETRG"], expected,
                          f"{kind}: written {row['BETRG']} != expected {fmt(expected)}")

    # -- 4. retroactive lines, forward -------------------------------------------------
    def check_retro_lines(self) -> None:
        recomputed: dict[str, dict] = {}
        for row in self.lines:
            lgart, fpper = row["LGART"], row["FPPER"]
            if fpper >= self.inper or lgart in TOTALS:
                continue
            if lgart not in RETRO_WAGE_TYPES:
                self.mismatch(lgart, fpper, row["BETRG"], None,
                              "retro_unexpected: wage type is never recalculated")
                continue
            if fpper < period_add(self.inper, -RETRO_WINDOW):
                self.mismatch(lgart, fpper, row["BETRG"], None,
                              "retro_unexpected: more than 12 months before INPER")
                continue
            if self.history.final_of(fpper) is None:
                self.report.retro_unchecked[lgart] += 1
                continue
            if fpper not in recomputed:
                recomputed[fpper] = recomputed_month(self.run, self.pernr, fpper)
            expected = (recomputed[fpper].get(lgart, Fraction(0))
                        - self.history.paid_so_far(self.pernr, fpper, lgart))
            self.compare(row, expected, "retro_amount", counter=self.report.retro_checked)

    # -- 4. retroactive lines, reverse (missing_retro) ----------------------------------
    def check_missing_retro(self) -> None:
        """Report a retro difference that should have been carried but has no line.

        Deliberately conservative, so that it never guesses at the simulator's bookkeeping.
        For each month m from INPER-12 to INPER-1 whose FINAL is among the earlier runs,
        with ``base`` = the latest earlier FINAL in which this staff member had lines
        (the run that last "settled" their pay; FINAL of m if they never had any):
          (a) the extract has a PA0000/PA0001/PA0008/PA0021 record with BEGDA on or
              before the last day of m that ``base`` did not carry (same contract
              columns) — a late-entered change;
          (b) the month-m pay inputs (f, category, duty station, grade, step, BSGRD,
              spouse, number of children) differ between this extract and ``base``
              (or cannot be determined from ``base``);
        and then, per wage type, recomputed(m) - paid_so_far(m) != 0 with no retro line
        for (m, wage type) is a ``missing_retro`` mismatch.  Staff without pay in INPER are
        skipped by the caller (f = 0: differences are carried forward).
        """
        present = {(row["FPPER"], row["LGART"]) for row in self.lines}
        base_default = self.history.last_final_with_pay(self.pernr)
        for k in range(RETRO_WINDOW, 0, -1):
            month = period_add(self.inper, -k)
            final = self.history.final_of(month)
            if final is None:
                continue
            base = base_default or final
            if not self._late_record(base, month) or not self._inputs_changed(base, month):
                continue
            recomputed = recomputed_month(self.run, self.pernr, month)
            for lgart in RETRO_WAGE_TYPES:
                self.report.missing_retro_checked += 1
                diff = (recomputed.get(lgart, Fraction(0))
                        - self.history.paid_so_far(self.pernr, month, lgart))
                if diff != 0 and (month, lgart) not in present:
                    self.mismatch(lgart, month, None, diff,
                                  f"missing_retro: recomputed minus paid is {fmt(diff)} "
                                  "after a late-entered master-data change")

    def _late_record(self, base: Run, month: str) -> bool:
        last_day = days_of(month)[-1]
        for infotype in RETRO_INFOTYPES:
            cols = INFOTYPE_COLUMNS[infotype]
            known = {tuple(row[c] for c in cols) for row in base.records(infotype, self.pernr)}
            for row in self.run.records(infotype, self.pernr):
                if row["BEGDA"] <= last_day and tuple(row[c] for c in cols) not in known:
                    return True
        return False

    def _inputs_changed(self, base: Run, month: str) -> bool:
        now = month_facts(self.run, self.pernr, month).pay_inputs()
        try:
            before = month_facts(base, self.pernr, month).pay_inputs()
        except CheckError:
            return True
        return now != before

    # -- 2. technical totals -----------------------------------------------------------
    def check_totals(self) -> None:
        pay_lines = [row for row in self.lines if row["LGART"] not in TOTALS]
        total_rows = {t: [row for row in self.lines if row["LGART"] == t] for t in TOTALS}
        if not pay_lines:
            for t in TOTALS:
                for row in total_rows[t]:
                    self.mismatch(t, row["FPPER"], row["BETRG"], None,
                                  "totals: total written for a staff member without lines")
            return
        earnings, deductions = [], []
        for row in pay_lines:
            wage_class = self.run.t512w.get(row["LGART"], {}).get("CLASS")
            if wage_class == "EARNING":
                earnings.append(Fraction(row["BETRG"]))
            elif wage_class == "DEDUCTION":
                deductions.append(Fraction(row["BETRG"]))

        def as_written(t):
            rows = total_rows[t]
            return sum((Fraction(row["BETRG"]) for row in rows), Fraction(0)) if rows else None

        expected = technical_totals(earnings, deductions,
                                    as_written("/101"), as_written("/550"))
        for t in TOTALS:
            rows = total_rows[t]
            if len(rows) != 1:
                self.mismatch(t, self.inper, None if not rows else rows[0]["BETRG"], expected[t],
                              f"totals: {t} written {len(rows)} times (expected once)")
                continue
            row = rows[0]
            if row["FPPER"] != self.inper:
                self.mismatch(t, row["FPPER"], row["BETRG"], expected[t],
                              f"totals: {t} with FPPER {row['FPPER']} != INPER {self.inper}")
                continue
            self.compare(row, expected[t], "totals")


def read_truth(out_dir: Path) -> dict[str, set[str]]:
    """run_id -> PERNRs with an injected error in that run."""
    truth = defaultdict(set)
    path = Path(out_dir) / "truth.csv"
    if path.exists():
        for row in read_csv(path):
            truth[row["run_id"]].add(row["PERNR"])
    return dict(truth)


def check_simulation(out_dir) -> CheckReport:
    """Check every run listed in ``out_dir/runs.txt`` against the contract (module doc)."""
    out_dir = Path(out_dir)
    folders = [line.strip() for line in
               (out_dir / "runs.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    truth = read_truth(out_dir)
    report = CheckReport()
    history = _History()
    for name in folders:
        run = load_run(out_dir / name)
        excluded = truth.get(run.run_id, set())
        for pernr in sorted(run.staff()):
            if pernr in excluded:
                report.staff_skipped += 1
                continue
            report.staff_checked += 1
            _StaffCheck(run, pernr, history, report).run_checks()
        report.runs_checked += 1
        history.add(run)
    return report
