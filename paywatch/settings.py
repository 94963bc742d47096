"""Paywatch's own settings — the sections of paywatch.toml that are not a detector's — declared
like detector keys (detectors/config.py `Key`), defaulted in detectors/defaults.toml (the one
home of defaults) and validated with them by `load_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detectors.config import Key
from detectors.registry import load_config
from paywatch.cases import rules_of

SECTIONS: dict[str, tuple[Key, ...]] = {
    "lifecycle": (
        Key("advance_enabled", bool, "recommend salary advances for staff excluded at FINAL"),
        Key("advance_min_net_cents", int, "recommend an advance when the held net pay is at least this (cents)"),
    ),
    "calendar": (
        Key("timezone", str, "time zone of the payroll calendar"),
        Key("hour", int, "local hour the scheduled flows start"),
        Key("SIM1", int, "day of month SIM1 is expected and verified"),
        Key("SIM2", int, "day of month SIM2 is expected and verified"),
        Key("SIM3", int, "day of month SIM3 is expected and verified"),
        Key("FINAL", int, "day of month FINAL is expected and verified"),
        Key("close", int, "day of month the previous month is closed"),
        Key("payroll_area", str, "payroll area the scheduled flows verify"),
        Key("settle_seconds", int, "a landing folder must be unchanged this long to be read"),
    ),
    "landing": (
        Key("folder", str, "where deliveries land; empty: <PAYWATCH_HOME>/landing"),
        Key("watch_seconds", int, "the landing watcher looks for new deliveries this often (seconds)"),
        Key("after_pickup", str, "what happens to a handled landing folder: move (to processed/), remove, keep"),
        Key("probe_seconds", float, "a recently changed folder is read when unchanged over this long"),
    ),
    "cases": (
        Key("explains", list[str], "root-cause rules, \"cause > effect, effect, ...\" (`*`: everything of that staff "
            "member in the run); listed first wins (paywatch/cases/rules.py)"),
    ),
    "quality": (
        Key("suites_dir", str, "folder of expectation suites (*.json); empty: the suites shipped in paywatch/dq"),
    ),
    "kpi": (
        Key("baseline_staff_held", float, "staff held at FINAL a month in 2018 (Geneva's baseline)"),
        Key("target_staff_held", float, "staff held at FINAL a month, the target"),
        Key("baseline_staff", int, "staff of the payroll area the baseline and target refer to"),
    ),
    "evaluation": (
        Key("min_recall", float, "share of staff with an error that must get a finding"),
        Key("min_kind_recall", float, "the same for the worst error kind"),
        Key("min_hold_precision", float, "share of held staff that must have an error"),
        Key("max_false_alarm_rate", float, "clean staff flagged, at most, in the worst month (all its runs)"),
        Key("min_mutation_caught", float, "mutation harness (a): deterministic wage types and master data caught"),
        Key("min_variable_mutation_caught", float, "mutation harness (b): variable pay of 3x usual or more caught"),
    ),
}


def load_settings(path: Path | None = None) -> dict:
    """defaults.toml merged with the office's paywatch.toml at `path` (when it exists), every
    section validated (the `[cases]` rules as rules, paywatch/cases/rules.py); raises
    detectors.config.ConfigError with one line naming the file, the section and the key."""
    cfg = load_config(path, SECTIONS)
    rules_of(cfg, f"{path.name if path is not None and path.exists() else 'defaults.toml'}: [cases] explains")
    return cfg


@dataclass(frozen=True)
class KpiTargets:
    """The KPI's reference lines: staff held at FINAL a month in 2018 and the target, for a
    payroll of `for_staff` staff (Geneva's ~10,000), from the `[kpi]` section."""

    baseline: float
    target: float
    for_staff: int

    def scaled(self, staff: int) -> KpiTargets:
        """The same lines for a payroll of `staff` staff (a smaller or simulated area)."""
        f = staff / self.for_staff
        return KpiTargets(round(self.baseline * f, 1), round(self.target * f, 1), staff)


def kpi_targets(cfg: dict | None = None) -> KpiTargets:
    """`[kpi]` of a loaded configuration (default: the shipped defaults)."""
    k = (cfg or load_settings(None))["kpi"]
    return KpiTargets(float(k["baseline_staff_held"]), float(k["target_staff_held"]), int(k["baseline_staff"]))


def warm_worker_wanted(env=None) -> bool:
    """PAYWATCH_WARM_WORKER (1/true/yes/on): the landing watcher, the calendar's pick-ups and
    backfill hand each delivery's verify to the warm worker (flows/warm.py)."""
    import os

    env = os.environ if env is None else env
    return env.get("PAYWATCH_WARM_WORKER", "").strip().lower() in {"1", "true", "yes", "on"}
