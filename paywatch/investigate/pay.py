"""A staff member's pay: what each FINAL paid, this run against the previous FINAL, and
each deterministic wage type against the pay model with the staff member's own numbers."""

from __future__ import annotations

from fractions import Fraction

import duckdb
import polars as pl

from detectors import paymodel as pm
from detectors.money import decimal as cents_decimal, decimal_columns
from paywatch.investigate.frames import _lines, _md, _ref, _wage_type_order
from paywatch.warehouse import analysis as wh
from paywatch.warehouse import queries as q

# The pay model's rule per deterministic wage type (docs/extract-format.md); "as written" = the
# line of this run the rule refers to, so one wrong input line gives one difference.
PAY_MODEL_RULES = {
    pm.WT_BASE: "ANNUAL_NET(grade, step) / 12 × BSGRD/100 × f",
    pm.WT_POST_ADJ: "1000 as written × MULTIPLIER(duty station) / 100 (P, D)",
    pm.WT_SPOUSE: "1000 as written × SPOUSE_RATE (P, D with a dependent spouse)",
    pm.WT_CHILD: "children under CHILD_AGE_LIMIT × CHILD_ANNUAL_<currency> / 12 × f",
    pm.WT_OVERTIME: "hours × round(ANNUAL_NET × 1.5 / 2080) (G, ≥ 10 active days)",
    pm.WT_PENSION: "−ANNUAL_PR(grade, step) / 12 × BSGRD/100 × f × PENSION_STAFF_RATE",
    pm.WT_HEALTH: "−(1000 + 1010 as written) × HEALTH_RATE",
}


def pay_history(con: duckdb.DuckDBPyConnection, pernr: str, payroll_area: str | None = None) -> pl.DataFrame:
    """Current-month lines of every FINAL run (what was paid each month). Grain: one row per
    period and wage type (amounts summed should a wage type be written twice)."""
    f = wh.final_pay_by_period(con, pernr, payroll_area).join(wh.wage_type_texts(con), on="wage_type", how="left")
    f = decimal_columns(f, {"amount_cents": "amount"})
    return _wage_type_order(f, "period").sort("period", maintain_order=True).select(
        "period", "run_id", "wage_type", "wage_type_text", "wage_class", "amount", "currency", "lines")


def pay_history_chart(frame: pl.DataFrame, title: str = "Paid at each FINAL, by wage type"):
    """Line chart of `pay_history`: one line per earning/deduction wage type over the
    periods, the amount paid (/560) in bold. Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    periods = sorted(frame["period"].unique().to_list()) if frame.height else []
    labels = [f"{p[:4]}-{p[4:]}" for p in periods]
    pos = {p: i for i, p in enumerate(periods)}
    if not periods:
        ax.text(0.5, 0.5, "No FINAL run has paid this staff member yet", ha="center", va="center",
                transform=ax.transAxes)
    lines = frame.filter(~pl.col("wage_type").is_in(["/101", "/550"]))
    for (wt,), part in _wage_type_order(lines).group_by("wage_type", maintain_order=True):
        text = part["wage_type_text"][0] or wt
        xs = [pos[p] for p in part["period"].to_list()]
        ys = [float(v) for v in part["amount"].to_list()]
        if wt == "/560":
            ax.plot(xs, ys, "k-", lw=2.5, marker="o", label=f"{wt} {text}")
        else:
            ax.plot(xs, ys, marker="o", ls="--" if part["wage_class"][0] == "DEDUCTION" else "-", label=f"{wt} {text}")
    currencies = [c for c in frame["currency"].unique().to_list() if c] if frame.height else []
    ax.set_xticks(range(len(labels)), labels)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel(" / ".join(sorted(currencies)) or "amount")
    ax.set_title(title)
    if periods:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    plt.close(fig)  # returned for display, not left open in pyplot's registry
    return fig


def previous_final(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """The latest FINAL run before `run_id` in contract order (None: there is none)."""
    finals = q.final_runs_before(con, run_id)
    return finals["run_id"][-1] if finals.height else None


def compare_with_previous_final(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """This run's lines next to the previous FINAL's. Current-month lines are paired by wage
    type (this month against last month's pay), retroactive lines by wage type and
    for-period. Grain: one row per wage type and line kind (current, or retro for-period)."""
    def keyed(lines: pl.DataFrame, col: str) -> pl.DataFrame:
        return (lines.with_columns(pl.when(pl.col("for_period") == pl.col("in_period")).then(pl.lit("current"))
                                   .otherwise(pl.concat_str(pl.lit("retro "), pl.col("for_period"))).alias("line"))
                .group_by("wage_type", "line")
                .agg(pl.col("for_period").first().alias(f"for_period_{col}"), pl.col("amount_cents").sum().alias(col),
                     pl.col("currency").first().alias(f"currency_{col}")))

    schema = {"pernr": pl.String, "wage_type": pl.String, "for_period": pl.String, "in_period": pl.String,
              "amount_cents": pl.Int64, "currency": pl.String}
    this = keyed(_lines(con, run_id, pernr), "this_run")
    prev_id = previous_final(con, run_id)
    prev_lines = _lines(con, prev_id, pernr) if prev_id else pl.DataFrame(schema=schema)
    prev = keyed(prev_lines.select(list(schema)), "previous_final")
    f = this.join(prev, on=["wage_type", "line"], how="full", coalesce=True)
    f = f.with_columns(
        (pl.col("this_run").fill_null(0) - pl.col("previous_final").fill_null(0)).alias("difference"),
        pl.coalesce("currency_this_run", "currency_previous_final").alias("currency"),
        pl.lit(prev_id, dtype=pl.String).alias("previous_final_run"),
    ).join(wh.wage_type_texts(con).select("wage_type", "wage_type_text"), on="wage_type", how="left")
    f = decimal_columns(f, {"this_run": "this_run", "previous_final": "previous_final", "difference": "difference"})
    return _wage_type_order(f, "line").select(
        "wage_type", "wage_type_text", "line", "for_period_this_run", "this_run", "for_period_previous_final",
        "previous_final", "difference", "currency", "previous_final_run")



def _frac(num, den) -> Fraction | None:
    return None if num is None or den is None else Fraction(int(num), int(den))


def _fmt(x: Fraction | int | None, places: int = 6) -> str:
    if x is None:
        return "?"
    x = Fraction(x)
    if x.denominator == 1:
        return f"{x.numerator:,}"
    return f"{float(x):,.{places}f}".rstrip("0").rstrip(".")


def _inputs(wt: str, r: dict, written: dict[str, int], hours: Fraction | None) -> str:
    """The rule with this staff member's numbers (facts row `r` of the pay model)."""
    if not r:
        return "not active in the month (f = 0): no lines expected"
    f = f"{r['active_days']}/{r['days_in_month']}"
    pct = f"{r['employment_pct']}/100"
    net, pr = cents_decimal(r.get("annual_net_cents")), cents_decimal(r.get("annual_pr_cents"))
    base = written.get(pm.WT_BASE)
    base_s = f"{cents_decimal(base)} (as written)" if base is not None else "model 1000"
    if wt == pm.WT_BASE:
        return f"ANNUAL_NET {net} ({r['grade']} step {r['step']}) / 12 × {pct} × f {f}"
    if wt == pm.WT_POST_ADJ:
        return f"{base_s} × {_fmt(_frac(r['multiplier_num'], r['multiplier_den']))} / 100 ({r['duty_station']})"
    if wt == pm.WT_SPOUSE:
        dep = "dependent spouse" if r["has_dependent_spouse"] else "no dependent spouse"
        return f"{base_s} × {_fmt(_frac(r['spouse_num'], r['spouse_den']))} ({dep})"
    if wt == pm.WT_CHILD:
        child = _frac(r["child_num"], r["child_den"])
        annual = _fmt(None if child is None else child / 100, 2)
        return f"{r['n_children']} child(ren) × {annual} {r['currency']} / 12 × f {f}"
    if wt == pm.WT_OVERTIME:
        n = _fmt(hours, 2) if hours is not None else "no"
        return f"{n} hours × round({net} × 1.5 / 2080) (category {r['staff_category']})"
    if wt == pm.WT_PENSION:
        return f"−ANNUAL_PR {pr} / 12 × {pct} × f {f} × {_fmt(_frac(r['pension_num'], r['pension_den']))}"
    if wt == pm.WT_HEALTH:
        post = written.get(pm.WT_POST_ADJ)
        post_s = f"{cents_decimal(post)} (as written)" if post is not None else "model 1010"
        return f"−({base_s} + {post_s}) × {_fmt(_frac(r['health_num'], r['health_den']))}"
    return ""


def compare_with_pay_model(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """Each deterministic wage type of the run's own month: the amount written against the
    pay model (detectors.paymodel.expected_for_period with the run's master data, reference
    tables and the as-written rule). `expected` is null where an input is missing (pay model
    incomputable). Grain: one row per deterministic wage type written or expected."""
    from detectors.context import overtime_hours

    info = q.run_info(con, run_id)
    period = info["period"]
    lines = _lines(con, run_id, pernr)
    current = lines.filter(pl.col("for_period") == pl.col("in_period")).select(
        "pernr", "for_period", "in_period", "wage_type", "amount_cents", "currency", "quantity")
    hours = overtime_hours(current)
    facts, expected = pm.expected_for_period(_md(con, run_id, pernr), _ref(con, run_id), period, written=current,
                                             overtime_hours=hours, pernrs=[pernr])
    model = list(pm.MODEL_WAGE_TYPES)
    written = (current.filter(pl.col("wage_type").is_in(model)).group_by("wage_type")
               .agg(pl.col("amount_cents").sum().alias("written_cents"), pl.len().alias("lines"),
                    pl.col("currency").first()))
    exp = expected.select("wage_type", "expected_cents").with_columns(pl.lit(True).alias("_in_model"))
    f = written.join(exp, on="wage_type", how="full", coalesce=True).with_columns(
        # a wage type the model does not list is expected to be absent (0); a null it lists is incomputable
        pl.when(pl.col("_in_model").is_null()).then(pl.lit(0, dtype=pl.Int64)).otherwise(pl.col("expected_cents"))
        .alias("expected_cents"),
        pl.col("written_cents").fill_null(0), pl.col("lines").fill_null(0),
    ).with_columns((pl.col("written_cents") - pl.col("expected_cents")).alias("difference_cents"))
    fr = facts.row(0, named=True) if facts.height else {}
    as_written = {wt: c for wt, c in written.select("wage_type", "written_cents").iter_rows()}
    h = _frac(hours["hours_num"][0], hours["hours_den"][0]) if hours.height else None
    f = f.with_columns(
        pl.col("currency").fill_null(fr.get("currency")),
        pl.col("wage_type").replace_strict(PAY_MODEL_RULES, default="").alias("rule"),
        pl.col("wage_type").map_elements(lambda wt: _inputs(wt, fr, as_written, h), return_dtype=pl.String)
        .alias("with_these_numbers"),
        pl.lit(period).alias("for_period"),
    ).join(wh.wage_type_texts(con).select("wage_type", "wage_type_text"), on="wage_type", how="left")
    f = decimal_columns(f, {"written_cents": "written", "expected_cents": "expected", "difference_cents": "difference"})
    return f.sort("wage_type").select("wage_type", "wage_type_text", "for_period", "written", "expected",
                                      "difference", "currency", "lines", "rule", "with_these_numbers")

