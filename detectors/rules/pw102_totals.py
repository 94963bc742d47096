"""PW102 totals — /101, /550 and /560 each written once and consistent with the lines.

/101 = sum of EARNING lines (current and retroactive), /550 = /101 (as written) + the
DEDUCTION lines, /560 = /550 (as written) — docs/extract-format.md. Classes come from T512W,
never from signs.
"""

from __future__ import annotations

import polars as pl

from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.money import money
from detectors.context import Context

CODE = "PW102"
CONFIG = (ENABLED, SEVERITY,
          Key("min_net_cents", int, "net pay below this (in cents) is flagged for active staff"))
TOTALS = ("/101", "/550", "/560")
NAMES = {"/101": "Total gross (/101)", "/550": "Statutory net (/550)", "/560": "Amount paid (/560)"}


def staff_totals(ctx: Context) -> pl.DataFrame:
    """Sums by class and the totals as written. Grain: one row per staff member."""
    lines = ctx.inp.lines.join(ctx.wage_types.select("wage_type", "wage_class"), on="wage_type", how="left")
    in_period = pl.col("for_period") == pl.col("in_period")
    wt, cls = pl.col("wage_type"), pl.col("wage_class")

    def amount_if(cond: pl.Expr) -> pl.Expr:
        return pl.when(cond).then(pl.col("amount_cents")).otherwise(0)

    # masked columns, then plain sums: one pass, no per-group filter (a filter per
    # aggregation costs a third of the pass)
    return lines.lazy().select(
        "pernr", amount_if(cls == "EARNING").alias("earnings"), amount_if(cls == "DEDUCTION").alias("deductions"),
        pl.when(wt == "/560").then(pl.col("currency")).alias("currency"),
        (cls != "TOTAL").cast(pl.UInt32).alias("n_pay_lines"),
        *[amount_if((wt == t) & in_period).alias(f"w{t[1:]}") for t in TOTALS],
        *[((wt == t) & in_period).cast(pl.UInt32).alias(f"n{t[1:]}") for t in TOTALS],
    ).group_by("pernr").agg(pl.exclude("currency").sum(), pl.col("currency").drop_nulls().first()).select(
        "pernr", "earnings", "deductions", "currency", "n_pay_lines", *[f"w{t[1:]}" for t in TOTALS],
        *[f"n{t[1:]}" for t in TOTALS]).collect()


def _suspects(t: pl.DataFrame, params: Params, offcycle: bool) -> pl.DataFrame:
    """The staff rows that can give a finding (the loop below decides); a vectorised
    pre-filter so that the per-staff Python runs on a few rows, not on the whole payroll."""
    c = pl.col
    exp550 = pl.when(c("n101") > 0).then(c("w101") + c("deductions")).otherwise(c("earnings") + c("deductions"))
    net = pl.when(c("n550") > 0).then(c("w550")).otherwise(exp550)
    off = [(c("n101") != 1) | (c("w101") != c("earnings")), (c("n550") != 1) | (c("w550") != exp550),
           (c("n560") != 1) | (c("w560") != net)]
    low = pl.lit(not offcycle) & (c("n_pay_lines") > 0) & (net < params.min_net_cents)
    return t.filter(pl.any_horizontal(*off, low))


def run(ctx: Context, params: Params) -> pl.DataFrame:
    t = _suspects(staff_totals(ctx), params, ctx.meta.run_type == "OFFCYCLE")
    rows = []
    for r in t.iter_rows(named=True):
        cur = r["currency"]
        expected = {"/101": r["earnings"], "/550": r["w101"] + r["deductions"] if r["n101"] else r["earnings"] + r["deductions"]}
        expected["/560"] = r["w550"] if r["n550"] else expected["/550"]
        for tot in TOTALS:
            n, written, exp = r[f"n{tot[1:]}"], r[f"w{tot[1:]}"], expected[tot]
            if n == 1 and written == exp:
                continue
            if n == 0:
                text = f"{NAMES[tot]} is missing; the lines give {money(exp, cur)}."
            elif n > 1:
                text = f"{NAMES[tot]} is written {n} times (together {money(written, cur)}); it must appear once."
            else:
                text = (f"{NAMES[tot]} is {money(written, cur)} but the lines add up to {money(exp, cur)}: "
                        f"difference {money(written - exp, cur)}.")
            rows.append(finding(ctx, params, r["pernr"], "totals_mismatch", text, owner="FINANCE", wage_type=tot,
                                amount_cents=written if n else None, expected_cents=exp, currency=cur,
                                evidence={"earnings": r["earnings"], "deductions": r["deductions"], "times_written": n}))
        net = r["w550"] if r["n550"] else expected["/550"]
        if ctx.meta.run_type != "OFFCYCLE" and r["n_pay_lines"] and net < params.min_net_cents:
            text = (f"Net pay is {money(net, cur)}: deductions of {money(-r['deductions'], cur)} "
                    f"exceed gross pay of {money(r['earnings'], cur)}.")
            rows.append(finding(ctx, params, r["pernr"], "negative_net", text, owner="FINANCE", wage_type="/550",
                                amount_cents=net, currency=cur,
                                evidence={"earnings": r["earnings"], "deductions": r["deductions"]}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "totals", ("totals_mismatch", "negative_net"), run, config=CONFIG,
                    description="Checks the technical totals /101, /550, /560 and flags zero or negative net pay.")
