"""The pay model: the contract's worked examples, and scalar == vectorised on random inputs."""

from datetime import date
from fractions import Fraction

import polars as pl
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
