"""XA111 shared_iban_across_areas — one bank account on file for staff of several payroll
areas (duty stations paid by different offices). Runs once over all areas of a period,
after each area's own verification; its rows belong to no single run."""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.privacy import mask_iban
from detectors.rules.pw111_shared_iban import shared_accounts


def shared_across_areas(bank_by_area: dict[str, pl.DataFrame], period: str) -> pl.DataFrame:
    """Accounts valid in the period held by staff of two or more payroll areas.
    Grain: one row per staff member per shared account (IBAN masked)."""
    first, last, _ = pm.month_bounds(period)
    frames = [b.with_columns(pl.lit(area).alias("payroll_area")) for area, b in bank_by_area.items()]
    if not frames:
        return pl.DataFrame(schema={"payroll_area": pl.String, "pernr": pl.String, "iban_masked": pl.String,
                                    "since": pl.Date, "explanation": pl.String})
    bank = pl.concat(frames, how="vertical_relaxed").with_columns(
        (pl.col("payroll_area") + ":" + pl.col("pernr")).alias("_holder"))
    shared = shared_accounts(bank.drop("pernr").rename({"_holder": "pernr"}), first, last)
    areas = shared.with_columns(pl.col("pernr").str.split(":").list.first().alias("payroll_area"))
    multi = areas.filter(pl.col("payroll_area").n_unique().over("iban") > 1)
    return multi.with_columns(
        pl.col("pernr").str.split(":").list.last().alias("pernr"),
        pl.col("iban").map_elements(mask_iban, return_dtype=pl.String).alias("iban_masked"),
    ).with_columns(
        pl.format("Bank account {} is on file for staff of {} payroll areas in {}.", pl.col("iban_masked"),
                  pl.col("payroll_area").n_unique().over("iban"), pl.lit(period)).alias("explanation"),
    ).select("payroll_area", "pernr", "iban_masked", "since", "explanation").sort("iban_masked", "payroll_area", "pernr")
