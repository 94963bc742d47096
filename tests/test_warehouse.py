"""Warehouse: schema grain, record dedup, noop / replace / reject, rollback, lock, archive."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from paywatch.extract.model import Extract, ExtractError, FileEntry, Manifest
from paywatch.extract.schema import FILE_NAMES, FILES, STAGING_TABLES
from paywatch.warehouse import (
    Warehouse,
    WarehouseBusy,
    WarehouseLock,
    WarehouseMissing,
    current_version,
    final_lines_before,
    final_runs_before,
    history_before,
    load_run,
    marts,
    master_data_as_of_run,
    open_warehouse,
    paid_so_far,
    pay_lines,
    quarantine,
    reference_as_of_run,
    replace_run_rows,
    run_order,
    staff_run,
    warehouse_digest,
)
from paywatch.warehouse.schema import table_grains

REPO = Path(__file__).resolve().parents[1]
OPEN = date(9999, 12, 31)
STAFF = ("00001001", "00001002", "00001003")


# --- building small typed extracts, as the reader hands them on ----------------------------


def _frame(file_name: str, rows: list[tuple]) -> pl.DataFrame:
    """Typed like the reader's output: SAP names, cents, dates, Decimal(38, max decimals)."""
    kinds = {"id": pl.String, "code": pl.String, "text": pl.String, "period": pl.String,
             "seqnr": pl.String, "date": pl.Date, "amount": pl.Int64, "integer": pl.Int64}
    cols = FILES[file_name]
    rows = [tuple(Decimal(v) if c.kind == "number" and v is not None else v
                  for c, v in zip(cols, r)) for r in rows]
    schema = {}
    for i, c in enumerate(cols):
        if c.kind == "number":
            scale = max((-r[i].as_tuple().exponent for r in rows if r[i] is not None), default=0)
            schema[c.name] = pl.Decimal(38, max(scale, 0))
        else:
            schema[c.name] = kinds[c.kind]
    return pl.DataFrame(rows, schema=schema, orient="row")


def base_frames(period: str = "202503") -> dict[str, pl.DataFrame]:
    d = date
    pa0000 = [(p, d(2020, 1, 1), OPEN, "01", None, "3") for p in STAFF]
    pa0001 = [
        ("00001001", d(2020, 1, 1), OPEN, "Zoë Ñandú-Øster", "GVA", "P", "OHCHR", "GV", "K100"),
        ("00001002", d(2020, 1, 1), OPEN, "李明, \"Ming\"", "GVA", "G", "UNCTAD", "GV", None),
        ("00001003", d(2020, 1, 1), OPEN, "Amina Diallo", "GVA", "P", "ECE", "GV", "K300"),
    ]
    pa0008 = [
        ("00001001", d(2020, 1, 1), OPEN, "P-3", "01", 100),
        ("00001002", d(2020, 1, 1), OPEN, "G-5", "03", 50),
        ("00001003", d(2020, 1, 1), OPEN, "P-4", "02", 100),
    ]
    pa0009 = [
        ("00001001", d(2020, 1, 1), OPEN, "CH", "CH9300762011623852957", "USD"),
        ("00001002", d(2020, 1, 1), OPEN, "CH", "CH5604835012345678009", "CHF"),
        ("00001003", d(2020, 1, 1), OPEN, "FR", "FR7630006000011234567890189", "USD"),
    ]
    pa0021 = [
        ("00001001", "01", "1", d(1985, 2, 28), d(2020, 1, 1), OPEN, "X"),
        ("00001001", "02", "2", d(2015, 6, 1), d(2020, 1, 1), OPEN, "X"),
        ("00001003", "01", "2", d(2000, 3, 1), d(2020, 1, 1), OPEN, None),
    ]
    rt = []
    staff = (("00001001", "USD"), ("00001002", "CHF"), ("00001003", "USD"))
    for seq, (p, cur) in enumerate(staff, start=1):
        lines = [("1000", 666667, None), ("1010", 544667, None), ("3000", -98750, None)]
        if p == "00001002":
            lines = [("1000", 208342, None), ("1400", 12345, "3.5"), ("3000", -29954, None)]
        for wt, amt, qty in lines:
            rt.append((p, str(seq), period, period, wt, amt, cur, qty))
        gross = sum(a for w, a, _ in lines if not w.startswith("3"))
        net = gross + sum(a for w, a, _ in lines if w.startswith("3"))
        rt += [(p, str(seq), period, period, "/101", gross, cur, None),
               (p, str(seq), period, period, "/550", net, cur, None),
               (p, str(seq), period, period, "/560", net, cur, None)]
    rt.append(("00001001", "1", "202501", period, "1000", -1234, "USD", None))  # a retro line
    t510 = [("P-3", "01", d(2024, 1, 1), OPEN, 8000000, 15000000, "USD"),
            ("G-5", "03", d(2024, 1, 1), OPEN, 5000200, 9100300, "CHF"),
            ("P-4", "02", d(2024, 1, 1), OPEN, 9500000, 17500000, "USD")]
    t7unpa = [("GVA", d(2024, 1, 1), OPEN, "81.7")]
    t512w = [("1000", "Net base salary", "EARNING", "REGULAR", "HR"),
             ("1010", "Post adjustment", "EARNING", "REGULAR", "HR"),
             ("1400", "Overtime", "EARNING", "REGULAR", "HR"),
             ("2000", "Salary advance", "EARNING", "OFFCYCLE", "FINANCE"),
             ("3000", "Pension", "DEDUCTION", "REGULAR|OFFCYCLE", "HR"),
             ("/101", "Total gross", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
             ("/550", "Statutory net", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE"),
             ("/560", "Amount paid", "TOTAL", "REGULAR|OFFCYCLE", "FINANCE")]
    t7unrate = [("PENSION_STAFF_RATE", "0.079", d(2024, 1, 1), OPEN),
                ("SPOUSE_RATE", "0.06", d(2024, 1, 1), OPEN),
                ("HEALTH_RATE", "0.04", d(2024, 1, 1), OPEN)]
    raw = {"PA0000.csv": pa0000, "PA0001.csv": pa0001, "PA0008.csv": pa0008,
           "PA0009.csv": pa0009, "PA0021.csv": pa0021, "RT.csv": rt, "T510.csv": t510,
           "T7UNPA.csv": t7unpa, "T512W.csv": t512w, "T7UNRATE.csv": t7unrate}
    return {name: _frame(name, raw[name]) for name in FILE_NAMES}


def make_extract(folder: Path, run_id: str = "GV-202503-SIM1", period: str = "202503",
                 run_type: str = "SIM1", area: str = "GV",
                 extracted_at: datetime = datetime(2025, 3, 10, 6, 0, tzinfo=UTC),
                 frames: dict[str, pl.DataFrame] | None = None, write: bool = False):
    """An Extract plus the received files (name -> bytes) whose checksums it declares."""
    frames = frames or base_frames(period)
    files = {name: frames[name].write_csv().encode() for name in FILE_NAMES}
    entries = {n: FileEntry(frames[n].height, hashlib.sha256(b).hexdigest())
               for n, b in files.items()}
    manifest = Manifest("1.0", run_id, area, period, run_type, date(2025, 3, 25),
                        extracted_at, entries)
    mbytes = json.dumps({"format_version": "1.0", "run_id": run_id, "payroll_area": area,
                         "period": period, "run_type": run_type,
                         "extracted_at": extracted_at.isoformat(),
                         "files": {n: {"rows": e.rows, "sha256": e.sha256}
                                   for n, e in entries.items()}}).encode()
    files["manifest.json"] = mbytes
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        for n, b in files.items():
            (folder / n).write_bytes(b)
    return Extract(folder, manifest, frames, mbytes), files


def with_change(frames, file_name, fn) -> dict[str, pl.DataFrame]:
    out = dict(frames)
    out[file_name] = fn(frames[file_name])
    return out


@pytest.fixture
def wh(tmp_path):
    db = tmp_path / "wh" / "paywatch.duckdb"
    con = open_warehouse(db)
    yield con, db, tmp_path / "wh" / "archive"
    con.close()


def load(wh, extract_files, **kw):
    con, _, archive = wh
    extract, files = extract_files
    return load_run(con, extract, files, archive, **kw)


def count(con, sql, params=None) -> int:
    return con.execute(sql, params or []).fetchone()[0]


# --- tests ---------------------------------------------------------------------------------


def test_schema_is_idempotent_and_states_grain(tmp_path):
    db = tmp_path / "w.duckdb"
    con = open_warehouse(db)
    digest = warehouse_digest(con)
    con.close()
    con = open_warehouse(db)  # second open: DDL is a no-op
    assert warehouse_digest(con) == digest
    comments = dict(con.execute("SELECT table_name, comment FROM duckdb_tables()").fetchall())
    for table, grain in table_grains().items():
        assert grain.startswith("grain: ") and comments[table] == grain
    for name in FILE_NAMES:
        assert STAGING_TABLES[name] in comments
    con.close()


def test_load_fills_every_layer_at_its_grain(wh, tmp_path):
    con = wh[0]
    ex = make_extract(tmp_path / "r1")
    res = load(wh, ex)
    assert (res.outcome, res.run_id, res.run_version) == ("loaded", "GV-202503-SIM1", 1)
    frames = ex[0].frames
    for name in FILE_NAMES:
        table = STAGING_TABLES[name]
        assert count(con, f"SELECT count(*) FROM {table}") == frames[name].height, table
    n_rt = frames["RT.csv"].height
    assert count(con, "SELECT count(*) FROM mart_pay_lines") == n_rt
    assert count(con, "SELECT count(DISTINCT (run_id, run_version, line_no)) FROM mart_pay_lines") == n_rt
    assert count(con, "SELECT count(*) FROM mart_staff_run") == len(STAFF)
    assert count(con, "SELECT count(*) FROM runs WHERE is_current") == 1
    assert count(con, "SELECT count(*) FROM deliveries WHERE outcome = 'loaded'") == 1
    assert count(con, "SELECT count(*) FROM delivery_files") == 11
    assert count(con, "SELECT count(*) FROM raw_files") == 11
    # typed staging, exact values
    row = con.execute("SELECT multiplier_pct FROM stg_post_adjustment").fetchone()
    assert row[0] == Decimal("81.7")
    assert con.execute("SELECT is_dependent FROM stg_family ORDER BY pernr, member_id").fetchall() \
        == [(True,), (True,), (False,)]
    assert con.execute("SELECT full_name FROM stg_assignments WHERE pernr = '00001002'") \
        .fetchone()[0] == '李明, "Ming"'
    # marts
    lines = pay_lines(con, res.run_id)
    assert lines["line_no"].to_list() == list(range(1, n_rt + 1))
    retro = lines.filter(pl.col("is_retro"))
    assert retro.select("pernr", "for_period", "amount_cents").rows() == [("00001001", "202501", -1234)]
    assert set(lines.filter(pl.col("wage_type") == "3000")["wage_class"]) == {"DEDUCTION"}
    assert set(lines.filter(pl.col("wage_type") == "/101")["owner"]) == {"FINANCE"}
    assert lines.filter(pl.col("wage_type") == "1400")["quantity"][0] == Decimal("3.5")
    staff = staff_run(con, res.run_id).row(0, named=True)
    assert staff["pernr"] == "00001001" and staff["n_lines"] == 7
    assert staff["gross_cents"] == 666667 + 544667 and staff["paid_cents"] == staff["net_cents"]
    assert staff["currency"] == "USD"


def test_pay_lines_are_stored_once_and_an_older_warehouse_is_migrated(wh, tmp_path):
    """mart_pay_lines is a view over the staged lines (written once) with the run's wage
    classes; a warehouse from before, where it was a table holding a copy of every line, gets
    its run wage types filled and the copy dropped on opening, and reads the same lines."""
    con, db, _ = wh
    load(wh, make_extract(tmp_path / "r1"))
    load(wh, make_extract(tmp_path / "r2", run_id="GV-202504-SIM1", period="202504"))
    kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables "
                             "WHERE table_name IN ('mart_pay_lines', 'mart_run_wage_types')").fetchall())
    assert kinds == {"mart_pay_lines": "VIEW", "mart_run_wage_types": "BASE TABLE"}
    before = con.execute("SELECT * FROM mart_pay_lines ORDER BY ALL").fetchall()
    assert len(before) == count(con, "SELECT count(*) FROM stg_pay_lines")
    # the layout before: the lines copied into a table, no run wage types
    con.execute("CREATE TABLE old_copy AS SELECT * FROM mart_pay_lines")
    con.execute("DROP VIEW mart_pay_lines")
    con.execute("ALTER TABLE old_copy RENAME TO mart_pay_lines")
    con.execute("DROP TABLE mart_run_wage_types")
    con.close()
    again = open_warehouse(db)
    try:
        kind = again.execute("SELECT table_type FROM information_schema.tables "
                             "WHERE table_name = 'mart_pay_lines'").fetchone()[0]
        assert kind == "VIEW"
        assert again.execute("SELECT * FROM mart_pay_lines ORDER BY ALL").fetchall() == before
        assert count(again, "SELECT count(DISTINCT (run_id, run_version)) FROM mart_run_wage_types") == 2
    finally:
        again.close()


def test_master_data_stored_once_and_as_of_run(wh, tmp_path):
    con = wh[0]
    f1 = base_frames()
    # run 2: one promotion entered (a changed PA0008 record and a new one) — the rest repeats
    f2 = with_change(f1, "PA0008.csv", lambda df: pl.concat([
        df.with_columns(pl.when(pl.col("PERNR") == "00001003").then(pl.lit(date(2025, 2, 28)))
                        .otherwise(pl.col("ENDDA")).alias("ENDDA")),
        _frame("PA0008.csv", [("00001003", date(2025, 3, 1), OPEN, "P-5", "01", 100)]),
    ]))
    load(wh, make_extract(tmp_path / "a", frames=f1))
    load(wh, make_extract(tmp_path / "b", run_id="GV-202503-SIM2", run_type="SIM2",
                          extracted_at=datetime(2025, 3, 12, tzinfo=UTC), frames=f2))
    assert count(con, "SELECT count(*) FROM stg_actions") == 3  # same records: stored once
    assert count(con, "SELECT count(*) FROM stg_basic_pay") == 5  # 3 + changed + new
    assert count(con, "SELECT count(*) FROM stg_wage_types") == 8
    assert count(con, "SELECT count(*) FROM stg_record_runs WHERE table_name = 'stg_basic_pay'") == 7
    assert count(con, "SELECT count(*) FROM stg_pay_lines") == 2 * f1["RT.csv"].height  # per run
    cols = {c.name: c.staging for c in FILES["PA0008.csv"]}
    for run_id, frames in (("GV-202503-SIM1", f1), ("GV-202503-SIM2", f2)):
        got = master_data_as_of_run(con, run_id, "stg_basic_pay")
        want = frames["PA0008.csv"].rename(cols).sort(pl.all())
        assert got.columns == want.columns
        assert got.rows() == want.rows()
    pa = master_data_as_of_run(con, "GV-202503-SIM1", "PA0021.csv")  # file name works too
    assert pa.columns == [c.staging for c in FILES["PA0021.csv"]]
    rates = reference_as_of_run(con, "GV-202503-SIM2", "stg_rates")
    assert dict(rates.select("rate_key", "rate_value").rows())["PENSION_STAFF_RATE"] == Decimal("0.079")
    with pytest.raises(ValueError):
        master_data_as_of_run(con, "GV-202503-SIM1", "stg_rates")


def test_duplicate_records_in_one_file_are_kept_as_copies(wh, tmp_path):
    con = wh[0]
    frames = with_change(base_frames(), "PA0000.csv", lambda df: pl.concat([df, df.head(1)]))
    load(wh, make_extract(tmp_path / "d", frames=frames))
    assert count(con, "SELECT count(*) FROM stg_actions") == 3
    assert count(con, "SELECT max(copies) FROM stg_record_runs") == 2
    assert master_data_as_of_run(con, "GV-202503-SIM1", "stg_actions").height == 4


def test_identical_redelivery_is_a_noop(wh, tmp_path):
    con = wh[0]
    ex = make_extract(tmp_path / "r")
    load(wh, ex)
    before = warehouse_digest(con, exclude_delivery_log=True)
    log_before = count(con, "SELECT count(*) FROM deliveries")
    res = load(wh, make_extract(tmp_path / "r"))
    assert (res.outcome, res.run_version) == ("noop", 1)
    assert warehouse_digest(con, exclude_delivery_log=True) == before
    assert count(con, "SELECT count(*) FROM deliveries") == log_before + 1
    assert con.execute("SELECT outcome, run_version FROM deliveries ORDER BY delivery_id DESC") \
        .fetchone() == ("noop", 1)


def test_correction_replaces_run_and_supersedes_findings(wh, tmp_path):
    con = wh[0]
    load(wh, make_extract(tmp_path / "v1"))
    finding = pl.DataFrame({
        "finding_id": ["f-1"], "pernr": ["00001001"], "detector": ["totals"],
        "category": ["totals_mismatch"], "severity": ["hold"], "owner": ["FINANCE"],
        "amount_cents": [100], "score": [1.0], "explanation": ["x"],
        "evidence": [json.dumps({"a": 1})], "config_version": ["c1"],
    })
    replace_run_rows(con, "findings", "GV-202503-SIM1", 1, finding)
    fixed = with_change(base_frames(), "RT.csv",
                        lambda df: df.with_columns(pl.col("BETRG") + 1))
    res = load(wh, make_extract(tmp_path / "v2", frames=fixed,
                                extracted_at=datetime(2025, 3, 11, tzinfo=UTC)))
    assert (res.outcome, res.run_version) == ("replaced", 2)
    assert current_version(con, "GV-202503-SIM1") == 2
    assert con.execute("SELECT version, is_current FROM runs ORDER BY version").fetchall() \
        == [(1, False), (2, True)]
    assert con.execute("SELECT superseded FROM findings").fetchall() == [(True,)]
    log = con.execute("SELECT delivery_id, outcome, replaced_delivery_id, replaced_by "
                      "FROM deliveries ORDER BY delivery_id").fetchall()
    assert log == [(1, "loaded", None, 2), (2, "replaced", 1, None)]
    # the corrected run takes the place of version 1 in run order
    assert con.execute("SELECT DISTINCT order_extracted_at FROM runs").fetchall() \
        == [(datetime(2025, 3, 10, 6, 0),)]
    # old version kept as history, queries see the current one
    assert count(con, "SELECT count(*) FROM mart_pay_lines WHERE run_version = 1") > 0
    assert pay_lines(con, "GV-202503-SIM1")["amount_cents"].to_list() \
        == (fixed["RT.csv"]["BETRG"]).to_list()


def test_known_run_id_with_other_identity_is_rejected(wh, tmp_path):
    con, db, _ = wh
    load(wh, make_extract(tmp_path / "ok"))
    before = warehouse_digest(con)
    before_data = warehouse_digest(con, exclude_delivery_log=True)
    for kw in ({"period": "202504"}, {"run_type": "FINAL"}, {"area": "NY"}):
        ex = make_extract(tmp_path / "bad", **kw)
        with pytest.raises(ExtractError) as err:
            load(wh, ex)
        assert (err.value.file, err.value.line, err.value.column) == ("manifest.json", None, "run_id")
        assert "GV-202503-SIM1" in err.value.one_line()
        assert warehouse_digest(con) == before  # nothing written at all
    # the caller keeps the rejected delivery: only the delivery log grows
    ex, _ = make_extract(tmp_path / "bad", period="202504", write=True)
    q = quarantine(ex.folder, "manifest.json:-:run_id: conflict", db.parent / "quarantine", con,
                   run_id="GV-202503-SIM1")
    assert warehouse_digest(con, exclude_delivery_log=True) == before_data
    assert con.execute("SELECT outcome, run_id, reason, quarantine_path FROM deliveries "
                       "WHERE outcome = 'rejected'").fetchone() \
        == ("rejected", "GV-202503-SIM1", "manifest.json:-:run_id: conflict", str(q))


def test_failure_inside_the_transaction_leaves_the_warehouse_unchanged(wh, tmp_path, monkeypatch):
    con = wh[0]
    load(wh, make_extract(tmp_path / "v1"))
    before = warehouse_digest(con)

    def boom(*a, **k):
        raise RuntimeError("injected failure while building marts")

    monkeypatch.setattr(marts, "_build_mart_staff_run", boom)
    # a new run and a correction of the loaded one: both roll back completely
    new_run = make_extract(tmp_path / "n", run_id="GV-202503-SIM2", run_type="SIM2")
    changed = with_change(base_frames(), "RT.csv", lambda df: df.with_columns(pl.col("BETRG") * 2))
    correction = make_extract(tmp_path / "c", frames=changed)
    for ex in (new_run, correction):
        with pytest.raises(RuntimeError, match="injected"):
            load(wh, ex)
        assert warehouse_digest(con) == before
    monkeypatch.undo()
    assert load(wh, new_run).outcome == "loaded"  # the connection is usable afterwards


@pytest.fixture
def usual_umask():
    """umask 022: without care, new files would be world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_archive_keeps_exact_bytes_privately(usual_umask, tmp_path):
    db, archive = tmp_path / "wh" / "paywatch.duckdb", tmp_path / "wh" / "archive"
    open_warehouse(db).close()  # checkpointed: the next write starts a new WAL file
    con = open_warehouse(db)
    ex, files = make_extract(tmp_path / "r")
    load_run(con, ex, files, archive)
    rows = con.execute("SELECT sha256, file_name, size_bytes, archived_path FROM raw_files").fetchall()
    assert {r[1] for r in rows} == set(files)
    for sha, name, size, rel in rows:
        path = archive / rel
        assert rel == f"{sha[:2]}/{sha}" and path.read_bytes() == files[name]
        assert size == len(files[name])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(archive.stat().st_mode) == 0o700
    assert Path(f"{db}.wal").exists()  # written by the load, not yet checkpointed
    for f in db.parent.iterdir():  # database, WAL, spill folder: private whatever the umask
        want = 0o700 if f.is_dir() else 0o600
        assert stat.S_IMODE(f.stat().st_mode) == want, f
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    with WarehouseLock(db):
        assert stat.S_IMODE(Path(f"{db}.lock").stat().st_mode) == 0o600
    con.close()


def test_load_from_folder_paths(wh, tmp_path):
    con = wh[0]
    ex, _ = make_extract(tmp_path / "folder", write=True)
    res = load_run(con, ex, None, wh[2])
    assert res.outcome == "loaded"
    assert count(con, "SELECT count(*) FROM raw_files") == 11


def test_changed_file_after_reading_is_rejected(wh, tmp_path):
    con = wh[0]
    ex, files = make_extract(tmp_path / "x")
    files = dict(files, **{"T510.csv": files["T510.csv"] + b"tampered"})
    before = warehouse_digest(con)
    with pytest.raises(ExtractError, match="differs from the manifest"):
        load(wh, (ex, files))
    assert warehouse_digest(con) == before


def test_quarantine_copies_regular_contract_files_only(wh, tmp_path):
    con, db, _ = wh
    ex, files = make_extract(tmp_path / "in", write=True)
    folder = ex.folder
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of the delivery")
    (folder / "PA0001.csv").unlink()
    (folder / "PA0001.csv").symlink_to(secret)
    (folder / "notes.txt").write_text("extra")
    (folder / "RT.csv").unlink()
    # the run_id comes with the error (the reader validated it): the manifest is never re-read
    q = quarantine(folder, ExtractError("RT.csv", None, None, "file is missing", run_id="GV-202503-SIM1"),
                   db.parent / "quarantine", con)
    assert q.name.endswith("-GV-202503-SIM1")
    names = sorted(p.name for p in q.iterdir())
    assert "PA0001.csv" not in names and "notes.txt" not in names and "RT.csv" not in names
    assert "REASON.txt" in names and "manifest.json" in names
    assert (q / "T510.csv").read_bytes() == files["T510.csv"]
    reason = (q / "REASON.txt").read_text()
    assert reason.splitlines()[0] == "RT.csv:-:-: file is missing"
    assert "PA0001.csv: not copied (symbolic link)" in reason
    assert stat.S_IMODE(q.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in q.iterdir())
    assert count(con, "SELECT count(*) FROM delivery_files") == 9  # manifest + 8 CSVs
    # an unreadable manifest: no run_id was validated, so 'unknown'
    (folder / "manifest.json").write_text("{broken")
    q2 = quarantine(folder, "manifest.json:-:-: not JSON", db.parent / "quarantine", con)
    assert q2.name.endswith("-unknown")


def test_numbers_keep_every_decimal(wh, tmp_path):
    con = wh[0]
    long = "0.07912345678901234567"  # 20 decimals: more than the default scale of 18
    frames = with_change(base_frames(), "T7UNRATE.csv", lambda df: _frame("T7UNRATE.csv", [
        ("PENSION_STAFF_RATE", long, date(2024, 1, 1), OPEN),
        ("HEALTH_RATE", "0.04", date(2024, 1, 1), OPEN)]))
    load(wh, make_extract(tmp_path / "a"))
    load(wh, make_extract(tmp_path / "b", run_id="GV-202503-SIM2", run_type="SIM2", frames=frames))
    rates = dict(reference_as_of_run(con, "GV-202503-SIM2", "stg_rates")
                 .select("rate_key", "rate_value").rows())
    assert rates["PENSION_STAFF_RATE"] == Decimal(long)
    # the unchanged HEALTH_RATE record is still the one stored by the first run
    assert count(con, "SELECT count(*) FROM stg_rates WHERE rate_key = 'HEALTH_RATE'") == 1


def test_run_order_history_and_paid_ledger(wh, tmp_path):
    con = wh[0]
    ts = lambda d, h=6: datetime(2025, *d, h, tzinfo=UTC)
    runs = [("GV-202502-FINAL", "202502", "FINAL", ts((2, 20))),
            ("GV-202503-SIM1", "202503", "SIM1", ts((3, 10))),
            ("GV-202503-OFF1", "202503", "OFFCYCLE", ts((3, 10))),  # same stamp: run_id order
            ("GV-202503-FINAL", "202503", "FINAL", ts((3, 20)))]
    for run_id, period, rtype, at in reversed(runs):  # delivery order must not matter
        load(wh, make_extract(tmp_path / run_id, run_id=run_id, period=period, run_type=rtype,
                              extracted_at=at))
    order = run_order(con, "GV")["run_id"].to_list()
    assert order == ["GV-202502-FINAL", "GV-202503-OFF1", "GV-202503-SIM1", "GV-202503-FINAL"]
    assert history_before(con, "GV-202503-SIM1")["run_id"].to_list() == order[:2]
    assert final_runs_before(con, "GV-202503-FINAL")["run_id"].to_list() == ["GV-202502-FINAL"]
    lines = final_lines_before(con, "GV-202503-FINAL", ["00001002"])
    assert set(lines["run_id"]) == {"GV-202502-FINAL"} and set(lines["pernr"]) == {"00001002"}
    assert lines.height == 6 and set(lines["in_period"]) == {"202502"}
    # a correction with a later stamp keeps its place
    fixed = with_change(base_frames("202503"), "RT.csv", lambda df: df.with_columns(pl.col("BETRG") + 5))
    load(wh, make_extract(tmp_path / "fix", run_id="GV-202503-OFF1", run_type="OFFCYCLE",
                          extracted_at=ts((3, 25)), frames=fixed))
    assert run_order(con, "GV")["run_id"].to_list() == order
    ledger = paid_so_far(con, "GV", ["00001001"])
    row = ledger.filter((pl.col("for_period") == "202502") & (pl.col("wage_type") == "1000"))
    assert row["paid_cents"].to_list() == [666667]
    retro = ledger.filter((pl.col("for_period") == "202501") & (pl.col("wage_type") == "1000"))
    assert retro["paid_cents"].to_list() == [-1234 * 2] and retro["n_lines"].to_list() == [2]
    assert set(ledger["pernr"]) == {"00001001"}
    before = paid_so_far(con, "GV", before_run_id="GV-202503-FINAL")
    assert set(before["for_period"]) == {"202501", "202502"}
    assert before.filter(pl.col("for_period") == "202501")["paid_cents"].sum() < 0


def test_replace_run_rows_is_per_run_version(wh, tmp_path):
    con = wh[0]
    load(wh, make_extract(tmp_path / "r"))
    con.execute("CREATE TABLE mart_expected (run_id VARCHAR, run_version INTEGER, "
                "pernr VARCHAR, expected_cents BIGINT)")
    replace_run_rows(con, "mart_expected", "GV-202503-SIM1", 1,
                     pl.DataFrame({"pernr": ["a", "b"], "expected_cents": [1, 2]}))
    replace_run_rows(con, "mart_expected", "GV-202503-SIM1", 1,
                     pl.DataFrame({"pernr": ["c"], "expected_cents": [3]}))
    replace_run_rows(con, "mart_expected", "OTHER", 1,
                     pl.DataFrame({"pernr": ["z"], "expected_cents": [9]}))
    assert con.execute("SELECT run_id, pernr FROM mart_expected ORDER BY ALL").fetchall() \
        == [("GV-202503-SIM1", "c"), ("OTHER", "z")]
    with pytest.raises(ValueError):
        replace_run_rows(con, "mart_expected", "X", 1, pl.DataFrame({"nope": [1]}))
    with pytest.raises(ValueError):
        replace_run_rows(con, "runs", "X", 1, pl.DataFrame({"period": ["1"]}))


_CHILD = """
import sys
from paywatch.warehouse.db import WarehouseBusy, WarehouseLock
try:
    with WarehouseLock(sys.argv[1], wait_seconds=float(sys.argv[2])):
        print("ACQUIRED")
except WarehouseBusy as exc:
    print(f"BUSY pid={exc.pid}")
    print(exc, file=sys.stderr)
    sys.exit(3)
"""


def _child(db: Path, wait: float) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(db), str(wait)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_second_writer_gets_a_clear_busy_message(tmp_path):
    db = tmp_path / "w.duckdb"
    with WarehouseLock(db):
        proc = _child(db, 0.3)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    assert out.strip() == f"BUSY pid={os.getpid()}"
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert f"PID {os.getpid()}" in lines[0] and "busy" in lines[0] and str(db) in lines[0]
    # in-process too: a second lock on the same file is refused
    with WarehouseLock(db), pytest.raises(WarehouseBusy, match=f"PID {os.getpid()}"):
        WarehouseLock(db).acquire()


def test_waiting_writer_gets_the_lock_when_released(tmp_path):
    db = tmp_path / "w.duckdb"
    lock = WarehouseLock(db).acquire()
    proc = _child(db, 30)
    time.sleep(1.0)
    lock.release()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "ACQUIRED", (out, err)


def test_warehouse_resource_keeps_the_file_name_and_hands_out_connections(tmp_path, monkeypatch):
    wh = Warehouse.at(tmp_path / "data" / "w.duckdb")
    # any file name: the folders are beside it, the file itself is the one given
    assert wh.db == tmp_path / "data" / "w.duckdb" and wh.paths.archive == tmp_path / "data" / "archive"
    assert not wh.exists
    with pytest.raises(WarehouseMissing, match="no warehouse at .*w.duckdb"):
        with wh.reader():
            pass
    with wh.writer() as con:
        assert current_version(con, "GV-202503-SIM1") is None
        # one writer at a time: a second one is refused while the first holds the lock
        with pytest.raises(WarehouseBusy):
            with wh.writer():
                pass
    assert wh.exists and stat.S_IMODE(wh.db.stat().st_mode) == 0o600
    with wh.reader() as con, pytest.raises(Exception, match="read-only"):
        con.execute("CREATE TABLE t (x INTEGER)")
    monkeypatch.setenv("PAYWATCH_HOME", str(tmp_path / "home"))
    assert Warehouse.at(None) == Warehouse.default() == Warehouse.in_folder(tmp_path / "home")
    assert Warehouse.default().db == tmp_path / "home" / "warehouse.duckdb"
