"""Staff-run features for the anomaly models, from pay lines only (currency-neutral ratios).

Grain of every frame here: one row per staff member per run.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm

FEATURES = ("net_to_base", "gross_to_base", "n_lines", "retro_to_base", "overtime_hours", "spa_to_base",
            "deductions_to_base")
LABELS = {
    "net_to_base": "net pay / net base salary",
    "gross_to_base": "gross pay / net base salary",
    "n_lines": "number of pay lines",
    "retro_to_base": "retroactive amounts / net base salary",
    "overtime_hours": "overtime hours",
    "spa_to_base": "special post allowance / net base salary",
    "deductions_to_base": "other deductions / net base salary",
}


def staff_run_features(lines: pl.DataFrame) -> pl.DataFrame:
    """Features of every staff member with a net base salary line, per run_id (or one run)."""
    # one run (no run_id): grouped by the staff member alone, its run named after (a second
    # string key costs a third of the pass)
    one = "run_id" not in lines.columns
    cur = pl.col("for_period") == pl.col("in_period")
    wt = pl.col("wage_type")
    amt = pl.col("amount_cents").cast(pl.Float64)
    def only(cond: pl.Expr, value: pl.Expr) -> pl.Expr:
        return pl.when(cond).then(value).otherwise(0.0)

    # masked columns, then plain sums: one pass, no per-group filters (amounts are whole
    # cents, exact in float64, so the order of summation does not matter)
    f = lines.lazy().select(
        *([] if one else ["run_id"]), "pernr",
        only(cur & (wt == pm.WT_BASE), amt).alias("_base"),
        only(wt == "/560", amt).alias("_net"),
        only(wt == "/101", amt).alias("_gross"),
        (~wt.str.starts_with("/")).cast(pl.Float64).alias("n_lines"),
        only(~cur, amt.abs()).alias("_retro"),
        pl.when(wt == pm.WT_OVERTIME).then(pl.col("quantity").cast(pl.Float64)).alias("overtime_hours"),
        only(cur & (wt == pm.WT_SPECIAL_POST), amt).alias("_spa"),
        only(cur & (wt == pm.WT_OTHER_DED), amt.abs()).alias("_ded"),
    ).group_by(*([] if one else ["run_id"]), "pernr").agg(pl.all().sum()).filter(pl.col("_base") > 0).collect()
    return f.select(
        pl.lit("current").alias("run_id") if one else "run_id", "pernr",
        (pl.col("_net") / pl.col("_base")).alias("net_to_base"),
        (pl.col("_gross") / pl.col("_base")).alias("gross_to_base"),
        "n_lines",
        (pl.col("_retro") / pl.col("_base")).alias("retro_to_base"),
        pl.col("overtime_hours").fill_null(0.0),
        (pl.col("_spa") / pl.col("_base")).alias("spa_to_base"),
        (pl.col("_ded") / pl.col("_base")).alias("deductions_to_base"),
    ).sort("run_id", "pernr")


def robust_stats(frame: pl.DataFrame, cols=FEATURES) -> dict[str, tuple[float, float]]:
    """Median and scaled MAD (1.4826 x MAD) per feature, with a small floor."""
    out = {}
    for c in cols:
        s = frame[c].drop_nulls()
        med = float(s.median()) if s.len() else 0.0
        mad = float((s - med).abs().median()) * 1.4826 if s.len() else 0.0
        out[c] = (med, max(mad, 1e-3 + abs(med) * 0.01))
    return out
