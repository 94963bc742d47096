"""Scale benchmark: how each stage's cost grows with the payroll (prints numbers, draws a chart).

For each size: simulate a payroll area (two FINAL months of history, then the SIM1 of the
third month), load the history, then time on that SIM1: read, load, prepare, validate,
detect, report, and the whole `paywatch verify` as a fresh process; peak memory (RSS); and the
floor — DuckDB alone scanning the run's pay lines, grouping them per staff member and
joining the master data valid on the reference day. Every stage is also printed as a
ratio to the floor.

    uv run python benchmarks/bench_scale.py                   # 1,000 to 160,000 staff (~12 min)
    uv run python benchmarks/bench_scale.py --sizes 10000      # the quick look (~1.5 min)
Output: tables on stdout (stages; detection by detector), benchmarks/results/scale.csv and scale.png
(log-log), and last one line: detect_floor_ratio_max=X warm_verify_10k_s=Y cold_verify_10k_s=Z
(X: the largest detect/floor among sizes of 10,000 staff or more; detect = with the month's
models cached, as SIM2, SIM3 and FINAL meet it; detect_fit = the month's first run, fitting;
Y: SIM2 verified in a process that has just verified SIM1, as the warm worker meets the month's
next run; warm_rerun: SIM1 verified again in that process, which flatters: nothing changed).
Detection and the floor are each the best of 2N-1 timings, the cold and the warm verify the
median of N (`--repeat N`, default 3): on a shared machine one timing moves by a third.
`--interleave K` also times detection and the floor K times turn about and prints, per size,
detect/floor best to best and median to median (the floor, a 25 ms query, moves more than
detection does: its best of many sits lower than its best of five).
The load average at the start and end is printed too: the machine may be shared; so are the
CPU seconds (user + system, all threads) of the cold and the warm verify, which move much
less with the load than their wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ("simulate_s", "read_s", "load_s", "prepare_s", "validate_s", "detect_fit_s", "detect_s", "report_s",
          "verify_wall_s", "warm_verify_s", "warm_rerun_s", "floor_s")


def measure_one(staff: int, work: Path, repeat: int = 3, interleave: int = 0) -> dict:
    """All measurements for one size, in this process (run as a child: its RSS is its own).
    Detection (models cached) and the floor are each the best of `2 * repeat - 1` timings, the
    cold and the warm verify the median of `repeat`: on a shared machine one timing moves by
    a third from run to run, and a ratio of two single timings by more."""
    from detectors.config import config_version
    from detectors.models.cache import MemoryCache
    from paywatch.settings import load_settings
    from paywatch import pipeline
    from paywatch.warehouse.resource import Warehouse

    out: dict = {"staff": staff}
    out["simulate_s"], _, out["simulate_peak_rss_mb"] = _timed_child(
        ["-m", "paywatch.cli", "simulate", "--out", str(work / "sim"), "--staff", str(staff), "--months", "3",
         "--start", "202601", "--seed", "3"])
    runs = (work / "sim" / "runs.txt").read_text(encoding="utf-8").split()
    target = next(r for r in runs if r.endswith("202603-SIM1"))
    history = [r for r in runs[: runs.index(target)] if r.endswith("FINAL") or r.endswith("OC1")]
    wh = Warehouse.in_folder(work / "wh")
    db = wh.db
    for r in history:
        res = pipeline.verify_run(work / "sim" / r, db=db, out=work / "rep" / r)
        assert res.exit_code == 0, res.message
    shutil.copy(db, work / "before.duckdb")
    cfg = load_settings(None)
    with wh.writer() as con:
        t = time.perf_counter()
        ex = pipeline.stage_read(work / "sim" / target)
        out["read_s"] = time.perf_counter() - t
        out["rt_rows"] = ex.frames["RT.csv"].height
        t = time.perf_counter()
        loaded = pipeline.stage_load(con, ex, wh.paths)
        out["load_s"] = time.perf_counter() - t
        out["load_rows_per_s"] = sum(f.height for f in ex.frames.values()) / out["load_s"]
        # prepare (the run as detectors see it) and validate are separate stages of a verify
        # (PREPARE, VALIDATE): timed apart, so validate is the data-quality suites alone
        t = time.perf_counter()
        inp = pipeline.detection_input(con, loaded.run_id)
        out["prepare_s"] = time.perf_counter() - t
        t = time.perf_counter()
        checks = pipeline.stage_validate(con, inp, cfg)
        out["validate_s"] = time.perf_counter() - t
        # detection as the month's first run meets it (the models fitted on its training
        # FINALs), then as SIM2, SIM3 and FINAL meet it (the same training set: cached models)
        t = time.perf_counter()
        findings = pipeline.stage_detect(replace(inp, models=MemoryCache()), cfg)
        out["detect_fit_s"] = time.perf_counter() - t
        pipeline.stage_detect(inp, cfg)  # fills the warehouse's model cache
        out["detect_s"], cached = _best(2 * repeat - 1, lambda: pipeline.stage_detect(inp, cfg))
        # the same rows (detection's sort leaves ties of one staff member, detector and wage
        # type in no particular order; exceptions.csv orders them fully)
        assert cached.sort(cached.columns, nulls_last=True).equals(findings.sort(findings.columns, nulls_last=True)), \
            "findings differ with the model cache"
        t = time.perf_counter()
        triaged = pipeline.stage_triage(con, inp, findings, loaded.run_version, config_version(cfg))
        pipeline.stage_write_reports(work / "rep" / target, inp, triaged, checks, loaded.outcome, False)
        out["report_s"] = time.perf_counter() - t
        out["findings"] = findings.height
        out |= _per_detector(inp, cfg)
        # the floor: DuckDB alone on the same lines and master data. The query is the
        # benchmark's own yardstick, not something Paywatch runs, so it stays here. It scans
        # the staged lines, as it did when mart_pay_lines was their copy (now a view joining
        # wage classes to them): the yardstick did not move.
        floor = lambda: con.execute(  # noqa: E731
            """SELECT p.pernr, count(*) AS n, sum(p.amount_cents) AS total, any_value(b.grade), any_value(a.staff_category)
               FROM stg_pay_lines p
               LEFT JOIN (SELECT s.* FROM stg_basic_pay s JOIN stg_record_runs l ON l.record_key = s.record_key
                          AND l.table_name = 'stg_basic_pay' AND l.run_id = ?) b
                 ON b.pernr = p.pernr AND DATE '2026-03-01' BETWEEN b.valid_from AND b.valid_to
               LEFT JOIN (SELECT s.* FROM stg_assignments s JOIN stg_record_runs l ON l.record_key = s.record_key
                          AND l.table_name = 'stg_assignments' AND l.run_id = ?) a
                 ON a.pernr = p.pernr AND DATE '2026-03-01' BETWEEN a.valid_from AND a.valid_to
               WHERE p.run_id = ? GROUP BY p.pernr""",
            [target, target, target],
        ).fetchall()
        out["floor_s"], _ = _best(2 * repeat - 1, floor)
        if interleave:
            # detection and the floor taken turn about, so that both meet the same state of the
            # machine; the best of many turns is what each costs, the medians what a run meets
            fl, de = [], []
            for _ in range(interleave):
                fl.append(_best(1, floor)[0])
                de.append(_best(1, lambda: pipeline.stage_detect(inp, cfg))[0])
            out["interleaved_floor_best_s"], out["interleaved_detect_best_s"] = min(fl), min(de)
            (out["interleaved_floor_median_s"],), (out["interleaved_detect_median_s"],) = (
                _median([(t,) for t in fl]), _median([(t,) for t in de]))
    # the whole verify as a user runs it, on the warehouse as it was before this run, in a
    # fresh process with no fitted model on disk (a month's first run): the cold verify
    cold = []
    for _ in range(repeat):
        shutil.copy(work / "before.duckdb", db)
        shutil.rmtree(work / "wh" / "models", ignore_errors=True)
        wall, out["verify_exit"], rss = _timed_child(
            ["-m", "paywatch.cli", "verify", str(work / "sim" / target), "--db", str(db), "--out", str(work / "rep2")])
        cold.append((wall, _LAST_CPU[0], rss))
    out["verify_wall_s"], out["verify_cpu_s"], _ = _median(cold)
    out["verify_wall_min_s"] = min(c[0] for c in cold)
    out["verify_peak_rss_mb"] = max(c[2] for c in cold)
    # the warm verify, as a long-lived worker meets the month's next run: SIM2, in this process,
    # prepared as the warm worker prepares itself (flows.warm.preload: imports done, the GX
    # context open), which has just verified SIM1 (the models of the month kept; only what
    # SIM2 delivers unchanged — T510, T512W, T7UNRATE — reuses SIM1's GX results)
    from flows.warm import preload

    preload(db)
    following = runs[runs.index(target) + 1]
    rerun, warm = [], []
    # first SIM1 again, right after SIM1 (every suite's frame unchanged: all reuse their results)
    for _ in range(repeat):
        shutil.copy(work / "before.duckdb", db)
        t, cpu = time.perf_counter(), _cpu()
        res = pipeline.verify_run(work / "sim" / target, db=db, out=work / "rep3")
        rerun.append((time.perf_counter() - t, _cpu() - cpu))
        assert res.exit_code == 0, res.message
    assert (work / "rep3" / "exceptions.csv").read_bytes() == (work / "rep2" / "exceptions.csv").read_bytes(), \
        "a warm verify found other findings than a cold one"
    for _ in range(repeat):
        shutil.copy(work / "before.duckdb", db)
        assert pipeline.verify_run(work / "sim" / target, db=db, out=work / "rep3").exit_code == 0
        t, cpu = time.perf_counter(), _cpu()
        res = pipeline.verify_run(work / "sim" / following, db=db, out=work / "rep4")
        warm.append((time.perf_counter() - t, _cpu() - cpu))
        assert res.exit_code == 0, res.message
    out["warm_verify_s"], out["warm_verify_cpu_s"] = _median(warm)
    out["warm_rerun_s"], _ = _median(rerun)
    # and the next run's findings as a fresh process finds them (after SIM1, models fitted)
    shutil.copy(work / "before.duckdb", db)
    assert pipeline.verify_run(work / "sim" / target, db=db, out=work / "rep3").exit_code == 0
    _timed_child(["-m", "paywatch.cli", "verify", str(work / "sim" / following), "--db", str(db),
                  "--out", str(work / "rep5")])
    assert (work / "rep4" / "exceptions.csv").read_bytes() == (work / "rep5" / "exceptions.csv").read_bytes(), \
        f"a warm verify of {following} found other findings than a fresh process"
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _best(n: int, call) -> tuple[float, object]:
    """(the shortest of `n` timings of `call()`, its last result): what the code costs, the
    others being what the machine's other work added (as timeit reads its repeats)."""
    times, result = [], None
    for _ in range(max(1, n)):
        t = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t)
    return min(times), result


def _median(timings: list[tuple]) -> tuple:
    """The timing (a tuple, first its wall seconds) in the middle by wall time (the upper one
    of an even count): what a user meets, neither the luckiest nor the unluckiest."""
    return sorted(timings)[len(timings) // 2]


# Linux keeps a forked child's peak RSS from before exec, so a child of this (big) process
# would report our peak: a small wrapper process starts the command and reports its own child.
_WRAPPER = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); w = time.perf_counter() - t; "
            "sys.stderr.write(r.stderr[-2000:]); u = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(w, r.returncode, u.ru_maxrss / 1024, u.ru_utime + u.ru_stime)")
_LAST_CPU: list[float] = []  # CPU seconds (user + system, all threads) of the last _timed_child


def _timed_child(args: list[str]) -> tuple[float, int, float]:
    """(wall seconds, exit code, peak RSS MB) of `python args` run as a fresh process; its CPU
    seconds in _LAST_CPU (on a shared machine wall time moves with the load, CPU time much less)."""
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, sys.executable, *args], capture_output=True, text=True,
                          check=True)
    wall, code, rss, cpu = proc.stdout.split()
    if int(code):
        sys.exit(f"{' '.join(args)} failed ({code}): {proc.stderr}")
    _LAST_CPU[:] = [float(cpu)]
    return float(wall), int(code), float(rss)


def _cpu() -> float:
    """CPU seconds of this process so far (user + system, all threads)."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _per_detector(inp, cfg: dict) -> dict:
    """Seconds of each detector on the prepared run (where detection time goes)."""
    from detectors.context import prepare
    from detectors.registry import ALL_DETECTORS

    t = time.perf_counter()
    ctx = prepare(inp)
    out = {"det_prepare_s": time.perf_counter() - t}
    for d in ALL_DETECTORS:
        t = time.perf_counter()
        d.run(ctx, cfg.get(d.code, {}))
        out[f"det_{d.code}_s"] = time.perf_counter() - t
    return out


def slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-6)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,40000,160000")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=3,
                    help="cold and warm verify: median of this many; detection and the floor: best of 2N-1 (default 3)")
    ap.add_argument("--interleave", type=int, default=0,
                    help="also time detection and the floor this many times turn about (best and median of each)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder for scale.csv and scale.png")
    ap.add_argument("--max-rss-gb", type=float, default=8.0,
                    help="stop a size whose processes hold more than this resident (0: no limit; target 4 GB)")
    args = ap.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as d:
            print(json.dumps(measure_one(args.one, Path(d), args.repeat, args.interleave)))
        return
    from rich.console import Console
    from rich.progress import Progress

    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = os.getloadavg()
    rows, failed = [], None
    with Progress(console=Console(stderr=True)) as progress:
        task = progress.add_task("benchmark", total=len(sizes))
        for n in sizes:
            progress.update(task, description=f"{n:,} staff")
            code, stdout, stderr = _run_guarded([sys.executable, __file__, "--one", str(n), "--repeat", str(args.repeat),
                                                 "--interleave", str(args.interleave)],
                                                args.max_rss_gb,
                                                env=os.environ | {"PYTHONWARNINGS": "ignore"})
            if code:
                failed = f"{n:,} staff: {stderr[-3000:]}"
                break
            rows.append(json.loads(stdout.strip().splitlines()[-1]))
            progress.advance(task)
    if rows:  # what was measured is reported, also when a larger size failed
        _report(rows, args.out)
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}".format(
        *load_before, *os.getloadavg()))
    print(summary_line(rows))
    if failed:
        sys.exit(failed)


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, MB (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = {pid}, [pid]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p and child not in tree:
                tree.add(child)
                todo.append(child)
    total = 0
    for p in tree:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _run_guarded(cmd: list[str], max_rss_gb: float, env: dict) -> tuple[int, str, str]:
    """Run `cmd`; stop it (and say so) when it and its children hold more than `max_rss_gb`
    resident: on a shared machine a size that outgrows its memory budget must not take the
    others' memory with it."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, start_new_session=True)
        peak, stopped = 0.0, False
        while proc.poll() is None:
            if Path("/proc").is_dir():
                peak = max(peak, _tree_rss_mb(proc.pid))
                if max_rss_gb and peak > max_rss_gb * 1024:
                    os.killpg(proc.pid, 9)  # its own session: the child and its children only
                    proc.wait()
                    stopped = True
                    break
            time.sleep(0.5)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if stopped:
        return 1, stdout, f"stopped: the benchmark process and its children held {peak / 1024:.1f} GB " \
                          f"(--max-rss-gb {max_rss_gb:g})\n{stderr[-2000:]}"
    return proc.returncode, stdout, stderr


def _report(rows: list[dict], results: Path) -> None:
    """The tables, slopes, scale.csv and scale.png of the sizes measured."""
    from rich.console import Console
    from rich.table import Table

    results.mkdir(parents=True, exist_ok=True)
    with open(results / "scale.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    table = Table("staff", "RT rows", *[s.removesuffix("_s") for s in STAGES], "verify CPU", "warm CPU",
                  "detect/floor", "verify/floor", "load rows/s", "verify RSS MB", "stages RSS MB", "simulate RSS MB",
                  title=f"Paywatch scale benchmark, seconds ({os.cpu_count()} cores)")
    for r in rows:
        table.add_row(f"{r['staff']:,}", f"{r['rt_rows']:,}", *[f"{r[s]:.2f}" for s in STAGES],
                      f"{r['verify_cpu_s']:.2f}", f"{r['warm_verify_cpu_s']:.2f}",
                      f"{r['detect_s'] / r['floor_s']:.1f}x", f"{r['verify_wall_s'] / r['floor_s']:.0f}x",
                      f"{r['load_rows_per_s']:,.0f}", f"{r['verify_peak_rss_mb']:,.0f}", f"{r['peak_rss_mb']:,.0f}",
                      f"{r['simulate_peak_rss_mb']:,.0f}")
    console = Console(width=260)
    console.print(table)
    per_det = [k for k in rows[0] if k.startswith("det_")]
    det = Table("staff", *[k.removeprefix("det_").removesuffix("_s") for k in per_det],
                title="Detection by detector, seconds")
    for r in rows:
        det.add_row(f"{r['staff']:,}", *[f"{r[k]:.2f}" for k in per_det])
    console.print(det)
    for r in rows:
        if "interleaved_detect_best_s" in r:
            print(f"{r['staff']:,} staff, detection and the floor timed turn about: detect/floor "
                  f"{r['interleaved_detect_best_s'] / r['interleaved_floor_best_s']:.2f}x best to best "
                  f"({r['interleaved_detect_best_s']:.3f} / {r['interleaved_floor_best_s']:.4f} s), "
                  f"{r['interleaved_detect_median_s'] / r['interleaved_floor_median_s']:.2f}x median to median "
                  f"({r['interleaved_detect_median_s']:.3f} / {r['interleaved_floor_median_s']:.4f} s)")
    big = [r for r in rows if r["staff"] >= 10_000]
    if len(big) >= 2:
        for s in STAGES:
            print(f"log-log slope {s} (>=10k staff): {slope([r['staff'] for r in big], [r[s] for r in big]):.2f}")
    _chart(rows, results / "scale.png")
    print(f"wrote {results / 'scale.csv'} and {results / 'scale.png'}")


def summary_line(rows: list[dict]) -> str:
    """The one line issue #17 asks for: the largest detect/floor ratio among the sizes of
    10,000 staff or more (detection with the month's models cached), and the warm and cold
    verify of 10,000 staff (nan when a size was not run)."""
    big = [r["detect_s"] / r["floor_s"] for r in rows if r["staff"] >= 10_000]
    at10k = next((r for r in rows if r["staff"] == 10_000), None)
    ratio = f"{max(big):.1f}" if big else "nan"
    warm = f"{at10k['warm_verify_s']:.2f}" if at10k else "nan"
    cold = f"{at10k['verify_wall_s']:.2f}" if at10k else "nan"
    return f"detect_floor_ratio_max={ratio} warm_verify_10k_s={warm} cold_verify_10k_s={cold}"


def _chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    xs = [r["staff"] for r in rows]
    for s in STAGES:
        ax.plot(xs, [r[s] for r in rows], marker="o", label=s.removesuffix("_s"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("staff in the payroll area")
    ax.set_ylabel("seconds")
    ax.set_title("Paywatch: time per stage vs payroll size")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
