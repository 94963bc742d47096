"""PW202 isolation_forest — unusual combinations of a staff member's pay (multivariate).

Fitted per peer group (staff category + grade band, as this run assigns them): a pay mix
usual for directors is not compared with general service staff. A group with fewer than
`min_group_rows` training rows is scored by the model fitted on everyone (pooled).

`IsolationModel` (PyOD style): `fit` trains an IsolationForest on the staff-run features
(models/features.py) of the most recent earlier FINAL runs; `decision_function` =
-score_samples (higher = more unusual); `threshold_` = the `quantile` of the training
scores (at most `threshold_sample` of them, chosen at random with `seed`) times `margin`,
all explicit. With fewer than `min_training_rows` training rows it stays unfitted and
flags nothing. Each flagged row names the features furthest from typical (robust z), with
the staff member's value and the typical value.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.context import Context
from detectors.models.cache import fitted, model_key
from detectors.models.context import band
from detectors.models.features import FEATURES, LABELS, robust_stats, staff_run_features
from detectors.scoring import calibrated

CODE = "PW202"
# trees fitted on one thread: a tree of 256 samples is built faster than joblib hands it to a
# thread (session 12, 100 trees, best of 3: 0.18 s on one thread against 0.26 s on two at
# 30,000 training rows, 0.25 against 0.30 at 120,000, 0.39 against 0.40 at 480,000)
FIT_THREADS = 1
CONFIG = (ENABLED, SEVERITY,
          Key("training_runs", int, "most recent earlier FINAL runs to fit on"),
          Key("n_estimators", int, "trees of the forest"),
          Key("seed", int, "random seed of the forest and of the threshold sample"),
          Key("quantile", float, "threshold = this quantile of training scores ..."),
          Key("margin", float, "... times this margin"),
          Key("threshold_sample", int, "training rows scored for that quantile (all, when fewer)"),
          Key("min_training_rows", int, "fewer training rows: no model, no findings"),
          Key("min_group_rows", int, "training rows a peer group (category + grade band) needs for its own model"),
          Key("band_split", int, "grade levels below this are the lower band"))


class IsolationModel:
    """IsolationForest on staff-run features; higher = more unusual."""

    def __init__(self, params: Params):
        self.params = params
        self.forest_ = None
        self.threshold_: float | None = None

    def fit(self, history_lines: pl.DataFrame, finals: list[str]) -> "IsolationModel":
        """`finals`: earlier FINAL run ids in contract order (the most recent are used)."""
        p = self.params
        self.trained_on_ = finals[-p.training_runs:]
        train = staff_run_features(history_lines.filter(pl.col("run_id").is_in(self.trained_on_)))
        self.n_train_ = train.height
        if train.height < p.min_training_rows:
            return self
        from sklearn.ensemble import IsolationForest  # heavy import: only when a model is fitted

        x = train.select(FEATURES).to_numpy()
        # n_jobs changes no tree (every tree's seed is drawn before any is built, and the trees are
        # kept in order); scored with n_jobs=None: scikit-learn's score_samples adds the trees'
        # depths from its threads in whatever order they finish
        self.forest_ = IsolationForest(n_estimators=p.n_estimators, random_state=p.seed,
                                       max_samples=min(256, len(x)), n_jobs=FIT_THREADS).fit(x)
        self.forest_.set_params(n_jobs=None)
        # the threshold needs the tail of the training scores, not every row: a seeded sample
        # bounds the cost on big payroll areas (all rows when there are fewer)
        cap = p.threshold_sample
        rows = np.random.default_rng(p.seed).choice(len(x), cap, replace=False) if len(x) > cap else slice(None)
        self.threshold_ = float(np.quantile(self.decision_function(x[rows]), p.quantile)) * p.margin
        self.stats_ = robust_stats(train)
        return self

    def __getstate__(self) -> dict:
        # kept in a model cache: the fitted state only (Params are read-only slots, and a
        # cached model is found by a key that already names its parameters)
        return {k: v for k, v in self.__dict__.items() if k != "params"} | {"params": None}

    @property
    def fitted(self) -> bool:
        return self.forest_ is not None

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """-score_samples of the forest, computed as scikit-learn computes it (same trees, same
        order of summation, so the same floats) without its per-tree joblib dispatch, which
        costs more than the trees on a payroll's few thousand rows; the library's own
        method wherever this shortcut does not apply (features subsampled, other internals)."""
        f = self.forest_
        try:
            per_tree = list(zip(f.estimators_, f._decision_path_lengths, f._average_path_length_per_tree,
                                strict=True))
            whole = f._max_features == x.shape[1] == f.n_features_in_
            from sklearn.ensemble._iforest import _average_path_length  # noqa: PLC0415
        except (AttributeError, ImportError, ValueError, IndexError):
            whole = False
        if not whole:
            return -f.score_samples(x)
        xs = np.asarray(x, dtype=np.float32)  # what score_samples validates the input to
        # a row's score depends on that row alone, and many staff share one (same grade, same
        # lines: 3,365 distinct rows of 10,046 at 10,000 staff): each distinct row, compared
        # byte for byte, goes down the trees once and its score is given to every copy
        distinct, copies = _distinct_rows(xs)
        depths = np.zeros(distinct.shape[0], order="f")

        # summed in tree order, as scikit-learn sums them (the same floats), on this thread: the
        # detection stage already runs the detectors side by side, and trees scored on threads
        # of their own made it slower (session 12, stage best of 15 at 40,000 staff: 0.91 s on
        # one thread against 1.10 s; at 10,000: 0.30 against 0.34 s of 9)
        for tree, path_lengths, avg_lengths in per_tree:
            leaves = tree.tree_.apply(distinct)
            depths += path_lengths[leaves] + avg_lengths[leaves] - 1.0
        return self._scores(f, depths, _average_path_length)[copies]

    @staticmethod
    def _scores(f, depths: np.ndarray, average_path_length) -> np.ndarray:
        denominator = len(f.estimators_) * average_path_length([f._max_samples])
        return 2 ** (-np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0))


def _distinct_rows(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct rows of `xs`, the index among them of each row of `xs`). Rows equal value
    for value are one (polars ranks them as structs: a third of the time numpy's sort of the
    rows as bytes took at 40,000 staff); a tree sends equal values down the same path (its
    splits compare values: 0.0 and -0.0 alike, every NaN alike), so each copy gets its score."""
    if xs.shape[0] == 0:
        return xs, np.zeros(0, dtype=np.int64)
    copies = pl.from_numpy(xs).select(pl.struct(pl.all()).rank("dense")).to_series().to_numpy().astype(np.int64) - 1
    first = np.full(int(copies.max()) + 1, len(copies), dtype=np.int64)
    np.minimum.at(first, copies, np.arange(len(copies)))
    return xs[first], copies


def _groups(ctx: Context, split: int) -> pl.DataFrame:
    """Peer group of each staff member this run. Grain: one row per staff member with facts."""
    return (ctx.facts.select("pernr", "staff_category", "grade").unique("pernr", keep="first")
            .filter(pl.col("staff_category").is_not_null()).select("pernr", band(split).alias("group")))


def run(ctx: Context, params: Params) -> pl.DataFrame:
    runs = ctx.inp.history.runs
    finals = runs.filter(pl.col("run_type") == "FINAL")["run_id"].to_list()
    hist = ctx.inp.history.final_lines
    cache = ctx.inp.models
    recent = finals[-params.training_runs:]
    # the training set, for the cache key: training runs (id + version) and their rows (each
    # run's digest, computed once per run for every model)
    digests = ctx.final_digests() if cache is not None else {}
    key = (model_key(CODE, params, runs.filter(pl.col("run_id").is_in(recent)),
                     *[f"{r}={digests.get(r)}" for r in recent]) if cache is not None else "")
    pooled = fitted(cache, f"{key}-all", lambda: IsolationModel(params).fit(hist, finals))
    if not pooled.fitted:
        return findings_frame([])
    ctx.artifacts[CODE] = pooled
    if ctx.meta.run_type == "OFFCYCLE":
        return findings_frame([])
    now = staff_run_features(ctx.current.vstack(ctx.retro) if ctx.retro.height else ctx.current)
    if now.height == 0:
        return findings_frame([])
    groups = _groups(ctx, params.band_split)
    now = now.join(groups, on="pernr", how="left")
    # training rows per group, counted once: only groups large enough get their own forest
    # (the training runs' staff-runs and staff: the history's alone, kept for the month's later runs)
    training = ctx.from_history(CODE, params, "training_staff", lambda: (
        hist.filter(pl.col("run_id").is_in(recent) & (pl.col("wage_type") == "1000")).select("run_id", "pernr")
        .unique(), hist.filter(pl.col("run_id").is_in(recent))["pernr"].unique()))
    sizes = training[0].join(groups, on="pernr").group_by("group").len()
    own = set(sizes.filter(pl.col("len") >= params.min_group_rows)["group"].to_list())

    # a group's training set: the training rows (in `key`) of its members who have any, named
    # by their sorted staff numbers (every group in one pass)
    trained = (dict(groups.filter(pl.col("group").is_in(sorted(own)) & pl.col("pernr").is_in(training[1].implode()))
                    .sort("pernr").group_by("group").agg(pl.col("pernr").str.join("\n")).iter_rows())
               if cache is not None else {})

    def group_model(g: str) -> IsolationModel:
        def fit() -> IsolationModel:
            members = groups.filter(pl.col("group") == g)["pernr"].implode()
            return IsolationModel(params).fit(hist.filter(pl.col("pernr").is_in(members)), finals)
        if cache is None:
            return fit()
        digest = hashlib.sha256(trained.get(g, "").encode()).hexdigest()
        return fitted(cache, f"{key}-{g}-{digest[:32]}", fit)

    models = {g: group_model(g) for g in sorted(own)}
    ctx.artifacts[f"{CODE}:groups"] = models
    parts = []
    for g, part in now.group_by("group", maintain_order=True):
        m = models.get(g[0], pooled)
        s = m.decision_function(part.select(FEATURES).to_numpy())
        parts.append(part.with_columns(pl.Series("score", s), pl.lit(m.threshold_).alias("threshold"),
                                       pl.lit(g[0] if g[0] in models else "all staff").alias("fitted_on")))
        ctx.artifacts.setdefault(f"{CODE}:stats", {})[g[0]] = m.stats_
    hits = pl.concat(parts).filter(pl.col("score") > pl.col("threshold"))
    cur = ctx.current.group_by("pernr").agg(pl.col("currency").first())
    rows = []
    for r in hits.join(cur, on="pernr", how="left").iter_rows(named=True):
        stats = ctx.artifacts[f"{CODE}:stats"][r["group"]]
        zs = sorted(((abs(r[f] - stats[f][0]) / stats[f][1], f) for f in FEATURES), reverse=True)[:2]
        drivers = "; ".join(f"{LABELS[f]} {r[f]:.2f} (typical {stats[f][0]:.2f})" for _, f in zs)
        text = (f"This staff member's pay is an unusual combination compared with recent FINAL runs of "
                f"{r['fitted_on']}: {drivers}.")
        rows.append(finding(ctx, params, r["pernr"], "multivariate_anomaly", text, owner="HR", currency=r["currency"],
                            score=calibrated(r["score"], r["threshold"]),
                            evidence={"anomaly_score": round(float(r["score"]), 4),
                                      "threshold": round(r["threshold"], 4), "fitted_on": r["fitted_on"],
                                      "drivers": {f: {"value": round(r[f], 4), "typical": round(stats[f][0], 4)}
                                                  for _, f in zs}}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "isolation_forest", ("multivariate_anomaly",), run, kind="model", config=CONFIG,
                    description="IsolationForest on staff-run features fitted on recent FINAL runs.", scope="area")
