"""PW201 overtime_hours_model — overtime hours against peers and the staff member's own past.

`OvertimeModel` (PyOD style): `fit` on earlier FINAL runs learns the robust centre and
spread (median, 1.4826 x MAD) of monthly overtime hours among staff who worked overtime,
and each staff member's own highest month; with fewer than `min_history` overtime lines it
stands on fixed fallback values instead. `decision_function` = robust z of the hours
against peers (higher = more unusual); `threshold_` = `threshold`. Flag (review) when
z >= threshold_ and the hours exceed `own_ratio` x the staff member's own highest month.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.context import Context
from detectors.money import money
from detectors.scoring import calibrated

CODE = "PW201"
CONFIG = (ENABLED, SEVERITY,
          Key("threshold", float, "robust z at or above which hours are an outlier"),
          Key("own_ratio", float, "and above this multiple of the staff member's own highest month"),
          Key("min_scale_hours", float, "floor of the spread (scaled MAD), in hours"),
          Key("min_history", int, "overtime lines needed in history before fitting ..."),
          Key("fallback_typical_hours", float, "... otherwise this typical month stands in for the median"),
          Key("fallback_scale_hours", float, "... and this spread for the scaled MAD"))


def hours(lines: pl.DataFrame) -> pl.DataFrame:
    """Overtime hours and amount of the current month. Grain: one row per run and staff member."""
    if "run_id" not in lines.columns:
        lines = lines.with_columns(pl.lit("current").alias("run_id"))
    return (lines.filter((pl.col("wage_type") == pm.WT_OVERTIME) & (pl.col("for_period") == pl.col("in_period")))
            .group_by("run_id", "pernr").agg(pl.col("quantity").cast(pl.Float64).sum().alias("hours"),
                                             pl.col("amount_cents").sum().alias("amount"),
                                             pl.col("currency").first()))


class OvertimeModel:
    """Robust z of monthly overtime hours against peers; higher = more unusual."""

    def __init__(self, params: Params):
        self.params = params
        self.threshold_ = params.threshold

    def fit(self, history_lines: pl.DataFrame) -> "OvertimeModel":
        h = hours(history_lines)
        self.n_ = h.height
        if self.n_ < self.params.min_history or self.n_ == 0:
            # too little history to know what is usual: fall back on a fixed ceiling
            self.fitted_ = False
            self.median_, self.scale_ = self.params.fallback_typical_hours, self.params.fallback_scale_hours
            self.own_max_: dict[str, float] = {}
            return self
        self.fitted_ = True
        self.median_ = float(h["hours"].median())
        self.scale_ = max(float((h["hours"] - self.median_).abs().median()) * 1.4826, self.params.min_scale_hours)
        self.own_max_ = dict(h.group_by("pernr").agg(pl.col("hours").max()).iter_rows())
        return self

    def decision_function(self, x: pl.DataFrame) -> np.ndarray:
        """Robust z of each row's `hours`."""
        return np.array([(v - self.median_) / self.scale_ for v in x["hours"].to_list()], dtype=float)


def run(ctx: Context, params: Params) -> pl.DataFrame:
    model = OvertimeModel(params).fit(ctx.inp.history.final_lines)
    ctx.artifacts[CODE] = model
    now = hours(ctx.current)
    rows = []
    for r, z in zip(now.iter_rows(named=True), model.decision_function(now)):
        own = model.own_max_.get(r["pernr"])
        if z < model.threshold_ or (own is not None and r["hours"] <= own * params.own_ratio):
            continue
        history = (f"; this staff member's highest month so far was {own:g} hours" if own is not None else "")
        text = (f"Overtime of {r['hours']:g} hours ({money(r['amount'], r['currency'])}) is far above what staff "
                f"usually claim (typical {model.median_:g} hours, robust z = {z:.1f}{history}).")
        rows.append(finding(ctx, params, r["pernr"], "overtime_outlier", text, owner="HR", wage_type=pm.WT_OVERTIME,
                            amount_cents=r["amount"], currency=r["currency"],
                            score=calibrated(float(z), model.threshold_),
                            evidence={"feature": "overtime_hours", "value": r["hours"], "typical": model.median_,
                                      "z": round(float(z), 2), "own_max": own}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "overtime_hours_model", ("overtime_outlier",), run, kind="model", config=CONFIG,
                    description="Robust z-score of overtime hours against peers and own history.", scope="area")
