"""PW202's forests fitted on threads are the forests fitted on one (session 8, detect_fit; fitted
on one thread since session 12, which was faster).

scikit-learn draws every tree's seed before it builds any, and keeps the trees in order,
so `n_jobs` must not change a tree. Fitted here both ways on the same staff-run features
and compared split by split, and scored by the detector's own decision_function.
"""

from __future__ import annotations

import numpy as np

from detectors.config import Params
from detectors.models import pw202_isolation as iso


def test_fit_threads_change_no_tree():
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(5)
    x = np.column_stack([rng.lognormal(0, 1, 3000), rng.integers(3, 20, 3000), rng.random(3000),
                         np.where(rng.random(3000) < 0.1, rng.random(3000) * 40, 0.0)])
    one = IsolationForest(n_estimators=100, random_state=11, max_samples=256).fit(x)
    two = IsolationForest(n_estimators=100, random_state=11, max_samples=256, n_jobs=2).fit(x)
    for a, b in zip(one.estimators_, two.estimators_, strict=True):
        for field in ("feature", "threshold", "children_left", "children_right", "n_node_samples"):
            assert np.array_equal(getattr(a.tree_, field), getattr(b.tree_, field)), field
    assert np.array_equal(one.score_samples(x), two.score_samples(x))


def test_the_detector_scores_its_forest_in_tree_order_as_scikit_learn_does():
    """The model's forest is fitted with FIT_THREADS and kept with n_jobs=None: scikit-learn's
    own score_samples (the fallback of decision_function) then adds trees in order."""
    import polars as pl

    rng = np.random.default_rng(9)
    n = 900
    rows = []
    for run in ("R1", "R2"):
        for i in range(n):
            base = int(rng.integers(300_000, 900_000))
            rows += [(run, f"{i:08d}", "202601", "202601", "1000", base, None),
                     (run, f"{i:08d}", "202601", "202601", "/560", int(base * rng.uniform(0.6, 0.9)), None),
                     (run, f"{i:08d}", "202601", "202601", "/101", int(base * rng.uniform(1.0, 1.4)), None)]
    lines = pl.DataFrame(rows, schema=["run_id", "pernr", "for_period", "in_period", "wage_type", "amount_cents",
                                       "quantity"], orient="row")
    params = Params("PW202", {"enabled": True, "severity": "review", "training_runs": 3, "n_estimators": 50,
                              "seed": 3, "quantile": 0.99, "margin": 1.0, "threshold_sample": 500,
                              "min_training_rows": 100, "min_group_rows": 300, "band_split": 4})
    model = iso.IsolationModel(params).fit(lines, ["R1", "R2"])
    assert model.forest_.n_jobs is None
    from sklearn.ensemble import IsolationForest
    from detectors.models.features import FEATURES, staff_run_features

    x = staff_run_features(lines).select(FEATURES).to_numpy()
    alone = IsolationForest(n_estimators=50, random_state=3, max_samples=256).fit(x)
    assert np.array_equal(model.decision_function(x), -alone.score_samples(x))


def test_rows_that_repeat_are_scored_once_and_get_the_score_of_each_copy():
    """decision_function scores each distinct row once (session 13): on rows that repeat,
    in any order, with missing values and signed zeros, every row gets exactly the score
    scikit-learn gives it, signed zeros and all."""
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(13)
    train = np.column_stack([rng.lognormal(0, 1, 2000), rng.integers(3, 20, 2000), rng.random(2000)])
    forest = IsolationForest(n_estimators=60, random_state=2, max_samples=256).fit(train)
    model = iso.IsolationModel(Params("PW202", {}))
    model.forest_ = forest
    kinds = np.array([[1.5, 7.0, 0.25], [1.5, 7.0, np.nan], [0.0, 7.0, 0.5], [-0.0, 7.0, 0.5], [40.0, 3.0, 0.9]])
    x = kinds[rng.integers(0, len(kinds), 500)]
    distinct, copies = iso._distinct_rows(x.astype(np.float32))
    # -0.0 and 0.0 are equal values, one row (session 17; as bytes they were two): a tree's
    # split compares values, so both go down the same path and get the same score
    assert len(distinct) == len(kinds) - 1
    assert np.array_equal(distinct[copies], x.astype(np.float32), equal_nan=True)
    assert np.array_equal(model.decision_function(x), -forest.score_samples(x))
    # a row that differs in its last bit is its own row
    nudged = np.vstack([x[:1], np.nextafter(x[:1].astype(np.float32), np.float32(2))])
    assert len(iso._distinct_rows(nudged.astype(np.float32))[0]) == 2
