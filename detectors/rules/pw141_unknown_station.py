"""PW141 unknown_duty_station — a P or D staff member assigned to a duty station (WERKS)
that the post adjustment table (T7UNPA) does not know at all.

Their post adjustment cannot be checked. The break concerns one identifiable staff member,
so it is a finding on that staff member (docs/extract-format.md, "Two kinds of rule"), not a
stopped run; a station T7UNPA knows but without a multiplier for the period is reference
data missing for the period, a run-level data-quality failure (paywatch/dq/suites/stations.json).
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Params
from detectors.context import Context

CODE = "PW141"
CONFIG = (ENABLED, SEVERITY)
SHOWN = 40  # characters of the recorded code shown (a hostile extract may hold megabytes)


def run(ctx: Context, params: Params) -> pl.DataFrame:
    known = ctx.inp.ref["post_adjustment"].select("duty_station").unique()
    unknown = (
        ctx.facts.filter(pl.col("staff_category").is_in(["P", "D"]))
        .join(known, on="duty_station", how="anti", nulls_equal=False)
        .select("pernr", "duty_station", "staff_category", "currency")
        .sort("pernr")
    )
    rows = []
    for r in unknown.iter_rows(named=True):
        code = r["duty_station"]
        shown = "no duty station" if code is None else f"duty station {code[:SHOWN]!r}" + ("…" if len(code) > SHOWN else "")
        text = (f"The assignment (PA0001) records {shown}, which the post adjustment table (T7UNPA) does not "
                f"know: the post adjustment of this {r['staff_category']} staff member cannot be checked.")
        rows.append(finding(ctx, params, r["pernr"], "unknown_duty_station", text, owner="HR",
                            wage_type=pm.WT_POST_ADJ, currency=r["currency"],
                            evidence={"duty_station": None if code is None else code[:SHOWN]}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "unknown_duty_station", ("unknown_duty_station",), run, config=CONFIG,
                    description="Flags P and D staff whose duty station (WERKS) is not in T7UNPA.")
