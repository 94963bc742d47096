"""PW201 overtime_hours_model — overtime hours against peers and the staff member's own past.

Fit: on earlier FINAL runs, the robust centre and spread (median, 1.4826 x MAD) of monthly
overtime hours among staff who worked overtime, per staff category; and each staff
member's own highest month. Score: robust z against peers. Flag (review) when z >=
`threshold` and the hours exceed `own_ratio` x the staff member's own highest month.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, findings_frame, money
from detectors.context import Context

CODE = "PW201"


def _hours(lines: pl.DataFrame) -> pl.DataFrame:
    if "run_id" not in lines.columns:
        lines = lines.with_columns(pl.lit("current").alias("run_id"))
    return (lines.filter((pl.col("wage_type") == pm.WT_OVERTIME) & (pl.col("for_period") == pl.col("in_period")))
            .group_by("run_id", "pernr").agg(pl.col("quantity").cast(pl.Float64).sum().alias("hours"),
                                             pl.col("amount_cents").sum().alias("amount"),
                                             pl.col("currency").first()))


def fit(history_lines: pl.DataFrame, params: dict) -> dict:
    h = _hours(history_lines)
    if h.height == 0:
        return {"n": 0, "median": None, "scale": None, "own_max": {}}
    med = float(h["hours"].median())
    scale = max(float((h["hours"] - med).abs().median()) * 1.4826, float(params.get("min_scale_hours", 1.0)))
    own = dict(h.group_by("pernr").agg(pl.col("hours").max()).iter_rows())
    return {"n": h.height, "median": med, "scale": scale, "own_max": own}


def score(ctx: Context, model: dict, params: dict) -> pl.DataFrame:
    if not model.get("n") or model["n"] < int(params.get("min_history", 20)):
        # too little history to know what is usual: fall back on a fixed ceiling
        model = {"n": 0, "median": float(params.get("fallback_typical_hours", 10.0)),
                 "scale": float(params.get("fallback_scale_hours", 6.0)), "own_max": {}}
    now = _hours(ctx.current)
    t, own_ratio = float(params.get("threshold", 5.0)), float(params.get("own_ratio", 1.5))
    rows = []
    for r in now.iter_rows(named=True):
        z = (r["hours"] - model["median"]) / model["scale"]
        own = model["own_max"].get(r["pernr"])
        if z < t or (own is not None and r["hours"] <= own * own_ratio):
            continue
        history = (f"; this staff member's highest month so far was {own:g} hours" if own is not None else "")
        text = (f"Overtime of {r['hours']:g} hours ({money(r['amount'], r['currency'])}) is far above what staff "
                f"usually claim (typical {model['median']:g} hours, robust z = {z:.1f}{history}).")
        rows.append({"pernr": r["pernr"], "detector": CODE, "category": "overtime_outlier",
                     "severity": params.get("severity", "review"), "owner": "HR", "wage_type": pm.WT_OVERTIME,
                     "for_period": ctx.meta.period, "amount_cents": r["amount"], "expected_cents": None,
                     "currency": r["currency"], "score": round(min(1.0, z / (z + t)), 4), "explanation": text,
                     "evidence": {"feature": "overtime_hours", "value": r["hours"], "typical": model["median"],
                                  "z": round(z, 2), "own_max": own}})
    return findings_frame(rows)


def run(ctx: Context, params: dict) -> pl.DataFrame:
    model = fit(ctx.inp.history.get("final_lines", pl.DataFrame()), params) if ctx.inp.history.get(
        "final_lines") is not None else {"n": 0}
    ctx.artifacts[CODE] = {k: v for k, v in model.items() if k != "own_max"} | {"n_staff": len(model.get("own_max", {}))}
    return score(ctx, model, params)


DETECTOR = Detector(CODE, "overtime_hours_model", ("overtime_outlier",), run, kind="model",
                    description="Robust z-score of overtime hours against peers and own history.", scope="area")
