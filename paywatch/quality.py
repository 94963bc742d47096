"""Run-level data-quality gate: can the extract be trusted enough to detect on it?

Critical failures stop detection (exit 3): a large share of active staff missing from the
results, reference data missing for many staff. Warnings are reported and detection goes
on. Pure functions over frames; thresholds in the config's [quality] section.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import DetectionInput


def _check(name, severity, success, observed, detail, unexpected=0, staff=0, sample=()) -> dict:
    return {"name": name, "severity": severity, "success": bool(success), "observed": str(observed),
            "unexpected_count": int(unexpected), "staff_affected": int(staff),
            "sample": ",".join(list(sample)[:10]), "detail": detail}


def run_checks(inp: DetectionInput, previous: DetectionInput | None, params: dict) -> list[dict]:
    """Every native run-level check, passed or failed. One dict per check."""
    checks = []
    period = inp.meta.period
    facts = pm.staff_month_facts(inp.md, period)
    active = facts.select("pernr")
    paid = inp.lines.filter(pl.col("wage_type") == "/560").select("pernr").unique()
    if inp.meta.run_type != "OFFCYCLE":
        missing = active.join(paid, on="pernr", how="anti")
        share = missing.height / active.height if active.height else 0.0
        limit = params.get("max_missing_staff_share", 0.10)
        checks.append(_check(
            "active_staff_have_pay", "critical", share <= limit, f"{share:.1%}",
            f"{missing.height} of {active.height} staff active in {period} ({share:.1%}) have no amount paid (/560) "
            f"in this run; at most {limit:.0%} is acceptable.",
            missing.height, missing.height, missing["pernr"].to_list()))
    refp = pm.reference_for_period(inp.ref, period)
    with_ref = pm.attach_reference(facts, refp)
    no_scale = with_ref.filter(pl.col("annual_net_cents").is_null())
    no_mult = with_ref.filter(pl.col("staff_category").is_in(["P", "D"]) & pl.col("multiplier_num").is_null())
    missing_keys = [k for k in pm.RATE_KEYS if k not in refp["rates"]]
    unknown = pl.concat([no_scale.select("pernr"), no_mult.select("pernr")]).unique()
    share = unknown.height / facts.height if facts.height else 0.0
    limit = params.get("max_incomputable_share", 0.05)
    detail = (f"{unknown.height} of {facts.height} active staff ({share:.1%}) cannot be checked against the pay "
              f"model: {no_scale.height} without a pay scale (T510) entry for their grade and step, "
              f"{no_mult.height} without a post adjustment multiplier (T7UNPA) for their duty station"
              f"{'; rates missing: ' + ', '.join(missing_keys) if missing_keys else ''}.")
    checks.append(_check("reference_data_for_period", "critical", share <= limit and not missing_keys,
                         f"{share:.1%}", detail, unknown.height, unknown.height, unknown["pernr"].to_list()))
    if previous is not None:
        before, now = previous.lines.height, inp.lines.height
        change = (now - before) / before if before else 0.0
        limit = params.get("max_line_count_change", 0.25)
        checks.append(_check(
            "line_count_vs_previous", "warning", abs(change) <= limit, f"{change:+.1%}",
            f"The run has {now} pay lines against {before} in the previous {previous.meta.run_type} run "
            f"{previous.meta.run_id} ({change:+.1%}; more than {limit:.0%} either way is unusual)."))
    return checks


def critical_failures(checks: list[dict]) -> list[dict]:
    return [c for c in checks if c["severity"] == "critical" and not c["success"]]
