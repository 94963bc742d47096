"""Measured detection quality against the simulator's ground truth (`paywatch evaluate`).

Per run: staff-level recall (error staff flagged hold or review), hold precision (held
staff who really have an error), false-alarm rate among clean staff, and recall per error
kind (a kind counts as caught only when a finding of the matching category is raised) —
once with every detector and once with the anomaly models switched off. And cases
(paywatch/cases): how many cases each caught error staff-run gives (`CaseScore`).
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from paywatch.cases import group_cases, rules_of
from paywatch.settings import load_settings
from detectors.registry import detect_with_artifacts
from paywatch.pipeline import detection_input, stage_triage, store_verification
from paywatch.simulate import RunOutput, SimConfig, Simulation
from paywatch.simulate.writer import write_run
from paywatch.extract.reader import read_run
from paywatch.warehouse.load import load_run
from paywatch.warehouse.resource import Warehouse

FLAGGED = ("hold", "review")


@dataclass
class RunScore:
    """Quality of one run's findings. Grain: one run x one detector set."""

    run_id: str
    run_type: str
    period: str
    staff: int
    error_staff: int
    caught_staff: int
    held_staff: int
    held_with_error: int
    false_alarms: int
    by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (present, caught)

    @property
    def clean_staff(self) -> int:
        return self.staff - self.error_staff


def score_run(run_id: str, run_type: str, period: str, staff: set[str], findings: pl.DataFrame,
              truth: list[tuple[str, str, str]]) -> RunScore:
    """Compare one run's findings with its injected errors (truth rows run_id, PERNR, kind)."""
    flagged = findings.filter(pl.col("severity").is_in(FLAGGED))
    flagged_staff = set(flagged["pernr"].to_list())
    held = set(findings.filter(pl.col("severity") == "hold")["pernr"].to_list())
    err_staff = {p for _, p, _ in truth}
    cats = {(p, c) for p, c in flagged.select("pernr", "category").iter_rows()}
    by_kind: dict[str, tuple[int, int]] = {}
    for _, p, kind in truth:
        n, c = by_kind.get(kind, (0, 0))
        by_kind[kind] = (n + 1, c + int((p, kind) in cats))
    return RunScore(run_id, run_type, period, len(staff | err_staff), len(err_staff), len(err_staff & flagged_staff),
                    len(held), len(held & err_staff), len(flagged_staff - err_staff), by_kind)


@dataclass
class Summary:
    recall: float
    hold_precision: float
    false_alarm_rate: float
    by_kind: dict[str, float]
    runs: list[RunScore]
    cases: CaseSummary | None = None  # grouping into cases (all detectors only)

    def false_alarm_rates(self) -> dict[str, float]:
        return {r.run_id: r.false_alarms / max(r.clean_staff, 1) for r in self.runs}


def summarise(scores: list[RunScore]) -> Summary:
    err = sum(s.error_staff for s in scores)
    caught = sum(s.caught_staff for s in scores)
    held = sum(s.held_staff for s in scores)
    held_ok = sum(s.held_with_error for s in scores)
    fa = sum(s.false_alarms for s in scores)
    clean = sum(s.clean_staff for s in scores)
    kinds: dict[str, list[int]] = {}
    for s in scores:
        for k, (n, c) in s.by_kind.items():
            kinds.setdefault(k, [0, 0])
            kinds[k][0] += n
            kinds[k][1] += c
    return Summary(caught / err if err else 1.0, held_ok / held if held else 1.0, fa / clean if clean else 0.0,
                   {k: c / n for k, (n, c) in sorted(kinds.items())}, scores)


def month_noise(summary: Summary, special_periods: list[str]) -> dict[str, tuple[float, float, bool]]:
    """False-alarm rate of each special month against the others' mean + 2 sd.
    Returns {period: (rate, limit, within)}; regular runs only."""
    per_period: dict[str, list[float]] = {}
    for r in summary.runs:
        if r.run_type != "OFFCYCLE":
            per_period.setdefault(r.period, []).append(r.false_alarms / max(r.clean_staff, 1))
    rates = {p: sum(v) / len(v) for p, v in per_period.items()}
    out = {}
    for p in special_periods:
        others = [v for q, v in rates.items() if q not in special_periods]
        if p not in rates or len(others) < 2:
            continue
        limit = statistics.mean(others) + 2 * statistics.stdev(others)
        out[p] = (rates[p], limit, rates[p] <= limit + 1e-12)
    return out


def evaluate(cfg: SimConfig, work: Path | None = None,
             on_run: Callable[[RunOutput, RunScore, RunScore], None] | None = None) -> tuple[Summary, Summary]:
    """Simulate with ground truth, verify run by run, score with and without models."""
    det_cfg = load_settings(None)
    tmp = tempfile.TemporaryDirectory() if work is None else None
    root = Path(tmp.name) if tmp else work
    wh = Warehouse.in_folder(root / "wh")
    all_scores, rule_scores = [], []
    case_rules, case_scores = rules_of(det_cfg), []  # cases: the configured grouping rules
    try:
        with wh.writer() as con:
            sim = Simulation(cfg)
            for out in sim.iter_runs():
                folder = write_run(out, root / "runs")
                loaded = load_run(con, read_run(folder), archive_dir=wh.paths.archive)
                inp = detection_input(con, loaded.run_id)
                full, _ = detect_with_artifacts(inp, det_cfg)
                rules, _ = detect_with_artifacts(inp, det_cfg, models=False)
                findings = stage_triage(con, inp, full, loaded.run_version, "evaluate")
                findings, cases = group_cases(findings, case_rules, inp.meta.payroll_area, inp.meta.period)
                case_scores.append(score_cases(out.plan.run_id, findings, cases, out.truth))
                store_verification(con, loaded.run_id, loaded.run_version, det_cfg, "evaluate", findings, [],
                                   "verified")
                staff = set(out.frames["pay_lines"]["pernr"].unique().to_list())
                plan = out.plan
                s_all = score_run(plan.run_id, plan.run_type, plan.period, staff, full, out.truth)
                s_rules = score_run(plan.run_id, plan.run_type, plan.period, staff, rules, out.truth)
                all_scores.append(s_all)
                rule_scores.append(s_rules)
                if on_run:
                    on_run(out, s_all, s_rules)
    finally:
        if tmp:
            tmp.cleanup()
    full_summary = summarise(all_scores)
    full_summary.cases = summarise_cases(case_scores)
    return full_summary, summarise(rule_scores)


# ------------------------------------------------------------------------------ cases

@dataclass
class CaseScore:
    """Cases of one run's caught error staff (docs/cli-contract.md `cases.csv`: one injected
    error gives one case). Grain: one run. A staff member's error is caught when they have a
    hold or review finding; their cases are the cases holding such a finding (an info-only
    case is a notice, not something to fix: it does not count)."""

    run_id: str
    caught: int = 0            # error staff-runs with a hold or review finding
    errors: int = 0            # injected errors of those staff-runs
    cases: int = 0             # their hold or review cases
    one_case: int = 0          # staff-runs with as many such cases as injected errors
    all_cases_one: int = 0     # the same, counting info-only cases too
    root_match: int = 0        # staff-runs whose case roots name each injected error kind
    findings: int = 0
    findings_without_case: int = 0


def score_cases(run_id: str, findings: pl.DataFrame, cases: pl.DataFrame,
                truth: list[tuple[str, str, str]]) -> CaseScore:
    """One run's case measure: `findings` with `case_id` and their `cases` (paywatch.cases.
    group_cases) against its injected errors."""
    s = CaseScore(run_id, findings=findings.height,
                  findings_without_case=findings.filter(pl.col("case_id").is_null()).height)
    kinds: dict[str, list[str]] = {}
    for _, p, kind in truth:
        kinds.setdefault(p, []).append(kind)
    for pernr, ks in kinds.items():
        mine = findings.filter(pl.col("pernr") == pernr)
        flagged = mine.filter(pl.col("severity").is_in(FLAGGED))
        if flagged.height == 0:
            continue
        n = flagged["case_id"].n_unique()
        roots = set(cases.filter(pl.col("case_id").is_in(flagged["case_id"].implode()))["root_cause"].to_list())
        s.caught += 1
        s.errors += len(ks)
        s.cases += n
        s.one_case += int(n == len(ks))
        s.all_cases_one += int(mine["case_id"].n_unique() == len(ks))
        s.root_match += int(set(ks) <= roots)
    return s


@dataclass
class CaseSummary:
    caught: int
    cases_per_error: float
    one_case_share: float
    one_case_share_all: float
    root_match_share: float
    findings_without_case: int

    def line(self) -> str:
        """The line `paywatch evaluate` prints."""
        return (f"cases_per_error={self.cases_per_error:.4f} one_case_share={self.one_case_share:.4f} "
                f"one_case_share_with_info={self.one_case_share_all:.4f} root_cause_match={self.root_match_share:.4f} "
                f"caught_error_staff_runs={self.caught} findings_without_case={self.findings_without_case}")


def summarise_cases(scores: list[CaseScore]) -> CaseSummary:
    caught = sum(s.caught for s in scores)
    errors = sum(s.errors for s in scores)
    return CaseSummary(caught, sum(s.cases for s in scores) / errors if errors else 1.0,
                       sum(s.one_case for s in scores) / caught if caught else 1.0,
                       sum(s.all_cases_one for s in scores) / caught if caught else 1.0,
                       sum(s.root_match for s in scores) / caught if caught else 1.0,
                       sum(s.findings_without_case for s in scores))
