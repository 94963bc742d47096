"""Every detector against its case file (tests/cases/PWnnn.toml), sqlfluff style.

Each case builds the consistent world of tests/detector_world.py, applies its modifications,
runs only that detector with the shipped configuration and compares the (PERNR, category)
pairs it raises with the case's `expect`. Every finding must also be well formed: a
one-sentence explanation with the numbers, a known severity and owner, a score in 0..1.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from detectors.base import SEVERITIES
from detectors.registry import load_config
from detectors.registry import ALL_DETECTORS, detect

try:
    import detector_world as world
except ImportError:  # tests/ made a package later
    from tests import detector_world as world

CASES_DIR = Path(__file__).with_name("cases")
DETECTORS = {d.code: d for d in ALL_DETECTORS}
# categories a case file cannot reach in this world (declared, but no case raises them)
UNREACHABLE: dict[str, set[str]] = {}
# Detector bugs these cases expose (reported, not fixed here). Strict: once a bug is fixed
# the case passes, XPASS fails the run, and its entry must go.
_IN_PLACE = ("history._effective_changes pairs every added/removed record with the same start as a re-delimit, "
             "so an in-place correction takes effect after the record's end (year 10000 crash when open-ended)")
KNOWN_BUGS: dict[str, str] = {}
# Cases whose findings' explanations have two sentences (checked apart from the categories).
_TWO_SENTENCES = ("PW101 _finding (detectors/rules/pw101_paymodel.py) appends a second sentence for "
                  "pay_after_separation, paid_during_slwop, part_time_ignored and child_over_age_limit; "
                  "docs/cli-contract.md asks for one sentence")
KNOWN_TWO_SENTENCES: set[str] = set()


def _load(path: Path) -> dict:
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    assert doc.get("detector") == path.stem, f"{path.name}: detector = {doc.get('detector')!r}"
    return doc


def _cases(known: dict | set = KNOWN_BUGS, reason: str | None = None):
    for path in sorted(CASES_DIR.glob("PW*.toml")):
        for case in _load(path)["case"]:
            cid = f"{path.stem}::{case['name']}"
            why = reason or (known.get(cid) if isinstance(known, dict) else None)
            marks = [pytest.mark.xfail(strict=True, reason=why)] if cid in known else []
            yield pytest.param(path.stem, case, id=cid, marks=marks)


_FINDINGS: dict[str, object] = {}


def _run(code: str, case: dict):
    """The detector's findings for a case (computed once per case and session)."""
    cid = f"{code}::{case['name']}"
    if cid not in _FINDINGS:
        cfg = load_config()
        cfg.setdefault(code, {}).update(case.get("params", {}))
        _FINDINGS[cid] = detect(world.build(case).inp, cfg, only={code})
    return _FINDINGS[cid]


# A second sentence: end mark, space, then a capital or a digit ("… days. The run …").
_SECOND_SENTENCE = re.compile(r"[.!?]\s+[A-Z0-9]")


def assert_well_formed(findings, code: str) -> None:
    declared = set(DETECTORS[code].categories)
    for r in findings.iter_rows(named=True):
        where = f"{r['pernr']} {r['category']} {r['wage_type']}"
        assert r["detector"] == code, where
        assert r["category"] in declared, f"{where}: category not declared by {code}"
        assert r["severity"] in SEVERITIES, where
        assert r["owner"] in ("HR", "FINANCE"), where
        assert r["score"] is not None and 0.0 <= r["score"] <= 1.0, where
        text = (r["explanation"] or "").strip()
        assert text, f"{where}: empty explanation"
        assert re.search(r"\d", text), f"{where}: explanation without a number: {text}"
        assert text.endswith("."), f"{where}: explanation is not a sentence: {text}"


@pytest.mark.parametrize("code, case", list(_cases()))
def test_case(code: str, case: dict) -> None:
    assert case.get("description"), "every case says what it is about"
    findings = _run(code, case)
    got = set(findings.select("pernr", "category").iter_rows())
    assert got == world.expected_pairs(case), findings.select("pernr", "category", "wage_type", "explanation").rows()
    assert_well_formed(findings, code)


@pytest.mark.parametrize("code, case", [p for p in _cases(KNOWN_TWO_SENTENCES, _TWO_SENTENCES)
                                        if p.id not in KNOWN_BUGS])  # those fail in test_case already
def test_explanations_are_one_sentence(code: str, case: dict) -> None:
    for r in _run(code, case).iter_rows(named=True):
        text = r["explanation"].strip()
        assert not _SECOND_SENTENCE.search(text[:-1]), f"{r['pernr']} {r['category']}: more than one sentence: {text}"


def test_known_bugs_name_existing_cases() -> None:
    ids = {p.id for p in _cases()}
    assert set(KNOWN_BUGS) | KNOWN_TWO_SENTENCES <= ids  # markers name real cases


def test_every_detector_has_a_case_file() -> None:
    files = {p.stem for p in CASES_DIR.glob("PW*.toml")}
    assert files == set(DETECTORS)


@pytest.mark.parametrize("code", sorted(DETECTORS))
def test_case_file_covers_pass_and_every_category(code: str) -> None:
    cases = _load(CASES_DIR / f"{code}.toml")["case"]
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "case names are unique"
    passes = [c for c in cases if not c.get("expect")]
    assert any(c["name"] == "clean_world" and len(c) <= 3 for c in passes), "the clean world is a pass case"
    assert len(passes) >= 2, "at least one legitimate-but-unusual pass case besides the clean world"
    raised = {category for c in cases for _, category in world.expected_pairs(c)}
    missing = set(DETECTORS[code].categories) - raised - UNREACHABLE.get(code, set())
    assert not missing, f"no fail case for {sorted(missing)}"


def test_clean_world_has_no_findings_from_any_detector() -> None:
    findings = detect(world.build().inp, load_config())
    assert findings.filter(findings["severity"].is_in(["hold", "review"])).height == 0, findings.rows()
