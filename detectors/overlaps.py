"""Overlapping records: one infotype record per key (staff member, family member, grade and
step, ...) and day. One helper for PW106 and the data-quality suites (paywatch/dq/frames.py),
so both see the same overlaps in the same window (PW106's `lookback_months`).

O(n log n): records are sorted per key by start, and each is compared with the running
maximum end of the earlier ones (no self-join). A record that starts on or before that end
overlaps an earlier record on [its start, min(its end, that end)], the union of all its
overlaps with earlier records (they all start no later than it does).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from detectors import paymodel as pm


def window(period: str, lookback_months: int) -> tuple[date, date]:
    """First and last day an overlap must touch to count: from the first day of the month
    `lookback_months` before `period` to the last day of `period`."""
    first, _, _ = pm.month_bounds(pm.shift_period(period, -lookback_months))
    _, end, _ = pm.month_bounds(period)
    return first, end


def overlaps(frame: pl.DataFrame, keys: tuple[str, ...] | list[str], since: date | None = None,
             until: date | None = None) -> pl.DataFrame:
    """`frame` sorted by key, start and end, with `overlaps` (the record overlaps an earlier
    one of its key on a day in [since, until]) and the days it does (`overlap_from`,
    `overlap_to`; null when it does not). Grain: the frame's own (one row per record)."""
    keys = list(keys)
    f = frame.sort([*keys, "valid_from", "valid_to"])
    f = f.with_columns(_running_end(f, keys).alias("_prev_end"))
    hit = (pl.col("_prev_end") >= pl.col("valid_from")).fill_null(False)
    f = f.with_columns(
        pl.when(hit).then(pl.col("valid_from")).alias("overlap_from"),
        pl.when(hit).then(pl.min_horizontal("valid_to", "_prev_end")).alias("overlap_to"),
    )
    touches = pl.col("overlap_from").is_not_null()
    if since is not None:
        touches = touches & (pl.col("overlap_to") >= since)
    if until is not None:
        touches = touches & (pl.col("overlap_from") <= until)
    return f.with_columns(touches.fill_null(False).alias("overlaps")).with_columns(
        [pl.when(pl.col("overlaps")).then(pl.col(c)).alias(c) for c in ("overlap_from", "overlap_to")]
    ).drop("_prev_end")


def _running_end(f: pl.DataFrame, keys: list[str]) -> pl.Series:
    """For each row of `f` (sorted by `keys`, then start): the latest end among the earlier rows
    of its key (null for a key's first row) — `valid_to.cum_max().shift(1).over(keys)`,
    computed without a window per key (thousands of small windows cost seconds): the rows of
    a key are contiguous, so one running maximum over the frame, with each key's ends lifted
    above every earlier key's, gives each key's own running maximum."""
    if f.height == 0:
        return pl.Series("_prev_end", [], dtype=f.schema["valid_to"])
    new_key = pl.lit(False)
    for k in keys:
        new_key = new_key | pl.col(k).ne_missing(pl.col(k).shift(1))
    days = pl.col("valid_to").cast(pl.Int64)
    span = f.select((days.max() - days.min() + 1).fill_null(1)).item()
    low = f.select(days.min().fill_null(0)).item()
    segment = new_key.fill_null(True).cum_sum().cast(pl.Int64)  # first row: shift gives null
    lifted = segment * span + (days - low)
    out = f.select(
        pl.when(new_key.fill_null(True)).then(None)
        .otherwise(lifted.cum_max().shift(1) - segment * span + low)
        .cast(pl.Int64).cast(pl.Date).alias("_prev_end"))
    return out["_prev_end"].cast(f.schema["valid_to"])
