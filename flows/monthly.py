"""Prefect flow that closes a payroll month: who was held at FINAL, the KPI, the summary."""

from __future__ import annotations

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed

from paywatch.settings import KpiTargets, kpi_targets, load_settings
from detectors.paymodel import shift_period
from paywatch import landing as lnd
from paywatch.lifecycle import DecisionError, close_period, kpi
from paywatch.monthly import write_monthly_summary
from paywatch.warehouse.resource import Warehouse
from flows.verify import artifact_key, tag_flow_run


def kpi_markdown(frame, lines: KpiTargets) -> str:
    """The KPI as a table with a bar per month (the Prefect UI shows markdown, not images)."""
    rows = ["| month | excluded at FINAL | 12-month avg | |", "|---|---|---|---|"]
    for r in frame.iter_rows(named=True):
        bar = "█" * max(1, round(r["excluded_staff"] / 10)) if r["excluded_staff"] else ""
        rows.append(f"| {r['period'][:4]}-{r['period'][4:]} | {r['excluded_staff']} | {r['avg_12m']:.1f} | {bar} |")
    return "\n".join(rows) + f"\n\n2018 average: **{lines.baseline:g}** staff a month · target: **{lines.target:g}**"


def _target(period: str | None, payroll_area: str | None, db: str | None) -> tuple[Warehouse, dict, str, str]:
    """The warehouse, settings, area and period a close is for (default: last month)."""
    wh = Warehouse.at(db)
    cfg = load_settings(wh.paths.config)
    cal = cfg.get("calendar", {})
    area = payroll_area or cal.get("payroll_area", "GV")
    return wh, cfg, area, period or shift_period(lnd.current_period(tz=cal.get("timezone")), -1)


def _close_run_name() -> str:
    """The flow run named for the month it closes (`GV-202512-close`)."""
    params = runtime.flow_run.parameters
    _, _, area, p = _target(params.get("period"), params.get("payroll_area"), params.get("db"))
    return f"{area}-{p}-close"


@flow(name="monthly-close", flow_run_name=_close_run_name, log_prints=False)
def monthly_close(period: str | None = None, payroll_area: str | None = None, db: str | None = None):
    """Close `period` (default: last month): record exclusions and advances, update the KPI,
    write the monthly summary (reports folder) and show the KPI in the Prefect UI."""
    log = get_run_logger()
    wh, cfg, area, p = _target(period, payroll_area, db)
    tag_flow_run([f"area:{area}", f"period:{p}", "run-type:close"])
    with wh.writer(wait_seconds=600) as con:
        try:
            res = close_period(con, area, p, cfg.get("lifecycle", {}))
        except DecisionError as e:
            # a business outcome (e.g. no FINAL yet), not a crash: a log line and a named state
            log.warning("nothing to close: %s", e)
            return Completed(name="Nothing to close", message=str(e))
        folder = write_monthly_summary(con, area, p, wh.paths.reports / f"{area}-{p}-close", cfg)
        frame = kpi(con, area)
    log.info("closed %s %s: %d staff excluded, %d advances recommended", area, p, res.excluded.height,
             res.advances_recommended)
    create_markdown_artifact(key=artifact_key("kpi", area), markdown=f"# Staff excluded at FINAL — {area}\n\n"
                             + kpi_markdown(frame, kpi_targets(cfg)),
                             description="Held-staff KPI toward the target")
    return {"period": p, "excluded": res.excluded.height, "advances": res.advances_recommended,
            "summary": str(folder)}
