"""Reference tables of the simulated payroll area: pay scale, post adjustment, wage types,
rates. Figures are UN-like (docs/pay-figures.md); nothing in detection relies on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

OPEN_END = date(9999, 12, 31)

# grade -> (steps, net base at step 1 in the scale's base year, pensionable/net ratio)
P_SCALE = {"P-1": (13, 42_000), "P-2": (13, 54_000), "P-3": (15, 69_000), "P-4": (15, 84_000),
           "P-5": (13, 100_000), "D-1": (10, 115_000), "D-2": (7, 127_000)}
G_SCALE = {"G-1": (12, 56_000), "G-2": (12, 62_000), "G-3": (12, 69_000), "G-4": (12, 77_000),
           "G-5": (12, 86_000), "G-6": (11, 97_000), "G-7": (11, 110_000)}
STEP_GROWTH = Decimal("0.026")
PR_RATIO = {"P": Decimal("1.82"), "D": Decimal("1.82"), "G": Decimal("1.66")}

# Wage type catalogue (T512W): code, text, class, run types, owner.
WAGE_TYPES = (
    ("1000", "Net base salary", "EARNING", "REGULAR", "HR"),
    ("1010", "Post adjustment", "EARNING", "REGULAR", "HR"),
    ("1100", "Spouse allowance", "EARNING", "REGULAR", "HR"),
    ("1110", "Child allowance", "EARNING", "REGULAR", "HR"),
    ("1400", "Overtime", "EARNING", "REGULAR", "HR"),
    ("1500", "Special post allowance", "EARNING", "REGULAR", "HR"),
    ("2000", "Salary advance", "EARNING", "OFFCYCLE", "FINANCE"),
    ("3000", "Pension contribution (UNJSPF)", "DEDUCTION", "REGULAR", "FINANCE"),
    ("3100", "Health insurance (UNSMIS)", "DEDUCTION", "REGULAR", "FINANCE"),
    ("3200", "Advance recovery", "DEDUCTION", "REGULAR", "FINANCE"),
    ("3300", "Other deductions", "DEDUCTION", "REGULAR", "FINANCE"),
    ("/101", "Total gross", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
    ("/550", "Statutory net", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
    ("/560", "Amount paid", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
)


def grade_category(grade: str) -> str:
    return grade[0]


def grade_steps(grade: str) -> int:
    return (P_SCALE | G_SCALE)[grade][0]


@dataclass(frozen=True)
class ScaleYear:
    """One year's T510 records: (grade, step) -> (annual net, annual pensionable), exact."""

    year: int
    amounts: dict[tuple[str, str], tuple[Decimal, Decimal]]


def build_scales(first_year: int, last_year: int, revisions: dict[int, Decimal]) -> list[ScaleYear]:
    """Scales from `first_year` to `last_year`; each January applies that year's revision."""
    out, factor = [], Decimal(1)
    for year in range(first_year, last_year + 1):
        factor *= 1 + revisions.get(year, Decimal(0))
        amounts = {}
        for grade, (steps, base) in (P_SCALE | G_SCALE).items():
            for step in range(1, steps + 1):
                net = (Decimal(base) * factor * (1 + STEP_GROWTH) ** (step - 1)).quantize(Decimal("0.01"))
                pr = (net * PR_RATIO[grade_category(grade)]).quantize(Decimal("0.01"))
                amounts[(grade, f"{step:02d}")] = (net, pr)
        out.append(ScaleYear(year, amounts))
    return out


def utc(d: date, hour: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hour, tzinfo=timezone.utc)


def day_before(d: date) -> date:
    return d - timedelta(days=1)
