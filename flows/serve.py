"""Serve every deployment from this process (no work pool needed): the lightweight
alternative to prefect.yaml + a worker.   uv run python -m flows.serve"""

from __future__ import annotations

from prefect import serve

from paywatch.settings import load_settings
from flows.calendar import crons
from flows.monthly import monthly_close
from flows.verify import pull_and_verify, verify_run
from paywatch.paths import Paths


def deployments():
    cal = load_settings(Paths.default().config).get("calendar", {})
    tz = cal.get("timezone", "Europe/Zurich")
    out = []
    for name, cron in crons(cal).items():
        if name == "monthly-close":
            out.append(monthly_close.to_deployment(name=name, cron=cron, timezone=tz))
        else:
            rt = name.removeprefix("verify-").upper()
            out.append(pull_and_verify.to_deployment(name=name, cron=cron, timezone=tz,
                                                     parameters={"expect_run_type": rt}))
    out.append(verify_run.to_deployment(name="verify-one"))
    return out


if __name__ == "__main__":
    serve(*deployments())
