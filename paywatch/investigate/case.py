"""What the investigation and KPI notebooks show, as plain functions (notebooks/ import only).

Every function takes a read-only DuckDB connection (`open_readonly`) and returns a polars
frame or a matplotlib Figure; amounts are shown in currency units as exact decimals
(`Decimal(38, 2)`, computed from the warehouse's integer cents), never as floats.

Personal data: IBANs are only ever shown masked (paywatch.privacy.mask_iban); explanations
pass through `mask_ibans_in` as well.

Connections (DuckDB allows one writing process per file):
- Read with `open_readonly(db)`. Several read-only connections, in several processes, may be
  open at once; none may be while another process writes (a verify): the open then fails
  with "Could not set lock on file" and `open_readonly` says so plainly.
- `decide` writes: close your read-only connections first (`con.close()`), in this process
  and in other notebooks on the same file. In one process DuckDB refuses a read-write
  connection next to a read-only one ("different configuration"); across processes a
  read-only connection holds a lock that blocks the writer. `decide` takes the
  WarehouseLock (the single-writer lock every verify takes) and explains either conflict.
"""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import duckdb
import polars as pl

from detectors import paymodel as pm
from paywatch import lifecycle as lc
from paywatch.paths import Paths
from paywatch.privacy import mask_iban, mask_ibans_in
from paywatch.warehouse import queries as q
from paywatch.warehouse.db import WarehouseLock, fetch_one, fetch_value, make_private_dir, open_warehouse

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data_samples" / "gv-300"
MASTER = ("actions", "assignments", "basic_pay", "bank_details", "family")
REFERENCE = ("pay_scale", "post_adjustment", "rates")
TOTALS = ("/101", "/550", "/560")
OPEN_HOLD = "severity = 'hold' AND coalesce(decision, '') NOT IN ('release', 'false_positive', 'expected')"

ACTION_NAMES = {  # PA0000 MASSN (extract-format.md)
    "01": "appointment", "02": "promotion", "03": "step increment", "04": "transfer in",
    "05": "separation", "06": "special leave without pay (SLWOP) starts", "07": "return from SLWOP",
    "08": "change in family status", "09": "contract extension",
}
STATUS_NAMES = {"3": "active (paid)", "1": "inactive (SLWOP, not paid)", "0": "withdrawn (separated, not paid)"}
MEMBER_TYPES = {"1": "spouse", "2": "child"}
# The pay model's rule per deterministic wage type (extract-format.md); "as written" = the
# line of this run the rule refers to, so one wrong input line gives one difference.
PAY_MODEL_RULES = {
    pm.WT_BASE: "ANNUAL_NET(grade, step) / 12 × BSGRD/100 × f",
    pm.WT_POST_ADJ: "1000 as written × MULTIPLIER(duty station) / 100 (P, D)",
    pm.WT_SPOUSE: "1000 as written × SPOUSE_RATE (P, D with a dependent spouse)",
    pm.WT_CHILD: "children under CHILD_AGE_LIMIT × CHILD_ANNUAL_<currency> / 12 × f",
    pm.WT_OVERTIME: "hours × round(ANNUAL_NET × 1.5 / 2080) (G, ≥ 10 active days)",
    pm.WT_PENSION: "−ANNUAL_PR(grade, step) / 12 × BSGRD/100 × f × PENSION_STAFF_RATE",
    pm.WT_HEALTH: "−(1000 + 1010 as written) × HEALTH_RATE",
}


class WarehouseInUse(RuntimeError):
    """The warehouse cannot be opened as asked because a connection elsewhere conflicts."""


# ------------------------------------------------------------------------------ warehouse

def default_sample_db() -> Path:
    """`$PAYWATCH_HOME/sample/warehouse.duckdb`, or `<repository>/paywatch-data/sample/...`
    when PAYWATCH_HOME is not set (never the real warehouse of PAYWATCH_HOME)."""
    home = os.environ.get("PAYWATCH_HOME")
    base = Path(home) if home else SAMPLE_DIR.parent.parent / "paywatch-data"
    return base / "sample" / "warehouse.duckdb"


def sample_runs(sample: Path = SAMPLE_DIR) -> list[str]:
    """Run folders of the committed sample, in delivery order (runs.txt)."""
    listing = Path(sample) / "runs.txt"
    if not listing.exists():
        raise FileNotFoundError(f"no sample at {sample} (runs.txt missing): pass DB = a warehouse file instead")
    return listing.read_text(encoding="utf-8").split()


def _runs_in(db: Path) -> tuple[set[str], set[str]]:
    """(run ids in the warehouse file, those of them verified in their current version)."""
    if not db.exists():
        return set(), set()
    con = open_warehouse(db, read_only=True)
    try:
        present = {r[0] for r in con.execute("SELECT DISTINCT run_id FROM runs").fetchall()}
        verified = {r[0] for r in con.execute(
            "SELECT DISTINCT v.run_id FROM verifications v JOIN runs r ON r.run_id = v.run_id "
            "AND r.version = v.run_version AND r.is_current").fetchall()}
        return present, verified
    finally:
        con.close()


def sample_warehouse(path: str | os.PathLike | None = None, *, sample: str | os.PathLike | None = None,
                     wait_seconds: float = 600.0) -> Path:
    """The warehouse of the committed sample (data_samples/gv-300), built on first use.

    Every run of runs.txt is verified in that order (read, load, validate, detect, triage:
    the pipeline's own stage functions) into `path` (default `default_sample_db()`), all under
    the WarehouseLock. A warehouse that already holds every run is reused as it is (reviewers'
    decisions recorded in it stay); an interrupted build is resumed. A file holding runs that
    are not the sample's is refused: this never writes sample data into a real warehouse.

    The stages are called directly rather than through `verify_run`, which takes the same
    lock itself (flock locks are per open file: a nested lock would wait for its own
    process); no reports are delivered (no exceptions.csv, no mail): notebooks read the
    warehouse. Findings carry the same configuration version as `paywatch verify --db`.
    """
    sample = Path(sample) if sample else SAMPLE_DIR
    runs = sample_runs(sample)
    db = Path(path) if path else default_sample_db()
    make_private_dir(db.parent)
    with WarehouseLock(db, wait_seconds=wait_seconds):
        present, verified = _runs_in(db)
        foreign = present - set(runs)
        if foreign:
            raise ValueError(f"{db} holds runs that are not in the sample ({', '.join(sorted(foreign)[:3])}): "
                             "give the sample its own warehouse file")
        if not set(runs) <= verified:
            _build_sample(db, sample, runs, verified)
    return db


def _build_sample(db: Path, sample: Path, runs: list[str], done: set[str]) -> None:
    # Imported here: the pipeline pulls in every detector (scikit-learn), which readers never need.
    from detectors.config import load_config
    from paywatch import pipeline

    paths = Paths.for_db(db)
    cfg = load_config(paths.config)
    con = open_warehouse(db)
    try:
        for name in runs:
            if name in done:
                continue
            loaded = pipeline.stage_load(con, pipeline.stage_read(sample / name), paths)
            status, *_ = pipeline.process_loaded(con, loaded.run_id, loaded.run_version, cfg)
            if status != "verified":
                raise RuntimeError(f"sample run {name} was not verified ({status})")
    finally:
        con.close()


def warehouse_path(db: str | os.PathLike | None = None) -> Path:
    """The warehouse a notebook reads: `db` if given, else the sample warehouse."""
    if db is None:
        return sample_warehouse()
    path = Path(db)
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}")
    return path


def open_readonly(db: str | os.PathLike) -> duckdb.DuckDBPyConnection:
    """A read-only connection (fails plainly while another process writes the warehouse)."""
    try:
        return open_warehouse(db, read_only=True)
    except duckdb.IOException as e:
        raise WarehouseInUse(f"cannot read {db} now: another process is writing it (a verify or a decision); "
                             f"try again when it has finished ({e})") from e


def decide(db: str | os.PathLike, *, wait_seconds: float = 30.0, **decision) -> int:
    """Record one reviewer decision (paywatch.lifecycle.record_decision keywords: action,
    actor, reason, finding_id or pernr + detector, ...) under the WarehouseLock; returns the
    decision id. Close every read-only connection on `db` first (module docstring)."""
    db = Path(db)
    with WarehouseLock(db, wait_seconds=wait_seconds):
        try:
            con = open_warehouse(db)
        except duckdb.ConnectionException as e:  # same process, read-only connection still open
            raise WarehouseInUse(f"close the read-only connection on {db} first (con.close()): DuckDB cannot open "
                                 "it for writing while this process reads it") from e
        except duckdb.IOException as e:  # another process holds it (e.g. a second notebook)
            raise WarehouseInUse(f"another process has {db} open (another notebook or report?): close it "
                                 f"there first ({e})") from e
        try:
            return lc.record_decision(con, **decision)
        finally:
            con.close()


def notebook_display(rows: int = 60, text: int = 300) -> None:
    """Show whole tables in notebooks (polars truncates to 10 rows and short strings)."""
    pl.Config.set_tbl_rows(rows)
    pl.Config.set_fmt_str_lengths(text)
    pl.Config.set_tbl_cols(-1)


# ------------------------------------------------------------------------------ helpers

def _money(frame: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    """Integer-cent columns as exact Decimal(38, 2) currency amounts ({cents column: name})."""
    hundred = pl.lit(100).cast(pl.Decimal(38, 0))
    return frame.with_columns(
        *[(pl.col(c).cast(pl.Decimal(38, 2)) / hundred).cast(pl.Decimal(38, 2)).alias(n) for c, n in columns.items()]
    ).drop([c for c, n in columns.items() if c != n])


def _cents_to_decimal(cents: int | None) -> Decimal | None:
    return None if cents is None else Decimal(int(cents)).scaleb(-2)


def _wage_type_texts(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return q._frame(con, "SELECT wage_type, arg_max(wage_type_text, record_key) AS wage_type_text, "
                         "arg_max(wage_class, record_key) AS wage_class FROM stg_wage_types GROUP BY wage_type")


def _wage_type_order(frame: pl.DataFrame, *more: str) -> pl.DataFrame:
    """Wage types in code order with the technical totals last."""
    return frame.sort(pl.col("wage_type").str.starts_with("/"), "wage_type", *more)


def _md(con, run_id: str, pernr: str | None = None, tables=MASTER) -> dict[str, pl.DataFrame]:
    out = {t: q.master_data_as_of_run(con, run_id, f"stg_{t}") for t in tables}
    if pernr is None:
        return out
    return {t: f.filter(pl.col("pernr") == pernr) for t, f in out.items()}


def _ref(con, run_id: str) -> dict[str, pl.DataFrame]:
    return {t: q.reference_as_of_run(con, run_id, f"stg_{t}") for t in REFERENCE}


def _record_on(records: pl.DataFrame, day: date, last: date) -> dict | None:
    """The record valid on `day`; else the latest one starting by `last`; else the latest."""
    if records.height == 0:
        return None
    valid = records.filter((pl.col("valid_from") <= day) & (pl.col("valid_to") >= day))
    if valid.height == 0:
        valid = records.filter(pl.col("valid_from") <= last)
    if valid.height == 0:
        valid = records
    return valid.sort("valid_from").row(-1, named=True)


def age_on(birth: date, day: date) -> int:
    """Age in completed years (a 29 February birthday falls on 1 March in other years)."""
    try:
        birthday = birth.replace(year=day.year)
    except ValueError:
        birthday = date(day.year, 3, 1)
    return day.year - birth.year - (1 if day < birthday else 0)


# ------------------------------------------------------------------------------ choosing a case

def runs_overview(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Current runs in order with their exceptions and staff on hold. Grain: one row per run."""
    return q._frame(con, f"""
        SELECT r.run_id, r.payroll_area, r.period, r.run_type, r.pay_date,
               count(f.finding_id) AS exceptions, count(DISTINCT f.pernr) AS staff_with_exceptions,
               count(DISTINCT f.pernr) FILTER ({OPEN_HOLD}) AS staff_on_hold
        FROM runs r LEFT JOIN findings_decided f ON f.run_id = r.run_id
        WHERE r.is_current
        GROUP BY r.run_id, r.payroll_area, r.period, r.run_type, r.pay_date, r.order_extracted_at
        ORDER BY r.payroll_area, r.period, r.order_extracted_at, r.run_id""")


def staff_with_exceptions(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """Staff of a run with exceptions, open holds first. Grain: one row per staff member."""
    return q._frame(con, f"""
        SELECT pernr, count(*) FILTER ({OPEN_HOLD}) AS open_holds, count(*) AS exceptions,
               list(DISTINCT detector ORDER BY detector) AS detectors,
               list(DISTINCT category ORDER BY category) AS categories
        FROM findings_decided WHERE run_id = ? AND pernr IS NOT NULL
        GROUP BY pernr ORDER BY open_holds DESC, exceptions DESC, pernr""", [run_id])


def default_case(con: duckdb.DuckDBPyConnection, run_id: str | None = None,
                 pernr: str | None = None) -> tuple[str, str]:
    """(run, staff member) to investigate: the given ones, else the latest FINAL run with
    exceptions (else the latest run with exceptions, else the latest run) and its staff
    member with the most open holds (then the most exceptions, then the lowest PERNR)."""
    if run_id is None:
        run_id = fetch_value(con, """
            SELECT r.run_id FROM runs r
            WHERE r.is_current
            ORDER BY EXISTS (SELECT 1 FROM current_findings f WHERE f.run_id = r.run_id AND f.pernr IS NOT NULL) DESC,
                     (r.run_type = 'FINAL') DESC, r.period DESC, r.order_extracted_at DESC, r.run_id DESC
            LIMIT 1""")
        if run_id is None:
            raise LookupError("the warehouse holds no run")
    q.run_info(con, run_id)  # KeyError for an unknown run
    if pernr is None:
        staff = staff_with_exceptions(con, run_id)
        if staff.height == 0:
            raise LookupError(f"run {run_id} has no exceptions: set PERNR")
        pernr = staff["pernr"][0]
    return run_id, str(pernr)


# ------------------------------------------------------------------------------ the staff member

def staff_header(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """Who this is, as of the run (records valid on the pay model's reference day). The IBAN
    is masked. Grain: one row per field (field, value)."""
    info = q.run_info(con, run_id)
    first, last, days = pm.month_bounds(info["period"])
    md = _md(con, run_id, pernr)
    facts = pm.staff_month_facts(md, info["period"])
    day = facts["reference_day"][0] if facts.height else first
    a = _record_on(md["assignments"], day, last) or {}
    b = _record_on(md["basic_pay"], day, last) or {}
    k = _record_on(md["bank_details"], last, last) or {}
    active = f"{facts['active_days'][0]}/{days}" if facts.height else f"0/{days}"
    rows = [
        ("PERNR", pernr), ("name", a.get("full_name")),
        ("grade", b.get("grade")), ("step", b.get("step")),
        ("employment %", None if b.get("employment_pct") is None else str(b["employment_pct"])),
        ("staff category", a.get("staff_category")), ("entity", a.get("entity")),
        ("duty station", a.get("duty_station")), ("payroll area", a.get("payroll_area")),
        ("bank country", k.get("bank_country")), ("IBAN (masked)", mask_iban(k.get("iban"))),
        ("pay currency", k.get("currency")),
        ("run", f"{run_id} ({info['run_type']} of {info['period']}, pay date {info['pay_date']})"),
        ("active days in the month", active), ("reference day", str(day)),
    ]
    return pl.DataFrame({"field": [r[0] for r in rows], "value": [None if r[1] is None else str(r[1]) for r in rows]},
                        schema={"field": pl.String, "value": pl.String})


def staff_exceptions(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """The staff member's exceptions in the run with their explanation and the reviewer's
    latest decision (findings_decided). Grain: one row per finding, holds first."""
    f = q._frame(con, """
        SELECT finding_id, detector, category, severity, owner, wage_type, for_period, amount_cents,
               expected_cents, amount_cents - expected_cents AS difference_cents, currency, explanation,
               first_seen_run, decision, decided_by, decision_reason, decided_at
        FROM findings_decided WHERE run_id = ? AND pernr = ?
        ORDER BY CASE severity WHEN 'hold' THEN 0 WHEN 'review' THEN 1 ELSE 2 END, detector, wage_type, for_period""",
                 [run_id, pernr])
    f = f.with_columns(pl.col("explanation").map_elements(mask_ibans_in, return_dtype=pl.String))
    f = _money(f, {"amount_cents": "amount", "expected_cents": "expected", "difference_cents": "difference"})
    return f.select("finding_id", "detector", "category", "severity", "owner", "wage_type", "for_period", "amount",
                    "expected", "difference", "currency", "explanation", "first_seen_run", "decision", "decided_by",
                    "decision_reason", "decided_at")


def pay_history(con: duckdb.DuckDBPyConnection, pernr: str, payroll_area: str | None = None) -> pl.DataFrame:
    """Current-month lines of every FINAL run (what was paid each month). Grain: one row per
    period and wage type (amounts summed should a wage type be written twice)."""
    area = "AND r.payroll_area = ?" if payroll_area else ""
    f = q._frame(con, f"""
        SELECT r.period, any_value(p.run_id) AS run_id, p.wage_type, sum(p.amount_cents) AS amount_cents,
               CASE WHEN count(DISTINCT p.currency) = 1 THEN min(p.currency) END AS currency, count(*) AS lines
        FROM mart_pay_lines p JOIN runs r ON r.run_id = p.run_id AND r.version = p.run_version AND r.is_current
        WHERE r.run_type = 'FINAL' AND p.pernr = ? AND p.for_period = p.in_period {area}
        GROUP BY r.period, p.wage_type""", [pernr, payroll_area] if payroll_area else [pernr])
    f = f.join(_wage_type_texts(con), on="wage_type", how="left")
    f = _money(f, {"amount_cents": "amount"})
    return _wage_type_order(f, "period").sort("period", maintain_order=True).select(
        "period", "run_id", "wage_type", "wage_type_text", "wage_class", "amount", "currency", "lines")


def pay_history_chart(frame: pl.DataFrame, title: str = "Paid at each FINAL, by wage type"):
    """Line chart of `pay_history`: one line per earning/deduction wage type over the
    periods, the amount paid (/560) in bold. Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    periods = sorted(frame["period"].unique().to_list()) if frame.height else []
    labels = [f"{p[:4]}-{p[4:]}" for p in periods]
    pos = {p: i for i, p in enumerate(periods)}
    if not periods:
        ax.text(0.5, 0.5, "No FINAL run has paid this staff member yet", ha="center", va="center",
                transform=ax.transAxes)
    lines = frame.filter(~pl.col("wage_type").is_in(["/101", "/550"]))
    for (wt,), part in _wage_type_order(lines).group_by("wage_type", maintain_order=True):
        text = part["wage_type_text"][0] or wt
        xs = [pos[p] for p in part["period"].to_list()]
        ys = [float(v) for v in part["amount"].to_list()]
        if wt == "/560":
            ax.plot(xs, ys, "k-", lw=2.5, marker="o", label=f"{wt} {text}")
        else:
            ax.plot(xs, ys, marker="o", ls="--" if part["wage_class"][0] == "DEDUCTION" else "-", label=f"{wt} {text}")
    currencies = [c for c in frame["currency"].unique().to_list() if c] if frame.height else []
    ax.set_xticks(range(len(labels)), labels)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel(" / ".join(sorted(currencies)) or "amount")
    ax.set_title(title)
    if periods:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    plt.close(fig)  # returned for display, not left open in pyplot's registry
    return fig


def previous_final(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """The latest FINAL run before `run_id` in contract order (None: there is none)."""
    finals = q.final_runs_before(con, run_id)
    return finals["run_id"][-1] if finals.height else None


def _lines(con, run_id: str, pernr: str) -> pl.DataFrame:
    return q.pay_lines(con, run_id).filter(pl.col("pernr") == pernr)


def compare_with_previous_final(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """This run's lines next to the previous FINAL's. Current-month lines are paired by wage
    type (this month against last month's pay), retroactive lines by wage type and
    for-period. Grain: one row per wage type and line kind (current, or retro for-period)."""
    def keyed(lines: pl.DataFrame, col: str) -> pl.DataFrame:
        return (lines.with_columns(pl.when(pl.col("for_period") == pl.col("in_period")).then(pl.lit("current"))
                                   .otherwise(pl.concat_str(pl.lit("retro "), pl.col("for_period"))).alias("line"))
                .group_by("wage_type", "line")
                .agg(pl.col("for_period").first().alias(f"for_period_{col}"), pl.col("amount_cents").sum().alias(col),
                     pl.col("currency").first().alias(f"currency_{col}")))

    schema = {"pernr": pl.String, "wage_type": pl.String, "for_period": pl.String, "in_period": pl.String,
              "amount_cents": pl.Int64, "currency": pl.String}
    this = keyed(_lines(con, run_id, pernr), "this_run")
    prev_id = previous_final(con, run_id)
    prev_lines = _lines(con, prev_id, pernr) if prev_id else pl.DataFrame(schema=schema)
    prev = keyed(prev_lines.select(list(schema)), "previous_final")
    f = this.join(prev, on=["wage_type", "line"], how="full", coalesce=True)
    f = f.with_columns(
        (pl.col("this_run").fill_null(0) - pl.col("previous_final").fill_null(0)).alias("difference"),
        pl.coalesce("currency_this_run", "currency_previous_final").alias("currency"),
        pl.lit(prev_id, dtype=pl.String).alias("previous_final_run"),
    ).join(_wage_type_texts(con).select("wage_type", "wage_type_text"), on="wage_type", how="left")
    f = _money(f, {"this_run": "this_run", "previous_final": "previous_final", "difference": "difference"})
    return _wage_type_order(f, "line").select(
        "wage_type", "wage_type_text", "line", "for_period_this_run", "this_run", "for_period_previous_final",
        "previous_final", "difference", "currency", "previous_final_run")


def _frac(num, den) -> Fraction | None:
    return None if num is None or den is None else Fraction(int(num), int(den))


def _fmt(x: Fraction | int | None, places: int = 6) -> str:
    if x is None:
        return "?"
    x = Fraction(x)
    if x.denominator == 1:
        return f"{x.numerator:,}"
    return f"{float(x):,.{places}f}".rstrip("0").rstrip(".")


def _inputs(wt: str, r: dict, written: dict[str, int], hours: Fraction | None) -> str:
    """The rule with this staff member's numbers (facts row `r` of the pay model)."""
    if not r:
        return "not active in the month (f = 0): no lines expected"
    f = f"{r['active_days']}/{r['days_in_month']}"
    pct = f"{r['employment_pct']}/100"
    net, pr = _cents_to_decimal(r.get("annual_net_cents")), _cents_to_decimal(r.get("annual_pr_cents"))
    base = written.get(pm.WT_BASE)
    base_s = f"{_cents_to_decimal(base)} (as written)" if base is not None else "model 1000"
    if wt == pm.WT_BASE:
        return f"ANNUAL_NET {net} ({r['grade']} step {r['step']}) / 12 × {pct} × f {f}"
    if wt == pm.WT_POST_ADJ:
        return f"{base_s} × {_fmt(_frac(r['multiplier_num'], r['multiplier_den']))} / 100 ({r['duty_station']})"
    if wt == pm.WT_SPOUSE:
        dep = "dependent spouse" if r["has_dependent_spouse"] else "no dependent spouse"
        return f"{base_s} × {_fmt(_frac(r['spouse_num'], r['spouse_den']))} ({dep})"
    if wt == pm.WT_CHILD:
        child = _frac(r["child_num"], r["child_den"])
        annual = _fmt(None if child is None else child / 100, 2)
        return f"{r['n_children']} child(ren) × {annual} {r['currency']} / 12 × f {f}"
    if wt == pm.WT_OVERTIME:
        n = _fmt(hours, 2) if hours is not None else "no"
        return f"{n} hours × round({net} × 1.5 / 2080) (category {r['staff_category']})"
    if wt == pm.WT_PENSION:
        return f"−ANNUAL_PR {pr} / 12 × {pct} × f {f} × {_fmt(_frac(r['pension_num'], r['pension_den']))}"
    if wt == pm.WT_HEALTH:
        post = written.get(pm.WT_POST_ADJ)
        post_s = f"{_cents_to_decimal(post)} (as written)" if post is not None else "model 1010"
        return f"−({base_s} + {post_s}) × {_fmt(_frac(r['health_num'], r['health_den']))}"
    return ""


def compare_with_pay_model(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """Each deterministic wage type of the run's own month: the amount written against the
    pay model (detectors.paymodel.expected_for_period with the run's master data, reference
    tables and the as-written rule). `expected` is null where an input is missing (pay model
    incomputable). Grain: one row per deterministic wage type written or expected."""
    from detectors.context import overtime_hours

    info = q.run_info(con, run_id)
    period = info["period"]
    lines = _lines(con, run_id, pernr)
    current = lines.filter(pl.col("for_period") == pl.col("in_period")).select(
        "pernr", "for_period", "in_period", "wage_type", "amount_cents", "currency", "quantity")
    hours = overtime_hours(current)
    facts, expected = pm.expected_for_period(_md(con, run_id, pernr), _ref(con, run_id), period, written=current,
                                             overtime_hours=hours, pernrs=[pernr])
    model = list(pm.MODEL_WAGE_TYPES)
    written = (current.filter(pl.col("wage_type").is_in(model)).group_by("wage_type")
               .agg(pl.col("amount_cents").sum().alias("written_cents"), pl.len().alias("lines"),
                    pl.col("currency").first()))
    exp = expected.select("wage_type", "expected_cents").with_columns(pl.lit(True).alias("_in_model"))
    f = written.join(exp, on="wage_type", how="full", coalesce=True).with_columns(
        # a wage type the model does not list is expected to be absent (0); a null it lists is incomputable
        pl.when(pl.col("_in_model").is_null()).then(pl.lit(0, dtype=pl.Int64)).otherwise(pl.col("expected_cents"))
        .alias("expected_cents"),
        pl.col("written_cents").fill_null(0), pl.col("lines").fill_null(0),
    ).with_columns((pl.col("written_cents") - pl.col("expected_cents")).alias("difference_cents"))
    fr = facts.row(0, named=True) if facts.height else {}
    as_written = {wt: c for wt, c in written.select("wage_type", "written_cents").iter_rows()}
    h = _frac(hours["hours_num"][0], hours["hours_den"][0]) if hours.height else None
    f = f.with_columns(
        pl.col("currency").fill_null(fr.get("currency")),
        pl.col("wage_type").replace_strict(PAY_MODEL_RULES, default="").alias("rule"),
        pl.col("wage_type").map_elements(lambda wt: _inputs(wt, fr, as_written, h), return_dtype=pl.String)
        .alias("with_these_numbers"),
        pl.lit(period).alias("for_period"),
    ).join(_wage_type_texts(con).select("wage_type", "wage_type_text"), on="wage_type", how="left")
    f = _money(f, {"written_cents": "written", "expected_cents": "expected", "difference_cents": "difference"})
    return f.sort("wage_type").select("wage_type", "wage_type_text", "for_period", "written", "expected",
                                      "difference", "currency", "lines", "rule", "with_these_numbers")


def personnel_actions(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """PA0000 as carried by the run, with the action and status in words. Grain: one row
    per action record, oldest first."""
    a = _md(con, run_id, pernr, ("actions",))["actions"]
    return a.with_columns(
        pl.col("action_type").replace_strict(ACTION_NAMES, default="(unknown action)").alias("action"),
        pl.col("employment_status").replace_strict(STATUS_NAMES, default="(unknown status)").alias("status"),
    ).sort("valid_from").select("valid_from", "valid_to", "action_type", "action", "action_reason",
                                "employment_status", "status")


def dependants(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str) -> pl.DataFrame:
    """PA0021 as carried by the run, with each member's age on the first day of the run's
    period and whether the record makes them a dependant on that day (children also: under
    CHILD_AGE_LIMIT). Grain: one row per family record."""
    info = q.run_info(con, run_id)
    first, _, _ = pm.month_bounds(info["period"])
    fam = _md(con, run_id, pernr, ("family",))["family"]
    limit = pm.reference_for_period(_ref(con, run_id), info["period"])["rates"].get("CHILD_AGE_LIMIT")
    ages = [age_on(b, first) for b in fam["birth_date"].to_list()]
    valid = (pl.col("valid_from") <= first) & (pl.col("valid_to") >= first) & pl.col("is_dependent")
    f = fam.with_columns(
        pl.col("member_type").replace_strict(MEMBER_TYPES, default="(unknown)").alias("member"),
        pl.Series("age_on_first_day", ages, dtype=pl.Int64),
    ).with_columns(
        valid.alias("dependent_on_first_day"),
        pl.when(pl.col("member_type") != "2").then(None)
        .otherwise(pl.lit(None if limit is None else int(limit), dtype=pl.Int64) > pl.col("age_on_first_day"))
        .alias("child_under_age_limit"),
    )
    return f.sort("member_id", "valid_from").select(
        "member_id", "member", "birth_date", "age_on_first_day", "valid_from", "valid_to", "is_dependent",
        "dependent_on_first_day", "child_under_age_limit")


def peers_typical(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str, min_entity_peers: int = 5) -> pl.DataFrame:
    """Typical (median) current-month amount per wage type among the staff member's peers in
    the same run: same grade and staff category — and the same entity when it has at least
    `min_entity_peers` of them. Grain: one row per wage type the staff member or peers have."""
    info = q.run_info(con, run_id)
    facts = pm.staff_month_facts(_md(con, run_id), info["period"])
    me = facts.filter(pl.col("pernr") == pernr)
    if me.height:
        grade, cat, entity = me.row(0, named=True)["grade"], me["staff_category"][0], me["entity"][0]
    else:  # not active in the month: describe them by their records
        h = dict(staff_header(con, run_id, pernr).iter_rows())
        grade, cat, entity = h["grade"], h["staff category"], h["entity"]
    peers = facts.filter((pl.col("grade") == grade) & (pl.col("staff_category") == cat) & (pl.col("pernr") != pernr))
    same_entity = peers.filter(pl.col("entity") == entity)
    if same_entity.height >= min_entity_peers:
        peers, group = same_entity, f"grade {grade}, category {cat}, entity {entity}"
    else:
        group = f"grade {grade}, category {cat} (all entities: fewer than {min_entity_peers} in {entity})"
    current = q.pay_lines(con, run_id).filter(pl.col("for_period") == pl.col("in_period"))
    per_staff = current.group_by("pernr", "wage_type").agg(pl.col("amount_cents").sum(), pl.col("currency").first())
    typical = (per_staff.join(peers.select("pernr"), on="pernr")
               .group_by("wage_type")
               .agg(pl.col("amount_cents").median().round(0).cast(pl.Int64).alias("peers_median_cents"),
                    pl.col("amount_cents").quantile(0.25, "nearest").alias("peers_p25_cents"),
                    pl.col("amount_cents").quantile(0.75, "nearest").alias("peers_p75_cents"),
                    pl.len().alias("peers_with_line"), pl.col("currency").first().alias("peers_currency")))
    mine = per_staff.filter(pl.col("pernr") == pernr).select(
        "wage_type", pl.col("amount_cents").alias("this_staff_cents"), "currency")
    f = mine.join(typical, on="wage_type", how="full", coalesce=True).with_columns(
        pl.coalesce("currency", "peers_currency").alias("currency"),
        pl.lit(peers.height, dtype=pl.Int64).alias("peers"), pl.lit(group).alias("peer_group"),
    ).join(_wage_type_texts(con).select("wage_type", "wage_type_text"), on="wage_type", how="left")
    f = _money(f, {"this_staff_cents": "this_staff", "peers_median_cents": "peers_median",
                   "peers_p25_cents": "peers_p25", "peers_p75_cents": "peers_p75"})
    return _wage_type_order(f).select("wage_type", "wage_type_text", "this_staff", "peers_median", "peers_p25",
                                      "peers_p75", "peers_with_line", "peers", "currency", "peer_group")


def pick_finding(con: duckdb.DuckDBPyConnection, run_id: str, pernr: str, finding_id: str | None = None) -> str:
    """`finding_id` if given (checked), else the staff member's first exception in the run
    (holds first, as `staff_exceptions` lists them)."""
    if finding_id is not None:
        if fetch_one(con, "SELECT 1 FROM findings WHERE finding_id = ?", [finding_id]) is None:
            raise LookupError(f"no finding {finding_id}")
        return finding_id
    ex = staff_exceptions(con, run_id, pernr)
    if ex.height == 0:
        raise LookupError(f"staff member {pernr} has no exception in {run_id}")
    return ex["finding_id"][0]


def audit_trail(con: duckdb.DuckDBPyConnection, pernr: str, run_id: str | None = None) -> pl.DataFrame:
    """Reviewers' decisions on the staff member (append-only), newest first; with `run_id`
    only those taken in that run. Grain: one row per decision."""
    where, params = "pernr = ?", [pernr]
    if run_id is not None:
        where, params = where + " AND run_id = ?", params + [run_id]
    return q._frame(con, "SELECT decision_id, decided_at, actor, action, reason, assignee, expires_on, run_id, "
                         f"finding_id, detector, category, wage_type, for_period FROM decisions WHERE {where} "
                         "ORDER BY decided_at DESC, decision_id DESC", params)


# ------------------------------------------------------------------------------ KPI

def kpi_frame(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> pl.DataFrame:
    """Staff excluded at each FINAL, 12-month average, 2018 baseline and target (kpi_monthly)."""
    return lc.kpi(con, payroll_area)


def staff_paid_at_last_final(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None) -> int:
    """Staff with pay lines in the latest FINAL run (of the area, or of each area summed)."""
    area = "AND payroll_area = ?" if payroll_area else ""
    return int(fetch_value(con, f"""
        WITH last AS (SELECT arg_max(run_id, period) AS run_id, arg_max(version, period) AS version FROM runs
                      WHERE is_current AND run_type = 'FINAL' {area} GROUP BY payroll_area)
        SELECT count(*) FROM mart_staff_run s JOIN last l ON l.run_id = s.run_id AND l.version = s.run_version""",
                           [payroll_area] if payroll_area else None) or 0)


def kpi_figure(con: duckdb.DuckDBPyConnection, payroll_area: str | None = None, baseline: float = 295,
               target: float = 120, scale_from_staff: int | None = None):
    """Monthly staff excluded at FINAL and their 12-month average per payroll area, against
    the 2018 average and the target (as lifecycle.kpi_chart, as a Figure).

    The baseline and target are counts for the whole Geneva payroll. `scale_from_staff`
    (that payroll's size, an estimate) scales both lines to the number of staff paid at
    this warehouse's latest FINAL, for a smaller (simulated) area; the labels say so."""
    import matplotlib.pyplot as plt

    k = kpi_frame(con, payroll_area)
    note = ""
    if scale_from_staff:
        staff = staff_paid_at_last_final(con, payroll_area)
        factor = staff / scale_from_staff
        baseline, target = baseline * factor, target * factor
        note = f", scaled × {staff:,}/{scale_from_staff:,} staff"
    fig, ax = plt.subplots(figsize=(8, 4.2))
    periods = sorted(k["period"].unique().to_list())
    pos = {p: i for i, p in enumerate(periods)}
    for (area,), part in k.group_by("payroll_area", maintain_order=True):
        xs = [pos[p] for p in part["period"].to_list()]
        ax.plot(xs, part["excluded_staff"].to_list(), "o-", label=f"{area}: excluded at FINAL")
        ax.plot(xs, part["avg_12m"].to_list(), "s--", label=f"{area}: 12-month average")
    ax.axhline(baseline, color="grey", lw=1, ls="-.", label=f"2018 average ({baseline:.3g}{note})")
    ax.axhline(target, color="green", lw=1.5, label=f"target ({target:.3g}{note})")
    if not periods:
        ax.text(0.5, 0.5, "No FINAL run in the warehouse yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(range(len(periods)), [f"{p[:4]}-{p[4:]}" for p in periods])
    ax.set_ylabel("staff")
    ax.set_ylim(bottom=0)
    ax.set_title("Staff held (excluded) at FINAL" + (f" — payroll area {payroll_area}" if payroll_area else ""))
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    plt.close(fig)
    return fig


def precision_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per detector over all months: exceptions confirmed vs marked false positive by
    reviewers and the precision confirmed / (confirmed + false positives). Grain: one row
    per detector with at least one such decision."""
    p = lc.rule_precision(con)
    return (p.group_by("detector").agg(pl.col("confirmed").sum(), pl.col("false_positives").sum(),
                                       pl.col("exceptions").sum(), pl.col("period").n_unique().alias("months"))
            .with_columns((pl.col("confirmed") / (pl.col("confirmed") + pl.col("false_positives"))).alias("precision"))
            .sort("detector"))


def precision_figure(con: duckdb.DuckDBPyConnection):
    """Bars of per-rule precision from reviewers' decisions, each labelled confirmed/decided.
    With no such decision yet, an empty chart that says so (a precision needs decisions)."""
    import matplotlib.pyplot as plt

    p = precision_frame(con)
    fig, ax = plt.subplots(figsize=(8, 4))
    if p.height == 0:
        ax.text(0.5, 0.5, "No reviewer decision yet (confirm / false_positive):\nprecision cannot be measured.",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
    else:
        xs = range(p.height)
        ax.bar(xs, p["precision"].to_list(), color="tab:blue")
        for x, c, n in zip(xs, p["confirmed"].to_list(), (p["confirmed"] + p["false_positives"]).to_list()):
            ax.text(x, c / n + 0.02, f"{c}/{n}", ha="center", fontsize=8)
        ax.set_xticks(list(xs), p["detector"].to_list())
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("precision (confirmed / decided)")
    ax.set_title("Per-rule precision from reviewers' decisions")
    fig.tight_layout()
    plt.close(fig)
    return fig
