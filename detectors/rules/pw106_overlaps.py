"""PW106 overlapping_records — two records of one infotype valid on the same day.

In a correct extract, records of one PERNR in one infotype do not overlap (PA0021: per
family member OBJPS). The pay model would have to guess which one counts. Overlaps that
touch the look-back window up to the end of the period are flagged (detectors/overlaps.py,
the same check and window as the data-quality suites).
"""

from __future__ import annotations

import polars as pl

from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.context import Context
from detectors.overlaps import overlaps, window

CODE = "PW106"
CONFIG = (ENABLED, SEVERITY,
          Key("lookback_months", int, "overlaps touching this many months before the period (up to its end) "
              "count, here and in the data-quality suites"))
INFOTYPES = {"actions": "PA0000", "assignments": "PA0001", "basic_pay": "PA0008", "bank_details": "PA0009",
             "family": "PA0021"}


def run(ctx: Context, params: Params) -> pl.DataFrame:
    first, end = window(ctx.meta.period, params.lookback_months)
    rows = []
    for it, name in INFOTYPES.items():
        keys = ["pernr", "member_id"] if it == "family" else ["pernr"]
        o = overlaps(ctx.inp.md[it].select(*keys, "valid_from", "valid_to"), keys, first, end).filter("overlaps")
        for r in o.group_by("pernr").agg(pl.len().alias("n"), pl.col("overlap_from").min(),
                                         pl.col("overlap_to").max()).iter_rows(named=True):
            text = (f"{name} has {r['n']} record(s) valid on days an earlier record already covers "
                    f"({r['overlap_from']} to {r['overlap_to']}); one record per day is allowed.")
            rows.append(finding(ctx, params, r["pernr"], "overlapping_records", text, owner="HR",
                                evidence={"infotype": name, "records": r["n"], "from": str(r["overlap_from"]),
                                          "to": str(r["overlap_to"])}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "overlapping_records", ("overlapping_records",), run, config=CONFIG,
                    description="Flags infotype records of one staff member valid on the same day.")
