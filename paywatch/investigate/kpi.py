"""The KPI notebook: staff excluded at FINAL against the 2018 baseline and the target, and
per-rule precision from reviewers' decisions (views over findings + decisions)."""

from __future__ import annotations

import duckdb
import polars as pl

from paywatch.settings import KpiTargets, kpi_targets
from paywatch import lifecycle as lc
from paywatch.warehouse import analysis as wh


def kpi_frame(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """Staff excluded at each FINAL, 12-month average, 2018 baseline and target (kpi_monthly)."""
    return lc.kpi(con, payroll_area)


def staff_paid_at_last_final(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> int:
    """Staff with pay lines in the latest FINAL run (of the area, or of each area summed)."""
    return wh.staff_paid_at_last_final(con, payroll_area)


def kpi_figure(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None,
               targets: KpiTargets | None = None, scale_from_staff: int | None = None):
    """Monthly staff excluded at FINAL and their 12-month average per payroll area, against
    the 2018 average and the target (as lifecycle.kpi_chart, as a Figure).

    The baseline and target (`targets`, default the `[kpi]` configuration) are counts for
    the whole Geneva payroll. `scale_from_staff`
    (that payroll's size, an estimate) scales both lines to the number of staff paid at
    this warehouse's latest FINAL, for a smaller (simulated) area; the labels say so."""
    import matplotlib.pyplot as plt

    k = kpi_frame(con, payroll_area)
    lines = targets or kpi_targets()
    baseline, target = lines.baseline, lines.target
    note = ""
    if scale_from_staff:
        staff = staff_paid_at_last_final(con, payroll_area)
        factor = staff / scale_from_staff
        baseline, target = baseline * factor, target * factor
        note = f", scaled × {staff:,}/{scale_from_staff:,} staff"
    fig, ax = plt.subplots(figsize=(8, 4.2))
    periods = sorted(k["period"].unique().to_list())
    pos = {p: i for i, p in enumerate(periods)}
    for (area,), part in k.group_by("payroll_area", maintain_order=True):
        xs = [pos[p] for p in part["period"].to_list()]
        ax.plot(xs, part["excluded_staff"].to_list(), "o-", label=f"{area}: excluded at FINAL")
        ax.plot(xs, part["avg_12m"].to_list(), "s--", label=f"{area}: 12-month average")
    ax.axhline(baseline, color="grey", lw=1, ls="-.", label=f"2018 average ({baseline:.3g}{note})")
    ax.axhline(target, color="green", lw=1.5, label=f"target ({target:.3g}{note})")
    if not periods:
        ax.text(0.5, 0.5, "No FINAL run in the warehouse yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(range(len(periods)), [f"{p[:4]}-{p[4:]}" for p in periods])
    ax.set_ylabel("staff")
    ax.set_ylim(bottom=0)
    ax.set_title("Staff held (excluded) at FINAL" + (f" — payroll area {payroll_area}" if payroll_area else ""))
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    plt.close(fig)
    return fig


def precision_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per detector over all months: exceptions confirmed vs marked false positive by
    reviewers and the precision confirmed / (confirmed + false positives). Grain: one row
    per detector with at least one such decision."""
    p = lc.rule_precision(con)
    return (p.group_by("detector").agg(pl.col("confirmed").sum(), pl.col("false_positives").sum(),
                                       pl.col("exceptions").sum(), pl.col("period").n_unique().alias("months"))
            .with_columns((pl.col("confirmed") / (pl.col("confirmed") + pl.col("false_positives"))).alias("precision"))
            .sort("detector"))


def precision_figure(con: duckdb.DuckDBPyConnection):
    """Bars of per-rule precision from reviewers' decisions, each labelled confirmed/decided.
    With no such decision yet, an empty chart that says so (a precision needs decisions)."""
    import matplotlib.pyplot as plt

    p = precision_frame(con)
    fig, ax = plt.subplots(figsize=(8, 4))
    if p.height == 0:
        ax.text(0.5, 0.5, "No reviewer decision yet (confirm / false_positive):\nprecision cannot be measured.",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
    else:
        xs = range(p.height)
        ax.bar(xs, p["precision"].to_list(), color="tab:blue")
        for x, c, n in zip(xs, p["confirmed"].to_list(), (p["confirmed"] + p["false_positives"]).to_list()):
            ax.text(x, c / n + 0.02, f"{c}/{n}", ha="center", fontsize=8)
        ax.set_xticks(list(xs), p["detector"].to_list())
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("precision (confirmed / decided)")
    ax.set_title("Per-rule precision from reviewers' decisions")
    fig.tight_layout()
    plt.close(fig)
    return fig


def kpi_per_staff_frame(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """The headline with the area's size: staff excluded at FINAL, 12-month average, staff
    paid at that FINAL and both per 1,000 staff paid (comparable with Geneva's 29.5 and 12.0
    per 1,000). Grain: one row per payroll area per month."""
    return lc.kpi_per_staff(con, payroll_area)


def kpi_per_staff_figure(con: duckdb.DuckDBPyConnection, payroll_area: str, targets: KpiTargets | None = None):
    """The close report's chart as a Figure: staff excluded at FINAL per 1,000 staff paid
    against the 2018 average and the target per 1,000 staff (any area's size on one scale)."""
    return lc.kpi_rate_figure(lc.kpi_per_staff(con, payroll_area), targets or kpi_targets(),
                              f"Staff excluded at FINAL — payroll area {payroll_area}")


def case_kpi_frame(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """Cases asking for action per month: opened at SIM1/SIM2, fixed before FINAL and that
    share (what the early routing saved), median days to fix, cases holding staff at FINAL.
    Grain: one row per payroll area per month."""
    return lc.case_kpi_monthly(con, payroll_area)


def cases_per_owner(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """The case figures per owner (HR, FINANCE). Grain: one row per area x month x owner."""
    return lc.cases_by(con, "owner", payroll_area)


def cases_per_entity(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """The case figures per client entity (ORGEH valid in the month). Grain: one row per
    area x month x entity, most cases first."""
    return lc.cases_by(con, "entity", payroll_area)


def case_journey_frame(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """Every case: first seen, fixed in which run, days to fix, fixed before FINAL, held at
    FINAL. Grain: one row per case per area per month."""
    return lc.case_journey(con, payroll_area)


def advances_frame(con: duckdb.DuckDBPyConnection, payroll_area: str, period: str,
                   cfg: dict | None = None) -> pl.DataFrame:
    """Salary advances recommended at closes before `period`, followed to its end: paid in
    which off-cycle run, recovered how far, open balance (cents). Grain: one row per staff
    member per recommending month. `cfg`: a loaded configuration (default: the shipped one)."""
    from paywatch.settings import load_settings

    return lc.advance_followup(con, payroll_area, period, cfg or load_settings(None))
