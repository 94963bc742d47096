"""Shared pieces of the notebook functions: cents as exact decimals, wage-type order,
master data and reference tables as carried by a run, the record valid on a day."""

from __future__ import annotations

from datetime import date

import polars as pl

from paywatch.warehouse import queries as q

MASTER = ("actions", "assignments", "basic_pay", "bank_details", "family")
REFERENCE = ("pay_scale", "post_adjustment", "rates")
TOTALS = ("/101", "/550", "/560")


def _wage_type_order(frame: pl.DataFrame, *more: str) -> pl.DataFrame:
    """Wage types in code order with the technical totals last."""
    return frame.sort(pl.col("wage_type").str.starts_with("/"), "wage_type", *more)


def _md(con, run_id: str, pernr: str | None = None, tables=MASTER) -> dict[str, pl.DataFrame]:
    out = {t: q.master_data_as_of_run(con, run_id, f"stg_{t}") for t in tables}
    if pernr is None:
        return out
    return {t: f.filter(pl.col("pernr") == pernr) for t, f in out.items()}


def _ref(con, run_id: str) -> dict[str, pl.DataFrame]:
    return {t: q.reference_as_of_run(con, run_id, f"stg_{t}") for t in REFERENCE}


def _record_on(records: pl.DataFrame, day: date, last: date) -> dict | None:
    """The record valid on `day`; else the latest one starting by `last`; else the latest."""
    if records.height == 0:
        return None
    valid = records.filter((pl.col("valid_from") <= day) & (pl.col("valid_to") >= day))
    if valid.height == 0:
        valid = records.filter(pl.col("valid_from") <= last)
    if valid.height == 0:
        valid = records
    return valid.sort("valid_from").row(-1, named=True)


def age_on(birth: date, day: date) -> int:
    """Age in completed years (a 29 February birthday falls on 1 March in other years)."""
    try:
        birthday = birth.replace(year=day.year)
    except ValueError:
        birthday = date(day.year, 3, 1)
    return day.year - birth.year - (1 if day < birthday else 0)


def _lines(con, run_id: str, pernr: str) -> pl.DataFrame:
    return q.pay_lines(con, run_id).filter(pl.col("pernr") == pernr)
