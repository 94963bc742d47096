"""PW106 overlapping_records — two records of one infotype valid on the same day.

In a correct extract, records of one PERNR in one infotype do not overlap (PA0021: per
family member OBJPS). The pay model would have to guess which one counts. Overlaps that
touch the look-back window up to the end of the period are flagged.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, findings_frame
from detectors.context import Context

CODE = "PW106"
INFOTYPES = {"actions": "PA0000", "assignments": "PA0001", "basic_pay": "PA0008", "bank_details": "PA0009",
             "family": "PA0021"}


def overlaps(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Pairs of records of one key that share at least a day. Grain: one row per pair."""
    f = frame.select(*keys, "valid_from", "valid_to").with_row_index("_i")
    pairs = f.join(f, on=keys, suffix="_b").filter(
        (pl.col("_i") < pl.col("_i_b")) & (pl.col("valid_from") <= pl.col("valid_to_b"))
        & (pl.col("valid_from_b") <= pl.col("valid_to")))
    return pairs.with_columns(
        pl.max_horizontal("valid_from", "valid_from_b").alias("overlap_from"),
        pl.min_horizontal("valid_to", "valid_to_b").alias("overlap_to"))


def run(ctx: Context, params: dict) -> pl.DataFrame:
    first, last, _ = pm.month_bounds(pm.shift_period(ctx.meta.period, -int(params.get("lookback_months", 12))))
    _, end, _ = pm.month_bounds(ctx.meta.period)
    rows = []
    for it, name in INFOTYPES.items():
        keys = ["pernr", "member_id"] if it == "family" else ["pernr"]
        o = overlaps(ctx.inp.md[it], keys).filter((pl.col("overlap_to") >= first) & (pl.col("overlap_from") <= end))
        for r in o.group_by("pernr").agg(pl.len().alias("n"), pl.col("overlap_from").min(),
                                         pl.col("overlap_to").max()).iter_rows(named=True):
            rows.append({"pernr": r["pernr"], "detector": CODE, "category": "overlapping_records",
                         "severity": params.get("severity", "hold"), "owner": "HR", "wage_type": None,
                         "for_period": ctx.meta.period, "amount_cents": None, "expected_cents": None, "currency": None,
                         "score": 1.0,
                         "explanation": (f"{name} has {r['n']} pair(s) of records valid on the same days "
                                         f"({r['overlap_from']} to {r['overlap_to']}); one record per day is allowed."),
                         "evidence": {"infotype": name, "pairs": r["n"], "from": str(r["overlap_from"]),
                                      "to": str(r["overlap_to"])}})
    return findings_frame(rows)


DETECTOR = Detector(CODE, "overlapping_records", ("overlapping_records",), run,
                    description="Flags infotype records of one staff member valid on the same day.")
