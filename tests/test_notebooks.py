"""Notebooks (issue: notebooks): investigate.ipynb and kpi.ipynb run for real on the sample,
the decision cell records a decision, committed notebooks carry no outputs and define
nothing; and the functions of paywatch/investigate/ behind them.

One sample warehouse is built per module: by the investigate notebook itself, in a kernel
whose PAYWATCH_HOME is a fresh temporary folder (the notebooks' default path). The unit
tests read copies of it.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import nbformat
import polars as pl
import pytest
from matplotlib.figure import Figure
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from paywatch import investigate as inv
from paywatch.privacy import IBAN_RE
from paywatch.warehouse.db import fetch_one, fetch_value, open_warehouse

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("investigate", "kpi")  # in this order: the KPI notebook then sees the decision
LAST_FINAL = "GV-202602-FINAL"


# ------------------------------------------------------------------------------ fixtures

def _execute(nb) -> tuple:
    client = NotebookClient(nb, timeout=600, startup_timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
        return nb, None
    except CellExecutionError as e:
        return nb, e


def _decisions(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    con = open_warehouse(db, read_only=True)
    try:
        return con.execute("SELECT decision_id, action, actor, finding_id FROM decisions ORDER BY 1").fetchall()
    finally:
        con.close()


def _switched_on(nb):
    """The notebook with RECORD_DECISION = True in its parameters cell (as an analyst sets it)."""
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "RECORD_DECISION = False" in params.source
    params.source = params.source.replace("RECORD_DECISION = False", "RECORD_DECISION = True")
    return nb


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebooks executed for real (nbclient, one kernel each) with a fresh PAYWATCH_HOME:
    investigate as committed (it builds the sample warehouse), investigate with its switch
    RECORD_DECISION set, investigate as committed again, then kpi (which sees the decision).
    Returns (home, {name: (executed notebook, error or None)}, {name: decisions before and
    after that execution})."""
    home = tmp_path_factory.mktemp("paywatch-home")
    db = home / "sample" / "warehouse.duckdb"
    results, trail = {}, {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAYWATCH_HOME", str(home))  # inherited by the kernels
        for name, notebook in (("investigate", "investigate"), ("investigate-recording", "investigate"),
                               ("investigate-again", "investigate"), ("kpi", "kpi")):
            nb = nbformat.read(NOTEBOOKS / f"{notebook}.ipynb", as_version=4)
            if name == "investigate-recording":
                nb = _switched_on(nb)
            before = _decisions(db)
            results[name] = _execute(nb)
            trail[name] = (before, _decisions(db))
    return home, results, trail


@pytest.fixture(scope="module")
def built_db(executed) -> Path:
    db = executed[0] / "sample" / "warehouse.duckdb"
    if not db.exists():
        pytest.fail("the investigate notebook did not build the sample warehouse")
    return db


@pytest.fixture()
def db(built_db, tmp_path) -> Path:
    """A private copy of the sample warehouse (with the notebook's decision) and its decisions
    journal (a warehouse whose journal went missing refuses new decisions)."""
    from paywatch.journal import journal_path

    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(built_db, copy)
    if journal_path(built_db).exists():
        journal_path(copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(journal_path(built_db), journal_path(copy))
    return copy


@pytest.fixture()
def con(db):
    c = inv.open_readonly(db)
    yield c
    c.close()


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            for mime, data in out.get("data", {}).items():
                if mime.startswith("text/"):
                    parts.append(data if isinstance(data, str) else "".join(data))
    return "\n".join(parts)


def _images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def _current_lines(con, run_id: str, pernr: str) -> dict[str, int]:
    return dict(con.execute("SELECT wage_type, sum(amount_cents) FROM mart_pay_lines WHERE run_id = ? AND pernr = ? "
                            "AND for_period = in_period GROUP BY ALL", [run_id, pernr]).fetchall())


def _clean_staff(con, run_id: str) -> str:
    """A staff member paid in the run with no finding of any detector in it."""
    return fetch_value(con, """
        SELECT s.pernr FROM mart_staff_run s JOIN runs r ON r.run_id = s.run_id AND r.version = s.run_version
        WHERE r.is_current AND s.run_id = ? AND s.pernr NOT IN (SELECT pernr FROM findings WHERE run_id = ?
                                                                   AND pernr IS NOT NULL)
        ORDER BY s.pernr LIMIT 1""", [run_id, run_id])


# ------------------------------------------------------------------------------ the notebooks

@pytest.mark.parametrize("name", ["investigate", "investigate-recording", "investigate-again", "kpi"])
def test_notebook_runs_without_error(executed, name):
    nb, error = executed[1][name]
    assert error is None, f"{name}.ipynb failed:\n{error}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]


def test_investigate_top_to_bottom_writes_no_decision(executed, built_db):
    """Issue #14: running the notebook as committed records nothing, on a fresh warehouse
    and on one holding a reviewer's decision (which it leaves as it is)."""
    for name in ("investigate", "investigate-again"):
        nb, error = executed[1][name]
        assert error is None, str(error)
        before, after = executed[2][name]
        assert before == after, name
        assert "not recorded: set RECORD_DECISION = True to record" in _outputs_text(nb)
    assert executed[2]["investigate"][1] == []  # the first run built the warehouse and wrote no decision
    assert len(executed[2]["investigate-again"][0]) == 1  # ... the second met the recorded one


def test_investigate_records_the_decision_when_switched_on(executed, built_db):
    nb, error = executed[1]["investigate-recording"]
    assert error is None, str(error)
    before, after = executed[2]["investigate-recording"]
    assert before == [] and len(after) == 1
    con = open_warehouse(built_db, read_only=True)
    try:
        run_id, pernr = inv.default_case(con)
        action, who, d_pernr, finding = fetch_one(con, "SELECT action, actor, pernr, finding_id FROM decisions")
        # the default case is the latest FINAL's staff member with the most open holds
        assert run_id == LAST_FINAL and d_pernr == pernr
        assert (action, who) == ("confirm", "notebook.reviewer")
        assert fetch_value(con, "SELECT run_id FROM findings WHERE finding_id = ?", [finding]) == LAST_FINAL
    finally:
        con.close()
    text = _outputs_text(nb)
    assert f"decision 1 recorded: confirm on finding {finding} by notebook.reviewer" in text
    assert "notebook.reviewer" in _outputs_text(executed[1]["investigate-again"][0])  # in its audit trail
    # charts rendered as images (pay history; KPI, KPI per 1,000 staff and precision)
    assert _images(nb) == 1 and _images(executed[1]["kpi"][0]) == 3


def test_kpi_notebook_shows_the_case_figures(executed):
    """Issue #14: beside staff held, cases fixed before FINAL, days to fix, per owner and entity."""
    nb, error = executed[1]["kpi"]
    assert error is None, str(error)
    text = _outputs_text(nb)
    for words in ("Cases per month", "Cases per owner", "Cases per client entity", "per 1,000 staff paid"):
        assert words in text, words


def test_investigate_opens_on_the_case(executed, built_db):
    """The first output after the set-up is the case: cause, consequences, owner, status and
    due date, as the cases table has them; the staff member's detail comes after."""
    nb, error = executed[1]["investigate"]
    assert error is None, str(error)
    outputs = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs]
    first_html = next("".join(o["data"]["text/html"]) for _, c in outputs[1:] for o in c.outputs
                      if "text/html" in o.get("data", {}))
    con = open_warehouse(built_db, read_only=True)
    try:
        run_id, pernr = inv.default_case(con)
        case = inv.staff_cases(con, run_id, pernr).row(0, named=True)
        stored = fetch_one(con, "SELECT owner, due_date, root_cause FROM current_cases WHERE case_id = ? AND run_id = ?",
                           [case["case_id"], run_id])
    finally:
        con.close()
    for words in ("cause", "consequences", "owner", "status", "due date", case["case_id"], case["cause"],
                  stored[0], str(stored[1])):
        assert words in first_html, words
    source = [c.source for c in nb.cells if c.cell_type == "code"]
    assert source.index(next(s for s in source if "case_overview" in s)) < source.index(
        next(s for s in source if "staff_header" in s))


def test_tables_are_rendered_for_people(executed):
    """great_tables, not polars' text: no dtype row, no shape, no null, thousands separators."""
    for name in ("investigate", "kpi"):
        nb = executed[1][name][0]
        html = [("".join(o["data"]["text/html"]), "".join(o["data"].get("text/plain", "")))
                for c in nb.cells if c.cell_type == "code" for o in c.outputs if "text/html" in o.get("data", {})]
        assert html, name
        for h, _ in html:
            assert 'class="gt_table"' in h and "shape:" not in h and "null" not in h and "&quot;" not in h
            assert not re.search(r">(str|i64|i32|f64|decimal\[38,2\]|date)<", h)
    text = _outputs_text(executed[1]["investigate"][0])
    assert re.search(r"\b\d{1,3},\d{3}\.\d{2}\b", text)  # an amount with a thousands separator


def test_first_build_shows_progress(executed):
    nb = executed[1]["investigate"][0]
    err = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr")
    assert "Building the sample warehouse" in err and f"{len(inv.sample_runs())}/{len(inv.sample_runs())}" in err
    assert "sample warehouse ready" in err
    again = executed[1]["investigate-again"][0]  # reused: no build, no bar
    assert "Building" not in "".join(o.get("text", "") for c in again.cells for o in c.get("outputs", []))


def test_executed_notebooks_show_no_unmasked_iban(executed, built_db):
    con = open_warehouse(built_db, read_only=True)
    ibans = {r[0] for r in con.execute("SELECT iban FROM stg_bank_details").fetchall()}
    con.close()
    for name in executed[1]:
        text = _outputs_text(executed[1][name][0])
        # finding ids are 20 lower-case hex digits and may look IBAN-shaped ("ce47f0…")
        assert not [m for m in IBAN_RE.findall(text) if not re.fullmatch(r"[0-9a-f]{20}", m)], name
        assert not [i for i in ibans if i in text], name
    assert "IBAN (masked)" in _outputs_text(executed[1]["investigate"][0])


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_no_outputs(name):
    raw = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    code = [c for c in raw["cells"] if c["cell_type"] == "code"]
    assert code
    for c in code:
        assert c["outputs"] == [] and c["execution_count"] is None, c["source"]
    assert all("outputs" not in c and "execution_count" not in c for c in raw["cells"] if c["cell_type"] != "code")
    nbformat.validate(nbformat.reads(json.dumps(raw), as_version=4))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_cells_define_nothing_and_import_only_paywatch(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        assert not re.search(r"^\s*(async\s+def|def|class)\s", c.source, re.M), c.source
        assert "lambda" not in c.source, c.source
        for line in c.source.splitlines():
            if re.match(r"\s*(import|from)\s", line):
                assert re.match(r"\s*from paywatch(\.\w+)* import ", line), line
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and nb.cells.index(params[0]) <= 2


# ------------------------------------------------------------------------------ sample warehouse

def test_sample_warehouse_is_reused_not_rebuilt(built_db, monkeypatch):
    monkeypatch.setenv("PAYWATCH_HOME", str(built_db.parent.parent))
    assert inv.default_sample_db() == built_db
    before = built_db.stat().st_mtime_ns
    assert inv.warehouse_path() == built_db
    assert built_db.stat().st_mtime_ns == before
    con = inv.open_readonly(built_db)
    runs = con.execute("SELECT run_id FROM runs WHERE is_current").fetchall()
    con.close()
    assert sorted(r[0] for r in runs) == sorted(inv.sample_runs())


def test_sample_warehouse_refuses_a_foreign_warehouse(db):
    con = open_warehouse(db)
    con.execute("INSERT INTO runs SELECT 'XX-202512-FINAL', version, 'XX', period, run_type, pay_date, extracted_at, "
                "order_extracted_at, delivery_id, is_current, loaded_at FROM runs WHERE run_id = ?", [LAST_FINAL])
    con.execute("DELETE FROM verifications WHERE run_id = ?", [LAST_FINAL])  # incomplete: a build would start
    con.close()
    with pytest.raises(ValueError, match="not in the sample"):
        inv.sample_warehouse(db)


# ------------------------------------------------------------------------------ investigation functions

def test_default_case_and_staff_lists(con):
    run_id, pernr = inv.default_case(con)
    staff = inv.staff_with_exceptions(con, run_id)
    assert staff["pernr"][0] == pernr and staff["open_holds"][0] == staff["open_holds"].max() > 0
    assert inv.default_case(con, "GV-202601-FINAL", "10000001") == ("GV-202601-FINAL", "10000001")
    with pytest.raises(LookupError):
        inv.default_case(con, "GV-202512-OC1")  # the off-cycle run has no exceptions
    ov = inv.runs_overview(con)
    assert ov.height == len(inv.sample_runs()) and ov.filter(pl.col("run_id") == run_id)["staff_on_hold"][0] > 0


def test_staff_header_masks_the_iban(con):
    run_id, pernr = inv.default_case(con)
    h = dict(inv.staff_header(con, run_id, pernr).iter_rows())
    ibans = {r[0] for r in con.execute("SELECT iban FROM stg_bank_details WHERE pernr = ?", [pernr]).fetchall()}
    shown = " ".join(v or "" for v in h.values())
    assert ibans and not [i for i in ibans if i in shown]
    assert h["IBAN (masked)"] in {"*" * (len(i) - 4) + i[-4:] for i in ibans}
    assert h["PERNR"] == pernr and h["name"] and h["grade"] and h["staff category"] in ("P", "D", "G")
    assert not any(IBAN_RE.search(v or "") for v in h.values())


def test_staff_exceptions_are_the_findings_with_decisions(con):
    run_id, pernr = inv.default_case(con)
    ex = inv.staff_exceptions(con, run_id, pernr)
    n = fetch_value(con, "SELECT count(*) FROM current_findings WHERE run_id = ? AND pernr = ?", [run_id, pernr])
    assert ex.height == n > 0
    assert {"detector", "category", "severity", "owner", "wage_type", "for_period", "amount", "expected",
            "explanation", "decision"} <= set(ex.columns)
    assert ex["decision"].to_list()[0] == "confirm"  # the notebook's decision
    assert ex["amount"].dtype == pl.Decimal(38, 2)
    # amounts are exact: a finding with both a found and an expected amount
    fid, p, cents_found, cents_expected = fetch_one(
        con, "SELECT finding_id, pernr, amount_cents, expected_cents FROM current_findings WHERE run_id = ? "
             "AND amount_cents IS NOT NULL AND expected_cents IS NOT NULL ORDER BY finding_id LIMIT 1", [run_id])
    row = inv.staff_exceptions(con, run_id, p).filter(pl.col("finding_id") == fid)
    assert row["amount"][0] == Decimal(cents_found).scaleb(-2)
    assert row["difference"][0] == Decimal(cents_found - cents_expected).scaleb(-2)


def test_compare_with_pay_model_clean_staff_has_no_difference(con):
    pernr = _clean_staff(con, LAST_FINAL)
    cmp = inv.compare_with_pay_model(con, LAST_FINAL, pernr)
    assert {"1000", "3000", "3100"} <= set(cmp["wage_type"].to_list())
    assert cmp["expected"].null_count() == 0
    assert (cmp["difference"] == 0).all() and (cmp["written"] == cmp["expected"]).all()
    assert cmp["rule"].str.len_chars().min() > 0 and cmp["with_these_numbers"].str.len_chars().min() > 0


def test_compare_with_pay_model_shows_each_pay_model_finding(con):
    rows = con.execute("SELECT run_id, pernr, wage_type, amount_cents, expected_cents FROM current_findings "
                       "WHERE detector = 'PW101' AND run_type = 'FINAL' AND expected_cents IS NOT NULL "
                       "AND wage_type IS NOT NULL").fetchall()
    assert rows
    for run_id, pernr, wt, amount, expected in rows:
        cmp = inv.compare_with_pay_model(con, run_id, pernr).filter(pl.col("wage_type") == wt).row(0, named=True)
        assert cmp["written"] == Decimal(amount).scaleb(-2), (run_id, pernr, wt)
        assert cmp["expected"] == Decimal(expected).scaleb(-2), (run_id, pernr, wt)
        assert cmp["difference"] == Decimal(amount - expected).scaleb(-2)


def test_compare_with_previous_final_line_by_line(con):
    run_id, pernr = LAST_FINAL, _clean_staff(con, LAST_FINAL)
    cmp = inv.compare_with_previous_final(con, run_id, pernr)
    assert cmp["previous_final_run"].unique().to_list() == ["GV-202601-FINAL"]
    this, prev = _current_lines(con, run_id, pernr), _current_lines(con, "GV-202601-FINAL", pernr)
    cur = cmp.filter(pl.col("line") == "current")
    for r in cur.iter_rows(named=True):
        t, p = this.get(r["wage_type"], 0), prev.get(r["wage_type"], 0)
        assert r["difference"] == Decimal(t - p).scaleb(-2)
    assert set(cur["wage_type"]) == set(this) | set(prev)
    # no earlier FINAL: the previous side is empty
    first = inv.compare_with_previous_final(con, "GV-202512-SIM1", pernr)
    assert first["previous_final"].null_count() == first["previous_final_run"].null_count() == first.height


def test_pay_history_and_chart(con):
    pernr = _clean_staff(con, LAST_FINAL)
    h = inv.pay_history(con, pernr, "GV")
    assert h.group_by("period", "wage_type").len()["len"].max() == 1
    assert h["period"].unique().sort().to_list() == ["202512", "202601", "202602"]
    paid = h.filter((pl.col("period") == "202602") & (pl.col("wage_type") == "/560"))["amount"][0]
    assert paid == Decimal(fetch_value(con, "SELECT paid_cents FROM mart_staff_run WHERE run_id = ? AND pernr = ?",
                                       [LAST_FINAL, pernr])).scaleb(-2)
    fig = inv.pay_history_chart(h)
    assert isinstance(fig, Figure)
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert "/560 Amount paid" in labels and not [x for x in labels if x.startswith(("/101", "/550"))]
    empty = inv.pay_history_chart(inv.pay_history(con, "no-such-staff"))
    assert "No FINAL" in " ".join(t.get_text() for t in empty.axes[0].texts)


def test_personnel_actions_and_dependants(con):
    # the separated staff member flagged for pay after separation in the last FINAL
    pernr = fetch_value(con, "SELECT pernr FROM current_findings WHERE run_id = ? "
                             "AND category = 'pay_after_separation' LIMIT 1", [LAST_FINAL])
    acts = inv.personnel_actions(con, LAST_FINAL, pernr)
    assert "separation" in acts["action"].to_list()
    assert acts.filter(pl.col("action") == "separation")["status"][0].startswith("withdrawn")
    assert acts["valid_from"].is_sorted()
    with_children = fetch_value(con, "SELECT pernr FROM current_findings WHERE category = 'child_over_age_limit' "
                                     "AND run_type = 'FINAL' LIMIT 1")
    run_id = fetch_value(con, "SELECT run_id FROM current_findings WHERE category = 'child_over_age_limit' "
                              "AND run_type = 'FINAL' LIMIT 1")
    dep = inv.dependants(con, run_id, with_children)
    kids = dep.filter(pl.col("member") == "child")
    assert kids.height and not kids.filter(pl.col("dependent_on_first_day"))["child_under_age_limit"].all()
    assert inv.age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert inv.age_on(date(2008, 2, 29), date(2026, 3, 1)) == 18
    assert inv.age_on(date(2008, 2, 29), date(2028, 2, 29)) == 20


def test_peers_typical(con):
    run_id, pernr = inv.default_case(con)
    peers = inv.peers_typical(con, run_id, pernr)
    assert peers["peers"].n_unique() == 1 and peers["peers"][0] >= 1
    group = peers["peer_group"][0]
    assert group.startswith("grade ")
    base = peers.filter(pl.col("wage_type") == "1000").row(0, named=True)
    assert base["peers_p25"] <= base["peers_median"] <= base["peers_p75"]
    assert base["peers_with_line"] <= base["peers"]


def test_decide_works_beside_an_open_read_only_connection(db):
    """Readers open the published snapshot (README, Readers and the writer): a notebook's open
    connection never blocks a decision, and sees it once it opens the warehouse again."""
    reader = inv.open_readonly(db)
    run_id, pernr = inv.default_case(reader)
    finding = inv.pick_finding(reader, run_id, pernr)
    before = inv.audit_trail(reader, pernr).height
    did = inv.decide(db, finding_id=finding, action="release", actor="t.tester", reason="documents checked")
    assert inv.audit_trail(reader, pernr).height == before  # the last committed state it opened
    reader.close()
    reader = inv.open_readonly(db)
    trail = inv.audit_trail(reader, pernr)
    reader.close()
    assert trail["decision_id"][0] == did and trail["action"].to_list()[:2] == ["release", "confirm"]


def test_kpi_and_precision(con, tmp_path):
    k = inv.kpi_frame(con)
    assert k["period"].to_list() == ["202512", "202601", "202602"]
    fig = inv.kpi_figure(con)
    assert isinstance(fig, Figure)
    scaled = inv.kpi_figure(con, scale_from_staff=7000)
    assert "scaled" in " ".join(ln.get_label() for ln in scaled.axes[0].get_lines())
    # the notebook confirmed one exception: one rule with precision 1
    p = inv.precision_frame(con)
    assert p.height == 1 and p["precision"][0] == 1.0 and p["confirmed"][0] == 1
    assert len(inv.precision_figure(con).axes[0].patches) == 1
    # no decisions yet: an honest empty chart
    empty = open_warehouse(tmp_path / "empty.duckdb")
    try:
        fig = inv.precision_figure(empty)
        assert not fig.axes[0].patches
        assert "No reviewer decision yet" in " ".join(t.get_text() for t in fig.axes[0].texts)
    finally:
        empty.close()


# ------------------------------------------------------------------------------ one command away

def test_paywatch_lab_serves_the_notebooks_from_the_project_environment(tmp_path):
    """`paywatch lab` starts JupyterLab on notebooks/ whose kernel is this environment's Python."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "paywatch-test-token"
    env = os.environ | {"JUPYTER_TOKEN": token, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-c", "from paywatch.cli import app; app()", "lab", "--no-browser",
                             "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def get(path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}?token={token}", timeout=10) as r:
            return json.loads(r.read())

    try:
        for _ in range(120):
            try:
                contents = get("/api/contents")
                break
            except OSError:
                assert proc.poll() is None, "paywatch lab stopped"
                time.sleep(1)
        else:
            pytest.fail("JupyterLab did not answer within two minutes")
        assert {"investigate.ipynb", "kpi.ipynb"} <= {c["name"] for c in contents["content"]}
        specs = get("/api/kernelspecs")
        argv0 = specs["kernelspecs"][specs["default"]]["spec"]["argv"][0]
        assert argv0 in ("python", sys.executable) or Path(argv0).resolve() == Path(sys.executable).resolve()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# ------------------------------------------------------------------------------ tables for people, writes when asked

def test_show_renders_text_for_people():
    frame = pl.DataFrame({"pernr": ["10000001", None], "amount": [Decimal("12345.5"), None],
                          "lines": [1234567, 2], "ok": [True, None], "due_date": [date(2026, 3, 9), None]},
                         schema={"pernr": pl.String, "amount": pl.Decimal(38, 2), "lines": pl.Int64,
                                 "ok": pl.Boolean, "due_date": pl.Date})
    text = inv.as_text(frame)
    assert text.columns == ["PERNR", "amount", "lines", "ok", "due date"]
    assert text.row(0) == ("10000001", "12,345.50", "1,234,567", "yes", "2026-03-09")
    assert text.row(1) == ("", "", "2", "", "")  # never "null" / "None"
    html = inv.show(frame, title="T").as_raw_html()
    assert "12,345.50" in html and "null" not in html and "None" not in html and "i64" not in html
    assert "nothing here" in inv.show(frame.clear(), empty="nothing here").as_raw_html()


def test_decide_if_asked_writes_only_when_switched_on(db):
    reader = inv.open_readonly(db)
    run_id, pernr = inv.default_case(reader)
    finding = inv.pick_finding(reader, run_id, pernr)
    reader.close()

    def count() -> int:
        con = open_warehouse(db, read_only=True)
        try:
            return fetch_value(con, "SELECT count(*) FROM decisions")
        finally:
            con.close()

    before = count()
    decision = dict(finding_id=finding, action="false_positive", actor="t.tester", reason="checked")
    for off in (False, None, "yes", 1):  # only True itself records
        said = inv.decide_if_asked(db, off, **decision)
        assert said.startswith("not recorded: set RECORD_DECISION = True to record"), off
    assert count() == before
    assert inv.decide_if_asked(db, True, **decision).startswith(f"decision {before + 1} recorded: false_positive")
    assert count() == before + 1
