"""Amounts in cents as people read them: one home for every cents format of Paywatch."""

from __future__ import annotations

from decimal import Decimal

import polars as pl


def money(cents: int | None, currency: str | None = "") -> str:
    """Amount for explanations and mail: 1,234.56 CHF ("none" when there is no amount)."""
    if cents is None:
        return "none"
    sign = "-" if cents < 0 else ""
    c = abs(int(cents))
    return f"{sign}{c // 100:,}.{c % 100:02d}{(' ' + currency) if currency else ''}"


def for_whole_month(cents: int, month: float | None, currency: str | None = "") -> str:
    """" (1,200.01 CHF for a whole month: paid for part of it)" when the amount read for a whole
    month (paymodel.whole_month) differs from the amount paid by a cent or more; else ""."""
    if month is None or abs(month - cents) < 1:
        return ""
    return f" ({money(round(month), currency)} for a whole month: paid for part of it)"


def plain(cents: int | None) -> str:
    """Amount for CSV files (docs/cli-contract.md): 1234.56, no grouping; "" when there is none."""
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    c = abs(int(cents))
    return f"{sign}{c // 100}.{c % 100:02d}"


def plain_expr(cents: pl.Expr) -> pl.Expr:
    """`plain` as a polars expression (exact: integer division, no floats)."""
    a = cents.abs()
    sign = pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return sign + (a // 100).cast(pl.String) + "." + (a % 100).cast(pl.String).str.zfill(2)


def units(cents: pl.Expr) -> pl.Expr:
    """Cents as currency units (float), for frames handed to tools that want numbers."""
    return cents / 100


def decimal(cents: int | None) -> Decimal | None:
    """Cents as an exact Decimal amount (None stays None)."""
    return None if cents is None else Decimal(int(cents)).scaleb(-2)


def decimal_columns(frame: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    """Integer-cent columns as exact Decimal(38, 2) amounts ({cents column: new name}); the
    cents columns renamed away are dropped."""
    hundred = pl.lit(100).cast(pl.Decimal(38, 0))
    return frame.with_columns(
        *[(pl.col(c).cast(pl.Decimal(38, 2)) / hundred).cast(pl.Decimal(38, 2)).alias(n) for c, n in columns.items()]
    ).drop([c for c, n in columns.items() if c != n])
