"""Paywatch on a payroll area written by another program (tests/foreign_writer.py).

    uv run --frozen python benchmarks/foreign_eval.py --staff 3000 --months 4 --seed 7
        [--out DIR] [--keep] [--details FILE.json]

Writes a foreign area (K FINAL months of history with off-cycle advance runs, then the test
month's SIM1, OC1, SIM2, OC2 and FINAL), checks the clean staff with the independent checker
(tests/independent_checker.py), then runs ``paywatch verify RUN --db W --out R`` as a black
box on every run in contract order into a fresh warehouse, reads each run's exceptions.csv
and prints, per error kind: injected, caught, recall (staff-run level: a finding of severity
hold or review on that staff member in that run; ``info`` rows are not alarms); overall staff
recall; false alarms per run (clean staff with a hold/review finding / clean staff, where the
clean staff of a run are those with lines in it, or active in its period for a regular run,
and with no injected error in any run of the period: a master-data error found again in an
off-cycle run is not a false alarm); hold precision (held staff-runs of staff with an
injected error in the period / held staff-runs). Staff an error involves without causing it
(the holder of an account another staff member's new record copies) count neither way.

Cases (docs/cli-contract.md `cases.csv`: one injected error gives one case), read from each
run's cases.csv beside its exceptions.csv: for every caught error staff-run, the cases its
hold/review findings belong to (one_case_share: the share with exactly one such case), and
the findings whose `case_id` is empty or not a row of that run's cases.csv. The last lines:

    foreign staff=N months=K seed=S recall=… hold_precision=… worst_run_false_alarm_rate=…%
    worst_kind=…:… targets=met|MISSED
    foreign cases one_case_share=… cases_per_error=… caught_error_staff_runs=N
    findings_without_case=N cases_target=met|MISSED

Targets: recall ≥ 0.99, every kind ≥ 0.95, hold precision ≥ 0.95, false alarms ≤ 0.3 % in
every run; one case per caught error in ≥ 98 % of the caught error staff-runs and no finding
without a case.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

import foreign_writer  # noqa: E402
from independent_checker import check_simulation  # noqa: E402

TARGETS = {"recall": 0.99, "kind": 0.95, "hold_precision": 0.95, "false_alarm": 0.003,
           "one_case": 0.98}
ALARM = ("hold", "review")


def paywatch_cmd() -> list[str]:
    exe = shutil.which("paywatch") or str(Path(sys.executable).parent / "paywatch")
    return [exe]


def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def clean_population(area: foreign_writer.ForeignArea, run) -> set[str]:
    """Staff of a run for the false-alarm denominator: with lines in it, or (regular run)
    active on at least one day of its period as the extract knows it."""
    out = set()
    for st in area.staff:
        if run.regular:
            if area.facts(st, run.period, run.seq) is not None:
                out.add(st.pernr)
    rt = read_csv(Path(area.out) / run.folder / "RT.csv")
    out |= {r["PERNR"] for r in rt}
    return out


def describe(area: foreign_writer.ForeignArea, pernr: str, run) -> str:
    """What the writer did to this staff member: category, entity, legitimate events of the
    test month, the injected error's data, and for overtime the hours against own history and
    the entity's claims in this run."""
    st = area.by_pernr.get(pernr)
    if st is None:
        return "unknown staff"
    bits = [f"{st.category} {st.orgeh}"]
    if st.orgeh == foreign_writer.PEAK_ENTITY_TEST and run.period == area.test:
        bits.append("peaking entity")
    if pernr in area.legit and run.period == area.test:
        bits.append("legit: " + ",".join(area.legit[pernr]))
    if pernr in area.errors and run.period == area.test:
        data = {k: (round(float(v), 2) if isinstance(v, (float, Fraction)) else v)
                for k, v in area.error_data.get(pernr, {}).items()}
        bits.append(f"error {area.errors[pernr]} {data}")
    hours = area.overtime.get((pernr, run.period))
    if hours is not None:
        own = [float(area.overtime[(pernr, p)]) for p in area.history
               if (pernr, p) in area.overtime and p < run.period]
        peers = sorted(float(h) for (p2, per), h in area.overtime.items()
                       if per == run.period and p2 != pernr
                       and area.by_pernr[p2].orgeh == st.orgeh)
        allh = [float(h) for (p2, per), h in area.overtime.items() if per == run.period]
        med = peers[len(peers) // 2] if peers else None
        bits.append(f"overtime {float(hours)} h; own FINAL history {own or 'none'}; "
                    f"{st.orgeh} claims this month n={len(peers)} median={med}; "
                    f"population max {max(allh)}")
    return "; ".join(bits)


def score_cases(area, findings: dict[str, list[dict]], cases: dict[str, list[dict]],
                truth: dict[str, dict[str, str]]) -> dict:
    """One case per injected error, read only from the CSVs: for each caught error staff-run
    (a hold or review finding), the distinct cases of those findings; and every finding's
    `case_id` must be a row of its run's cases.csv."""
    caught = one = n_cases = without = 0
    split = []
    for run in area.runs:
        known = {c["case_id"] for c in cases.get(run.run_id, [])}
        rows = findings.get(run.run_id, [])
        without += sum(1 for r in rows if not r.get("case_id") or r["case_id"] not in known)
        for pernr, kind in truth.get(run.run_id, {}).items():
            ids = {r.get("case_id") for r in rows
                   if r["PERNR"] == pernr and r["severity"] in ALARM}
            if not ids:
                continue
            caught += 1
            n_cases += len(ids)
            one += len(ids) == 1
            if len(ids) > 1:
                roots = {c["case_id"]: c["root_cause"] for c in cases.get(run.run_id, [])}
                split.append({"run": run.run_id, "PERNR": pernr, "kind": kind,
                              "cases": sorted(f"{i}:{roots.get(i, '?')}" for i in ids)})
    share = one / caught if caught else 1.0
    return {"caught": caught, "one_case_share": share,
            "cases_per_error": n_cases / caught if caught else 1.0,
            "findings_without_case": without, "split": split,
            "met": share >= TARGETS["one_case"] and without == 0}


def evaluate(staff: int, months: int, seed: int, out: Path | None = None, keep: bool = False,
             console: Console | None = None, check: bool = True,
             report: Console | None = None) -> dict:
    console = console or Console(stderr=True)
    tmp = None
    if out is None:
        tmp = tempfile.mkdtemp(prefix="foreign-")
        out = Path(tmp)
    out = Path(out)
    area_dir, db, reports = out / "area", out / "warehouse.duckdb", out / "reports"
    if db.exists():
        raise SystemExit(f"{db} exists: give a fresh --out")
    t0 = time.perf_counter()
    area = foreign_writer.write_area(area_dir, staff=staff, months=months, seed=seed)
    area.out = area_dir
    console.print(f"wrote {len(area.runs)} runs of {len(area.staff)} staff in "
                  f"{time.perf_counter() - t0:.1f} s into {area_dir}")
    result: dict = {"staff": staff, "months": months, "seed": seed, "runs": {}}
    if check:
        checked = check_simulation(area_dir)
        result["checker_mismatches"] = len(checked.mismatches)
        console.print(f"independent checker on clean staff: {len(checked.mismatches)} "
                      f"mismatches ({checked.staff_checked} clean staff-runs)")
        for m in checked.mismatches[:10]:
            console.print(f"  {m}")
    truth = defaultdict(dict)  # run_id -> PERNR -> kind
    for row in read_csv(area_dir / "truth.csv"):
        truth[row["run_id"]][row["PERNR"]] = row["error_type"]
    findings: dict[str, list[dict]] = {}
    cases: dict[str, list[dict]] = {}
    env = dict(os.environ)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("verify", total=len(area.runs))
        for run in area.runs:
            progress.update(task, description=f"verify {run.run_id}")
            t = time.perf_counter()
            proc = subprocess.run(
                paywatch_cmd() + ["verify", str(area_dir / run.folder), "--db", str(db),
                                  "--out", str(reports / run.run_id)],
                capture_output=True, text=True, env=env)
            took = time.perf_counter() - t
            rows = read_csv(reports / run.run_id / "exceptions.csv")
            findings[run.run_id] = rows
            cases[run.run_id] = read_csv(reports / run.run_id / "cases.csv")
            result["runs"][run.run_id] = {"exit": proc.returncode, "seconds": round(took, 1)}
            if proc.returncode not in (0,):
                console.print(f"[red]{run.run_id}: exit {proc.returncode}[/red] "
                              f"{(proc.stderr or proc.stdout).strip()[-400:]}")
            progress.advance(task)

    # ---- scoring ----
    kinds = Counter()
    caught = Counter()
    caught_hold = Counter()
    misses = []
    held = held_true = 0
    fa_rows = []
    false_alarms = []
    period_truth = defaultdict(set)  # period -> staff with an injected error in any of its runs
    for run in area.runs:
        period_truth[run.period] |= set(truth.get(run.run_id, {}))
        if run.period == area.test:
            period_truth[run.period] |= area.involved  # e.g. the holder of a shared account
    for run in area.runs:
        rows = findings[run.run_id]
        by_staff = defaultdict(list)
        for r in rows:
            by_staff[r["PERNR"]].append(r)
        alarmed = {p for p, rs in by_staff.items() if any(r["severity"] in ALARM for r in rs)}
        holds = {p for p, rs in by_staff.items() if any(r["severity"] == "hold" for r in rs)}
        t = truth.get(run.run_id, {})
        for pernr, kind in t.items():
            kinds[kind] += 1
            if pernr in alarmed:
                caught[kind] += 1
                if pernr in holds:
                    caught_hold[kind] += 1
            else:
                misses.append({"run": run.run_id, "PERNR": pernr, "kind": kind,
                               "info_rows": [f"{r['detector']}/{r['category']}"
                                             for r in by_staff.get(pernr, [])],
                               "data": describe(area, pernr, run)})
        erred = period_truth[run.period]  # an error of the period is not a false alarm
        held += len(holds)
        held_true += len(holds & erred)
        clean = clean_population(area, run) - erred
        flagged_clean = alarmed - erred
        denom = len(clean | flagged_clean)
        rate = len(flagged_clean) / denom if denom else 0.0
        fa_rows.append((run.run_id, len(flagged_clean), denom, rate))
        for p in sorted(flagged_clean):
            false_alarms.append({"run": run.run_id, "PERNR": p,
                                 "data": describe(area, p, run), "findings": [
                {k: r[k] for k in ("detector", "category", "severity", "LGART", "FPPER", "amount",
                                   "expected", "explanation")} for r in by_staff[p]]})
    case_score = score_cases(area, findings, cases, truth)
    total = sum(kinds.values())
    recall = sum(caught.values()) / total if total else 1.0
    hold_precision = held_true / held if held else 1.0
    worst_run = max(fa_rows, key=lambda r: r[3])
    per_kind = {k: caught[k] / kinds[k] for k in kinds}
    worst_kind = min(per_kind.items(), key=lambda kv: (kv[1], kv[0])) if per_kind else ("-", 1)
    met = (recall >= TARGETS["recall"] and all(v >= TARGETS["kind"] for v in per_kind.values())
           and hold_precision >= TARGETS["hold_precision"]
           and worst_run[3] <= TARGETS["false_alarm"]
           and all(r["exit"] == 0 for r in result["runs"].values()))

    out_console = report or Console()
    table = Table(title=f"foreign area: errors by kind (seed {seed})")
    for c in ("kind", "injected", "caught", "held", "recall"):
        table.add_column(c, justify="right" if c != "kind" else "left")
    for k in sorted(kinds):
        table.add_row(k, str(kinds[k]), str(caught[k]), str(caught_hold[k]),
                      f"{per_kind[k]:.3f}")
    out_console.print(table)
    table = Table(title="false alarms per run")
    for c in ("run", "exit", "s", "flagged clean", "clean staff", "rate"):
        table.add_column(c, justify="right" if c != "run" else "left")
    for rid, n, d, rate in fa_rows:
        table.add_row(rid, str(result["runs"][rid]["exit"]), str(result["runs"][rid]["seconds"]),
                      str(n), str(d), f"{rate * 100:.2f} %")
    out_console.print(table)
    legit = json.loads((area_dir / "events.json").read_text())["legitimate_events"]
    out_console.print("legitimate events of the test month: " + ", ".join(
        f"{k} {v}" for k, v in sorted(legit.items())))
    for m in misses:
        out_console.print(f"miss {m['run']} {m['PERNR']} {m['kind']} other rows: "
                          f"{m['info_rows'] or 'none'} | {m['data']}")
    for fa in false_alarms:
        f0 = fa["findings"][0]
        out_console.print(f"false alarm {fa['run']} {fa['PERNR']} "
                          + "; ".join(f"{f['detector']}/{f['category']}/{f['severity']} "
                                      f"{f['LGART']} {f['FPPER']} {f['amount']} vs {f['expected']}"
                                      for f in fa["findings"][:3])
                          + f" — {f0['explanation'][:160]} | {fa['data']}")
    result.update(recall=recall, hold_precision=hold_precision, per_kind=per_kind,
                  kinds=dict(kinds), caught=dict(caught), misses=misses,
                  false_alarms=false_alarms, false_alarm_runs=fa_rows,
                  worst_run_false_alarm_rate=worst_run[3], worst_run=worst_run[0],
                  worst_kind=worst_kind, targets_met=met)
    line = (f"foreign staff={staff} months={months} seed={seed} recall={recall:.4f} "
            f"hold_precision={hold_precision:.4f} "
            f"worst_run_false_alarm_rate={worst_run[3] * 100:.2f}% "
            f"worst_kind={worst_kind[0]}:{worst_kind[1]:.3f} "
            f"targets={'met' if met else 'MISSED'}")
    result["line"] = line
    result["cases"] = case_score
    result["cases_line"] = (
        f"foreign cases one_case_share={case_score['one_case_share']:.4f} "
        f"cases_per_error={case_score['cases_per_error']:.4f} "
        f"caught_error_staff_runs={case_score['caught']} "
        f"findings_without_case={case_score['findings_without_case']} "
        f"cases_target={'met' if case_score['met'] else 'MISSED'}")
    for m in case_score["split"]:
        out_console.print(f"more than one case {m['run']} {m['PERNR']} {m['kind']}: {m['cases']}")
    if tmp and not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    elif tmp:
        console.print(f"kept {out}")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--staff", type=int, default=3000)
    ap.add_argument("--months", type=int, default=4, help="FINAL months of history (≥ 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="keep everything in this folder")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--details", type=Path, default=None, help="write misses and false alarms "
                    "(JSON) here")
    ap.add_argument("--no-check", action="store_true", help="skip the independent checker")
    args = ap.parse_args(argv)
    res = evaluate(args.staff, args.months, args.seed, out=args.out, keep=args.keep,
                   check=not args.no_check)
    if args.details:
        args.details.write_text(json.dumps({k: v for k, v in res.items() if k != "line"},
                                           indent=1, default=str), encoding="utf-8")
    print(res["line"])
    print(res["cases_line"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
