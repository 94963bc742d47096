"""History helpers for detectors: what was paid, what changed since, in contract order.

All pure: frames in, frames out. The pipeline loads the frames these functions ask for
(`final_runs_needed`), so detectors never touch the warehouse.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from detectors import paymodel as pm

PAY_INFOTYPES = ("actions", "assignments", "basic_pay", "family")
OPAQUE = ["action_reason", "cost_centre"]  # MASSG, KOSTL: never interpreted (docs/design.md)
LOOKBACK_MONTHS = 12


def window_start(period: str) -> str:
    return pm.shift_period(period, -LOOKBACK_MONTHS)


def last_final_with_pay(final_lines: pl.DataFrame, runs: pl.DataFrame, pernrs: pl.Series) -> pl.DataFrame:
    """For each staff member, the latest earlier FINAL run in which they had lines.
    Grain: one row per staff member who had one (pernr, run_id)."""
    ids = runs["run_id"].to_list()
    # runs as their position in contract order (a small lookup, not a join of the history)
    seq = pl.col("run_id").replace_strict(ids, list(range(len(ids))), default=None, return_dtype=pl.Int32)
    last = (
        final_lines.lazy().select("pernr", seq.alias("_seq"))
        .filter(pl.col("pernr").is_in(pernrs.implode()) & pl.col("_seq").is_not_null())
        .group_by("pernr").agg(pl.col("_seq").max())
        .collect()
    )
    return last.select("pernr", pl.col("_seq").replace_strict(list(range(len(ids))), ids,
                                                              return_dtype=pl.String).alias("run_id"))


def final_runs_needed(lines: pl.DataFrame, final_lines: pl.DataFrame, runs: pl.DataFrame) -> dict[str, list[str]]:
    """Which earlier FINAL runs' master data the retro check needs, for which staff."""
    paid = lines["pernr"].unique()
    last = last_final_with_pay(final_lines, runs, paid)
    # one row per FINAL run (a handful), not per staff member
    return dict(last.group_by("run_id", maintain_order=True).agg("pernr").iter_rows())


def _effective_changes(now: pl.DataFrame, then: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Records added or removed between two extracts, with the day each change takes effect.

    A record re-delimited (same values, other end) changes from the earlier of the two ends
    + 1 day; any other added or removed record (new, gone or corrected in place) from its
    start. Where several added and removed records share every value but their end, each
    pair of them is a re-delimitation: the earliest day any of them changes is the earliest
    of all their ends + 1 day, which is all a staff member's earliest change reads."""
    cols = now.columns
    added = now.join(then, on=cols, how="anti", nulls_equal=True).with_columns(pl.lit(True).alias("_added"))
    removed = then.join(now, on=cols, how="anti", nulls_equal=True).with_columns(pl.lit(False).alias("_added"))
    # a re-delimited record keeps every value but its end; anything else is a new content
    same = [c for c in cols if c != "valid_to"]
    side = pl.col("_added")
    paired = (side.any() & (~side).any()).over(same)
    return pl.concat([added, removed]).select(
        "pernr", pl.when(paired).then(pl.col("valid_to").min().over(same) + timedelta(days=1))
        .otherwise(pl.col("valid_from")).alias("effective")).unique(maintain_order=True)


def earliest_unsettled_change(md_now: dict[str, pl.DataFrame], md_then: dict[str, pl.DataFrame] | None,
                              pernrs: list[str]) -> pl.DataFrame:
    """Earliest effective day of a pay-relevant master-data change since `md_then` (the
    extract of the last FINAL that paid these staff; None = never paid).
    Grain: one row per staff member with a change (pernr, effective)."""
    return earliest_unsettled_changes(md_now, [(md_then, pernrs)])


def earliest_unsettled_changes(md_now: dict[str, pl.DataFrame],
                               groups: list[tuple[dict[str, pl.DataFrame] | None, list[str]]]) -> pl.DataFrame:
    """`earliest_unsettled_change` of several groups of staff at once, each group with the
    extract of the last FINAL that paid it (`(md_then, pernrs)`). A staff member is in one
    group and every record carries its PERNR, so the groups' records are compared in one
    stacked pass: the same rows as one call per group.
    Grain: one row per staff member with a change (pernr, effective)."""
    # one pass: every record now against one stack of earlier records — the largest group's
    # extract whole but for the other groups' staff, and each other group's extract for its own
    # staff (a staff member's changes are read from his own records alone: every key holds
    # PERNR) —, the changes then kept for the groups' staff. Cutting the largest group's staff
    # out of both sides cost as much as the comparison itself.
    # each group's staff as one list value, built once for the four infotypes (a Series built
    # from 10,000 Python strings costs as much as the filter that reads it)
    staffed = [(then, pl.Series(pernrs, dtype=pl.String).implode()) for then, pernrs in groups]
    largest = max((i for i, (then, _) in enumerate(staffed) if then is not None), key=lambda i: len(groups[i][1]),
                  default=None)
    whole = staffed[largest] if largest is not None else None
    rest = [g for i, g in enumerate(staffed) if i != largest]
    rest_staff = pl.concat([pernrs.explode() for _, pernrs in rest]).implode() if rest else None
    parts = []
    for it in PAY_INFOTYPES:
        # opaque codes (reason, cost centre) carry no pay meaning: a change there is no change
        key = ["pernr", "member_id", "valid_from"] if it == "family" else ["pernr", "valid_from"]
        every = md_now[it].drop(OPAQUE, strict=False)
        earlier = [then[it].filter(pl.col("pernr").is_in(pernrs)).drop(OPAQUE, strict=False).select(every.columns)
                   for then, pernrs in rest if then is not None]
        if whole is not None:
            extract = whole[0][it].drop(OPAQUE, strict=False).select(every.columns)
            earlier.append(extract if rest_staff is None else extract.filter(~pl.col("pernr").is_in(rest_staff)))
        parts.append(_effective_changes(every, pl.concat(earlier) if earlier else every.head(0), key))
    staff = pl.concat([pernrs.explode() for _, pernrs in staffed] or [pl.Series([], dtype=pl.String)]).implode()
    return (pl.concat(parts).group_by("pernr").agg(pl.col("effective").min())
            .filter(pl.col("pernr").is_in(staff)))


def ledger(final_lines: pl.DataFrame, wage_types: tuple[str, ...] = pm.RETRO_WAGE_TYPES) -> pl.DataFrame:
    """What earlier FINAL runs paid. Grain: one row per staff member, for-period, wage type."""
    return (
        final_lines.filter(pl.col("wage_type").is_in(list(wage_types)))
        .group_by("pernr", "for_period", "wage_type").agg(pl.col("amount_cents").sum().alias("paid_cents"))
    )


def final_periods(runs: pl.DataFrame) -> set[str]:
    """Periods whose FINAL is in the history."""
    return set(runs.filter(pl.col("run_type") == "FINAL")["period"].to_list())
