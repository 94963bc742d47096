"""A run's cases as reports show them: the reviewers' decisions applied (pure).

Status is the decision in force on the case (released, false_positive, expected, confirmed;
a reopened case is open), else `new` or `open` as stored at detection. Severity is the highest
among the case's findings as reports show them (a released finding counts as info), so a case
whose cause was released but one of whose consequences still holds stays a hold.
"""

from __future__ import annotations

import polars as pl

from detectors.base import SEVERITY_RANK


def with_decisions(cases: pl.DataFrame, findings: pl.DataFrame, decisions: pl.DataFrame,
                   decision_status: dict[str, str]) -> pl.DataFrame:
    """`cases` (one row per case) with `status` and `severity` after decisions. `findings`:
    the run's findings after decisions (with case_id); `decisions`: case_id, decision (one row
    per case that has one); `decision_status`: decision -> status ('assign' absent: no change)."""
    if cases.height == 0:
        return cases
    inv = {v: k for k, v in SEVERITY_RANK.items()}
    sev = (findings.filter(pl.col("case_id").is_not_null())
           .group_by("case_id")
           .agg(pl.col("severity").replace_strict(SEVERITY_RANK, return_dtype=pl.Int64).min().alias("_r"))
           .with_columns(pl.col("_r").replace_strict(inv, return_dtype=pl.String).alias("_severity")))
    dec = decisions.select("case_id", pl.col("decision").replace_strict(decision_status, default=None,
                                                                        return_dtype=pl.String).alias("_status"))
    return (cases.join(sev.select("case_id", "_severity"), on="case_id", how="left")
            .join(dec, on="case_id", how="left")
            .with_columns(pl.coalesce("_status", "status").alias("status"),
                          pl.coalesce("_severity", "severity").alias("severity"))
            .select(cases.columns))
