"""PW201 overtime_hours_model — overtime hours against the staff member's own usual month
AND their peers this month (models/context.py).

`ContextModel` (PyOD style): `fit` on the earlier FINALs learns each staff member's median
hours and spread; `decision_function` scores this month's hours against it and against
staff of the same client entity, category and grade band who claim overtime this month
(category-wide when that group is smaller than `min_group`). A claim is flagged only when
unusual against both references (z >= `threshold`) where both exist: a peak a whole unit shares this month is
normal, and so is a habit. A claim of `own_ratio` x the own usual hours or more that is also
above the peers' usual range (third quartile + `upper_iqr` x IQR) is unusual as well: eleven
times one's own 3.5 h sits inside a peaking unit's spread, but not above its range. Without
own history, `cold_upper` x the top of the peers' usual range (at least two spreads above
their median) is unusual too: a category group that mixes peaking units with quiet ones has
a wide spread, but its range still ends. Peer statistics leave the staff member out. Without own history (a newcomer, an area's first month) the
peers stand alone against the stricter `threshold_alone`. Far beyond with a large amount at
stake (`hold_factor`, `hold_min_cents`) is hold, otherwise review.

Above the unit stands the whole area (`area_quantile`, `area_ratio`, `area_min_claims`): all G
claimants of the run, units in session included. Its ceiling is where its claims stop going on
(from the 95th percentile upward, each within 1.15 x or 8 h of the one before), so a few errors
far above do not raise it and habitual heavy claimants stay inside it. Without an own usual
level (no earlier FINAL with overtime, or one only), the unit explains a claim and the area
convicts it: a claim not beyond the ceiling by 1.15 x and 8 h is no outlier however high for
its unit (a heavy claimant in an area's first month), one beyond it, and as far beyond the
unit's own peak (the second highest of its others), is, however high the unit's session (a newcomer's 70 h
beside units in session whose claims end at 60 h; three of one unit at 48-52 h share a peak); one own month
inside the ceiling vouches for up to `min_ratio` x itself.

Beside the peer group stands the staff member's own unit (`unit_reading`, entity + category,
any size): its claims this month are read for its rise — with an own usual level, `own_ratio` x
it (z >= `threshold`) that is also `peak_ratio` x, and two spread floors, beyond the rise the
unit's others share (at least `unit_min_others` others in the unit) is unusual, however wide
units in session elsewhere make the area's band or heavy habitual claimants make the unit's own
range. An other claimant has risen at `unit_rise_ratio` x their own usual level, or, without
one, by claiming at all (their habit unknown); the second highest of those is the rise the unit
shares, so a heavy claimant at his usual hours is no session and one error beside another
shares nothing. With one own month only (no usual level, and the claim beyond the `min_ratio` x
it that one month vouches for), the unit's past stands in: its members' claims over the same
earlier FINALs (`unit_past_min_claims` or more on record); a claim `unit_past_ratio` x, and
two spread floors, beyond the highest of them and beyond the rise the unit shares this month
(a unit in session spreads its claims: the rise alone is no yardstick for an unknown habit),
and `min_ratio` x the peers' median this month, is unusual — a quiet unit's 57 h after one month of 9.5 h, however high units in
session raise the area's ceiling. And that one month vouches for what a session paid only while
the unit still claims as then: when the unit's claimants (`unit_quiet_min_others` others or more
with an earlier month) now claim, at their median, s < 1 x their earlier months, it vouches for
`min_ratio` x s x itself, and beyond that the peers alone judge (z >= `threshold_alone`) — 88 h
after a session month's 55.5 h, in a unit whose others are back at half their session hours.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Key, Params
from detectors.context import Context
from detectors.models.context import ContextModel, describe, severity
from detectors.money import money
from detectors.scoring import calibrated

CODE = "PW201"
CONTEXT_KEYS = (
    Key("severity", str, "severity of milder findings (far beyond: hold)", SEVERITY.choices),
    Key("threshold", float, "robust z, against own history and against peers, at which a value is unusual"),
    Key("own_runs", int, "earlier FINAL runs that make the staff member's own usual level"),
    Key("ratio_min_runs", int, "earlier FINALs with the wage type the own-ratio path needs (one month is no usual level)"),
    Key("min_group", int, "peers needed in a group (entity + category + grade band) before it is used; "
        "smaller groups fall back to entity + category, category + band, then the category"),
    Key("band_split", int, "grades whose level is below this form the lower band (P-1..P-3 with 4)"),
    Key("loo_max", int, "peer groups up to this size are read without the member (leave one out, exact; its "
        "cost is the square of the size); a larger group is read whole (its peak still leaves the member out)"),
    Key("threshold_alone", float, "robust z when only one reference exists (no own history, or no peers)"),
    Key("min_ratio", float, "and the value must be at least this multiple of the higher reference"),
    Key("own_ratio", float, "with both references: this multiple of the own usual level or more, above the "
        "peers' usual range, is unusual too"),
    Key("upper_iqr", float, "the peers' usual range ends at the third quartile + this many interquartile ranges"),
    Key("cold_upper", float, "without own history: this multiple of the top of the peers' usual range or more "
        "is unusual too ..."),
    Key("cold_min_peers", int, "... in a peer group of at least this many"),
    Key("min_scale_rel", float, "floor of the spread as a share of the median"),
    Key("hold_factor", float, "hold when this many times beyond the thresholds ..."),
    Key("hold_min_cents", int, "... and at least this much above the usual level is at stake"),
)
PEAK_KEYS = (Key("peak_ratio", float, "this multiple of the peers' peak this month (their second highest), two "
                  "spread floors beyond it, is unusual too ..."),
             Key("peak_min_peers", int, "... in a peer group of at least this many"))
AREA_KEYS = (Key("area_quantile", float, "the area's ceiling this month (every unit of the category, those in "
                  "session included): from this quantile of its values upward, the values go on ..."),
             Key("area_ratio", float, "... while each next one is within this multiple (or two spread floors) of the one "
                 "before; without an own usual level, a value not beyond that ceiling by as much is not unusual by "
                 "the peers alone, and one beyond it, and as far beyond the unit's own peak (the second highest of its others), is "
                 "unusual however high the unit's session ..."),
             Key("area_min_claims", int, "... read when at least this many others of the category have the wage type"))
UNIT_KEYS = (Key("unit_min_others", int, "with own history: a claim `own_ratio` x the own level (z >= threshold) "
                 "that is also `peak_ratio` x, and two spread floors, beyond the rise the other claimants of the "
                 "unit (entity + category) share this month is unusual, read with at least this many others"),
             Key("unit_rise_ratio", float, "an other claimant of the unit has risen at this multiple of their own "
                 "usual level (or claims with none on record); the second highest of those who rose is the rise "
                 "the unit shares"),
             Key("unit_past_ratio", float, "with one own month only, beyond what it vouches for: this multiple, and "
                 "two spread floors, beyond the highest month the unit's members claimed over the same earlier FINALs "
                 "and beyond the rise the unit shares this month, is unusual ..."),
             Key("unit_past_min_claims", int, "... read when the unit's members have at least this many claims on "
                 "record"),
             Key("unit_quiet_min_others", int, "with one own month only: when the unit's claimants (at least this many "
                 "others with an earlier month) now claim, at their median, less than in their earlier months, that "
                 "month vouches only for as much (min_ratio x it, scaled by the unit's median), and beyond it the "
                 "peers' reading stands alone (z >= threshold_alone, min_ratio x their median)"))
CONFIG = (ENABLED, *CONTEXT_KEYS, Key("min_scale_hours", float, "floor of the spread, in hours"), *PEAK_KEYS,
          *AREA_KEYS, *UNIT_KEYS)


UNIT = ["entity", "staff_category"]


def unit_past(own: pl.DataFrame, facts: pl.DataFrame) -> pl.DataFrame:
    """The unit's record over the earlier FINALs of the own level (`own`: ContextModel.own_),
    its members as this month: unit_past_max (the highest month any of them claimed) and
    unit_past_n (their claims on record). Grain: one row per unit (entity + category)."""
    who = facts.select("pernr", *UNIT).unique("pernr", keep="first").drop_nulls(UNIT)
    return (own.join(who, on="pernr").group_by(UNIT)
            .agg(pl.col("own_max").max().alias("unit_past_max"), pl.col("own_n").sum().cast(pl.Int64)
                 .alias("unit_past_n")))


def unit_reading(scored: pl.DataFrame, params: Params, past: pl.DataFrame | None = None) -> pl.DataFrame:
    """`scored` (ContextModel.score) with the staff member's own unit (entity + category) this
    month: unit_n (the unit's claimants), unit_max (the highest of the others' claims) and
    `by_unit` — far above the own usual level and beyond the rise of the unit's others
    (unit_rise_max: the second highest of those risen unit_rise_ratio x their own level, or
    claiming without one). A rise the unit shares stays normal: two risen others as high.
    With one own month only, `past` (unit_past) stands in for the usual level: `by_unit_past`.
    Grain: one row per claimant, as `scored`."""
    v = pl.col("value")
    p = params
    owned = pl.col("own_n").fill_null(0) >= p.ratio_min_runs
    # an other claimant shares a rise when risen to unit_rise_ratio x their own level, or, without one, when
    # as high in hours (their habit unknown): a heavy claimant at their usual hours is no session
    rising = pl.when(owned).then(v >= pl.col("own_median") * p.unit_rise_ratio).otherwise(True)
    tops = (scored.filter(pl.col("entity").is_not_null() & pl.col("staff_category").is_not_null())
            .group_by(UNIT).agg(v.top_k(2).sort(descending=True).alias("_top"), pl.len().alias("unit_n"),
                                v.filter(rising).top_k(3).sort(descending=True).alias("_rise"),
                                # how the unit claims now against its claimants' earlier months (the
                                # member's own ratio included: it only raises the median)
                                (v / pl.col("own_median")).filter(pl.col("own_median") > 0).median()
                                .alias("unit_shift"),
                                (pl.col("own_median") > 0).sum().cast(pl.Int64).alias("unit_shift_n")))
    x = scored.join(tops, on=UNIT, how="left", nulls_equal=False).with_columns(rising.alias("_rising"))

    def of_others(col: str, member: pl.Expr, k: int) -> pl.Expr:
        """The k-th highest (0: the highest) of the unit's values in `col` leaving the member out."""
        top = [pl.col(col).list.get(i, null_on_oob=True) for i in range(k + 2)]
        return pl.when(member & pl.any_horizontal([t == v for t in top[:k + 1]])).then(top[k + 1]).otherwise(top[k])

    # the rise the others share is the second highest of those who rose (as the unit's peak):
    # one error beside another in the same unit does not make a rise they share
    x = x.with_columns(of_others("_top", pl.lit(True), 0).alias("unit_max"),
                       of_others("_rise", pl.col("_rising"), 1).alias("unit_rise_max"),
                       pl.col("unit_n").fill_null(0).cast(pl.Int64))
    rise = pl.col("unit_rise_max")

    def beyond(ref: pl.Expr, ratio: float) -> pl.Expr:
        """The claim `ratio` x, and two spread floors, beyond `ref`."""
        return (v >= ref * ratio) & (v - ref >= 2 * p.min_scale_hours)

    by_unit = (~pl.col("unusual") & owned
               & (pl.col("z_own").fill_null(0.0) >= p.threshold) & (v >= pl.col("own_median") * p.own_ratio)
               & (pl.col("unit_n") - 1 >= p.unit_min_others)
               & (rise.is_null() | beyond(rise, p.peak_ratio)))
    if past is None:
        past = pl.DataFrame(schema={**{c: pl.String for c in UNIT}, "unit_past_max": pl.Float64,
                                    "unit_past_n": pl.Int64})
    x = x.join(past, on=UNIT, how="left", nulls_equal=False)
    # one own month is no usual level, and vouches for up to min_ratio x itself only: beyond
    # that, the unit's own record over the same FINALs is the yardstick (a unit in session this
    # month shares its rise; one that was in session before has it on record)
    top = pl.col("unit_past_max")
    by_past = (~pl.col("unusual") & (pl.col("own_n").fill_null(0) >= 1) & ~owned
               & (v > pl.col("own_median") * p.min_ratio)
               & (pl.col("unit_past_n").fill_null(0) >= p.unit_past_min_claims)
               & beyond(top, p.unit_past_ratio) & (rise.is_null() | beyond(rise, p.unit_past_ratio))
               # and far above the peers this month too: 19.5 h beside G staff at 18 h is no outlier,
               # however quiet the unit's record
               & (pl.col("peer_median").is_null() | (v >= pl.col("peer_median") * p.min_ratio)))
    x = x.with_columns(by_past.fill_null(False).alias("by_unit_past"))
    # ... and it vouches for what a session paid only while the unit still claims as then: a unit
    # that has calmed down (its claimants at 0.5 x their earlier months) scales what the month
    # vouches for, and beyond that the peers' reading stands alone, as with no own month at all
    shift = pl.col("unit_shift")
    by_quiet = (~pl.col("unusual") & (pl.col("own_n").fill_null(0) >= 1) & ~owned & ~pl.col("area_within")
                & (pl.col("unit_shift_n") - 1 >= p.unit_quiet_min_others) & (shift < 1)
                & (v >= pl.col("own_median") * p.min_ratio * shift)
                & (pl.col("z_peer") >= p.threshold_alone) & (v >= pl.col("peer_median") * p.min_ratio))
    x = x.with_columns(by_quiet.fill_null(False).alias("by_unit_quiet"))
    by_unit = by_unit | pl.col("by_unit_past") | pl.col("by_unit_quiet")
    return x.drop("_top", "_rise", "_rising").with_columns(by_unit.fill_null(False).alias("by_unit")).with_columns(
        (pl.col("unusual") | pl.col("by_unit")).alias("unusual"),
        pl.when(pl.col("by_unit")).then(pl.max_horizontal("raw", pl.lit(1.0))).otherwise(pl.col("raw")).alias("raw"))


def run(ctx: Context, params: Params) -> pl.DataFrame:
    if ctx.meta.run_type == "OFFCYCLE":
        return findings_frame([])
    hist = ctx.inp.history
    model = ctx.fitted_on_history(CODE, params, ContextModel(params, pm.WT_OVERTIME, "hours"),
                                  lambda m: m.fit(hist.final_lines, hist.runs), pm.WT_OVERTIME)
    ctx.artifacts[CODE] = model
    hits = unit_reading(model.score(ctx.current, ctx.facts), params, unit_past(model.own_, ctx.facts)).filter(
        pl.col("unusual"))
    rows = []
    for r in hits.iter_rows(named=True):
        text = (f"Overtime of {describe(r, 'hours')}: {money(r['amount'], r['currency'])} claimed, far above "
                f"both what this staff member and their peers usually claim.")
        if r["by_unit"]:
            others = f"the other {r['unit_n'] - 1} {r['staff_category']} claimant{'s' if r['unit_n'] > 2 else ''}"
            risen = (f"fewer than two of them risen {params.unit_rise_ratio:g} x their own usual hours"
                     if r["unit_rise_max"] is None else
                     f"those who rose ({params.unit_rise_ratio:g} x their own usual hours, or with none on record) "
                     f"peak at {r['unit_rise_max']:g} h (their second highest)")
            past = ""
            if r["by_unit_past"]:
                past = (f"one earlier FINAL on record ({r['own_median']:g} h) vouches for up to "
                        f"{params.min_ratio:g} x itself, and the unit's {r['unit_past_n']} claims in its earlier "
                        f"FINALs (the last {params.own_runs} at most) peak at {r['unit_past_max']:g} h; ")
            if r["unit_max"] is None:
                now = f"no other {r['staff_category']} staff of {r['entity']} claims this month: no rise the unit shares."
            else:
                now = (f"{others} of {r['entity']} this month claim at most {r['unit_max']:g} h, "
                       f"{risen}: no rise the unit shares.")
            if r["by_unit_quiet"]:
                past += (f"one earlier FINAL on record ({r['own_median']:g} h) vouches for up to "
                        f"{params.min_ratio:g} x itself only while the unit claims as then, and its "
                        f"{r['unit_shift_n']} claimants with an earlier month now claim {r['unit_shift']:.2f} x it "
                        f"(their median): it vouches for {r['own_median'] * params.min_ratio * r['unit_shift']:.1f} h; ")
            text = text[:-1] + f"; {past}{now}"
        rows.append(finding(ctx, params, r["pernr"], "overtime_outlier", text, owner="HR", wage_type=pm.WT_OVERTIME,
                            amount_cents=r["amount"], currency=r["currency"], severity=severity(r, params),
                            score=calibrated(float(r["raw"]), model.threshold_),
                            evidence={"hours": r["value"], "own_median": r["own_median"], "own_n": r["own_n"],
                                      "peer_group": r["peer_group"], "peer_median": r["peer_median"],
                                      "peer_n": r["peer_n"], "peer_upper": _round(r["peer_upper"]),
                                      "peer_max": r["peer_max"], "by_ratio": r["by_ratio"],
                                      "area_ceiling": r.get("area_ceiling"), "area_n": r.get("area_n"),
                                      "area_beyond": r.get("area_beyond"), "by_unit": r["by_unit"],
                                      "unit_n": r["unit_n"], "unit_max": r["unit_max"],
                                      "unit_rise_max": r["unit_rise_max"], "by_unit_past": r["by_unit_past"],
                                      "unit_past_max": r["unit_past_max"], "unit_past_n": r["unit_past_n"],
                                      "by_unit_quiet": r["by_unit_quiet"], "unit_shift": _round(r["unit_shift"]),
                                      "unit_shift_n": r["unit_shift_n"],
                                      "z_own": _round(r["z_own"]),
                                      "z_peer": _round(r["z_peer"]), "raw": _round(r["raw"])}))
    return findings_frame(rows)


def _round(v):
    return None if v is None else round(float(v), 2)


DETECTOR = Detector(CODE, "overtime_hours_model", ("overtime_outlier",), run, kind="model", config=CONFIG,
                    description="Overtime hours against own history and peers of the unit this month.",
                    scope="area")
