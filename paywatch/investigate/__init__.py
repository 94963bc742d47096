"""What the investigation and KPI notebooks show, as plain functions (notebooks/ import only:
`from paywatch import investigate as inv`). This module is the one stable facade; the work
is done in:

- sample: the sample warehouse, built on first use; which warehouse a notebook reads
- connect: read-only connections (`open_readonly`), table display
- case: choosing a case; the case (cause, consequences, owner, status, due date); a staff member's record, exceptions, actions, dependants, peers,
  audit trail
- pay: pay history, comparison with the previous FINAL and with the pay model
- kpi: KPI and per-rule precision frames and figures
- decisions: the one write, `decide`, and `decide_if_asked` (writes only when its switch is on)
- present: `show` / `show_fields`, tables for people (great_tables)
- frames: shared helpers (cents as decimals, master data as carried by a run)

Every function takes a read-only DuckDB connection (`open_readonly`) and returns a polars
frame or a matplotlib Figure; amounts are shown in currency units as exact decimals
(`Decimal(38, 2)`, computed from the warehouse's integer cents), never as floats. Their SQL
lives in paywatch/warehouse/analysis.py.

Personal data: IBANs are only ever shown masked (paywatch.privacy.mask_iban); explanations
pass through `mask_ibans_in` as well.
"""

from paywatch.investigate.case import (
    ACTION_NAMES,
    MEMBER_TYPES,
    STATUS_NAMES,
    audit_trail,
    case_overview,
    default_case,
    dependants,
    peers_typical,
    personnel_actions,
    pick_finding,
    runs_overview,
    staff_cases,
    staff_exceptions,
    staff_header,
    staff_with_exceptions,
)
from paywatch.investigate.connect import WarehouseInUse, notebook_display, open_readonly
from paywatch.investigate.decisions import decide, decide_if_asked
from paywatch.investigate.frames import MASTER, REFERENCE, TOTALS, age_on
from paywatch.investigate.kpi import (
    advances_frame,
    case_journey_frame,
    case_kpi_frame,
    cases_per_entity,
    cases_per_owner,
    kpi_figure,
    kpi_frame,
    kpi_per_staff_figure,
    kpi_per_staff_frame,
    precision_figure,
    precision_frame,
    staff_paid_at_last_final,
)
from paywatch.investigate.pay import (
    PAY_MODEL_RULES,
    compare_with_pay_model,
    compare_with_previous_final,
    pay_history,
    pay_history_chart,
    previous_final,
)
from paywatch.investigate.present import as_text, show, show_fields
from paywatch.investigate.sample import (
    SAMPLE_DIR,
    default_sample_db,
    sample_runs,
    sample_warehouse,
    warehouse_path,
)
from paywatch.warehouse.analysis import OPEN_HOLD

__all__ = [
    "ACTION_NAMES",
    "MASTER",
    "MEMBER_TYPES",
    "OPEN_HOLD",
    "PAY_MODEL_RULES",
    "REFERENCE",
    "SAMPLE_DIR",
    "STATUS_NAMES",
    "TOTALS",
    "WarehouseInUse",
    "advances_frame",
    "age_on",
    "as_text",
    "audit_trail",
    "case_journey_frame",
    "case_kpi_frame",
    "case_overview",
    "cases_per_entity",
    "cases_per_owner",
    "compare_with_pay_model",
    "compare_with_previous_final",
    "decide",
    "decide_if_asked",
    "default_case",
    "default_sample_db",
    "dependants",
    "kpi_figure",
    "kpi_frame",
    "kpi_per_staff_figure",
    "kpi_per_staff_frame",
    "notebook_display",
    "open_readonly",
    "pay_history",
    "pay_history_chart",
    "peers_typical",
    "personnel_actions",
    "pick_finding",
    "precision_figure",
    "precision_frame",
    "previous_final",
    "runs_overview",
    "sample_runs",
    "sample_warehouse",
    "show",
    "show_fields",
    "staff_cases",
    "staff_exceptions",
    "staff_header",
    "staff_paid_at_last_final",
    "staff_with_exceptions",
    "warehouse_path",
]
