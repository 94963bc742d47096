"""Unit tests of the detectors' pure helpers on small inline frames (Kedro style).

detectors/history.py (what changed since a FINAL, what FINALs paid), the anomaly models'
staff-run features, and PW102's per-staff sums.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from detectors import history as h
from detectors.models.features import FEATURES, staff_run_features
from detectors.rules.pw102_totals import staff_totals

OPEN = date(9999, 12, 31)
BP = {"pernr": pl.String, "valid_from": pl.Date, "valid_to": pl.Date, "grade": pl.String, "step": pl.String,
      "employment_pct": pl.Int64}
LINES = {"pernr": pl.String, "for_period": pl.String, "in_period": pl.String, "wage_type": pl.String,
         "amount_cents": pl.Int64, "currency": pl.String, "quantity": pl.Decimal(38, 2)}


def basic_pay(*rows) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=BP, orient="row")


def effective(now: pl.DataFrame, then: pl.DataFrame) -> list[tuple[str, date]]:
    return sorted(h._effective_changes(now, then, ["pernr", "valid_from"]).iter_rows())


# ------------------------------------------------------------------ history._effective_changes

def test_unchanged_records_have_no_change():
    bp = basic_pay(("1", date(2020, 1, 1), OPEN, "P-3", "05", 100))
    assert effective(bp, bp) == []


def test_re_delimited_record_changes_the_day_after_the_earlier_end():
    then = basic_pay(("1", date(2020, 1, 1), OPEN, "P-3", "05", 100))
    now = basic_pay(("1", date(2020, 1, 1), date(2025, 3, 15), "P-3", "05", 100))
    assert effective(now, then) == [("1", date(2025, 3, 16))]
    # an extension: the earlier of the two ends is the old one
    assert effective(then, now) == [("1", date(2025, 3, 16))]


def test_added_record_changes_from_its_start():
    then = basic_pay(("1", date(2020, 1, 1), OPEN, "P-3", "05", 100))
    now = basic_pay(("1", date(2020, 1, 1), date(2025, 1, 31), "P-3", "05", 100),
                    ("1", date(2025, 2, 1), OPEN, "P-3", "06", 100))
    assert effective(now, then) == [("1", date(2025, 2, 1))]  # the re-delimit and the new record: one change day


def test_removed_record_changes_from_its_start():
    then = basic_pay(("1", date(2020, 1, 1), date(2024, 12, 31), "P-3", "05", 100),
                     ("1", date(2025, 1, 1), OPEN, "P-3", "06", 100))
    now = basic_pay(("1", date(2020, 1, 1), date(2024, 12, 31), "P-3", "05", 100))
    assert effective(now, then) == [("1", date(2025, 1, 1))]


def test_record_corrected_in_place_changes_from_its_start():
    then = basic_pay(("1", date(2020, 1, 1), date(2030, 12, 31), "P-3", "05", 100))
    now = basic_pay(("1", date(2020, 1, 1), date(2030, 12, 31), "P-3", "06", 100))
    assert effective(now, then) == [("1", date(2020, 1, 1))]


def test_earliest_unsettled_change_over_infotypes_and_never_paid_staff():
    def md(bp: pl.DataFrame, fam_dependent: bool) -> dict[str, pl.DataFrame]:
        actions = pl.DataFrame({"pernr": ["1", "2"], "valid_from": [date(2020, 1, 1), date(2025, 3, 10)],
                                "valid_to": [OPEN, OPEN], "action_type": ["01", "01"], "action_reason": [None, None],
                                "employment_status": ["3", "3"]}, schema_overrides={"action_reason": pl.String})
        assignments = pl.DataFrame({"pernr": ["1", "2"], "valid_from": [date(2020, 1, 1), date(2025, 3, 10)],
                                    "valid_to": [OPEN, OPEN], "staff_category": ["P", "D"]})
        family = pl.DataFrame({"pernr": ["1"], "member_id": ["01"], "member_type": ["1"],
                               "birth_date": [date(1980, 1, 1)], "valid_from": [date(2000, 1, 1)],
                               "valid_to": [date(2024, 11, 30) if not fam_dependent else OPEN],
                               "is_dependent": [True]})
        return {"actions": actions, "assignments": assignments, "basic_pay": bp, "family": family}

    bp_then = basic_pay(("1", date(2020, 1, 1), OPEN, "P-3", "05", 100),
                        ("2", date(2025, 3, 10), OPEN, "D-1", "01", 100))
    bp_now = basic_pay(("1", date(2020, 1, 1), date(2025, 1, 31), "P-3", "05", 100),
                       ("1", date(2025, 2, 1), OPEN, "P-3", "06", 100),
                       ("2", date(2025, 3, 10), OPEN, "D-1", "01", 100))
    then, now = md(bp_then, True), md(bp_now, False)
    # staff 1: step change from 1 Feb 2025, spouse record delimited to 30 Nov 2024 -> 1 Dec 2024
    got = dict(h.earliest_unsettled_change(now, then, ["1"]).iter_rows())
    assert got == {"1": date(2024, 12, 1)}
    # never paid by a FINAL (md_then None): every record is new, the earliest start counts
    got = dict(h.earliest_unsettled_change(now, None, ["2"]).iter_rows())
    assert got == {"2": date(2025, 3, 10)}


def test_earliest_unsettled_changes_of_several_groups_are_each_group_s_alone():
    """The largest group is compared against its whole extract, the others stacked: the same
    rows as one call per group, whichever extract holds which staff member."""
    def md(bp: pl.DataFrame) -> dict[str, pl.DataFrame]:
        pernrs = bp["pernr"].unique().sort().to_list()
        n = len(pernrs)
        return {"actions": pl.DataFrame({"pernr": pernrs, "valid_from": [date(2020, 1, 1)] * n, "valid_to": [OPEN] * n,
                                         "action_type": ["01"] * n, "action_reason": [None] * n,
                                         "employment_status": ["3"] * n}, schema_overrides={"action_reason": pl.String}),
                "assignments": pl.DataFrame({"pernr": pernrs, "valid_from": [date(2020, 1, 1)] * n,
                                             "valid_to": [OPEN] * n, "staff_category": ["P"] * n}),
                "basic_pay": bp,
                "family": pl.DataFrame(schema={"pernr": pl.String, "member_id": pl.String, "member_type": pl.String,
                                               "birth_date": pl.Date, "valid_from": pl.Date, "valid_to": pl.Date,
                                               "is_dependent": pl.Boolean})}

    # January's extract: 1 and 2 at step 05, 3 at step 01; February's: 3 at step 02 from 15 January
    # (read against it, 3 would change from 15 January: he is not of its group)
    jan = md(basic_pay(("1", date(2020, 1, 1), OPEN, "P-3", "05", 100), ("2", date(2020, 1, 1), OPEN, "P-3", "05", 100),
                       ("3", date(2020, 1, 1), OPEN, "P-2", "01", 100)))
    feb = md(basic_pay(("1", date(2020, 1, 1), OPEN, "P-3", "05", 100), ("2", date(2020, 1, 1), OPEN, "P-3", "05", 100),
                       ("3", date(2020, 1, 1), date(2025, 1, 14), "P-2", "01", 100),
                       ("3", date(2025, 1, 15), OPEN, "P-2", "02", 100)))
    now = md(basic_pay(("1", date(2020, 1, 1), date(2025, 2, 28), "P-3", "05", 100),
                       ("1", date(2025, 3, 1), OPEN, "P-3", "06", 100), ("2", date(2020, 1, 1), OPEN, "P-3", "05", 100),
                       ("3", date(2020, 1, 1), date(2025, 1, 31), "P-2", "01", 100),
                       ("3", date(2025, 2, 1), OPEN, "P-2", "02", 100), ("4", date(2025, 3, 5), OPEN, "P-1", "01", 100)))
    groups = [(feb, ["1", "2"]), (jan, ["3"]), (None, ["4"])]
    together = dict(h.earliest_unsettled_changes(now, groups).iter_rows())
    alone = {}
    for then, pernrs in groups:
        alone |= dict(h.earliest_unsettled_change(now, then, pernrs).iter_rows())
    # 1: step 06 from March; 3 read against January (February's extract already had his step 02);
    # 4: never paid (his earliest record counts); 2: no change
    assert together == alone == {"1": date(2025, 3, 1), "3": date(2025, 2, 1), "4": date(2020, 1, 1)}
    assert h.earliest_unsettled_changes(now, []).height == 0


# -------------------------------------------------------------------------- history.ledger

def test_ledger_sums_final_and_later_retro_lines_of_retro_wage_types_only():
    final_lines = pl.DataFrame(
        [("GV-202501-FINAL", "1", "202501", "202501", "1000", 666667),
         ("GV-202501-FINAL", "1", "202501", "202501", "1500", 35000),    # not a retro wage type
         ("GV-202501-FINAL", "1", "202501", "202501", "/560", 900000),   # totals neither
         ("GV-202502-FINAL", "1", "202502", "202502", "1000", 666667),
         ("GV-202502-FINAL", "1", "202501", "202502", "1000", 16666),    # retro for January
         ("GV-202502-FINAL", "1", "202501", "202502", "3000", -2469),
         ("GV-202502-FINAL", "2", "202502", "202502", "1000", 250000)],
        schema=["run_id", "pernr", "for_period", "in_period", "wage_type", "amount_cents"], orient="row")
    got = {(p, m, wt): c for p, m, wt, c in h.ledger(final_lines).iter_rows()}
    assert got == {("1", "202501", "1000"): 683333, ("1", "202501", "3000"): -2469,
                   ("1", "202502", "1000"): 666667, ("2", "202502", "1000"): 250000}


def test_last_final_with_pay_follows_run_order_not_row_order():
    runs = pl.DataFrame({"run_id": ["A-FINAL", "B-SIM1", "B-FINAL"], "run_type": ["FINAL", "SIM1", "FINAL"],
                         "period": ["202501", "202502", "202502"]})
    final_lines = pl.DataFrame({"run_id": ["B-FINAL", "A-FINAL", "A-FINAL"], "pernr": ["1", "1", "2"]})
    got = dict(h.last_final_with_pay(final_lines, runs, pl.Series(["1", "2", "3"])).iter_rows())
    assert got == {"1": "B-FINAL", "2": "A-FINAL"}
    assert h.final_periods(runs) == {"202501", "202502"}


# ------------------------------------------------------------------- models.features

def test_staff_run_features_are_ratios_of_the_current_net_base_salary():
    lines = pl.DataFrame(
        [("1", "202503", "202503", "1000", 400000, "CHF", None),
         ("1", "202503", "202503", "1400", 36060, "CHF", Decimal(10)),
         ("1", "202503", "202503", "1500", 40000, "CHF", None),
         ("1", "202503", "202503", "3000", -50000, "CHF", None),
         ("1", "202503", "202503", "3300", -20000, "CHF", None),
         ("1", "202502", "202503", "1000", -100000, "CHF", None),   # retro: not base, counts as retro
         ("1", "202503", "202503", "/101", 376060, "CHF", None),
         ("1", "202503", "202503", "/550", 306060, "CHF", None),
         ("1", "202503", "202503", "/560", 306060, "CHF", None),
         ("2", "202502", "202503", "1000", 5000, "USD", None),      # retro only: no base, no row
         ("2", "202503", "202503", "/560", 5000, "USD", None)],
        schema=LINES, orient="row")
    f = staff_run_features(lines)
    assert f["pernr"].to_list() == ["1"] and f["run_id"].to_list() == ["current"]
    row = f.row(0, named=True)
    assert row == pytest.approx({
        "run_id": "current", "pernr": "1",
        "net_to_base": 306060 / 400000, "gross_to_base": 376060 / 400000,
        "n_lines": 6.0,                              # pay lines, retro included, totals not
        "retro_to_base": 100000 / 400000, "overtime_hours": 10.0,
        "spa_to_base": 40000 / 400000, "deductions_to_base": 20000 / 400000,
    })
    assert set(FEATURES) <= set(f.columns)


def test_staff_run_features_per_run_id():
    base = [("1", "202501", "202501", "1000", 100000, "USD", None),
            ("1", "202501", "202501", "/560", 90000, "USD", None)]
    lines = pl.DataFrame(base + [(p, "202502", "202502", wt, a * 2, c, q) for p, _, _, wt, a, c, q in base],
                         schema=LINES, orient="row")
    lines = lines.with_columns(pl.Series("run_id", ["R1", "R1", "R2", "R2"]))
    f = staff_run_features(lines)
    assert f.select("run_id", "net_to_base", "overtime_hours").rows() == [("R1", 0.9, 0.0), ("R2", 0.9, 0.0)]


# ---------------------------------------------------------------------- PW102 staff_totals

WAGE_TYPES = pl.DataFrame(
    [("1000", "EARNING"), ("1010", "EARNING"), ("3000", "DEDUCTION"), ("3200", "DEDUCTION"),
     ("/101", "TOTAL"), ("/550", "TOTAL"), ("/560", "TOTAL")],
    schema=["wage_type", "wage_class"], orient="row")


def test_staff_totals_classes_come_from_t512w_not_signs():
    lines = pl.DataFrame(
        [("1", "202503", "202503", "1000", 500000, "USD", None),
         ("1", "202502", "202503", "1000", -10000, "USD", None),   # negative retro earning
         ("1", "202503", "202503", "1010", 400000, "USD", None),
         ("1", "202503", "202503", "3000", -70000, "USD", None),
         ("1", "202502", "202503", "3000", 1500, "USD", None),     # positive retro deduction
         ("1", "202503", "202503", "/101", 890000, "USD", None),
         ("1", "202503", "202503", "/550", 821500, "USD", None),
         ("1", "202503", "202503", "/550", 821500, "USD", None),   # written twice
         ("2", "202503", "202503", "1000", 100000, "CHF", None),   # no totals at all
         ("2", "202503", "202503", "3200", -20000, "CHF", None)],
        schema=LINES, orient="row")
    ctx = SimpleNamespace(inp=SimpleNamespace(lines=lines), wage_types=WAGE_TYPES)
    t = {r["pernr"]: r for r in staff_totals(ctx).iter_rows(named=True)}
    one, two = t["1"], t["2"]
    assert (one["earnings"], one["deductions"], one["n_pay_lines"]) == (890000, -68500, 5)
    assert (one["w101"], one["n101"], one["w550"], one["n550"], one["n560"]) == (890000, 1, 1643000, 2, 0)
    assert one["currency"] is None  # taken from /560, which is missing
    assert (two["earnings"], two["deductions"], two["n_pay_lines"]) == (100000, -20000, 2)
    assert (two["n101"], two["n550"], two["n560"], two["w101"]) == (0, 0, 0, 0)


def _pw130_findings(history_spa: list[int], now_spa: int) -> pl.DataFrame:
    """PW130 on one staff member: net base salary 8,000.00 every month, the special post
    allowance of each history FINAL (Jan, Feb, ...) and of this May SIM1."""
    from detectors.base import DetectionInput, History, RunMeta
    from detectors.registry import load_config
    from detectors.context import Context
    from detectors.rules import pw130_variable_pay as pw130

    def month(run_id: str, period: str, spa: int) -> list[dict]:
        return [{"run_id": run_id, "pernr": "1", "for_period": period, "in_period": period, "wage_type": wt,
                 "amount_cents": cents, "currency": "USD", "quantity": None}
                for wt, cents in (("1000", 800_000), ("1500", spa))]

    hist = pl.DataFrame([r for i, spa in enumerate(history_spa)
                         for r in month(f"A-20260{i + 1}-FINAL", f"20260{i + 1}", spa)])
    now = pl.DataFrame(month("A-202605-SIM1", "202605", now_spa)).drop("run_id")
    inp = DetectionInput(RunMeta("A-202605-SIM1", "A", "202605", "SIM1"), now, {}, {}, History(final_lines=hist))
    texts = pl.DataFrame({"wage_type": ["1500"], "wage_type_text": ["Special post allowance"]})
    ctx = Context(inp, now, now.head(0), pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), texts)
    return pw130.DETECTOR.run(ctx, load_config()["PW130"] | {"spike_ratio": 1.5})


def test_pw130_an_earlier_spike_paid_at_final_does_not_hide_a_new_one():
    # January's FINAL paid 4 x the usual 422.00 (an error caught too late); May's 6 x is a spike
    got = _pw130_findings([168_800, 42_200, 42_200, 42_200], 253_200)
    assert got["category"].to_list() == ["special_allowance_spike"]
    assert "usually 5.3%" in got["explanation"][0]


def test_pw130_a_raise_paid_at_the_latest_final_is_the_new_usual():
    assert _pw130_findings([42_200, 42_200, 42_200, 100_000], 100_000).height == 0
    assert _pw130_findings([42_200, 42_200, 42_200, 42_200], 60_000).height == 0  # 1.4 x: below the ratio


# ------------------------------------------------------- configuration (declared keys, loader)

def _toml(tmp_path, text: str):
    path = tmp_path / "paywatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_misspelled_key_is_refused_with_one_line_naming_it(tmp_path):
    from detectors.config import ConfigError
    from paywatch.settings import load_settings

    with pytest.raises(ConfigError) as e:
        load_settings(_toml(tmp_path, "[PW201]\ntreshold = 4.0\n"))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("paywatch.toml: [PW201] unknown key 'treshold' (known: enabled, severity, threshold")


def test_a_wrong_type_is_refused_with_one_line_naming_it(tmp_path):
    from detectors.config import ConfigError
    from paywatch.settings import load_settings

    with pytest.raises(ConfigError) as e:
        load_settings(_toml(tmp_path, '[PW201]\nthreshold = "high"\n'))
    assert str(e.value) == 'paywatch.toml: [PW201] threshold must be a number, got "high"'
    with pytest.raises(ConfigError, match=r"^paywatch.toml: \[PW106\] lookback_months must be a whole number, got true$"):
        load_settings(_toml(tmp_path, "[PW106]\nlookback_months = true\n"))  # bool is not an int
    with pytest.raises(ConfigError, match=r"^paywatch.toml: \[PW112\] severity must be one of 'hold', 'review', 'info', got \"urgent\"$"):
        load_settings(_toml(tmp_path, '[PW112]\nseverity = "urgent"\n'))
    with pytest.raises(ConfigError, match=r"^paywatch.toml: unknown section \[PW999\] \(known: PW101, "):
        load_settings(_toml(tmp_path, "[PW999]\nenabled = false\n"))
    with pytest.raises(ConfigError, match=r"^paywatch.toml: \[kpi\] unknown key 'target' "):
        load_settings(_toml(tmp_path, "[kpi]\ntarget = 100\n"))


def test_valid_overrides_are_merged_int_where_float_is_declared(tmp_path):
    from paywatch.settings import load_settings

    cfg = load_settings(_toml(tmp_path, "[PW201]\nthreshold = 4\n[evaluation]\nmin_recall = 0.98\n"))
    assert cfg["PW201"]["threshold"] == 4 and cfg["PW201"]["min_ratio"] == 2.0
    assert cfg["evaluation"]["min_recall"] == 0.98 and cfg["kpi"]["baseline_staff_held"] == 295


def test_defaults_and_declarations_agree_exactly():
    from detectors.config import defaults
    from detectors.registry import declarations
    from paywatch.settings import SECTIONS

    shipped = defaults()
    declared = declarations() | SECTIONS
    assert set(shipped) == set(declared)
    for section, keys in declared.items():
        names = [k.name for k in keys]
        assert len(names) == len(set(names)), section
        assert set(shipped[section]) == set(names), section  # every key has a default, none undeclared
        for k in keys:
            assert k.accepts(shipped[section][k.name]), f"[{section}] {k.name}: default of the wrong type"
            assert k.meaning, f"[{section}] {k.name}: say what it means"


def test_detectors_get_read_only_params_without_defaults():
    from detectors.config import ConfigError
    from detectors.registry import load_config
    from detectors.rules import pw106_overlaps

    p = pw106_overlaps.DETECTOR.params(load_config()["PW106"])
    assert p.lookback_months == 12 and p["severity"] == "hold"
    with pytest.raises(AttributeError):
        p.lookback_months = 3
    with pytest.raises(AttributeError):
        p.no_such_key
    with pytest.raises(ConfigError, match="missing key 'lookback_months'"):
        pw106_overlaps.DETECTOR.params({"enabled": True, "severity": "hold"})


def test_no_inline_defaults_in_detectors():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "detectors"
    assert not [p for p in root.rglob("*.py") if "params.get(" in p.read_text(encoding="utf-8")]


# ---------------------------------------------------------------- scores, history, overlaps

def test_calibration_is_monotone_and_one_half_at_the_threshold():
    from detectors.scoring import CERTAIN, calibrated

    for t in (0.02, 1.5, 5.0, 0.37):
        assert calibrated(t, t) == 0.5
        values = [calibrated(t * k / 10, t) for k in range(0, 100)]
        assert values == sorted(values) and values[0] == 0.0 and all(0 <= v <= 1 for v in values)
        assert calibrated(2 * t, t) == 0.75 and calibrated(50 * t, t) == CERTAIN
    assert calibrated(-1.0, 5.0) == 0.0


def test_history_is_frozen():
    import dataclasses

    from detectors.base import History

    h = History()
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.pay_date = date(2025, 1, 25)
    assert {f.name for f in dataclasses.fields(History)} == {"runs", "final_lines", "offcycle_lines", "final_md", "pay_date",
                                                             "extracted_at", "period_lines", "final_digests"}


def test_overlaps_by_running_max_end_match_every_pair():
    """The sorted sweep flags exactly the records that overlap an earlier one (brute force)."""
    import random

    from detectors.overlaps import overlaps

    rng = random.Random(5)
    rows = []
    for i in range(300):
        start = date(2024, 1, 1) + timedelta(days=rng.randrange(0, 700))
        end = OPEN if rng.random() < 0.1 else start + timedelta(days=rng.randrange(0, 120))
        rows.append((str(rng.randrange(0, 30)), start, end))
    f = pl.DataFrame(rows, schema={"pernr": pl.String, "valid_from": pl.Date, "valid_to": pl.Date}, orient="row")
    since, until = date(2024, 6, 1), date(2025, 1, 31)
    got = overlaps(f, ["pernr"], since, until)
    recs = sorted(rows)
    want = []
    for i, (p, a, b) in enumerate(recs):
        spans = [(a, min(b, d)) for q, c, d in recs[:i] if q == p and c <= b and a <= d]
        want.append(any(lo <= until and hi >= since for lo, hi in spans))
    assert sorted(zip(got.select("pernr", "valid_from", "valid_to").rows(), got["overlaps"])) == \
        sorted(zip(recs, want))


# ---------------------------------------------------------------- PW115 IBAN (ISO 13616)

def _iban(country: str, bban: str) -> str:
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    return f"{country}{check:02d}{bban}"


@settings(max_examples=200, deadline=None)
@given(st.text("0123456789", min_size=17, max_size=17), st.integers(0, 16), st.integers(1, 9))
def test_iban_mod97_catches_every_single_digit_error(bban, pos, delta):
    from detectors.rules.pw115_bank_integrity import iban_problem

    good = _iban("CH", bban)
    assert iban_problem(good, "CH") is None
    digits = list(good)
    i = 4 + pos
    digits[i] = str((int(digits[i]) + delta) % 10)
    assert iban_problem("".join(digits), "CH") is not None  # mod 97 detects any one changed digit


@settings(max_examples=100, deadline=None)
@given(st.text("0123456789", min_size=17, max_size=17), st.integers(1, 5))
def test_iban_length_is_checked_per_country(bban, cut):
    from detectors.rules.pw115_bank_integrity import iban_problem

    short = _iban("CH", bban[:-cut])  # right check digits, wrong length for Switzerland
    assert iban_problem(short, "CH") is not None
    assert iban_problem("021000021123456789", "US") is None  # no IBANs in that country: not checked


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([("BE", 12), ("ES", 20), ("FR", 23), ("DE", 18), ("CH", 17)]), st.data())
def test_an_iso_13616_iban_is_never_held_whatever_its_national_digits(country_len, data):
    """The contract promises free text; ISO 13616 is what PW115 holds on. A country's own
    checks inside the BBAN (register, national check digits) only ever give an info line."""
    from detectors.rules.pw115_bank_integrity import iban_problem, national_problem

    country, n = country_len
    bban = data.draw(st.text("0123456789", min_size=n, max_size=n))
    account = _iban(country, bban)
    assert iban_problem(account, country) is None
    problem = national_problem(account)
    assert problem is None or "national" in problem or "register" in problem


def test_pw115_national_check_failure_is_info_and_says_why():
    from detectors.rules.pw115_bank_integrity import national_problem

    assert national_problem("ES9121000418450200051332") is None  # the Spanish register's example
    assert national_problem("ES2921000418460200051332") == "its national check digits are wrong"
    assert national_problem("BE62517932398561") == "its bank code is not one the country's register knows"


# ---------------------------------------------------------------- PW140 advance ledger

@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), max_size=4), st.lists(st.integers(1, 50), max_size=4), st.integers(0, 60))
def test_ledger_flags_a_recovery_exactly_when_no_advance_covers_it(advances, recovered, now):
    """Advances (off-cycle runs) and FINAL recoveries of earlier months, then this run's recovery:
    the rule raises recovery_without_advance / recovery_above_balance exactly when due."""
    from detectors.base import DetectionInput, History, RunMeta
    from detectors.registry import load_config
    from detectors.rules import pw140_advance_ledger as led

    def line(run_id, period, wt, cents):
        return {"run_id": run_id, "pernr": "00000001", "for_period": period, "in_period": period, "wage_type": wt,
                "amount_cents": cents * 100, "currency": "USD", "quantity": None}
    months = ["202501", "202502", "202503", "202504"]
    offc = [line(f"A-{months[i]}-OC1", months[i], "2000", a) for i, a in enumerate(advances)]
    fin = [line(f"A-{months[i]}-FINAL", months[i], "3200", -r) for i, r in enumerate(recovered)]
    schema = {"run_id": pl.String, "pernr": pl.String, "for_period": pl.String, "in_period": pl.String,
              "wage_type": pl.String, "amount_cents": pl.Int64, "currency": pl.String, "quantity": pl.Decimal(38, 2)}
    cur = pl.DataFrame([line("x", "202505", "3200", -now)] if now else [], schema=schema).drop("run_id")
    hist = History(final_lines=pl.DataFrame(fin, schema=schema), offcycle_lines=pl.DataFrame(offc, schema=schema))
    inp = DetectionInput(RunMeta("A-202505-SIM1", "A", "202505", "SIM1"), cur, {}, {}, hist)
    params = led.DETECTOR.params(load_config()["PW140"])  # recovery_months 6: nothing is overdue here
    ctx = SimpleNamespace(inp=inp, meta=inp.meta, paid=cur.select("pernr").unique())  # as Context.paid
    got = set(led.run(ctx, params)["category"].to_list())
    open_balance = sum(advances) - sum(recovered)
    want = set()
    if now and not advances:
        want = {"recovery_without_advance"}
    elif now and now > open_balance:
        want = {"recovery_above_balance"}
    assert got == want


def test_context_scoring_reads_the_peers_range_when_z_alone_is_not_enough():
    """Cold start in a group that mixes a peaking unit with quiet ones (seed 276714): 82 h
    against a median of 14 h and a spread of 11.9 h is z = 5.7 < 6, but more than twice the top
    of the peers' usual range (37.8 h); 60 h is not, nor anything in a group too small to have a
    range. With own history, 3 x the own usual level
    above the peers' range is unusual too; 3 x inside it is not."""
    from detectors.models.context import scored

    def rows(value, own=None, n=77):
        return pl.DataFrame({"pernr": ["1"], "value": [float(value)], "amount": [100_000],
                             "own_median": [own], "own_scale": [4.0 if own else None], "peer_median": [14.0],
                             "peer_scale": [11.8608], "peer_upper": [35.75], "peer_n": [n]},
                            schema_overrides={"own_median": pl.Float64, "own_scale": pl.Float64})

    def unusual(value, own=None, cold=2.0, n=77):
        return scored(rows(value, own, n), 4.0, 4.0, 6.0, 2.0, own_ratio=3.0, cold_upper=cold)["unusual"][0]

    assert unusual(82) and not unusual(82, cold=None) and not unusual(60)
    assert not unusual(82, n=6)           # six peers: too few to read a range (seed 10767: 20 h vs 1 h)
    assert unusual(40, own=10.0)          # 4 x own, above the range (35.75), 2.9 x the median
    assert not unusual(33, own=10.0)      # 3.3 x own but inside the range
    assert not unusual(40, own=20.0)      # 2 x own


def test_context_scoring_one_month_is_no_usual_level_for_the_ratio_path():
    """3 x the own level above the peers' range is unusual on an own level of 2 FINALs or more
    (ratio_min_runs); on one month (1 h, then an ordinary 15 h) it is not — z still reads it."""
    from detectors.models.context import scored

    def unusual(own_n, ratio_min_runs=2):
        x = pl.DataFrame({"pernr": ["1"], "value": [15.0], "amount": [100_000], "own_median": [1.0],
                          "own_scale": [4.0], "own_n": [own_n], "peer_median": [5.0], "peer_scale": [4.0],
                          "peer_upper": [9.0], "peer_n": [5]})
        return scored(x, 4.0, 4.0, 4.5, 2.0, own_ratio=3.0, ratio_min_runs=ratio_min_runs)["unusual"][0]

    assert unusual(2) and unusual(1, ratio_min_runs=1)
    assert not unusual(1)


def test_context_scoring_one_month_cannot_vouch_either():
    """A newcomer's 89 h error paid at their first FINAL, then 113 h: against that one month it
    is usual, against peers (median 8 h) it is not — with an own level of one FINAL the peers'
    reading stands on its own (z >= threshold_alone); on two FINALs the own level vouches."""
    from detectors.models.context import scored

    def unusual(own_n):
        x = pl.DataFrame({"pernr": ["1"], "value": [113.0], "amount": [700_000], "own_median": [89.0],
                          "own_scale": [13.35], "own_n": [own_n], "peer_median": [8.0], "peer_scale": [6.0],
                          "peer_upper": [20.0], "peer_n": [40]})
        return scored(x, 4.0, 4.0, 4.5, 2.0, own_ratio=3.0, ratio_min_runs=2)["unusual"][0]

    assert unusual(1) and not unusual(2)


def test_context_scoring_cold_start_reads_share_and_amount_together():
    """Without own history, a value unusual against the peers as a share of base salary AND as an
    amount is unusual (an allowance multiplied); a high share of a low salary with an ordinary
    amount is not, nor a high amount on a high salary, nor anything in a group under
    dual_min_peers."""
    from detectors.models.context import scored

    def unusual(share, amount, n=20):
        x = pl.DataFrame({"pernr": ["1"], "value": [share], "amount": [amount], "own_median": [None],
                          "own_scale": [None], "peer_median": [0.08], "peer_scale": [0.03], "peer_upper": [0.14],
                          "peer_n": [n], "peer_amount_median": [60_000.0], "peer_amount_scale": [20_000.0]},
                         schema_overrides={"own_median": pl.Float64, "own_scale": pl.Float64})
        return scored(x, 4.0, 4.0, 6.0, 2.0, own_ratio=3.0, t_dual=3.0, dual_min_peers=8)["unusual"][0]

    assert unusual(0.25, 190_000)             # z 5.7 as a share, 6.5 as an amount: below 6 alone, both >= 3
    assert not unusual(0.21, 62_000)          # a P-1's ordinary amount: a high share only
    assert not unusual(0.07, 180_000)         # a D-1's high amount: an ordinary share
    assert not unusual(0.25, 190_000, n=6)    # six peers: too few


def test_context_scoring_share_and_amount_needs_to_pass_the_peers_peak():
    """Seed 276529's first month: a P-4 paid 700.00 USD (9.74 % of base salary) in a group whose
    others' median is 3.3 % (317.00 USD) with a tight spread, z 3.2 and 4.1. The others' second
    highest is a colleague paid 713.00 USD (9.67 %): with dual_peak_ratio 1.3 the share-and-amount
    reading needs 1.3 x that peak as a share or as an amount; 2,000.00 USD is, 700.00 is not.
    Without the key (None) both are unusual, as before; with no peak known, the key asks nothing."""
    from detectors.models.context import scored

    def unusual(share, amount, ratio, peak=(0.096694, 71_300.0)):
        x = pl.DataFrame({"pernr": ["1"], "value": [share], "amount": [amount], "own_median": [None],
                          "own_scale": [None], "peer_median": [0.032696], "peer_scale": [0.02],
                          "peer_upper": [0.068882], "peer_n": [12], "peer_max": [peak[0]],
                          "peer_amount_median": [31_700.0], "peer_amount_scale": [9_377.3],
                          "peer_amount_max": [peak[1]]},
                         schema_overrides={"own_median": pl.Float64, "own_scale": pl.Float64,
                                           "peer_max": pl.Float64, "peer_amount_max": pl.Float64})
        return scored(x, 4.0, 4.0, 6.0, 2.0, own_ratio=3.0, t_dual=3.0, dual_min_peers=8,
                      dual_peak_ratio=ratio)["unusual"][0]

    assert unusual(0.097399, 70_000, None)        # as before the key: z 3.2 and 4.1 are enough
    assert not unusual(0.097399, 70_000, 1.3)     # 1.01 x the peak share, 0.98 x the peak amount
    assert unusual(0.13, 70_000, 1.3)             # 1.34 x the peak share
    assert unusual(0.097399, 95_000, 1.3)         # 1.33 x the peak amount
    assert unusual(0.097399, 70_000, 1.3, peak=(None, None))  # no peak to pass


def test_context_scoring_reads_the_units_own_peak():
    """A unit in session (others up to 60 h, median 40 h, spread 22.6 h): a newcomer's 106 h is
    z = 2.9 only, but 1.5 x the unit's peak and 8 h beyond it (peak_ratio, two 4 h floors);
    85 h is not; a group under peak_min_peers is not read; with own history the claim must be
    unusual for the staff member too."""
    from detectors.models.context import scored

    def unusual(value, n=11, own=None):
        x = pl.DataFrame({"pernr": ["1"], "value": [float(value)], "amount": [600_000], "own_median": [own],
                          "own_scale": [4.0 if own else None], "own_n": [3 if own else None], "peer_median": [40.0],
                          "peer_scale": [22.6], "peer_upper": [84.0], "peer_max": [60.0], "peer_n": [n]},
                         schema_overrides={"own_median": pl.Float64, "own_scale": pl.Float64, "own_n": pl.UInt32})
        return scored(x, 4.0, 4.0, 4.5, 2.0, own_ratio=3.0, ratio_min_runs=2, peak_ratio=1.5, peak_min_peers=8,
                      peak_floor=4.0)["unusual"][0]

    assert unusual(106) and not unusual(85) and not unusual(106, n=6)
    assert unusual(106, own=10.0) and not unusual(106, own=60.0)


def test_peer_spread_reads_two_clusters():
    """A unit partly in session (about 40 h) and partly not (about 4 h): the spread is the scaled
    interquartile range, not the MAD of the cluster that holds the median (2.97 h, floored to
    4 h, would make 58 h z = 13)."""
    from detectors.models.context import peer_reference

    hours = [3.0, 4.0, 4.0, 5.0, 6.0, 40.0, 42.0, 44.0, 58.0]
    now = pl.DataFrame({"pernr": [f"{i:08d}" for i in range(len(hours))], "value": hours,
                        "amount": [1] * len(hours), "currency": ["CHF"] * len(hours)})
    facts = now.select("pernr", pl.lit("ODA").alias("entity"), pl.lit("G").alias("staff_category"),
                       pl.lit("G-5").alias("grade"))
    ref = peer_reference(now, facts, 4, 5, 4.0, 0.15, loo_max=64).filter(pl.col("pernr") == "00000008").row(0, named=True)
    q1, q3 = 4.0, 40.5                        # the other eight: quartiles (linear); median 5.5
    assert ref["peer_scale"] >= (q3 - q1) / 1.349 - 1e-9
    assert (58.0 - ref["peer_median"]) / ref["peer_scale"] < 2


def test_a_tripled_deduction_is_reviewed_a_small_change_is_info():
    import detector_world as world
    from detectors.registry import detect, load_config

    for amount, severity in (("1500.00", "review"), ("650.00", "info")):
        case = {"staff": "P3", "set_pay": {"pernr": "P3", "other_deduction": amount}}
        f = detect(world.build(case).inp, load_config(), only={"PW130"})
        assert f.filter(pl.col("category") == "deduction_change")["severity"].to_list() == [severity]


def test_context_scoring_one_own_month_vouches_unless_beyond_the_unit():
    """One earlier FINAL with overtime (own_n 1, under ratio_min_runs 2) in a quiet unit (median
    5 h, spread 4 h, the others' peak 15 h): 36 h (z = 7.75, 2.4 x the peak) is read against the
    peers alone after a month of 5 h, but a month of 20 h vouches for it (under 2 x); a month of
    89 h, beyond 1.5 x the peak, vouches for nothing (113 h); 45 h is over 2 x the 20 h."""
    from detectors.models.context import scored

    def unusual(value, own):
        x = pl.DataFrame({"pernr": ["1"], "value": [float(value)], "amount": [300_000], "own_median": [own],
                          "own_scale": [max(4.0, own * 0.15)], "own_n": [1], "peer_median": [5.0],
                          "peer_scale": [4.0], "peer_upper": [12.0], "peer_max": [15.0], "peer_n": [40]},
                         schema_overrides={"own_median": pl.Float64, "own_scale": pl.Float64, "own_n": pl.UInt32})
        return scored(x, 4.0, 4.0, 6.0, 2.0, own_ratio=3.0, ratio_min_runs=2, peak_ratio=1.5, peak_min_peers=8,
                      peak_floor=4.0)["unusual"][0]

    assert unusual(36, own=5.0) and not unusual(36, own=20.0)
    assert unusual(45, own=20.0) and unusual(113, own=89.0)


def test_area_ceiling_is_where_the_areas_continuum_ends():
    """From the 95th percentile upward the claims go on while each is within 1.15 x or 8 h of the
    one before: five errors of 103-149 h above a session month's 59 h do not raise the ceiling
    (seed 26918's SIM2, where the third highest of the others was an error); an area's habitual
    heavy claimants (19-39.5 h in steps under 1.15 x) stay inside it; the ceiling is per
    category, and area_n counts the others."""
    from detectors.models.context import area_reference

    def ceilings(values, cats=None):
        x = pl.DataFrame({"pernr": [str(i) for i in range(len(values))], "value": [float(v) for v in values],
                          "staff_category": cats or ["G"] * len(values)}).sample(fraction=1.0, shuffle=True, seed=1)
        return area_reference(x, 0.95, 1.15, 4.0).sort("pernr")

    quiet = [4.0 + (i % 15) for i in range(180)]
    session = quiet[:150] + [40.0 + i for i in range(20)] + [57.5, 59.0, 59.0, 103.0, 132.0, 132.0, 134.0, 149.0]
    assert set(ceilings(session)["area_ceiling"].to_list()) == {59.0}
    heavy = quiet[:165] + [19.0, 20.5, 22.0, 23.0, 25.0, 26.5, 28.0, 29.5, 30.5, 31.5, 33.5, 34.0, 35.0, 36.0, 39.5]
    assert set(ceilings(heavy)["area_ceiling"].to_list()) == {39.5}
    two = ceilings([5.0, 6.0, 70.0, 100.0], ["G", "G", "P", "P"])
    assert two["area_n"].to_list() == [1, 1, 1, 1]
    assert two.filter(pl.col("staff_category") == "G")["area_ceiling"].to_list() == [6.0, 6.0]


def test_context_scoring_reads_the_area_above_the_unit():
    """Without an own usual level the unit explains a claim, the area convicts it. 36 h against a
    quiet unit (median 5 h, z = 7.75) is not unusual when the area's ceiling is 39.5 h; 70 h
    against a peaking unit (median 50 h, peak 58 h, z = 2.4) is, above an area ceiling of 58 h
    (1.2 x and 12 h); 66 h is not (8 h beyond, but 1.14 x). With one own month within the area's
    ceiling, that month vouches (25 h after 30 h); beyond it (89 h, then 113 h) it does not. Too
    few others in the area (area_min): the unit's reading as before. Own history of two FINALs
    or more: the area changes nothing."""
    from detectors.models.context import scored

    def row(value, median, peak, ceiling, own=None, own_n=None, area_n=180):
        return pl.DataFrame({"pernr": ["1"], "value": [float(value)], "amount": [300_000], "own_median": [own],
                             "own_scale": [4.0 if own else None], "own_n": [own_n], "peer_median": [median],
                             "peer_scale": [4.0], "peer_upper": [median + 8.0], "peer_max": [peak],
                             "peer_n": [40], "area_ceiling": [ceiling], "area_n": [area_n]},
                            schema_overrides={"own_median": pl.Float64, "own_scale": pl.Float64,
                                              "own_n": pl.UInt32})

    def unusual(*a, area=1.15, **k):
        return scored(row(*a, **k), 4.0, 4.0, 6.0, 2.0, own_ratio=3.0, ratio_min_runs=2, peak_ratio=1.5,
                      peak_min_peers=8, peak_floor=4.0, area_ratio=area, area_min=20)["unusual"][0]

    assert unusual(36, 5.0, 9.5, 39.5, area=None) and not unusual(36, 5.0, 9.5, 39.5)
    assert unusual(70, 50.0, 58.0, 58.0) and not unusual(70, 50.0, 58.0, 58.0, area=None)
    assert not unusual(66, 50.0, 58.0, 58.0)
    assert not unusual(25, 10.0, 15.5, 25.0, own=30.0, own_n=1)
    assert unusual(25, 10.0, 15.5, 25.0, own=30.0, own_n=1, area=None)
    assert unusual(113, 10.0, 15.5, 36.0, own=89.0, own_n=1)
    assert unusual(36, 5.0, 9.5, 39.5, area_n=10)
    assert unusual(40, 5.0, 9.5, 39.5, own=10.0, own_n=3) == unusual(40, 5.0, 9.5, 39.5, own=10.0, own_n=3, area=None)


def test_context_scoring_share_beyond_the_peers_peak_as_an_amount_needs_no_median_multiple():
    """A newcomer's allowance x 3 in a mixed-grade group (shares 5-10.6 %, amounts up to 538.00):
    15.8 % and 948.00 are 1.5 x the others' peak in both, though under 2 x their median share
    (8.9 %); an amount within the peak is not (a high share of a low salary). With PW203's
    `peak_amount_ratio` (1.3 shipped) 15.8 % is unusual when its amount is 1.3 x beyond every
    other holder's but one (700.00: a G-4's allowance multiplied, still inside what higher
    grades are paid); just above the peak amount (600.00: the group's top holder on a low grade)
    it is not. And the reverse: 1.5 x the peak amount with a share above every other holder's
    but one."""
    from detectors.models.context import scored

    def unusual(share, amount, peak_amount_ratio=None):
        x = pl.DataFrame({"pernr": ["1"], "value": [share], "amount": [amount], "own_median": [None],
                          "own_scale": [None], "peer_median": [0.089], "peer_scale": [0.0275],
                          "peer_upper": [0.135], "peer_max": [0.1023], "peer_n": [9],
                          "peer_amount_median": [49_100.0], "peer_amount_scale": [7_365.0],
                          "peer_amount_max": [53_800.0]},
                         schema_overrides={"own_median": pl.Float64, "own_scale": pl.Float64})
        return scored(x, 4.0, 4.0, 6.0, 2.0, own_ratio=3.0, t_dual=3.0, dual_min_peers=8, peak_ratio=1.5,
                      peak_min_peers=8, peak_floor=0.02, peak_amount_ratio=peak_amount_ratio)["unusual"][0]

    assert unusual(0.158, 94_800)
    assert not unusual(0.158, 60_000)  # by peak_ratio when no peak_amount_ratio is given
    assert unusual(0.158, 70_000, peak_amount_ratio=1.3)
    assert not unusual(0.158, 60_000, peak_amount_ratio=1.3)
    assert unusual(0.158, 60_000, peak_amount_ratio=1.0)
    assert not unusual(0.158, 50_000, peak_amount_ratio=1.0)
    # the reverse: 1.5 x the peak amount, and a share beyond the peak share (by two spread floors),
    # whatever peak_amount_ratio asks of the amount when the share is the far one
    for ratio in (1.0, 1.3):
        assert unusual(0.145, 81_000, peak_amount_ratio=ratio)
        assert not unusual(0.145, 79_000, peak_amount_ratio=ratio)
        assert not unusual(0.13, 90_000, peak_amount_ratio=ratio)  # within two spread floors of the peak share
    assert not unusual(0.145, 81_000)


def test_pw203_an_allowance_paid_once_beyond_the_peers_is_read_as_a_cold_start():
    """One earlier FINAL with a 1500 that was itself beyond 1.5 x the peers' peak (share and
    amount) is no usual level: the same allowance is flagged again; one within the peers vouches
    (and stays PW130's); with vouch_min_runs 1 the one month vouches as before."""
    import detector_world as world
    from detectors.registry import detect, load_config

    def flagged(amount, vouch=2):
        case = {"params": {"min_group": 4, "dual_min_peers": 4, "peak_min_peers": 4},
                "history_line": {"run_type": "FINAL", "period": "202502", "pernr": "20000008", "wage_type": "1500",
                                 "amount": amount},
                "set_pay": {"pernr": "20000008", "special_post": amount}}
        cfg = load_config()
        cfg["PW203"].update(case["params"], vouch_min_runs=vouch)
        f = detect(world.build(case).inp, cfg, only={"PW203"})
        return f.filter((pl.col("category") == "special_allowance_spike") & (pl.col("pernr") == "20000008"))

    hit = flagged("2000.00")
    assert hit.height == 1 and flagged("400.00").height == 0 and flagged("2000.00", vouch=1).height == 0
    assert "its only earlier FINAL (2,000.00 CHF) was itself beyond the peers' peak" in hit["explanation"][0]


def _claims(rows: list[tuple]) -> pl.DataFrame:
    """PW201's scored claims of one unit (WMO G), as ContextModel.score leaves them: (pernr,
    hours, own median, own months, z against the peers, peers' median)."""
    return pl.DataFrame(rows, schema={"pernr": pl.String, "value": pl.Float64, "own_median": pl.Float64,
                                      "own_n": pl.UInt32, "z_peer": pl.Float64, "peer_median": pl.Float64},
                        orient="row").with_columns(
        pl.lit("WMO").alias("entity"), pl.lit("G").alias("staff_category"), pl.lit(False).alias("unusual"),
        pl.lit(0.5).alias("raw"), pl.lit(None, dtype=pl.Float64).alias("z_own"), pl.lit(False).alias("area_within"))


def test_one_own_month_is_no_yardstick_against_the_units_record_alone_when_peers_claim_as_much():
    """PW201, one own month (3.5 h): 40 h is far beyond the unit's record (16 h at most over 4
    claims) and no other in the unit has risen, but the G staff claim 35 h this month (their
    median): not far above the peers, so not unusual; at 80 h (2 x their median and more) it is."""
    from detectors.models import pw201_overtime as m
    from detectors.registry import load_config

    params = m.DETECTOR.params(load_config()["PW201"])
    past = pl.DataFrame({"entity": ["WMO"], "staff_category": ["G"], "unit_past_max": [16.0], "unit_past_n": [4]})
    quiet = [("B", 12.0, 12.5, 6, 0.0, 35.0), ("C", 14.0, 14.0, 6, 0.0, 35.0)]
    for hours, flagged in ((40.0, False), (80.0, True)):
        out = m.unit_reading(_claims([("A", hours, 3.5, 1, 1.0, 35.0), *quiet]), params, past)
        row = out.filter(pl.col("pernr") == "A").row(0, named=True)
        assert row["by_unit_past"] is flagged and row["unusual"] is flagged, (hours, row)


def _joined_effective_changes(now: pl.DataFrame, then: pl.DataFrame) -> pl.DataFrame:
    """history._effective_changes as written before session 16 (pairs by an inner join): the oracle."""
    cols = now.columns
    added = now.join(then, on=cols, how="anti", nulls_equal=True)
    removed = then.join(now, on=cols, how="anti", nulls_equal=True)
    same = [c for c in cols if c != "valid_to"]
    paired = added.select(*same, pl.col("valid_to").alias("_to_new")).join(
        removed.select(*same, pl.col("valid_to").alias("_to_old")), on=same, how="inner", nulls_equal=True)
    paired = paired.with_columns((pl.min_horizontal("_to_new", "_to_old") + timedelta(days=1)).alias("effective"))
    plain = pl.concat([added.select(same), removed.select(same)]).join(
        paired.select(same), on=same, how="anti", nulls_equal=True)
    plain = plain.with_columns(pl.col("valid_from").alias("effective"))
    return pl.concat([paired.select("pernr", "effective"), plain.select("pernr", "effective")]).unique()


@pytest.mark.parametrize("seed", range(60))
def test_effective_changes_pair_re_delimited_records_as_the_join_did(seed):
    """Random extracts of a few staff: re-delimited, duplicated, corrected, added and removed
    records, null grades; the window form gives the rows the join form gave."""
    import random  # noqa: PLC0415

    rng = random.Random(seed)
    starts = [date(2024, 1, 1), date(2025, 1, 1), date(2025, 6, 1)]
    ends = [date(2024, 12, 31), date(2025, 5, 31), date(2025, 12, 31), OPEN]

    def record():
        return (str(rng.randint(1, 3)), rng.choice(starts), rng.choice(ends), rng.choice(["P-3", "P-4", None]),
                rng.choice(["01", "02"]), rng.choice([100, 50]))

    then = [record() for _ in range(rng.randint(0, 8))]
    now = [r for r in then if rng.random() < 0.6]
    now += [(r[0], r[1], rng.choice(ends), *r[3:]) for r in then if rng.random() < 0.4]  # re-delimited
    now += [record() for _ in range(rng.randint(0, 4))]
    now += [r for r in now if rng.random() < 0.2]  # written twice
    a, b = basic_pay(*now), basic_pay(*then)
    assert effective(a, b) == sorted(_joined_effective_changes(a, b).iter_rows())


# -------------------------------------------------------------------------- PW101 suspects

# per wage type: the expected amount (none computable, no line, a line) and what is written for
# it — mostly as expected, so that one difference alone makes a staff member a suspect
_WAGE_TYPE = st.tuples(st.sampled_from([None, 0, 0, 100, 250]),
                       st.sampled_from(["as_expected"] * 6 + ["none", "other", "twice", "and_a_zero", "and_more"]))


def _written_for(cell: int | None, mode: str) -> list[int]:
    line = [cell] if cell else []
    return {"as_expected": line, "none": [], "other": [300], "twice": line * 2 or [100, 100],
            "and_a_zero": line + [0], "and_more": line + [300]}[mode]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(_WAGE_TYPE, min_size=7, max_size=7), st.booleans()), min_size=1, max_size=6))
def test_pw101_suspects_are_the_staff_the_line_by_line_comparison_reads(staff):
    """PW101 compares line by line only the staff its wide reading picks out: they must be
    exactly the staff with a row in the line-by-line comparison (expected lines with their
    zero and null rules against the written lines' range), whatever is written twice, not at
    all or with no expected line behind it."""
    from detectors import paymodel as pm
    from detectors.rules import pw101_paymodel as pw101

    model = list(pm.MODEL_WAGE_TYPES)
    wide = pl.DataFrame([{"pernr": f"{i:08d}", "for_period": "202605", **{w: c for w, (c, _) in zip(model, wts)}}
                         for i, (wts, _) in enumerate(staff)],
                        schema={"pernr": pl.String, "for_period": pl.String, **{w: pl.Int64 for w in model}})
    lines = [{"pernr": f"{i:08d}", "for_period": "202605", "in_period": "202605", "wage_type": w,
              "amount_cents": a, "currency": "USD"}
             for i, (wts, _) in enumerate(staff) for w, (c, mode) in zip(model, wts) for a in _written_for(c, mode)]
    # a total: paid, whether or not a model line is written
    lines += [{"pernr": f"{i:08d}", "for_period": "202605", "in_period": "202605", "wage_type": "/560",
               "amount_cents": 1, "currency": "USD"} for i, (_, paid) in enumerate(staff) if paid]
    current = pl.DataFrame(lines, schema={"pernr": pl.String, "for_period": pl.String, "in_period": pl.String,
                                          "wage_type": pl.String, "amount_cents": pl.Int64, "currency": pl.String})
    ctx = SimpleNamespace(current=current, expected_wide=wide, paid=current.select("pernr").unique())
    got = set(pw101._suspects(ctx).to_list())

    exp = pm.lines_of(wide).join(ctx.paid, on="pernr", how="semi")
    written = (current.filter(pl.col("wage_type").is_in(model)).group_by("pernr", "wage_type")
               .agg(pl.col("amount_cents").min().alias("lo"), pl.col("amount_cents").max().alias("hi")))
    cmp = exp.join(written, on=["pernr", "wage_type"], how="full", coalesce=True).with_columns(
        pl.col("expected_cents").fill_null(0).alias("e0"))
    bad = cmp.filter((pl.col("expected_cents").is_null() & pl.col("for_period").is_not_null())
                     | (pl.col("lo").is_null() & (pl.col("e0") != 0))
                     | (pl.col("lo").is_not_null() & ((pl.col("lo") != pl.col("e0")) | (pl.col("hi") != pl.col("e0")))))
    assert got == set(bad["pernr"].to_list())
