"""Run-level data-quality gate: can the extract be trusted enough to detect on it?

The checks themselves are Great Expectations suites kept as files in `paywatch/dq/suites`
and run by `paywatch.dq` (stage validate). The native checks that were here before — active
staff without an amount paid, reference data missing for the period, line count against
the previous run — are expectations there now (`staff_active_have_pay`,
`staff_grade_step_in_t510`, `stations_multiplier_for_period`, `t7unrate_rates_for_period`,
`run_line_count_vs_previous`), so they are not run twice.

A check is a dict: name, severity ('critical' | 'warning'), success, observed,
unexpected_count, staff_affected, sample (PERNRs only), detail (one sentence for Finance),
engine ('gx' | 'native').
"""

from __future__ import annotations


def critical_failures(checks: list[dict]) -> list[dict]:
    """Failed critical checks: any one stops detection for the run (exit 3)."""
    return [c for c in checks if c["severity"] == "critical" and not c["success"]]


def warning_failures(checks: list[dict]) -> list[dict]:
    """Failed warnings: reported, detection goes on."""
    return [c for c in checks if c["severity"] != "critical" and not c["success"]]
