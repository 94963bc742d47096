"""PW104 run_type — wage types the run type does not allow, or that T512W does not know.

T512W RUN_TYPES says where a wage type may appear: REGULAR (SIM1..FINAL) and/or OFFCYCLE.
"""

from __future__ import annotations

import polars as pl

from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Params
from detectors.money import money
from detectors.context import Context

CODE = "PW104"
CONFIG = (ENABLED, SEVERITY)


def run(ctx: Context, params: Params) -> pl.DataFrame:
    kind = "OFFCYCLE" if ctx.meta.run_type == "OFFCYCLE" else "REGULAR"
    wts = ctx.wage_types
    not_allowed = pl.col("run_types").is_null() | ~pl.col("run_types").str.split("|").list.contains(kind)
    # the catalogue is read first (a few dozen rows): only the lines of a wage type it does not
    # know or does not allow here are joined, the same rows as joining every line
    doubtful = wts.filter(not_allowed)["wage_type"].implode()
    wt = pl.col("wage_type")
    lines = ctx.inp.lines.filter(wt.is_null() | wt.is_in(doubtful) | ~wt.is_in(wts["wage_type"].implode()))
    bad = lines.join(wts, on="wage_type", how="left").filter(not_allowed)
    rows = []
    for r in bad.iter_rows(named=True):
        unknown = r["run_types"] is None
        text = (f"Wage type {r['wage_type']} ({money(r['amount_cents'], r['currency'])}) is not in the wage type "
                f"catalogue T512W." if unknown else
                f"{r['wage_type_text']} ({r['wage_type']}, {money(r['amount_cents'], r['currency'])}) may only be paid "
                f"in {r['run_types'].replace('|', ' or ')} runs, not in this {ctx.meta.run_type} run.")
        rows.append(finding(ctx, params, r["pernr"], "unknown_wage_type" if unknown else "wage_type_not_allowed",
                            text, owner=r["owner"] or "FINANCE", wage_type=r["wage_type"], for_period=r["for_period"],
                            amount_cents=r["amount_cents"], currency=r["currency"],
                            evidence={"run_type": ctx.meta.run_type, "allowed_in": r["run_types"]}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "run_type", ("wage_type_not_allowed", "unknown_wage_type"), run, config=CONFIG,
                    description="Flags wage types not allowed in the run type (T512W RUN_TYPES).")
