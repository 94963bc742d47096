"""The payroll calendar as Prefect schedules (cron), from the [calendar] config section."""

from __future__ import annotations

RUN_TYPES = ("SIM1", "SIM2", "SIM3", "FINAL")


def crons(cal: dict) -> dict[str, str]:
    """Deployment name -> cron expression (minute hour day-of-month month day-of-week)."""
    hour = int(cal.get("hour", 7))
    out = {f"verify-{rt.lower()}": f"0 {hour} {int(cal[rt])} * *" for rt in RUN_TYPES}
    out["monthly-close"] = f"0 {hour} {int(cal.get('close', 1))} * *"
    return out
