"""The payroll calendar as Prefect schedules, from the [calendar] and [landing] settings:
one cron deployment per expected run (and the monthly close), in the calendar's time zone,
and the landing watcher on an interval."""

from __future__ import annotations

import os

RUN_TYPES = ("SIM1", "SIM2", "SIM3", "FINAL")
WATCHER = "watch-landing"


def crons(cal: dict) -> dict[str, str]:
    """Deployment name -> cron expression (minute hour day-of-month month day-of-week)."""
    hour = int(cal.get("hour", 7))
    out = {f"verify-{rt.lower()}": f"0 {hour} {int(cal[rt])} * *" for rt in RUN_TYPES}
    out["monthly-close"] = f"0 {hour} {int(cal.get('close', 1))} * *"
    return out


def watch_seconds(landing: dict, env: dict | None = None) -> int:
    """How often the landing watcher looks: PAYWATCH_WATCH_SECONDS (tests: a few seconds),
    else `[landing] watch_seconds`."""
    env = os.environ if env is None else env
    return int(env.get("PAYWATCH_WATCH_SECONDS") or landing.get("watch_seconds", 300))
