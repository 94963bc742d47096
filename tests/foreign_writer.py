"""A "foreign" payroll extract writer, written only from the contracts.

Paywatch is judged on extracts written by *other* programs from the same contract
(docs/extract-format.md 1.0 revised December 2026, docs/cli-contract.md 1.1), not only by
its own simulator.  This module is such another program.  It imports nothing of
``paywatch`` or ``detectors``; it uses the standard library and, for the pay arithmetic
only, the helpers of ``tests/independent_checker.py`` (exact ``Fraction`` arithmetic,
rounding half away from zero, the pay model's line formulas), which are themselves a
from-the-contract implementation.

What it writes (``write_area(out_dir, staff=N, months=K, seed=S)``)
-------------------------------------------------------------------
One payroll area (default code ``FX7``) of about N staff:

* K history months, each with a ``FINAL`` run, and from the second history month an
  ``OFFCYCLE`` run (the 8th) paying salary advances; then the **test month** with, in
  contract order, ``SIM1`` (10th), ``OFFCYCLE`` ``OC1`` (12th), ``SIM2`` (15th),
  ``OFFCYCLE`` ``OC2`` (18th) and ``FINAL`` (24th).
* Each run folder holds the ten CSV files and ``manifest.json`` (row counts, SHA-256), the
  full master-data history *as known at that extraction* (records entered late appear only
  in later extracts; future-dated separations appear before they take effect), and RT
  lines computed from the contract's pay model: 1000, 1010, 1100, 1110, 1400, 3000, 3100
  exactly; 1500 special post allowance and 1520 language allowance (its own wage type in
  T512W, class EARNING) × f; 3200 advance recoveries; 3300 other deductions; 2000 advances
  in off-cycle runs only; retroactive lines for late-entered master data; totals /101,
  /550, /560.
* Dialect choices a different program might make, all inside the contract: column order
  differs from the contract's listing, extra columns (``MANDT``, ``AEDTM``, ``BUKRS``),
  CRLF line ends in the infotype files, a byte-order mark on PA0001, names with accents,
  non-Latin scripts, commas and doubled quotes, empty ``KOSTL`` cells, SEQNR random.
* ``runs.txt`` (folders in verification order) and ``truth.csv`` (``run_id, PERNR,
  error_type``) as ``paywatch simulate`` writes them (cli-contract.md), so
  ``tests/independent_checker.check_simulation`` can check the clean staff.

Its own population, deliberately unlike a typical simulator: 14 client entities of its own
(``DCMS``, ``HRCSEC``, ``TBSD``, ``UNITAR`` …, sized by a Dirichlet draw), three duty stations
(GVA, BON, NBO; G staff only in GVA), about 36 % P, 7 % D, 57 % G, 13 % part time
(50–90 %), spouses and children with birth dates spread so that some children marked
dependent are already 18 or older (no allowance for them), dependent spouses of G staff (no
1100), overtime habits per entity and per person (half-hour claims), a multiplier revision
for GVA taking effect on the first day of the test month.

Regimes (legitimate events, which outnumber the errors)
--------------------------------------------------------
hires mid-month (some entered only by SIM2 or FINAL; some as transfers in, MASSN 04),
separations (future-dated, some entered after SIM1), step increments and promotions with
their action (some entered after SIM1), step increments entered late (effective one or two
months back: retroactive lines), births entered late with a family-status action
(retroactive child allowance), SLWOP starting and ending mid-month, a unit-wide overtime peak
in one entity in the test month (a session month) and in another entity in a history month,
overtime claims entered between SIM1 and SIM2, advances in off-cycle runs recovered by 3200
in later months, bank changes (from the 1st or mid-month), new special post allowances
backed by an action (MASSN 09 on the day it starts), part-time changes from the first of
the month.

Injected errors (the ``error_type`` of truth.csv; all in the test month)
------------------------------------------------------------------------
``pay_after_separation`` (separated at the end of the previous month, paid a full month in
SIM1, SIM2, FINAL), ``offcycle_pay_after_separation`` (an advance in OC1 to staff separated
the month before), ``paid_during_slwop``, ``overtime_outlier`` (8–12 × the person's usual
hours, inside the population's range, outside the peaking entity), ``duplicate_advance``
(the same advance in OC1 and again in OC2; truth in OC2), ``recovery_without_advance``,
``recovery_above_balance``, ``bank_deleted`` (every PA0009 record of a paid staff member
gone), ``invalid_iban`` (a new bank record whose IBAN has a mistyped digit),
``shared_iban`` (a new bank record with a colleague's account; truth names the staff member
whose record changed, ``events.json`` lists the account's holder under ``involved``),
``active_not_paid`` (no lines at all in the regular runs), ``new_allowance_no_action`` (a
new 1500 with no history and no action), ``grade_change_no_action`` (a PA0008 step or grade
change with no PA0000 action, paid accordingly), ``missing_pension`` (3000 not written),
``wrong_child_allowance`` (1110 for one child too many, preferably a child already 18 still
marked dependent), ``duplicate_line`` (1000 written twice), ``retro_without_change`` (a
retroactive 1000 line for the previous month with no master-data change),
``part_time_ignored`` (a part-timer paid at 100 %), ``hire_paid_full_month`` (a mid-month
hire paid a whole month).  Except where noted, an error is present in SIM1, SIM2 and FINAL
of the test month; totals always agree with the lines as written.

Everything is drawn from one ``random.Random(seed)``: the same arguments give byte-identical
folders.
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import io
import json
import math
import os
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path

try:
    from independent_checker import StaffMonth, age_in_years, expected_lines, fmt, round_half_away
except ImportError:  # imported as tests.foreign_writer
    from tests.independent_checker import (  # type: ignore[no-redef]
        StaffMonth,
        age_in_years,
        expected_lines,
        fmt,
        round_half_away,
    )

OPEN = date(9999, 12, 31)
NEVER = 10**9  # a known/gone sequence number no run reaches

ERROR_KINDS = (
    "pay_after_separation", "offcycle_pay_after_separation", "paid_during_slwop",
    "overtime_outlier", "duplicate_advance", "recovery_without_advance",
    "recovery_above_balance", "bank_deleted", "invalid_iban", "shared_iban",
    "active_not_paid", "new_allowance_no_action", "grade_change_no_action", "missing_pension",
    "wrong_child_allowance", "duplicate_line", "retro_without_change", "part_time_ignored",
    "hire_paid_full_month",
)

# Entities of this writer: code, share weight, overtime propensity of its G staff.
ENTITIES = [
    ("DCMS", 3.0, 0.55), ("HRCSEC", 1.5, 0.35), ("TBSD", 1.5, 0.40), ("UNITAR", 1.0, 0.10),
    ("UNRISD", 0.6, 0.05), ("ITCX", 1.8, 0.15), ("UNIDIR", 0.5, 0.05), ("IPBES", 0.4, 0.08),
    ("CCDSEC", 0.6, 0.12), ("LIBGVA", 0.7, 0.20), ("SECSERV", 1.2, 0.30), ("UNOSATX", 0.5, 0.10),
    ("ESCAPGV", 0.8, 0.10), ("OICT-G", 1.0, 0.25),
]
PEAK_ENTITY_TEST = "DCMS"
PEAK_ENTITY_HISTORY = "TBSD"
STATIONS = {"GVA": Fraction("84.3"), "BON": Fraction("57.4"), "NBO": Fraction("33.9")}
GVA_REVISED = Fraction("86.1")
GRADES = {  # grade: (share within category, steps, annual net at step 1)
    "P-1": (0.04, 13, 43150), "P-2": (0.18, 13, 55420), "P-3": (0.36, 15, 70310),
    "P-4": (0.28, 15, 85170), "P-5": (0.14, 13, 101240),
    "D-1": (0.75, 10, 116730), "D-2": (0.25, 7, 128410),
    "G-1": (0.01, 12, 56890), "G-2": (0.04, 12, 63140), "G-3": (0.12, 12, 70020),
    "G-4": (0.25, 12, 78310), "G-5": (0.28, 12, 87630), "G-6": (0.20, 12, 98450),
    "G-7": (0.10, 12, 112370),
}
RATES = {"PENSION_STAFF_RATE": "0.079", "SPOUSE_RATE": "0.06", "CHILD_ANNUAL_USD": "2929.00",
         "CHILD_ANNUAL_CHF": "3984.00", "CHILD_AGE_LIMIT": "18", "HEALTH_RATE": "0.0485"}
T512W = [  # LGART, LGTXT, CLASS, RUN_TYPES, OWNER
    ("1000", "Net base salary", "EARNING", "REGULAR", "HR"),
    ("1010", "Post adjustment", "EARNING", "REGULAR", "HR"),
    ("1100", "Spouse allowance", "EARNING", "REGULAR", "HR"),
    ("1110", "Child allowance", "EARNING", "REGULAR", "HR"),
    ("1400", "Overtime", "EARNING", "REGULAR", "HR"),
    ("1500", "Special post allowance", "EARNING", "REGULAR", "HR"),
    ("1520", "Language allowance", "EARNING", "REGULAR", "HR"),
    ("2000", "Salary advance", "EARNING", "OFFCYCLE", "FINANCE"),
    ("3000", "Pension contribution (UNJSPF)", "DEDUCTION", "REGULAR", "FINANCE"),
    ("3100", "Health insurance (UNSMIS)", "DEDUCTION", "REGULAR", "FINANCE"),
    ("3200", "Advance recovery", "DEDUCTION", "REGULAR", "FINANCE"),
    ("3300", "Other deductions", "DEDUCTION", "REGULAR", "FINANCE"),
    ("/101", "Total gross", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
    ("/550", "Statutory net", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
    ("/560", "Amount paid", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
]
CLASS = {row[0]: row[2] for row in T512W}

FIRST = ["Amélie", "Jürgen", "Søren", "Zoë", "Łukasz", "Ngozi", "Mehmet", "Siobhán", "José",
         "Ana", "Oleksandr", "Fatou", "Hiroshi", "Priya", "Tomás", "Ingrid", "Kwame", "Li",
         "Марина", "Дмитрий", "明", "美玲", "أحمد", "فاطمة", "Nguyễn Văn", "Chloé", "Bjørn",
         "Renée", "Pál", "Çağla", 'Robert "Bob"', "Mary-Jane", "Élodie", "Ömer", "Ayşe"]
LAST = ["Dupont", "Müller", "Ødegaard", "García Márquez", "Kowalczyk", "Okonkwo", "Yılmaz",
        "O'Sullivan", "Nakamura", "Shrestha", "Ferreira", "Ivanova", "Иванов", "王", "李",
        "العلي", "Nguyễn, Thị", "Ndiaye", "de la Cruz", "Van den Berg", "Szabó", "Mensah",
        "Rossi, jr.", "Lefèvre", "Björk", "Papadopoulos", "Haddad", "Tanaka", "Kim"]
IBAN_FORMATS = {  # country: list of (kind, length) making the BBAN; n digits, a upper letters
    "CH": [("n", 5), ("n", 12)], "FR": [("n", 10), ("n", 11), ("n", 2)], "DE": [("n", 18)],
    "GB": [("a", 4), ("n", 14)], "AT": [("n", 16)], "ES": [("n", 20)],
    "NL": [("a", 4), ("n", 10)], "BE": [("n", 12)],
}


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------

def ymd(d: date) -> str:
    return d.strftime("%Y%m%d")


def padd(period: str, n: int) -> str:
    k = int(period[:4]) * 12 + int(period[4:]) - 1 + n
    return f"{k // 12:04d}{k % 12 + 1:02d}"


def first_day(period: str) -> date:
    return date(int(period[:4]), int(period[4:]), 1)


def last_day(period: str) -> date:
    y, m = int(period[:4]), int(period[4:])
    return date(y, m, calendar.monthrange(y, m)[1])


def period_of(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}"


def iban_check(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(digits) % 97:02d}"


ES_WEIGHTS = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)
BE_BANK_CODES = ("001", "063", "068", "230", "310", "363", "431", "435")


def _es_digit(ten: str) -> str:
    d = 11 - sum(int(c) * w for c, w in zip(ten, ES_WEIGHTS)) % 11
    return "0" if d == 11 else "1" if d == 10 else str(d)


def national_check(country: str, bban: str) -> str:
    """Real accounts also carry the national check digits inside the BBAN (Belgium: the
    first ten digits mod 97; Spain: two mod-11 digits; France: the RIB key)."""
    if country == "BE":
        c = int(bban[:10]) % 97 or 97
        return bban[:10] + f"{c:02d}"
    if country == "ES":
        return (bban[:8] + _es_digit("00" + bban[:8]) + _es_digit(bban[10:20]) + bban[10:20])
    if country == "FR":
        key = 97 - (89 * int(bban[:5]) + 15 * int(bban[5:10]) + 3 * int(bban[10:21])) % 97
        return bban[:21] + f"{key:02d}"
    return bban


def make_iban(rng: random.Random, country: str) -> str:
    bban = ""
    for kind, n in IBAN_FORMATS[country]:
        alphabet = "0123456789" if kind == "n" else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        bban += "".join(rng.choice(alphabet) for _ in range(n))
    if country == "BE":  # a bank code in use (Belgian codes are assigned by the NBB)
        bban = rng.choice(BE_BANK_CODES) + bban[3:]
    bban = national_check(country, bban)
    return country + iban_check(country, bban) + bban


def iban_valid(iban: str) -> bool:
    s = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97 == 1


def corrupt_iban(rng: random.Random, iban: str) -> str:
    """One mistyped digit in the BBAN (the check digits then fail, mod-97 catches it)."""
    while True:
        i = rng.randrange(4, len(iban))
        if not iban[i].isdigit():
            continue
        bad = iban[:i] + str((int(iban[i]) + rng.randint(1, 9)) % 10) + iban[i + 1:]
        if not iban_valid(bad):
            return bad


# --------------------------------------------------------------------------------------
# the model of one staff member: records with the run from which they are known
# --------------------------------------------------------------------------------------

@dataclass
class Rec:
    begda: date
    data: dict
    known: int = 0  # sequence number of the first run whose extract carries the record
    gone: int = NEVER  # from this run on the record is no longer in extracts (deleted)
    endda: date | None = None  # explicit end (else: day before the next record, or open)


@dataclass
class Staff:
    pernr: str
    category: str
    recs: dict = field(default_factory=lambda: {k: [] for k in
                                                ("PA0000", "PA0001", "PA0008", "PA0009")})
    family: dict = field(default_factory=dict)  # OBJPS -> [Rec]
    ot_usual: float = 0.0  # usual overtime hours when claiming (G)
    ot_prob: float = 0.0
    spa: list = field(default_factory=list)  # (from_period, to_period or None, monthly)
    language: Fraction | None = None
    other_ded: Fraction | None = None
    recovery: dict = field(default_factory=dict)  # period -> amount recovered (positive)
    orgeh: str = ""

    def segments(self, infotype: str, seq: int, recs=None) -> list[tuple[date, date, dict]]:
        rows = [r for r in (recs if recs is not None else self.recs[infotype])
                if r.known <= seq < r.gone]
        rows.sort(key=lambda r: r.begda)
        out = []
        for i, r in enumerate(rows):
            nxt = rows[i + 1].begda - timedelta(days=1) if i + 1 < len(rows) else OPEN
            end = r.endda if r.endda is not None and r.endda < nxt else nxt
            out.append((r.begda, end, r.data))
        return out

    def family_segments(self, seq: int) -> list[tuple[str, date, date, dict]]:
        out = []
        for objps, recs in sorted(self.family.items()):
            for b, e, d in self.segments("", seq, recs):
                out.append((objps, b, e, d))
        return out


def valid(segs, day: date):
    for b, e, d in segs:
        if b <= day <= e:
            return d
    return None


@dataclass
class RunSpec:
    seq: int
    run_id: str
    period: str
    run_type: str
    extracted: str
    pay_date: str
    folder: str

    @property
    def regular(self) -> bool:
        return self.run_type != "OFFCYCLE"


# --------------------------------------------------------------------------------------
# the writer
# --------------------------------------------------------------------------------------

class ForeignArea:
    def __init__(self, staff: int, months: int, seed: int, test_period: str = "202609",
                 area: str = "FX7", error_rate: float | None = None):
        if months < 2:
            raise ValueError("months (history FINAL months) must be at least 2")
        self.rng = random.Random(seed)
        self.n, self.k, self.seed, self.area = staff, months, seed, area
        self.test = test_period
        self.history = [padd(test_period, -i) for i in range(months, 0, -1)]
        self.per_kind = max(3, staff // 400) if error_rate is None else max(
            1, round(staff * error_rate))
        self.staff: list[Staff] = []
        self.by_pernr: dict[str, Staff] = {}
        self.used_pernrs: set[str] = set()
        self.overtime: dict[tuple[str, str], Fraction] = {}
        self.ot_late: set[tuple[str, str]] = set()  # claims not yet entered at SIM1
        self.advances: dict[int, list[tuple[str, Fraction]]] = {}  # OC seq -> (pernr, amount)
        self.errors: dict[str, str] = {}  # pernr -> error kind (test month)
        self.error_data: dict[str, dict] = {}
        self.truth: list[tuple[str, str, str]] = []
        self.legit: dict[str, list[str]] = {}  # PERNR -> legitimate events of the test month
        self.involved: set[str] = set()  # staff an error concerns without being its cause
        self.events: dict[str, int] = {}  # legitimate events of the test month, by kind
        self.paid: dict[tuple[str, str, str], Fraction] = {}  # FINAL ledger
        self._plan_runs()
        self._tables()

    # ---- runs ------------------------------------------------------------------------
    def _plan_runs(self) -> None:
        runs = []

        def add(period, kind, day, hour, suffix, pay_day):
            ext = f"{period[:4]}-{period[4:]}-{day:02d}T{hour}Z"
            rid = f"{self.area}-{period}-{suffix}"
            runs.append(RunSpec(0, rid, period, kind, ext, f"{period}{pay_day:02d}", rid))

        for i, p in enumerate(self.history):
            if i > 0:
                add(p, "OFFCYCLE", 8, "07:30:00", "OC1", 9)
            add(p, "FINAL", 24, "06:00:00", "FINAL", 26)
        t = self.test
        add(t, "SIM1", 10, "06:00:00", "SIM1", 26)
        add(t, "OFFCYCLE", 12, "07:30:00", "OC1", 13)
        add(t, "SIM2", 15, "06:00:00", "SIM2", 26)
        add(t, "OFFCYCLE", 18, "07:30:00", "OC2", 19)
        add(t, "FINAL", 24, "06:00:00", "FINAL", 26)
        runs.sort(key=lambda r: (r.period, r.extracted, r.run_id))
        for i, r in enumerate(runs):
            r.seq = i + 1
        self.runs = runs
        self.run = {(r.period, r.run_id.rsplit("-", 1)[1]): r for r in runs}

    def seq(self, period: str, suffix: str) -> int:
        return self.run[(period, suffix)].seq

    def first_seq(self, period: str) -> int:
        return min(r.seq for r in self.runs if r.period == period)

    def final_seq(self, period: str) -> int | None:
        r = self.run.get((period, "FINAL"))
        return r.seq if r else None

    # ---- reference tables -----------------------------------------------------------
    def _tables(self) -> None:
        rng = self.rng
        self.scale: dict[tuple[str, str], tuple[Fraction, Fraction]] = {}
        for grade, (_, steps, base) in GRADES.items():
            pr_factor = Fraction(rng.randint(176, 188), 100)
            for s in range(1, steps + 1):
                net = Fraction(round((base * (1 + 0.027 * (s - 1))) * 100) + rng.randint(0, 99),
                               100)
                pr = round_half_away(net * pr_factor + Fraction(rng.randint(0, 99), 100))
                self.scale[(grade, f"{s:02d}")] = (net, pr)
        self.rates = {k: Fraction(v) for k, v in RATES.items()}
        self.mult = dict(STATIONS)

    def multiplier(self, werks: str, period: str) -> Fraction:
        if werks == "GVA" and period >= self.test:
            return GVA_REVISED
        return self.mult[werks]

    # ---- population -----------------------------------------------------------------
    def new_pernr(self) -> str:
        while True:
            p = f"{self.rng.randint(30_000_000, 79_999_999):08d}"
            if p not in self.used_pernrs:
                self.used_pernrs.add(p)
                return p

    def _entity(self) -> str:
        return self.rng.choices([e[0] for e in ENTITIES], weights=self._ent_w)[0]

    def _grade(self, category: str) -> str:
        gs = [g for g in GRADES if g[0] == category]
        return self.rng.choices(gs, weights=[GRADES[g][0] for g in gs])[0]

    def make_staff(self, hire: date, known: int, massn: str = "01", category: str | None = None,
                   orgeh: str | None = None, history_start: date | None = None) -> Staff:
        rng = self.rng
        if category is None:
            category = rng.choices("PDG", weights=[36, 7, 57])[0]
        st = Staff(self.new_pernr(), category)
        st.orgeh = orgeh or self._entity()
        werks = "GVA" if category == "G" else rng.choices(
            ["GVA", "BON", "NBO"], weights=[84, 9, 7])[0]
        grade = self._grade(category)
        steps = GRADES[grade][1]
        step = rng.randint(1, min(steps, 3 if massn in ("01", "04") and hire.year > 2024
                                  else steps))
        bsgrd = 100 if rng.random() > 0.13 else rng.choice([50, 60, 70, 80, 80, 90])
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        kostl = None if rng.random() < 0.06 else f"{st.orgeh[:3]}{rng.randint(1000, 9999)}"
        st.recs["PA0000"].append(Rec(hire, {"MASSN": massn, "MASSG": rng.choice(
            ["01", "AP", "R1", ""]) or None, "STAT2": "3"}, known))
        st.recs["PA0001"].append(Rec(hire, {"ENAME": name, "WERKS": werks, "PERSG": category,
                                            "ORGEH": st.orgeh, "ABKRS": self.area,
                                            "KOSTL": kostl}, known))
        # a past step increment with its action, if the person has been here long enough
        if history_start is not None and step > 1 and hire < history_start - timedelta(days=400):
            inc = date(history_start.year - 1, rng.randint(1, 12), 1)
            if inc <= hire:
                inc = date(hire.year + 1, hire.month, 1)
            st.recs["PA0008"].append(Rec(hire, {"TRFGR": grade, "TRFST": f"{step - 1:02d}",
                                                "BSGRD": str(bsgrd)}, known))
            st.recs["PA0008"].append(Rec(inc, {"TRFGR": grade, "TRFST": f"{step:02d}",
                                               "BSGRD": str(bsgrd)}, known))
            st.recs["PA0000"].append(Rec(inc, {"MASSN": "03", "MASSG": None, "STAT2": "3"},
                                         known))
        else:
            st.recs["PA0008"].append(Rec(hire, {"TRFGR": grade, "TRFST": f"{step:02d}",
                                                "BSGRD": str(bsgrd)}, known))
        country = "CH" if rng.random() < 0.62 else rng.choice(list(IBAN_FORMATS))
        st.recs["PA0009"].append(Rec(hire, {"BANKS": country, "IBAN": make_iban(rng, country),
                                            "WAERS": "CHF" if category == "G" else "USD"}, known))
        # family (records may start before the hire; births before the first extract)
        ref_year = (history_start or hire).year
        born = ref_year - rng.randint(24, 62)
        latest_birth = first_day(self.history[0]) - timedelta(days=1)
        if rng.random() < (0.45 if category != "G" else 0.35):
            wed = date(rng.randint(min(2025, max(1985, born + 20)), 2025), rng.randint(1, 12),
                       rng.randint(1, 28))
            dep = "X" if rng.random() < 0.75 else None
            st.family["01"] = [Rec(wed, {"FAMSA": "1", "FGBDT": ymd(date(
                born + rng.randint(-4, 4), rng.randint(1, 12), rng.randint(1, 28))),
                "DEPENDENT": dep}, known)]
        lo = date(max(1990, born + 22), 1, 1)
        if rng.random() < 0.58 and lo < latest_birth:
            for c in range(min(5, 1 + int(rng.expovariate(0.9)))):
                b = date.fromordinal(rng.randint(lo.toordinal(), latest_birth.toordinal()))
                dep = None if rng.random() < 0.07 else "X"
                st.family[f"{10 + c:02d}"] = [Rec(b, {"FAMSA": "2", "FGBDT": ymd(b),
                                                       "DEPENDENT": dep}, known)]
        # habits
        if category == "G":
            p = self._ent_ot[st.orgeh]
            st.ot_prob = min(0.9, p * rng.uniform(0.3, 1.8))
            if rng.random() < 0.25 * (1 + p):  # regular claimers
                st.ot_prob = rng.uniform(0.6, 0.95)
            st.ot_usual = max(1.0, min(30.0, rng.lognormvariate(math.log(5.0), 0.6)))
            if rng.random() < 0.22:
                st.language = round_half_away(Fraction(rng.choice([2920, 3150, 5840, 6300]), 12))
        if rng.random() < 0.045:
            monthly = self.scale[(grade, f"{step:02d}")][0] / 12
            st.spa.append((None, None, round_half_away(monthly * Fraction(rng.randint(4, 16),
                                                                          100))))
        if rng.random() < 0.05:
            st.other_ded = Fraction(rng.choice([150, 200, 250, 400, 550, 725, 980]))
        self.staff.append(st)
        self.by_pernr[st.pernr] = st
        return st

    def build(self) -> None:
        rng = self.rng
        self._ent_w = [e[1] for e in ENTITIES]
        gam = [rng.gammavariate(w * 3, 1) for w in self._ent_w]
        self._ent_w = gam
        self._ent_ot = {e[0]: e[2] for e in ENTITIES}
        start = first_day(self.history[0])
        for _ in range(self.n):
            hire = start - timedelta(days=rng.randint(90, 9000))
            self.make_staff(hire, 0, history_start=start)
        for i, p in enumerate(self.history):
            self._history_month(p, i)
        self._test_month()

    # ---- master-data events ----------------------------------------------------------
    def active_on(self, st: Staff, day: date, seq: int) -> bool:
        d = valid(st.segments("PA0000", seq), day)
        return d is not None and d["STAT2"] == "3"

    def active_month(self, st: Staff, period: str, seq: int) -> bool:
        segs = st.segments("PA0000", seq)
        for day in (first_day(period), last_day(period)):
            d = valid(segs, day)
            if d is None or d["STAT2"] != "3":
                return False
        return all(b <= first_day(period) or b > last_day(period) for b, _, _ in segs)

    def current(self, st: Staff, infotype: str, day: date, seq: int) -> dict:
        return valid(st.segments(infotype, seq), day)

    def action(self, st: Staff, day: date, massn: str, stat2: str, known: int, massg=None):
        st.recs["PA0000"].append(Rec(day, {"MASSN": massn, "MASSG": massg, "STAT2": stat2},
                                     known))

    def pay_change(self, st: Staff, day: date, known: int, **changes) -> dict:
        old = self.current(st, "PA0008", day, NEVER - 1)
        new = dict(old, **changes)
        st.recs["PA0008"].append(Rec(day, new, known))
        return new

    def step_up(self, st: Staff, day: date, known: int, action: bool = True) -> bool:
        old = self.current(st, "PA0008", day, NEVER - 1)
        if old is None:  # not yet hired on that day
            return False
        steps = GRADES[old["TRFGR"]][1]
        s = int(old["TRFST"])
        if s >= steps:
            return False
        self.pay_change(st, day, known, TRFST=f"{s + 1:02d}")
        if action:
            self.action(st, day, "03", "3", known)
        return True

    def promote(self, st: Staff, day: date, known: int) -> bool:
        old = self.current(st, "PA0008", day, NEVER - 1)
        order = [g for g in GRADES if g[0] == old["TRFGR"][0]]
        i = order.index(old["TRFGR"])
        if i + 1 >= len(order) or old["TRFGR"] in ("P-5",):
            return False
        new_grade = order[i + 1]
        cur = self.scale[(old["TRFGR"], old["TRFST"])][0]
        step = next((f"{s:02d}" for s in range(1, GRADES[new_grade][1] + 1)
                     if self.scale[(new_grade, f"{s:02d}")][0] > cur), None)
        if step is None:
            return False
        self.pay_change(st, day, known, TRFGR=new_grade, TRFST=step)
        self.action(st, day, "02", "3", known)
        return True

    def separate(self, st: Staff, last_working: date, known: int) -> None:
        self.action(st, last_working + timedelta(days=1), "05", "0", known)

    def eligible(self, period: str, seq: int, used: set, pred=None) -> list[Staff]:
        out = []
        for st in self.staff:
            if st.pernr in used or not self.active_month(st, period, seq):
                continue
            if pred is None or pred(st):
                out.append(st)
        return out

    def take(self, pool: list[Staff], n: int, used: set) -> list[Staff]:
        pool = [s for s in pool if s.pernr not in used]
        got = self.rng.sample(pool, min(n, len(pool)))
        used.update(s.pernr for s in got)
        return got

    def _overtime_month(self, period: str, peak: str | None, skip: set) -> None:
        rng = self.rng
        for st in self.staff:
            if st.category != "G" or st.pernr in skip:
                continue
            if st.orgeh == peak and rng.random() < 0.85:
                hours = rng.uniform(22, 68) if rng.random() > 0.08 else st.ot_usual
            elif rng.random() < st.ot_prob:
                hours = st.ot_usual * rng.lognormvariate(0, 0.35)
            else:
                continue
            h = Fraction(max(1, round(hours * 2)), 2)
            self.overtime[(st.pernr, period)] = h

    def _advance_amount(self, st: Staff) -> Fraction:
        return Fraction(self.rng.choice([500, 800, 1000, 1200, 1500, 2000, 2500, 3000, 4000]))

    def _schedule_recovery(self, st: Staff, amount: Fraction, period: str) -> None:
        n = self.rng.choice([2, 3, 4, 5, 6])
        inst = round_half_away(amount / n)
        left = amount
        for i in range(n):
            p = padd(period, i + 1)
            a = inst if i < n - 1 else left
            st.recovery[p] = st.recovery.get(p, Fraction(0)) + a
            left -= a

    def _history_month(self, p: str, i: int) -> None:
        rng = self.rng
        first, seq_first, fin = first_day(p), self.first_seq(p), self.final_seq(p)
        used: set = set()
        n = self.n
        if i > 0:
            for st in self.take(self.eligible(p, seq_first, used), int(n * 0.03), used):
                self.step_up(st, first, seq_first)
            for _ in range(int(n * 0.01)):
                day = first + timedelta(days=rng.randint(1, 24))
                self.make_staff(day, seq_first, massn=rng.choice(["01", "01", "04"]),
                                history_start=first)
            for st in self.take(self.eligible(p, seq_first, used), int(n * 0.01), used):
                self.separate(st, first + timedelta(days=rng.randint(3, 29)), seq_first)
        if i == len(self.history) - 2:  # SLWOP starting in this month, returning in T
            for st in self.take(self.eligible(p, seq_first, used), max(2, n // 400), used):
                self.action(st, first + timedelta(days=rng.randint(5, 20)), "06", "1", fin)
                self.action(st, first_day(self.test) + timedelta(days=rng.randint(3, 20)),
                            "07", "3", fin)
                self.events["slwop_return"] = self.events.get("slwop_return", 0) + 1
                self.legit.setdefault(st.pernr, []).append("slwop_return")
        peak = PEAK_ENTITY_HISTORY if i == len(self.history) - 2 else None
        self._overtime_month(p, peak, set())
        if i > 0:  # off-cycle advances
            oc = self.seq(p, "OC1")
            pays = []
            for st in self.take(self.eligible(p, oc, used), max(4, int(n * 0.02)), used):
                a = self._advance_amount(st)
                pays.append((st.pernr, a))
                self._schedule_recovery(st, a, p)
            self.advances[oc] = pays

    # ---- the test month --------------------------------------------------------------
    def _test_month(self) -> None:
        rng, n, t = self.rng, self.n, self.test
        prev = padd(t, -1)
        first, last = first_day(t), last_day(t)
        s1, oc1, s2, oc2, fin = (self.seq(t, x) for x in ("SIM1", "OC1", "SIM2", "OC2", "FINAL"))
        prev_fin = self.final_seq(prev)
        used: set = set()

        def ev(kind, k=1, st=None):
            self.events[kind] = self.events.get(kind, 0) + k
            if st is not None:
                self.legit.setdefault(st.pernr, []).append(kind)

        def active_all(st):  # active the whole test month and the month before, by base data
            return self.active_month(st, prev, s1)

        # errors are drawn first, among staff with a quiet month
        pool = [st for st in self.eligible(t, s1, used, active_all)
                if not any(r.known > 0 for it in st.recs.values() for r in it)]
        recovering = {st.pernr for st in pool if t in st.recovery}
        k = self.per_kind

        def err(kind, sts, **data):
            for st in sts:
                self.errors[st.pernr] = kind
                self.error_data[st.pernr] = data

        quiet = [st for st in pool if st.pernr not in recovering]
        err("pay_after_separation", self.take(quiet, k, used))
        for st in [s for s in self.staff if self.errors.get(s.pernr) == "pay_after_separation"]:
            self.separate(st, last_day(prev), prev_fin)
        for st in self.take(quiet, k, used):
            self.separate(st, first_day(prev) + timedelta(days=rng.randint(5, 25)), prev_fin)
            err("offcycle_pay_after_separation", [st], amount=self._advance_amount(st))
        for st in self.take(quiet, k, used):
            self.action(st, first, "06", "1", s1)
            self.action(st, first_day(padd(t, 3)), "07", "3", s1)
            err("paid_during_slwop", [st])
        # overtime outlier: a regular small claimer outside the peaking entity
        def small_claimer(st):
            if st.category != "G" or st.orgeh == PEAK_ENTITY_TEST or not 2.0 <= st.ot_usual <= 6:
                return False
            return sum((st.pernr, p) in self.overtime for p in self.history) >= 2
        for st in self.take([s for s in quiet if small_claimer(s)], k, used):
            err("overtime_outlier", [st], ratio=rng.uniform(8, 12))
        for st in self.take(quiet, k, used):
            err("duplicate_advance", [st], amount=self._advance_amount(st))
        for st in self.take([s for s in quiet if not s.recovery], k, used):
            err("recovery_without_advance", [st], amount=Fraction(rng.choice(
                [250, 400, 500, 750, 1000])))
        rec_pool = [st for st in pool if t in st.recovery]
        for st in self.take(rec_pool, k, used):
            before = sum((a for p, a in st.recovery.items() if p < t), Fraction(0))
            total = sum(st.recovery.values(), Fraction(0))
            balance = total - before
            err("recovery_above_balance", [st], amount=balance + round_half_away(
                total * Fraction(rng.randint(50, 100), 100)))
        for st in self.take(quiet, k, used):
            for r in st.recs["PA0009"]:
                r.gone = s1
            err("bank_deleted", [st])
        for st in self.take(quiet, k, used):
            old = self.current(st, "PA0009", first, NEVER - 1)
            st.recs["PA0009"].append(Rec(first, dict(old, IBAN=corrupt_iban(rng, make_iban(
                rng, old["BANKS"]))), s1))
            err("invalid_iban", [st])
        pairs = self.take(quiet, 2 * k, used)
        for a, b in zip(pairs[::2], pairs[1::2]):
            acct = self.current(a, "PA0009", first, NEVER - 1)
            old = self.current(b, "PA0009", first, NEVER - 1)
            b.recs["PA0009"].append(Rec(first, dict(old, BANKS=acct["BANKS"], IBAN=acct["IBAN"]),
                                        s1))
            err("shared_iban", [b], partner=a.pernr)
            self.involved.add(a.pernr)  # the account's holder: not at fault, not clean either
        err("active_not_paid", self.take(quiet, k, used))
        for st in self.take([s for s in quiet if not s.spa], k, used):
            monthly = self._monthly_net(st, t)
            err("new_allowance_no_action", [st], amount=round_half_away(
                monthly * Fraction(rng.randint(8, 15), 100)))
        for st in self.take(quiet, k, used):
            if not self.step_up(st, first, s1, action=False):
                self.pay_change(st, first, s1, TRFST=f"{int(self.current(st, 'PA0008', first, s1)['TRFST']) - 1:02d}")
            err("grade_change_no_action", [st])
        err("missing_pension", self.take(quiet, k, used))
        aged = [s for s in quiet if self._children(s, first, s1, aged_out=True)]
        got = self.take(aged, k, used)
        got += self.take(quiet, k - len(got), used)
        err("wrong_child_allowance", got)
        err("duplicate_line", self.take(quiet, k, used))
        err("retro_without_change", self.take(quiet, k, used), share=rng.randint(5, 20))
        err("part_time_ignored", self.take(
            [s for s in quiet if self.current(s, "PA0008", first, s1)["BSGRD"] != "100"], k,
            used))
        hires = []
        for _ in range(k):
            st = self.make_staff(first + timedelta(days=rng.randint(4, 20)), s1,
                                 history_start=first)
            used.add(st.pernr)
            st.spa, st.language, st.other_ded = [], None, None
            hires.append(st)
        err("hire_paid_full_month", hires)

        # ---- legitimate events (they outnumber the errors) ----
        free = lambda: self.eligible(t, s1, used)  # noqa: E731
        for st in self.take(free(), int(n * 0.04), used):
            if self.step_up(st, first, s1 if rng.random() < 0.75 else s2):
                ev("step_increment", st=st)
        for st in self.take(free(), int(n * 0.007), used):
            if self.promote(st, first, s1):
                ev("promotion", st=st)
        for st in self.take(self.eligible(t, s1, used, active_all), max(2, int(n * 0.008)),
                            used):
            back = rng.choice([1, 1, 2])
            if self.step_up(st, first_day(padd(t, -back)), s1 if rng.random() < 0.7 else s2):
                ev("late_step_increment_retro", st=st)
        for st in self.take(self.eligible(t, s1, used, active_all), max(2, int(n * 0.004)),
                            used):
            born = first_day(padd(t, -2)) + timedelta(days=rng.randint(3, 25))
            objps = f"{20 + len(st.family):02d}"
            st.family[objps] = [Rec(born, {"FAMSA": "2", "FGBDT": ymd(born), "DEPENDENT": "X"},
                                    s1)]
            self.action(st, born, "08", "3", s1)
            ev("late_birth_retro", st=st)
        for _ in range(int(n * 0.015)):
            r = rng.random()
            known = s1 if r < 0.7 else (s2 if r < 0.9 else fin)
            st = self.make_staff(first + timedelta(days=rng.randint(1, 25)), known,
                                 massn=rng.choice(["01", "01", "01", "04"]), history_start=first)
            used.add(st.pernr)
            ev("hire", st=st)
        for st in self.take(free(), int(n * 0.015), used):
            lw = rng.choice([last, first + timedelta(days=rng.randint(4, 28))])
            self.separate(st, lw, s1 if rng.random() < 0.8 else s2)
            ev("separation", st=st)
        for st in self.take(free(), max(2, int(n * 0.005)), used):
            self.action(st, first + timedelta(days=rng.randint(3, 25)), "06", "1", s1)
            self.action(st, first_day(padd(t, 3)), "07", "3", s1)
            ev("slwop_start", st=st)
        for st in self.take(free(), int(n * 0.02), used):
            old = self.current(st, "PA0009", first, s1)
            day, known = (first, s1) if rng.random() < 0.6 else (first + timedelta(days=15), s2)
            country = rng.choice(["CH", "CH", old["BANKS"], "FR", "DE"])
            st.recs["PA0009"].append(Rec(day, dict(old, BANKS=country,
                                                   IBAN=make_iban(rng, country)), known))
            ev("bank_change", st=st)
        for st in self.take([s for s in free() if not s.spa], max(2, int(n * 0.004)), used):
            self.action(st, first, "09", "3", s1, massg="SP")
            st.spa.append((t, None, round_half_away(self._monthly_net(st, t) * Fraction(
                rng.randint(5, 15), 100))))
            ev("new_allowance_with_action", st=st)
        for st in self.take([s for s in free() if s.category != "D"], max(2, int(n * 0.003)),
                            used):
            cur = self.current(st, "PA0008", first, s1)
            self.pay_change(st, first, s1, BSGRD="80" if cur["BSGRD"] == "100" else "100")
            ev("part_time_change", st=st)
        # overtime: a session month for the peaking entity; some claims entered after SIM1
        skip = {p for p, kind in self.errors.items() if kind == "overtime_outlier"}
        self._overtime_month(t, PEAK_ENTITY_TEST, skip)
        ev("overtime_peak_claims", sum(1 for (p, per), _ in self.overtime.items()
                                       if per == t and self.by_pernr[p].orgeh == PEAK_ENTITY_TEST))
        claims = [key for key in self.overtime if key[1] == t]
        for key in claims:
            if rng.random() < 0.2:
                self.ot_late.add(key)
        legit_max = max((h for (p, per), h in self.overtime.items() if per == t), default=40)
        for pernr, kind in self.errors.items():
            if kind == "overtime_outlier":
                st = self.by_pernr[pernr]
                h = Fraction(round(st.ot_usual * self.error_data[pernr]["ratio"] * 2), 2)
                self.overtime[(pernr, t)] = min(h, legit_max * Fraction(9, 10))
                self.error_data[pernr]["hours"] = self.overtime[(pernr, t)]
        # advances in the month's off-cycle runs
        adv_pool = [s for s in free() if s.pernr not in self.errors]
        oc1_pay = [(s.pernr, self._advance_amount(s)) for s in self.take(
            adv_pool, max(3, int(n * 0.012)), used)]
        oc2_pay = [(s.pernr, self._advance_amount(s)) for s in self.take(
            adv_pool, max(3, int(n * 0.008)), used)]
        ev("advance_offcycle", len(oc1_pay) + len(oc2_pay))
        for pernr, _ in oc1_pay + oc2_pay:
            self.legit.setdefault(pernr, []).append("advance_offcycle")
        ev("recovery_ongoing", sum(1 for s in self.staff if t in s.recovery
                                   and s.pernr not in self.errors))
        for pernr, kind in self.errors.items():
            if kind == "duplicate_advance":
                a = self.error_data[pernr]["amount"]
                oc1_pay.append((pernr, a))
                oc2_pay.append((pernr, a))
            elif kind == "offcycle_pay_after_separation":
                oc1_pay.append((pernr, self.error_data[pernr]["amount"]))
        self.advances[oc1], self.advances[oc2] = oc1_pay, oc2_pay
        # truth
        regular = [r for r in self.runs if r.period == t and r.regular]
        for pernr, kind in sorted(self.errors.items()):
            if kind == "duplicate_advance":
                self.truth.append((self.run[(t, "OC2")].run_id, pernr, kind))
            elif kind == "offcycle_pay_after_separation":
                self.truth.append((self.run[(t, "OC1")].run_id, pernr, kind))
            else:
                for r in regular:
                    self.truth.append((r.run_id, pernr, kind))

    def _monthly_net(self, st: Staff, period: str) -> Fraction:
        pa8 = self.current(st, "PA0008", first_day(period), NEVER - 1)
        return self.scale[(pa8["TRFGR"], pa8["TRFST"])][0] / 12

    def _children(self, st: Staff, day: date, seq: int, aged_out: bool = False) -> int:
        n = 0
        limit = int(self.rates["CHILD_AGE_LIMIT"])
        for objps, b, e, d in st.family_segments(seq):
            if d["FAMSA"] == "2" and d["DEPENDENT"] == "X" and b <= day <= e:
                old = age_in_years(d["FGBDT"], ymd(day)) >= limit
                if old == aged_out:
                    n += 1
        return n

    # ---- pay -------------------------------------------------------------------------
    def facts(self, st: Staff, period: str, seq: int, force_active: bool = False):
        first, last = first_day(period), last_day(period)
        ndays = (last - first).days + 1
        segs = st.segments("PA0000", seq)
        active_days = []
        for i in range(ndays):
            day = first + timedelta(days=i)
            d = valid(segs, day)
            if force_active or (d is not None and d["STAT2"] == "3"):
                active_days.append(day)
        if not active_days:
            return None
        pa8 = st.segments("PA0008", seq)
        ref = first if valid(pa8, first) is not None else active_days[0]
        b8 = valid(pa8, ref)
        b1 = valid(st.segments("PA0001", seq), ref)
        if b8 is None or b1 is None:
            return None
        spouse = any(d["FAMSA"] == "1" and d["DEPENDENT"] == "X" and b <= ref <= e
                     for _, b, e, d in st.family_segments(seq))
        return {"days": len(active_days), "ndays": ndays, "ref": ref, "b8": b8, "b1": b1,
                "spouse": spouse, "children": self._children(st, ref, seq)}

    def model(self, f: dict, period: str, *, hours=None, bsgrd=None, children=None,
              full=False) -> dict[str, Fraction]:
        b8, b1 = f["b8"], f["b1"]
        net, pr = self.scale[(b8["TRFGR"], b8["TRFST"])]
        cat = b1["PERSG"]
        ctx = StaffMonth(
            category=cat, active_days=f["ndays"] if full else f["days"], days_in_month=f["ndays"],
            annual_net=net, annual_pr=pr, bsgrd=Fraction(bsgrd or b8["BSGRD"]), rates=self.rates,
            multiplier=self.multiplier(b1["WERKS"], period) if cat in "PD" else None,
            spouse=f["spouse"], children=f["children"] if children is None else children,
            overtime_hours=hours)
        return expected_lines(ctx)

    def regular_lines(self, st: Staff, run: RunSpec) -> list[list]:
        p, seq = run.period, run.seq
        kind = self.errors.get(st.pernr) if p == self.test else None
        if kind == "active_not_paid":
            return []
        f = self.facts(st, p, seq, force_active=kind in ("pay_after_separation",
                                                          "paid_during_slwop"))
        if f is None:
            return []
        frac = Fraction(f["days"], f["ndays"]) if kind != "hire_paid_full_month" else 1
        hours = self.overtime.get((st.pernr, p))
        if run.run_type == "SIM1" and (st.pernr, p) in self.ot_late:
            hours = None
        kw = {}
        if kind == "part_time_ignored":
            kw["bsgrd"] = 100
        if kind == "wrong_child_allowance":
            kw["children"] = f["children"] + 1
        lines = self.model(f, p, hours=hours, full=kind == "hire_paid_full_month", **kw)
        out = []
        for lgart in ("1000", "1010", "1100", "1110", "1400"):
            if lgart in lines:
                out.append([lgart, p, lines[lgart], hours if lgart == "1400" else None])
        spa = sum((a for (a_from, a_to, a) in st.spa if (a_from is None or a_from <= p)
                   and (a_to is None or p <= a_to)), Fraction(0))
        if kind == "new_allowance_no_action":
            spa += self.error_data[st.pernr]["amount"]
        if spa:
            out.append(["1500", p, round_half_away(spa * frac), None])
        if st.language:
            out.append(["1520", p, round_half_away(st.language * frac), None])
        for lgart in ("3000", "3100"):
            if lgart in lines and not (lgart == "3000" and kind == "missing_pension"):
                out.append([lgart, p, lines[lgart], None])
        rec = st.recovery.get(p)
        if kind in ("recovery_without_advance", "recovery_above_balance"):
            rec = self.error_data[st.pernr]["amount"]
        if rec:
            out.append(["3200", p, -rec, None])
        if st.other_ded:
            out.append(["3300", p, -st.other_ded, None])
        # retroactive lines for master data entered after the FINAL of its month
        out += self.retro_lines(st, p, seq)
        if kind == "retro_without_change":
            amount = round_half_away(lines["1000"] * Fraction(
                self.error_data[st.pernr]["share"], 100))
            out.append(["1000", padd(p, -1), amount, None])
        if kind == "duplicate_line":
            out.append(list(next(x for x in out if x[0] == "1000")))
        return out

    def retro_lines(self, st: Staff, p: str, seq: int) -> list[list]:
        earliest = None
        for recs in list(st.recs.values()) + list(st.family.values()):
            for r in recs:
                if not (r.known <= seq < r.gone):
                    continue
                m = period_of(r.begda)
                fs = self.final_seq(m)
                if m < p and fs is not None and r.known > fs:
                    earliest = m if earliest is None else min(earliest, m)
        if earliest is None:
            return []
        out = []
        m = max(earliest, padd(p, -12))
        while m < p:
            if self.final_seq(m) is not None:
                f = self.facts(st, m, seq)
                now = self.model(f, m) if f is not None else {}
                for lgart in ("1000", "1010", "1100", "1110", "3000", "3100"):
                    diff = now.get(lgart, Fraction(0)) - self.paid.get(
                        (st.pernr, m, lgart), Fraction(0))
                    if diff != 0:
                        out.append([lgart, m, diff, None])
            m = padd(m, 1)
        return out

    # ---- writing ---------------------------------------------------------------------
    def write(self, out: Path) -> list[RunSpec]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        os.chmod(out, 0o700)
        for run in self.runs:
            self._write_run(out, run)
        (out / "runs.txt").write_text("".join(r.folder + "\n" for r in self.runs),
                                      encoding="utf-8")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["run_id", "PERNR", "error_type"])
        w.writerows(sorted(self.truth))
        (out / "truth.csv").write_text(buf.getvalue(), encoding="utf-8")
        events = {"legitimate_events": self.events,
                  "errors": {k: sum(1 for v in self.errors.values() if v == k)
                             for k in ERROR_KINDS},
                  "involved": sorted(self.involved), "staff": self.n, "months": self.k, "seed": self.seed, "test_period": self.test}
        (out / "events.json").write_text(json.dumps(events, indent=1, default=str),
                                         encoding="utf-8")
        for fpath in out.rglob("*"):
            os.chmod(fpath, 0o700 if fpath.is_dir() else 0o600)
        return self.runs

    def _rt_rows(self, run: RunSpec) -> list[dict]:
        rng = self.rng
        rows = []
        if run.regular:
            payees = []
            for st in self.staff:
                lines = self.regular_lines(st, run)
                if lines:
                    payees.append((st, lines))
        else:
            payees = []
            for pernr, amount in self.advances.get(run.seq, []):
                payees.append((self.by_pernr[pernr], [["2000", run.period, amount, None]]))
        for st, lines in payees:
            earn = sum((a for lg, _, a, _ in lines if CLASS[lg] == "EARNING"), Fraction(0))
            ded = sum((a for lg, _, a, _ in lines if CLASS[lg] == "DEDUCTION"), Fraction(0))
            cur = "CHF" if st.category == "G" else "USD"  # category never changes here
            lines = lines + [["/101", run.period, earn, None], ["/550", run.period, earn + ded,
                                                                None],
                             ["/560", run.period, earn + ded, None]]
            for lg, fpper, amount, hours in lines:
                if amount == 0 and not lg.startswith("/"):
                    continue
                rows.append({"PERNR": st.pernr, "SEQNR": str(rng.randint(1, 99999)),
                             "FPPER": fpper, "INPER": run.period, "LGART": lg,
                             "BETRG": fmt(amount), "WAERS": cur,
                             "ANZHL": None if hours is None else _num(hours)})
                if run.run_type == "FINAL" and not lg.startswith("/"):
                    key = (st.pernr, fpper, lg)
                    self.paid[key] = self.paid.get(key, Fraction(0)) + amount
        return rows

    def _write_run(self, out: Path, run: RunSpec) -> None:
        folder = out / run.folder
        folder.mkdir(parents=True, exist_ok=True)
        seq = run.seq
        present = [st for st in self.staff if st.segments("PA0000", seq)]
        files: dict[str, bytes] = {}
        p0, p1, p8, p9, p21 = [], [], [], [], []
        for st in present:
            for b, e, d in st.segments("PA0000", seq):
                p0.append({"PERNR": st.pernr, "BEGDA": ymd(b), "ENDDA": ymd(e), **d})
            for b, e, d in st.segments("PA0001", seq):
                p1.append({"PERNR": st.pernr, "BEGDA": ymd(b), "ENDDA": ymd(e), **d})
            for b, e, d in st.segments("PA0008", seq):
                p8.append({"PERNR": st.pernr, "BEGDA": ymd(b), "ENDDA": ymd(e), **d})
            for b, e, d in st.segments("PA0009", seq):
                p9.append({"PERNR": st.pernr, "BEGDA": ymd(b), "ENDDA": ymd(e), **d})
            for objps, b, e, d in st.family_segments(seq):
                p21.append({"PERNR": st.pernr, "OBJPS": objps, "BEGDA": ymd(b), "ENDDA": ymd(e),
                            **d})
        aedtm = run.extracted[:10].replace("-", "")
        for rows in (p0, p1, p8, p9, p21):
            for r in rows:
                r["MANDT"] = "300"
                r["AEDTM"] = aedtm
        files["PA0000.csv"] = _csv(["MANDT", "PERNR", "MASSN", "MASSG", "STAT2", "BEGDA", "ENDDA",
                                    "AEDTM"], p0, crlf=True)
        files["PA0001.csv"] = _csv(["PERNR", "ENDDA", "BEGDA", "ABKRS", "WERKS", "ORGEH", "PERSG",
                                    "KOSTL", "ENAME", "MANDT", "AEDTM"], p1, crlf=True, bom=True)
        files["PA0008.csv"] = _csv(["PERNR", "BEGDA", "ENDDA", "BSGRD", "TRFGR", "TRFST",
                                    "MANDT"], p8, crlf=True)
        files["PA0009.csv"] = _csv(["PERNR", "BEGDA", "ENDDA", "WAERS", "BANKS", "IBAN", "AEDTM"],
                                   p9, crlf=True)
        files["PA0021.csv"] = _csv(["PERNR", "FAMSA", "OBJPS", "BEGDA", "ENDDA", "FGBDT",
                                    "DEPENDENT", "MANDT"], p21, crlf=True)
        rt = self._rt_rows(run)
        for r in rt:
            r["BUKRS"] = "UN01"
        files["RT.csv"] = _csv(["INPER", "FPPER", "PERNR", "LGART", "SEQNR", "BETRG", "WAERS",
                                "ANZHL", "BUKRS"], rt)
        t510 = [{"TRFGR": g, "TRFST": s, "BEGDA": "20250101", "ENDDA": "99991231",
                 "ANNUAL_NET": fmt(net), "ANNUAL_PR": fmt(pr),
                 "WAERS": "CHF" if g[0] == "G" else "USD"}
                for (g, s), (net, pr) in sorted(self.scale.items())]
        files["T510.csv"] = _csv(["TRFGR", "TRFST", "BEGDA", "ENDDA", "ANNUAL_NET", "ANNUAL_PR",
                                  "WAERS"], t510)
        end_old = ymd(last_day(padd(self.test, -1)))
        t7 = [{"WERKS": "GVA", "BEGDA": "20250101", "ENDDA": end_old,
               "MULTIPLIER": _num(self.mult["GVA"])},
              {"WERKS": "GVA", "BEGDA": ymd(first_day(self.test)), "ENDDA": "99991231",
               "MULTIPLIER": _num(GVA_REVISED)}]
        t7 += [{"WERKS": w, "BEGDA": "20250101", "ENDDA": "99991231", "MULTIPLIER": _num(m)}
               for w, m in self.mult.items() if w != "GVA"]
        files["T7UNPA.csv"] = _csv(["WERKS", "BEGDA", "ENDDA", "MULTIPLIER"], t7)
        files["T512W.csv"] = _csv(["LGART", "LGTXT", "CLASS", "RUN_TYPES", "OWNER"],
                                  [dict(zip(["LGART", "LGTXT", "CLASS", "RUN_TYPES", "OWNER"], r))
                                   for r in T512W])
        files["T7UNRATE.csv"] = _csv(["KEY", "VALUE", "BEGDA", "ENDDA"], [
            {"KEY": k, "VALUE": v, "BEGDA": "20170101", "ENDDA": "99991231"}
            for k, v in RATES.items()])
        manifest_files = {}
        for name, data in sorted(files.items()):
            (folder / name).write_bytes(data)
            manifest_files[name] = {"rows": _count_records(data),
                                    "sha256": hashlib.sha256(data).hexdigest()}
        manifest = {"format_version": "1.0", "run_id": run.run_id, "payroll_area": self.area,
                    "period": run.period, "run_type": run.run_type, "pay_date": run.pay_date,
                    "extracted_at": run.extracted, "files": manifest_files}
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _num(x) -> str:
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    s = f"{float(x):.6f}".rstrip("0")
    return s


def _csv(header: list[str], rows: list[dict], crlf: bool = False, bom: bool = False) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r[c] for c in header])
    data = buf.getvalue().encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


def _count_records(data: bytes) -> int:
    text = data.decode("utf-8-sig")
    return sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1


def write_area(out_dir, staff: int = 3000, months: int = 4, seed: int = 1,
               test_period: str = "202609") -> ForeignArea:
    """Write a foreign payroll area into ``out_dir`` (module docstring); returns the writer
    (its ``runs``, ``truth``, ``errors`` and ``events`` describe what was written)."""
    area = ForeignArea(staff, months, seed, test_period=test_period)
    area.build()
    area.write(Path(out_dir))
    return area
