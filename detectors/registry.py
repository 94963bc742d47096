"""The explicit list of all detectors (no import-time registration), and how to run them."""

from __future__ import annotations

import polars as pl

from detectors.base import DetectionInput, Detector, empty_findings
from detectors.context import prepare
from detectors.models import pw201_overtime, pw202_isolation
from detectors.rules import (
    pw101_paymodel, pw102_totals, pw103_not_active, pw104_run_type, pw105_duplicates, pw110_grade_action,
    pw111_shared_iban, pw112_bank_change, pw113_new_staff_pay, pw120_retro, pw130_variable_pay,
)

ALL_DETECTORS: tuple[Detector, ...] = (
    pw101_paymodel.DETECTOR,
    pw102_totals.DETECTOR,
    pw103_not_active.DETECTOR,
    pw104_run_type.DETECTOR,
    pw105_duplicates.DETECTOR,
    pw110_grade_action.DETECTOR,
    pw111_shared_iban.DETECTOR,
    pw112_bank_change.DETECTOR,
    pw113_new_staff_pay.DETECTOR,
    pw120_retro.DETECTOR,
    pw130_variable_pay.DETECTOR,
    pw201_overtime.DETECTOR,
    pw202_isolation.DETECTOR,
)


def detect(inp: DetectionInput, cfg: dict, only: set[str] | None = None) -> pl.DataFrame:
    """Run every enabled detector on one run. Grain: one row per finding."""
    return detect_with_artifacts(inp, cfg, only)[0]


def detect_with_artifacts(inp: DetectionInput, cfg: dict, only: set[str] | None = None,
                          models: bool = True) -> tuple[pl.DataFrame, dict]:
    """Findings and the fitted model artefacts (keyed by detector code)."""
    ctx = prepare(inp)
    parts = [empty_findings()]
    for d in ALL_DETECTORS:
        params = cfg.get(d.code, {})
        if not params.get("enabled", True) or (only is not None and d.code not in only):
            continue
        if d.kind == "model" and not models:
            continue
        parts.append(d.run(ctx, params))
    findings = pl.concat(parts, how="vertical").sort("pernr", "detector", "wage_type", "for_period", nulls_last=False)
    return findings, ctx.artifacts
