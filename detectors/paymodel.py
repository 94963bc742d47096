"""The pay model of docs/extract-format.md 1.0, exact, in two equivalent forms.

* `compute_lines` — scalar reference with `fractions.Fraction` (one staff-month), used by
  property tests and small callers.
* `staff_month_facts` + `attach_reference` + `expected_lines` — vectorised polars over all
  staff of a period, integer-only (Int128 numerators, one final half-away-from-zero
  rounding division per line). Used by the simulator (to write pay) and the detectors
  (to expect it). `expected_for_periods` runs the same pass over several periods at once
  (the retro check's recalculated months), each month on its own bounds and reference values.

Money is in integer cents throughout. Rates are exact fractions (num/den Int128 columns).
Frames use the warehouse staging column names (paywatch/extract/schema.py `staging`).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from functools import cached_property
from datetime import date
from decimal import Decimal
from fractions import Fraction

import polars as pl

WT_BASE, WT_POST_ADJ, WT_SPOUSE, WT_CHILD = "1000", "1010", "1100", "1110"
WT_OVERTIME, WT_SPECIAL_POST, WT_ADVANCE = "1400", "1500", "2000"
WT_PENSION, WT_HEALTH, WT_RECOVERY, WT_OTHER_DED = "3000", "3100", "3200", "3300"
MODEL_WAGE_TYPES = (WT_BASE, WT_POST_ADJ, WT_SPOUSE, WT_CHILD, WT_OVERTIME, WT_PENSION, WT_HEALTH)
# expected_lines gathers each staff member's lines in this order as the sorted order
assert list(MODEL_WAGE_TYPES) == sorted(MODEL_WAGE_TYPES), "MODEL_WAGE_TYPES must ascend"
RETRO_WAGE_TYPES = (WT_BASE, WT_POST_ADJ, WT_SPOUSE, WT_CHILD, WT_PENSION, WT_HEALTH)
# variable amounts the contract pays as a monthly amount x f (1500; 1400, 2000, 3200, 3300 are not prorated)
PRORATED_VARIABLE = (WT_SPECIAL_POST,)
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


FACT_COLUMNS = ("pernr", "active_days", "reference_day", "for_period", "days_in_month", "grade", "step",
                "employment_pct", "staff_category", "duty_station", "entity", "currency", "has_dependent_spouse",
                "child_birth_dates")
REFERENCE_COLUMNS = ("annual_net_cents", "annual_pr_cents", "multiplier_num", "multiplier_den", "n_children",
                     "pension_num", "pension_den", "spouse_num", "spouse_den", "health_num", "health_den",
                     "child_num", "child_den")


@dataclass(frozen=True)
class _Months:
    """The periods a pass of the pay model reads, as expressions: with one period, its bounds
    are literals and the staff member alone is the key (the common case, kept as cheap as a
    single-period model); with several, each row carries its period's bounds (joined from
    `frame`) and (pernr, for_period) is the key."""

    periods: list[str]

    @property
    def one(self) -> bool:
        return len(self.periods) == 1

    @property
    def keys(self) -> list[str]:
        return ["pernr"] if self.one else ["pernr", "for_period"]

    @cached_property  # read twice in a pass; the periods never change
    def frame(self) -> pl.DataFrame:
        bounds = [month_bounds(p) for p in self.periods]
        return pl.DataFrame({"for_period": self.periods, "_first": [b[0] for b in bounds],
                             "_last": [b[1] for b in bounds], "days_in_month": [b[2] for b in bounds]},
                            schema={"for_period": pl.String, "_first": pl.Date, "_last": pl.Date,
                                    "days_in_month": pl.Int64})

    def bound(self, name: str) -> pl.Expr:
        """_first, _last or days_in_month of each row's period."""
        if not self.one:
            return pl.col(name)
        first, last, days = month_bounds(self.periods[0])
        return {"_first": pl.lit(first), "_last": pl.lit(last), "days_in_month": pl.lit(days, dtype=pl.Int64)}[name]

    def spread(self, frame: pl.DataFrame, cols: tuple[str, ...] = ("for_period", "_first", "_last")) -> pl.DataFrame:
        """`frame` once per period (several periods), or as it is (one: the bounds are literals)."""
        return frame if self.one else frame.join(self.frame.select(cols), how="cross")

    def tagged(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` keyed by `keys` with for_period and days_in_month."""
        if self.one:
            return frame.with_columns(pl.lit(self.periods[0]).alias("for_period"),
                                      self.bound("days_in_month").alias("days_in_month"))
        return frame.join(self.frame.select("for_period", "days_in_month"), on="for_period", how="left")


def staff_month_facts(md: dict[str, pl.DataFrame], period: str) -> pl.DataFrame:
    """Master-data facts for a period. Grain: one row per staff member with f > 0.

    `md` holds staging frames `actions`, `assignments`, `basic_pay`, `family`. Columns out:
    pernr, for_period, active_days, days_in_month, reference_day, grade, step,
    employment_pct, staff_category, duty_station, entity, currency, has_dependent_spouse,
    n_children_candidates (list of birth dates of dependent children, age checked later).
    Missing master data on the reference day leaves nulls (flagged by detectors).
    """
    return staff_months_facts(md, [period])


def staff_months_facts(md: dict[str, pl.DataFrame], periods: list[str],
                       pairs: pl.DataFrame | None = None) -> pl.DataFrame:
    """`staff_month_facts` of several periods in one pass (each month read on its own bounds,
    as one call per period would), only of the (pernr, for_period) `pairs` when given.
    Grain: one row per staff member per period with f > 0."""
    mo = _Months(periods)
    keys, first, last = mo.keys, mo.bound("_first"), mo.bound("_last")
    actions = mo.spread(md["actions"].filter(pl.col("employment_status") == "3")).filter(
        (pl.col("valid_from") <= last) & (pl.col("valid_to") >= first))
    if pairs is not None:
        actions = actions.join(pairs.filter(pl.col("for_period").is_in(periods)).select(keys), on=keys, how="semi")
    active = (
        actions.with_columns(
            pl.max_horizontal(pl.col("valid_from"), first).alias("_s"),
            pl.min_horizontal(pl.col("valid_to"), last).alias("_e"),
        )
        .group_by(keys)
        .agg(
            ((pl.col("_e") - pl.col("_s")).dt.total_days() + 1).sum().alias("active_days"),
            pl.col("_s").min().alias("first_active_day"),
        )
    )
    active = mo.tagged(active).with_columns(
        pl.col("active_days").clip(upper_bound=mo.bound("days_in_month")).cast(pl.Int64))
    has_pay_record_on_first = (
        mo.spread(md["basic_pay"], ("for_period", "_first")).filter(_valid_on(first)).select(keys).unique()
        .with_columns(pl.lit(True).alias("_bp1"))
    )
    facts = (
        active.join(has_pay_record_on_first, on=keys, how="left")
        .with_columns(
            pl.when(pl.col("_bp1")).then(mo.bound("_first") if mo.one else
                                         pl.col("for_period").replace_strict(mo.frame["for_period"], mo.frame["_first"]))
            .otherwise(pl.col("first_active_day")).alias("reference_day"))
        .drop("_bp1", "first_active_day")
    )
    facts = _join_on_reference_day(facts, md["basic_pay"], ["grade", "step", "employment_pct"], keys)
    facts = _join_on_reference_day(facts, md["assignments"], ["staff_category", "duty_station", "entity"], keys)
    facts = facts.with_columns(
        pl.when(pl.col("staff_category") == "G").then(pl.lit("CHF"))
        .when(pl.col("staff_category").is_in(["P", "D"])).then(pl.lit("USD"))
        .otherwise(None).alias("currency")
    )
    fam = (
        md["family"].filter(pl.col("is_dependent").fill_null(False))
        .join(facts.select(*keys, "reference_day"), on="pernr")
        .filter(_valid_on(pl.col("reference_day")))
    )
    spouses = (
        fam.filter(pl.col("member_type") == "1").select(keys).unique()
        .with_columns(pl.lit(True).alias("has_dependent_spouse"))
    )
    children = (
        fam.filter(pl.col("member_type") == "2").sort("member_id")
        .unique(subset=[*keys, "member_id"], keep="last")
        .group_by(keys).agg(pl.col("birth_date").alias("child_birth_dates"))
    )
    return (
        facts.join(spouses, on=keys, how="left")
        .join(children, on=keys, how="left")
        .with_columns(pl.col("has_dependent_spouse").fill_null(False))
        .select(FACT_COLUMNS)
        .sort(keys)
    )


def _join_on_reference_day(facts: pl.DataFrame, records: pl.DataFrame, cols: list[str],
                           keys: list[str]) -> pl.DataFrame:
    valid = (
        records.select("pernr", "valid_from", "valid_to", *cols)
        .join(facts.select(*keys, "reference_day"), on="pernr")
        .filter(_valid_on(pl.col("reference_day")))
    )
    return facts.join(_latest_per(valid, keys).select(*keys, *cols), on=keys, how="left")


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


def _num_den(values: list[Fraction | None], name: str) -> dict[str, pl.Series]:
    return {f"{name}_num": pl.Series([None if v is None else v.numerator for v in values], dtype=I128),
            f"{name}_den": pl.Series([None if v is None else v.denominator for v in values], dtype=I128)}


def _reference_frames(by_period: dict[str, dict]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The reference values of each period (`reference_for_period`) as frames keyed by
    for_period: scale (+ grade, step), multipliers (+ duty_station), rates (one row)."""
    periods = list(by_period)
    scale = pl.concat([pl.DataFrame(schema={"for_period": pl.String, "grade": pl.String, "step": pl.String,
                                            "annual_net_cents": pl.Int64, "annual_pr_cents": pl.Int64})]
                      + [r["scale"].select(pl.lit(p).alias("for_period"), "grade", "step",
                                           pl.col("annual_net_cents").cast(pl.Int64),
                                           pl.col("annual_pr_cents").cast(pl.Int64))
                         for p, r in by_period.items()])
    mult = [(p, k, v) for p, r in by_period.items() for k, v in r["multipliers"].items()]
    mult = pl.DataFrame({"for_period": pl.Series([m[0] for m in mult], dtype=pl.String),
                         "duty_station": pl.Series([m[1] for m in mult], dtype=pl.String),
                         **_num_den([m[2] for m in mult], "multiplier")})

    def rate(key: str, times: int = 1) -> list[Fraction | None]:
        return [None if r["rates"].get(key) is None else r["rates"][key] * times for r in by_period.values()]

    limits = [r["rates"].get("CHILD_AGE_LIMIT") for r in by_period.values()]
    rates = pl.DataFrame({"for_period": pl.Series(periods, dtype=pl.String),
                          **_num_den(rate("PENSION_STAFF_RATE"), "pension"), **_num_den(rate("SPOUSE_RATE"), "spouse"),
                          **_num_den(rate("HEALTH_RATE"), "health"),
                          **_num_den(rate("CHILD_ANNUAL_USD", 100), "child_usd"),
                          **_num_den(rate("CHILD_ANNUAL_CHF", 100), "child_chf"),
                          "_age_limit": pl.Series([None if v is None else int(v) for v in limits], dtype=pl.Int64)})
    return scale, mult, rates


def attach_reference(facts: pl.DataFrame, refp: dict) -> pl.DataFrame:
    """Add the scale amounts, multiplier and rates (as exact num/den) to the facts.

    Grain unchanged: one row per staff member with f > 0. Adds n_children (dependent
    children under the age limit on the reference day)."""
    return attach_references(facts, {p: refp for p in facts["for_period"].unique().to_list()})


def attach_references(facts: pl.DataFrame, by_period: dict[str, dict]) -> pl.DataFrame:
    """`attach_reference` of facts of several periods, each with its own reference values
    (`by_period`: for_period -> `reference_for_period`). Grain unchanged."""
    one = len(by_period) <= 1
    keys = ["pernr"] if one else ["pernr", "for_period"]
    scale, mult, rates = _reference_frames(by_period)
    if one:  # one period: its values as literals, joined on the staff member's own keys
        scale, mult = scale.drop("for_period"), mult.drop("for_period")
        values = rates.row(0, named=True) if rates.height else {c: None for c in rates.columns}
        lits = {c: pl.lit(values[c], dtype=rates.schema[c]).alias(c) for c in rates.columns if c != "for_period"}
    b = pl.col("birth_date")
    lim = pl.col("_age_limit")
    leap_day = (b.dt.month() == 2) & (b.dt.day() == 29)
    target_year = b.dt.year() + lim
    target_is_leap = (target_year % 4 == 0) & ((target_year % 100 != 0) | (target_year % 400 == 0))
    turns_limit = (
        pl.when(leap_day & ~target_is_leap)
        .then(pl.date(target_year, 3, 1))
        .otherwise(pl.date(target_year, b.dt.month(), b.dt.day()))
    )
    kids = (
        facts.select(*keys, "reference_day", "child_birth_dates")
        .explode("child_birth_dates")
        .drop_nulls("child_birth_dates")
        .rename({"child_birth_dates": "birth_date"})
    )
    kids = kids.with_columns(lits["_age_limit"]) if one else kids.join(rates.select("for_period", "_age_limit"),
                                                                       on="for_period")
    kids = kids.filter(lim.is_not_null()).filter(pl.col("reference_day") < turns_limit)  # no age limit: none count
    n_children = kids.group_by(keys).agg(pl.len().cast(pl.Int64).alias("n_children"))
    out = facts.join(scale, on=[*keys[1:], "grade", "step"], how="left").join(
        mult, on=[*keys[1:], "duty_station"], how="left").join(n_children, on=keys, how="left")
    out = (out.with_columns(e for c, e in lits.items() if c != "_age_limit") if one
           else out.join(rates.drop("_age_limit"), on="for_period", how="left"))
    usd = pl.col("currency") == "USD"
    return out.with_columns(
        pl.col("n_children").fill_null(0),
        pl.when(usd).then(pl.col("child_usd_num")).otherwise(pl.col("child_chf_num")).alias("child_num"),
        pl.when(usd).then(pl.col("child_usd_den")).otherwise(pl.col("child_chf_den")).alias("child_den"),
    ).select(*facts.columns, *REFERENCE_COLUMNS)


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
    """Expected deterministic lines (`expected_wide`, one row per wage type). Grain: one row per
    staff member per wage type. Out: pernr, for_period, wage_type, expected_cents (zero lines
    dropped; null when an input is missing)."""
    return lines_of(expected_wide(facts, written, overtime_hours))


def expected_wide(
    facts: pl.DataFrame,
    written: pl.DataFrame | None = None,
    overtime_hours: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Expected deterministic amounts. Grain: one row per staff member and for-period (sorted
    by them), a column per wage type of MODEL_WAGE_TYPES: 0 where the model has no line, null
    where an input is missing.

    `facts` from `attach_reference` (several periods: `written` and `overtime_hours` are
    given for one period only, and are then None). `written`: pay lines of the same for-period
    (pernr, wage_type, amount_cents) — 1010, 1100 and 3100 use 1000/1010 as written
    (summed when written twice; the model amount when missing). `overtime_hours`:
    (pernr, hours_num, hours_den) for 1400.
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
    keys = ["pernr", "for_period"]
    return f.select(*keys, *[pl.col(f"m{wt}").alias(wt) for wt in MODEL_WAGE_TYPES]).sort(keys)


def lines_of(wide: pl.DataFrame) -> pl.DataFrame:
    """`expected_wide`'s amounts as lines: one row per staff member, period and wage type, zero
    amounts dropped, sorted by staff member, period and wage type."""
    # the wide rows (sorted) unpivoted wage type by wage type (MODEL_WAGE_TYPES ascends), then
    # each staff member's seven gathered together: the order of a sort by staff member and wage
    # type, without sorting seven times the rows by text
    keys = ["pernr", "for_period"]
    k, row = len(MODEL_WAGE_TYPES), pl.int_range(0, wide.height * len(MODEL_WAGE_TYPES), eager=True)
    long = wide.unpivot(index=keys, variable_name="wage_type", value_name="expected_cents")
    return long[(row % k) * wide.height + row // k].filter(
        pl.col("expected_cents").is_null() | (pl.col("expected_cents") != 0))


def _written_amount(written: pl.DataFrame | None, wage_type: str, alias: str) -> pl.DataFrame:
    if written is None:
        return pl.DataFrame(schema={"pernr": pl.String, alias: pl.Int64})
    return (
        written.filter(pl.col("wage_type") == wage_type)
        .group_by("pernr")
        .agg(pl.col("amount_cents").sum().cast(pl.Int64).alias(alias))
    )


def expected_for_period(md: dict[str, pl.DataFrame], ref: dict[str, pl.DataFrame], period: str,
                        written: pl.DataFrame | None = None, overtime_hours: pl.DataFrame | None = None,
                        pernrs: list[str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Facts (with reference values) and expected lines of every staff member in a period
    (`expected_wide_for_period`, its amounts as lines)."""
    facts, wide = expected_wide_for_period(md, ref, period, written, overtime_hours, pernrs)
    return facts, lines_of(wide)


def expected_wide_for_period(
    md: dict[str, pl.DataFrame],
    ref: dict[str, pl.DataFrame],
    period: str,
    written: pl.DataFrame | None = None,
    overtime_hours: pl.DataFrame | None = None,
    pernrs: list[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Facts (with reference values) and expected amounts (`expected_wide`, one row per staff
    member) of every staff member in a period."""
    facts = staff_month_facts(md if pernrs is None else subset(md, pernrs), period)
    facts = attach_reference(facts, reference_for_period(ref, period))
    return facts, expected_wide(facts, written, overtime_hours)


def expected_for_periods(md: dict[str, pl.DataFrame], ref: dict[str, pl.DataFrame],
                         pairs: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`expected_for_period` of the (pernr, for_period) `pairs` — several periods in one pass,
    with nothing written and no overtime (the retro check's recalculated months).
    Grain: facts one row per pair with f > 0; expected one row per pair per wage type."""
    periods = sorted(pairs["for_period"].unique().to_list())
    facts = staff_months_facts(subset(md, pairs["pernr"].unique().to_list()), periods, pairs)
    facts = attach_references(facts, {p: reference_for_period(ref, p) for p in periods})
    return facts, expected_lines(facts)


def whole_month(now: pl.DataFrame, facts: pl.DataFrame) -> pl.DataFrame:
    """`now` (pernr, amount, ...) with amount_month: the amount / f in whole cents (f = active days
    / days in the month, from `facts`). A prorated variable amount (PRORATED_VARIABLE: a 1500 is
    paid as a monthly amount x f) is compared on what a whole month pays: an allowance multiplied
    in a partial month hides inside the usual amounts as paid. Without facts, the amount."""
    if not {"pernr", "active_days", "days_in_month"} <= set(facts.columns):  # no facts at all
        return now.with_columns(pl.col("amount").cast(pl.Float64).alias("amount_month"))
    f = facts.select("pernr", (pl.col("active_days") / pl.col("days_in_month")).alias("_f")).unique(
        "pernr", keep="first")
    return now.join(f, on="pernr", how="left").with_columns(
        (pl.col("amount") / pl.col("_f")).round(0).fill_null(pl.col("amount").cast(pl.Float64)).alias("amount_month")
    ).drop("_f")


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
