"""A small, consistent payroll world for detector tests (sqlfluff-style case files).

The world is one payroll area (GV, Geneva) whose run under test is the March 2025
simulation `GV-202503-SIM1`, with three earlier FINAL months (December 2024 - February
2025) as history. Every pay line, current and historical, is computed with
`detectors.paymodel`, so the clean world is correct by construction and each case file
(tests/cases/PWnnn.toml) only says what it changes.

Named staff (use the alias or the PERNR in case files):

| alias  | PERNR    | who |
|--------|----------|-----|
| P3     | 10000001 | P-3 step 05 (worked example 1 scale: 80,000 / 150,000 USD), full time since 2020; dependent spouse; two dependent children, one born 2006 (over 18, so no allowance) and one born 2015; other deduction 3300 of 500.00 a month |
| G4     | 10000002 | G-4 step 03 (example 2 scale: 50,002 / 91,003 CHF), part time 80 %; 12.5 overtime hours every month; special post allowance 1500 of 350.00 a month; one child |
| D1     | 10000003 | D-1 step 01, hired on 10 March 2025 (22 of 31 days, first pay); spouse not dependent |
| LEAVER | 10000004 | P-2 step 04 since 2018, separated from 16 March 2025 (paid 15/31); other deduction 150.00 a month, prorated |
| SLWOP  | 10000005 | G-6 step 02, on special leave without pay 1 March - 31 May 2025: no lines in March |
| DRIVER | 10000006 | G-3 step 05, full time, 36 overtime hours every month (habitually far above peers) |

plus 70 "peers" (PERNR 2000nnnn: P, D and G staff of several grades, some part time, with
families, overtime, special post allowances and other deductions) so that the history has
enough staff-runs for the models (PW202 needs 200). Peers' overtime hours repeat every three
months, so March equals December.

Reference tables: T510 rows for the grades used (valid from 2024), post adjustment GVA 80.4
until 31 December 2024 and 81.7 from 1 January 2025, the rates of docs/extract-format.md
(CHILD_ANNUAL_CHF 4200), and T512W with the catalogue of docs/extract-format.md.

Case vocabulary (keys of one `[[case]]` table; every modification takes one inline table or a
list of them; `pernr` may be an alias; dates `YYYYMMDD`; amounts `"123.45"` in the pay currency):

* `name`, `description` — what the case is about.
* `staff` — the alias the plain categories of `expect` refer to.
* `expect` — findings the detector must return, over all staff: `"category"` (for `staff`)
  or `"ALIAS:category"`; `[]` means the detector must raise nothing.
* `params` — overrides of the detector's configuration (rarely needed).

Master data (PA infotypes); `entered = "before"` puts a change in the world before the
earlier FINALs (so history already knew it); the default `"late"` means it was entered after
the last FINAL (only this run's extract carries it, which is what retroactive pay is about):
* `add_record = {infotype, pernr, valid_from, valid_to?, <fields>}` — a new record; missing
  fields are copied from the staff member's latest record of that infotype (`family`: of the
  same `member_id`).
* `set_record = {infotype, pernr, valid_from, member_id?, set = {<fields>}}` — change fields
  (including `valid_from`/`valid_to`) of the record starting on `valid_from`.
* `drop_record = {infotype, pernr, valid_from, member_id?}`.
* `status = {pernr, action, from, to?}` — PA0000 action `action` (05 separation: STAT2 0,
  06 SLWOP: STAT2 1, otherwise 3) from `from` to `to` (default open-ended); records it
  overlaps are cut, a record spanning it keeps its tail after `to`.
* `change_pay = {pernr, effective, grade?, step?, employment_pct?, action?}` — a new PA0008
  record from `effective` (the covering record is delimited the day before) and, unless
  `action = ""`, the PA0000 action (default 02 when the grade changes, else 03) the same day.
* `change_bank = {pernr, from, iban, currency?, bank_country?}` — a new PA0009 record.

Pay (how the run under test computed the month):
* `recompute = true` — the payroll took the changed master data into account (current lines
  from the extract's master data, and the correct retroactive lines for the history months);
  without it the lines are those of the master data before the late changes (the payroll
  ignored them). `retro = false` (with `recompute`) leaves the retroactive lines out.
* `set_pay = {pernr, overtime_hours?, special_post?, other_deduction?}` — this month's
  variable inputs (hours; monthly amounts before proration; `other_deduction` as a positive
  amount, written negative); lines are computed correctly from them.

Lines of the run (after the pay is computed; `for_period` defaults to the run's period):
* `set_line = {pernr, wage_type, for_period?, amount?, quantity?, currency?}`
* `drop_line = {pernr, wage_type, for_period?}`
* `add_line = {pernr, wage_type, amount, for_period?, quantity?, currency?}`
* `duplicate_line = {pernr, wage_type, for_period?}`
* `set_total = {pernr, wage_type, amount}` — like `set_line`, for /101, /550, /560.
  Totals are rebuilt from the lines after every non-total modification, then modifications
  of total lines (any of the above with a `/` wage type) are applied; `keep_totals = true`
  keeps the totals as computed before the line modifications.

Run:
* `run_type = "OFFCYCLE"` (or SIM2, FINAL, ...) and `clear_lines = true` (start from no lines,
  e.g. an off-cycle run holding only what `add_line` adds).
* `pay_date = "YYYYMMDD"` (default 20250325).
* `no_history = true` — the run is the first in the warehouse (empty history).
* `earlier_run = true` — a SIM1 of the run's own month, computed as usual (no case change),
  came before it (`History.period_lines`); give the run `run_type = "SIM2"`. A `history_line`
  with `run_type = "SIM1"` and the run's own period is added to that SIM1.

History (what earlier runs paid besides the computed FINALs):
* `history_line = {run_type, period, pernr, wage_type, amount, quantity?, run = "OC1"?}` — a line
  added to an earlier run of `period` (one of the history months, or the run's own month for
  an OFFCYCLE run before it): `run_type = "FINAL"` adds it to that month's FINAL (totals
  rebuilt), `"OFFCYCLE"` to an off-cycle run of that month (named by `run`, extracted on the
  5th, paid on the 7th), with its totals.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import polars as pl

from detectors import paymodel as pm
from detectors.base import DetectionInput, History, RunMeta

AREA = "GV"
PERIOD = "202503"
HISTORY_PERIODS = ("202412", "202501", "202502")
PAY_DATE = date(2025, 3, 25)
OPEN = date(9999, 12, 31)
NUMBER = pl.Decimal(38, 18)  # the warehouse's DECIMAL(38,18) for numbers (ANZHL, rates, ...)

# ------------------------------------------------------------------------ reference tables

# (grade, step): (ANNUAL_NET, ANNUAL_PR) — USD for P/D, CHF for G.
SCALE = {
    ("P-2", "04"): ("62000.00", "115000.00"),
    ("P-3", "05"): ("80000.00", "150000.00"),  # worked example 1
    ("P-3", "06"): ("82000.00", "153750.00"),
    ("P-4", "01"): ("84000.00", "157500.00"),
    ("P-4", "03"): ("88000.00", "165000.00"),
    ("P-5", "02"): ("102000.00", "190000.00"),
    ("D-1", "01"): ("115000.00", "212000.00"),
    ("D-1", "02"): ("118000.00", "217500.00"),
    ("G-3", "05"): ("47000.00", "85500.00"),
    ("G-4", "03"): ("50002.00", "91003.00"),  # worked example 2
    ("G-4", "04"): ("51500.00", "93700.00"),
    ("G-5", "02"): ("76000.00", "137000.00"),
    ("G-6", "02"): ("84000.00", "151000.00"),
    ("G-6", "03"): ("86500.00", "155500.00"),
}
MULTIPLIERS = (("GVA", date(2024, 1, 1), date(2024, 12, 31), "80.4"),
               ("GVA", date(2025, 1, 1), OPEN, "81.7"))
RATES = {"PENSION_STAFF_RATE": "0.079", "SPOUSE_RATE": "0.06", "CHILD_ANNUAL_USD": "3150.00",
         "CHILD_ANNUAL_CHF": "4200.00", "CHILD_AGE_LIMIT": "18", "HEALTH_RATE": "0.04"}
WAGE_TYPES = (  # LGART, LGTXT, CLASS, RUN_TYPES, OWNER (docs/extract-format.md)
    ("1000", "Net base salary", "EARNING", "REGULAR", "HR"),
    ("1010", "Post adjustment", "EARNING", "REGULAR", "HR"),
    ("1100", "Spouse allowance", "EARNING", "REGULAR", "HR"),
    ("1110", "Child allowance", "EARNING", "REGULAR", "HR"),
    ("1400", "Overtime", "EARNING", "REGULAR", "HR"),
    ("1500", "Special post allowance", "EARNING", "REGULAR", "HR"),
    ("2000", "Salary advance", "EARNING", "OFFCYCLE", "FINANCE"),
    ("3000", "Pension contribution", "DEDUCTION", "REGULAR", "FINANCE"),
    ("3100", "Health insurance", "DEDUCTION", "REGULAR", "FINANCE"),
    ("3200", "Advance recovery", "DEDUCTION", "REGULAR", "FINANCE"),
    ("3300", "Other deductions", "DEDUCTION", "REGULAR", "FINANCE"),
    ("/101", "Total gross", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
    ("/550", "Statutory net", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
    ("/560", "Amount paid", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
)
TOTALS = ("/101", "/550", "/560")


def cents(text: str | int) -> int:
    """'123.45' -> 12345 (exact; amounts as in the extract)."""
    return int(Fraction(str(text)) * 100)


def d(text: str | date) -> date:
    return text if isinstance(text, date) else datetime.strptime(str(text), "%Y%m%d").date()


def reference_tables() -> dict[str, pl.DataFrame]:
    since = date(2024, 1, 1)
    return {
        "pay_scale": pl.DataFrame(
            [{"grade": g, "step": s, "valid_from": since, "valid_to": OPEN, "annual_net_cents": cents(n),
              "annual_pr_cents": cents(p), "currency": "CHF" if g.startswith("G") else "USD"}
             for (g, s), (n, p) in SCALE.items()]),
        "post_adjustment": pl.DataFrame(
            [{"duty_station": w, "valid_from": a, "valid_to": b, "multiplier_pct": v} for w, a, b, v in MULTIPLIERS],
        ).with_columns(pl.col("multiplier_pct").cast(NUMBER)),
        "rates": pl.DataFrame(
            [{"rate_key": k, "rate_value": v, "valid_from": since, "valid_to": OPEN} for k, v in RATES.items()],
        ).with_columns(pl.col("rate_value").cast(NUMBER)),
        "wage_types": pl.DataFrame(
            WAGE_TYPES, schema=["wage_type", "wage_type_text", "wage_class", "run_types", "owner"], orient="row"),
    }


# ------------------------------------------------------------------------------- staff

@dataclass
class Staff:
    """One staff member of the world and their usual monthly variable pay."""

    alias: str
    pernr: str
    name: str
    category: str
    grade: str
    step: str
    hired: date
    pct: int = 100
    entity: str = "UNOG"
    spouse: bool | None = None          # None: no spouse; True: dependent; False: not dependent
    children: tuple[date, ...] = ()     # birth dates, all dependent
    overtime_hours: str | None = None   # the same every month unless `hours_by_month`
    hours_by_month: dict[str, str] = field(default_factory=dict)
    special_post: str | None = None     # 1500, monthly amount before proration
    other_deduction: str | None = None  # 3300, monthly amount before proration (positive)
    separated_from: date | None = None
    slwop: tuple[date, date] | None = None

    @property
    def currency(self) -> str:
        return "CHF" if self.category == "G" else "USD"

    @property
    def iban(self) -> str:
        bban = f"0076{self.pernr}{int(self.pernr[-3:]) * 7:05d}"  # a valid Swiss IBAN (ISO 13616)
        check = 98 - int("".join(str(int(c, 36)) for c in bban + "CH00")) % 97
        return f"CH{check:02d}{bban}"


NAMED = (
    Staff("P3", "10000001", "Dupont, Marie", "P", "P-3", "05", date(2020, 1, 1), entity="OHCHR", spouse=True,
          children=(date(2006, 5, 20), date(2015, 6, 1)), other_deduction="500.00"),
    Staff("G4", "10000002", "Zhāng Wěi", "G", "G-4", "03", date(2022, 3, 1), pct=80, entity="UNCTAD",
          children=(date(2012, 9, 11),), overtime_hours="12.5", special_post="350.00"),
    Staff("D1", "10000003", "Okafor, Chidi", "D", "D-1", "01", date(2025, 3, 10), entity="OCHA", spouse=False),
    Staff("LEAVER", "10000004", "Larsen, Ingrid", "P", "P-2", "04", date(2018, 9, 1), entity="ECE",
          other_deduction="150.00", separated_from=date(2025, 3, 16)),
    Staff("SLWOP", "10000005", "Moreau, Luc", "G", "G-6", "02", date(2016, 2, 1),
          slwop=(date(2025, 3, 1), date(2025, 5, 31))),
    Staff("DRIVER", "10000006", "Rossi, Paolo", "G", "G-3", "05", date(2017, 6, 1), overtime_hours="36"),
)

_PEER_GRADES = (("P-2", "04"), ("P-3", "05"), ("P-3", "06"), ("P-4", "01"), ("P-4", "03"), ("P-5", "02"),
                ("D-1", "02"), ("G-3", "05"), ("G-4", "03"), ("G-4", "04"), ("G-5", "02"), ("G-6", "02"),
                ("G-6", "03"), ("G-3", "05"))
_ENTITIES = ("OHCHR", "UNCTAD", "ECE", "OCHA", "UNOG", "WMO", "ITC")


def peers(n: int = 70) -> tuple[Staff, ...]:
    out = []
    for i in range(n):
        grade, step = _PEER_GRADES[i % len(_PEER_GRADES)]
        cat = grade[0]
        hours = {}
        if cat == "G" and i % 2 == 0:
            cycle = [f"{4 + (i * 5 + k * 7) % 13}{'.5' if (i + k) % 3 == 0 else ''}" for k in range(3)]
            hours = {p: cycle[k % 3] for k, p in enumerate((*HISTORY_PERIODS, PERIOD))}
        out.append(Staff(
            f"PEER{i + 1:02d}", f"2{i + 1:07d}", f"Peer {i + 1}", cat, grade, step,
            date(2015 + i % 7, 1 + i % 12, 1),
            pct=(50 if i % 7 == 0 else 80 if i % 7 == 3 else 100) if cat == "G" else 100,
            entity=_ENTITIES[i % len(_ENTITIES)],
            spouse=(True if i % 3 == 0 else None) if cat != "G" else None,
            children=tuple(date(2009 + (i + j) % 12, 1 + (i * 3 + j) % 12, 1 + (i + 5 * j) % 28) for j in range(i % 4)),
            hours_by_month=hours,
            special_post=f"{300 + 10 * i}.00" if i % 9 == 1 else None,
            other_deduction="120.00" if i % 8 == 3 else None,
        ))
    return tuple(out)


STAFF = NAMED + peers()
ALIASES = {s.alias: s.pernr for s in STAFF}
BY_PERNR = {s.pernr: s for s in STAFF}


def pernr_of(ref: str) -> str:
    """Alias or PERNR -> PERNR."""
    if ref in ALIASES:
        return ALIASES[ref]
    if ref in BY_PERNR or (len(ref) == 8 and ref.isdigit()):
        return ref
    raise KeyError(f"unknown staff {ref!r} (aliases: {', '.join(s.alias for s in NAMED)})")


# ------------------------------------------------------------------------- master data

MD_SCHEMA = {
    "actions": {"pernr": pl.String, "valid_from": pl.Date, "valid_to": pl.Date, "action_type": pl.String,
                "action_reason": pl.String, "employment_status": pl.String},
    "assignments": {"pernr": pl.String, "valid_from": pl.Date, "valid_to": pl.Date, "full_name": pl.String,
                    "duty_station": pl.String, "staff_category": pl.String, "entity": pl.String,
                    "payroll_area": pl.String, "cost_centre": pl.String},
    "basic_pay": {"pernr": pl.String, "valid_from": pl.Date, "valid_to": pl.Date, "grade": pl.String,
                  "step": pl.String, "employment_pct": pl.Int64},
    "bank_details": {"pernr": pl.String, "valid_from": pl.Date, "valid_to": pl.Date, "bank_country": pl.String,
                     "iban": pl.String, "currency": pl.String},
    "family": {"pernr": pl.String, "member_id": pl.String, "member_type": pl.String, "birth_date": pl.Date,
               "valid_from": pl.Date, "valid_to": pl.Date, "is_dependent": pl.Boolean},
}
STAT2_OF_ACTION = {"05": "0", "06": "1"}  # every other action: 3 (active)


def master_data(staff: tuple[Staff, ...] = STAFF) -> dict[str, list[dict]]:
    """PA0000/0001/0008/0009/0021 of the staff, as lists of record dicts (see `frames`)."""
    md: dict[str, list[dict]] = {k: [] for k in MD_SCHEMA}
    for s in staff:
        p = s.pernr
        end = OPEN
        timeline = [(s.hired, "01", "3")]
        if s.slwop:
            timeline += [(s.slwop[0], "06", "1"), (s.slwop[1] + timedelta(days=1), "07", "3")]
        if s.separated_from:
            timeline.append((s.separated_from, "05", "0"))
        for k, (start, massn, stat2) in enumerate(timeline):
            stop = timeline[k + 1][0] - timedelta(days=1) if k + 1 < len(timeline) else end
            md["actions"].append({"pernr": p, "valid_from": start, "valid_to": stop, "action_type": massn,
                                  "action_reason": None, "employment_status": stat2})
        md["assignments"].append({"pernr": p, "valid_from": s.hired, "valid_to": OPEN, "full_name": s.name,
                                  "duty_station": "GVA", "staff_category": s.category, "entity": s.entity,
                                  "payroll_area": AREA, "cost_centre": None})
        md["basic_pay"].append({"pernr": p, "valid_from": s.hired, "valid_to": OPEN, "grade": s.grade,
                                "step": s.step, "employment_pct": s.pct})
        md["bank_details"].append({"pernr": p, "valid_from": s.hired, "valid_to": OPEN, "bank_country": "CH",
                                   "iban": s.iban, "currency": s.currency})
        members = ([("1", date(1980, 4, 12), s.spouse)] if s.spouse is not None else []) + \
                  [("2", b, True) for b in s.children]
        for k, (famsa, born, dependent) in enumerate(members, start=1):
            md["family"].append({"pernr": p, "member_id": f"{k:02d}", "member_type": famsa, "birth_date": born,
                                 "valid_from": min(s.hired, max(born, date(2000, 1, 1))), "valid_to": OPEN,
                                 "is_dependent": dependent})
    return md


def frames(md: dict[str, list[dict]]) -> dict[str, pl.DataFrame]:
    return {k: pl.DataFrame(rows, schema=MD_SCHEMA[k], orient="row") for k, rows in md.items()}


# --------------------------------------------------------------------------------- pay

LINE_SCHEMA = {"pernr": pl.String, "for_period": pl.String, "in_period": pl.String, "wage_type": pl.String,
               "amount_cents": pl.Int64, "currency": pl.String, "quantity": NUMBER}


def empty_lines() -> pl.DataFrame:
    return pl.DataFrame(schema=LINE_SCHEMA)


def _hours(s: Staff, period: str) -> str | None:
    return s.hours_by_month.get(period, s.overtime_hours)


def month_lines(md: dict[str, pl.DataFrame], ref: dict[str, pl.DataFrame], period: str,
                variable: dict[str, Staff]) -> pl.DataFrame:
    """Correct current-month lines (no totals) of every staff member active in `period`:
    the pay model's deterministic lines, plus 1500 and 3300 (monthly amount x f)."""
    hours = [(p, Fraction(h)) for p, s in variable.items() if (h := _hours(s, period))]
    hours_df = pl.DataFrame({"pernr": [p for p, _ in hours], "hours_num": [h.numerator for _, h in hours],
                             "hours_den": [h.denominator for _, h in hours]},
                            schema={"pernr": pl.String, "hours_num": pl.Int64, "hours_den": pl.Int64})
    facts, exp = pm.expected_for_period(md, ref, period, overtime_hours=hours_df)
    cur = dict(facts.select("pernr", "currency").iter_rows())
    f = {p: Fraction(a, n) for p, a, n in facts.select("pernr", "active_days", "days_in_month").iter_rows()}
    rows = []
    for p, wt, amount in exp.select("pernr", "wage_type", "expected_cents").iter_rows():
        q = Decimal(_hours(variable[p], period)) if wt == pm.WT_OVERTIME else None
        rows.append((p, wt, amount, cur[p], q))
    for p, frac in f.items():
        s = variable.get(p)
        if s is None:
            continue
        if s.special_post:
            rows.append((p, pm.WT_SPECIAL_POST, pm.round_half_away(cents(s.special_post) * frac), cur[p], None))
        if s.other_deduction:
            rows.append((p, pm.WT_OTHER_DED, -pm.round_half_away(cents(s.other_deduction) * frac), cur[p], None))
    out = pl.DataFrame(
        [{"pernr": p, "for_period": period, "in_period": period, "wage_type": wt, "amount_cents": a,
          "currency": c, "quantity": q} for p, wt, a, c, q in rows if a != 0],
        schema=LINE_SCHEMA)
    return out.sort("pernr", "wage_type")


def retro_lines(md_now: dict[str, pl.DataFrame], ref: dict[str, pl.DataFrame], period: str,
                final_lines: pl.DataFrame, pernrs: list[str], currency: dict[str, str]) -> pl.DataFrame:
    """Correct retroactive lines: for every history month and retro wage type, the non-zero
    difference between the model amount with today's master data and what the FINALs paid."""
    paid = {(p, m, wt): a for p, m, wt, a in final_lines.filter(pl.col("wage_type").is_in(list(pm.RETRO_WAGE_TYPES)))
            .group_by("pernr", "for_period", "wage_type").agg(pl.col("amount_cents").sum()).iter_rows()}
    rows = []
    for m in HISTORY_PERIODS:
        _, exp = pm.expected_for_period(md_now, ref, m, pernrs=pernrs)
        now = {(p, wt): a for p, wt, a in exp.select("pernr", "wage_type", "expected_cents").iter_rows()}
        for p in pernrs:
            for wt in pm.RETRO_WAGE_TYPES:
                diff = now.get((p, wt), 0) - paid.get((p, m, wt), 0)
                if diff:
                    rows.append({"pernr": p, "for_period": m, "in_period": period, "wage_type": wt,
                                 "amount_cents": diff, "currency": currency[p], "quantity": None})
    return pl.DataFrame(rows, schema=LINE_SCHEMA)


def rebuild_totals(lines: pl.DataFrame, wage_types: pl.DataFrame) -> pl.DataFrame:
    """Drop the total lines and write /101, /550, /560 again for every staff member with lines
    (/101 = EARNING lines, /550 = /101 + DEDUCTION lines, /560 = /550; classes from T512W)."""
    body = lines.filter(~pl.col("wage_type").is_in(TOTALS))
    if body.height == 0:
        return body
    cls = body.join(wage_types.select("wage_type", "wage_class"), on="wage_type", how="left")
    t = cls.group_by("pernr").agg(
        pl.col("amount_cents").filter(pl.col("wage_class") == "EARNING").sum().alias("gross"),
        pl.col("amount_cents").filter(pl.col("wage_class") == "DEDUCTION").sum().alias("ded"),
        pl.col("currency").first(), pl.col("in_period").first())
    tot = pl.concat([
        t.select("pernr", pl.col("in_period").alias("for_period"), "in_period", pl.lit(wt).alias("wage_type"),
                 expr.cast(pl.Int64).alias("amount_cents"), "currency", pl.lit(None, dtype=NUMBER).alias("quantity"))
        for wt, expr in (("/101", pl.col("gross")), ("/550", pl.col("gross") + pl.col("ded")),
                         ("/560", pl.col("gross") + pl.col("ded")))])
    return pl.concat([body, tot]).sort("pernr", "for_period", "wage_type")


# ----------------------------------------------------------------- master-data modifications

def _as_list(v) -> list[dict]:
    return [] if v is None else (v if isinstance(v, list) else [v])


def _typed(infotype: str, key: str, value):
    t = MD_SCHEMA[infotype][key]
    if t == pl.Date:
        return d(value)
    if t == pl.Int64:
        return int(value)
    if t == pl.Boolean:
        return bool(value) if not isinstance(value, str) else value.upper() == "X"
    return None if value == "" and key in ("action_reason", "cost_centre") else str(value)


def _match(rec: dict, op: dict, infotype: str) -> bool:
    if rec["pernr"] != pernr_of(op["pernr"]) or rec["valid_from"] != d(op["valid_from"]):
        return False
    return infotype != "family" or "member_id" not in op or rec["member_id"] == op["member_id"]


def _insert(records: list[dict], pernr: str, start: date, stop: date, new: dict) -> list[dict]:
    """Put `new` on [start, stop] of pernr's timeline: overlapped records are cut, a record
    spanning the interval keeps its head and its tail."""
    out = []
    for r in records:
        if r["pernr"] != pernr or r["valid_to"] < start or r["valid_from"] > stop:
            out.append(r)
            continue
        if r["valid_from"] < start:
            out.append(r | {"valid_to": start - timedelta(days=1)})
        if r["valid_to"] > stop:
            out.append(r | {"valid_from": stop + timedelta(days=1)})
    out.append(new | {"pernr": pernr, "valid_from": start, "valid_to": stop})
    return out


def _covering(records: list[dict], pernr: str, day: date) -> dict:
    hits = [r for r in records if r["pernr"] == pernr and r["valid_from"] <= day <= r["valid_to"]]
    if not hits:
        raise ValueError(f"no record of {pernr} covers {day}")
    return max(hits, key=lambda r: r["valid_from"])


MD_OPS = ("add_record", "set_record", "drop_record", "status", "change_pay", "change_bank")


def apply_md(md: dict[str, list[dict]], case: dict, entered: str) -> None:
    """Apply the case's master-data modifications entered `before` or `late` (in place)."""
    def ops(key):
        return [op for op in _as_list(case.get(key)) if op.get("entered", "late") == entered]

    for op in ops("add_record"):
        it, p = op["infotype"], pernr_of(op["pernr"])
        same = [r for r in md[it] if r["pernr"] == p and (it != "family" or r["member_id"] == op.get("member_id"))]
        template = dict(max(same, key=lambda r: r["valid_from"])) if same else {k: None for k in MD_SCHEMA[it]}
        fields = {k: _typed(it, k, v) for k, v in op.items() if k in MD_SCHEMA[it] and k != "pernr"}
        md[it].append(template | {"valid_to": OPEN} | fields | {"pernr": p})
    for op in ops("set_record"):
        it = op["infotype"]
        hits = [r for r in md[it] if _match(r, op, it)]
        if not hits:
            raise ValueError(f"set_record: no {it} record matches {op}")
        for r in hits:
            r.update({k: _typed(it, k, v) for k, v in op["set"].items()})
    for op in ops("drop_record"):
        it = op["infotype"]
        before = len(md[it])
        md[it] = [r for r in md[it] if not _match(r, op, it)]
        if len(md[it]) == before:
            raise ValueError(f"drop_record: no {it} record matches {op}")
    for op in ops("status"):
        p, action = pernr_of(op["pernr"]), op["action"]
        new = {"action_type": action, "action_reason": None,
               "employment_status": op.get("employment_status", STAT2_OF_ACTION.get(action, "3"))}
        md["actions"] = _insert(md["actions"], p, d(op["from"]), d(op.get("to", OPEN)), new)
    for op in ops("change_pay"):
        p, eff = pernr_of(op["pernr"]), d(op["effective"])
        cover = _covering(md["basic_pay"], p, eff)
        new = {k: _typed("basic_pay", k, op[k]) for k in ("grade", "step", "employment_pct") if k in op}
        md["basic_pay"] = _insert(md["basic_pay"], p, eff, cover["valid_to"], {**cover, **new})
        action = op.get("action", "02" if new.get("grade", cover["grade"]) != cover["grade"] else "03")
        if action:
            act = _covering(md["actions"], p, eff)
            md["actions"] = _insert(md["actions"], p, eff, act["valid_to"],
                                    {"action_type": action, "action_reason": None, "employment_status": "3"})
    for op in ops("change_bank"):
        p, start = pernr_of(op["pernr"]), d(op["from"])
        cover = _covering(md["bank_details"], p, start)
        new = {"iban": op["iban"], "currency": op.get("currency", cover["currency"]),
               "bank_country": op.get("bank_country", op["iban"][:2])}
        md["bank_details"] = _insert(md["bank_details"], p, start, OPEN, new)


# -------------------------------------------------------------------------------- runs

def _variable(case: dict) -> dict[str, Staff]:
    var = {s.pernr: s for s in STAFF}
    for op in _as_list(case.get("set_pay")):
        p = pernr_of(op["pernr"])
        change = {k: (None if v == "" else str(v)) for k, v in op.items()
                  if k in ("overtime_hours", "special_post", "other_deduction")}
        if "overtime_hours" in change:
            change["hours_by_month"] = {}
        var[p] = replace(var[p], **change)
    return var


_HISTORY_CACHE: dict[str, History] = {}


def cached_history(md_then: dict[str, pl.DataFrame], ref: dict[str, pl.DataFrame], case: dict) -> History:
    """`history`, computed once per set of changes entered before the earlier FINALs (frames
    and History are immutable: callers `replace` what they change)."""
    key = json.dumps([[k, [op for op in _as_list(case.get(k)) if op.get("entered", "late") == "before"]]
                      for k in sorted(MD_OPS)] + [_as_list(case.get("history_line"))], sort_keys=True, default=str)
    if key not in _HISTORY_CACHE:
        _HISTORY_CACHE[key] = history(md_then, ref, _as_list(case.get("history_line")))
    return _HISTORY_CACHE[key]


def _history_lines(ops: list[dict], period: str, run_type: str, run: str | None = None) -> pl.DataFrame:
    """The `history_line` entries of one earlier run, as lines (no totals)."""
    currency = {s.pernr: s.currency for s in STAFF}
    rows = [{"pernr": pernr_of(op["pernr"]), "for_period": period, "in_period": period,
             "wage_type": op["wage_type"], "amount_cents": cents(op["amount"]),
             "currency": currency[pernr_of(op["pernr"])],
             "quantity": Decimal(str(op["quantity"])) if "quantity" in op else None}
            for op in ops if op["period"] == period and op["run_type"] == run_type
            and (run is None or op.get("run", "OC1") == run)]
    return pl.DataFrame(rows, schema=LINE_SCHEMA)


def history(md_then: dict[str, pl.DataFrame], ref: dict[str, pl.DataFrame], extra: list[dict] = ()) -> History:
    """Earlier runs (off-cycle runs of `extra`, a SIM1 and the FINAL of each history month) and
    what the FINALs and off-cycle runs paid."""
    runs, finals, offcycles = [], [], []
    usual = {s.pernr: s for s in STAFF}
    wts = ref["wage_types"]
    for m in (*HISTORY_PERIODS, PERIOD):
        y, mo = int(m[:4]), int(m[4:])
        for oc in sorted({op.get("run", "OC1") for op in extra if op["period"] == m and op["run_type"] == "OFFCYCLE"}):
            run_id = f"{AREA}-{m}-{oc}"
            runs.append({"run_id": run_id, "version": 1, "payroll_area": AREA, "period": m, "run_type": "OFFCYCLE",
                         "pay_date": date(y, mo, 7), "extracted_at": datetime(y, mo, 5, 6, int(oc[2:]), 0)})
            offcycles.append(rebuild_totals(_history_lines(extra, m, "OFFCYCLE", oc), wts)
                             .with_columns(pl.lit(run_id).alias("run_id")))
        if m == PERIOD:
            break
        for rt, day in (("SIM1", 10), ("FINAL", 24)):
            runs.append({"run_id": f"{AREA}-{m}-{rt}", "version": 1, "payroll_area": AREA, "period": m,
                         "run_type": rt, "pay_date": date(y, mo, 25),
                         "extracted_at": datetime(y, mo, day, 6, 0, 0)})
        body = pl.concat([month_lines(md_then, ref, m, usual), _history_lines(extra, m, "FINAL")])
        lines = rebuild_totals(body, wts)
        finals.append(lines.with_columns(pl.lit(f"{AREA}-{m}-FINAL").alias("run_id")))
    final_lines = pl.concat(finals).select("run_id", *LINE_SCHEMA)
    offcycle_lines = (pl.concat(offcycles).select("run_id", *LINE_SCHEMA) if offcycles
                      else pl.DataFrame(schema={"run_id": pl.String, **LINE_SCHEMA}))
    return History(runs=pl.DataFrame(runs), final_lines=final_lines, offcycle_lines=offcycle_lines,
                   final_md={f"{AREA}-{m}-FINAL": md_then for m in HISTORY_PERIODS}, pay_date=PAY_DATE)


def empty_history() -> History:
    return History(final_lines=pl.DataFrame(schema={"run_id": pl.String, **LINE_SCHEMA}), pay_date=PAY_DATE)


def _line_filter(lines: pl.DataFrame, op: dict) -> pl.Expr:
    return ((pl.col("pernr") == pernr_of(op["pernr"])) & (pl.col("wage_type") == op["wage_type"])
            & (pl.col("for_period") == op.get("for_period", PERIOD)))


def apply_lines(lines: pl.DataFrame, case: dict, totals: bool, currency: dict[str, str]) -> pl.DataFrame:
    """Line modifications of the case on total (`totals`) or non-total wage types."""
    def ops(key):
        return [op for op in _as_list(case.get(key)) if op["wage_type"].startswith("/") == totals]

    for op in ops("set_line") + ops("set_total"):
        sel = _line_filter(lines, op)
        if lines.filter(sel).height == 0:
            raise ValueError(f"set_line: no line matches {op}")
        upd = []
        if "amount" in op:
            upd.append(pl.when(sel).then(pl.lit(cents(op["amount"]))).otherwise(pl.col("amount_cents"))
                       .alias("amount_cents"))
        if "quantity" in op:
            upd.append(pl.when(sel).then(pl.lit(Decimal(str(op["quantity"])), dtype=NUMBER))
                       .otherwise(pl.col("quantity")).alias("quantity"))
        if "currency" in op:
            upd.append(pl.when(sel).then(pl.lit(op["currency"])).otherwise(pl.col("currency")).alias("currency"))
        lines = lines.with_columns(upd)
    for op in ops("drop_line"):
        sel = _line_filter(lines, op)
        if lines.filter(sel).height == 0:
            raise ValueError(f"drop_line: no line matches {op}")
        lines = lines.filter(~sel)
    for op in ops("duplicate_line"):
        sel = _line_filter(lines, op)
        if lines.filter(sel).height == 0:
            raise ValueError(f"duplicate_line: no line matches {op}")
        lines = pl.concat([lines, lines.filter(sel)])
    add = []
    for op in ops("add_line"):
        p = pernr_of(op["pernr"])
        add.append({"pernr": p, "for_period": op.get("for_period", PERIOD), "in_period": PERIOD,
                    "wage_type": op["wage_type"], "amount_cents": cents(op["amount"]),
                    "currency": op.get("currency", currency[p]),
                    "quantity": Decimal(str(op["quantity"])) if "quantity" in op else None})
    if add:
        lines = pl.concat([lines, pl.DataFrame(add, schema=LINE_SCHEMA)])
    return lines


@dataclass
class World:
    """The run under test and everything detectors may read about it."""

    inp: DetectionInput
    md_then: dict[str, pl.DataFrame]

    @property
    def lines(self) -> pl.DataFrame:
        return self.inp.lines


def build(case: dict | None = None) -> World:
    """The clean world, or the world a case describes (see the module docstring)."""
    case = copy.deepcopy(case or {})
    ref = reference_tables()
    md_rec = master_data()
    apply_md(md_rec, case, "before")
    md_then = frames(md_rec)
    apply_md(md_rec, case, "late")
    md_now = frames(md_rec)
    hist = empty_history() if case.get("no_history") else cached_history(md_then, ref, case)
    if "pay_date" in case:
        hist = replace(hist, pay_date=d(case["pay_date"]))
    if case.get("earlier_run"):  # a SIM1 of this month before the run under test, as usual
        body = pl.concat([month_lines(md_then, ref, PERIOD, {s.pernr: s for s in STAFF}),
                          _history_lines(_as_list(case.get("history_line")), PERIOD, "SIM1")])
        hist = replace(hist, period_lines=rebuild_totals(body, ref["wage_types"])
                       .with_columns(pl.lit(f"{AREA}-{PERIOD}-SIM1").alias("run_id")).select("run_id", *LINE_SCHEMA))
    run_type = case.get("run_type", "SIM1")
    meta = RunMeta(f"{AREA}-{PERIOD}-{run_type}", AREA, PERIOD, run_type)
    currency = {s.pernr: s.currency for s in STAFF}
    recompute = bool(case.get("recompute"))
    if case.get("clear_lines"):
        lines = empty_lines()
    else:
        lines = month_lines(md_now if recompute else md_then, ref, PERIOD, _variable(case))
        if recompute and case.get("retro", True) and not case.get("no_history"):
            paid = lines["pernr"].unique().sort().to_list()
            lines = pl.concat([lines, retro_lines(md_now, ref, PERIOD, hist.final_lines, paid, currency)])
    if case.get("keep_totals"):
        lines = rebuild_totals(lines, ref["wage_types"])
        lines = apply_lines(lines, case, totals=False, currency=currency)
    else:
        lines = apply_lines(lines, case, totals=False, currency=currency)
        lines = rebuild_totals(lines, ref["wage_types"])
    lines = apply_lines(lines, case, totals=True, currency=currency)
    return World(DetectionInput(meta, lines, md_now, ref, hist), md_then)


def expected_pairs(case: dict) -> set[tuple[str, str]]:
    """The case's `expect` as (PERNR, category) pairs."""
    out = set()
    for e in case.get("expect", []):
        who, _, category = e.rpartition(":")
        out.add((pernr_of(who or case["staff"]), category))
    return out
