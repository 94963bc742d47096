"""Data-quality gate (paywatch/dq): Great Expectations suites kept as files, run on frames
taken from the warehouse, critical failures stopping detection (exit 3), warnings reported.

Runs of the committed sample data_samples/gv-300 are copied and corrupted so that they stay
parseable (CSV rewritten, manifest rows and checksums recomputed). The history before the
target run (GV-202601-SIM1: its previous SIM1 is GV-202512-SIM1) is loaded once per module;
each case works on a copy of that warehouse. Every expectation is seen to fail (on frames
broken on purpose) and to pass (on the clean run).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import shutil
import zipfile
from pathlib import Path

import duckdb
import polars as pl
import pytest

from paywatch.settings import load_settings
from paywatch import pipeline
from paywatch.dq import catalog, frames, runner
from paywatch.paths import Paths
from paywatch.warehouse.db import open_warehouse
from extract_fixture import read_csv, write_csv

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "gv-300"
RUNS = (SAMPLE / "runs.txt").read_text(encoding="utf-8").split()
TARGET = "GV-202601-SIM1"
HISTORY = RUNS[: RUNS.index(TARGET)]
CSV_FILES = ("PA0000.csv", "PA0001.csv", "PA0008.csv", "PA0009.csv", "PA0021.csv", "RT.csv",
             "T510.csv", "T7UNPA.csv", "T512W.csv", "T7UNRATE.csv")
EXCEPTIONS_HEADER = ("run_id,PERNR,detector,category,severity,owner,LGART,FPPER,amount,expected,WAERS,"
                     "score,explanation,case_id\n")


# ------------------------------------------------------------------------------ helpers





def fix_manifest(folder: Path) -> None:
    """Rows and sha256 of every CSV recomputed: the corruption stays parseable (no exit 2)."""
    path = folder / "manifest.json"
    m = json.loads(path.read_text(encoding="utf-8"))
    for name in CSV_FILES:
        data = (folder / name).read_bytes()
        m["files"][name] = {"rows": len(read_csv(folder / name)[1]), "sha256": hashlib.sha256(data).hexdigest()}
    path.write_text(json.dumps(m, indent=2), encoding="utf-8")


def variant(tmp: Path, mutate=None, name: str = TARGET) -> Path:
    folder = tmp / "landing" / name
    shutil.copytree(SAMPLE / name, folder)
    if mutate is not None:
        mutate(folder)
    fix_manifest(folder)
    return folder


def copy_warehouse(db: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(db, dest / db.name)
    return dest / db.name


def by_name(checks: list[dict]) -> dict[str, dict]:
    return {c["name"]: c for c in checks}


def failed(checks: list[dict], severity: str | None = None) -> set[str]:
    return {c["name"] for c in checks if not c["success"] and severity in (None, c["severity"])}


def validate_only(db: Path, folder: Path) -> list[dict]:
    """Load the run and run the validate stage only (no detection)."""
    paths = Paths.for_db(db)
    con = open_warehouse(db)
    try:
        loaded = pipeline.stage_load(con, pipeline.stage_read(folder), paths)
        inp = pipeline.detection_input(con, loaded.run_id)
        return pipeline.stage_validate(con, inp, load_settings(None))
    finally:
        con.close()


def rt_staff(folder: Path) -> list[str]:
    header, rows = read_csv(folder / "RT.csv")
    return sorted({r[header.index("PERNR")] for r in rows})


def drop_rt_staff(share: float, seed: int = 7):
    def mutate(folder: Path) -> None:
        header, rows = read_csv(folder / "RT.csv")
        i = header.index("PERNR")
        staff = sorted({r[i] for r in rows})
        dropped = set(random.Random(seed).sample(staff, round(len(staff) * share)))
        write_csv(folder / "RT.csv", header, [r for r in rows if r[i] not in dropped])
        (folder / "dropped.txt").write_text("\n".join(sorted(dropped)), encoding="utf-8")
    return mutate


SHIPPED = catalog.load_suites(catalog.SHIPPED_SUITES)
N_EXPECTATIONS = sum(len(s.expectations) for s in SHIPPED)


@pytest.fixture(autouse=True)
def _shipped_suites(monkeypatch):
    monkeypatch.delenv(catalog.SUITES_ENV, raising=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A warehouse holding the runs before TARGET (loaded; their detection is not needed)."""
    paths = Paths(tmp_path_factory.mktemp("dq_base"))
    con = open_warehouse(paths.db)
    try:
        for name in HISTORY:
            pipeline.stage_load(con, pipeline.stage_read(SAMPLE / name), paths)
    finally:
        con.close()
    return paths.db


# ------------------------------------------------------------------------------ the suites themselves

def test_suites_are_files_with_severity_and_plain_text():
    frames_covered = {s.frame for s in SHIPPED}
    assert frames_covered == set(frames.FRAME_NAMES), "one suite per extract file and for the run as a whole"
    sev = {e["meta"]["name"]: e["meta"]["severity"] for s in SHIPPED for e in s.expectations}
    expected = {
        "staff_active_have_pay": "critical", "stations_multiplier_for_period": "critical",
        "staff_grade_step_in_t510": "critical", "t7unrate_rates_for_period": "critical",
        "rt_wage_type_in_t512w": "warning", "rt_staff_in_pa0001": "warning", "pa0008_no_overlap": "warning",
        "pa0008_unique_start": "warning", "run_headcount_vs_previous": "warning",
        "run_line_count_vs_previous": "warning", "rt_currency_matches_category": "warning",
    }
    assert {k: sev.get(k) for k in expected} == expected
    for s in SHIPPED:
        doc = json.loads(s.path.read_text(encoding="utf-8"))
        assert doc["name"] == s.name and doc["expectations"], s.path
        for e in doc["expectations"]:
            assert e["type"].startswith("expect_") and e["meta"]["finance_text"].strip()


def test_a_malformed_suite_is_an_error_not_skipped(tmp_path: Path):
    suites = tmp_path / "suites"
    shutil.copytree(catalog.SHIPPED_SUITES, suites)
    doc = json.loads((suites / "RT.json").read_text(encoding="utf-8"))
    del doc["expectations"][0]["meta"]["severity"]
    (suites / "RT.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(catalog.SuiteError, match="severity"):
        catalog.load_suites(suites)
    # GX itself drops an expectation it does not know with a log line only: we refuse it
    doc["expectations"][0]["meta"]["severity"] = "warning"
    doc["expectations"][0]["type"] = "expect_column_values_to_be_made_up"
    (suites / "RT.json").write_text(json.dumps(doc), encoding="utf-8")
    gx = runner._import_gx()
    suite = next(s for s in catalog.load_suites(suites) if s.frame == "RT")
    with pytest.raises(runner.DQEngineError, match="rejected"):
        runner._gx_suite(gx, suite)


# ------------------------------------------------------------------------------ pass and fail

def test_clean_run_passes_every_expectation(base: Path, tmp_path: Path):
    checks = validate_only(copy_warehouse(base, tmp_path / "wh"), variant(tmp_path))
    assert len(checks) == N_EXPECTATIONS
    assert failed(checks) == set(), [c for c in checks if not c["success"]]
    assert all(c["engine"] == "gx" for c in checks)
    assert by_name(checks)["run_headcount_vs_previous"]["observed"].endswith("%"), "compared with GV-202512-SIM1"


def _break(rf: frames.RunFrames, suites: list[catalog.Suite]) -> tuple[frames.RunFrames, set[str]]:
    """Frames broken so that every expectation of `suites` must fail, for a genuine reason
    except the expectations returned (they check the column removed to fail the schema check)."""
    out, errors = dict(rf.frames), set()
    for s in suites:
        df = out[s.frame]
        exps = [(e["type"], e["kwargs"]) for e in s.expectations]
        used = {v for t, kw in exps for k, v in kw.items() if k in ("column", "column_A", "column_B")}
        used |= {c for t, kw in exps for c in kw.get("column_list", [])}

        def add_duplicate(d: pl.DataFrame) -> pl.DataFrame:
            return pl.concat([d, d.head(1).with_columns(pl.lit(d["record"].max() + 1, dtype=pl.Int64).alias("record"))])

        for t, kw in exps:  # 1. rows
            if t in ("expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique"):
                df = add_duplicate(df)
            elif t == "expect_column_distinct_values_to_contain_set":
                df = df.filter(pl.col(kw["column"]) != kw["value_set"][0])
        order = ("expect_column_values_to_be_null", "expect_column_values_to_be_between",
                 "expect_column_pair_values_a_to_be_greater_than_b", "expect_column_values_to_be_in_set")
        for kind in order:  # 2. values
            for t, kw in exps:
                if t != kind:
                    continue
                if t == "expect_column_values_to_be_null":
                    df = df.with_columns(pl.lit(1.0).cast(df[kw["column"]].dtype).alias(kw["column"]))
                elif t == "expect_column_values_to_be_between":
                    c = kw["column"]
                    df = df.with_columns(pl.lit(kw["max_value"] * 10 + 1000).cast(df[c].dtype).alias(c))
                elif t == "expect_column_pair_values_a_to_be_greater_than_b":
                    a, b = kw["column_A"], kw["column_B"]
                    first = pl.col("record") == df["record"].min()
                    df = df.with_columns(pl.when(first).then(pl.col(b) - 1).otherwise(pl.col(a)).alias(a))
                else:
                    c, allowed = kw["column"], kw["value_set"]
                    bad = (not allowed[0]) if isinstance(allowed[0], bool) else "__not_allowed__"
                    if any(c in (k.get("row_condition") or "") for _, k in exps):
                        # the column selects the rows another expectation checks: break it on an
                        # added row, so those rows stay selected (and fail for their own reason)
                        df = pl.concat([df, df.head(1).with_columns(pl.lit(bad).alias(c))])
                    else:
                        df = df.with_columns(pl.lit(bad).alias(c))
        for t, kw in exps:  # 3. types
            if t == "expect_column_values_to_be_of_type":
                c = kw["column"]
                to = pl.Int64 if kw["type_"] in ("str", "float64") else pl.Float64
                df = df.with_columns(pl.col(c).cast(to))
        for t, kw in exps:  # 4. columns
            if t == "expect_table_columns_to_match_set":
                spare = [c for c in kw["column_set"] if c not in used and c not in s.key_columns]
                if not spare:  # every column is checked: those checks then fail with an error
                    spare = [c for c in kw["column_set"] if c not in s.key_columns]
                    errors |= {e["meta"]["name"] for e in s.expectations
                               if spare[0] in (e["kwargs"].get("column"), e["kwargs"].get("column_A"),
                                               e["kwargs"].get("column_B"))}
                df = df.drop(spare[0])
        out[s.frame] = df
    return frames.RunFrames(rf.run_id, rf.payroll_area, rf.period, rf.run_type, out), errors


def clean_frames(base: Path, tmp_path: Path) -> frames.RunFrames:
    """The frames GX validates, built from the clean TARGET run loaded on a copy of `base`."""
    db = copy_warehouse(base, tmp_path / "wh")
    con = open_warehouse(db)
    try:
        loaded = pipeline.stage_load(con, pipeline.stage_read(variant(tmp_path)), Paths.for_db(db))
        inp = pipeline.detection_input(con, loaded.run_id)
        return frames.build(inp, pipeline.previous_of_kind(con, inp))
    finally:
        con.close()


def test_every_expectation_fails_on_frames_broken_on_purpose(base: Path, tmp_path: Path):
    """Never trust a GX result not seen to fail: each expectation fails, for its own reason
    (not an error), on frames built from the clean run and then broken."""
    rf = clean_frames(base, tmp_path)
    broken, may_error = _break(rf, SHIPPED)
    checks = runner.validate(broken, SHIPPED, tmp_path / "gx-project")
    assert len(checks) == N_EXPECTATIONS
    still_passing = [c["name"] for c in checks if c["success"]]
    assert still_passing == [], still_passing
    errors = [(c["name"], c["observed"]) for c in checks if c["observed"].startswith("error:")]
    assert [e for e in errors if e[0] not in may_error] == [], errors
    assert len(may_error) <= 3, may_error
    unrendered = [c["name"] for c in checks if c["detail"].startswith(("Failed:", "Could not"))
                  and c["name"] not in may_error]
    assert unrendered == [], "every failure is told in its own sentence"


# ------------------------------------------------------------------------------ the corrupted extracts

@pytest.fixture(scope="module")
def staff_missing(base: Path, tmp_path_factory) -> dict:
    """30 % of the staff removed from RT.csv of a regular run, verified end to end."""
    tmp = tmp_path_factory.mktemp("dq_missing")
    folder = variant(tmp, drop_rt_staff(0.30))
    db = copy_warehouse(base, tmp / "wh")
    earlier = pipeline.verify_run(SAMPLE / "GV-202512-SIM1", db=db, out=tmp / "out-earlier")  # for the trend
    assert earlier.exit_code == 0 and "rt_line_unique" in failed(earlier.dq, "warning"), earlier.message
    out = tmp / "out"
    res = pipeline.verify_run(folder, db=db, out=out)
    return {"res": res, "out": out, "db": db, "folder": folder,
            "dropped": (folder / "dropped.txt").read_text(encoding="utf-8").split()}


def test_staff_missing_from_rt_is_critical_and_stops_detection(staff_missing: dict):
    res, out = staff_missing["res"], staff_missing["out"]
    assert res.exit_code == 3, res.message
    assert (out / "exceptions.csv").read_text(encoding="utf-8") == EXCEPTIONS_HEADER
    assert "staff_active_have_pay" in failed(res.dq, "critical")
    c = by_name(res.dq)["staff_active_have_pay"]
    n = len(staff_missing["dropped"])
    assert c["unexpected_count"] == n and c["staff_affected"] == n
    assert str(n) in c["detail"] and "/560" in c["detail"], c["detail"]
    assert set(c["sample"].split(",")) <= set(staff_missing["dropped"])
    md = (out / "data_quality.md").read_text(encoding="utf-8")
    assert "NOT VERIFIED" in md and c["detail"] in md  # one sentence per failure for Finance
    page = (out / "finance_dq.html").read_text(encoding="utf-8")
    assert "NOT VERIFIED" in page and c["detail"].split(";")[0] in page


def test_results_are_stored_per_run_with_masked_samples(staff_missing: dict):
    con = duckdb.connect(str(staff_missing["db"]), read_only=True)
    try:
        rows = con.execute("SELECT check_name, severity, success, engine, sample, config_version, detail "
                           "FROM dq_results WHERE run_id = ?", [TARGET]).fetchall()
        status = con.execute("SELECT status, config_version FROM verifications WHERE run_id = ?", [TARGET]).fetchall()
    finally:
        con.close()
    assert len(rows) == N_EXPECTATIONS
    assert {r[3] for r in rows} == {"gx"}
    assert status[0][0] == "dq_blocked" and {r[5] for r in rows} == {status[0][1]}
    staff_suites = {e["meta"]["name"] for s in SHIPPED if "pernr" in s.key_columns for e in s.expectations}
    for name, _, _, _, sample, _, detail in rows:
        if sample and name in staff_suites:
            assert re.fullmatch(r"[0-9]{8}(,[0-9]{8})*", sample), (name, sample)
        assert not re.search(r"\b[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}\b", detail), "no IBAN in a detail"
    names = pl.read_csv(SAMPLE / TARGET / "PA0001.csv", infer_schema=False)["ENAME"].to_list()
    text = " ".join(r[4] or "" for r in rows) + " ".join(r[6] for r in rows)
    assert not [n for n in names if n in text], "no names in stored results"


def test_data_docs_and_finance_report_are_written_and_name_the_failing_expectation(staff_missing: dict):
    out = staff_missing["out"]
    index = out / "data_docs" / "index.html"
    assert index.exists()
    pages = list((out / "data_docs" / "validations").rglob("*.html"))
    staff_page = [p for p in pages if "paywatch_staff" in p.as_posix()]
    assert staff_page and TARGET in staff_page[0].as_posix(), pages
    text = staff_page[0].read_text(encoding="utf-8")
    assert "staff_active_have_pay" in text and "Failed" in text
    links = set(re.findall(r'(?:validations|expectations)/[^"\'\s#<>]+?\.html', index.read_text(encoding="utf-8")))
    assert len(links) >= 2 * len(SHIPPED), links  # one result page and one suite page per suite
    assert [link for link in links if not (out / "data_docs" / link).exists()] == [], "every link opens"
    assert not list((out / "data_docs").rglob("*.gif")), "GX tutorial images are not copied"
    assert "dataContextId" not in index.read_text(encoding="utf-8"), "no tracking link to the GX web assets"
    page = (out / "finance_dq.html").read_text(encoding="utf-8")
    assert 'href="data_docs/index.html"' in page and "staff_active_have_pay" in page
    assert "Great Expectations" in page  # only in the link to the technical detail
    # trend against the previous runs of the area: GV-202512-SIM1 had a duplicated pay line
    assert "GV-202512-SIM1: fail" in page and "GV-202512-SIM1: pass" in page
    month = page.split("This month")[1]
    assert TARGET in month and "GV-202512-SIM1" not in month
    with zipfile.ZipFile(out / "finance_dq.xlsx") as z:
        book = z.read("xl/workbook.xml").decode()
        sheet = z.read("xl/worksheets/sheet1.xml").decode() + z.read("xl/sharedStrings.xml").decode()
    assert 'name="Data quality"' in book and "NOT VERIFIED" in sheet and "GV-202512-SIM1" in sheet


def test_t7unpa_gap_for_the_period_is_critical(base: Path, tmp_path: Path):
    def gap(folder: Path) -> None:  # Geneva's multiplier starts one month after the period
        header, rows = read_csv(folder / "T7UNPA.csv")
        w, b, e = header.index("WERKS"), header.index("BEGDA"), header.index("ENDDA")
        for r in rows:
            if r[w] == "GVA" and r[b] <= "20260101" <= r[e]:
                r[b] = "20260201"
        write_csv(folder / "T7UNPA.csv", header, rows)

    res = pipeline.verify_run(variant(tmp_path, gap), db=copy_warehouse(base, tmp_path / "wh"), out=tmp_path / "out")
    assert res.exit_code == 3, res.message
    assert failed(res.dq, "critical") == {"stations_multiplier_for_period"}
    c = by_name(res.dq)["stations_multiplier_for_period"]
    assert "GVA" in c["detail"] and "202601" in c["detail"] and c["staff_affected"] > 0, c
    assert (tmp_path / "out" / "exceptions.csv").read_text(encoding="utf-8") == EXCEPTIONS_HEADER


def test_unknown_wage_type_is_a_warning_and_detection_goes_on(base: Path, tmp_path: Path):
    def unknown(folder: Path) -> None:  # three staff get a line of wage type 9999 (not in T512W)
        header, rows = read_csv(folder / "RT.csv")
        i, lg, amt = header.index("PERNR"), header.index("LGART"), header.index("BETRG")
        seen, extra = set(), []
        for r in rows:
            if r[i] not in seen and len(seen) < 3:
                seen.add(r[i])
                extra.append([*r[:lg], "9999", *r[lg + 1:]])
                extra[-1][amt] = "12.34"
                extra[-1][header.index("ANZHL")] = ""
        write_csv(folder / "RT.csv", header, rows + extra)

    res = pipeline.verify_run(variant(tmp_path, unknown), db=copy_warehouse(base, tmp_path / "wh"),
                              out=tmp_path / "out")
    assert res.exit_code == 0, res.message
    assert failed(res.dq, "critical") == set()
    assert "rt_wage_type_in_t512w" in failed(res.dq, "warning")
    c = by_name(res.dq)["rt_wage_type_in_t512w"]
    assert c["unexpected_count"] == 3 and c["staff_affected"] == 3 and "9999" in c["detail"], c
    assert len((tmp_path / "out" / "exceptions.csv").read_text(encoding="utf-8").splitlines()) > 1, "detection ran"
    page = (tmp_path / "out" / "finance_dq.html").read_text(encoding="utf-8")
    assert "Verified, with" in page and "9999" in page


def test_duplicated_pa0008_records_are_a_warning(base: Path, tmp_path: Path):
    holder = {}

    def duplicate(folder: Path) -> None:  # one staff member's current basic pay record twice
        header, rows = read_csv(folder / "PA0008.csv")
        e = header.index("ENDDA")
        row = next(r for r in rows if r[e] == "99991231")
        holder["pernr"] = row[header.index("PERNR")]
        write_csv(folder / "PA0008.csv", header, rows + [list(row)])

    checks = validate_only(copy_warehouse(base, tmp_path / "wh"), variant(tmp_path, duplicate))
    assert failed(checks, "critical") == set()
    assert {"pa0008_no_overlap", "pa0008_unique_start"} <= failed(checks, "warning")
    for name in ("pa0008_no_overlap", "pa0008_unique_start"):
        c = by_name(checks)[name]
        assert c["staff_affected"] == 1 and c["sample"] == holder["pernr"], c


# ------------------------------------------------------------------------------ the files are live

def test_editing_a_suite_file_changes_the_outcome_of_the_same_run(base: Path, tmp_path: Path, monkeypatch):
    """5 % of the staff without pay pass the shipped bound (at most 10 %); the same run,
    verified again after the bound is tightened to 1 % in a copy of the suite file, stops."""
    folder = variant(tmp_path, drop_rt_staff(0.05, seed=11))
    db = copy_warehouse(base, tmp_path / "wh")
    first = pipeline.verify_run(folder, db=db, out=tmp_path / "out1")
    assert first.exit_code == 0, first.message
    c = by_name(first.dq)["staff_active_have_pay"]
    assert c["success"] and c["unexpected_count"] > 0

    suites = tmp_path / "suites"
    shutil.copytree(catalog.SHIPPED_SUITES, suites)
    doc = json.loads((suites / "staff.json").read_text(encoding="utf-8"))
    exp = next(e for e in doc["expectations"] if e["meta"]["name"] == "staff_active_have_pay")
    exp["kwargs"]["mostly"] = 0.99
    (suites / "staff.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    monkeypatch.setenv(catalog.SUITES_ENV, str(suites))

    again = pipeline.verify_run(folder, db=db, out=tmp_path / "out2")
    assert again.load_outcome == "noop"  # the very same delivery
    assert again.exit_code == 3, again.message
    c = by_name(again.dq)["staff_active_have_pay"]
    assert not c["success"] and "at most 1%" in c["detail"], c["detail"]
    con = duckdb.connect(str(db), read_only=True)
    try:
        versions = con.execute("SELECT DISTINCT config_version FROM dq_results WHERE run_id = ?", [TARGET]).fetchall()
        statuses = sorted(r[0] for r in con.execute("SELECT status FROM verifications WHERE run_id = ?",
                                                    [TARGET]).fetchall())
    finally:
        con.close()
    assert len(versions) == 2 and statuses == ["dq_blocked", "verified"]


# ------------------------------------------------------------------------------ pages that load nothing

def test_data_docs_in_the_report_load_nothing_from_the_network(staff_missing: dict):
    """Every CDN link GX writes points at a vendored copy in the report folder (licence beside
    it); nothing else remote is left in any page or stylesheet; every local link resolves."""
    from paywatch.dq import docs

    site = staff_missing["out"] / "data_docs"
    assert docs.offline_check(site) == []
    assert docs.offline_check(runner.site_dir(Paths.for_db(staff_missing["db"]).home)) == [], "GX's working copy"
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 2 * len(SHIPPED)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"""(?:src|href)=["']https?://""", text), page
        assert "integrity=" not in text and "crossorigin" not in text, page
        for ref in re.findall(r"""<(?:script|link)\b[^>]*?(?:src|href)=["']([^"'#?]+)""", text):
            assert (page.parent / ref).resolve().is_file(), (page, ref)
        back = re.search(r'href="((?:\.\./)*)\.\./finance_dq\.html"', text)
        assert back and (page.parent / back.group(1) / ".." / "finance_dq.html").resolve().is_file(), page
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "static/vendor/jquery-3.7.1/jquery.min.js" in index and "newsletter" not in index
    vendor = site / "static" / "vendor"
    for lib in ("bootstrap-4.3.1", "jquery-3.7.1", "popper.js-1.12.9", "bootstrap-table-1.19.1",
                "bootstrap-datepicker-1.9.0", "fontawesome-free-6.6.0"):
        assert list((vendor / lib).glob("LICENSE*")), lib
    css = (vendor / "fontawesome-free-6.6.0" / "css" / "all.min.css").read_text(encoding="utf-8")
    fonts = set(re.findall(r"url\(\.\./webfonts/([^)]+)\)", css))
    assert fonts and all((vendor / "fontawesome-free-6.6.0" / "webfonts" / f).is_file() for f in fonts)


def test_offline_page_rewrites_cdn_links_and_an_unknown_remote_asset_is_refused(tmp_path: Path):
    from paywatch.dq import docs

    page = ('<html><head><script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>'
            '<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" '
            'integrity="sha384-x" crossorigin="anonymous"></script>'
            '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script></head><body><p>x</p></body></html>')
    out = docs.offline_page(page, 2)
    assert '<script src="../../static/vendor/jquery-3.7.1/jquery.min.js"></script>' in out
    assert '<script src="../../static/vendor/popper.js-1.12.9/popper.min.js"></script>' in out
    assert "vega" not in out and "https:" not in out
    assert '<a href="../../../finance_dq.html"' in out
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text('<html><body><img src="https://example.org/t.png"></body></html>',
                                     encoding="utf-8")
    with pytest.raises(docs.DocsError, match="example.org"):
        docs.publish_site(site, tmp_path / "out" / "data_docs")


def test_finance_page_is_a_template_that_escapes_every_value():
    """Suite texts and values from the extract are text on the page, never markup; the page
    allows no script and no remote asset (CSP), and links GX's pages relatively."""
    from detectors.base import RunMeta
    from paywatch.dq import finance

    evil = '<img src=x onerror=alert(1)>'
    checks = [{"name": "rt_wage_type_in_t512w", "severity": "warning", "success": False, "observed": "1 of 9",
               "unexpected_count": 1, "staff_affected": 1, "sample": "10000001", "detail": f"wage type {evil}",
               "engine": "gx", "suite": "paywatch_RT", "description": f"Wage types {evil}"},
              {"name": "staff_active_have_pay", "severity": "critical", "success": True, "observed": "0 of 9",
               "unexpected_count": 0, "staff_affected": 0, "sample": "", "detail": "ok", "engine": "gx",
               "suite": "paywatch_staff", "description": "Active staff have pay"}]
    texts = {"rt_wage_type_in_t512w": {"title": "payroll results file (RT)", "frame": "RT"}}
    meta = RunMeta("GV-202601-SIM1", "GV", "202601", "SIM1")
    hist = pl.DataFrame({"pos": [1, 1, 2, 2], "run_id": ["GV-202512-SIM1"] * 2 + ["GV-202601-SIM1"] * 2,
                         "period": ["202512"] * 2 + ["202601"] * 2, "run_type": ["SIM1"] * 4,
                         "status": ["verified"] * 4, "check_name": [c["name"] for c in checks] * 2,
                         "severity": ["warning", "critical"] * 2, "success": [True, True, False, True],
                         "unexpected_count": [0, 0, 1, 0]})
    page = finance.html_page(meta, checks, False, texts, hist, "data_docs/index.html")
    assert evil not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page and "default-src 'none'" in page
    assert 'href="data_docs/index.html"' in page and "Verified, with 1 data-quality warning." in page
    assert "Payroll results file (RT)" in page and "GV-202512-SIM1: pass, 0 found" in page
    assert "last 2 runs of payroll area GV" in page


def test_a_site_that_would_still_load_from_the_web_is_not_published(base: Path, tmp_path: Path, monkeypatch):
    """As if a new GX release linked jQuery from a new address: the run is verified all the same,
    without Data Docs, and the Finance page says the technical detail is not available."""
    from paywatch.dq import docs

    vendored = {k: v for k, v in docs.VENDORED.items() if "jquery" not in k}
    monkeypatch.setattr(docs, "VENDORED", vendored)
    out = tmp_path / "out"
    res = pipeline.verify_run(variant(tmp_path), db=copy_warehouse(base, tmp_path / "wh"), out=out)
    assert res.exit_code == 0, res.message
    assert not (out / "data_docs").exists()
    page = (out / "finance_dq.html").read_text(encoding="utf-8")
    assert "Technical detail: not available for this run." in page and "data_docs/" not in page


# ------------------------------------------------------------------------------ GX as shipped vs as sped up

_VALIDATE_SCRIPT = r"""
import json, sys
from pathlib import Path
import polars as pl
import jinja2
from paywatch.dq import catalog, frames, runner
compiled = []
_compile = jinja2.Environment._compile
jinja2.Environment._compile = lambda self, *a, **k: compiled.append(1) or _compile(self, *a, **k)
if sys.argv[1] == "as-shipped":  # GX's own methods and imports: no replacement applied
    runner._GX_KWARGS_VERSION = "none"
    runner._keep_compiled_templates = lambda: None
    runner.HIDDEN_FROM_GX = runner.DEFERRED_FOR_GX = ()
    runner.FRESHNESS_PASS["skip"] = False
    runner.DETAILED_FIRST["on"] = False
src, project, out = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
meta = json.loads((src / "meta.json").read_text())
rf = frames.RunFrames(meta["run_id"], meta["payroll_area"], meta["period"], meta["run_type"],
                      {p.stem: pl.read_parquet(p) for p in sorted(src.glob("*.parquet"))})
checks = runner.validate(rf, catalog.load_suites(catalog.SHIPPED_SUITES), project)
imported = sorted(m for m in ("sqlalchemy", "altair", "jsonschema") if type(sys.modules.get(m)).__name__ == "module")
out.write_text(json.dumps({"patched": runner._PATCHED, "checks": checks, "imported": imported,
                           "compiled": len(compiled)}, sort_keys=True, default=str))
"""


def test_gx_speed_ups_change_no_check_and_no_data_docs_page(base: Path, tmp_path: Path):
    """paywatch.dq.runner replaces GX's expectation kwargs helpers (configuration read once per
    call), gives its Jinja views one bytecode cache (in memory and in the GX project: a second
    fresh process compiles no more than a few of GX's templates) and imports GX without
    SQLAlchemy and with altair and jsonschema deferred: on the clean run and on frames broken
    so that every expectation fails, the checks and the Data Docs pages equal GX's own, run in
    separate processes (a replacement lasts for its process). Also without GX's freshness pass
    (`runner._run_definition`), and with a suite that met unexpected rows last time run through
    its detailed checkpoint alone (`runner.DETAILED_FIRST`), on failing and on clean frames."""
    import os
    import subprocess
    import sys

    rf = clean_frames(base, tmp_path)
    broken, _ = _break(rf, SHIPPED)
    seen = {}
    for name, which in (("clean", rf), ("broken", broken)):
        src = tmp_path / name
        src.mkdir()
        for frame_name, df in which.frames.items():
            df.write_parquet(src / f"{frame_name}.parquet")
        (src / "meta.json").write_text(json.dumps({k: getattr(which, k) for k in
                                                   ("run_id", "payroll_area", "period", "run_type")}))
        results = {}
        # "again": a second fresh process on the sped-up run's GX project (its templates compiled;
        # on the broken frames every suite then runs detailed first: each met unexpected rows)
        for mode in ("as-shipped", "sped-up", "again"):
            out = tmp_path / f"{name}-{mode}.json"
            project = tmp_path / f"gx-{name}-{'sped-up' if mode == 'again' else mode}"
            # one hash seed for both: GX lists a failing column pair's values in set order
            p = subprocess.run([sys.executable, "-c", _VALIDATE_SCRIPT, mode, str(src), str(project), str(out)],
                               capture_output=True, text=True, timeout=600, cwd=ROOT,
                               env={**os.environ, "PYTHONHASHSEED": "0"})
            assert p.returncode == 0, p.stderr[-2000:]
            results[mode] = json.loads(out.read_text())
            if mode != "as-shipped":  # the pages this process built (the next one rebuilds them)
                site = runner.site_dir(project)
                results[mode]["pages"] = {_undated(f.relative_to(site).as_posix()):
                                          _undated(f.read_text(encoding="utf-8")) for f in sorted(site.rglob("*.html"))}
        assert results["as-shipped"]["patched"] == {"templates": False, "kwargs": False}
        assert results["sped-up"]["patched"]["templates"] is True
        assert results["as-shipped"]["imported"] == ["altair", "jsonschema", "sqlalchemy"]  # GX's own import loads all
        assert results["sped-up"]["imported"] == []  # none was needed to validate and build the pages
        assert results["sped-up"]["checks"] == results["as-shipped"]["checks"], name
        assert results["again"]["checks"] == results["as-shipped"]["checks"], name
        assert results["sped-up"]["compiled"] >= 20 and results["again"]["compiled"] <= 5, results["again"]["compiled"]
        assert len(results["sped-up"]["checks"]) == N_EXPECTATIONS
        site = runner.site_dir(tmp_path / f"gx-{name}-as-shipped")
        shipped = {_undated(f.relative_to(site).as_posix()): _undated(f.read_text(encoding="utf-8"))
                   for f in sorted(site.rglob("*.html"))}
        for mode in ("sped-up", "again"):
            pages = results[mode]["pages"]
            assert pages.keys() == shipped.keys() and pages, (name, mode)
            differ = [k for k in pages if pages[k] != shipped[k]]
            assert differ == [], (name, mode, differ[:5])
        seen[name] = (results["as-shipped"]["checks"], shipped)
    # the clean frames on the broken frames' project, where every suite met unexpected rows last
    # time (so each runs detailed first, COMPLETE): GX's own checks and pages all the same
    project = tmp_path / "gx-broken-sped-up"
    assert set(json.loads((project / "gx" / "paywatch_rows.json").read_text()).values()) == {True}
    out = tmp_path / "clean-after-broken.json"
    p = subprocess.run([sys.executable, "-c", _VALIDATE_SCRIPT, "sped-up", str(tmp_path / "clean"), str(project), str(out)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(out.read_text())["checks"] == seen["clean"][0]
    site = runner.site_dir(project)
    pages = {_undated(f.relative_to(site).as_posix()): _undated(f.read_text(encoding="utf-8"))
             for f in sorted(site.rglob("*.html"))}
    assert pages.keys() == seen["clean"][1].keys()
    assert [k for k in pages if pages[k] != seen["clean"][1][k]] == []
    assert set(json.loads((project / "gx" / "paywatch_rows.json").read_text()).values()) == {False}


def _undated(html: str) -> str:
    """A Data Docs page without what differs between two builds of the same results: times,
    the run-time ids GX derives from them, and each data context's random id."""
    html = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", html)
    html = re.sub(r"\d{4}-?\d{2}-?\d{2}T?\d{2}:?\d{2}:?\d{2}(\.\d+)?Z?(\+00:?00)?", "T", html)
    html = re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", "T", html)
    html = re.sub(r"'_run_time_sort': [\d.]+", "'_run_time_sort': T", html)
    return re.sub(r"\d{8}T\d{6}\.\d+Z", "T", html)


def _site_pages(project: Path) -> dict[str, str]:
    site = runner.site_dir(project)
    return {_undated(f.relative_to(site).as_posix()): _undated(f.read_text(encoding="utf-8"))
            for f in sorted(site.rglob("*.html"))}


def _stored_results(project: Path) -> dict[str, dict]:
    """GX's stored results of the last run, by suite, without what differs between two runs
    on the same data (times, and ids: each project gives its expectations their own)."""
    out = {}
    for f in (project / "gx" / "uncommitted" / "validations").rglob("*.json"):
        doc = json.loads(f.read_text(encoding="utf-8"))
        for r in doc["results"]:
            r["expectation_config"].pop("id")
        meta = doc["meta"]
        meta.pop("validation_time"), meta["run_id"].pop("run_time"), meta["batch_markers"].pop("ge_load_time")
        meta.pop("checkpoint_id"), meta.pop("validation_id")
        out[doc["suite_name"]] = doc
    return out


@pytest.mark.parametrize("broken", [False, True], ids=["clean", "broken"])
def test_a_frame_validated_before_reuses_gx_result_as_this_runs(base: Path, tmp_path: Path, monkeypatch, broken):
    """A suite whose frame has the same content as the last time this process validated it on
    this project reuses GX's result, re-dated and stored as this run's: the checks, the Data
    Docs pages and the stored results are those GX computes for this run (another project, no
    reuse); a frame changed in one value is validated by GX again."""
    rf = clean_frames(base, tmp_path)
    if broken:  # every suite fails: results with the failing rows (COMPLETE) reused
        rf = _break(rf, SHIPPED)[0]
    gx_runs = []
    run_suite = runner._run_suite
    monkeypatch.setattr(runner, "_run_suite", lambda cps, *a, **k: gx_runs.append(cps[1].name) or run_suite(cps, *a, **k))
    project = tmp_path / "gx-reuse"
    runner.validate(rf, SHIPPED, project)
    assert len(gx_runs) == len(SHIPPED)
    t510 = rf.frames["T510"]
    changed = t510.with_columns(pl.when(pl.col("record") == 1).then(pl.col("annual_net") + 1)
                                .otherwise(pl.col("annual_net")).alias("annual_net"))
    for name, frames_now, validated in (
            ("same", rf.frames, []),
            ("one value changed", {**rf.frames, "T510": changed}, ["paywatch_T510"])):
        later = frames.RunFrames("GV-202601-SIM2", rf.payroll_area, rf.period, "SIM2", frames_now)
        gx_runs.clear()
        checks = runner.validate(later, SHIPPED, project)
        assert gx_runs == validated, name
        monkeypatch.setitem(runner.REUSE, "on", False)
        fresh = tmp_path / f"gx-fresh-{len(validated)}"
        assert runner.validate(later, SHIPPED, fresh) == checks, name
        monkeypatch.setitem(runner.REUSE, "on", True)
        assert _site_pages(project) == _site_pages(fresh), name
        assert _stored_results(project) == _stored_results(fresh), name
        assert "GV-202601-SIM2" in (runner.site_dir(project) / "index.html").read_text(encoding="utf-8")
    assert all(c["success"] for c in checks) != broken
