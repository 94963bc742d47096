"""Tests of the independent checker (tests/independent_checker.py).

The worked examples of docs/extract-format.md pin the pure helpers; small run folders written by
hand from the contract (no simulator, no pay model) pin the line-by-line checks.  Every
amount below was worked out from the contract's formulas; the arithmetic is in the comments.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import time
from fractions import Fraction as F
from pathlib import Path

import pytest

try:
    from independent_checker import (
        StaffMonth,
        age_in_years,
        check_simulation,
        expected_lines,
        fmt,
        round_half_away,
        technical_totals,
    )
except ImportError:  # tests/ made a package later
    from tests.independent_checker import (
        StaffMonth,
        age_in_years,
        check_simulation,
        expected_lines,
        fmt,
        round_half_away,
        technical_totals,
    )

RATES = {
    "PENSION_STAFF_RATE": F("0.079"), "SPOUSE_RATE": F("0.06"),
    "CHILD_ANNUAL_USD": F("3150.00"), "CHILD_ANNUAL_CHF": F("3600.00"),
    "CHILD_AGE_LIMIT": F(18), "HEALTH_RATE": F("0.04"),
}


def amounts(lines: dict) -> dict:
    return {lgart: fmt(amount) for lgart, amount in lines.items()}


# --------------------------------------------------------------------------------------
# Pure helpers and the worked examples
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, cents", [
    ("625.025", "625.03"), ("625.0249999", "625.02"), ("-89.8654625", "-89.87"),
    ("-25.0012", "-25.00"), ("-0.005", "-0.01"), ("0.005", "0.01"), ("0.004999", "0.00"),
    ("2.675", "2.68"), ("-2.665", "-2.67"), ("5447.00436", "5447.00"), ("0", "0.00"),
])
def test_round_half_away(value, cents):
    rounded = round_half_away(F(value))
    assert rounded == F(cents)
    assert (rounded * 100).denominator == 1


def test_worked_example_1():
    ctx = StaffMonth(category="P", active_days=31, days_in_month=31,
                     annual_net=F("80000.00"), annual_pr=F("150000.00"), bsgrd=F(100),
                     rates=RATES, multiplier=F("81.7"), spouse=True, children=2)
    lines = expected_lines(ctx)
    assert amounts(lines) == {"1000": "6666.67", "1010": "5446.67", "1100": "400.00",
                              "1110": "525.00", "3000": "-987.50", "3100": "-484.53"}
    earnings = [lines[k] for k in ("1000", "1010", "1100", "1110")]
    totals = technical_totals(earnings, [lines["3000"], lines["3100"]])
    assert amounts(totals) == {"/101": "13038.34", "/550": "11566.31", "/560": "11566.31"}


def test_worked_example_2():
    ctx = StaffMonth(category="G", active_days=9, days_in_month=30,
                     annual_net=F("50002.00"), annual_pr=F("91003.00"), bsgrd=F(50),
                     rates=RATES)
    lines = expected_lines(ctx)
    assert amounts(lines) == {"1000": "625.03", "3000": "-89.87", "3100": "-25.00"}
    totals = technical_totals([lines["1000"]], [lines["3000"], lines["3100"]])
    assert amounts(totals) == {"/101": "625.03", "/550": "510.16", "/560": "510.16"}
    # 9 active days: no overtime even when hours were recorded.
    with_hours = StaffMonth(**{**ctx.__dict__, "overtime_hours": F(4)})
    assert "1400" not in expected_lines(with_hours)


def test_worked_example_3_uses_lines_as_written():
    ctx = StaffMonth(category="P", active_days=31, days_in_month=31,
                     annual_net=F("80005.00"), annual_pr=F("150000.00"), bsgrd=F(100),
                     rates=RATES, multiplier=F("81.7"))
    lines = expected_lines(ctx)
    assert fmt(lines["1000"]) == "6667.08"
    assert fmt(lines["1010"]) == "5447.00"  # from 6667.08, not from 6667.0833…
    # A written 1000 (even a wrong one) is what 1010, 1100 and 3100 refer to.
    written = StaffMonth(**{**ctx.__dict__, "written": {"1000": F("6667.00")}})
    assert fmt(expected_lines(written)["1010"]) == "5446.94"  # 6667.00 × 0.817 = 5446.939


def test_overtime_rate_is_rounded_before_the_hours():
    # G-4/03: 72000 × 1.5 / 2080 = 51.923… → 51.92; 5.5 h × 51.92 = 285.56
    ctx = StaffMonth(category="G", active_days=22, days_in_month=31,
                     annual_net=F("72000.00"), annual_pr=F("130000.00"), bsgrd=F(50),
                     rates=RATES, overtime_hours=F("5.5"))
    assert fmt(expected_lines(ctx)["1400"]) == "285.56"  # not scaled by BSGRD or f


def test_age_in_completed_years_and_29_february():
    assert age_in_years("20061201", "20250301") == 18
    assert age_in_years("20061202", "20241201") == 17
    assert age_in_years("20080229", "20260228") == 17
    assert age_in_years("20080229", "20260301") == 18
    assert age_in_years("20080229", "20280229") == 20


# --------------------------------------------------------------------------------------
# Hand-written run folders
# --------------------------------------------------------------------------------------

OPEN = "99991231"

HEADERS = {
    "PA0000": ["PERNR", "BEGDA", "ENDDA", "MASSN", "MASSG", "STAT2"],
    "PA0001": ["PERNR", "BEGDA", "ENDDA", "ENAME", "WERKS", "PERSG", "ORGEH", "ABKRS", "KOSTL"],
    "PA0008": ["TRFGR", "PERNR", "BEGDA", "ENDDA", "TRFST", "BSGRD"],  # any column order
    "PA0009": ["PERNR", "BEGDA", "ENDDA", "BANKS", "IBAN", "WAERS"],
    "PA0021": ["PERNR", "OBJPS", "FAMSA", "FGBDT", "BEGDA", "ENDDA", "DEPENDENT"],
    # shuffled, with an extra column the checker must ignore
    "RT": ["LGART", "PERNR", "BETRG", "REMARK", "FPPER", "WAERS", "INPER", "ANZHL", "SEQNR"],
    "T510": ["TRFGR", "TRFST", "BEGDA", "ENDDA", "ANNUAL_NET", "ANNUAL_PR", "WAERS"],
    "T7UNPA": ["WERKS", "BEGDA", "ENDDA", "MULTIPLIER"],
    "T512W": ["LGART", "LGTXT", "CLASS", "RUN_TYPES", "OWNER"],
    "T7UNRATE": ["KEY", "VALUE", "BEGDA", "ENDDA"],
}


def row(table: str, *values: str) -> dict:
    cols = [c for c in HEADERS[table] if c != "REMARK"] if table == "RT" else HEADERS[table]
    if table == "PA0008":  # values given in contract order
        cols = ["PERNR", "BEGDA", "ENDDA", "TRFGR", "TRFST", "BSGRD"]
    assert len(cols) == len(values), (table, values)
    return dict(zip(cols, values))


def rt(pernr, fpper, inper, lgart, betrg, waers, anzhl=""):
    return {"PERNR": pernr, "SEQNR": "1", "FPPER": fpper, "INPER": inper, "LGART": lgart,
            "BETRG": betrg, "WAERS": waers, "ANZHL": anzhl}


def reference_tables() -> dict:
    return {
        "T510": [
            row("T510", "P-3", "01", "20230101", "20231231", "78000.00", "146000.00", "USD"),
            row("T510", "P-3", "01", "20240101", OPEN, "80000.00", "150000.00", "USD"),
            row("T510", "P-3", "02", "20240101", OPEN, "82000.00", "154000.00", "USD"),
            row("T510", "G-4", "03", "20240101", OPEN, "72000.00", "130000.00", "CHF"),
        ],
        "T7UNPA": [
            row("T7UNPA", "GVA", "20230101", "20231231", "79.0"),
            row("T7UNPA", "GVA", "20240101", OPEN, "81.7"),
        ],
        "T512W": [
            row("T512W", "1000", "Net base salary", "EARNING", "REGULAR", "HR"),
            row("T512W", "1010", "Post adjustment", "EARNING", "REGULAR", "HR"),
            row("T512W", "1100", "Spouse allowance", "EARNING", "REGULAR", "HR"),
            row("T512W", "1110", "Child allowance", "EARNING", "REGULAR", "HR"),
            row("T512W", "1400", "Overtime", "EARNING", "REGULAR", "FINANCE"),
            row("T512W", "1500", "Special post allowance", "EARNING", "REGULAR", "HR"),
            row("T512W", "2000", "Salary advance", "EARNING", "OFFCYCLE", "FINANCE"),
            row("T512W", "3000", "Pension contribution", "DEDUCTION", "REGULAR", "HR"),
            row("T512W", "3100", "Health insurance", "DEDUCTION", "REGULAR", "HR"),
            row("T512W", "3200", "Advance recovery", "DEDUCTION", "REGULAR", "FINANCE"),
            row("T512W", "3300", "Other deductions", "DEDUCTION", "REGULAR", "FINANCE"),
            row("T512W", "/101", "Total gross", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
            row("T512W", "/550", "Statutory net", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
            row("T512W", "/560", "Amount paid", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
        ],
        "T7UNRATE": [
            row("T7UNRATE", "PENSION_STAFF_RATE", "0.079", "20240101", OPEN),
            row("T7UNRATE", "SPOUSE_RATE", "0.06", "20240101", OPEN),
            row("T7UNRATE", "CHILD_ANNUAL_USD", "3150.00", "20240101", OPEN),
            row("T7UNRATE", "CHILD_ANNUAL_CHF", "3600.00", "20240101", OPEN),
            row("T7UNRATE", "CHILD_AGE_LIMIT", "18", "20240101", OPEN),
            row("T7UNRATE", "HEALTH_RATE", "0.04", "20240101", OPEN),
        ],
    }


def march_sim1() -> dict:
    """GV-202503-SIM1 (31 days).

    00000001 A: P-3/01, GVA, 100 %, whole month, dependent spouse, dependent child born
       20150610 (9) and dependent child born 20061201 (18 on 1 March: not counted).
       1000 = 80000/12 = 6666.666… → 6666.67; 1010 = 6666.67 × 0.817 = 5446.669… → 5446.67;
       1100 = 6666.67 × 0.06 = 400.0002 → 400.00; 1110 = 3150/12 = 262.50;
       3000 = −150000/12 × 0.079 = −987.50; 3100 = −(6666.67 + 5446.67) × 0.04 = −484.5336
       → −484.53; /101 = 12775.84; /550 = /560 = 12775.84 − 987.50 − 484.53 = 11303.81.
    00000002 B: G-4/03, hired 10 March → 22/31 active, reference day 10 March; dependent
       spouse (no 1100 for G) and dependent child born 20100101; 5.5 overtime hours.
       1000 = 6000 × 22/31 = 4258.0645… → 4258.06; 1110 = 3600/12 × 22/31 = 212.903… → 212.90;
       1400 = 5.5 × round(72000 × 1.5/2080 = 51.923…) = 5.5 × 51.92 = 285.56;
       3000 = −130000/12 × 22/31 × 0.079 = −607.3655… → −607.37;
       3100 = −4258.06 × 0.04 = −170.3224 → −170.32; /101 = 4756.52; /550 = /560 = 3978.83.
    00000003 C: injected error (listed in truth.csv): wrong lines, never checked.
    00000004 D: separated from 1 February (STAT2 0): f = 0, no lines.
    """
    files = {
        "PA0000": [
            row("PA0000", "00000001", "20200101", OPEN, "01", "", "3"),
            row("PA0000", "00000002", "20250310", OPEN, "01", "R1", "3"),
            row("PA0000", "00000003", "20200101", OPEN, "01", "", "3"),
            row("PA0000", "00000004", "20200101", "20250131", "01", "", "3"),
            row("PA0000", "00000004", "20250201", OPEN, "05", "", "0"),
        ],
        "PA0001": [
            row("PA0001", "00000001", "20200101", OPEN, "Amélie Dubois", "GVA", "P", "OHCHR",
                "GV", "K100"),
            row("PA0001", "00000002", "20250310", OPEN, "Zhang, Wei", "GVA", "G", "UNCTAD",
                "GV", ""),
            row("PA0001", "00000003", "20200101", OPEN, "Ольга \"Оля\" Петрова", "GVA", "P",
                "ECE", "GV", "K300"),
            row("PA0001", "00000004", "20200101", "20250131", "Kofi Mensah", "GVA", "G",
                "OCHA", "GV", "K400"),
        ],
        "PA0008": [
            row("PA0008", "00000001", "20200101", OPEN, "P-3", "01", "100"),
            row("PA0008", "00000002", "20250310", OPEN, "G-4", "03", "100"),
            row("PA0008", "00000003", "20200101", OPEN, "P-3", "01", "100"),
            row("PA0008", "00000004", "20200101", "20250131", "G-4", "03", "100"),
        ],
        "PA0009": [
            row("PA0009", "00000001", "20200101", OPEN, "CH", "CH9300762011623852957", "USD"),
            row("PA0009", "00000002", "20250310", OPEN, "CH", "CH5604835012345678009", "CHF"),
            row("PA0009", "00000003", "20200101", OPEN, "FR", "FR7630006000011234567890189",
                "USD"),
            row("PA0009", "00000004", "20200101", "20250131", "CH", "CH3908704016075473007",
                "CHF"),
        ],
        "PA0021": [
            row("PA0021", "00000001", "01", "1", "19850304", "20150101", OPEN, "X"),
            row("PA0021", "00000001", "02", "2", "20150610", "20150610", OPEN, "X"),
            row("PA0021", "00000001", "03", "2", "20061201", "20061201", OPEN, "X"),
            row("PA0021", "00000002", "01", "1", "19800101", "20000101", OPEN, "X"),
            row("PA0021", "00000002", "02", "2", "20100101", "20100101", OPEN, "X"),
        ],
        "RT": [
            rt("00000001", "202503", "202503", "1000", "6666.67", "USD"),
            rt("00000001", "202503", "202503", "1010", "5446.67", "USD"),
            rt("00000001", "202503", "202503", "1100", "400.00", "USD"),
            rt("00000001", "202503", "202503", "1110", "262.50", "USD"),
            rt("00000001", "202503", "202503", "3000", "-987.50", "USD"),
            rt("00000001", "202503", "202503", "3100", "-484.53", "USD"),
            rt("00000001", "202503", "202503", "/101", "12775.84", "USD"),
            rt("00000001", "202503", "202503", "/550", "11303.81", "USD"),
            rt("00000001", "202503", "202503", "/560", "11303.81", "USD"),
            rt("00000002", "202503", "202503", "1000", "4258.06", "CHF"),
            rt("00000002", "202503", "202503", "1110", "212.90", "CHF"),
            rt("00000002", "202503", "202503", "1400", "285.56", "CHF", "5.5"),
            rt("00000002", "202503", "202503", "3000", "-607.37", "CHF"),
            rt("00000002", "202503", "202503", "3100", "-170.32", "CHF"),
            rt("00000002", "202503", "202503", "/101", "4756.52", "CHF"),
            rt("00000002", "202503", "202503", "/550", "3978.83", "CHF"),
            rt("00000002", "202503", "202503", "/560", "3978.83", "CHF"),
            rt("00000003", "202503", "202503", "1000", "9999.99", "USD"),
            rt("00000003", "202503", "202503", "/101", "1.00", "USD"),
            rt("00000003", "202503", "202503", "/550", "1.00", "USD"),
            rt("00000003", "202503", "202503", "/560", "1.00", "USD"),
        ],
    }
    files.update(reference_tables())
    return {"run_id": "GV-202503-SIM1", "period": "202503", "run_type": "SIM1",
            "files": files}


def write_run(folder: Path, run: dict) -> None:
    folder.mkdir(parents=True)
    listing = {}
    for table, rows in run["files"].items():
        name = f"{table}.csv"
        with open(folder / name, "w", encoding="utf-8", newline="") as fh:
            if table == "PA0001":
                fh.write("\ufeff")  # a byte-order mark is tolerated
            writer = csv.DictWriter(fh, fieldnames=HEADERS[table], lineterminator="\r\n"
                                    if table == "PA0021" else "\n")
            writer.writeheader()
            for r in rows:
                writer.writerow({**{c: "" for c in HEADERS[table]}, **r})
        data = (folder / name).read_bytes()
        listing[name] = {"rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {
        "format_version": "1.0", "run_id": run["run_id"], "payroll_area": "GV",
        "period": run["period"], "run_type": run["run_type"],
        "pay_date": run["period"] + "25", "extracted_at": run.get(
            "extracted_at", f"{run['period'][:4]}-{run['period'][4:]}-10T06:00:00Z"),
        "files": listing,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def write_simulation(out: Path, runs: list[dict], truth: list[tuple]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for i, run in enumerate(runs):
        write_run(out / f"run{i:02d}", run)  # folder names mean nothing
    (out / "runs.txt").write_text("".join(f"run{i:02d}\n" for i in range(len(runs))))
    with open(out / "truth.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["run_id", "PERNR", "error_type"])
        writer.writerows(truth)
    return out


TRUTH_MARCH = [("GV-202503-SIM1", "00000003", "scale_mismatch")]


def set_betrg(run: dict, pernr: str, lgart: str, betrg: str, fpper: str | None = None) -> None:
    hits = [r for r in run["files"]["RT"] if r["PERNR"] == pernr and r["LGART"] == lgart
            and (fpper is None or r["FPPER"] == fpper)]
    assert len(hits) == 1
    hits[0]["BETRG"] = betrg


def drop_line(run: dict, pernr: str, lgart: str, fpper: str) -> None:
    before = len(run["files"]["RT"])
    run["files"]["RT"] = [r for r in run["files"]["RT"] if not (
        r["PERNR"] == pernr and r["LGART"] == lgart and r["FPPER"] == fpper)]
    assert len(run["files"]["RT"]) == before - 1


def keys(report) -> list[tuple]:
    return sorted((m.PERNR, m.LGART, m.FPPER, m.kind) for m in report.mismatches)


def test_hand_built_run_passes(tmp_path):
    report = check_simulation(write_simulation(tmp_path, [march_sim1()], TRUTH_MARCH))
    assert report.mismatches == [], report.summary()
    assert report.runs_checked == 1
    assert report.staff_checked == 3  # A, B and D; C is listed in truth.csv
    assert report.staff_skipped == 1
    assert report.lines_checked == {
        "1000": 2, "1010": 1, "1100": 1, "1110": 2, "1400": 1, "3000": 2, "3100": 2,
        "/101": 2, "/550": 2, "/560": 2,
    }


def test_one_cent_off_gives_exactly_one_mismatch(tmp_path):
    run = march_sim1()
    set_betrg(run, "00000001", "1110", "262.51")
    # totals made consistent with the changed line, so only the line itself is wrong
    set_betrg(run, "00000001", "/101", "12775.85")
    set_betrg(run, "00000001", "/550", "11303.82")
    set_betrg(run, "00000001", "/560", "11303.82")
    report = check_simulation(write_simulation(tmp_path, [run], TRUTH_MARCH))
    assert len(report.mismatches) == 1, report.summary()
    m = report.mismatches[0]
    assert (m.run_id, m.PERNR, m.LGART, m.FPPER) == ("GV-202503-SIM1", "00000001", "1110",
                                                      "202503")
    assert (m.written, m.expected, m.kind) == ("262.51", "262.50", "amount")


def test_one_cent_off_without_totals_fix_flags_line_and_101_only(tmp_path):
    run = march_sim1()
    set_betrg(run, "00000002", "1400", "285.57")
    report = check_simulation(write_simulation(tmp_path, [run], TRUTH_MARCH))
    # /550 refers to /101 as written and /560 to /550 as written: no cascade.
    assert keys(report) == [("00000002", "/101", "202503", "totals"),
                            ("00000002", "1400", "202503", "amount")]
    total = next(m for m in report.mismatches if m.LGART == "/101")
    assert (total.written, total.expected) == ("4756.52", "4756.53")


def test_referred_line_as_written_no_cascade(tmp_path):
    # A wrong 1000 whose dependants (1010, 1100, 3100) were computed from it: one finding.
    run = march_sim1()
    set_betrg(run, "00000001", "1000", "6666.00")
    set_betrg(run, "00000001", "1010", "5446.12")  # 6666.00 × 0.817 = 5446.122
    set_betrg(run, "00000001", "1100", "399.96")  # 6666.00 × 0.06 = 399.96
    set_betrg(run, "00000001", "3100", "-484.48")  # −(6666.00 + 5446.12) × 0.04 = −484.4848
    # /101 = 6666.00 + 5446.12 + 399.96 + 262.50 = 12774.58; /550 = 12774.58 − 987.50 − 484.48
    set_betrg(run, "00000001", "/101", "12774.58")
    set_betrg(run, "00000001", "/550", "11302.60")
    set_betrg(run, "00000001", "/560", "11302.60")
    report = check_simulation(write_simulation(tmp_path, [run], TRUTH_MARCH))
    assert keys(report) == [("00000001", "1000", "202503", "amount")], report.summary()


def _mutate_missing_1100(run):
    drop_line(run, "00000001", "1100", "202503")
    set_betrg(run, "00000001", "/101", "12375.84")
    set_betrg(run, "00000001", "/550", "10903.81")
    set_betrg(run, "00000001", "/560", "10903.81")


def _mutate_unexpected_1100_for_g(run):
    run["files"]["RT"].append(rt("00000002", "202503", "202503", "1100", "255.48", "CHF"))
    set_betrg(run, "00000002", "/101", "5012.00")
    set_betrg(run, "00000002", "/550", "4234.31")
    set_betrg(run, "00000002", "/560", "4234.31")


def _mutate_currency(run):
    next(r for r in run["files"]["RT"]
         if r["PERNR"] == "00000002" and r["LGART"] == "3100")["WAERS"] = "USD"


def _mutate_pay_after_separation(run):
    run["files"]["RT"].append(rt("00000004", "202503", "202503", "1500", "100.00", "CHF"))


def _mutate_duplicate(run):
    run["files"]["RT"].append(rt("00000001", "202503", "202503", "1110", "262.50", "USD"))
    set_betrg(run, "00000001", "/101", "13038.34")
    set_betrg(run, "00000001", "/550", "11566.31")
    set_betrg(run, "00000001", "/560", "11566.31")


def _mutate_offcycle_type_in_regular(run):
    run["files"]["RT"].append(rt("00000001", "202503", "202503", "2000", "1000.00", "USD"))
    set_betrg(run, "00000001", "/101", "13775.84")
    set_betrg(run, "00000001", "/550", "12303.81")
    set_betrg(run, "00000001", "/560", "12303.81")


def _mutate_overtime_under_10_days(run):
    # B hired on the 23rd: 9 active days → no overtime; all other lines recomputed for 9/31.
    for table in ("PA0000", "PA0001", "PA0008", "PA0009"):
        for r in run["files"][table]:
            if r["PERNR"] == "00000002":
                r["BEGDA"] = "20250323"
    # 1000 = 6000 × 9/31 = 1741.935… → 1741.94; 1110 = 300 × 9/31 = 87.096… → 87.10;
    # 3000 = −130000/12 × 9/31 × 0.079 = −248.4677… → −248.47; 3100 = −1741.94 × 0.04 → −69.68
    for lgart, betrg in (("1000", "1741.94"), ("1110", "87.10"), ("3000", "-248.47"),
                         ("3100", "-69.68"), ("/101", "2114.60"), ("/550", "1796.45"),
                         ("/560", "1796.45")):
        set_betrg(run, "00000002", lgart, betrg)


def _mutate_total_written_twice(run):
    run["files"]["RT"].append(rt("00000001", "202502", "202503", "/560", "0.00", "USD"))


@pytest.mark.parametrize("mutate, expected", [
    (_mutate_missing_1100, [("00000001", "1100", "202503", "missing")]),
    (_mutate_unexpected_1100_for_g, [("00000002", "1100", "202503", "unexpected")]),
    (_mutate_currency, [("00000002", "3100", "202503", "currency")]),
    (_mutate_pay_after_separation, [("00000004", "1500", "202503", "no_pay_expected")]),
    (_mutate_duplicate, [("00000001", "1110", "202503", "duplicate")]),
    (_mutate_offcycle_type_in_regular, [("00000001", "2000", "202503", "run_type")]),
    (_mutate_overtime_under_10_days, [("00000002", "1400", "202503", "unexpected")]),
    (_mutate_total_written_twice, [("00000001", "/560", "202503", "totals")]),
])
def test_single_defects_are_reported_once(tmp_path, mutate, expected):
    run = march_sim1()
    mutate(run)
    report = check_simulation(write_simulation(tmp_path, [run], TRUTH_MARCH))
    assert keys(report) == expected, report.summary()


def test_staff_listed_in_truth_are_not_checked_but_others_are(tmp_path):
    run = march_sim1()
    report = check_simulation(write_simulation(tmp_path, [run], []))  # C no longer excused
    assert {m.PERNR for m in report.mismatches} == {"00000003"}


def offcycle_march() -> dict:
    """An off-cycle run: only A, paid a salary advance. /101 = /550 = /560 = 1500.00."""
    run = march_sim1()
    run.update(run_id="GV-202503-OC01", run_type="OFFCYCLE",
               extracted_at="2025-03-15T06:00:00Z")
    run["files"]["RT"] = [
        rt("00000001", "202503", "202503", "2000", "1500.00", "USD"),
        rt("00000001", "202503", "202503", "/101", "1500.00", "USD"),
        rt("00000001", "202503", "202503", "/550", "1500.00", "USD"),
        rt("00000001", "202503", "202503", "/560", "1500.00", "USD"),
    ]
    return run


def test_offcycle_run(tmp_path):
    report = check_simulation(write_simulation(tmp_path / "ok", [offcycle_march()], []))
    assert report.ok, report.summary()
    run = offcycle_march()
    run["files"]["RT"].append(rt("00000001", "202503", "202503", "1000", "6666.67", "USD"))
    for total in ("/101", "/550", "/560"):
        set_betrg(run, "00000001", total, "8166.67")
    report = check_simulation(write_simulation(tmp_path / "bad", [run], []))
    assert keys(report) == [("00000001", "1000", "202503", "run_type")], report.summary()


# --------------------------------------------------------------------------------------
# Retroactive lines
# --------------------------------------------------------------------------------------


def february_final() -> dict:
    """GV-202502-FINAL (28 days): A as in March on P-3/01 (full month, f = 1, same amounts);
    E 00000005 G-4/03 whole month, paid 1000 = 6001.00 instead of 6000.00 (an injected error
    listed in truth.csv for this run), 3100 computed from it: −6001 × 0.04 = −240.04."""
    run = march_sim1()
    run.update(run_id="GV-202502-FINAL", period="202502", run_type="FINAL")
    files = run["files"]
    for table in ("PA0000", "PA0001", "PA0008", "PA0009", "PA0021"):
        files[table] = [r for r in files[table] if r["PERNR"] == "00000001"]
    files["PA0000"].append(row("PA0000", "00000005", "20200101", OPEN, "01", "", "3"))
    files["PA0001"].append(row("PA0001", "00000005", "20200101", OPEN, "Ana Silva", "GVA", "G",
                               "UNOG", "GV", "K500"))
    files["PA0008"].append(row("PA0008", "00000005", "20200101", OPEN, "G-4", "03", "100"))
    files["RT"] = [dict(r, FPPER="202502", INPER="202502") for r in files["RT"]
                   if r["PERNR"] == "00000001"] + [
        rt("00000005", "202502", "202502", "1000", "6001.00", "CHF"),
        rt("00000005", "202502", "202502", "3000", "-855.83", "CHF"),
        rt("00000005", "202502", "202502", "3100", "-240.04", "CHF"),
        rt("00000005", "202502", "202502", "/101", "6001.00", "CHF"),
        rt("00000005", "202502", "202502", "/550", "4905.13", "CHF"),
        rt("00000005", "202502", "202502", "/560", "4905.13", "CHF"),
    ]
    return run


def march_after_late_step() -> dict:
    """GV-202503-SIM1 after a step increment P-3/01 → P-3/02 effective 1 February was
    entered in March (late): A gets March on P-3/02 and retro lines for February.

    P-3/02 (82000 / 154000): 1000 = 6833.333… → 6833.33; 1010 = 6833.33 × 0.817 = 5582.830…
    → 5582.83; 1100 = 6833.33 × 0.06 = 409.9998 → 410.00; 1110 = 262.50;
    3000 = −154000/12 × 0.079 = −1013.833… → −1013.83;
    3100 = −(6833.33 + 5582.83) × 0.04 = −496.6464 → −496.65.
    Retro for 202502 = recomputed − paid in GV-202502-FINAL:
    1000 +166.66, 1010 +136.16, 1100 +10.00, 1110 0 (no line), 3000 −26.33, 3100 −12.12.
    /101 = 6833.33 + 5582.83 + 410.00 + 262.50 + 166.66 + 136.16 + 10.00 = 13401.48;
    /550 = /560 = 13401.48 − 1013.83 − 496.65 − 26.33 − 12.12 = 11852.55.
    E: 6000.00, −855.83, −240.00; /101 6000.00; /550 = /560 = 4904.17 (no late change, so
    the 1.00 overpaid in February is no retro matter).
    """
    feb = february_final()
    run = march_sim1()
    files = run["files"]
    for table in ("PA0000", "PA0001", "PA0008", "PA0009", "PA0021"):
        files[table] = [r for r in feb["files"][table]]
    files["PA0000"] = [r for r in files["PA0000"] if r["PERNR"] != "00000001"] + [
        row("PA0000", "00000001", "20200101", "20250131", "01", "", "3"),
        row("PA0000", "00000001", "20250201", OPEN, "03", "", "3"),
    ]
    files["PA0008"] = [r for r in files["PA0008"] if r["PERNR"] != "00000001"] + [
        row("PA0008", "00000001", "20200101", "20250131", "P-3", "01", "100"),
        row("PA0008", "00000001", "20250201", OPEN, "P-3", "02", "100"),
    ]
    a, e, usd, chf = "00000001", "00000005", "USD", "CHF"
    files["RT"] = [
        rt(a, "202503", "202503", "1000", "6833.33", usd),
        rt(a, "202503", "202503", "1010", "5582.83", usd),
        rt(a, "202503", "202503", "1100", "410.00", usd),
        rt(a, "202503", "202503", "1110", "262.50", usd),
        rt(a, "202503", "202503", "3000", "-1013.83", usd),
        rt(a, "202503", "202503", "3100", "-496.65", usd),
        rt(a, "202502", "202503", "1000", "166.66", usd),
        rt(a, "202502", "202503", "1010", "136.16", usd),
        rt(a, "202502", "202503", "1100", "10.00", usd),
        rt(a, "202502", "202503", "3000", "-26.33", usd),
        rt(a, "202502", "202503", "3100", "-12.12", usd),
        rt(a, "202503", "202503", "/101", "13401.48", usd),
        rt(a, "202503", "202503", "/550", "11852.55", usd),
        rt(a, "202503", "202503", "/560", "11852.55", usd),
        rt(e, "202503", "202503", "1000", "6000.00", chf),
        rt(e, "202503", "202503", "3000", "-855.83", chf),
        rt(e, "202503", "202503", "3100", "-240.00", chf),
        rt(e, "202503", "202503", "/101", "6000.00", chf),
        rt(e, "202503", "202503", "/550", "4904.17", chf),
        rt(e, "202503", "202503", "/560", "4904.17", chf),
    ]
    return run


TRUTH_RETRO = [("GV-202502-FINAL", "00000005", "scale_mismatch")]


def test_retro_lines_pass(tmp_path):
    out = write_simulation(tmp_path, [february_final(), march_after_late_step()], TRUTH_RETRO)
    report = check_simulation(out)
    assert report.ok, report.summary()
    assert report.retro_checked == {"1000": 1, "1010": 1, "1100": 1, "3000": 1, "3100": 1}
    assert sum(report.retro_unchecked.values()) == 0
    assert report.missing_retro_checked == 6  # A, month 202502, six wage types; E not probed


def test_wrong_retro_amount_is_one_mismatch(tmp_path):
    march = march_after_late_step()
    set_betrg(march, "00000001", "1010", "136.17", fpper="202502")
    for total, betrg in (("/101", "13401.49"), ("/550", "11852.56"), ("/560", "11852.56")):
        set_betrg(march, "00000001", total, betrg)
    report = check_simulation(write_simulation(tmp_path, [february_final(), march],
                                               TRUTH_RETRO))
    assert keys(report) == [("00000001", "1010", "202502", "retro_amount")], report.summary()
    assert (report.mismatches[0].written, report.mismatches[0].expected) == ("136.17",
                                                                             "136.16")


def test_missing_retro_line(tmp_path):
    march = march_after_late_step()
    drop_line(march, "00000001", "1100", "202502")
    for total, betrg in (("/101", "13391.48"), ("/550", "11842.55"), ("/560", "11842.55")):
        set_betrg(march, "00000001", total, betrg)
    report = check_simulation(write_simulation(tmp_path, [february_final(), march],
                                               TRUTH_RETRO))
    assert keys(report) == [("00000001", "1100", "202502", "missing_retro")], report.summary()
    assert report.mismatches[0].expected == "10.00"


def test_retro_without_its_final_is_unchecked(tmp_path):
    report = check_simulation(write_simulation(tmp_path, [march_after_late_step()], []))
    assert report.ok, report.summary()
    assert report.retro_unchecked == {"1000": 1, "1010": 1, "1100": 1, "3000": 1, "3100": 1}
    assert sum(report.retro_checked.values()) == 0


def test_forward_retro_check_checks_amounts_only(tmp_path):
    # E gets a "correction" of February's 1.00 overpayment though no master data changed:
    # recomputed − paid = 6000.00 − 6001.00 = −1.00, so the amount itself is right …
    march = march_after_late_step()
    march["files"]["RT"].append(rt("00000005", "202502", "202503", "1000", "-1.00", "CHF"))
    for total, betrg in (("/101", "5999.00"), ("/550", "4903.17"), ("/560", "4903.17")):
        set_betrg(march, "00000005", total, betrg)
    report = check_simulation(write_simulation(tmp_path, [february_final(), march],
                                               TRUTH_RETRO))
    # … and the forward check, which only checks amounts, accepts it.
    assert report.ok, report.summary()


def test_reverse_check_ignores_changes_that_do_not_alter_pay(tmp_path):
    # A late-entered cost-centre change for E effective 1 February: a new record, but no
    # pay input of February changes, so the 1.00 overpaid then is not a missing retro line.
    march = march_after_late_step()
    files = march["files"]
    old = next(r for r in files["PA0001"] if r["PERNR"] == "00000005")
    files["PA0001"].remove(old)
    files["PA0001"] += [dict(old, ENDDA="20250131"),
                        dict(old, BEGDA="20250201", KOSTL="K501")]
    report = check_simulation(write_simulation(tmp_path, [february_final(), march],
                                               TRUTH_RETRO))
    assert report.ok, report.summary()


def test_settled_change_is_not_reported_again(tmp_path):
    # March FINAL carried A's February retro; an April SIM1 must not repeat it.
    march = march_after_late_step()
    march.update(run_id="GV-202503-FINAL", run_type="FINAL")
    april = copy.deepcopy(march)
    april.update(run_id="GV-202504-SIM1", period="202504", run_type="SIM1")
    april["files"]["RT"] = [dict(r, FPPER="202504", INPER="202504")
                            for r in april["files"]["RT"] if r["FPPER"] == "202503"]
    # A's April: no retro lines, so /101 = 13088.66 and /550 = /560 = 11578.18
    for total, betrg in (("/101", "13088.66"), ("/550", "11578.18"), ("/560", "11578.18")):
        set_betrg(april, "00000001", total, betrg)
    report = check_simulation(write_simulation(
        tmp_path, [february_final(), march, april], TRUTH_RETRO))
    assert report.ok, report.summary()


# --------------------------------------------------------------------------------------
# The simulator's own sample
# --------------------------------------------------------------------------------------

DATA_SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"


def test_checker_on_simulated_sample():
    found = sorted(p.parent for p in DATA_SAMPLES.rglob("runs.txt"))
    assert found, "data_samples/ must hold a simulated sample (runs.txt)"
    for out_dir in found:
        started = time.perf_counter()
        report = check_simulation(out_dir)
        elapsed = time.perf_counter() - started
        print(f"{out_dir} ({elapsed:.1f} s)\n{report.summary()}")
        assert report.runs_checked > 0 and report.staff_checked > 0
        assert sum(report.lines_checked.values()) > 0
        assert report.mismatches == [], report.summary()


def test_checker_on_fresh_simulation_with_many_errors(tmp_path):
    """A fresh run of the simulator (other seed, high error rate, a January revision and
    late changes) is correct line by line for every clean staff member."""
    from paywatch.simulate import SimConfig, simulate_to_folder

    simulate_to_folder(SimConfig(staff=400, months=4, start="202511", seed=11, error_rate=0.1,
                                 late_change_rate=0.03), tmp_path)
    report = check_simulation(tmp_path)
    assert report.mismatches == [], report.summary()
    assert sum(report.retro_checked.values()) > 20  # retroactive lines really were exercised
    assert report.staff_skipped > 0



def test_a_stale_multiplier_is_one_that_differs(tmp_path):
    """A revision may keep a duty station's multiplier (GVA 81.7 -> 80.4 -> 80.4): the
    "stale" value the simulator injects is then the last one that differs, 81.7, never the
    current one again (an error that changes nothing would count as missed)."""
    from datetime import date
    from decimal import Decimal
    from types import SimpleNamespace

    import polars as pl

    from paywatch.simulate.errors import _previous_multiplier

    pa = pl.DataFrame({"duty_station": ["GVA"] * 3,
                       "valid_from": [date(2024, 1, 1), date(2025, 10, 1), date(2026, 4, 1)],
                       "multiplier_pct": [Decimal("81.7"), Decimal("80.4"), Decimal("80.4")]})
    ctx = SimpleNamespace(ref={"post_adjustment": pa}, plan=SimpleNamespace(period="202605"))
    row = {"duty_station": "GVA", "multiplier_num": 402, "multiplier_den": 5}  # 80.4
    assert _previous_multiplier(ctx, row) == F(817, 10)
    one = SimpleNamespace(ref={"post_adjustment": pa.head(1)}, plan=SimpleNamespace(period="202605"))
    assert _previous_multiplier(one, {"duty_station": "GVA", "multiplier_num": 817, "multiplier_den": 10}) == F(802, 10)
