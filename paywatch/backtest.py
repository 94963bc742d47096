"""`paywatch backtest`: replay the detectors with another configuration over the history in
the warehouse, side by side with the current one, before anyone changes a threshold.

Nothing is written: the warehouse is opened read-only and findings stay in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
import polars as pl

from detectors.registry import detect
from paywatch.pipeline import detection_input
from paywatch.warehouse.decisions import reviewed_identities
from paywatch.warehouse.queries import current_runs

FLAGGED = ("hold", "review")


@dataclass
class MonthCompare:
    """One month under one configuration. Grain: period x configuration."""

    period: str
    exceptions: int = 0
    excluded: int = 0          # staff with a hold at FINAL
    caught: int | None = None  # error staff flagged (ground truth) ...
    false_alarms: int | None = None
    confirmed_flagged: int | None = None  # ... or reviewer-confirmed exceptions still flagged
    false_positive_flagged: int | None = None


def _truth(path: Path | None) -> pl.DataFrame | None:
    if path is None:
        return None
    return pl.read_csv(path, schema_overrides={"PERNR": pl.String}).rename({"PERNR": "pernr"})


def backtest(con: duckdb.DuckDBPyConnection, configs: dict[str, dict], truth_csv: Path | None = None,
             on_run: Callable[[str], None] | None = None) -> pl.DataFrame:
    """Per month and configuration: exceptions, excluded staff, errors caught / false alarms
    (with ground truth) and reviewer-confirmed vs false-positive identities still flagged."""
    truth = _truth(truth_csv)
    decisions = reviewed_identities(con)
    runs = current_runs(con)
    months: dict[tuple[str, str], MonthCompare] = {}
    for run_id, period, run_type in runs.iter_rows():
        inp = detection_input(con, run_id)
        for name, cfg in configs.items():
            f = detect(inp, cfg)
            m = months.setdefault((period, name), MonthCompare(period))
            flagged = f.filter(pl.col("severity").is_in(FLAGGED))
            m.exceptions += flagged.height
            if run_type == "FINAL":
                m.excluded += f.filter(pl.col("severity") == "hold")["pernr"].n_unique()
            if truth is not None:
                err = set(truth.filter(pl.col("run_id") == run_id)["pernr"].to_list())
                staff = set(flagged["pernr"].to_list())
                m.caught = (m.caught or 0) + len(err & staff)
                m.false_alarms = (m.false_alarms or 0) + len(staff - err)
            d = decisions.filter(pl.col("run_id") == run_id)
            if d.height:
                keys = flagged.select("pernr", "detector", pl.col("wage_type").fill_null("")).unique()
                hit = d.join(keys, on=["pernr", "detector", "wage_type"])
                m.confirmed_flagged = (m.confirmed_flagged or 0) + hit.filter(pl.col("decision") == "confirm").height
                m.false_positive_flagged = ((m.false_positive_flagged or 0)
                                            + hit.filter(pl.col("decision") == "false_positive").height)
        if on_run:
            on_run(run_id)
    rows = [{"period": p, "config": c, **{k: v for k, v in vars(m).items() if k != "period"}}
            for (p, c), m in sorted(months.items())]
    return pl.DataFrame(rows)
