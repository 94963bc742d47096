"""The frames the data-quality suites validate, built from the warehouse for one run.

Every frame comes from the run as the warehouse holds it (`DetectionInput`: its pay lines,
the master data and reference records it carried, the previous run of the same kind), never
from a second copy of the extract. Cross-table facts ("this RT staff number is in PA0001",
"this record overlaps another one", "head count against the previous run") are computed
here in polars as plain columns, and the expectation files (paywatch/dq/suites/*.json)
assert them, so every threshold lives in those files.

Conventions of the frames handed to Great Expectations (pandas, at the edge):
- dates are integers YYYYMMDD as in the extract (99991231 = open-ended);
- amounts are in currency units (float), not cents;
- no names, IBANs or other personal data besides the staff number (PERNR): the failing
  rows GX keeps (and Data Docs show) can only name staff by PERNR;
- `record` numbers the rows 1..n, so a failing row can be traced back to its frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from detectors import paymodel as pm
from detectors.base import DetectionInput
from detectors.config import defaults
from detectors.overlaps import overlaps, window

# frame name -> (source, columns kept, columns whose records must not overlap in time)
FILE_FRAMES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "PA0000": ("md:actions", ("pernr", "valid_from", "valid_to", "action_type", "employment_status"), ("pernr",)),
    "PA0001": ("md:assignments", ("pernr", "valid_from", "valid_to", "duty_station", "staff_category", "entity",
                                  "payroll_area"), ("pernr",)),
    "PA0008": ("md:basic_pay", ("pernr", "valid_from", "valid_to", "grade", "step", "employment_pct"), ("pernr",)),
    "PA0009": ("md:bank_details", ("pernr", "valid_from", "valid_to", "bank_country", "currency"), ("pernr",)),
    "PA0021": ("md:family", ("pernr", "member_id", "member_type", "birth_date", "valid_from", "valid_to",
                             "is_dependent"), ("pernr", "member_id")),
    "T510": ("ref:pay_scale", ("grade", "step", "valid_from", "valid_to", "annual_net_cents", "annual_pr_cents",
                               "currency"), ("grade", "step")),
    "T7UNPA": ("ref:post_adjustment", ("duty_station", "valid_from", "valid_to", "multiplier_pct"), ("duty_station",)),
    "T512W": ("ref:wage_types", ("wage_type", "wage_type_text", "wage_class", "run_types", "owner"), ()),
    "T7UNRATE": ("ref:rates", ("rate_key", "rate_value", "valid_from", "valid_to"), ("rate_key",)),
}
DATE_COLUMNS = ("valid_from", "valid_to", "birth_date")
FRAME_NAMES = (*FILE_FRAMES, "RT", "staff", "stations", "run")


@dataclass(frozen=True)
class RunFrames:
    """The frames of one run (polars; `to_pandas` at the GX edge) and the run's identity."""

    run_id: str
    payroll_area: str
    period: str
    run_type: str
    frames: dict[str, pl.DataFrame]


def _yyyymmdd(col: str) -> pl.Expr:
    c = pl.col(col)
    return (c.dt.year().cast(pl.Int64) * 10000 + c.dt.month().cast(pl.Int64) * 100
            + c.dt.day().cast(pl.Int64)).alias(col)


def _numbered(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_row_index("record", offset=1).with_columns(pl.col("record").cast(pl.Int64))


def _overlaps(df: pl.DataFrame, keys: tuple[str, ...], days: tuple) -> pl.DataFrame:
    """`overlaps` = the record overlaps an earlier record of the same key on a day of PW106's
    window (detectors/overlaps.py, the helper PW106 uses): a duplicated record overlaps its twin."""
    if not keys:
        return df
    return overlaps(df, keys, *days).drop("overlap_from", "overlap_to")


def _file_frame(inp: DetectionInput, name: str, days: tuple) -> pl.DataFrame:
    source, cols, keys = FILE_FRAMES[name]
    kind, table = source.split(":")
    df = (inp.md if kind == "md" else inp.ref)[table].select(cols)
    df = _overlaps(df, keys, days)
    if kind == "ref" and "valid_from" in df.columns:  # reference records start on a first of month
        df = df.with_columns((pl.col("valid_from").dt.day() == 1).alias("starts_on_first"))
    for c in ("annual_net_cents", "annual_pr_cents"):
        if c in df.columns:
            df = df.with_columns((pl.col(c) / 100).alias(c.removesuffix("_cents"))).drop(c)
    if "multiplier_pct" in df.columns:
        df = df.with_columns(pl.col("multiplier_pct").cast(pl.Float64).alias("multiplier")).drop("multiplier_pct")
    if "rate_value" in df.columns:
        df = df.with_columns(pl.col("rate_value").cast(pl.Float64))
    return df


def _category_currency(category: pl.Expr) -> pl.Expr:
    return (pl.when(category == "G").then(pl.lit("CHF"))
            .when(category.is_in(["P", "D"])).then(pl.lit("USD")).otherwise(None))


def build(inp: DetectionInput, previous: DetectionInput | None = None,
          overlap_months: int | None = None) -> RunFrames:
    """Every frame of the run, keyed by the frame names the suites declare (`meta.frame`).
    `overlap_months`: PW106's `lookback_months` (None: as shipped in detectors/defaults.toml)."""
    meta = inp.meta
    period = meta.period
    first, _, _ = pm.month_bounds(period)
    days = window(period, defaults()["PW106"]["lookback_months"] if overlap_months is None else overlap_months)
    frames: dict[str, pl.DataFrame] = {name: _file_frame(inp, name, days) for name in FILE_FRAMES}

    # T510: currency of the grade's category; T7UNRATE: which records are read for the period
    frames["T510"] = frames["T510"].with_columns(
        (pl.col("currency") == _category_currency(pl.col("grade").str.slice(0, 1))).alias("currency_matches_grade"))
    frames["T7UNRATE"] = frames["T7UNRATE"].with_columns(
        ((pl.col("valid_from") <= first) & (pl.col("valid_to") >= first)).alias("valid_for_period"))

    # staff active in the period (f > 0), as the pay model sees them on their reference day
    facts = pm.staff_month_facts(inp.md, period)
    lines = inp.lines
    paid = lines.filter(pl.col("wage_type") == "/560").select("pernr").unique().with_columns(
        pl.lit(True).alias("has_pay_line"))
    refp = pm.reference_for_period(inp.ref, period)
    scale = refp["scale"].select("grade", "step").unique().with_columns(pl.lit(True).alias("in_t510"))
    bank = inp.md["bank_details"].join(facts.select("pernr", "reference_day"), on="pernr").filter(
        (pl.col("valid_from") <= pl.col("reference_day")) & (pl.col("valid_to") >= pl.col("reference_day")))
    bank = bank.sort("valid_from").group_by("pernr").agg(pl.col("currency").last().alias("bank_currency"))
    no_pay_reason = pl.lit("off-cycle run: only the staff paid in it are listed") \
        if meta.run_type == "OFFCYCLE" else pl.lit(None, dtype=pl.String)
    staff = (
        facts.select("pernr", "staff_category", "duty_station", "grade", "step", pl.col("currency").alias("pay_currency"))
        .join(paid, on="pernr", how="left").join(scale, on=["grade", "step"], how="left")
        .join(bank, on="pernr", how="left")
        .with_columns(
            pl.col("has_pay_line").fill_null(False),
            pl.col("in_t510").fill_null(False),
            no_pay_reason.alias("no_pay_reason"),
        )
        .with_columns(
            (pl.col("has_pay_line") | pl.col("no_pay_reason").is_not_null()).alias("paid_or_reason"),
            pl.when(pl.col("bank_currency").is_null() | pl.col("pay_currency").is_null()).then(None)
            .otherwise(pl.col("bank_currency") == pl.col("pay_currency")).alias("bank_currency_matches"),
            pl.when(pl.col("grade").is_null() | pl.col("staff_category").is_null()).then(None)
            .otherwise(pl.col("grade").str.slice(0, 1) == pl.col("staff_category")).alias("grade_matches_category"),
        )
        .sort("pernr")
    )
    frames["staff"] = staff

    # duty stations with P/D staff: is a post adjustment multiplier valid for the period?
    # A station T7UNPA does not know at all is a staff member's WERKS error (a finding: PW141);
    # a known station without a multiplier for the period is reference data missing (run level).
    mult = pl.DataFrame({"duty_station": list(refp["multipliers"])}, schema={"duty_station": pl.String})
    known = inp.ref["post_adjustment"].select("duty_station").unique().with_columns(pl.lit(True).alias("known_station"))
    frames["stations"] = (
        facts.filter(pl.col("staff_category").is_in(["P", "D"]))
        .with_columns(pl.col("duty_station").fill_null("(none)"))
        .group_by("duty_station").agg(pl.len().cast(pl.Int64).alias("pd_staff"))
        .join(mult.with_columns(pl.lit(True).alias("has_multiplier")), on="duty_station", how="left")
        .join(known, on="duty_station", how="left")
        .with_columns(pl.col("has_multiplier").fill_null(False), pl.col("known_station").fill_null(False))
        .sort("duty_station")
    )

    # pay lines, with the cross-table facts
    known_staff = inp.md["assignments"].select("pernr").unique().with_columns(pl.lit(True).alias("pernr_in_pa0001"))
    known_wt = inp.ref["wage_types"].select("wage_type").unique().with_columns(pl.lit(True).alias("wage_type_in_t512w"))
    frames["RT"] = (
        lines.select("pernr", "for_period", "in_period", "wage_type", "amount_cents", "currency", "quantity")
        .with_columns((pl.col("amount_cents") / 100).alias("amount"), pl.col("quantity").cast(pl.Float64),
                      (pl.col("for_period") < pl.col("in_period")).alias("is_retro"))
        .drop("amount_cents")
        .join(known_staff, on="pernr", how="left").join(known_wt, on="wage_type", how="left")
        .join(staff.select("pernr", "pay_currency"), on="pernr", how="left")
        .with_columns(
            pl.col("pernr_in_pa0001").fill_null(False),
            pl.col("wage_type_in_t512w").fill_null(False),
            # current-month lines are in the pay currency of the staff category
            pl.when(pl.col("is_retro") | pl.col("pay_currency").is_null()).then(None)
            .otherwise(pl.col("currency") == pl.col("pay_currency")).alias("currency_matches_category"),
        )
        .drop("pay_currency")
    )

    # the run as a whole against the previous run of the same kind
    headcount, n_lines = lines["pernr"].n_unique(), lines.height
    prev_head = prev_lines = prev_id = None
    if previous is not None:
        prev_id = previous.meta.run_id
        prev_head, prev_lines = previous.lines["pernr"].n_unique(), previous.lines.height

    def change(now: int, before: int | None) -> float | None:
        return None if not before else (now - before) / before

    frames["run"] = pl.DataFrame([{
        "run_id": meta.run_id, "run_type": meta.run_type, "period": period, "previous_run_id": prev_id,
        "active_staff": facts.height, "headcount": headcount, "headcount_previous": prev_head,
        "headcount_change": change(headcount, prev_head), "line_count": n_lines,
        "line_count_previous": prev_lines, "line_count_change": change(n_lines, prev_lines),
    }], schema={"run_id": pl.String, "run_type": pl.String, "period": pl.String, "previous_run_id": pl.String,
                "active_staff": pl.Int64, "headcount": pl.Int64, "headcount_previous": pl.Int64,
                "headcount_change": pl.Float64, "line_count": pl.Int64, "line_count_previous": pl.Int64,
                "line_count_change": pl.Float64})

    out = {}
    for name, df in frames.items():
        dates = [c for c in DATE_COLUMNS if c in df.columns]
        out[name] = _numbered(df.with_columns(*[_yyyymmdd(c) for c in dates]) if dates else df)
    return RunFrames(meta.run_id, meta.payroll_area, period, meta.run_type, out)
