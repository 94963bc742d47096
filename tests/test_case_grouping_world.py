"""One injected error, one case — on payroll Paywatch's simulator did not write.

Every fail case of the case files (tests/cases/PWnnn.toml) that makes exactly one change to
the hand-built world of tests/detector_world.py is one injected error. Run through ALL
detectors (not only the one the case file is for) and grouped with the shipped `[cases]`
rules, the staff member it touches must come out as one case whenever anything of severity
hold or review was raised: a payroll officer gets one thing to fix, not one per symptom.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import polars as pl
import pytest

from detectors.registry import detect
from paywatch.cases import rules_of
from paywatch.cases.group import group_cases
from paywatch.settings import load_settings

try:
    import detector_world as world
except ImportError:  # tests/ made a package later
    from tests import detector_world as world

CASES_DIR = Path(__file__).with_name("cases")
# keys of a case that describe it rather than change the world
NOT_CHANGES = {"name", "description", "staff", "expect", "params", "entered", "recompute", "retro"}


def _single_change_fail_cases():
    for path in sorted(CASES_DIR.glob("PW*.toml")):
        for case in tomllib.loads(path.read_text(encoding="utf-8"))["case"]:
            changes = sum(len(v) if isinstance(v, list) else 1 for k, v in case.items() if k not in NOT_CHANGES)
            if world.expected_pairs(case) and changes == 1:
                yield f"{path.stem}::{case['name']}", case


@pytest.fixture(scope="module")
def outcomes() -> list[tuple[str, str, int, list[str]]]:
    """(case id, staff, cases of that staff, their root causes) per touched staff member."""
    cfg = load_settings(None)
    rules = rules_of(cfg)
    rows = []
    for cid, case in _single_change_fail_cases():
        findings = detect(world.build(case).inp, cfg).filter(pl.col("severity").is_in(["hold", "review"]))
        with_ids, cases = group_cases(findings, rules, "GV", "202503")
        assert with_ids["case_id"].null_count() == 0, cid  # every finding links to a case
        for pernr in sorted({p for p, _ in world.expected_pairs(case)}):
            mine = cases.filter(pl.col("pernr") == pernr)
            rows.append((cid, pernr, mine.height, mine["root_cause"].to_list()))
    return rows


def test_enough_single_errors_to_measure(outcomes):
    assert len({cid for cid, *_ in outcomes}) >= 40


def test_one_error_gives_one_case_in_98_percent_of_caught_staff(outcomes):
    caught = [o for o in outcomes if o[2] > 0]
    split = [o for o in caught if o[2] > 1]
    assert len(caught) >= 40
    assert 1 - len(split) / len(caught) >= 0.98, split
