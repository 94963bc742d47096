"""The extract contract (docs/extract-format.md 1.0) as data: files, columns, types, staging names.

One source of truth for the reader (format rules), the warehouse (staging renames) and the
simulator (writer). Nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMAT_VERSION = "1.0"
RUN_TYPES = ("SIM1", "SIM2", "SIM3", "FINAL", "OFFCYCLE")
REGULAR_RUN_TYPES = ("SIM1", "SIM2", "SIM3", "FINAL")


@dataclass(frozen=True)
class Column:
    """One source column: its SAP name, contract type, staging name and nullability."""

    name: str
    kind: str  # id | code | date | period | amount | number | integer | seqnr | text
    staging: str
    nullable: bool = False
    pattern: str | None = None  # closed set / shape for codes (full match)


def _c(name, kind, staging, nullable=False, pattern=None):
    return Column(name, kind, staging, nullable, pattern)


# Closed code sets of the contract (a value outside is a format violation, ▣).
CODE_PATTERNS = {
    "TRFST": r"0[1-9]|1[0-5]",
    "MASSN": r"0[1-9]",
    "OBJPS": r"\d\d",
    "FAMSA": r"[12]",
    "STAT2": r"[013]",
    "PERSG": r"[PDG]",
    "TRFGR": r"P-[1-5]|D-[12]|G-[1-7]",
    "DEPENDENT": r"X",
    "LGART": r".{4}",
    "CLASS": r"EARNING|DEDUCTION|TOTAL",
    "RUN_TYPES": r"(REGULAR|OFFCYCLE)(\|(REGULAR|OFFCYCLE))?",
    "OWNER": r"HR|FINANCE",
    "WAERS": r"USD|CHF",
}

FILES: dict[str, tuple[Column, ...]] = {
    "PA0000.csv": (
        _c("PERNR", "id", "pernr"),
        _c("BEGDA", "date", "valid_from"),
        _c("ENDDA", "date", "valid_to"),
        _c("MASSN", "code", "action_type"),
        _c("MASSG", "code", "action_reason", nullable=True),
        _c("STAT2", "code", "employment_status"),
    ),
    "PA0001.csv": (
        _c("PERNR", "id", "pernr"),
        _c("BEGDA", "date", "valid_from"),
        _c("ENDDA", "date", "valid_to"),
        _c("ENAME", "text", "full_name"),
        _c("WERKS", "code", "duty_station"),
        _c("PERSG", "code", "staff_category"),
        _c("ORGEH", "code", "entity"),
        _c("ABKRS", "code", "payroll_area"),
        _c("KOSTL", "code", "cost_centre", nullable=True),
    ),
    "PA0008.csv": (
        _c("PERNR", "id", "pernr"),
        _c("BEGDA", "date", "valid_from"),
        _c("ENDDA", "date", "valid_to"),
        _c("TRFGR", "code", "grade"),
        _c("TRFST", "code", "step"),
        _c("BSGRD", "integer", "employment_pct"),
    ),
    "PA0009.csv": (
        _c("PERNR", "id", "pernr"),
        _c("BEGDA", "date", "valid_from"),
        _c("ENDDA", "date", "valid_to"),
        _c("BANKS", "code", "bank_country"),
        _c("IBAN", "code", "iban"),
        _c("WAERS", "code", "currency"),
    ),
    "PA0021.csv": (
        _c("PERNR", "id", "pernr"),
        _c("OBJPS", "code", "member_id"),
        _c("FAMSA", "code", "member_type"),
        _c("FGBDT", "date", "birth_date"),
        _c("BEGDA", "date", "valid_from"),
        _c("ENDDA", "date", "valid_to"),
        _c("DEPENDENT", "code", "is_dependent", nullable=True),
    ),
    "RT.csv": (
        _c("PERNR", "id", "pernr"),
        _c("SEQNR", "seqnr", "result_seq"),
        _c("FPPER", "period", "for_period"),
        _c("INPER", "period", "in_period"),
        _c("LGART", "code", "wage_type"),
        _c("BETRG", "amount", "amount_cents"),
        _c("WAERS", "code", "currency"),
        _c("ANZHL", "number", "quantity", nullable=True),
    ),
    "T510.csv": (
        _c("TRFGR", "code", "grade"),
        _c("TRFST", "code", "step"),
        _c("BEGDA", "date", "valid_from"),
        _c("ENDDA", "date", "valid_to"),
        _c("ANNUAL_NET", "amount", "annual_net_cents"),
        _c("ANNUAL_PR", "amount", "annual_pr_cents"),
        _c("WAERS", "code", "currency"),
    ),
    "T7UNPA.csv": (
        _c("WERKS", "code", "duty_station"),
        _c("BEGDA", "date", "valid_from"),
        _c("ENDDA", "date", "valid_to"),
        _c("MULTIPLIER", "number", "multiplier_pct"),
    ),
    "T512W.csv": (
        _c("LGART", "code", "wage_type"),
        _c("LGTXT", "text", "wage_type_text"),
        _c("CLASS", "code", "wage_class"),
        _c("RUN_TYPES", "code", "run_types"),
        _c("OWNER", "code", "owner"),
    ),
    "T7UNRATE.csv": (
        _c("KEY", "code", "rate_key"),
        _c("VALUE", "number", "rate_value"),
        _c("BEGDA", "date", "valid_from"),
        _c("ENDDA", "date", "valid_to"),
    ),
}

FILE_NAMES = tuple(FILES)
# Staging table per file (dbt-style: stg_<entity>).
STAGING_TABLES = {
    "PA0000.csv": "stg_actions",
    "PA0001.csv": "stg_assignments",
    "PA0008.csv": "stg_basic_pay",
    "PA0009.csv": "stg_bank_details",
    "PA0021.csv": "stg_family",
    "RT.csv": "stg_pay_lines",
    "T510.csv": "stg_pay_scale",
    "T7UNPA.csv": "stg_post_adjustment",
    "T512W.csv": "stg_wage_types",
    "T7UNRATE.csv": "stg_rates",
}

# Value shapes per contract type (full match). Codes use CODE_PATTERNS where closed.
KIND_PATTERNS = {
    "id": r"\d{8}",
    "date": r"\d{8}",
    "period": r"\d{4}(0[1-9]|1[0-2])",
    "amount": r"-?\d+(\.\d{1,2})?",
    "number": r"-?\d+(\.\d+)?",
    "integer": r"\d+",
    "seqnr": r"\d+",
}

# Technical totals (docs/extract-format.md, "Payroll results").
TOTAL_GROSS, TOTAL_NET, TOTAL_PAID = "/101", "/550", "/560"


def column_pattern(col: Column) -> re.Pattern[str] | None:
    """The full-match pattern a non-null value of `col` must satisfy (None: any text)."""
    if col.kind == "code":
        pat = col.pattern or CODE_PATTERNS.get(col.name)
        return re.compile(pat, re.DOTALL) if pat else None
    if col.kind == "text":
        return None
    return re.compile(KIND_PATTERNS[col.kind])
