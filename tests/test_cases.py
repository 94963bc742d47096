"""Cases, not lines (issue #14; docs/cli-contract.md `cases.csv`, docs/design.md "Cases").

- the `[cases] explains` rules: the shipped ones cover every category, bad ones are refused
  in one line; every shipped rule with a finding it explains (one case) and one it does not
  (two cases), on small inline frames;
- the grouping itself: roots, pay order, priority, chains, circles, case ids stable from SIM1
  to FINAL;
- due dates from the payroll calendar;
- cases.csv layout and order, and no formula in either CSV;
- `paywatch verify` on the committed sample: every exceptions.csv row's case is in cases.csv,
  ids and statuses from SIM1 to FINAL, a decision shows as the case's status;
- the measure on a small simulation: one injected error, one case.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from detectors.base import FINDING_SCHEMA
from detectors.config import ConfigError, defaults
from detectors.registry import ALL_DETECTORS
from paywatch import report
from paywatch.cases import EVERYTHING, case_id, due_date, group_cases, known_categories, parse_rules, rules_of
from paywatch.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "gv-300"
RUNS = (SAMPLE / "runs.txt").read_text(encoding="utf-8").split()
DECEMBER = [r for r in RUNS if r.startswith("GV-202512-")]  # OC1, SIM1, SIM2, SIM3, FINAL
CALENDAR = {"SIM1": 10, "SIM2": 15, "SIM3": 20, "FINAL": 24}
# categories the shipped rules name that the detector raising them brings (issue #13)
PENDING = {"active_not_paid"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

RULES = rules_of(load_settings(None))
RAISED = {c for d in ALL_DETECTORS for c in d.categories}


def finding(pernr="10000001", category="scale_mismatch", wage_type="1000", *, severity="hold", owner="HR",
            amount=None, expected=None, currency="USD", detector="PW101", for_period="202601", explanation=None):
    return {"pernr": pernr, "detector": detector, "category": category, "severity": severity, "owner": owner,
            "wage_type": wage_type, "for_period": for_period, "amount_cents": amount, "expected_cents": expected,
            "currency": currency, "score": 1.0, "explanation": explanation or f"{category} on {wage_type}.",
            "evidence": "{}"}


def frame(*rows: dict) -> pl.DataFrame:
    f = pl.DataFrame(list(rows), schema=FINDING_SCHEMA)
    return f.with_columns(pl.Series("finding_id", [f"f{i}" for i in range(f.height)], dtype=pl.String))


def group(*rows: dict, rules=RULES, period="202601"):
    return group_cases(frame(*rows), rules, "GV", period)


def cases_of(grouped) -> dict[str, list[str]]:
    """case id -> categories of its findings."""
    findings, _ = grouped
    out: dict[str, list[str]] = {}
    for cid, cat in findings.select("case_id", "category").iter_rows():
        out.setdefault(cid, []).append(cat)
    return out


# ------------------------------------------------------------------------------ the rules as data

def test_shipped_rules_cover_every_category_a_detector_raises():
    named = RULES.names()
    assert RAISED <= named, f"categories without a rule: {sorted(RAISED - named)}"
    assert named - RAISED <= PENDING, f"rules name categories no detector raises: {sorted(named - RAISED - PENDING)}"
    assert known_categories() == RAISED | named


def test_shipped_rules_say_what_the_issue_says():
    assert RULES.explains("duplicate_earning", "stale_multiplier")
    assert RULES.explains("duplicate_earning", "health_mismatch")
    assert RULES.explains("part_time_ignored", "pension_mismatch")
    assert RULES.explains("part_time_ignored", "part_time_ignored")
    for whole_month in ("paid_during_slwop", "pay_after_separation", "pay_without_employment"):
        assert all(RULES.explains(whole_month, c) for c in RAISED)
    assert RULES.explains("active_not_paid", "missing_pension") and RULES.explains("active_not_paid", "totals_mismatch")
    assert RULES.explains("totals_mismatch", "totals_mismatch") and RULES.explains("totals_mismatch", "negative_net")
    assert not RULES.explains("stale_multiplier", "duplicate_earning")
    assert not RULES.explains("bank_change_before_large_payment", "shared_iban")


SHIPPED = defaults()["cases"]["explains"]


@pytest.mark.parametrize("lines, says", [
    (["duplicate_earning stale_multiplier"], "must read"),
    (["duplicate_earning > stale_multiplier > health_mismatch"], "must read"),
    (["duplicate_earning > "], "must read"),
    (["duplicate_earning > stale_multiplier,"], "must read"),
    (["Duplicate_Earning > stale_multiplier"], "is not a category name"),
    (["* > stale_multiplier"], "is not a category name"),
    (["duplicate_earning > no_such_category"], "no detector raises the category 'no_such_category'"),
    (["duplicate_earning > stale_multiplier", "duplicate_earning > health_mismatch"], "has a rule already"),
    (["duplicate_earning > stale_multiplier, stale_multiplier"], "listed twice"),
    (["totals_mismatch > negative_net", "negative_net > totals_mismatch"],
     "in a circle: totals_mismatch > negative_net > totals_mismatch"),
    ([*SHIPPED, "bank_change_before_large_payment > shared_iban"], "in a circle"),
    (["scale_mismatch > stale_multiplier", "stale_multiplier > health_mismatch", "health_mismatch > scale_mismatch"],
     "in a circle"),
    ("duplicate_earning > stale_multiplier", "must be a list"),
])
def test_bad_rules_are_refused_in_one_line(lines, says):
    with pytest.raises(ConfigError) as e:
        parse_rules(lines, known_categories())
    msg = str(e.value)
    assert says in msg and "\n" not in msg and "[cases] explains" in msg


def test_everything_and_a_cause_listing_itself_are_no_circle():
    r = parse_rules(["paid_during_slwop > *", "part_time_ignored > part_time_ignored, pension_mismatch"],
                    known_categories())
    assert r.explains("paid_during_slwop", "part_time_ignored") and r.explains("part_time_ignored", "part_time_ignored")


def test_an_office_replaces_the_rules_in_paywatch_toml_and_mistakes_stop_it(tmp_path):
    toml = tmp_path / "paywatch.toml"
    toml.write_text('[cases]\nexplains = ["duplicate_earning > stale_multiplier"]\n', encoding="utf-8")
    cfg = load_settings(toml)
    assert cfg["cases"]["explains"] == ["duplicate_earning > stale_multiplier"]
    assert not rules_of(cfg).explains("duplicate_earning", "health_mismatch")
    toml.write_text('[cases]\nexplains = ["duplicate_earning > stale_multiplyer"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^paywatch.toml: \[cases\] explains: .*'stale_multiplyer'"):
        load_settings(toml)
    toml.write_text('[cases]\nexplains = "duplicate_earning > stale_multiplier"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[cases\] explains must be a list of strings"):
        load_settings(toml)


def test_the_rules_are_part_of_the_configuration_version():
    from detectors.config import config_version

    cfg = load_settings(None)
    other = {**cfg, "cases": {"explains": ["duplicate_earning > stale_multiplier"]}}
    assert config_version(cfg) != config_version(other)  # case ids are stored with the findings


# ------------------------------------------------------------------------------ every rule: passes and fails

def _unrelated(cause: str) -> str | None:
    """A category the cause does not explain and that does not explain the cause."""
    for c in sorted(RAISED):
        if c != cause and not RULES.explains(cause, c) and not RULES.explains(c, cause):
            return c
    return None


def _effect(rule) -> str:
    named = sorted(e for e in rule.effects if e not in (EVERYTHING, rule.cause))
    return named[0] if named else ("shared_iban" if rule.cause != "shared_iban" else rule.cause)


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda r: r.cause)
def test_each_rule_joins_what_it_explains(rule):
    effect = _effect(rule)
    cause = finding(category=rule.cause, wage_type="1000", amount=200_00, expected=100_00)
    consequence = finding(category=effect, wage_type="3100", owner="FINANCE", amount=-50_00, expected=-40_00)
    findings, cases = group(consequence, cause)
    assert cases.height == 1, cases
    c = cases.row(0, named=True)
    assert (c["root_cause"], c["root_wage_type"], c["n_findings"]) == (rule.cause, "1000", 2)
    assert c["case_id"] == f"GV-202601-10000001-{rule.cause}-1000"
    assert c["owner"] == "HR" and c["in_copy"] == "FINANCE"
    assert findings["case_id"].to_list() == [c["case_id"]] * 2


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda r: r.cause)
def test_each_rule_leaves_what_it_does_not_explain(rule):
    effect = _effect(rule)
    # another staff member's finding is never explained
    _, cases = group(finding(category=rule.cause), finding(pernr="10000002", category=effect, wage_type="3100"))
    assert cases.height == 2 and set(cases["pernr"]) == {"10000001", "10000002"}
    other = _unrelated(rule.cause)
    if other is None:
        assert EVERYTHING in rule.effects  # explains everything: nothing of the same staff member is left
        return
    _, cases = group(finding(category=rule.cause), finding(category=other, wage_type="3100"))
    assert sorted(cases["root_cause"]) == sorted([rule.cause, other])


# ------------------------------------------------------------------------------ the grouping

def test_a_duplicated_salary_line_is_one_case_for_hr_with_finance_in_copy():
    findings, cases = group(
        finding(category="health_mismatch", wage_type="3100", owner="FINANCE", amount=-1_600_00, expected=-800_00),
        finding(category="duplicate_earning", wage_type="1000", detector="PW105", amount=16_000_00,
                expected=8_000_00, explanation="Net base salary (1000) for 202601 is written 2 times, "
                                               "16,000.00 USD in all; it must appear once."),
        finding(category="stale_multiplier", wage_type="1010", amount=13_000_00, expected=6_500_00),
    )
    assert cases.height == 1
    c = cases.row(0, named=True)
    assert c["case_id"] == "GV-202601-10000001-duplicate_earning-1000"
    assert (c["owner"], c["in_copy"], c["severity"], c["n_findings"]) == ("HR", "FINANCE", "hold", 3)
    assert (c["amount_at_stake_cents"], c["currency"]) == (8_000_00, "USD")
    assert c["summary"] == ("Net base salary (1000) for 202601 is written 2 times, 16,000.00 USD in all; it must "
                            "appear once; it explains 2 other findings: stale_multiplier on 1010 (difference "
                            "6,500.00 USD), health_mismatch on 3100 (difference -800.00 USD); FINANCE in copy.")
    assert findings["case_id"].n_unique() == 1 and findings["category"].to_list()[0] == "health_mismatch"


@pytest.mark.parametrize("ledger", ["recovery_above_balance", "recovery_without_advance"])
def test_a_wrong_recovery_above_the_wage_type_limit_is_one_case(ledger):
    """A recovery (3200) the ledger cannot account for is also above PW150's limit for 3200:
    one error, one case rooted at the ledger's finding (a foreign-writer seed split it in two)."""
    findings, cases = group(
        finding(category="wage_type_limit", wage_type="3200", detector="PW150", amount=-9_000_00),
        finding(category=ledger, wage_type="3200", detector="PW140", amount=-9_000_00, expected=-2_000_00),
    )
    assert cases.height == 1
    assert cases.row(0, named=True)["case_id"] == f"GV-202601-10000001-{ledger}-3200"


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_the_same_cause_on_two_lines_is_rooted_at_the_first_in_pay_order(order):
    rows = [finding(category="part_time_ignored", wage_type="3000", owner="FINANCE"),
            finding(category="part_time_ignored", wage_type="1000", owner="HR")]
    _, cases = group(*[rows[i] for i in order])
    assert cases["case_id"].to_list() == ["GV-202601-10000001-part_time_ignored-1000"]
    assert cases["owner"].to_list() == ["HR"]
    _, cases = group(finding(category="totals_mismatch", wage_type="/550", owner="FINANCE", detector="PW102"),
                     finding(category="totals_mismatch", wage_type="/101", owner="FINANCE", detector="PW102"))
    assert cases["case_id"].to_list() == ["GV-202601-10000001-totals_mismatch-/101"]


def test_pay_during_slwop_explains_everything_of_that_month():
    _, cases = group(finding(category="paid_during_slwop", wage_type="1000"),
                     finding(category="paid_during_slwop", wage_type="3000", owner="FINANCE"),
                     finding(category="shared_iban", wage_type=None, detector="PW111"),
                     finding(category="deduction_change", wage_type="3300", owner="FINANCE", severity="info"))
    assert cases["case_id"].to_list() == ["GV-202601-10000001-paid_during_slwop-1000"]
    assert cases["n_findings"].to_list() == [4]


def test_unexplained_findings_are_one_case_per_category_and_wage_type():
    _, cases = group(finding(category="unexplained_retro", wage_type="1000", for_period="202511", detector="PW120"),
                     finding(category="unexplained_retro", wage_type="1000", for_period="202512", detector="PW120"),
                     finding(category="unexplained_retro", wage_type="1010", for_period="202512", detector="PW120"),
                     finding(category="shared_iban", wage_type=None, detector="PW111"))
    assert sorted(cases["case_id"]) == ["GV-202601-10000001-shared_iban", "GV-202601-10000001-unexplained_retro-1000",
                                        "GV-202601-10000001-unexplained_retro-1010"]
    assert dict(cases.select("case_id", "n_findings").iter_rows())["GV-202601-10000001-unexplained_retro-1000"] == 2


def test_the_first_listed_rule_wins_and_chains_lead_to_the_root():
    rules = parse_rules(["b > c", "a > c, b"])
    _, cases = group(finding(category="c", wage_type="3100"), finding(category="b", wage_type="1010"),
                     finding(category="a", wage_type="1400"), rules=rules)
    # b is explained by a, c by b (listed first): all hang from a
    assert cases["case_id"].to_list() == ["GV-202601-10000001-a-1400"]
    rules = parse_rules(["x > *", "y > *"])
    _, cases = group(finding(category="y", wage_type="1000"), finding(category="x", wage_type="3000"), rules=rules)
    assert cases["root_cause"].to_list() == ["x"]  # they explain each other: the first listed is the cause


def test_without_rules_every_category_and_wage_type_is_its_own_case():
    rows = [finding(category="duplicate_earning"), finding(category="stale_multiplier", wage_type="1010"),
            finding(category="health_mismatch", wage_type="3100", owner="FINANCE")]
    _, cases = group(*rows, rules=parse_rules([]))
    assert cases.height == 3
    assert group(*rows)[1].height == 1  # the same findings, the shipped rules: one case


def test_case_ids_are_stable_from_sim1_to_final_while_the_cause_persists():
    sim1 = group(finding(category="duplicate_earning", detector="PW105"))[1]
    sim2 = group(finding(category="stale_multiplier", wage_type="1010"),
                 finding(category="duplicate_earning", detector="PW105"))[1]  # a consequence more
    final = group(finding(category="duplicate_earning", detector="PW105"),
                  finding(category="health_mismatch", wage_type="3100", owner="FINANCE"),
                  finding(pernr="10000009", category="shared_iban", wage_type=None, detector="PW111"))[1]
    ids = {"GV-202601-10000001-duplicate_earning-1000"}
    assert set(sim1["case_id"]) == ids and set(sim2["case_id"]) == ids and ids < set(final["case_id"])
    next_month = group(finding(category="duplicate_earning", detector="PW105"), period="202602")[1]
    assert next_month["case_id"].to_list() == ["GV-202602-10000001-duplicate_earning-1000"]
    assert case_id("GV", "202601", "10000001", "shared_iban", None) == "GV-202601-10000001-shared_iban"


def test_every_finding_gets_a_case_and_the_rows_keep_their_order():
    rows = [finding(pernr=f"1000000{i % 3}", category=c, wage_type=w)
            for i, (c, w) in enumerate([("scale_mismatch", "1000"), ("health_mismatch", "3100"),
                                        ("totals_mismatch", "/560"), ("negative_net", "/550"),
                                        ("overtime_outlier", "1400"), ("overtime_mismatch", "1400")])]
    findings, cases = group(*rows)
    assert findings.drop("case_id").equals(frame(*rows))
    assert findings["case_id"].null_count() == 0
    assert set(findings["case_id"]) == set(cases["case_id"]) and cases["n_findings"].sum() == findings.height
    empty_f, empty_c = group_cases(frame(), RULES, "GV", "202601")
    assert empty_f.height == 0 and "case_id" in empty_f.columns and empty_c.height == 0


# ------------------------------------------------------------------------------ due dates

@pytest.mark.parametrize("period, run_type, earlier, due", [
    ("202601", "SIM1", [], date(2026, 1, 14)),
    ("202601", "SIM2", ["SIM1"], date(2026, 1, 19)),
    ("202601", "SIM3", ["SIM1", "SIM2"], date(2026, 1, 23)),
    ("202601", "FINAL", ["SIM1", "SIM2", "SIM3"], date(2026, 2, 9)),
    ("202512", "FINAL", [], date(2026, 1, 9)),
    ("202512", "OFFCYCLE", [], date(2025, 12, 9)),
    ("202512", "OFFCYCLE", ["SIM1", "SIM2"], date(2025, 12, 19)),
    ("202512", "OFFCYCLE", ["SIM1", "SIM2", "SIM3", "FINAL"], date(2026, 1, 9)),
])
def test_due_the_day_before_the_next_regular_run(period, run_type, earlier, due):
    assert due_date(period, run_type, CALENDAR, earlier) == due


def test_a_calendar_day_past_the_month_end_is_its_last_day():
    assert due_date("202601", "SIM3", {**CALENDAR, "FINAL": 31}) == date(2026, 1, 30)
    assert due_date("202602", "SIM3", {**CALENDAR, "FINAL": 31}) == date(2026, 2, 27)


# ------------------------------------------------------------------------------ cases.csv, and no formulas

def read(text: str) -> list[list[str]]:
    assert "\r\n" not in text and text.endswith("\n")
    return list(csv.reader(io.StringIO(text, newline=""), strict=True))


def stored_like(grouped: pl.DataFrame, **extra) -> pl.DataFrame:
    return grouped.with_columns(pl.lit("new").alias("status"), pl.lit("GV-202601-SIM1").alias("first_seen_run"),
                                pl.lit(date(2026, 1, 14)).alias("due_date"), **{k: pl.lit(v) for k, v in extra.items()})


def test_cases_csv_layout_and_order():
    _, grouped = group(
        finding(pernr="10000003", category="shared_iban", wage_type=None, detector="PW111"),
        finding(pernr="10000002", category="overtime_outlier", wage_type="1400", severity="review",
                amount=9_585_96, currency="CHF", detector="PW201"),
        finding(pernr="10000004", category="scale_mismatch", amount=7_431_89, expected=7_243_56),
        finding(pernr="10000001", category="missing_pension", wage_type="3000", owner="FINANCE", expected=-1_433_86),
        finding(pernr="10000005", category="deduction_change", wage_type="3300", severity="info", owner="FINANCE",
                amount=-500_00, detector="PW130"),
        finding(pernr="10000006", category="scale_mismatch", amount=7_431_89, expected=7_243_56),
    )
    rows = read(report.cases_csv_text("GV-202601-SIM1", stored_like(grouped)))
    assert tuple(rows[0]) == report.CASES_HEADER and len(report.CASES_HEADER) == 13
    recs = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert all(len(r) == 13 for r in rows)
    # severity, then amount at stake descending (none last), then PERNR
    assert [(r["severity"], r["amount_at_stake"], r["PERNR"]) for r in recs] == [
        ("hold", "1433.86", "10000001"), ("hold", "188.33", "10000004"), ("hold", "188.33", "10000006"),
        ("hold", "", "10000003"), ("review", "9585.96", "10000002"), ("info", "500.00", "10000005")]
    first = recs[0]
    assert first == {"run_id": "GV-202601-SIM1", "case_id": "GV-202601-10000001-missing_pension-3000",
                     "PERNR": "10000001", "root_cause": "missing_pension", "owner": "FINANCE", "severity": "hold",
                     "status": "new", "first_seen_run": "GV-202601-SIM1", "due_date": "2026-01-14", "findings": "1",
                     "amount_at_stake": "1433.86", "WAERS": "USD", "summary": "missing_pension on 3000."}
    assert recs[3]["WAERS"] == ""  # no amount at stake, no currency
    for r in recs:
        assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", r["due_date"])
        assert r["amount_at_stake"] == "" or re.fullmatch(r"[0-9]+\.[0-9]{2}", r["amount_at_stake"])


def test_no_case_gives_the_header_only():
    header = ",".join(report.CASES_HEADER) + "\n"
    assert report.cases_csv_text("R", None) == header
    assert report.cases_csv_text("R", stored_like(group()[1])) == header


@pytest.mark.parametrize("lead", FORMULA_START)
def test_no_text_cell_of_either_csv_starts_a_formula(lead):
    text = f'{lead}HYPERLINK("http://example.org/x","Net base salary") (1000) is 1.00 USD.'
    findings, grouped = group(finding(category="scale_mismatch", amount=-100, expected=0, explanation=text),
                              finding(category="pension_mismatch", wage_type="3000", owner="FINANCE",
                                      explanation="-" + text))
    for csv_text in (report.exceptions_csv_text("GV-202601-SIM1", findings),
                     report.cases_csv_text("GV-202601-SIM1", stored_like(grouped))):
        rows = read(csv_text)
        header = rows[0]
        for row in rows[1:]:
            for col, cell in zip(header, row):
                if col in ("amount", "expected", "score", "findings", "amount_at_stake"):
                    continue  # numbers, and may be negative
                assert not cell.startswith(FORMULA_START), (col, cell)
    explanations = [r[12] for r in read(report.exceptions_csv_text("R", findings))[1:]]
    assert sorted(explanations) == sorted(["'" + text, "'-" + text])  # quoted, the text kept
    summary = read(report.cases_csv_text("R", stored_like(grouped)))[1][12]
    # the summary's whitespace is made single spaces: a leading tab or CR is gone, the rest quoted
    assert summary.startswith("'" + lead if lead.strip() else "HYPERLINK(")
    assert read(report.exceptions_csv_text("R", findings))[1][8] == "-1.00"  # amounts stay numbers


# ------------------------------------------------------------------------------ paywatch verify on the sample

@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    """The sample's December runs verified in order with `paywatch verify` (in one process)."""
    from paywatch.cli import app

    root = tmp_path_factory.mktemp("cases_verify")
    db = root / "wh" / "w.duckdb"
    runner = CliRunner()
    for name in DECEMBER:
        res = runner.invoke(app, ["verify", str(SAMPLE / name), "--db", str(db), "--out", str(root / "out" / name)])
        assert res.exit_code == 0, res.output
    return root, db


def csv_records(path: Path) -> list[dict]:
    rows = read(path.read_text(encoding="utf-8"))
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def test_every_finding_in_exceptions_csv_links_to_a_case_in_cases_csv(verified):
    root, _ = verified
    total = 0
    for name in DECEMBER:
        out = root / "out" / name
        ex, cs = csv_records(out / "exceptions.csv"), csv_records(out / "cases.csv")
        total += len(cs)
        ids = [c["case_id"] for c in cs]
        assert len(ids) == len(set(ids))
        assert {r["case_id"] for r in ex} == set(ids), name
        for c in cs:
            mine = [r for r in ex if r["case_id"] == c["case_id"]]
            assert int(c["findings"]) == len(mine)
            assert c["PERNR"] == mine[0]["PERNR"] and c["root_cause"] in {r["category"] for r in mine}
            assert c["severity"] == min((r["severity"] for r in mine), key=["hold", "review", "info"].index)
            assert c["owner"] in {r["owner"] for r in mine}
            assert c["status"] in {"new", "open"} and c["due_date"]
    assert total > 20


def test_cases_keep_their_id_from_sim1_to_final(verified):
    root, db = verified
    seen: dict[str, list[tuple[str, str, str]]] = {}
    for name in DECEMBER:
        for c in csv_records(root / "out" / name / "cases.csv"):
            seen.setdefault(c["case_id"], []).append((name, c["status"], c["first_seen_run"]))
    persisting = {cid: runs for cid, runs in seen.items() if len(runs) >= 3}
    assert persisting, seen
    for cid, runs in persisting.items():
        first = runs[0][0]
        assert runs[0][1] == "new" and all(s == "open" for _, s, _ in runs[1:]), (cid, runs)
        assert all(f == first for _, _, f in runs), (cid, runs)
    # part_time_ignored of 10000203 (truth.csv: SIM1 to FINAL): one case, HR, Finance's pension line in it
    final = {c["case_id"]: c for c in csv_records(root / "out" / "GV-202512-FINAL" / "cases.csv")}
    c = final["GV-202512-10000203-part_time_ignored-1000"]
    assert (c["owner"], c["findings"], c["first_seen_run"], c["due_date"]) == ("HR", "2", "GV-202512-SIM1",
                                                                               "2026-01-09")
    assert "FINANCE in copy" in c["summary"]
    # resolved since the last run: SIM1's cases that SIM2 no longer has
    from paywatch.warehouse.cases import resolved_since
    from paywatch.warehouse.resource import Warehouse

    sim1 = {c["case_id"] for c in csv_records(root / "out" / "GV-202512-SIM1" / "cases.csv")}
    sim2 = {c["case_id"] for c in csv_records(root / "out" / "GV-202512-SIM2" / "cases.csv")}
    with Warehouse.at(db).reader() as con:
        gone = resolved_since(con, "GV-202512-SIM2")
    assert set(gone["case_id"]) == sim1 - sim2 and sim1 - sim2
    assert set(gone["run_id"]) == {"GV-202512-SIM1"}


def test_a_repeated_verify_writes_the_same_cases_and_a_decision_shows_as_status(verified, tmp_path):
    from paywatch.cli import app
    from paywatch.lifecycle import record_decision
    from paywatch.warehouse.resource import Warehouse

    root, db = verified
    name = "GV-202512-SIM2"
    again = CliRunner().invoke(app, ["verify", str(SAMPLE / name), "--db", str(db), "--out", str(tmp_path / "a")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "a" / "cases.csv").read_bytes() == (root / "out" / name / "cases.csv").read_bytes()
    assert (tmp_path / "a" / "exceptions.csv").read_bytes() == (root / "out" / name / "exceptions.csv").read_bytes()
    case = "GV-202512-10000203-part_time_ignored-1000"
    with Warehouse.at(db).writer() as con:
        from paywatch.warehouse.cases import current_cases

        root_finding = current_cases(con, name).filter(pl.col("case_id") == case)["root_finding_id"][0]
        record_decision(con, action="confirm", actor="A. Reviewer", reason="checked against the contract",
                        finding_id=root_finding)
    res = CliRunner().invoke(app, ["verify", str(SAMPLE / name), "--db", str(db), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    after = {c["case_id"]: c for c in csv_records(tmp_path / "b" / "cases.csv")}
    assert (after[case]["status"], after[case]["severity"]) == ("confirmed", "hold")
    before = {c["case_id"]: c for c in csv_records(tmp_path / "a" / "cases.csv")}
    assert all(after[k]["status"] == before[k]["status"] for k in after if k != case)


def test_a_formula_in_a_wage_type_text_reaches_no_csv_as_a_formula(tmp_path):
    """T512W text of 1000 made a formula: explanations on 1000 start with it."""
    from paywatch.cli import app

    folder = tmp_path / "run"
    shutil.copytree(SAMPLE / "GV-202512-SIM1", folder)
    t512w = folder / "T512W.csv"
    t512w.write_text(t512w.read_text(encoding="utf-8").replace(
        "1000,Net base salary,", '1000,"=HYPERLINK(""http://example.org"",""Net base salary"")",'), encoding="utf-8")
    m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    m["files"]["T512W.csv"]["sha256"] = hashlib.sha256(t512w.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m, indent=2), encoding="utf-8")
    res = CliRunner().invoke(app, ["verify", str(folder), "--db", str(tmp_path / "w.duckdb"), "--out",
                                   str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    ex, cs = csv_records(tmp_path / "out" / "exceptions.csv"), csv_records(tmp_path / "out" / "cases.csv")
    assert any(r["explanation"].startswith("'=HYPERLINK(") for r in ex)
    assert any(c["summary"].startswith("'=HYPERLINK(") for c in cs)
    for r in [*ex, *cs]:
        assert not any(v.startswith(FORMULA_START) for k, v in r.items()
                       if k not in ("amount", "expected", "amount_at_stake")), r


# ------------------------------------------------------------------------------ the measure

def test_one_injected_error_gives_one_case_on_a_small_simulation():
    from paywatch.evaluate import evaluate
    from paywatch.simulate import SimConfig

    full, _ = evaluate(SimConfig(staff=400, months=2, start="202511", seed=909))
    m = full.cases
    assert m.caught >= 30
    assert m.findings_without_case == 0
    assert m.one_case_share >= 0.98, m
    assert m.cases_per_error <= 1.02, m
    assert "one_case_share=" in m.line()
