"""The pay model of docs/extract-format.md 1.0, exact, in two equivalent forms.

* `compute_lines` — scalar reference with `fractions.Fraction` (one staff-month), used by
  property tests and small callers.
* `staff_month_facts` + `attach_reference` + `expected_lines` — vectorised polars over all
  staff of a period, integer-only (Int128 numerators, one final half-away-from-zero
  rounding division per line). Used by the simulator (to write pay) and the detectors
  (to expect it).

Money is in integer cents throughout. Rates are exact fractions (num/den Int128 columns).
Frames use the warehouse staging column names (paywatch/extract/schema.py `staging`).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction

import polars as pl

WT_BASE, WT_POST_ADJ, WT_SPOUSE, WT_CHILD = "1000", "1010", "1100", "1110"
WT_OVERTIME, WT_SPECIAL_POST, WT_ADVANCE = "1400", "1500", "2000"
WT_PENSION, WT_HEALTH, WT_RECOVERY, WT_OTHER_DED = "3000", "3100", "3200", "3300"
MODEL_WAGE_TYPES = (WT_BASE, WT_POST_ADJ, WT_SPOUSE, WT_CHILD, WT_OVERTIME, WT_PENSION, WT_HEALTH)
RETRO_WAGE_TYPES = (WT_BASE, WT_POST_ADJ, WT_SPOUSE, WT_CHILD, WT_PENSION, WT_HEALTH)
RATE_KEYS = ("PENSION_STAFF_RATE", "SPOUSE_RATE", "CHILD_ANNUAL_USD", "CHILD_ANNUAL_CHF",
             "CHILD_AGE_LIMIT", "HEALTH_RATE")
OVERTIME_MIN_ACTIVE_DAYS = 10
I128 = pl.Int128


# --------------------------------------------------------------------------- scalar form

def round_half_away(x: Fraction) -> int:
    """Round an exact amount (in cents) to whole cents, half away from zero."""
    n, d = x.numerator, x.denominator  # d > 0 always
    q = (abs(n) * 2 + d) // (2 * d)
    return q if n >= 0 else -q


def to_fraction(value: Decimal | int | str | Fraction) -> Fraction:
    """Exact fraction of a table value (never via float)."""
    if isinstance(value, Fraction):
        return value
    return Fraction(str(value))


@dataclass(frozen=True)
class StaffMonth:
    """Inputs of one staff member's month, as the pay model needs them (cents, fractions)."""

    staff_category: str  # P | D | G
    annual_net_cents: int
    annual_pr_cents: int
    employment_pct: int
    active_days: int
    days_in_month: int
    pension_rate: Fraction
    health_rate: Fraction
    spouse_rate: Fraction = Fraction(0)
    child_annual_cents: Fraction | int = 0
    multiplier_pct: Fraction | None = None
    has_dependent_spouse: bool = False
    n_children: int = 0
    overtime_hours: Fraction | None = None
    written: dict[str, int] = field(default_factory=dict)  # lines referred to, as written


def compute_lines(sm: StaffMonth) -> dict[str, int]:
    """Deterministic lines (cents) of one staff-month; zero lines are omitted."""
    if sm.active_days <= 0:
        return {}
    f = Fraction(sm.active_days, sm.days_in_month)
    pct = Fraction(sm.employment_pct, 100)
    out: dict[str, int] = {}

    def put(wt: str, exact: Fraction) -> int:
        amount = round_half_away(exact)
        if amount:
            out[wt] = amount
        return amount

    def as_written(wt: str, model: int) -> int:
        return sm.written.get(wt, model)

    base = as_written(WT_BASE, put(WT_BASE, Fraction(sm.annual_net_cents, 12) * pct * f))
    post_adj = 0
    if sm.staff_category in ("P", "D"):
        if sm.multiplier_pct is not None:
            post_adj = put(WT_POST_ADJ, base * sm.multiplier_pct / 100)
        post_adj = as_written(WT_POST_ADJ, post_adj)
        if sm.has_dependent_spouse:
            put(WT_SPOUSE, base * sm.spouse_rate)
    if sm.n_children > 0:
        put(WT_CHILD, sm.n_children * Fraction(sm.child_annual_cents, 12) * f)
    if (sm.staff_category == "G" and sm.overtime_hours
            and sm.active_days >= OVERTIME_MIN_ACTIVE_DAYS):
        hourly = round_half_away(Fraction(sm.annual_net_cents) * 3 / 2 / 2080)
        put(WT_OVERTIME, sm.overtime_hours * hourly)
    put(WT_PENSION, -(Fraction(sm.annual_pr_cents, 12) * pct * f * sm.pension_rate))
    put(WT_HEALTH, -((base + post_adj) * sm.health_rate))
    return out


def staff_month_from_row(row: dict, overtime_hours: Fraction | None = None,
                         written: dict[str, int] | None = None) -> StaffMonth:
    """Scalar inputs from one row of `attach_reference` (for small, per-staff work)."""

    def frac(name: str) -> Fraction:
        num, den = row.get(f"{name}_num"), row.get(f"{name}_den")
        return Fraction(0) if num is None else Fraction(int(num), int(den))

    mult = None if row.get("multiplier_num") is None else frac("multiplier")
    return StaffMonth(
        staff_category=row["staff_category"], annual_net_cents=int(row["annual_net_cents"]),
        annual_pr_cents=int(row["annual_pr_cents"]), employment_pct=int(row["employment_pct"]),
        active_days=int(row["active_days"]), days_in_month=int(row["days_in_month"]),
        pension_rate=frac("pension"), health_rate=frac("health"), spouse_rate=frac("spouse"),
        child_annual_cents=frac("child"), multiplier_pct=mult,
        has_dependent_spouse=bool(row["has_dependent_spouse"]), n_children=int(row["n_children"]),
        overtime_hours=overtime_hours, written=written or {},
    )


# --------------------------------------------------------------------- vectorised form

def month_bounds(period: str) -> tuple[date, date, int]:
    """First day, last day and number of days of a `YYYYMM` period."""
    y, m = int(period[:4]), int(period[4:])
    days = calendar.monthrange(y, m)[1]
    return date(y, m, 1), date(y, m, days), days


def shift_period(period: str, months: int) -> str:
    """`YYYYMM` moved by a number of months."""
    idx = int(period[:4]) * 12 + int(period[4:]) - 1 + months
    return f"{idx // 12:04d}{idx % 12 + 1:02d}"


def _valid_on(day: pl.Expr | date) -> pl.Expr:
    d = day if isinstance(day, pl.Expr) else pl.lit(day)
    return (pl.col("valid_from") <= d) & (pl.col("valid_to") >= d)


def _latest_per(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """One record per key: overlapping records (a content error flagged elsewhere) resolve
    deterministically to the latest-starting one."""
    return frame.sort([*keys, "valid_from"]).unique(subset=keys, keep="last", maintain_order=True)


def staff_month_facts(md: dict[str, pl.DataFrame], period: str) -> pl.DataFrame:
    """Master-data facts for a period. Grain: one row per staff member with f > 0.

    `md` holds staging frames `actions`, `assignments`, `basic_pay`, `family`. Columns out:
    pernr, for_period, active_days, days_in_month, reference_day, grade, step,
    employment_pct, staff_category, duty_station, entity, currency, has_dependent_spouse,
    n_children_candidates (list of birth dates of dependent children, age checked later).
    Missing master data on the reference day leaves nulls (flagged by detectors).
    """
    first, last, days = month_bounds(period)
    actions = md["actions"].filter(
        (pl.col("employment_status") == "3") & (pl.col("valid_from") <= last) & (pl.col("valid_to") >= first)
    )
    active = (
        actions.with_columns(
            pl.max_horizontal(pl.col("valid_from"), pl.lit(first)).alias("_s"),
            pl.min_horizontal(pl.col("valid_to"), pl.lit(last)).alias("_e"),
        )
        .group_by("pernr")
        .agg(
            ((pl.col("_e") - pl.col("_s")).dt.total_days() + 1).sum().alias("active_days"),
            pl.col("_s").min().alias("first_active_day"),
        )
        .with_columns(pl.col("active_days").clip(upper_bound=days).cast(pl.Int64))
    )
    has_pay_record_on_first = (
        md["basic_pay"].filter(_valid_on(first)).select("pernr").unique().with_columns(pl.lit(True).alias("_bp1"))
    )
    facts = (
        active.join(has_pay_record_on_first, on="pernr", how="left")
        .with_columns(
            pl.when(pl.col("_bp1")).then(pl.lit(first)).otherwise(pl.col("first_active_day")).alias("reference_day"),
            pl.lit(period).alias("for_period"),
            pl.lit(days, dtype=pl.Int64).alias("days_in_month"),
        )
        .drop("_bp1", "first_active_day")
    )
    facts = _join_on_reference_day(facts, md["basic_pay"], ["grade", "step", "employment_pct"])
    facts = _join_on_reference_day(facts, md["assignments"], ["staff_category", "duty_station", "entity"])
    facts = facts.with_columns(
        pl.when(pl.col("staff_category") == "G").then(pl.lit("CHF"))
        .when(pl.col("staff_category").is_in(["P", "D"])).then(pl.lit("USD"))
        .otherwise(None).alias("currency")
    )
    fam = (
        md["family"].filter(pl.col("is_dependent").fill_null(False))
        .join(facts.select("pernr", "reference_day"), on="pernr")
        .filter(_valid_on(pl.col("reference_day")))
    )
    spouses = (
        fam.filter(pl.col("member_type") == "1").select("pernr").unique()
        .with_columns(pl.lit(True).alias("has_dependent_spouse"))
    )
    children = (
        fam.filter(pl.col("member_type") == "2").sort("member_id")
        .unique(subset=["pernr", "member_id"], keep="last")
        .group_by("pernr").agg(pl.col("birth_date").alias("child_birth_dates"))
    )
    return (
        facts.join(spouses, on="pernr", how="left")
        .join(children, on="pernr", how="left")
        .with_columns(pl.col("has_dependent_spouse").fill_null(False))
        .sort("pernr")
    )


def _join_on_reference_day(facts: pl.DataFrame, records: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    valid = (
        records.select("pernr", "valid_from", "valid_to", *cols)
        .join(facts.select("pernr", "reference_day"), on="pernr")
        .filter(_valid_on(pl.col("reference_day")))
    )
    return facts.join(_latest_per(valid, ["pernr"]).select("pernr", *cols), on="pernr", how="left")


def _rate_on(table: pl.DataFrame, key_col: str, value_col: str, day: date) -> dict[str, Fraction]:
    rows = _latest_per(table.filter(_valid_on(day)), [key_col]).select(key_col, value_col).rows()
    return {k: to_fraction(v) for k, v in rows}


def reference_for_period(ref: dict[str, pl.DataFrame], period: str) -> dict:
    """Reference values read on the first day of the period (docs/extract-format.md).

    `ref` holds staging frames `pay_scale`, `post_adjustment`, `rates`. Returns a dict with
    `scale` (frame grade, step, annual_net_cents, annual_pr_cents), `multipliers`
    ({duty_station: Fraction}) and `rates` ({key: Fraction}).
    """
    first, _, _ = month_bounds(period)
    scale = _latest_per(ref["pay_scale"].filter(_valid_on(first)), ["grade", "step"]).select(
        "grade", "step", "annual_net_cents", "annual_pr_cents"
    )
    return {
        "scale": scale,
        "multipliers": _rate_on(ref["post_adjustment"], "duty_station", "multiplier_pct", first),
        "rates": _rate_on(ref["rates"], "rate_key", "rate_value", first),
    }


def _frac_cols(name: str, value: Fraction | None) -> list[pl.Expr]:
    if value is None:
        return [pl.lit(None, dtype=I128).alias(f"{name}_num"), pl.lit(None, dtype=I128).alias(f"{name}_den")]
    return [pl.lit(value.numerator, dtype=I128).alias(f"{name}_num"),
            pl.lit(value.denominator, dtype=I128).alias(f"{name}_den")]


def attach_reference(facts: pl.DataFrame, refp: dict) -> pl.DataFrame:
    """Add the scale amounts, multiplier and rates (as exact num/den) to the facts.

    Grain unchanged: one row per staff member with f > 0. Adds n_children (dependent
    children under the age limit on the reference day)."""
    rates = refp["rates"]
    limit = rates.get("CHILD_AGE_LIMIT")
    kids = (
        facts.select("pernr", "reference_day", "child_birth_dates")
        .explode("child_birth_dates")
        .drop_nulls("child_birth_dates")
        .rename({"child_birth_dates": "birth_date"})
    )
    if limit is None:
        kids = kids.head(0)
    else:
        lim = int(limit)
        b = pl.col("birth_date")
        leap_day = (b.dt.month() == 2) & (b.dt.day() == 29)
        target_year = b.dt.year() + lim
        target_is_leap = (target_year % 4 == 0) & ((target_year % 100 != 0) | (target_year % 400 == 0))
        turns_limit = (
            pl.when(leap_day & ~target_is_leap)
            .then(pl.date(target_year, 3, 1))
            .otherwise(pl.date(target_year, b.dt.month(), b.dt.day()))
        )
        kids = kids.filter(pl.col("reference_day") < turns_limit)
    n_children = kids.group_by("pernr").agg(pl.len().cast(pl.Int64).alias("n_children"))
    mult = pl.DataFrame(
        {
            "duty_station": list(refp["multipliers"]),
            "multiplier_num": [v.numerator for v in refp["multipliers"].values()],
            "multiplier_den": [v.denominator for v in refp["multipliers"].values()],
        },
        schema={"duty_station": pl.String, "multiplier_num": I128, "multiplier_den": I128},
    )
    child_usd, child_chf = rates.get("CHILD_ANNUAL_USD"), rates.get("CHILD_ANNUAL_CHF")
    out = (
        facts.join(refp["scale"], on=["grade", "step"], how="left")
        .join(mult, on="duty_station", how="left")
        .join(n_children, on="pernr", how="left")
        .with_columns(
            pl.col("n_children").fill_null(0),
            *_frac_cols("pension", rates.get("PENSION_STAFF_RATE")),
            *_frac_cols("spouse", rates.get("SPOUSE_RATE")),
            *_frac_cols("health", rates.get("HEALTH_RATE")),
            *_frac_cols("child_usd", None if child_usd is None else child_usd * 100),
            *_frac_cols("child_chf", None if child_chf is None else child_chf * 100),
        )
        .with_columns(
            pl.when(pl.col("currency") == "USD").then(pl.col("child_usd_num")).otherwise(pl.col("child_chf_num")).alias("child_num"),
            pl.when(pl.col("currency") == "USD").then(pl.col("child_usd_den")).otherwise(pl.col("child_chf_den")).alias("child_den"),
        )
        .drop("child_usd_num", "child_usd_den", "child_chf_num", "child_chf_den")
    )
    return out


def round_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num/den rounded half away from zero (den > 0), as Int64 cents."""
    q = (num.abs() * 2 + den) // (den * 2)
    return (pl.when(num < 0).then(_neg(q)).otherwise(q)).cast(pl.Int64)


def _neg(e: pl.Expr) -> pl.Expr:
    # polars has no unary minus for Int128
    return pl.lit(0, dtype=I128) - e


def expected_lines(
    facts: pl.DataFrame,
    written: pl.DataFrame | None = None,
    overtime_hours: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Expected deterministic lines. Grain: one row per staff member per wage type.

    `facts` from `attach_reference`. `written`: pay lines of the same for-period
    (pernr, wage_type, amount_cents) — 1010, 1100 and 3100 use 1000/1010 as written
    (summed when written twice; the model amount when missing). `overtime_hours`:
    (pernr, hours_num, hours_den) for 1400. Out: pernr, for_period, wage_type,
    expected_cents (zero lines dropped; null when an input is missing).
    """
    f = facts.with_columns(
        pl.col("annual_net_cents").cast(I128).alias("_net"),
        pl.col("annual_pr_cents").cast(I128).alias("_pr"),
        pl.col("employment_pct").cast(I128).alias("_pct"),
        pl.col("active_days").cast(I128).alias("_act"),
        pl.col("days_in_month").cast(I128).alias("_dim"),
    )
    f = f.with_columns(
        round_div(pl.col("_net") * pl.col("_pct") * pl.col("_act"), pl.col("_dim") * 1200).alias("m1000"),
        round_div(
            _neg(pl.col("_pr") * pl.col("_pct") * pl.col("_act") * pl.col("pension_num")),
            pl.col("_dim") * 1200 * pl.col("pension_den"),
        ).alias("m3000"),
        round_div(
            pl.col("n_children").cast(I128) * pl.col("child_num") * pl.col("_act"),
            pl.col("child_den") * 12 * pl.col("_dim"),
        ).alias("m1110"),
    )
    f = f.join(_written_amount(written, WT_BASE, "w1000"), on="pernr", how="left")
    f = f.with_columns(pl.coalesce("w1000", "m1000").cast(I128).alias("b1000"))
    is_pd = pl.col("staff_category").is_in(["P", "D"])
    f = f.with_columns(
        pl.when(is_pd).then(round_div(pl.col("b1000") * pl.col("multiplier_num"), pl.col("multiplier_den") * 100))
        .otherwise(pl.lit(0, dtype=pl.Int64)).alias("m1010"),
        pl.when(is_pd & pl.col("has_dependent_spouse"))
        .then(round_div(pl.col("b1000") * pl.col("spouse_num"), pl.col("spouse_den")))
        .otherwise(pl.lit(0, dtype=pl.Int64)).alias("m1100"),
    )
    f = f.join(_written_amount(written, WT_POST_ADJ, "w1010"), on="pernr", how="left")
    f = f.with_columns(
        round_div(
            _neg((pl.col("b1000") + pl.coalesce("w1010", "m1010").cast(I128)) * pl.col("health_num")),
            pl.col("health_den"),
        ).alias("m3100")
    )
    if overtime_hours is not None and overtime_hours.height:
        f = f.join(overtime_hours.select("pernr", "hours_num", "hours_den"), on="pernr", how="left")
        hourly = round_div(pl.col("_net") * 3, pl.lit(4160, dtype=I128)).cast(I128)
        f = f.with_columns(
            pl.when((pl.col("staff_category") == "G") & (pl.col("_act") >= OVERTIME_MIN_ACTIVE_DAYS)
                    & pl.col("hours_num").is_not_null())
            .then(round_div(pl.col("hours_num").cast(I128) * hourly, pl.col("hours_den").cast(I128)))
            .otherwise(pl.lit(0, dtype=pl.Int64)).alias("m1400")
        )
    else:
        f = f.with_columns(pl.lit(0, dtype=pl.Int64).alias("m1400"))
    long = f.select(
        "pernr", "for_period",
        *[pl.col(f"m{wt}").alias(wt) for wt in MODEL_WAGE_TYPES],
    ).unpivot(index=["pernr", "for_period"], variable_name="wage_type", value_name="expected_cents")
    return long.filter(pl.col("expected_cents").is_null() | (pl.col("expected_cents") != 0)).sort(
        "pernr", "wage_type"
    )


def _written_amount(written: pl.DataFrame | None, wage_type: str, alias: str) -> pl.DataFrame:
    if written is None:
        return pl.DataFrame(schema={"pernr": pl.String, alias: pl.Int64})
    return (
        written.filter(pl.col("wage_type") == wage_type)
        .group_by("pernr")
        .agg(pl.col("amount_cents").sum().cast(pl.Int64).alias(alias))
    )


def expected_for_period(
    md: dict[str, pl.DataFrame],
    ref: dict[str, pl.DataFrame],
    period: str,
    written: pl.DataFrame | None = None,
    overtime_hours: pl.DataFrame | None = None,
    pernrs: list[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Facts (with reference values) and expected lines of every staff member in a period."""
    facts = staff_month_facts(md if pernrs is None else subset(md, pernrs), period)
    facts = attach_reference(facts, reference_for_period(ref, period))
    return facts, expected_lines(facts, written, overtime_hours)


def subset(md: dict[str, pl.DataFrame], pernrs: list[str]) -> dict[str, pl.DataFrame]:
    """The master data of `pernrs` only."""
    keep = pl.Series(pernrs, dtype=pl.String)
    return {k: v.filter(pl.col("pernr").is_in(keep)) for k, v in md.items()}


def hours_fraction(values: pl.Series) -> pl.DataFrame:
    """Exact num/den of decimal quantities (ANZHL), computed once per distinct value."""
    distinct = values.drop_nulls().unique().to_list()
    fr = {v: to_fraction(v) for v in distinct}
    return pl.DataFrame(
        {"quantity": distinct, "hours_num": [fr[v].numerator for v in distinct],
         "hours_den": [fr[v].denominator for v in distinct]},
        schema={"quantity": values.dtype, "hours_num": pl.Int64, "hours_den": pl.Int64},
    )
