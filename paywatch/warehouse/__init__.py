"""The DuckDB warehouse: raw archive ▸ staging ▸ marts ▸ findings, decisions (docs/design.md).

Writers: `with WarehouseLock(db): con = open_warehouse(db); load_run(con, extract)`.
"""

from paywatch.warehouse.db import (
    WarehouseBusy,
    WarehouseLock,
    default_archive_dir,
    default_quarantine_dir,
    open_warehouse,
    transaction,
    warehouse_digest,
)
from paywatch.warehouse.resource import Warehouse, WarehouseMissing
from paywatch.warehouse.load import LoadResult, check_run_identity, load_run, quarantine
from paywatch.warehouse.marts import build_run_marts, replace_run_rows
from paywatch.warehouse.queries import (
    current_version,
    final_lines_before,
    final_runs_before,
    history_before,
    master_data_as_of_run,
    paid_so_far,
    pay_lines,
    reference_as_of_run,
    run_info,
    run_order,
    staff_run,
)

__all__ = [
    "LoadResult",
    "Warehouse",
    "WarehouseBusy",
    "WarehouseLock",
    "WarehouseMissing",
    "build_run_marts",
    "check_run_identity",
    "current_version",
    "default_archive_dir",
    "default_quarantine_dir",
    "final_lines_before",
    "final_runs_before",
    "history_before",
    "load_run",
    "master_data_as_of_run",
    "open_warehouse",
    "paid_so_far",
    "pay_lines",
    "quarantine",
    "reference_as_of_run",
    "replace_run_rows",
    "run_info",
    "run_order",
    "staff_run",
    "transaction",
    "warehouse_digest",
]
