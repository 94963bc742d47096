"""PW110 grade_change_without_action — a grade or step change with no personnel action.

Promotions (02) and step increments (03) take effect on the first day of a month with the
matching PA0000 action on the same day (docs/extract-format.md). A PA0008 record whose grade or
step differs from the record before it, effective within the look-back window, must have
an action 01, 02, 03 or 04 starting the same day.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.context import Context

CODE = "PW110"
CONFIG = (ENABLED, SEVERITY,
          Key("lookback_months", int, "grade/step changes effective this many months back are checked"),
          Key("actions", list[str], "PA0000 actions that justify a grade/step change"))


def run(ctx: Context, params: Params) -> pl.DataFrame:
    first, last, _ = pm.month_bounds(ctx.meta.period)
    since, _, _ = pm.month_bounds(pm.shift_period(ctx.meta.period, -params.lookback_months))
    bp = ctx.inp.md["basic_pay"].sort("pernr", "valid_from")
    prev = bp.select("pernr", (pl.col("valid_to") + timedelta(days=1)).alias("valid_from"),
                     pl.col("grade").alias("prev_grade"), pl.col("step").alias("prev_step"))
    changed = (
        bp.filter((pl.col("valid_from") >= since) & (pl.col("valid_from") <= last))
        .join(prev, on=["pernr", "valid_from"], how="inner")
        .filter((pl.col("grade") != pl.col("prev_grade")) | (pl.col("step") != pl.col("prev_step")))
    )
    allowed = list(params.actions)
    actions = ctx.inp.md["actions"].filter(pl.col("action_type").is_in(allowed)).select("pernr", "valid_from").unique()
    missing = changed.join(actions, on=["pernr", "valid_from"], how="anti")
    rows = []
    for r in missing.iter_rows(named=True):
        what = "promotion" if r["grade"] != r["prev_grade"] else "step increment"
        text = (f"Grade/step changes from {r['prev_grade']} step {r['prev_step']} to {r['grade']} "
                f"step {r['step']} on {r['valid_from']} (a {what}) but PA0000 has no promotion or "
                f"step-increment action on that day.")
        rows.append(finding(ctx, params, r["pernr"], "grade_change_without_action", text, owner="HR",
                            wage_type=pm.WT_BASE,
                            evidence={"from": f"{r['prev_grade']}/{r['prev_step']}", "to": f"{r['grade']}/{r['step']}",
                                      "effective": str(r["valid_from"])}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "grade_change_without_action", ("grade_change_without_action",), run, config=CONFIG,
                    description="Flags PA0008 grade/step changes without the matching PA0000 action.")
