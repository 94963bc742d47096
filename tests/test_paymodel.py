"""The pay model: the contract's worked examples, and scalar == vectorised on random inputs."""

from datetime import date
from fractions import Fraction

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from detectors import paymodel as pm

RATES = dict(pension_rate=Fraction("0.079"), health_rate=Fraction("0.04"), spouse_rate=Fraction("0.06"))


def test_worked_example_1():
    sm = pm.StaffMonth("P", 8_000_000, 15_000_000, 100, 30, 30, child_annual_cents=315_000,
                       multiplier_pct=Fraction("81.7"), has_dependent_spouse=True, n_children=2, **RATES)
    lines = pm.compute_lines(sm)
    assert lines == {"1000": 666667, "1010": 544667, "1100": 40000, "1110": 52500, "3000": -98750, "3100": -48453}
    gross = sum(v for k, v in lines.items() if k < "3000")
    assert gross == 1303834 and gross + lines["3000"] + lines["3100"] == 1156631


def test_worked_example_2_exact_not_decimal28():
    sm = pm.StaffMonth("G", 5_000_200, 9_100_300, 50, 9, 30, **RATES)
    assert pm.compute_lines(sm) == {"1000": 62503, "3000": -8987, "3100": -2500}


def test_worked_example_3_uses_lines_as_written():
    sm = pm.StaffMonth("P", 8_000_500, 15_000_000, 100, 31, 31, multiplier_pct=Fraction("81.7"), **RATES)
    lines = pm.compute_lines(sm)
    assert lines["1000"] == 666708 and lines["1010"] == 544700


def test_referred_line_as_written_gives_one_difference_not_a_cascade():
    sm = pm.StaffMonth("P", 8_000_000, 15_000_000, 100, 30, 30, multiplier_pct=Fraction("81.7"),
                       written={"1000": 700000}, **RATES)
    lines = pm.compute_lines(sm)
    assert lines["1000"] == 666667  # the model's own 1000
    assert lines["1010"] == pm.round_half_away(Fraction(700000) * Fraction("0.817"))


def test_round_half_away_from_zero():
    assert pm.round_half_away(Fraction(5, 2)) == 3
    assert pm.round_half_away(Fraction(-5, 2)) == -3
    assert pm.round_half_away(Fraction(-249, 100)) == -2


def _frames(category, grade, step, pct, active_from, spouse, kids, period="202503"):
    first, last, _ = pm.month_bounds(period)
    md = {
        "actions": pl.DataFrame({"pernr": ["00000001"], "valid_from": [active_from], "valid_to": [date(9999, 12, 31)],
                                 "employment_status": ["3"]}),
        "basic_pay": pl.DataFrame({"pernr": ["00000001"], "valid_from": [active_from], "valid_to": [date(9999, 12, 31)],
                                   "grade": [grade], "step": [step], "employment_pct": [pct]}),
        "assignments": pl.DataFrame({"pernr": ["00000001"], "valid_from": [active_from], "valid_to": [date(9999, 12, 31)],
                                     "staff_category": [category], "duty_station": ["GVA"], "entity": ["ECE"]}),
        "family": pl.DataFrame(
            {"pernr": ["00000001"] * (len(kids) + spouse), "member_id": [f"{i:02d}" for i in range(len(kids) + spouse)],
             "member_type": ["1"] * spouse + ["2"] * len(kids), "birth_date": [date(1980, 1, 1)] * spouse + kids,
             "valid_from": [date(2000, 1, 1)] * (len(kids) + spouse), "valid_to": [date(9999, 12, 31)] * (len(kids) + spouse),
             "is_dependent": [True] * (len(kids) + spouse)},
            schema={"pernr": pl.String, "member_id": pl.String, "member_type": pl.String, "birth_date": pl.Date,
                    "valid_from": pl.Date, "valid_to": pl.Date, "is_dependent": pl.Boolean}),
    }
    return md


@settings(max_examples=150, deadline=None)
@given(
    category=st.sampled_from(["P", "D", "G"]),
    net=st.integers(1_000_000, 20_000_000),
    pr=st.integers(1_000_000, 40_000_000),
    pct=st.integers(1, 100),
    start_day=st.integers(1, 31),
    mult=st.decimals(min_value="0", max_value="150", places=3),
    spouse=st.integers(0, 1),
    kid_years=st.lists(st.integers(0, 25), max_size=3),
    hours=st.decimals(min_value="0.5", max_value="60", places=1),
)
def test_vectorised_equals_scalar(category, net, pr, pct, start_day, mult, spouse, kid_years, hours):
    period = "202503"
    start = date(2025, 3, start_day)
    grade = {"P": "P-3", "D": "D-1", "G": "G-4"}[category]
    kids = [date(2025 - y, 3, 1 + (y % 27)) for y in kid_years]
    md = _frames(category, grade, "01", pct, start, spouse, kids, period)
    ref = {
        "pay_scale": pl.DataFrame({"grade": [grade], "step": ["01"], "valid_from": [date(2025, 1, 1)],
                                   "valid_to": [date(9999, 12, 31)], "annual_net_cents": [net], "annual_pr_cents": [pr]}),
        "post_adjustment": pl.DataFrame({"duty_station": ["GVA"], "valid_from": [date(2025, 1, 1)],
                                         "valid_to": [date(9999, 12, 31)], "multiplier_pct": [mult]},
                                        schema={"duty_station": pl.String, "valid_from": pl.Date, "valid_to": pl.Date,
                                                "multiplier_pct": pl.Decimal(38, 3)}),
        "rates": pl.DataFrame({"rate_key": list(pm.RATE_KEYS),
                               "rate_value": ["0.079", "0.06", "3150.00", "4200.00", "18", "0.04"],
                               "valid_from": [date(2024, 1, 1)] * 6, "valid_to": [date(9999, 12, 31)] * 6}
                              ).with_columns(pl.col("rate_value").cast(pl.Decimal(38, 4))),
    }
    h = Fraction(str(hours))
    hours_df = pl.DataFrame({"pernr": ["00000001"], "hours_num": [h.numerator], "hours_den": [h.denominator]})
    facts, lines = pm.expected_for_period(md, ref, period, overtime_hours=hours_df)
    vec = {wt: a for wt, a in lines.select("wage_type", "expected_cents").iter_rows()}
    row = facts.row(0, named=True)
    scalar = pm.compute_lines(pm.staff_month_from_row(row, overtime_hours=h))
    assert vec == scalar
    # the scalar inputs derived from master data match the contract's definitions
    assert row["active_days"] == 31 - start_day + 1
    assert row["reference_day"] == start  # PA0008 starts with the hire, so the first active day
    assert row["n_children"] == sum(1 for k in kids if start < date(k.year + 18, k.month, k.day))


def _ref_tables(grade="P-3"):
    return {
        "pay_scale": pl.DataFrame({"grade": [grade], "step": ["01"], "valid_from": [date(2020, 1, 1)],
                                   "valid_to": [date(9999, 12, 31)], "annual_net_cents": [8_000_000],
                                   "annual_pr_cents": [15_000_000]}),
        "post_adjustment": pl.DataFrame({"duty_station": ["GVA"], "valid_from": [date(2020, 1, 1)],
                                         "valid_to": [date(9999, 12, 31)], "multiplier_pct": ["81.7"]}
                                        ).with_columns(pl.col("multiplier_pct").cast(pl.Decimal(38, 1))),
        "rates": pl.DataFrame({"rate_key": list(pm.RATE_KEYS),
                               "rate_value": ["0.079", "0.06", "3150.00", "4200.00", "18", "0.04"],
                               "valid_from": [date(2020, 1, 1)] * 6, "valid_to": [date(9999, 12, 31)] * 6}
                              ).with_columns(pl.col("rate_value").cast(pl.Decimal(38, 4))),
    }


def test_leap_day_child_turns_18_on_first_of_march():
    md = _frames("P", "P-3", "01", 100, date(2020, 1, 1), 0, [date(2008, 2, 29)])
    feb, _ = pm.expected_for_period(md, _ref_tables(), "202602")
    mar, _ = pm.expected_for_period(md, _ref_tables(), "202603")
    assert feb["n_children"][0] == 1  # 2026-02-01: still 17
    assert mar["n_children"][0] == 0  # 2026-03-01: 18 (29 February falls on 1 March)


def test_no_lines_when_not_active():
    md = _frames("P", "P-3", "01", 100, date(2026, 4, 1), 0, [])
    facts, lines = pm.expected_for_period(md, _ref_tables(), "202603")
    assert facts.height == 0 and lines.height == 0


def test_written_lines_drive_referring_lines_vectorised():
    md = _frames("P", "P-3", "01", 100, date(2020, 1, 1), 0, [])
    written = pl.DataFrame({"pernr": ["00000001", "00000001"], "wage_type": ["1000", "1000"],
                            "amount_cents": [100_000, 200_000]})
    _, lines = pm.expected_for_period(md, _ref_tables(), "202603", written=written)
    got = dict(lines.select("wage_type", "expected_cents").iter_rows())
    assert got["1000"] == 666667  # model amount is still expected for 1000 itself
    assert got["1010"] == pm.round_half_away(Fraction(300_000) * Fraction("0.817"))  # written twice: the sum


def _many_periods_world(rng) -> tuple[dict, dict]:
    """Staff hired, separated, promoted, moved and having children through 2026, under reference
    tables that change on 1 March (scale, GVA multiplier, health rate, child age limit)."""
    far, cut = date(9999, 12, 31), date(2026, 3, 1)
    md = {k: [] for k in ("actions", "basic_pay", "assignments", "family")}
    for i in range(int(rng.integers(1, 14))):
        p = f"{i:08d}"
        hired = date(2026, int(rng.integers(1, 6)), int(rng.integers(1, 29)))
        gone = date(2026, int(rng.integers(hired.month, 7)), 28) if rng.random() < 0.3 else far
        md["actions"].append((p, hired, gone, "3"))
        if gone != far:
            md["actions"].append((p, date(gone.year, gone.month, 28) + (date(2026, 1, 2) - date(2026, 1, 1)), far, "0"))
        cat = str(rng.choice(["P", "G"]))
        grade = "P-3" if cat == "P" else "G-4"
        step_change = date(2026, int(rng.integers(1, 7)), 1)
        bp_start = hired if rng.random() < 0.8 else date(2026, hired.month, min(hired.day + 3, 28))
        md["basic_pay"] += [(p, bp_start, max(step_change, bp_start), grade, "01", int(rng.choice([50, 80, 100]))),
                            (p, max(step_change, bp_start) + (date(2026, 1, 2) - date(2026, 1, 1)), far, grade, "02",
                             100)]
        md["assignments"].append((p, hired, far, cat, str(rng.choice(["GVA", "NBO"])), "ECE"))
        if rng.random() < 0.5:
            md["family"].append((p, "01", "1", date(1980, 1, 1), date(2000, 1, 1), far, True))
        for k in range(int(rng.integers(0, 3))):
            born = date(int(rng.integers(2007, 2009)), int(rng.integers(1, 13)), 1)
            md["family"].append((p, f"1{k}", "2", born, born, far, bool(rng.random() < 0.9)))
    cols = {"actions": ["pernr", "valid_from", "valid_to", "employment_status"],
            "basic_pay": ["pernr", "valid_from", "valid_to", "grade", "step", "employment_pct"],
            "assignments": ["pernr", "valid_from", "valid_to", "staff_category", "duty_station", "entity"],
            "family": ["pernr", "member_id", "member_type", "birth_date", "valid_from", "valid_to", "is_dependent"]}
    md = {k: pl.DataFrame(v, schema=cols[k], orient="row") for k, v in md.items()}
    md["family"] = md["family"].cast({"birth_date": pl.Date, "valid_from": pl.Date, "valid_to": pl.Date,
                                      "is_dependent": pl.Boolean})
    scale = [(g, s, f, t, n, n * 2) for g in ("P-3", "G-4") for s in ("01", "02")
             for f, t, n in ((date(2020, 1, 1), date(2026, 2, 28), 8_000_000 + 300_000 * (s == "02")),
                             (cut, far, 8_240_000 + 300_000 * (s == "02")))]
    ref = {
        "pay_scale": pl.DataFrame(scale, schema=["grade", "step", "valid_from", "valid_to", "annual_net_cents",
                                                 "annual_pr_cents"], orient="row"),
        "post_adjustment": pl.DataFrame({"duty_station": ["GVA", "GVA", "NBO"],
                                         "valid_from": [date(2020, 1, 1), cut, date(2020, 1, 1)],
                                         "valid_to": [date(2026, 2, 28), far, far],
                                         "multiplier_pct": ["81.7", "83.1", "40.2"]}
                                        ).with_columns(pl.col("multiplier_pct").cast(pl.Decimal(38, 1))),
        "rates": pl.DataFrame({"rate_key": [*pm.RATE_KEYS, "HEALTH_RATE", "CHILD_AGE_LIMIT"],
                               "rate_value": ["0.079", "0.06", "3150.00", "4200.00", "18", "0.04", "0.045", "19"],
                               "valid_from": [date(2020, 1, 1)] * 6 + [cut] * 2,
                               "valid_to": [far, far, far, far, date(2026, 2, 28), date(2026, 2, 28), far, far]}
                              ).with_columns(pl.col("rate_value").cast(pl.Decimal(38, 4))),
    }
    return md, ref


@pytest.mark.parametrize("seed", range(25))
def test_several_periods_in_one_pass_are_one_pass_per_period(seed):
    """expected_for_periods (the retro check's recalculated months in one pass) gives what
    expected_for_period gives month by month, for any set of (staff member, month) pairs —
    one month alone included, and months whose reference tables differ."""
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    md, ref = _many_periods_world(rng)
    staff = md["actions"]["pernr"].unique().sort().to_list()
    months = ["202601", "202602", "202603", "202604", "202605", "202606"]
    chosen = months[:1] if seed % 5 == 0 else sorted(rng.choice(months, int(rng.integers(1, 7)), replace=False))
    pairs = pl.DataFrame([(p, m) for p in staff for m in chosen if rng.random() < 0.7],
                         schema=["pernr", "for_period"], orient="row")
    if pairs.height == 0:
        pairs = pl.DataFrame({"pernr": staff[:1], "for_period": chosen[:1]})
    facts, exp = pm.expected_for_periods(md, ref, pairs)
    want_facts, want_exp = [], []
    for m in chosen:
        who = pairs.filter(pl.col("for_period") == m)["pernr"].to_list()
        if who:
            f, e = pm.expected_for_period(md, ref, m, pernrs=who)
            want_facts.append(f)
            want_exp.append(e)
    key = ["pernr", "for_period"]
    want_f = pl.concat(want_facts).sort(key)
    assert facts.columns == want_f.columns
    assert facts.drop("child_birth_dates").sort(key).equals(want_f.drop("child_birth_dates"))
    assert facts.sort(key)["child_birth_dates"].list.sort().equals(want_f["child_birth_dates"].list.sort())
    assert exp.sort([*key, "wage_type"]).equals(pl.concat(want_exp).sort([*key, "wage_type"]))
    assert facts.select(key).unique().join(pairs, on=key, how="anti").height == 0  # nothing beyond the pairs
