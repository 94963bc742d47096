"""`paywatch` — the command line payroll staff, schedulers and other programs use.

Commands keep the contract of docs/cli-contract.md (verify, simulate); others are added freely.
"""

from __future__ import annotations

import atexit
import functools
import gc
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from typer._click import exceptions as usage  # typer 0.29 carries its own copy of Click
from typer.core import TyperGroup


# at exit, the interpreter's own collections walk every object still alive, the imported
# modules' hundreds of thousands included (~1 s after a 10,000-staff verify, for nothing:
# the process is ending, and reference counting still frees what it holds)
atexit.register(gc.freeze)


class _OneLineErrors(TyperGroup):
    """Usage errors (unknown option, missing argument, bad value, missing file) as ONE line
    on stderr and exit 2 (docs/cli-contract.md), not Click's boxed usage panel:
    `paywatch close: invalid value for 'period': period '2026-01' is not YYYYMM (e.g. 202601) (see paywatch
    close --help)`."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        prog_name = prog_name or "paywatch"
        if not standalone_mode:  # a caller that handles exceptions itself (typer's CliRunner)
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except usage.NoArgsIsHelpError as e:  # bare `paywatch`: the help, as asked
            typer.echo(e.ctx.get_help() if e.ctx else "paywatch --help")
            sys.exit(0)
        except usage.UsageError as e:
            typer.echo(usage_line(e), err=True)
            sys.exit(2)
        except usage.ClickException as e:
            typer.echo(f"{prog_name}: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)  # non-standalone click returns an Exit's code


def usage_line(e: usage.UsageError) -> str:
    """One line naming the command and the problem (Click's message, first letter lowered)."""
    where = e.ctx.command_path if e.ctx else "paywatch"
    msg = " ".join(e.format_message().split())  # Click's "Did you mean" hint stays on the line
    msg = msg[:1].lower() + msg[1:] if msg[:2] != msg[:2].upper() else msg
    return f"{where}: {msg.rstrip('.')} (see {where} --help)"


def period(value: Optional[str]) -> Optional[str]:
    """Typer callback for a YYYYMM argument or option: a malformed period is a usage error
    named as such (exit 2, one line)."""
    if value is None:
        return value
    if not (len(value) == 6 and value.isdigit() and 1 <= int(value[4:]) <= 12):
        raise typer.BadParameter(f"period {value!r} is not YYYYMM (e.g. 202601)")
    return value


class _ContractApp(typer.Typer):
    """Every command registered here keeps the exit contract (docs/cli-contract.md 1.1): an
    exception a command did not turn into an exit becomes exit 1, one line on stderr and a
    log file with the traceback (paywatch.crashlog) — never a traceback on the terminal.
    Wrapping at registration is the one place: commands added later are covered too."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorator(f):
            register(_guarded(f))
            return f

        return decorator


def _guarded(f):
    @functools.wraps(f)  # typer reads the parameters through __wrapped__
    def run(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except (typer.Exit, typer.Abort, usage.ClickException, SystemExit,
                KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place that turns any failure into exit 1
            from paywatch import crashlog
            from paywatch.paths import Paths

            db = kwargs.get("db")
            home = Paths.for_db(Path(db)).home if db else Paths.default().home
            log = crashlog.write_log(home, exc, f.__name__)
            typer.echo(crashlog.one_line(exc, log), err=True)
            raise typer.Exit(1) from None

    return run


app = _ContractApp(
    help="Paywatch checks each Umoja payroll run (simulations SIM1-SIM3, FINAL, off-cycle) for "
    "amounts that do not fit the run or the staff member, and tells HR and Finance what to fix "
    "before the live run.",
    no_args_is_help=True,
    add_completion=False,
    cls=_OneLineErrors,
)
err_console = Console(stderr=True)


def table_console() -> Console:
    """Stdout for tables: piped or captured, wide enough that no heading or value is cut
    (rich otherwise assumes 80 columns and shortens headings to 'basel…')."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=False, disable=not err_console.is_terminal)


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", help="Folder to write the simulated runs into."),
    staff: int = typer.Option(10_000, "--staff", help="Number of staff in the payroll area."),
    months: int = typer.Option(12, "--months", help="Number of months (periods) to simulate."),
    start: str = typer.Option("202507", "--start", help="First period, YYYYMM.", callback=period),
    seed: int = typer.Option(1, "--seed", help="Random seed: same arguments and seed give identical files."),
    error_rate: float = typer.Option(0.0275, "--error-rate", help="Share of staff with an injected error per month."),
    fix_rate: float = typer.Option(0.5, "--fix-rate", help="Share of errors present in a run that upstream fixes by the next regular run."),
) -> None:
    """Write a simulated Umoja payroll area: one folder per run, runs.txt and truth.csv."""
    from paywatch.simulate import SimConfig, simulate_to_folder

    cfg = SimConfig(staff=staff, months=months, start=start, seed=seed, error_rate=error_rate, fix_rate=fix_rate)
    with _progress() as progress:
        task = progress.add_task("simulating runs", total=months * 5)
        names = simulate_to_folder(cfg, out, on_run=lambda o: progress.update(task, advance=1, description=o.plan.run_id))
        progress.update(task, total=len(names), completed=len(names))
    typer.echo(f"wrote {len(names)} runs to {out} (runs.txt, truth.csv)")


@app.command()
def verify(
    run_folder: Path = typer.Argument(..., help="The extracted run folder (manifest.json and ten CSV files)."),
    db: Optional[Path] = typer.Option(None, "--db", help="DuckDB warehouse file (default: paywatch-data/warehouse.duckdb)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for this run's reports (default: paywatch-data/reports/<run_id>)."),
    wait: float = typer.Option(600.0, "--wait", help="Seconds to wait for another verify holding the warehouse (0: stop at once)."),
) -> None:
    """Load one run, check its data quality, detect exceptions and write the reports.

    Exit 0: processed (with or without exceptions); 2: extract not acceptable (one line on
    stderr says file, line and column); 3: loaded, but a critical data-quality failure
    stopped detection."""
    from paywatch.warehouse.db import WarehouseBusy

    try:
        with _stage_display() as runner:
            with runner.step("start-up (loading the checks and detectors)"):
                from paywatch.pipeline import verify_run, warm_up
                warm_up()  # validation's and the models' imports, while the extract is read and loaded
            result = verify_run(run_folder, db=db, out=out, wait_seconds=wait, runner=runner)
    except WarehouseBusy as e:
        typer.echo(f"warehouse busy: {e}", err=True)
        raise typer.Exit(4)
    except _config_error() as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1)
    if result.message:
        typer.echo(result.message, err=bool(result.exit_code))
    raise typer.Exit(result.exit_code)


def _config_error() -> type[Exception]:
    from detectors.config import ConfigError

    return ConfigError


class _StageDisplay:
    """A pipeline runner that shows each stage as it goes: a live display on stderr when
    stderr is a terminal, else one line per stage on stdout (`stage read: 10 files, 5,000
    rows in 0.1 s`) before the result line. stderr stays for the one line a refusal
    writes (docs/cli-contract.md)."""

    def __init__(self) -> None:
        self.live = err_console.is_terminal
        self.progress = Progress(SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"),
                                 console=err_console, transient=False, disable=not self.live)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A step that is not a pipeline stage (start-up): shown on a terminal only."""
        task = self.progress.add_task(f"{name} …", total=1)
        t0 = time.monotonic()
        yield
        self.progress.update(task, description=f"{name}: {time.monotonic() - t0:.1f} s", completed=1)

    def __call__(self, stage, *args, **kwargs):
        from paywatch import stages

        task = self.progress.add_task(f"{stage.name} …", total=1)
        t0 = time.monotonic()
        result = stages.run(stage, *args, **kwargs)
        line = f"{stage.name}: {stages.stage_count(stage, result)} in {time.monotonic() - t0:.1f} s"
        self.progress.update(task, description=line, completed=1)
        if not self.live:
            typer.echo(f"stage {line}")
        return result


@contextmanager
def _stage_display() -> Iterator[_StageDisplay]:
    display = _StageDisplay()
    with display.progress:
        yield display


@app.command()
def demo(
    staff: int = typer.Option(2_000, "--staff", help="Staff in the simulated payroll area."),
    months: int = typer.Option(2, "--months", help="Months to simulate."),
    start: str = typer.Option("202512", "--start", help="First period, YYYYMM.", callback=period),
    seed: int = typer.Option(7, "--seed", help="Random seed."),
) -> None:
    """The main job on the embedded default: simulated Umoja drops each run into the
    landing folder, the Prefect flows verify it (local ephemeral API) into
    paywatch-data/warehouse.duckdb, reports go to paywatch-data/reports and the outbox."""
    import os

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from rich.table import Table

    from flows.demo import demo as demo_flow
    from paywatch.lifecycle import kpi as kpi_frame
    from paywatch.warehouse.resource import Warehouse

    done = demo_flow(staff=staff, months=months, start=start, seed=seed)
    table = Table("run", "flow run state")
    for d in done:
        table.add_row(d["run_id"], d["state"])
    table_console().print(table)
    wh = Warehouse.default()
    with _missing_warehouse_exits(), wh.reader() as con:
        k = kpi_frame(con)
    for r in k.iter_rows(named=True):
        typer.echo(f"{r['payroll_area']} {r['period']}: {r['excluded_staff']} staff excluded at FINAL")
    typer.echo(f"warehouse: {wh.db}  reports: {wh.paths.reports}  outbox: {wh.paths.outbox}")


NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@app.command()
def lab(
    port: int = typer.Option(8888, "--port", help="Port of the JupyterLab server (the next free one if taken)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser: print the address."),
) -> None:
    """Open the notebooks (notebooks/investigate.ipynb, notebooks/kpi.ipynb) in JupyterLab,
    from this project's environment: its kernel imports paywatch. On 127.0.0.1 only;
    Ctrl-C stops it. The notebooks read the sample warehouse unless DB is set in them, and
    write nothing unless RECORD_DECISION = True."""
    if not (NOTEBOOKS / "investigate.ipynb").is_file():
        typer.echo(f"paywatch lab: no notebooks at {NOTEBOOKS} (run it from a checkout of Paywatch)", err=True)
        raise typer.Exit(2)
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={NOTEBOOKS}", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.default_url=/lab/tree/investigate.ipynb"]
    if no_browser:
        argv.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers run as root; Jupyter refuses without this
        argv.append("--allow-root")
    typer.echo(f"JupyterLab on {NOTEBOOKS} (Ctrl-C to stop; the address with its token follows)", err=True)
    sys.stderr.flush()
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # the server replaces this process: Ctrl-C and exit codes are its own


@app.command()
def evaluate(
    staff: int = typer.Option(1_000, "--staff", help="Staff in the simulated payroll area."),
    months: int = typer.Option(3, "--months", help="Months to simulate."),
    start: str = typer.Option("202511", "--start", help="First period, YYYYMM.", callback=period),
    seed: int = typer.Option(101, "--seed", help="Random seed (use one the tests do not use)."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when a quality target is missed."),
    mutations: bool = typer.Option(False, "--mutations", help="Run the mutation harness on clean runs instead."),
    regimes: str = typer.Option("all", "--regimes",
                                help="Simulator regimes, comma-separated: peaks, advances, corrections, hires; "
                                     "'all' or 'none'."),
) -> None:
    """Measure detection quality against the simulator's ground truth: recall, hold
    precision, false alarms, recall per error kind — with and without the anomaly models —
    overall and per regime (one line each; the last line says whether every target is met)."""
    from rich.table import Table

    from paywatch.simulate.engine import REGIMES

    chosen = REGIMES if regimes == "all" else () if regimes == "none" else tuple(
        r.strip() for r in regimes.split(",") if r.strip())
    unknown = [r for r in chosen if r not in REGIMES]
    if unknown:
        typer.echo(f"--regimes: unknown regime {unknown[0]!r} (known: {', '.join(REGIMES)}, all, none)", err=True)
        raise typer.Exit(2)
    if mutations:
        _evaluate_mutations(staff, months, start, seed, chosen)
        return

    from paywatch.evaluate import evaluate as run_eval, meets, month_noise, regime_line
    from paywatch.paths import Paths
    from paywatch.settings import load_settings
    from paywatch.simulate import SimConfig

    cfg = SimConfig(staff=staff, months=months, start=start, seed=seed, regimes=chosen)
    per_run = Table("run", "staff", "errors", "recall", "held", "hold prec.", "false alarms", "FA rate",
                    "recall w/o models", title="Per run (all detectors)")

    def row(out, s, r):
        per_run.add_row(s.run_id, str(s.staff), str(s.error_staff),
                        f"{s.caught_staff / s.error_staff:.3f}" if s.error_staff else "-", str(s.held_staff),
                        f"{s.held_with_error / s.held_staff:.3f}" if s.held_staff else "-", str(s.false_alarms),
                        f"{s.false_alarms / max(s.clean_staff, 1):.4%}",
                        f"{r.caught_staff / r.error_staff:.3f}" if r.error_staff else "-")
        progress.update(task, advance=1, description=s.run_id)

    with _progress() as progress:
        task = progress.add_task("evaluating", total=months * 5)
        full, rules = run_eval(cfg, on_run=row)
    console = table_console()
    console.print(per_run)
    overall = Table("detectors", "recall", "hold precision", "false alarms / clean staff", title="Overall")
    for name, s in (("all", full), ("rules only (models off)", rules)):
        overall.add_row(name, f"{s.recall:.4f}", f"{s.hold_precision:.4f}", f"{s.false_alarm_rate:.4%}")
    console.print(overall)
    kinds = Table("error kind", "present", "recall (all)", "recall (rules only)", title="Recall per error kind")
    for k, v in full.by_kind.items():
        n = sum(r.by_kind.get(k, (0, 0))[0] for r in full.runs)
        kinds.add_row(k, str(n), f"{v:.3f}", f"{rules.by_kind.get(k, 0):.3f}")
    console.print(kinds)
    specials = [p for p in {r.period for r in full.runs} if p[4:] in ("01", "04", "10")]
    noise = month_noise(full, specials)
    for p, (rate, limit, ok) in sorted(noise.items()):
        typer.echo(f"special month {p}: false-alarm rate {rate:.4%} vs limit {limit:.4%} -> {'ok' if ok else 'ABOVE'}")
    worst_kind = min(full.by_kind.values()) if full.by_kind else 1.0
    target = load_settings(Paths.default().config)["evaluation"]
    passed = (meets(full, target) and all(ok for *_, ok in noise.values())
              and all(meets(r, target) for r in full.regimes.values()))
    if full.cases is not None:  # grouping into cases (paywatch/cases): one injected error, one case
        typer.echo(full.cases.line())
    typer.echo(f"regimes on: {', '.join(chosen) or 'none'}; peak months {', '.join(full.peak_periods) or 'none'}")
    for name, r in full.regimes.items():
        typer.echo(regime_line(name, r, target))
    typer.echo(f"staff={staff} months={months} seed={seed} recall={full.recall:.4f} hold_precision="
               f"{full.hold_precision:.4f} false_alarm_rate={full.false_alarm_rate:.4%} worst_kind_recall="
               f"{worst_kind:.3f} targets={'met' if passed else 'MISSED'}")
    if check and not passed:
        raise typer.Exit(1)


def _evaluate_mutations(staff: int, months: int, start: str, seed: int, regimes: tuple[str, ...]) -> None:
    """`paywatch evaluate --mutations`: generic mutations of clean runs, caught per class and
    per group — (a) deterministic wage types and master data, (b) variable pay of >= 3x the
    usual amount or a recurring variable line dropped — against [evaluation]'s targets."""
    from rich.table import Table

    from paywatch.evaluate import DETERMINISTIC, MUTATIONS, VARIABLE, evaluate_mutations, group_score
    from paywatch.paths import Paths
    from paywatch.settings import load_settings
    from paywatch.simulate import SimConfig

    with _progress() as progress:
        task = progress.add_task("mutating", total=(months - 1) * 2 * len(MUTATIONS))
        scores = evaluate_mutations(SimConfig(staff=staff, months=months, start=start, seed=seed, regimes=regimes),
                                    seed=seed, on_step=lambda run, kind: progress.update(
                                        task, advance=1, description=f"{run} {kind}"))
    table = Table("mutation class", "group", "applied", "caught", "share caught", "false alarms", "FA rate",
                  title="Mutation harness (clean runs)")
    for kind, s in scores.items():
        table.add_row(kind, "a" if kind in DETERMINISTIC else "b", str(s.applied), str(s.caught),
                      f"{s.caught / max(s.applied, 1):.3f}", str(s.false_alarms),
                      f"{s.false_alarms / max(s.clean_staff, 1):.4%}")
    table_console().print(table)
    target = load_settings(Paths.default().config)["evaluation"]
    det, var = group_score(scores, DETERMINISTIC), group_score(scores, VARIABLE)
    for kind in VARIABLE:
        per = ", ".join(f"{wt} {c}/{n}" for wt, (n, c) in sorted(scores[kind].by_wage_type.items()))
        typer.echo(f"{kind} by wage type: {per or 'none applied'}")
    allm = group_score(scores, MUTATIONS)
    fa = allm.false_alarms / max(allm.clean_staff, 1)
    det_share, var_share = det.caught / max(det.applied, 1), var.caught / max(var.applied, 1)
    passed = (det_share >= target["min_mutation_caught"] and var_share >= target["min_variable_mutation_caught"]
              and fa <= target["max_false_alarm_rate"])
    typer.echo(f"staff={staff} months={months} seed={seed} mutations={allm.applied} "
               f"caught={allm.caught / max(allm.applied, 1):.4f} deterministic_caught={det_share:.4f} "
               f"variable_caught={var_share:.4f} false_alarm_rate={fa:.4%} targets={'met' if passed else 'MISSED'}")


@app.command()
def pilot(
    staff: int = typer.Option(10_000, "--staff", help="Staff in the simulated payroll area."),
    months: int = typer.Option(12, "--months", help="Months to simulate."),
    seed: int = typer.Option(1, "--seed", help="Random seed (the baseline uses the same)."),
    start: str = typer.Option("202507", "--start", help="First period, YYYYMM.", callback=period),
    fix_probability: float = typer.Option(0.6, "--fix-probability", help="Chance a reported error is fixed before the next regular run."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the KPI chart and the monthly table (CSV)."),
) -> None:
    """Run a simulated year with the feedback loop closed, against the late-detection
    baseline: how many staff are held at FINAL each month, toward the KPI target (section kpi of the settings)."""
    from rich.table import Table

    from paywatch.settings import kpi_targets, load_settings
    from paywatch.lifecycle import kpi_chart
    from paywatch.pilot import PilotResult, as_frame, pilot as run_pilot
    from paywatch.simulate import SimConfig

    cfg = SimConfig(staff=staff, months=months, seed=seed, start=start)
    typer.echo(f"assumptions: reported errors fixed before the next regular run with p={fix_probability}; "
               f"errors arrive {', '.join(f'{a:.0%}' for a in cfg.arrival)} before SIM1/SIM2/SIM3/FINAL; "
               f"error rate {cfg.error_rate:.2%} of staff a month; reviewers release nothing; "
               f"baseline: nothing reported before FINAL (same seed)")
    with _progress() as progress:
        task = progress.add_task("pilot", total=2 * months * 5)
        res = run_pilot(cfg, load_settings(None), fix_probability,
                        on_run=lambda mode, run_id: progress.update(task, advance=1, description=f"{mode} {run_id}"))
    frame = as_frame(res)
    table = Table(*frame.columns, title="Staff held at FINAL per month")
    for r in frame.iter_rows():
        table.add_row(*[str(v) for v in r])
    table_console().print(table)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        frame.write_csv(out / "pilot.csv")
        chart = frame.select("period", pl_col("paywatch_held").alias("excluded_staff"),
                             pl_col("baseline_held").alias("baseline_excluded"))
        kpi_chart(chart, out / "pilot_kpi.png", kpi_targets().scaled(staff),
                  title=f"Staff held at FINAL — pilot, {staff:,} staff")
        typer.echo(f"wrote {out / 'pilot.csv'} and {out / 'pilot_kpi.png'}")
    typer.echo(f"staff={staff} baseline_avg_held={PilotResult.avg(res.baseline):.1f} "
               f"paywatch_avg_held={PilotResult.avg(res.paywatch):.1f}")


def pl_col(name: str):
    import polars as pl

    return pl.col(name)


# decide and close wait this long for a verify holding the warehouse
WRITER_WAIT_SECONDS = 600


def _warehouse(db: Optional[Path]):
    """The warehouse of `--db` (default: paywatch-data/warehouse.duckdb), built once per command."""
    from paywatch.warehouse.resource import Warehouse

    return Warehouse.at(db)


@contextmanager
def _missing_warehouse_exits() -> Iterator[None]:
    """A reading command on a warehouse not created yet: one line and exit 1, no traceback
    (docs/cli-contract.md 1.1: exit 1 when Paywatch cannot work)."""
    from paywatch.warehouse.resource import WarehouseMissing

    try:
        yield
    except WarehouseMissing as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None


@app.command()
def decide(
    action: str = typer.Argument(..., help="assign | release | confirm | false_positive | expected | reopen | "
                                           "approve (a second person approves a release: --decision ID)"),
    finding: Optional[str] = typer.Option(None, "--finding", help="Finding id (from the warehouse or a report)."),
    case: Optional[str] = typer.Option(None, "--case", help="Case id (with --run): a decision on each of its findings."),
    pernr: Optional[str] = typer.Option(None, "--pernr", help="Staff member (with --detector) instead of a finding id."),
    detector: Optional[str] = typer.Option(None, "--detector", help="Detector code, e.g. PW101."),
    wage_type: Optional[str] = typer.Option(None, "--wage-type"),
    for_period: Optional[str] = typer.Option(None, "--for-period"),
    run_id: Optional[str] = typer.Option(None, "--run", help="Run the decision is taken in (its month)."),
    category: Optional[str] = typer.Option(None, "--category", help="Bulk, with --run: every finding of this category."),
    owner: Optional[str] = typer.Option(None, "--owner", help="Bulk, with --run: every finding of this owner (HR, FINANCE)."),
    entity: Optional[str] = typer.Option(None, "--entity", help="Bulk, with --run: every finding of staff of this client entity (ORGEH)."),
    decision_ids: Optional[list[int]] = typer.Option(None, "--decision", help="With 'approve': the release to approve (repeatable)."),
    by: str = typer.Option(..., "--by", help="Who decides."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit trail)."),
    expires: Optional[str] = typer.Option(None, "--expires", help="YYYY-MM-DD, in the future: until when 'expected' holds."),
    assignee: Optional[str] = typer.Option(None, "--assignee", help="With 'assign': who handles it."),
    db: Optional[Path] = typer.Option(None, "--db", help="DuckDB warehouse file."),
) -> None:
    """Record a reviewer's decision on a finding, a case, or in bulk on the findings of one
    category / owner / entity of a run (append-only audit trail, also journaled). A release
    takes effect when someone else approves it (`decide approve --decision ID`).

    Exit 0: recorded, or unchanged (said so); 2: refused (one line says why); 4: busy."""
    from paywatch import lifecycle as lc
    from paywatch.journal import JournalError
    from paywatch.warehouse.db import WarehouseBusy

    wh = _warehouse(db)
    try:
        if action == "approve":
            if not decision_ids:
                raise lc.DecisionError("'approve' needs the release to approve (--decision ID)")
            with wh.writer(WRITER_WAIT_SECONDS) as con:
                done = [lc.approve_decision(con, i, approver=by, reason=reason) for i in decision_ids]
            fresh = [str(i) for i in done if i is not None]
            if fresh:
                typer.echo(f"approved by {by.strip()}: release {', '.join(fresh)} now in force")
            if len(fresh) < len(done):
                typer.echo(f"unchanged: {len(done) - len(fresh)} release(s) already approved")
            return
        if decision_ids:
            raise lc.DecisionError("--decision is for 'approve' only")
        lc.parse_expiry(expires)  # a bad date is refused before the warehouse is opened
        bulk = category or owner or entity
        if sum(bool(x) for x in (finding, case, bulk, pernr)) > 1:
            raise lc.DecisionError("name one target: --finding, --case, --pernr/--detector, or a bulk selection "
                                   "(--category/--owner/--entity with --run)")
        options = dict(expires_on=expires, assignee=assignee)
        with wh.writer(WRITER_WAIT_SECONDS) as con:
            if case or bulk:
                if bulk and not run_id:
                    raise lc.DecisionError("a bulk decision needs the run (--run)")
                ids = (lc.case_finding_ids(con, case, run_id) if case
                       else lc.select_findings(con, run_id, category=category, owner=owner, entity=entity))
                out = lc.decide_findings(con, ids, action=action, actor=by, reason=reason, case_id=case, **options)
            else:
                did = lc.record_decision(con, action=action, actor=by, reason=reason, finding_id=finding,
                                         run_id=run_id, pernr=pernr, detector=detector, wage_type=wage_type,
                                         for_period=for_period, **options)
                out = lc.Decided([did] if did is not None else [],
                                 [] if did is not None else ["the same decision is already in force or awaits approval"])
    except lc.DecisionError as e:
        typer.echo(f"decision not recorded: {e}", err=True)
        raise typer.Exit(2)
    except WarehouseBusy as e:
        typer.echo(f"warehouse busy: {e}", err=True)
        raise typer.Exit(4)
    except JournalError as e:
        typer.echo(f"decision not recorded: {e}", err=True)
        raise typer.Exit(1)
    typer.echo(out.summary(action) + (f" by {by.strip()}" if out.recorded else ""))
    if action in lc.NEEDS_APPROVAL and out.recorded:
        ids = " ".join(f"--decision {i}" for i in out.recorded[:5]) + (" ..." if len(out.recorded) > 5 else "")
        typer.echo(f"awaiting a second person's approval: paywatch decide approve {ids} --by NAME --reason TEXT")


@app.command()
def close(
    period: str = typer.Argument(..., help="Month to close, YYYYMM.", callback=period),
    area: str = typer.Option("GV", "--area", help="Payroll area."),
    db: Optional[Path] = typer.Option(None, "--db", help="DuckDB warehouse file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the monthly summary and KPI chart."),
    dry: bool = typer.Option(False, "--dry", help="Compute and write the summary from the last committed state "
                             "without recording the close (works while a verify writes)."),
) -> None:
    """Close a month: record who is excluded at FINAL and why, recommend salary advances,
    and write the monthly summary with the KPI chart."""
    from paywatch.settings import load_settings
    from paywatch.lifecycle import DecisionError, close_period
    from paywatch.monthly import write_monthly_summary
    from paywatch.warehouse.db import transaction

    wh = _warehouse(db)
    # a dry close only reads: the readers' snapshot, never waiting for a verify
    connection = wh.reader() if dry else wh.writer(WRITER_WAIT_SECONDS)
    try:
        with _missing_warehouse_exits(), connection as con, (nullcontext() if dry else transaction(con)):
            # the close is recorded only with its summary written (a full disk undoes both)
            cfg = load_settings(wh.paths.config)
            res = close_period(con, area, period, cfg["lifecycle"], record=not dry)
            folder = write_monthly_summary(con, area, period, out or wh.paths.reports / f"{area}-{period}-close", cfg)
    except DecisionError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2)
    typer.echo(f"{area} {period} {'would be closed (dry, nothing recorded)' if dry else 'closed'}: "
               f"{res.excluded.height} staff excluded, {res.advances_recommended} salary "
               f"advances recommended. Summary: {folder}")


@app.command()
def kpi(db: Optional[Path] = typer.Option(None, "--db", help="DuckDB warehouse file.")) -> None:
    """The held-staff KPI per month: excluded at FINAL (the headline), 12-month average, per
    1,000 staff paid against the baseline and target; then cases per month, per owner and per
    entity: fixed before FINAL, median days to fix."""
    from rich.table import Table

    from paywatch import lifecycle as lc
    import polars as pl

    from paywatch.monthly import num, pct
    from paywatch.settings import kpi_targets, load_settings

    wh = _warehouse(db)
    with _missing_warehouse_exits(), wh.reader() as con:
        frame = lc.kpi_per_staff(con)
        cases = lc.case_kpi_monthly(con)
        owners = lc.cases_by(con, "owner")
        entities = lc.cases_by(con, "entity")
    if frame.is_empty():
        typer.echo("no FINAL run closed yet: close a month first (paywatch close YYYYMM)")
        raise typer.Exit(0)
    targets = kpi_targets(load_settings(wh.paths.config))
    console = table_console()
    table = Table("Area", "Month", "Excluded at FINAL", "12-month avg", "Staff paid", "Per 1,000 staff",
                  "2018 avg, scaled", "Target, scaled",
                  title=f"Staff excluded at FINAL (2018 average {targets.baseline:g} and target {targets.target:g} "
                        f"of {targets.for_staff:,} staff, scaled to the staff paid)")
    for r in frame.iter_rows(named=True):
        staff = r["staff_paid"] or 0
        table.add_row(r["payroll_area"], r["period"], num(r["excluded_staff"]), num(r["avg_12m"], 1),
                      num(staff), num(r["per_1000_staff"], 1), num(targets.baseline * staff / targets.for_staff, 1),
                      num(targets.target * staff / targets.for_staff, 1))
    console.print(table)
    heads = ("Cases", "Opened at SIM1/2", "Fixed before FINAL", "Share fixed before FINAL", "Median days to fix",
             "Cases holding staff at FINAL")

    def figures(r: dict) -> list[str]:
        return [num(r["cases"]), num(r["opened_at_sim1_sim2"]), num(r["fixed_before_final"]),
                pct(r["share_fixed_before_final"]), num(r["median_days_to_fix"], 1), num(r["held_at_final"])]

    if cases.is_empty():
        typer.echo("no case recorded yet (cases are grouped from findings by paywatch verify)")
        return
    table = Table("Area", "Month", *heads, title="Cases asking for action (hold or review)")
    for r in cases.iter_rows(named=True):
        table.add_row(r["payroll_area"], r["period"], *figures(r))
    console.print(table)
    table = Table("Area", "Month", "Owner", *heads, title="Cases per owner")
    for r in owners.iter_rows(named=True):
        table.add_row(r["payroll_area"], r["period"], r["owner"], *figures(r))
    console.print(table)
    # per entity: the latest month of each area (every month: paywatch.investigate.kpi.cases_per_entity)
    latest = entities.group_by("payroll_area").agg(pl.col("period").max())
    table = Table("Area", "Month", "Entity", *heads, title="Cases per client entity, latest month")
    for r in entities.join(latest, on=["payroll_area", "period"]).iter_rows(named=True):
        table.add_row(r["payroll_area"], r["period"], r["entity"], *figures(r))
    console.print(table)


@app.command()
def backtest(
    config: Path = typer.Option(..., "--config", help="Alternative configuration (same layout as paywatch.toml).",
                                exists=True, dir_okay=False),
    db: Optional[Path] = typer.Option(None, "--db", help="DuckDB warehouse file."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Ground truth (truth.csv of a simulation), if any.",
                                         exists=True, dir_okay=False),
) -> None:
    """Replay every run in the warehouse with another configuration, side by side with the
    current one: exceptions, excluded staff, errors caught and false alarms per month."""
    from rich.table import Table

    from paywatch.settings import load_settings
    from paywatch.backtest import backtest as run_backtest
    from paywatch.warehouse.queries import count_current_runs

    wh = _warehouse(db)
    try:
        configs = {"current": load_settings(wh.paths.config), "alternative": load_settings(config)}
    except ValueError as e:
        typer.echo(f"config not usable: {e}", err=True)
        raise typer.Exit(2)
    with _missing_warehouse_exits(), wh.reader() as con:
        n_runs = count_current_runs(con)
        with _progress() as progress:
            task = progress.add_task("replaying runs", total=n_runs)
            frame = run_backtest(con, configs, truth, on_run=lambda r: progress.update(task, advance=1, description=r))
    table = Table(*frame.columns, title="Backtest: current vs alternative configuration")
    for r in frame.iter_rows():
        table.add_row(*["" if v is None else str(v) for v in r])
    table_console().print(table)
    tot = frame.group_by("config").agg(pl_col("exceptions").sum(), pl_col("excluded").sum()).sort("config")
    for c, e, x in tot.iter_rows():
        typer.echo(f"{c}: exceptions={e} excluded_staff={x}")


@app.command()
def doctor(db: Optional[Path] = typer.Option(None, "--db", help="DuckDB warehouse file.")) -> None:
    """Check the warehouse, the archive of received extracts and the outbox: every run's
    files still match their checksums, every run is complete, files are private."""
    from paywatch.doctor import doctor as run_doctor

    from paywatch.doctor import settings_in_use

    for line in settings_in_use(_warehouse(db)):
        typer.echo(line)
    with _missing_warehouse_exits():
        rep = run_doctor(_warehouse(db))
    for p in rep.problems:
        typer.echo(f"PROBLEM: {p}")
    typer.echo(f"{rep.runs_checked} runs and {rep.files_checked} archived files checked: "
               f"{'all good' if rep.ok else f'{len(rep.problems)} problem(s)'}")
    raise typer.Exit(0 if rep.ok else 1)


@app.command()
def rebuild(
    db: Optional[Path] = typer.Option(None, "--db", help="The warehouse to rebuild (its archive, journal and "
                                                         "paywatch.toml are read; the file itself is not)."),
    out: Optional[Path] = typer.Option(None, "--out", help="The new warehouse file (must not exist; default: "
                                                           "<home>/rebuilt/warehouse.duckdb)."),
) -> None:
    """Rebuild a warehouse into a new file: the archived deliveries verified again in contract
    order, then the decisions journal replayed. Reports of every run are written beside it.

    Exit 0: rebuilt; 2: cannot start (one line says why)."""
    from paywatch.rebuild import RebuildError, rebuild as run_rebuild

    old = _warehouse(db)
    target = out or old.paths.home / "rebuilt" / "warehouse.duckdb"
    try:
        with _progress() as progress:
            task = progress.add_task("replaying runs", total=None)
            res = run_rebuild(old, target, on_run=lambda r: progress.update(task, advance=1, description=r))
    except RebuildError as e:
        typer.echo(f"not rebuilt: {e}", err=True)
        raise typer.Exit(2)
    for line in res.skipped:
        typer.echo(f"skipped: {line}", err=True)
    refused = [f"{r} (exit {c})" for r, c in res.runs if c not in (0, 3)]
    typer.echo(f"rebuilt {res.db}: {len(res.runs)} deliveries replayed ({len(refused)} refused again"
               f"{': ' + ', '.join(refused) if refused else ''}), {res.decisions} decisions and {res.approvals} "
               f"approvals from the journal. Check it: paywatch doctor --db {res.db}")


@app.command()
def backfill(
    start: str = typer.Argument(..., help="First period to catch up (YYYYMM).", callback=period),
    end: str = typer.Argument(..., help="Last period to catch up (YYYYMM), included.", callback=period),
    landing: Optional[Path] = typer.Option(None, "--landing", help="Landing folder (default: [landing] folder, "
                                           "else <PAYWATCH_HOME>/landing); its processed/ folder is searched too."),
    db: Optional[Path] = typer.Option(None, "--db", help="DuckDB warehouse file."),
) -> None:
    """Catch up past periods: verify every delivery of periods START..END found in landing
    (and landing/processed) in contract order, each once, and name the calendar's runs of
    those periods still missing. Exit 0 when every delivery found was verified, else the
    worst verify exit code (2 rejected, 3 blocked)."""
    from paywatch import landing as lnd
    from paywatch.pipeline import verify_run
    from paywatch.settings import load_settings
    from paywatch.warehouse.deliveries import delivery_received, run_received

    if start > end:
        typer.echo(f"paywatch backfill: START {start} is after END {end}", err=True)
        raise typer.Exit(2)
    wh = _warehouse(db)
    cfg = load_settings(wh.paths.config)
    folder = landing or lnd.landing_folder(wh.paths, cfg)

    def already(d) -> bool:
        with wh.writer(WRITER_WAIT_SECONDS) as con:
            return delivery_received(con, d.manifest_sha256)

    def verify(d):
        lnd.audit(wh.paths, [lnd.AuditEntry("picked-up", d.folder.name, d.manifest_sha256, d.run_id, "catch-up")])
        return verify_run(d.folder, db=wh.db, wait_seconds=WRITER_WAIT_SECONDS)

    with lnd.pickup_lock(folder, WRITER_WAIT_SECONDS):
        done, skipped = lnd.catch_up(folder, start, end, already, verify)
    lnd.audit(wh.paths, [lnd.AuditEntry("duplicate", d.folder.name, d.manifest_sha256, d.run_id,
                                        "already received: skipped") for d in skipped])
    for d, res in done:
        typer.echo(f"{d.run_id}: exit {res.exit_code}{' - ' + res.message if res.message else ''}")
    for d in skipped:
        typer.echo(f"{d.run_id}: already received (folder {d.folder.name})")
    area = cfg["calendar"]["payroll_area"]
    with wh.writer(WRITER_WAIT_SECONDS) as con:
        missing = [f"{area}-{p}-{rt}" for p in lnd.periods_between(start, end) for rt in lnd.RUN_TYPE_ORDER
                   if not run_received(con, area, p, rt)]
    for m in missing:
        typer.echo(f"{m}: not received")
    typer.echo(f"catch-up {start}..{end}: {len(done)} verified, {len(skipped)} already received, "
               f"{len(missing)} expected run(s) missing")
    raise typer.Exit(max([r.exit_code for _, r in done], default=0))


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
