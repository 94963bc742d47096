"""The main job on the embedded default, as the schedule would run it: simulated Umoja drops
each run into the landing folder in turn, `pull-and-verify` picks it up, and after each
FINAL `monthly-close` closes the month. Local ephemeral Prefect API, one DuckDB file."""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.monthly import monthly_close
from flows.verify import pull_and_verify
from paywatch.simulate import SimConfig, simulate_to_folder
from paywatch.warehouse.resource import Warehouse


@task(name="simulate-umoja", cache_policy=NO_CACHE, persist_result=False)
def simulate(cfg: SimConfig, umoja: Path) -> list[str]:
    if (umoja / "runs.txt").exists():
        return (umoja / "runs.txt").read_text(encoding="utf-8").split()
    return simulate_to_folder(cfg, umoja)


@task(name="umoja-drops-run", cache_policy=NO_CACHE, persist_result=False)
def drop(umoja: Path, run: str, landing: Path) -> None:
    """Copy a run folder into landing, manifest last (as Umoja writes it)."""
    target = landing / run
    if target.exists():
        return
    tmp = landing / f".{run}.partial"
    shutil.copytree(umoja / run, tmp, ignore=shutil.ignore_patterns("manifest.json"))
    tmp.rename(target)
    shutil.copy2(umoja / run / "manifest.json", target / "manifest.json")


@flow(name="paywatch-demo", flow_run_name="demo {staff} staff from {start}", log_prints=False)
def demo(staff: int = 2_000, months: int = 2, start: str = "202512", seed: int = 7) -> list[dict]:
    log = get_run_logger()
    wh = Warehouse.default()
    paths = wh.paths
    umoja = paths.home / "umoja" / f"GV-{start}-{staff}-seed{seed}"
    runs = simulate(SimConfig(staff=staff, months=months, start=start, seed=seed), umoja)
    paths.landing.mkdir(parents=True, exist_ok=True)
    done: list[dict] = []
    for run in runs:
        drop(umoja, run, paths.landing)
        run_type, period = run.split("-")[-1], run.split("-")[1]
        expect = run_type if run_type in ("SIM1", "SIM2", "SIM3", "FINAL") else None
        done += pull_and_verify(str(paths.landing), str(wh.db), expect_run_type=expect, period=period,
                                settle_seconds=0)
        if run_type == "FINAL":
            closed = monthly_close(period=period, db=str(wh.db))
            log.info("closed %s: %s staff excluded", period, closed["excluded"])
    return done
