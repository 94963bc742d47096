"""Context references of variable pay, read as a payroll officer reads them: each staff
member against their OWN history and against PEERS in the current run.

Shared by the context models (PW201 overtime hours, PW203 special post allowance and other
deductions). All vectorised polars (group_by / over); no loop over staff.

- measure: `hours` (ANZHL of the month's lines) or `share` (|amount| / the month's 1000,
  so proration by days and part time cancels out).
- own reference: per staff member and wage type, the lower median and robust spread (1.4826 x
  MAD, floored) of the measure over the last `own_runs` earlier FINALs that carried it.
- peer reference: the same statistics over this run's staff with the wage type in the same
  client entity (ORGEH), staff category (PERSG) and grade band (TRFGR); a group smaller than
  `min_group` falls back to entity + category (a unit's shared peak stays the unit's), then
  category + band across entities, then the category.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm

MAD_SCALE = 1.4826
IQR_SCALE = 1.349  # the interquartile range of a normal distribution, in standard deviations
LEVELS = (("entity", "staff_category", "band"), ("entity", "staff_category"), ("staff_category", "band"),
          ("staff_category",), ("currency",))


def band(split: int) -> pl.Expr:
    """Grade band: the category and whether the grade's level is below `split` (P-1..P-3 vs P-4, P-5)."""
    level = pl.col("grade").str.extract(r"(\d+)$").cast(pl.Int64, strict=False)
    return pl.concat_str(pl.col("staff_category"), pl.when(level < split).then(pl.lit("-lower"))
                         .otherwise(pl.lit("-upper"))).alias("band")


def measured(lines: pl.DataFrame | pl.LazyFrame, wage_type: str, measure: str) -> pl.DataFrame:
    """The month's measure of one wage type. Grain: one row per run and staff member with it
    (run_id, pernr, value, amount, currency)."""
    lines = lines.lazy()  # a frame or a plan (own_reference's runs filter joins the pass)
    # one run (no run_id): grouped by the staff member alone, the run named after (a constant
    # text key costs a third of the pass)
    keys = ["run_id", "pernr"] if "run_id" in lines.collect_schema().names() else ["pernr"]
    run_id = pl.col("run_id") if len(keys) == 2 else pl.lit("current").alias("run_id")
    # one plan, collected once: the month's filter and the wage type's are read in one pass
    cur = lines.filter(pl.col("for_period") == pl.col("in_period"))
    wt = (cur.filter(pl.col("wage_type") == wage_type).group_by(keys)
          .agg(pl.col("quantity").cast(pl.Float64).sum().alias("_qty"), pl.col("amount_cents").sum().alias("amount"),
               pl.col("currency").first()))
    if measure == "hours":
        return wt.select(run_id, "pernr", pl.col("_qty").alias("value"), "amount", "currency").collect()
    base = (cur.filter(pl.col("wage_type") == pm.WT_BASE).group_by(keys)
            .agg(pl.col("amount_cents").sum().alias("_base")).filter(pl.col("_base") > 0))
    return wt.join(base, on=keys).select(
        run_id, "pernr", (pl.col("amount").abs() / pl.col("_base")).alias("value"), "amount", "currency").collect()


def amount_read(cols) -> pl.Expr:
    """The amount peers are compared on: a prorated wage type's whole-month amount
    (`amount_month`, where paymodel.whole_month added it), else the amount paid."""
    return pl.col("amount_month" if "amount_month" in cols else "amount")


def _robust(value: pl.Expr, floor: float, floor_rel: float) -> tuple[pl.Expr, pl.Expr]:
    """Median and spread: the larger of the scaled MAD and the scaled interquartile range (a
    unit half in session and half not is two clusters, whose MAD reads one tight cluster)."""
    med = value.median()
    iqr = value.quantile(0.75, "linear") - value.quantile(0.25, "linear")
    spread = pl.max_horizontal((value - med).abs().median() * MAD_SCALE, iqr / IQR_SCALE, med.abs() * floor_rel,
                               pl.lit(floor))
    return med, spread


def own_reference(final_lines: pl.DataFrame, runs: pl.DataFrame, wage_type: str, measure: str, own_runs: int,
                  floor: float, floor_rel: float) -> pl.DataFrame:
    """Own usual level. Grain: one row per staff member with the wage type in the last
    `own_runs` earlier FINALs (pernr, own_median, own_scale, own_n, own_amount: the lower
    median of the amounts paid, in cents; own_max: the highest month)."""
    finals = runs.filter(pl.col("run_type") == "FINAL")["run_id"].to_list()[-own_runs:]
    past = measured(final_lines.lazy().filter(pl.col("run_id").is_in(finals)), wage_type, measure)
    if past.height == 0:
        return pl.DataFrame(schema={"pernr": pl.String, "own_median": pl.Float64, "own_scale": pl.Float64,
                                    "own_n": pl.UInt32, "own_amount": pl.Float64, "own_max": pl.Float64})
    # the lower median: with two months on record, an earlier error paid at FINAL must not
    # become half the yardstick
    v = pl.col("value").cast(pl.Float64)
    med = v.sort().gather((pl.len() - 1) // 2).first().cast(pl.Float64)
    spread = pl.max_horizontal((v - med).abs().median() * MAD_SCALE, med.abs() * floor_rel, pl.lit(floor))
    amount = pl.col("amount").abs().cast(pl.Float64).sort().gather((pl.len() - 1) // 2).first()
    return past.group_by("pernr").agg(med.alias("own_median"), spread.alias("own_scale"), pl.len().alias("own_n"),
                                      amount.alias("own_amount"), v.max().alias("own_max"))


def peer_reference(now: pl.DataFrame, facts: pl.DataFrame, split: int, min_group: int, floor: float,
                   floor_rel: float, upper_iqr: float = 1.0, *, loo_max: int,
                   amount_floor: float | None = None) -> pl.DataFrame:
    """`now` (pernr, value, ...) with the peer reference of each row: peer_median, peer_scale,
    peer_upper (the top of the group's usual range: third quartile + `upper_iqr` x the
    interquartile range), peer_q3, peer_max (the second highest of the others: the unit's own
    peak, read so that a second outlier does not hide the first) — each over the group's
    other members —, peer_n (the group's size)
    and peer_group (the most specific group of at least `min_group`; null when even the
    category is smaller). Staff without facts this month (no assignment) get none.
    With `amount_floor`, the same peers' amounts (|amount|, spread floored at `amount_floor`)
    too: peer_amount_median, peer_amount_scale, peer_amount_max (the groups are the same rows,
    so both are read in one pass: each aggregation sees the same groups as it would alone).
    Only the levels some row reads (its most specific group of at least `min_group`) are
    computed; each of those exactly as the whole set was (tests/test_detector_peer_identity.py)."""
    who = facts.select("pernr", "entity", "staff_category", "grade").unique("pernr", keep="first")
    x = now.join(who, on="pernr", how="left").with_columns(band(split))
    out_cols = x.columns
    values = [(pl.col("value"), floor)]
    if amount_floor is not None:
        values.append((amount_read(out_cols).abs().cast(pl.Float64), amount_floor))
    x = x.with_columns(*[e.alias(f"_v{j}") for j, (e, _) in enumerate(values)],
                       *[pl.len().over(list(keys)).alias(f"_n{i}") for i, keys in enumerate(LEVELS)])
    # the level each row reads: the first whose group is large enough (none without a category)
    usable = [(pl.col(f"_n{i}") >= min_group) & pl.col("staff_category").is_not_null() for i in range(len(LEVELS))]
    chosen = pl.lit(None, dtype=pl.Int64)
    for i in reversed(range(len(LEVELS))):
        chosen = pl.when(usable[i]).then(pl.lit(i, dtype=pl.Int64)).otherwise(chosen)
    x = x.with_columns(chosen.alias("_l"))
    used = sorted(x.get_column("_l").drop_nulls().unique().to_list())
    # rows that read each level, within groups read leaving one out and within groups read whole
    counts = x.select(*[((pl.col(f"_n{i}") <= loo_max) & (pl.col("_l") == i)).sum().alias(f"small{i}") for i in used],
                      *[((pl.col(f"_n{i}") > loo_max) & (pl.col("_l") == i)).sum().alias(f"big{i}") for i in used]
                      ).row(0, named=True) if used else {}
    # the statistics of the OTHER members of the group (leave one out): in a group of five,
    # one claim of 79 h must not widen the very spread it is measured against
    def named(i: int) -> list[pl.Expr]:
        exprs = []
        for j, (_, fl) in enumerate(values):
            o = pl.col(f"_o{j}")
            med_e, spread_e = _robust(o, fl, floor_rel)
            q1, q3 = o.quantile(0.25, "linear"), o.quantile(0.75, "linear")
            exprs += [med_e.alias(f"_m{i}_{j}"), spread_e.alias(f"_s{i}_{j}"),
                      (q3 + upper_iqr * (q3 - q1)).alias(f"_u{i}_{j}"), q3.alias(f"_q{i}_{j}")]
        return exprs
    vs = range(len(values))
    stats = [f"_{k}{{i}}_{j}" for j in vs for k in "msuqx"]
    lx = x.lazy()
    for i in used:
        keys = list(LEVELS[i])
        # pairing each member with every other costs the square of the group's size: exact
        # for groups up to `loo_max`; above it one member moves a median by half a rank at most,
        # so the whole group stands in (its peak still leaves the member out, by rank)
        # each group's statistics over all its members; computed for the rows that read them
        parts = []
        if counts[f"small{i}"]:
            small = lx.filter(pl.col(f"_n{i}") <= loo_max)
            others = small.select(*keys, pl.col("pernr").alias("_op"), *[pl.col(f"_v{j}").alias(f"_o{j}") for j in vs])
            parts.append(small.filter(pl.col("_l") == i).select("pernr", *keys).join(others, on=keys)
                         .filter(pl.col("pernr") != pl.col("_op")).group_by("pernr")
                         .agg(*named(i), *[pl.col(f"_o{j}").top_k(2).min().alias(f"_x{i}_{j}") for j in vs]))
        if counts[f"big{i}"]:
            big = lx.filter(pl.col(f"_n{i}") > loo_max)
            whole = (big.select(*keys, *[pl.col(f"_v{j}").alias(f"_o{j}") for j in vs]).group_by(keys)
                     .agg(*named(i), *[pl.col(f"_o{j}").top_k(3).sort(descending=True).alias(f"_top{j}") for j in vs]))
            parts.append(
                big.select("pernr", "_l", *keys, *[pl.col(f"_v{j}").rank("ordinal", descending=True).over(keys)
                                                   .alias(f"_r{j}") for j in vs])
                .filter(pl.col("_l") == i).join(whole, on=keys)
                # the others' second highest: the third of the group for its top two, else the second
                .with_columns(*[pl.when(pl.col(f"_r{j}") <= 2).then(pl.col(f"_top{j}").list.get(2, null_on_oob=True))
                                .otherwise(pl.col(f"_top{j}").list.get(1, null_on_oob=True)).alias(f"_x{i}_{j}")
                                for j in vs])
                .select("pernr", *[c.format(i=i) for c in stats]))
        x = x.lazy().join(pl.concat(parts, how="diagonal_relaxed") if len(parts) > 1 else parts[0], on="pernr",
                          how="left")
    x = x.lazy().collect(engine="in-memory")
    def pick(col: str, dtype) -> pl.Expr:  # a level no row reads changes no row's pick
        expr = pl.lit(None, dtype=dtype)
        for i in reversed(used):
            expr = pl.when(usable[i]).then(pl.col(col.format(i=i))).otherwise(expr)
        return expr
    label = pl.lit(None, dtype=pl.String)
    names = (pl.concat_str(pl.col("entity"), pl.lit(" "), pl.col("band")),
             pl.concat_str(pl.col("entity"), pl.lit(" "), pl.col("staff_category")), pl.col("band"),
             pl.col("staff_category"), pl.concat_str(pl.lit("paid in "), pl.col("currency")))
    for i in reversed(used):
        label = pl.when(usable[i]).then(names[i]).otherwise(label)
    f64 = pl.Float64
    out = [pick("_m{i}_0", f64).alias("peer_median"), pick("_s{i}_0", f64).alias("peer_scale"),
           pick("_u{i}_0", f64).alias("peer_upper"), pick("_q{i}_0", f64).alias("peer_q3"),
           pick("_x{i}_0", f64).alias("peer_max"), pick("_n{i}", pl.UInt32).cast(pl.Int64).alias("peer_n"),
           label.alias("peer_group")]
    if amount_floor is not None:
        out += [pick("_m{i}_1", f64).alias("peer_amount_median"), pick("_s{i}_1", f64).alias("peer_amount_scale"),
                pick("_x{i}_1", f64).alias("peer_amount_max")]
    return x.select(*out_cols, *out)


def area_reference(x: pl.DataFrame, quantile: float, ratio: float, floor: float,
                   keys: tuple[str, ...] = ("staff_category",)) -> pl.DataFrame:
    """`x` with the whole area's reference this run, per staff category over every unit (those in
    session included): area_ceiling = where the area's continuum of values ends — from its
    `quantile` upward, the values go on while each next one is within `ratio` x or two spread
    floors (`floor`) of the one before; the first value past such a gap, and all above it, are
    beyond (one error, or several, far above the rest do not raise the ceiling, and the area's
    habitual heavy claimants stay inside it) —, and area_n = the others of the category with the
    wage type (`keys`: the category; the pay currency for an amount). What a payroll officer reads
    a claim against when the unit alone says it is high."""
    keys = list(keys)
    v = pl.col("value")
    nxt = v.shift(-1).over(keys, order_by="value")
    brk = (v >= v.quantile(quantile, "lower").over(keys)) & (nxt > pl.max_horizontal(v * ratio, v + 2 * floor))
    return (x.with_columns(pl.coalesce(v.filter(brk).min().over(keys), v.max().over(keys)).alias("area_ceiling"),
                           (pl.len().over(keys) - 1).cast(pl.Int64).alias("area_n")))


def unit_peak(x: pl.DataFrame, unit: tuple[str, ...] = ("entity", "staff_category")) -> pl.DataFrame:
    """`x` with area_unit_peak: the second highest value of the others of the staff member's unit
    (client entity and category) this run, null with fewer than two others or no unit — what the
    unit itself claims, beside the area's ceiling (a peak three of a unit share is no outlier)."""
    v = pl.col("value")
    # top_k leaves its values in no particular order (it moved with the rows' order between runs)
    top = v.top_k(3).sort(descending=True).over(list(unit), mapping_strategy="join")
    t0, t1, t2 = (top.list.get(i, null_on_oob=True) for i in range(3))
    second = pl.when((v == t0) | (v == t1)).then(t2).otherwise(t1)  # leaving the member out
    return x.with_columns(pl.when(pl.all_horizontal(pl.col(c).is_not_null() for c in unit)).then(second)
                          .otherwise(None).alias("area_unit_peak"))


def scored(x: pl.DataFrame, t_own: float, t_peer: float, t_alone: float, min_ratio: float,
           own_ratio: float | None = None, cold_upper: float | None = None, cold_min_peers: int = 20,
           t_dual: float | None = None, ratio_min_runs: int = 1, dual_min_peers: int = 8,
           peak_ratio: float | None = None, peak_min_peers: int = 8, peak_floor: float = 0.0,
           area_ratio: float | None = None, area_min: int = 20,
           peak_amount_ratio: float | None = None, dual_peak_ratio: float | None = None) -> pl.DataFrame:
    """Adds z_own, z_peer, `raw` (unusualness in thresholds: 1 = at the threshold) and
    `unusual`. With both references a row must be unusual against BOTH (a level the whole
    unit shares is not, nor one that is this person's habit); with one, it stands alone
    against the stricter `t_alone`. Either way the value must be `min_ratio` x the reference.
    With both references, `own_ratio` x the own usual level or more that is also above the
    top of the peers' usual range (`peer_upper`, at least two spreads above their median) is
    unusual too (`by_ratio`): a peak the unit shares
    stays inside its range, a jump of one person's own does not — read only on an own level of
    `ratio_min_runs` FINALs or more (one month of 1 h makes an ordinary 15 h look like 15 x);
    on fewer, the peers' reading (z >= `t_alone`, and the peak reading below) stands on its own
    too (one month of an error paid at FINAL makes the same error look usual) — unless the value
    is under `min_ratio` x that month and the month itself was within `peak_ratio` x the peers'
    peak this month: then the month vouches, as a longer history would. Without own history (cold
    start), `cold_upper` x the top of the peers' usual range or more is unusual as well, in a
    group of at least `cold_min_peers` (a range needs peers to be read): in a group that mixes
    a peaking unit with quiet ones the spread is wide, its range still ends.
    A share measure has its amount beside it (`peer_amount_median`, `peer_amount_scale`):
    without own history, a value unusual against the peers both as a share of base salary and
    as an amount (robust z >= `t_dual` each, and `min_ratio` x the peers' median each), in a
    group of at least `dual_min_peers`, is unusual too — a high share of a low salary, or a
    high amount on a high one, is one of the two only; an amount multiplied is both. With
    `dual_peak_ratio` (and `peer_max`, `peer_amount_max`), that value must also be that multiple
    of the peers' peak share or of their peak amount (their second highest): what two others of
    the group are paid, as a share and as an amount, is the group's top, not one person's outlier,
    however tight the spread of the rest.
    With `peak_ratio`, a value at least that multiple of the peers' peak this month (the second
    highest of them, in a group of at least `peak_min_peers`), two spread floors (`peak_floor`)
    beyond it, and `min_ratio` x their median is
    unusual too, when it is unusual against the own history as well (z >= `t_own` and
    `min_ratio` x the own level) or there is none: a unit in session claims 20-60 h, one person's 106 h is beyond anyone's. For a share,
    the amount must be beyond the peers' peak amount too, by as much; with `peak_amount_ratio`, a
    share far (`peak_ratio` x) beyond the peers' peak share needs its amount only
    `peak_amount_ratio` x beyond their peak amount (an allowance multiplied in a first month:
    above every holder's share but inside what higher grades are paid), and an amount far beyond
    their peak amount needs its share only beyond their peak share (the reverse).
    With `area_ratio` (and `area_ceiling`, `area_n` from area_reference), the whole area stands
    above the unit when there is no own history and at least `area_min` others: a value no higher
    than the area's ceiling (what several others of the area claim this month, units in session
    included) is not unusual by the peers' reading alone (`area_within`: a habitual heavy
    claimant in an area's first month); one at least `area_ratio` x that ceiling and two spread
    floors beyond it, and beyond the unit's own peak (`area_unit_peak`, from unit_peak) by as much, is unusual
    however high the unit's session (`area_beyond`: above everything the area claims is no one's
    habit, unless others of the unit claim as much: a peak they share). Where the area is read, it alone decides
    whether one own month (`weak`) vouches: one not beyond the ceiling does, for up to `min_ratio`
    x itself; one beyond it does not, however near the peers' peak."""
    # one lazy plan; each reading used again below (raw, weak, vouched, by_ratio) is kept as a
    # column once rather than its expression copied into every later one (the copies doubled
    # with each step); elementwise, so the same values
    cols, temps = set(x.columns), []
    x = x.lazy()

    def kept(expr: pl.Expr) -> pl.Expr:
        nonlocal x
        name = f"_scored{len(temps)}"
        temps.append(name)
        x = x.with_columns(expr.alias(name))
        return pl.col(name)

    own, peer = pl.col("own_median").is_not_null(), pl.col("peer_median").is_not_null()
    z_own = (pl.col("value") - pl.col("own_median")) / pl.col("own_scale")
    z_peer = (pl.col("value") - pl.col("peer_median")) / pl.col("peer_scale")
    ref = pl.max_horizontal(pl.col("own_median"), pl.col("peer_median"))  # the higher of the references
    x = x.with_columns(z_own.alias("z_own"), z_peer.alias("z_peer"), ref.alias("reference"))
    raw = (pl.when(own & peer).then(pl.min_horizontal(pl.col("z_own") / t_own, pl.col("z_peer") / t_peer))
           .when(own).then(pl.col("z_own") / t_alone)
           .when(peer).then(pl.col("z_peer") / t_alone)
           .otherwise(None))
    raw = kept(raw)
    by_ratio = pl.lit(False)
    # an own level of fewer than ratio_min_runs FINALs can neither vouch nor convict alone: the
    # peers' reading stands on its own too (an error paid at a newcomer's first FINAL is no habit)
    weak = kept(own & (pl.col("own_n") < ratio_min_runs)) if "own_n" in cols else pl.lit(False)
    # ... yet that one month vouches for up to `min_ratio` x itself, as a longer history does, unless
    # it was itself beyond the unit's peak this month (`peak_ratio` x the others' second highest):
    # 24 h after 33 h is no jump; 113 h after a newcomer's 89 h, beyond anyone's, is
    vouched = pl.lit(False)
    if peak_ratio is not None and "peer_max" in cols:
        vouched = (weak & (pl.col("value") < pl.col("own_median") * min_ratio)
                   & (pl.col("own_median") <= pl.col("peer_max") * peak_ratio)).fill_null(False)
    area = over = pl.lit(False)
    if area_ratio is not None and "area_ceiling" in cols:  # the whole area above the unit
        ceiling, area = pl.col("area_ceiling"), (pl.col("area_n") >= area_min).fill_null(False)
        over = ((pl.col("value") >= ceiling * area_ratio)
                & (pl.col("value") - ceiling >= 2 * peak_floor)).fill_null(False)
        # where the area is read, it decides whether one own month vouches: one it would not call
        # beyond does (the area's heaviest claimants have such months); one beyond it does not,
        # however close to the peers' peak (a newcomer's 77 h error paid at FINAL, then 150 h)
        vouched = (pl.when(area).then(weak & (pl.col("value") < pl.col("own_median") * min_ratio)
                                      & (pl.col("own_median") < ceiling * area_ratio))
                   .otherwise(vouched)).fill_null(False)
    vouched = kept(vouched)
    alone = (weak & ~vouched & peer & (pl.col("z_peer") >= t_alone)
             & (pl.col("value") >= pl.col("peer_median") * min_ratio)).fill_null(False)
    alone = kept(alone)
    raw = kept(pl.when(alone).then(pl.max_horizontal(raw, pl.col("z_peer") / t_alone)).otherwise(raw))
    # the top of the peers' usual range, at least two spreads above their median: a group that
    # is all alike has no interquartile range, and a value just above it is no outlier
    top = pl.max_horizontal(pl.col("peer_upper"), pl.col("peer_median") + 2 * pl.col("peer_scale"))
    if own_ratio is not None and "peer_upper" in cols:
        runs_ok = (pl.col("own_n") >= ratio_min_runs) if "own_n" in cols else pl.lit(True)
        by_ratio = (own & peer & runs_ok & (pl.col("value") >= pl.col("own_median") * own_ratio)
                    & (pl.col("value") > top)
                    & (pl.col("value") >= pl.col("peer_median") * min_ratio)).fill_null(False)
    if cold_upper is not None and "peer_upper" in cols:
        by_ratio = by_ratio | (~own & peer & (pl.col("peer_n") >= cold_min_peers) & (pl.col("value") >= top * cold_upper)
                               & (pl.col("value") >= pl.col("peer_median") * min_ratio)).fill_null(False)
    dual = pl.lit(False)
    if t_dual is not None and "peer_amount_median" in cols:
        amt = amount_read(cols).abs().cast(pl.Float64)
        x = x.with_columns(((amt - pl.col("peer_amount_median")) / pl.col("peer_amount_scale")).alias("z_amount"))
        dual = kept(~own & peer & (pl.col("peer_n") >= dual_min_peers) & (pl.col("z_peer") >= t_dual)
                & (pl.col("z_amount") >= t_dual)
                & (pl.col("value") >= pl.col("peer_median") * min_ratio)
                & (amt >= pl.col("peer_amount_median") * min_ratio)).fill_null(False)
        if dual_peak_ratio is not None and "peer_max" in cols and "peer_amount_max" in cols:
            # two P-4s paid 700 and 713 USD (9.7 %) above a group at 3 % read z >= 3 against the
            # rest's tight spread; with an error paid more than both, each one's peak (the
            # others' second highest) is the other: alike, they are the group's top holders
            past_peak = ((pl.col("value") >= pl.col("peer_max") * dual_peak_ratio)
                         | (amt >= pl.col("peer_amount_max") * dual_peak_ratio)).fill_null(True)
            dual = kept(dual & past_peak)
        raw = kept(pl.when(dual).then(pl.max_horizontal(
            raw, pl.min_horizontal(pl.col("z_peer"), pl.col("z_amount")) / t_dual)).otherwise(raw))
    by_ratio = kept(by_ratio | dual | alone)
    if peak_ratio is not None and "peer_max" in cols:
        # a share beyond the peers' peak as an amount too needs no multiple of their median besides
        # (a newcomer's allowance x 3 above every holder's of a mixed-grade group; see below)
        share = "peer_amount_max" in cols
        # with `peak_amount_ratio`, a share far (peak_ratio) beyond the peers' peak share needs its
        # amount `peak_amount_ratio` x beyond their peak amount (a group's top holder on a low grade
        # sits just above the others' peak amount; a multiplied allowance far above it), and an
        # amount far beyond their peak amount needs its share only beyond their peak share
        by = peak_ratio if peak_amount_ratio is None else 1.0
        by_amount = peak_ratio if peak_amount_ratio is None else peak_amount_ratio
        far = pl.col("value") >= pl.col("peer_max") * (by if share else peak_ratio)
        peak = (peer & (pl.col("peer_n") >= peak_min_peers) & far
                & (pl.col("value") - pl.col("peer_max") >= 2 * peak_floor)
                & (pl.lit(share) | (pl.col("value") >= pl.col("peer_median") * min_ratio))
                & (~own | (weak & ~vouched)
                   | ((pl.col("z_own") >= t_own) & (pl.col("value") >= pl.col("own_median") * min_ratio))))
        if share:  # a share: beyond anyone's as an amount too
            amt = amount_read(cols).abs()
            peak = peak & (((pl.col("value") >= pl.col("peer_max") * peak_ratio)
                            & (amt >= pl.col("peer_amount_max") * by_amount))
                           | (amt >= pl.col("peer_amount_max") * peak_ratio))
        peak = kept(peak.fill_null(False))
        raw = kept(pl.when(peak).then(pl.max_horizontal(
            raw, pl.col("value") / (pl.col("peer_max") * peak_ratio))).otherwise(raw))
        by_ratio = by_ratio | peak
    # without a usual level of one's own, the unit explains a claim but the area convicts it:
    # not beyond the area's ceiling is no outlier (`within`), beyond it is one (`beyond`)
    within = ((~own | weak) & area & ~over).fill_null(False)
    # ... and beyond the unit's own peak (the second highest of its others) by as much: three of a
    # unit in session at 48-52 h above an area whose other claims stop at 38 h share their peak
    # (the unit, not the peer group: a group read area-wide holds other units' errors)
    unit_peak = pl.lit(True)
    if area_ratio is not None and "area_unit_peak" in cols:
        unit_peak = (pl.col("area_unit_peak").is_null()
                     | ((pl.col("value") >= pl.col("area_unit_peak") * area_ratio)
                        & (pl.col("value") - pl.col("area_unit_peak") >= 2 * peak_floor)))
    beyond = ((~own | (weak & ~vouched)) & area & over & unit_peak).fill_null(False)
    if area_ratio is not None and "area_ceiling" in cols:
        raw = kept(pl.when(beyond).then(pl.max_horizontal(
            raw, pl.col("value") / (pl.col("area_ceiling") * area_ratio))).otherwise(raw))
    by_ratio = (by_ratio & ~within) | beyond
    # raw for a row unusual by ratio: how far past the peers' range, in those ranges (>= 1)
    raw_ratio = pl.max_horizontal(pl.lit(1.0), pl.col("value") / pl.col("peer_upper"))
    x = x.with_columns(within.alias("area_within"), beyond.alias("area_beyond"))
    return x.with_columns(by_ratio.alias("by_ratio"), raw.alias("raw")).with_columns(
        pl.when(pl.col("by_ratio") & (pl.col("raw").fill_null(0.0) < 1.0)).then(raw_ratio)
        .otherwise(pl.col("raw")).alias("raw"),
        (((pl.col("raw") >= 1.0) & (pl.col("value") >= pl.col("reference") * min_ratio)).fill_null(False)
         & ~pl.col("area_within") | pl.col("by_ratio")).alias("unusual"),
        # money above the usual level: what would be overpaid if this went out
        (pl.col("amount").abs().cast(pl.Float64) * (1 - pl.col("reference") / pl.col("value"))).alias("excess")
    ).drop(temps).collect(engine="in-memory")


class ContextModel:
    """PyOD-style: `fit` on the history learns each staff member's own usual level of one wage
    type; `decision_function` scores this run's rows against it and against their peers in
    the run (higher = more unusual; `threshold_` = 1.0, i.e. at the configured thresholds)."""

    threshold_ = 1.0

    def __init__(self, params, wage_type: str, measure: str, peak_amount_ratio: float | None = None):
        self.params, self.wage_type, self.measure = params, wage_type, measure
        self.peak_amount_ratio = peak_amount_ratio
        self.floor = params.min_scale_hours if measure == "hours" else params.min_scale_share

    def fit(self, final_lines: pl.DataFrame, runs: pl.DataFrame) -> "ContextModel":
        p = self.params
        self.own_ = own_reference(final_lines, runs, self.wage_type, self.measure, p.own_runs, self.floor,
                                  p.min_scale_rel)
        return self

    def score(self, lines: pl.DataFrame, facts: pl.DataFrame) -> pl.DataFrame:
        """This run's rows of the wage type with both references, z-scores, `raw` and `unusual`.
        Grain: one row per staff member with the wage type this month."""
        p = self.params
        now = measured(lines, self.wage_type, self.measure).drop("run_id").filter(pl.col("value") > 0)
        if self.wage_type in pm.PRORATED_VARIABLE:
            now = pm.whole_month(now, facts)
        # a share has the same peers' amounts beside it (the groups are the same rows): median,
        # spread and peak, read in the same pass
        dual = self.measure == "share" and "dual_threshold" in p.as_dict()
        x = peer_reference(now, facts, p.band_split, p.min_group, self.floor, p.min_scale_rel, p.upper_iqr,
                           loo_max=p.loo_max, amount_floor=1.0 if dual else None)
        t_dual, dual_min = None, 0
        if dual:
            t_dual, dual_min = p.dual_threshold, p.dual_min_peers
        x = x.join(self.own_, on="pernr", how="left")
        area = p.as_dict().get("area_ratio")
        if area is not None:
            x = unit_peak(area_reference(x, p.area_quantile, area, self.floor))
        return scored(x, p.threshold, p.threshold, p.threshold_alone, p.min_ratio, p.own_ratio, p.cold_upper,
                      p.cold_min_peers, t_dual, p.ratio_min_runs, dual_min, p.peak_ratio, p.peak_min_peers,
                      self.floor, area, p.as_dict().get("area_min_claims", 20), self.peak_amount_ratio,
                      p.as_dict().get("dual_peak_ratio"))

    def decision_function(self, lines: pl.DataFrame, facts: pl.DataFrame) -> pl.Series:
        return self.score(lines, facts)["raw"].fill_null(0.0)


def describe(r: dict, measure: str) -> str:
    """The value and both references with numbers, e.g. '41 h, 11.7x own median 3.5 h;
    OHCHR G-lower staff this month median 6 h'."""
    def fmt(v: float) -> str:
        return f"{v:g} h" if measure == "hours" else f"{v:.1%} of base salary"
    parts = [fmt(r["value"])]
    if r["own_median"] is not None:
        parts[0] += f", {r['value'] / max(r['own_median'], 1e-9):.1f}x own median {fmt(r['own_median'])}"
    else:
        parts[0] += ", no earlier FINAL of this staff member to compare with"
    if r["peer_median"] is not None:
        peers = f"{r['peer_group']} staff this month median {fmt(r['peer_median'])}"
        if measure == "share" and r.get("peer_amount_median") is not None:
            peers += f" ({r['peer_amount_median'] / 100:,.2f} {r['currency']})"
        parts.append(peers + f" (n = {r['peer_n']})")
    if r.get("area_beyond") and r.get("area_ceiling") is not None:  # the area convicted it
        parts.append(f"beyond all {r['staff_category']} staff of the area this month, whose values run up to "
                     f"{fmt(r['area_ceiling'])} (n = {r['area_n']})")
    return "; ".join(parts)


def severity(r: dict, params) -> str:
    """hold when far beyond the references with a large amount at stake; else `params.severity`."""
    big = r["raw"] >= params.hold_factor and (r["excess"] or 0) >= params.hold_min_cents
    return "hold" if big else params.severity
