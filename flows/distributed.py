"""Fan-out of per-partition work on Prefect's task runner, local or on a Dask cluster.

Per duty station, staff-scope detection runs as mapped tasks and hands frames back; the
single writer (this flow) stores them; area-scope detectors, and across payroll areas the
shared-account rule, run once at the end. Same stages as `paywatch verify` otherwise.

    verify_partitioned(run_folder)                          # threads (default)
    dask_flow(verify_partitioned, address=None)(run_folder)  # a LocalCluster, or a cluster address
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import flow, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from detectors.registry import detect_staff_scope
from detectors.rules.cross_area import shared_across_areas
from flows.verify import prefect_runner
from paywatch import pipeline
from paywatch.extract.model import ExtractError
from paywatch.stages import Stage
from paywatch.warehouse import queries as q
from paywatch.warehouse.resource import Warehouse


@task(name=f"{pipeline.DETECT.name}-partition", cache_policy=NO_CACHE, persist_result=False)
def detect_partition(sub, cfg: dict) -> pl.DataFrame:
    return detect_staff_scope(sub, cfg)


def _map_on_task_runner(parts, cfg):
    return [f.result() for f in detect_partition.map(parts, unmapped(cfg))]


def partitioned_runner(stage: Stage, *args, **kwargs):
    """Like flows.verify.prefect_runner, but a stage declared partitioned (DETECT) fans out
    per duty station on the task runner."""
    if stage.per_partition is not None:
        return stage.per_partition(*args, map_partitions=_map_on_task_runner, **kwargs)
    return prefect_runner(stage, *args, **kwargs)


@flow(name="verify-partitioned", log_prints=False)
def verify_partitioned(run_folder: str, db: str | None = None, out: str | None = None) -> dict:
    res = pipeline.verify_run(Path(run_folder), db=Path(db) if db else None, out=Path(out) if out else None,
                              runner=partitioned_runner)
    return {"run_id": res.run_id, "exit_code": res.exit_code,
            "findings": None if res.findings is None else res.findings.drop("finding_id", "first_seen_run", strict=False)}


@task(name="read-area", cache_policy=NO_CACHE, persist_result=False)
def read_area(folder: str):
    """Read and check one area's extract where the task runs; a broken extract is handed
    back as its error, so the writer quarantines it exactly as `paywatch verify` does."""
    try:
        return pipeline.stage_read(Path(folder))
    except ExtractError as e:
        return e


@flow(name="verify-areas", log_prints=False)
def verify_areas(run_folders: list[str], db: str | None = None) -> dict:
    """Verify one run per payroll area: the areas' extracts are read in parallel tasks,
    then one writer stores each area (its detection fanned out per duty station), then bank
    accounts are checked across the areas once."""
    reads = dict(zip([Path(f) for f in run_folders], [r.result() for r in read_area.map(run_folders)]))

    def area_runner(stage: Stage, *args, **kwargs):
        if stage is pipeline.READ:  # already read by its task
            got = reads[Path(args[0])]
            if isinstance(got, ExtractError):
                raise got
            return got
        return partitioned_runner(stage, *args, **kwargs)

    results = []
    for f in run_folders:  # one writer: areas are stored one after the other
        res = pipeline.verify_run(Path(f), db=Path(db) if db else None, runner=area_runner)
        results.append({"run_id": res.run_id, "exit_code": res.exit_code,
                        "findings": None if res.findings is None else res.findings.drop(
                            "finding_id", "first_seen_run", strict=False)})
    with Warehouse.at(db).writer(wait_seconds=600) as con:
        runs = [r["run_id"] for r in results if r["exit_code"] == 0]
        infos = [q.run_info(con, r) for r in runs]
        bank = {i["payroll_area"]: q.master_data_as_of_run(con, i["run_id"], "stg_bank_details") for i in infos}
    period = infos[0]["period"] if infos else ""
    cross = shared_across_areas(bank, period) if infos else pl.DataFrame()
    create_table_artifact(key="shared-accounts-across-areas",
                          table=cross.drop("since").to_dicts() if cross.height else [{"payroll_area": "", "pernr": "none"}],
                          description=f"Bank accounts shared across payroll areas, {period}")
    return {"runs": results, "cross_area": cross}


def dask_flow(f, address: str | None = None, n_workers: int = 2):
    """The same flow on a Dask cluster: `address` of a running scheduler, or a LocalCluster."""
    from prefect_dask import DaskTaskRunner

    runner = (DaskTaskRunner(address=address) if address else
              DaskTaskRunner(cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1, "processes": True}))
    return f.with_options(task_runner=runner)
