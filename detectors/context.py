"""Derived frames several detectors share, computed once per run (pure, frames in/out)."""

from __future__ import annotations

import threading
from functools import cached_property

import polars as pl

from detectors import paymodel as pm
from detectors.base import DetectionInput


class Context:
    """A run prepared for detection.

    current: lines of the run's own month (FPPER = INPER). retro: FPPER < INPER.
    facts: one row per staff member active in the month (paymodel.attach_reference).
    expected: one row per staff member per deterministic wage type (as-written rule);
    expected_wide: the same amounts, one row per staff member (paymodel.expected_wide).
    status_days: one row per staff member with lines: days of the month per STAT2.
    wage_types: T512W (wage_type, wage_type_text, wage_class, run_types, owner).
    facts, expected, status_days and expected_wide may be given as `pending` (a function that
    returns the four): computed then on first use, once, whichever detector thread asks first (the
    others wait), so that detectors that read none of them run meanwhile.
    """

    def __init__(self, inp: DetectionInput, current: pl.DataFrame, retro: pl.DataFrame, facts: pl.DataFrame | None,
                 expected: pl.DataFrame | None, status_days: pl.DataFrame | None, wage_types: pl.DataFrame,
                 artifacts: dict | None = None, *, pending=None, expected_wide: pl.DataFrame | None = None):
        self.inp, self.current, self.retro, self.wage_types = inp, current, retro, wage_types
        self._facts, self._expected, self._status_days = facts, expected, status_days
        self._expected_wide = expected_wide
        self._pending = pending
        self.artifacts = artifacts if artifacts is not None else {}  # fitted models, keyed by detector code
        self._lock = threading.Lock()
        self._prepare_lock = threading.Lock()
        self._final_digests: dict | None = None

    def prepared(self) -> "Context":
        """facts, expected, status_days and expected_wide computed (now, if they were pending)."""
        if self._pending is not None:
            with self._prepare_lock:
                if self._pending is not None:
                    self._facts, self._expected, self._status_days, self._expected_wide = self._pending()
                    self._pending = None
        return self

    @property
    def facts(self) -> pl.DataFrame:
        return self.prepared()._facts

    @property
    def expected(self) -> pl.DataFrame:
        return self.prepared()._expected

    @property
    def status_days(self) -> pl.DataFrame:
        return self.prepared()._status_days

    @property
    def expected_wide(self) -> pl.DataFrame:
        """`expected` with a column per wage type (None when the context was given `expected` alone)."""
        return self.prepared()._expected_wide

    @property
    def meta(self):
        return self.inp.meta

    @cached_property  # threads asking at once may each compute it: the same rows
    def paid(self) -> pl.DataFrame:
        """The staff with any line in this run (pernr), found once per run: the preparation and
        several detectors read it. Grain: one row per staff member, in no particular order."""
        return self.inp.lines.select("pernr").unique()

    def final_digests(self) -> dict[str, str]:
        """Digest of each earlier FINAL's lines in the history (models/cache.py `run_digests`),
        computed once per run for all the models that key a cache on them (detectors run on
        threads: the first to ask computes, the others wait)."""
        given = self.inp.history.final_digests
        if given is not None:  # computed once per delivery where the history was read
            return dict(given)
        with self._lock:
            if self._final_digests is None:
                from detectors.models.cache import run_digests  # noqa: PLC0415

                self._final_digests = run_digests(self.inp.history.final_lines)
            return self._final_digests

    def history_key(self, code: str, params, *parts: str) -> str:
        """Model-cache key of a model fitted on the history's FINALs (`History.final_lines`
        and the FINAL runs): every FINAL run (id, version) and the digest of each one's lines,
        with the detector's code, parameters and `parts`."""
        from detectors.models.cache import model_key  # noqa: PLC0415

        finals = self.inp.history.runs.filter(pl.col("run_type") == "FINAL")
        digests = self.final_digests()
        return model_key(code, params, finals, *parts, *[f"{r}={digests[r]}" for r in sorted(digests)])

    def from_history(self, code: str, params, name: str, compute):
        """`compute()` — something a detector derives from the history's FINALs alone — or its
        value kept in the model cache's memory (this process: a warm worker's SIM2, SIM3 and
        FINAL of a month read the FINALs SIM1 read), under `history_key(code, params, name,
        <compute's source file digest>)`. Memory only: a partitioned run keys each partition
        apart, and its values must not push the fitted models out of the folder. The value is
        the same either way (tests/test_speed_identity.py)."""
        from detectors.models.cache import fitted, source_digest  # noqa: PLC0415

        cache = self.inp.models
        if cache is None:
            return compute()
        memory = getattr(cache, "memory", cache)  # a folder's memory layer, or the cache itself
        return fitted(memory, self.history_key(code, params, name, source_digest(compute)), compute)

    def fitted_on_history(self, code: str, params, model, fit, *parts: str):
        """`model` fitted by `fit(model)` on the history's FINALs, or its state from the model
        cache (`history_key(code, params, *parts)`): SIM2, SIM3 and FINAL of a month have the
        FINALs SIM1 had. The findings are the same either way (tests/test_speed_identity.py)."""
        from detectors.models.cache import fitted_state  # noqa: PLC0415

        cache = self.inp.models
        key = self.history_key(code, params, type(model).__name__, *parts) if cache is not None else ""
        return fitted_state(cache, key, model, fit)

    def text(self, wage_type: str) -> str:
        texts = self._wage_type_texts
        return texts[wage_type] if wage_type in texts else wage_type

    @cached_property
    def _wage_type_texts(self) -> dict[str, str]:
        """T512W texts by wage type, looked up once per finding: built once per run."""
        return dict(self.wage_types.unique("wage_type", keep="first", maintain_order=True)
                    .select("wage_type", "wage_type_text").iter_rows())

    def owners(self) -> pl.DataFrame:
        return self.wage_types.select("wage_type", "owner")


def overtime_hours(current: pl.DataFrame) -> pl.DataFrame:
    """Hours (ANZHL) of 1400 lines as exact fractions, one row per staff member."""
    ot = current.filter((pl.col("wage_type") == pm.WT_OVERTIME) & pl.col("quantity").is_not_null())
    if ot.height == 0:
        return pl.DataFrame(schema={"pernr": pl.String, "hours_num": pl.Int64, "hours_den": pl.Int64})
    ot = ot.group_by("pernr").agg(pl.col("quantity").first())
    # exact fractions computed once per distinct value (a few dozen), joined to the staff
    return ot.join(pm.hours_fraction(ot["quantity"]), on="quantity", how="left").select(
        "pernr", "hours_num", "hours_den")


def status_days(actions: pl.DataFrame, period: str, pernrs: pl.Series) -> pl.DataFrame:
    """Days of the month per employment status. Grain: one row per staff member."""
    first, last, days = pm.month_bounds(period)
    a = actions.filter(pl.col("pernr").is_in(pernrs) & (pl.col("valid_from") <= last) & (pl.col("valid_to") >= first))
    a = a.with_columns(
        ((pl.min_horizontal("valid_to", pl.lit(last)) - pl.max_horizontal("valid_from", pl.lit(first))).dt.total_days() + 1)
        .alias("_d")
    )
    out = a.group_by("pernr").agg(
        pl.col("_d").filter(pl.col("employment_status") == "3").sum().alias("active_days"),
        pl.col("_d").filter(pl.col("employment_status") == "1").sum().alias("slwop_days"),
        pl.col("_d").filter(pl.col("employment_status") == "0").sum().alias("separated_days"),
    )
    base = pl.DataFrame({"pernr": pernrs.unique()})
    return base.join(out, on="pernr", how="left").with_columns(
        pl.col("active_days", "slwop_days", "separated_days").fill_null(0).cast(pl.Int64),
        pl.lit(days, dtype=pl.Int64).alias("days_in_month"),
    )


def prepare(inp: DetectionInput, eager: bool = True) -> Context:
    """The run prepared for detection; with `eager` False, the pay model's facts, expected
    lines and status days are computed on first use (Context.prepared)."""
    lines = inp.lines
    current = lines.filter(pl.col("for_period") == pl.col("in_period"))
    retro = lines.filter(pl.col("for_period") < pl.col("in_period"))
    period = inp.meta.period

    def pending() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        facts, wide = pm.expected_wide_for_period(
            inp.md, inp.ref, period, written=current, overtime_hours=overtime_hours(current)
        )
        return facts, pm.lines_of(wide), status_days(inp.md["actions"], period, ctx.paid["pernr"]), wide

    ctx = Context(inp, current, retro, None, None, None, inp.ref["wage_types"], pending=pending)
    return ctx.prepared() if eager else ctx
