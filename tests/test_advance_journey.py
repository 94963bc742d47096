"""A salary advance followed from the close that recommends it to its full recovery (issue #14,
Build 4), and the close report's content as a browser parses it (issue #16, Build 2).

The committed sample (gv-300, December 2025 to February 2026) is verified run by run with
three changes, written as Umoja would deliver them: staff member HELD, excluded at December's
FINAL, is paid the recommended advance (2000) in a January off-cycle run; January's FINAL
recovers part of it (3200) and February's FINAL the rest. HELD's entity carries script text
throughout, which every page must show as text. Each month is closed as `paywatch close` does.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest

from close_page import parse
from extract_fixture import count_records
from paywatch import lifecycle as lc
from paywatch.monthly import write_monthly_summary
from paywatch.pipeline import verify_run
from paywatch.settings import load_settings
from paywatch.warehouse.db import open_warehouse

SAMPLE = Path(__file__).resolve().parent.parent / "data_samples" / "gv-300"
HELD = "10000137"  # excluded at December's FINAL (child over the age limit), net pay held 6,917.44 CHF
ADVANCE = 691744  # cents: the recommended advance, paid in full
FIRST_RECOVERY = 200000  # cents recovered at January's FINAL; the rest at February's
HOSTILE = "<script>alert(1)</script>&Co"
MONTHS = ("202512", "202601", "202602")


def _rewrite(folder: Path, name: str, rows_of) -> None:
    """Rewrite one CSV of a run folder through rows_of(header, rows) and fix the manifest."""
    path = folder / name
    with open(path, encoding="utf-8", newline="") as f:
        header, *rows = list(csv.reader(f, strict=True))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows_of(header, rows)])
    data = buf.getvalue().encode("utf-8")
    path.write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"][name] = {"rows": count_records(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _hostile_entity(header, rows):
    i, e = header.index("PERNR"), header.index("ORGEH")
    return [r[:e] + [HOSTILE] + r[e + 1:] if r[i] == HELD else r for r in rows]


def _recover(cents: int):
    """HELD's lines with a recovery of `cents` (3200) and net and paid totals lowered by it."""
    def rows_of(header, rows):
        p, wt, amt = header.index("PERNR"), header.index("LGART"), header.index("BETRG")
        out = []
        for r in rows:
            if r[p] == HELD and r[wt] == "/101":
                out.append(r[:wt] + ["3200", f"{-cents / 100:.2f}"] + r[amt + 1:])
            if r[p] == HELD and r[wt] in ("/550", "/560"):
                r = r[:amt] + [f"{round(float(r[amt]) * 100 - cents) / 100:.2f}"] + r[amt + 1:]
            out.append(r)
        assert any(r[p] == HELD and r[wt] == "3200" for r in out)
        return out
    return rows_of


def _offcycle(work: Path) -> Path:
    """GV-202601-OC1: the advance to HELD, with January's master data and references."""
    folder = work / "GV-202601-OC1"
    shutil.copytree(SAMPLE / "GV-202601-SIM1", folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest.update(run_id="GV-202601-OC1", run_type="OFFCYCLE", pay_date="20260107",
                    extracted_at="2026-01-05T06:00:00Z")
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    amount = f"{ADVANCE / 100:.2f}"
    _rewrite(folder, "RT.csv", lambda header, rows: [[HELD, "00001", "202601", "202601", wt, amount, "CHF", ""]
                                                      for wt in ("2000", "/101", "/550", "/560")])
    _rewrite(folder, "PA0001.csv", _hostile_entity)
    return folder


@pytest.fixture(scope="module")
def journey(tmp_path_factory) -> dict:
    """Verify the months in contract order, closing each after its FINAL; returns the close
    folders and close results by month."""
    work = tmp_path_factory.mktemp("journey")
    db = work / "home" / "warehouse.duckdb"
    cfg = load_settings(None)
    runs = (SAMPLE / "runs.txt").read_text().split()
    order = runs[:5] + ["GV-202601-OC1"] + runs[5:]
    out: dict = {"db": db, "closes": {}, "results": {}}
    for name in order:
        if name == "GV-202601-OC1":
            folder = _offcycle(work)
        else:
            folder = work / name
            shutil.copytree(SAMPLE / name, folder)
            _rewrite(folder, "PA0001.csv", _hostile_entity)
            if name == "GV-202601-FINAL":
                _rewrite(folder, "RT.csv", _recover(FIRST_RECOVERY))
            if name == "GV-202602-FINAL":
                _rewrite(folder, "RT.csv", _recover(ADVANCE - FIRST_RECOVERY))
        res = verify_run(folder, db=db, out=work / "reports" / name)
        assert res.exit_code == 0, f"{name}: {res.message}"
        if name.endswith("-FINAL"):
            period = name.split("-")[1]
            con = open_warehouse(db)
            try:  # as `paywatch close` does: the close recorded, then its report written
                out["results"][period] = lc.close_period(con, "GV", period, cfg["lifecycle"])
                out["closes"][period] = write_monthly_summary(con, "GV", period, work / f"GV-{period}-close", cfg)
            finally:
                con.close()
    return out


def _followup_row(journey, period: str) -> dict:
    rows = [r for r in parse(journey["closes"][period] / "monthly_summary.html").table("advance-followup")
            if r["Staff"] == HELD and r["Recommended at close of"] == "December 2025"]
    assert len(rows) == 1, rows
    return rows[0]


def test_december_close_recommends_the_advance_to_the_held_staff_member(journey):
    res = journey["results"]["202512"]
    held = res.excluded.filter(res.excluded["pernr"] == HELD).row(0, named=True)
    assert held["advance_recommended"] and held["net_pay_cents"] == ADVANCE
    page = parse(journey["closes"]["202512"] / "monthly_summary.html")
    advances = {r["Staff"]: r for r in page.table("advances")}
    assert advances[HELD]["Advance (net pay held)"] == "6,917.44 CHF"
    assert HELD in advances[HELD]["Case"]
    # nothing recommended earlier: no follow-up yet
    assert page.sections["advance-followup"] == []
    assert "No advance was recommended at an earlier close" in page.text["advance-followup"]


def test_january_close_shows_the_advance_paid_offcycle_and_partly_recovered(journey):
    row = _followup_row(journey, "202601")
    assert row["Paid in"] == "GV-202601-OC1" and row["Paid"] == "6,917.44 CHF"
    assert row["Recovered"] == "2,000.00 CHF" and row["Recovered in"] == "GV-202601-FINAL"
    assert row["Open balance"] == "4,917.44 CHF" and row["Status"] == "partly recovered"


def test_february_close_shows_the_advance_fully_recovered(journey):
    row = _followup_row(journey, "202602")
    assert row["Recovered"] == "6,917.44 CHF"
    assert row["Recovered in"] == "GV-202601-FINAL, GV-202602-FINAL"
    assert row["Open balance"] == "0.00 CHF" and row["Status"] == "recovered"
    # the same figures in the Markdown file
    md = (journey["closes"]["202602"] / "monthly_summary.md").read_text(encoding="utf-8")
    assert f"| December 2025 | {HELD} | 6,917.44 CHF | GV-202601-OC1 | 6,917.44 CHF | 6,917.44 CHF |" in md


def test_the_close_lists_each_excluded_staff_member_with_case_owner_and_days_open(journey):
    res = journey["results"]["202512"]
    page = parse(journey["closes"]["202512"] / "monthly_summary.html")
    rows = page.table("excluded")
    assert {r["Staff"] for r in rows} == set(res.excluded["pernr"].to_list())
    assert page.element_text("excluded-count") == str(res.excluded.height)
    mine = [r for r in rows if r["Staff"] == HELD]
    assert len(mine) == 1
    r = mine[0]
    assert r["Case"].startswith(f"GV-202512-{HELD}-") and r["Cause"] == "Child over the age limit"
    assert r["Owner"] == "HR" and r["Days open"].isdigit() and r["Net pay held"] == "6,917.44 CHF"
    for row in rows:  # rounded values, no Python None, no detector code alone
        assert "None" not in row.values() and "nan" not in row.values()
        assert not any(v.startswith("PW") and v[2:].isdigit() for v in row.values())


def test_hostile_entity_is_text_on_the_page_never_markup(journey):
    path = journey["closes"]["202512"] / "monthly_summary.html"
    raw = path.read_text(encoding="utf-8")
    assert "<script" not in raw.lower()
    page = parse(path)
    assert not [t for t, _ in page.tags if t in ("script", "iframe", "object", "embed", "link")]
    assert [r["Entity"] for r in page.table("excluded") if r["Staff"] == HELD] == [HOSTILE]
    # offline: the only image is the chart, embedded
    srcs = [a.get("src", "") for t, a in page.tags if t == "img"]
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not [a for _, a in page.tags for v in a.values() if v and ("http:" in v or "https:" in v)]
    md = (journey["closes"]["202512"] / "monthly_summary.md").read_text(encoding="utf-8")
    assert "<script" not in md and "&lt;script&gt;" in md


def test_the_report_names_staff_by_number_only(journey):
    raw = (journey["closes"]["202512"] / "monthly_summary.html").read_text(encoding="utf-8")
    names = {l.split(",")[3] for l in (SAMPLE / "GV-202512-FINAL" / "PA0001.csv").read_text().splitlines()[1:]
             if l.startswith(HELD)}
    assert names and not any(n in raw for n in names)
    assert not any(iban in raw for iban in
                   (l.split(",")[4] for l in (SAMPLE / "GV-202512-FINAL" / "PA0009.csv").read_text().splitlines()[1:]))


# ------------------------------------------------------------------------------ KPI additions

def test_case_kpi_agrees_with_a_count_from_the_cases_table(journey):
    """Cases per month, opened at SIM1/SIM2, fixed before FINAL, median days to fix: counted
    again here straight from the stored cases and runs."""
    import polars as pl

    con = open_warehouse(journey["db"])
    try:
        runs = con.sql("SELECT run_id, run_type, period, order_extracted_at FROM runs WHERE is_current "
                       "AND run_type <> 'OFFCYCLE'").pl()
        cases = con.sql("SELECT case_id, run_id, severity FROM current_cases").pl().join(runs, on="run_id")
        kpi = lc.case_kpi_monthly(con, "GV")
        owners = lc.cases_by(con, "owner", "GV")
    finally:
        con.close()
    for period in MONTHS:
        order = runs.filter(pl.col("period") == period).sort("order_extracted_at", "run_id")
        seq = {r: i for i, r in enumerate(order["run_id"].to_list())}
        month = cases.filter(pl.col("period") == period)
        action = {c for c, s in month.select("case_id", "severity").iter_rows() if s in ("hold", "review")}
        early = fixed = 0
        days = []
        for case in sorted(action):
            present = sorted(seq[r] for r in month.filter(pl.col("case_id") == case)["run_id"].to_list())
            first, last = present[0], present[-1]
            if order["run_type"][first] in ("SIM1", "SIM2"):
                early += 1
                fixed += order["run_type"][last] != "FINAL"
            if last + 1 < order.height:
                days.append((order["order_extracted_at"][last + 1] - order["order_extracted_at"][first]).days)
        row = kpi.filter(pl.col("period") == period).row(0, named=True)
        assert (row["cases"], row["opened_at_sim1_sim2"], row["fixed_before_final"]) == (len(action), early, fixed)
        assert row["share_fixed_before_final"] == pytest.approx(fixed / early)
        assert row["median_days_to_fix"] == pytest.approx(float(pl.Series(days).median()))
        assert owners.filter(pl.col("period") == period)["cases"].sum() == len(action)


def test_kpi_is_drawn_per_1000_staff_paid(journey):
    con = open_warehouse(journey["db"])
    try:
        k = lc.kpi_per_staff(con, "GV")
    finally:
        con.close()
    staff = {p: len({l.split(",")[0] for l in (SAMPLE / f"GV-{p}-FINAL" / "RT.csv").read_text().splitlines()[1:]})
             for p in MONTHS}
    for r in k.iter_rows(named=True):
        assert r["staff_paid"] == staff[r["period"]]
        assert r["per_1000_staff"] == pytest.approx(r["excluded_staff"] * 1000 / staff[r["period"]])
    page = parse(journey["closes"]["202602"] / "monthly_summary.html")
    # Geneva's 295 and 120 of 10,000 staff, scaled to this area's staff paid
    assert f"2018 average for {staff['202602']:,} staff" in page.text["headline"]
    assert f"{295 * staff['202602'] / 10_000:.1f}" in page.text["headline"]
    assert "29.5" in page.text["headline"] and "12.0" in page.text["headline"]


def test_paywatch_kpi_prints_the_headline_and_the_case_figures(journey):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "paywatch.cli", "kpi", "--db", str(journey["db"])],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    for title in ("Staff excluded at FINAL", "Cases asking for action", "Cases per owner",
                  "Cases per client entity"):
        assert title in p.stdout
    assert "HR" in p.stdout and "FINANCE" in p.stdout and "None" not in p.stdout


def test_close_page_renders_offline_in_chromium(journey, tmp_path):
    """Headless Chromium with the network off opens the close page: no request fails or goes
    out, the text is there, the chart is drawn; the screenshot is kept beside the report."""
    import os

    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Debian's chromium package is not installed")
    path = journey["closes"]["202512"] / "monthly_summary.html"
    shot = Path(os.environ.get("PAYWATCH_TEST_ARTIFACTS", tmp_path)) / "close-GV-202512.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_context(offline=True, java_script_enabled=False).new_page()
            requests, failed = [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(path.as_uri())
            page.screenshot(path=str(shot), full_page=True)
            text = page.inner_text("body")
            img = page.locator("img").first.bounding_box()
        finally:
            browser.close()
    assert failed == [] and all(u.startswith(("file:", "data:")) for u in requests), requests
    assert "Who is excluded at FINAL, and why" in text and "6,917.44 CHF" in text and HOSTILE in text
    assert img and img["width"] > 300 and img["height"] > 150  # the embedded chart is drawn
    assert shot.stat().st_size > 10_000


def test_notebook_facade_follows_the_advance_too(journey):
    from paywatch.investigate import kpi as nb

    con = open_warehouse(journey["db"])
    try:
        steps = [nb.advances_frame(con, "GV", p).filter(pl_col_pernr()) for p in MONTHS]
        owners = nb.cases_per_owner(con, "GV")
        entities = nb.cases_per_entity(con, "GV")
    finally:
        con.close()
    assert steps[0].height == 0  # nothing recommended before December
    assert [s.row(0, named=True)["open_cents"] for s in steps[1:]] == [ADVANCE - FIRST_RECOVERY, 0]
    assert [s.row(0, named=True)["status"] for s in steps[1:]] == ["partly recovered", "recovered"]
    assert set(owners["owner"].to_list()) <= {"HR", "FINANCE"}
    assert HOSTILE in entities["entity"].to_list()  # the entity is data, carried as it came


def pl_col_pernr():
    import polars as pl

    return (pl.col("pernr") == HELD) & (pl.col("recommended_in") == "202512")


def test_notebook_chart_is_the_close_chart_per_1000_staff(journey):
    from paywatch.investigate import kpi as nb

    con = open_warehouse(journey["db"])
    try:
        fig = nb.kpi_per_staff_figure(con, "GV")
        k = lc.kpi_per_staff(con, "GV")
    finally:
        con.close()
    ax = fig.axes[0]
    assert "per 1,000 staff paid" in ax.get_ylabel()
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["excluded at FINAL"].get_ydata()) == pytest.approx(k["per_1000_staff"].to_list())
    assert lines["target (120 of 10,000 staff = 12.0)"].get_ydata()[0] == pytest.approx(12.0)


def test_precision_is_shown_per_rule_by_title(journey, tmp_path):
    db = tmp_path / "w.duckdb"
    shutil.copy(journey["db"], db)
    con = open_warehouse(db)
    try:
        rows = con.execute("SELECT finding_id, detector FROM current_findings WHERE period = '202512' AND "
                           "severity = 'hold' ORDER BY detector, finding_id").fetchall()
        detector = rows[0][1]
        same = [f for f, d in rows if d == detector]
        lc.record_decision(con, finding_id=same[0], action="confirm", actor="a.reviewer", reason="wrong source")
        if len(same) > 1:
            lc.record_decision(con, finding_id=same[1], action="false_positive", actor="a.reviewer", reason="agreed")
        folder = write_monthly_summary(con, "GV", "202512", tmp_path / "close", load_settings(None))
    finally:
        con.close()
    from paywatch.titles import detector_title

    table = parse(folder / "monthly_summary.html").table("precision")
    row = next(r for r in table if r["Rule"] == detector_title(detector))
    assert " · " in row["Rule"] and row["Confirmed"] == "1"
    assert row["Precision"] == ("50%" if len(same) > 1 else "100%")
