"""The explicit list of all detectors (no import-time registration), and how to run them."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl

from detectors.base import DetectionInput, Detector, empty_findings
from detectors.config import DEFAULTS_FILE, ConfigError, Key, check_section, defaults
from detectors.context import prepare
from detectors.partition import split
from detectors.models import pw201_overtime, pw202_isolation, pw203_variable_pay
from detectors.rules import (
    pw101_paymodel, pw102_totals, pw103_not_active, pw104_run_type, pw105_duplicates, pw106_overlaps,
    pw110_grade_action,
    pw111_shared_iban, pw112_bank_change, pw113_new_staff_pay, pw120_retro, pw130_variable_pay,
    pw114_active_not_paid, pw115_bank_integrity, pw140_advance_ledger, pw141_unknown_station,
    pw150_wage_type_limits,
)

# detectors run side by side on this many threads (polars releases the GIL while it works)
DETECT_THREADS = 2 * (os.cpu_count() or 1)

ALL_DETECTORS: tuple[Detector, ...] = (
    pw101_paymodel.DETECTOR,
    pw102_totals.DETECTOR,
    pw103_not_active.DETECTOR,
    pw104_run_type.DETECTOR,
    pw105_duplicates.DETECTOR,
    pw106_overlaps.DETECTOR,
    pw110_grade_action.DETECTOR,
    pw111_shared_iban.DETECTOR,
    pw112_bank_change.DETECTOR,
    pw113_new_staff_pay.DETECTOR,
    pw114_active_not_paid.DETECTOR,
    pw115_bank_integrity.DETECTOR,
    pw120_retro.DETECTOR,
    pw130_variable_pay.DETECTOR,
    pw140_advance_ledger.DETECTOR,
    pw141_unknown_station.DETECTOR,
    pw150_wage_type_limits.DETECTOR,
    pw201_overtime.DETECTOR,
    pw202_isolation.DETECTOR,
    pw203_variable_pay.DETECTOR,
)


# detectors that read none of the prepared pay model (Context.facts, expected, expected_wide,
# status_days), longest first: they run while it is prepared (one that does read it would only wait)
UNPREPARED = ("PW120", "PW115", "PW140", "PW102", "PW105", "PW106", "PW104", "PW110", "PW111")
# the detectors that take longest (bench_scale.py's table by detector, 10,000 to 40,000 staff)
LONGEST = ("PW202", "PW203", "PW101", "PW130", "PW201")


def _longest_first(dp: tuple[Detector, Any]) -> tuple[int, int]:
    code = dp[0].code
    if code in UNPREPARED:
        return (0, UNPREPARED.index(code))
    return (1, LONGEST.index(code)) if code in LONGEST else (2 if dp[0].kind == "model" else 3, 0)


def detect(inp: DetectionInput, cfg: dict, only: set[str] | None = None) -> pl.DataFrame:
    """Run every enabled detector on one run. Grain: one row per finding."""
    return detect_with_artifacts(inp, cfg, only)[0]


def detect_with_artifacts(inp: DetectionInput, cfg: dict, only: set[str] | None = None,
                          models: bool = True, scope: str | None = None) -> tuple[pl.DataFrame, dict]:
    """Findings and the fitted model artefacts (keyed by detector code). `scope` limits the
    run to staff-scope or area-scope detectors (for partitioned fan-out)."""
    # the pay model's facts are prepared in the pool, beside the detectors that need none of them
    ctx = prepare(inp, eager=False)
    todo = []
    for d in ALL_DETECTORS:
        params = d.params(cfg[d.code])  # checked against the declared keys: no defaults here
        if not params.enabled or (only is not None and d.code not in only):
            continue
        if (d.kind == "model" and not models) or (scope is not None and d.scope != scope):
            continue
        todo.append((d, params))
    # detectors are independent (each reads the prepared run, none writes what another reads):
    # run side by side, so that one's Python overlaps another's polars work; stacked in
    # registry order, as one after the other
    # (the preparation first, beside it the detectors that do not wait for it, then the longest
    # first, so that no long one starts last)
    with ThreadPoolExecutor(max_workers=max(1, min(len(todo) + 1, DETECT_THREADS))) as pool:
        prepared = pool.submit(ctx.prepared)
        started = {d.code: pool.submit(d.run, ctx, params) for d, params in sorted(todo, key=_longest_first)}
        prepared.result()
        parts = [started[d.code].result() for d, _ in todo]
    findings = pl.concat([empty_findings(), *parts], how="vertical").sort(
        "pernr", "detector", "wage_type", "for_period", nulls_last=False)
    return findings, ctx.artifacts


def detect_staff_scope(sub: DetectionInput, cfg: dict) -> pl.DataFrame:
    """Staff-scope detectors on one partition."""
    return detect_with_artifacts(sub, cfg, scope="staff")[0]


def detect_partitioned(inp: DetectionInput, cfg: dict, map_partitions=None, key: str = "duty_station") -> pl.DataFrame:
    """The same findings as `detect`, computed per partition (duty station) by
    `map_partitions(list_of_inputs, cfg) -> list_of_frames` (default: one after the other;
    the flow passes Prefect tasks on a thread pool or a Dask cluster), then area-scope
    detectors once over the whole run."""
    parts = list(split(inp, key).values())
    local = (map_partitions or (lambda ps, c: [detect_staff_scope(p, c) for p in ps]))(parts, cfg)
    area, _ = detect_with_artifacts(inp, cfg, scope="area")
    return pl.concat([*local, area], how="vertical").sort("pernr", "detector", "wage_type", "for_period",
                                                        nulls_last=False)


# --- configuration: every detector's declared keys, checked against defaults.toml + paywatch.toml

def declarations() -> dict[str, tuple[Key, ...]]:
    """Every detector's declared keys, by detector code."""
    return {d.code: d.config for d in ALL_DETECTORS}


def _inferred(values: Mapping[str, Any]) -> tuple[Key, ...]:
    """Keys of an undeclared section, typed by their defaults (for callers that do not pass
    the application's declarations)."""
    return tuple(Key(n, list[str] if isinstance(v, list) else type(v), "")
                 for n, v in values.items())


def load_config(override: Path | None = None, sections: Mapping[str, Sequence[Key]] | None = None) -> dict:
    """defaults.toml merged with an override file (the office's paywatch.toml), both checked
    against the declarations: detectors' own, and `sections` for the others (without it,
    other sections are typed by their defaults). Raises ConfigError (one line)."""
    cfg = defaults()
    declared: dict[str, Sequence[Key]] = dict(declarations())
    if sections is not None:
        declared.update(sections)
    for name, values in cfg.items():
        if name not in declared:
            if sections is not None:
                raise ConfigError(f"{DEFAULTS_FILE.name}: [{name}] is not declared")
            declared[name] = _inferred(values)
        check_section(name, declared[name], values, DEFAULTS_FILE.name, partial=False)
    for name in declared.keys() - cfg.keys():
        raise ConfigError(f"{DEFAULTS_FILE.name}: [{name}] is declared but has no defaults")
    if override is None or not override.exists():
        return cfg
    where = override.name
    try:
        user = tomllib.loads(override.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: not a valid TOML file: {e}") from None
    for name, values in user.items():
        if name not in declared:
            raise ConfigError(f"{where}: unknown section [{name}] (known: {', '.join(declared)})")
        check_section(name, declared[name], values, where)
        cfg[name].update(values)
    return cfg
