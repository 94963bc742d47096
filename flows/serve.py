"""Serve every deployment from this process (no work pool needed): the lightweight
alternative to prefect.yaml + a worker.   uv run python -m flows.serve

The same deployments as prefect.yaml: the calendar (cron in the calendar's time zone), the
landing watcher (an interval) and verify-one / backfill / verify-warm on demand."""

from __future__ import annotations

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron, Interval

from flows.calendar import WATCHER, crons, watch_seconds
from flows.monthly import monthly_close
from flows.verify import backfill, pull_and_verify, verify_run
from flows.warm import verify_in_warm_worker
from paywatch.paths import Paths
from paywatch.settings import load_settings

# one watcher run at a time: a tick that comes while a long verify runs is dropped, not queued
ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def deployments(settings: dict | None = None):
    cfg = settings or load_settings(Paths.default().config)
    cal = cfg.get("calendar", {})
    tz = cal.get("timezone", "Europe/Zurich")
    out = []
    for name, cron in crons(cal).items():
        if name == "monthly-close":
            out.append(monthly_close.to_deployment(name=name, schedules=[Cron(cron, timezone=tz)]))
        else:
            rt = name.removeprefix("verify-").upper()
            out.append(pull_and_verify.to_deployment(name=name, schedules=[Cron(cron, timezone=tz)],
                                                     parameters={"expect_run_type": rt}))
    out.append(pull_and_verify.to_deployment(
        name=WATCHER, schedules=[Interval(watch_seconds(cfg.get("landing", {})), timezone=tz)],
        concurrency_limit=ONE_AT_A_TIME, description="Verify every new delivery within minutes of landing."))
    out.append(verify_run.to_deployment(name="verify-one"))
    out.append(backfill.to_deployment(name="backfill"))
    out.append(verify_in_warm_worker.to_deployment(
        name="verify-warm", description="Verify one run folder in the warm worker (python -m flows.warm)."))
    return out


if __name__ == "__main__":
    serve(*deployments())
