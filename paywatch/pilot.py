"""`paywatch pilot`: a simulated year run by run with the feedback loop closed.

Paywatch mode: every run is verified; after each simulation run, only errors whose staff
member Paywatch reported (hold or review) can be fixed upstream, each with probability
`fix_probability`, before the next regular run. Baseline (late detection, same seed, the
same world): nothing is reported before FINAL, so every error present at FINAL holds its
staff member. Staff held = staff with an open hold at FINAL (false alarms included).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from paywatch.extract.reader import read_run
from paywatch.pipeline import process_loaded
from paywatch.simulate import SimConfig, Simulation
from paywatch.simulate.writer import write_run
from paywatch.warehouse.load import load_run
from paywatch.warehouse.resource import Warehouse

FLAGGED = ("hold", "review")


@dataclass
class MonthRow:
    """One month of one mode. Grain: one row per period per mode."""

    period: str
    errors: int = 0          # staff with an error at any run of the month
    at_final: int = 0        # staff with an error still present at FINAL
    held: int = 0            # staff held at FINAL
    held_cases: int = 0      # cases (staff member + root cause) holding pay at FINAL
    false_alarm_holds: int = 0
    reported_early: int = 0  # error staff reported by a simulation run


@dataclass
class PilotResult:
    baseline: list[MonthRow] = field(default_factory=list)
    paywatch: list[MonthRow] = field(default_factory=list)

    @staticmethod
    def avg(rows: list[MonthRow]) -> float:
        return sum(r.held for r in rows) / len(rows) if rows else 0.0


def run_mode(cfg: SimConfig, det_cfg: dict, mode: str, fix_probability: float, work: Path,
             on_run: Callable[[str, str], None] | None = None) -> list[MonthRow]:
    """Walk the simulated year in one mode ('baseline' or 'paywatch')."""
    sim = Simulation(cfg)
    wh = Warehouse.in_folder(work / mode)
    flagged: set[str] = set()
    months: dict[str, MonthRow] = {}
    seen: dict[str, set[str]] = {}    # error staff per period
    early: dict[str, set[str]] = {}   # error staff reported by a simulation run, per period

    def fixer(out, present) -> set[int]:
        if mode == "baseline":
            return set()
        return {e.error_id for e in present if e.pernr in flagged and sim.fix_rng.random() < fix_probability}

    with wh.writer() as con:
        for out in sim.iter_runs(fixer):
            plan = out.plan
            row = months.setdefault(plan.period, MonthRow(plan.period))
            err_staff = {p for _, p, _ in out.truth}
            seen.setdefault(plan.period, set()).update(err_staff)
            row.errors = len(seen[plan.period])
            if mode == "baseline" and plan.run_type in ("SIM1", "SIM2", "SIM3"):
                if on_run:
                    on_run(mode, plan.run_id)
                continue  # late detection: simulations are not checked
            folder = write_run(out, work / f"{mode}-runs")
            loaded = load_run(con, read_run(folder), archive_dir=wh.paths.archive)
            _, findings, _, _ = process_loaded(con, loaded.run_id, loaded.run_version, det_cfg)
            flagged = set(findings.filter(pl.col("severity").is_in(FLAGGED))["pernr"].to_list())
            if plan.run_type in ("SIM1", "SIM2", "SIM3"):
                early.setdefault(plan.period, set()).update(err_staff & flagged)
                row.reported_early = len(early[plan.period])
            if plan.run_type == "FINAL":
                holds = set(findings.filter(pl.col("severity") == "hold")["pernr"].to_list())
                held = holds | err_staff if mode == "baseline" else holds
                row.at_final, row.held = len(err_staff), len(held)
                hold_cases = findings.filter(pl.col("severity") == "hold")["case_id"].n_unique()
                # late detection: an error nobody caught still holds its staff member, as one case
                row.held_cases = hold_cases + (len(err_staff - holds) if mode == "baseline" else 0)
                row.false_alarm_holds = len(holds - err_staff)
            if on_run:
                on_run(mode, plan.run_id)
    return [months[p] for p in sorted(months)]


def pilot(cfg: SimConfig, det_cfg: dict, fix_probability: float = 0.6, work: Path | None = None,
          on_run: Callable[[str, str], None] | None = None) -> PilotResult:
    tmp = tempfile.TemporaryDirectory() if work is None else None
    root = Path(tmp.name) if tmp else Path(work)
    try:
        res = PilotResult()
        res.baseline = run_mode(cfg, det_cfg, "baseline", fix_probability, root, on_run)
        res.paywatch = run_mode(cfg, det_cfg, "paywatch", fix_probability, root, on_run)
        return res
    finally:
        if tmp:
            tmp.cleanup()


def as_frame(res: PilotResult) -> pl.DataFrame:
    """Both series side by side. Grain: one row per month."""
    return pl.DataFrame({
        "period": [r.period for r in res.paywatch],
        "errors": [r.errors for r in res.paywatch],
        "baseline_held": [r.held for r in res.baseline],
        "paywatch_held": [r.held for r in res.paywatch],
        "baseline_held_cases": [r.held_cases for r in res.baseline],
        "paywatch_held_cases": [r.held_cases for r in res.paywatch],
        "reported_at_sim": [r.reported_early for r in res.paywatch],
        "errors_left_at_final": [r.at_final for r in res.paywatch],
        "false_alarm_holds": [r.false_alarm_holds for r in res.paywatch],
    })
