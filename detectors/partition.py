"""Partitions of a run for fan-out: each duty station's staff with their own data.

Staff-scope detectors give the same rows on a partition as on the whole run, so the
partitions can run anywhere (threads, a Dask cluster) and hand frames back; area-scope
detectors (shared accounts, population models) then run once over the whole run.
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from detectors import paymodel as pm
from detectors.base import DetectionInput


def staff_partition(inp: DetectionInput, key: str = "duty_station") -> pl.DataFrame:
    """Which partition each staff member belongs to: their latest assignment starting by
    the end of the period. Grain: one row per staff member (pernr, partition)."""
    _, last, _ = pm.month_bounds(inp.meta.period)
    asg = (inp.md["assignments"].filter(pl.col("valid_from") <= last).sort("pernr", "valid_from")
           .group_by("pernr").agg(pl.col(key).last().alias("partition")))
    everyone = pl.concat([inp.lines.select("pernr"), *[f.select("pernr") for f in inp.md.values()]]).unique()
    return everyone.join(asg, on="pernr", how="left").with_columns(pl.col("partition").fill_null("?"))


def _only(frame: pl.DataFrame, pernrs: pl.Series) -> pl.DataFrame:
    return frame.filter(pl.col("pernr").is_in(pernrs)) if "pernr" in frame.columns else frame


def split(inp: DetectionInput, key: str = "duty_station") -> dict[str, DetectionInput]:
    """One DetectionInput per partition (reference tables and the run list are shared)."""
    parts = staff_partition(inp, key)
    out = {}
    for name in sorted(parts["partition"].unique().to_list()):
        pernrs = parts.filter(pl.col("partition") == name)["pernr"]
        hist = replace(inp.history, final_lines=_only(inp.history.final_lines, pernrs),
                       offcycle_lines=_only(inp.history.offcycle_lines, pernrs),
                       period_lines=_only(inp.history.period_lines, pernrs),
                       final_md={r: {t: _only(f, pernrs) for t, f in md.items()}
                                 for r, md in inp.history.final_md.items()},
                       final_digests=None)  # other rows: their digests are computed again
        out[name] = replace(inp, lines=_only(inp.lines, pernrs), md={t: _only(f, pernrs) for t, f in inp.md.items()},
                            history=hist)
    return out
