"""The one catalogue of words people read: a title for every finding category and every detector.

Workbooks, mails, the close report and the notebooks take their titles from here, so a category
is called the same thing everywhere and no sheet name is cut by Excel's 31-character limit.
"""

from __future__ import annotations

from detectors.registry import ALL_DETECTORS

# Titles a payroll officer would use; each ≤ 31 characters so it can also name a sheet.
CATEGORY_TITLES: dict[str, str] = {
    "child_allowance_mismatch": "Child allowance mismatch",
    "child_over_age_limit": "Child over the age limit",
    "health_mismatch": "Health insurance mismatch",
    "missing_pension": "Pension contribution missing",
    "overtime_mismatch": "Overtime amount mismatch",
    "paid_during_slwop": "Paid during SLWOP",
    "part_time_ignored": "Part-time rate ignored",
    "pay_after_separation": "Paid after separation",
    "pay_model_incomputable": "Pay not computable",
    "pension_mismatch": "Pension contribution mismatch",
    "scale_mismatch": "Salary scale mismatch",
    "spouse_allowance_mismatch": "Spouse allowance mismatch",
    "spouse_allowance_without_dependant": "Spouse allowance, no dependant",
    "stale_multiplier": "Post adjustment mismatch",
    "totals_mismatch": "Totals do not add up",
    "negative_net": "Negative net pay",
    "pay_without_employment": "Paid without employment",
    "wage_type_not_allowed": "Wage type not allowed in run",
    "unknown_wage_type": "Unknown wage type",
    "duplicate_earning": "Duplicated earning",
    "duplicate_line": "Duplicated pay line",
    "overlapping_records": "Overlapping master records",
    "grade_change_without_action": "Grade change, no HR action",
    "shared_iban": "Account shared by staff",
    "bank_change_before_large_payment": "Bank change before payment",
    "new_staff_high_first_pay": "High first pay, new staff",
    "active_not_paid": "Active but not paid",
    "missing_bank_record": "No valid bank record",
    "invalid_iban": "Invalid IBAN",
    "iban_of_separated_staff": "Account of separated staff",
    "unexplained_retro": "Unexplained retroactive pay",
    "retro_mismatch": "Retroactive pay mismatch",
    "missing_retro": "Retroactive pay missing",
    "special_allowance_spike": "Special allowance spike",
    "deduction_change": "Deduction changed",
    "variable_pay_stopped": "Recurring pay line stopped",
    "deduction_outlier": "Unusual deduction",
    "recovery_without_advance": "Recovery without advance",
    "recovery_above_balance": "Recovery above balance",
    "duplicate_advance": "Advance paid twice",
    "advance_not_recovered": "Advance not recovered",
    "unknown_duty_station": "Unknown duty station",
    "wage_type_limit": "Wage type above its limit",
    "unexplained_new_wage_type": "New wage type, unexplained",
    "overtime_outlier": "Unusual overtime",
    "multivariate_anomaly": "Unusual pay pattern",
}

DETECTOR_TITLES: dict[str, str] = {d.code: d.name.replace("_", " ").capitalize() for d in ALL_DETECTORS}


def category_title(category: str) -> str:
    """The title of a category; an unknown one (from a newer config) reads as its words."""
    return CATEGORY_TITLES.get(category, category.replace("_", " ").capitalize()[:31])


def detector_title(code: str) -> str:
    """'PW101 · Pay model' style name of a detector, for people who see rule codes next to names."""
    return f"{code} · {DETECTOR_TITLES[code]}" if code in DETECTOR_TITLES else code
