"""The explicit list of all detectors (no import-time registration), and how to run them."""

from __future__ import annotations

import polars as pl

from detectors.base import DetectionInput, Detector, empty_findings
from detectors.context import prepare
from detectors.rules import (
    pw101_paymodel, pw102_totals, pw103_not_active, pw104_run_type, pw105_duplicates, pw120_retro,
)

ALL_DETECTORS: tuple[Detector, ...] = (
    pw101_paymodel.DETECTOR,
    pw102_totals.DETECTOR,
    pw103_not_active.DETECTOR,
    pw104_run_type.DETECTOR,
    pw105_duplicates.DETECTOR,
    pw120_retro.DETECTOR,
)


def detect(inp: DetectionInput, cfg: dict, only: set[str] | None = None) -> pl.DataFrame:
    """Run every enabled detector on one run. Grain: one row per finding."""
    ctx = prepare(inp)
    parts = [empty_findings()]
    for d in ALL_DETECTORS:
        params = cfg.get(d.code, {})
        if not params.get("enabled", True) or (only is not None and d.code not in only):
            continue
        parts.append(d.run(ctx, params))
    return pl.concat(parts, how="vertical").sort("pernr", "detector", "wage_type", "for_period", nulls_last=False)
