"""peer_reference (models/context.py) bit for bit as it was before session 8 made it faster.

`old_peer_reference` below is the implementation of commit 16db4a5, kept verbatim as the oracle:
the faster one (only the levels a row reads, the share and its amount in one pass) must give the
same frame, float for float, on random peer groups — sizes around `min_group` and `loo_max`,
tied values, staff without facts, null entities and grades, one group or many. An earlier
rewrite (session 7) was identical on the 10k data but not on random groups; this is the test
that would have caught it.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from detectors.models.context import IQR_SCALE, LEVELS, MAD_SCALE, band, peer_reference


def _old_robust(value: pl.Expr, floor: float, floor_rel: float) -> tuple[pl.Expr, pl.Expr]:
    """Median and spread: the larger of the scaled MAD and the scaled interquartile range (a
    unit half in session and half not is two clusters, whose MAD reads one tight cluster)."""
    med = value.median()
    iqr = value.quantile(0.75, "linear") - value.quantile(0.25, "linear")
    spread = pl.max_horizontal((value - med).abs().median() * MAD_SCALE, iqr / IQR_SCALE, med.abs() * floor_rel,
                               pl.lit(floor))
    return med, spread


def old_peer_reference(now: pl.DataFrame, facts: pl.DataFrame, split: int, min_group: int, floor: float,
                   floor_rel: float, upper_iqr: float = 1.0, *, loo_max: int) -> pl.DataFrame:
    """`now` (pernr, value, ...) with the peer reference of each row: peer_median, peer_scale,
    peer_upper (the top of the group's usual range: third quartile + `upper_iqr` x the
    interquartile range), peer_q3, peer_max (the second highest of the others: the unit's own
    peak, read so that a second outlier does not hide the first) — each over the group's
    other members —, peer_n (the group's size)
    and peer_group (the most specific group of at least `min_group`; null when even the
    category is smaller). Staff without facts this month (no assignment) get none."""
    who = facts.select("pernr", "entity", "staff_category", "grade").unique("pernr", keep="first")
    x = now.join(who, on="pernr", how="left").with_columns(band(split))
    # the statistics of the OTHER members of the group (leave one out): in a group of five,
    # one claim of 79 h must not widen the very spread it is measured against
    med_e, spread_e = _old_robust(pl.col("_ov"), floor, floor_rel)
    q1, q3 = pl.col("_ov").quantile(0.25, "linear"), pl.col("_ov").quantile(0.75, "linear")
    upper_e = q3 + upper_iqr * (q3 - q1)
    for i, keys in enumerate(LEVELS):
        keys = list(keys)
        x = x.with_columns(pl.len().over(keys).alias(f"_n{i}"))
        named = [med_e.alias(f"_m{i}"), spread_e.alias(f"_s{i}"), upper_e.alias(f"_u{i}"), q3.alias(f"_q{i}")]
        # pairing each member with every other costs the square of the group's size: exact
        # for groups up to `loo_max`; above it one member moves a median by half a rank at most,
        # so the whole group stands in (its peak still leaves the member out, by rank)
        small = x.filter(pl.col(f"_n{i}") <= loo_max)
        others = small.select(*keys, pl.col("pernr").alias("_op"), pl.col("value").alias("_ov"))
        loo = (small.select("pernr", *keys).join(others, on=keys).filter(pl.col("pernr") != pl.col("_op"))
               .group_by("pernr").agg(*named, pl.col("_ov").top_k(2).min().alias(f"_x{i}")))
        big = x.filter(pl.col(f"_n{i}") > loo_max)
        whole = (big.select(*keys, pl.col("value").alias("_ov")).group_by(keys)
                 .agg(*named, pl.col("_ov").top_k(3).sort(descending=True).alias("_top")))
        ranked = (big.select("pernr", *keys, pl.col("value").rank("ordinal", descending=True).over(keys).alias("_r"))
                  .join(whole, on=keys)
                  # the others' second highest: the third of the group for its top two, else the second
                  .with_columns(pl.when(pl.col("_r") <= 2).then(pl.col("_top").list.get(2, null_on_oob=True))
                                .otherwise(pl.col("_top").list.get(1, null_on_oob=True)).alias(f"_x{i}"))
                  .select("pernr", *[f"_{k}{i}" for k in "msuqx"]))
        x = x.join(pl.concat([loo, ranked], how="diagonal_relaxed"), on="pernr", how="left")
    def pick(kind: str) -> pl.Expr:
        expr = pl.lit(None)
        for i in reversed(range(len(LEVELS))):
            expr = pl.when((pl.col(f"_n{i}") >= min_group) & pl.col("staff_category").is_not_null()) \
                .then(pl.col(f"_{kind}{i}")).otherwise(expr)
        return expr
    label = pl.lit(None, dtype=pl.String)
    names = (pl.concat_str(pl.col("entity"), pl.lit(" "), pl.col("band")),
             pl.concat_str(pl.col("entity"), pl.lit(" "), pl.col("staff_category")), pl.col("band"),
             pl.col("staff_category"), pl.concat_str(pl.lit("paid in "), pl.col("currency")))
    for i in reversed(range(len(LEVELS))):
        label = pl.when((pl.col(f"_n{i}") >= min_group) & pl.col("staff_category").is_not_null()) \
            .then(names[i]).otherwise(label)
    return x.with_columns(pick("m").alias("peer_median"), pick("s").alias("peer_scale"),
                          pick("u").alias("peer_upper"), pick("q").alias("peer_q3"), pick("x").alias("peer_max"),
                          pick("n").cast(pl.Int64).alias("peer_n"), label.alias("peer_group")).drop(
        [f"_{k}{i}" for i in range(len(LEVELS)) for k in "msunqx"])




def _world(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A random run's rows (pernr, value, amount, currency) and facts: groups of random sizes
    (1 to 90, around min_group and loo_max), values drawn from a few distributions with ties,
    some staff without facts, some with a null entity or grade."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    entities = [f"E{i}" for i in range(int(rng.integers(1, 12)))]
    cats = ["P", "G", "FS", "NO"][: int(rng.integers(1, 5))]
    grades = ["1", "2", "3", "4", "5", "7"]
    pernr = [f"{i:08d}" for i in rng.permutation(100_000)[:n]]
    kind = rng.integers(0, 4)
    if kind == 0:
        value = rng.integers(1, 12, n).astype(float)  # hours: many ties
    elif kind == 1:
        value = rng.random(n) * 0.3  # shares
    elif kind == 2:
        value = np.round(rng.lognormal(1, 1, n), 2)
    else:
        value = rng.choice([0.1, 1 / 3, 2 / 3, 0.7, 1e-7, 123456.789], n)
    amount = rng.integers(-500_000, 500_000, n)
    amount[rng.random(n) < 0.1] = 0
    now = pl.DataFrame({"pernr": pernr, "value": value, "amount": amount,
                        "currency": rng.choice(["CHF", "USD"], n, p=[0.9, 0.1])})
    ent = rng.choice(entities, n, p=rng.dirichlet(np.ones(len(entities)) * 0.5))
    facts = pl.DataFrame({"pernr": pernr, "entity": ent.astype(object), "staff_category": rng.choice(cats, n),
                          "grade": [f"{c}-{g}" for c, g in zip(rng.choice(["P", "G"], n), rng.choice(grades, n))]})
    facts = facts.with_columns(
        pl.when(pl.Series(rng.random(n) < 0.03)).then(None).otherwise(pl.col("entity")).alias("entity"),
        pl.when(pl.Series(rng.random(n) < 0.03)).then(None).otherwise(pl.col("grade")).alias("grade"))
    facts = facts.filter(pl.Series(rng.random(n) >= 0.05))  # staff without facts this month
    return now, facts


def _same(new: pl.DataFrame, old: pl.DataFrame) -> None:
    assert sorted(new.columns) == sorted(old.columns)
    new, old = new.select(old.columns).sort("pernr"), old.sort("pernr")
    assert new.schema == old.schema
    for c in old.columns:  # float for float: the bits, not a tolerance
        a, b = new[c], old[c]
        if a.dtype == pl.Float64:
            a, b = a.to_numpy().view(np.int64), b.to_numpy().view(np.int64)
            assert (new[c].is_null() == old[c].is_null()).all(), c
            keep = ~old[c].is_null().to_numpy()
            assert (a[keep] == b[keep]).all(), c
        else:
            assert a.equals(b), c


@pytest.mark.parametrize("seed", range(400))
def test_peer_reference_is_the_old_one_bit_for_bit(seed):
    now, facts = _world(seed)
    rng = np.random.default_rng(10_000 + seed)
    min_group, loo_max = int(rng.choice([1, 2, 5, 8, 30])), int(rng.choice([2, 8, 64]))
    split, floor, floor_rel, upper = 4, float(rng.choice([0.0, 0.02, 4.0])), float(rng.choice([0.0, 0.15])), 1.0
    new = peer_reference(now, facts, split, min_group, floor, floor_rel, upper, loo_max=loo_max)
    _same(new, old_peer_reference(now, facts, split, min_group, floor, floor_rel, upper, loo_max=loo_max))
    # the share and its amount in one pass: the amount's median, spread and peak as the old
    # function read them from a frame of amounts
    both = peer_reference(now, facts, split, min_group, floor, floor_rel, upper, loo_max=loo_max, amount_floor=1.0)
    amounts = now.with_columns(pl.col("amount").abs().cast(pl.Float64).alias("value"))
    ref = old_peer_reference(amounts, facts, split, min_group, 1.0, floor_rel, upper, loo_max=loo_max)
    _same(both, new.join(ref.select("pernr", pl.col("peer_median").alias("peer_amount_median"),
                                     pl.col("peer_scale").alias("peer_amount_scale"),
                                     pl.col("peer_max").alias("peer_amount_max")), on="pernr", how="left"))


def test_no_usable_group_gives_typed_nulls():
    """Every group below min_group: no level is read, the columns still have their types."""
    now, facts = _world(3)
    new = peer_reference(now, facts, 4, 10_000, 1.0, 0.1, loo_max=64)
    old = old_peer_reference(now, facts, 4, 10_000, 1.0, 0.1, loo_max=64)
    assert new["peer_median"].null_count() == new.height
    _same(new, old)


@pytest.mark.parametrize("loo_max", [2, 64])
def test_one_reader_of_a_level_in_one_group(loo_max):
    """Exactly one row reads the second level (its band has one member), in the only group
    there is: the statistics are computed for one row of one group, and must be those the old
    function computed for every row."""
    values = [0.11, 0.13, 0.17, 0.19, 0.23, 0.71]
    now = pl.DataFrame({"pernr": [f"{i:08d}" for i in range(6)], "value": values,
                        "amount": [1100, 1300, 1700, 1900, 2300, 7100], "currency": ["CHF"] * 6})
    facts = now.select("pernr", pl.lit("E1").alias("entity"), pl.lit("P").alias("staff_category"),
                       pl.Series("grade", ["P-2"] * 5 + ["P-5"]))
    new = peer_reference(now, facts, 4, 5, 0.0, 0.0, loo_max=loo_max, amount_floor=1.0)
    assert new.filter(pl.col("pernr") == "00000005")["peer_group"].item() == "E1 P"
    old = old_peer_reference(now, facts, 4, 5, 0.0, 0.0, loo_max=loo_max)
    amounts = now.with_columns(pl.col("amount").abs().cast(pl.Float64).alias("value"))
    ref = old_peer_reference(amounts, facts, 4, 5, 1.0, 0.0, loo_max=loo_max)
    _same(new, old.join(ref.select("pernr", pl.col("peer_median").alias("peer_amount_median"),
                                    pl.col("peer_scale").alias("peer_amount_scale"),
                                    pl.col("peer_max").alias("peer_amount_max")), on="pernr", how="left"))
