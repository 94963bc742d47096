"""PW202 isolation_forest — unusual combinations of a staff member's pay (multivariate).

Fit: an IsolationForest on the staff-run features (models/features.py) of the most recent
earlier FINAL runs. Score: anomaly score = -score_samples (higher = more unusual). The
threshold is the `quantile` of the training scores (at most `threshold_sample` of them,
chosen at random with `seed`) times `margin`, all explicit. Each
flagged row names the features furthest from typical (robust z), with the staff
member's value and the typical value.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from detectors.base import Detector, findings_frame
from detectors.context import Context
from detectors.models.features import FEATURES, LABELS, robust_stats, staff_run_features

CODE = "PW202"


def fit(history_lines: pl.DataFrame, params: dict, finals: list[str] | None = None) -> dict | None:
    """`finals`: earlier FINAL run ids in contract order (the most recent are used)."""
    runs = (finals or [])[-int(params.get("training_runs", 3)):]
    train = staff_run_features(history_lines.filter(pl.col("run_id").is_in(runs)))
    if train.height < int(params.get("min_training_rows", 200)):
        return None
    from sklearn.ensemble import IsolationForest  # heavy import: only when a model is fitted

    x = train.select(FEATURES).to_numpy()
    forest = IsolationForest(n_estimators=int(params.get("n_estimators", 200)), random_state=int(params.get("seed", 0)),
                             max_samples=min(256, len(x))).fit(x)
    # the threshold needs the tail of the training scores, not every row: a seeded sample
    # bounds the cost on big payroll areas (all rows when there are fewer)
    cap = int(params.get("threshold_sample", 50_000))
    rows = np.random.default_rng(int(params.get("seed", 0))).choice(len(x), cap, replace=False) if len(x) > cap else slice(None)
    scores = -forest.score_samples(x[rows])
    threshold = float(np.quantile(scores, float(params.get("quantile", 0.999)))) * float(params.get("margin", 1.1))
    return {"forest": forest, "threshold": threshold, "stats": robust_stats(train), "trained_on": runs,
            "n_train": train.height}


def score(ctx: Context, model: dict | None, params: dict) -> pl.DataFrame:
    if model is None or ctx.meta.run_type == "OFFCYCLE":
        return findings_frame([])
    now = staff_run_features(ctx.current.vstack(ctx.retro) if ctx.retro.height else ctx.current)
    if now.height == 0:
        return findings_frame([])
    s = -model["forest"].score_samples(now.select(FEATURES).to_numpy())
    hits = now.with_columns(pl.Series("score", s)).filter(pl.col("score") > model["threshold"])
    cur = ctx.current.group_by("pernr").agg(pl.col("currency").first())
    rows = []
    for r in hits.join(cur, on="pernr", how="left").iter_rows(named=True):
        zs = sorted(((abs(r[f] - model["stats"][f][0]) / model["stats"][f][1], f) for f in FEATURES), reverse=True)[:2]
        drivers = "; ".join(f"{LABELS[f]} {r[f]:.2f} (typical {model['stats'][f][0]:.2f})" for _, f in zs)
        rows.append({"pernr": r["pernr"], "detector": CODE, "category": "multivariate_anomaly",
                     "severity": params.get("severity", "review"), "owner": "HR", "wage_type": None,
                     "for_period": ctx.meta.period, "amount_cents": None, "expected_cents": None,
                     "currency": r["currency"], "score": round(min(1.0, r["score"] / (2 * model["threshold"])), 4),
                     "explanation": f"This staff member's pay is an unusual combination compared with recent FINAL runs: {drivers}.",
                     "evidence": {"anomaly_score": round(float(r["score"]), 4), "threshold": round(model["threshold"], 4),
                                  "drivers": {f: {"value": round(r[f], 4), "typical": round(model["stats"][f][0], 4)}
                                              for _, f in zs}}})
    return findings_frame(rows)


def run(ctx: Context, params: dict) -> pl.DataFrame:
    hist = ctx.inp.history.get("final_lines")
    runs = ctx.inp.history.get("runs")
    finals = runs.filter(pl.col("run_type") == "FINAL")["run_id"].to_list() if runs is not None else []
    model = fit(hist, params, finals) if hist is not None else None
    if model is not None:
        ctx.artifacts[CODE] = model
    return score(ctx, model, params)


DETECTOR = Detector(CODE, "isolation_forest", ("multivariate_anomaly",), run, kind="model",
                    description="IsolationForest on staff-run features fitted on recent FINAL runs.", scope="area")
