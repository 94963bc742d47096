"""One case from SIM1 to FINAL, as its recipients see it (issues #14 and #16).

A spouse allowance of 500.00 instead of 400.00 USD (staff 10000001, totals adjusted) is in
SIM1 and SIM2 of March 2025 and fixed at the source before FINAL. Between SIM1 and SIM2 a
reviewer assigns the case and confirms the hold with `paywatch decide`. Every run goes through
`paywatch verify` with mail going to a real SMTP server on loopback (aiosmtpd); the tests read
the mails with `email` and the attached workbooks with zipfile + ElementTree (tests/xlsx_read.py):

- SIM1: the case is new, in the mail (first line: what to do by when) and in the workbook;
- SIM2: its status (hold confirmed), assignee and decision show on the Cases sheet and in the mail;
- FINAL: it is gone from cases.csv and listed under "resolved since the last run" in the FINAL
  workbook and mail, which say that held staff are excluded from this month's pay;
- the Finance unit, with nothing to act on, gets no mail; a run blocked by the data-quality
  gate says so in its subject and first line, in words.
"""

from __future__ import annotations

import csv
import email
import json
from datetime import date
from email import policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from extract_fixture import DEFAULT_FILES, write_run
import smtp_server
from xlsx_read import read_xlsx


from paywatch.cli import app  # noqa: E402

PERIOD = "202503"
CASE = f"GV-{PERIOD}-10000001-spouse_allowance_mismatch-1100"
WRONG_RT = (DEFAULT_FILES["RT.csv"].replace("202503,1100,400.00", "202503,1100,500.00")
            .replace("/101,13038.34", "/101,13138.34").replace("/550,11566.31", "/550,11666.31")
            .replace("/560,11566.31", "/560,11666.31"))
RUNS = (("SIM1", "10", WRONG_RT), ("SIM2", "15", WRONG_RT), ("FINAL", "24", None))
ROUTING = """
[owners.HR]
name = "Payroll HR unit"
to = ["hr@example.org"]
[owners.FINANCE]
name = "Finance payroll unit"
to = ["finance@example.org"]
"""


@pytest.fixture(scope="module")
def smtp():
    with smtp_server.running() as (port, inbox):
        yield port, inbox


@pytest.fixture(scope="module")
def mail_env(smtp):
    port, inbox = smtp
    mp = pytest.MonkeyPatch()
    smtp_server.point_paywatch_at(mp, port, "paywatch@journey.example.org", retries=1)
    yield inbox
    mp.undo()


def paywatch(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def verify(root: Path, db: Path, run_type: str, day: str, rt: str | None, files: dict | None = None) -> Path:
    folder = write_run(root / "landing" / run_type, {**({"RT.csv": rt} if rt else {}), **(files or {})},
                       {"run_id": f"GV-{PERIOD}-{run_type}", "run_type": run_type,
                        "extracted_at": f"2025-03-{day}T06:00:00Z"})
    out = root / "reports" / run_type
    CliRunner().invoke(app, ["verify", str(folder), "--db", str(db), "--out", str(out)])
    return out


@pytest.fixture(scope="module")
def journey(tmp_path_factory, mail_env):
    """SIM1 -> decide (confirm, then assign) -> SIM2 -> FINAL (source fixed): the mails of each run."""
    inbox = mail_env
    root = tmp_path_factory.mktemp("journey")
    home = root / "home"
    home.mkdir()
    (home / "routing.toml").write_text(ROUTING, encoding="utf-8")
    db = home / "warehouse.duckdb"
    mails: dict[str, list] = {}
    decided = ""
    for run_type, day, rt in RUNS:
        seen = len(inbox.messages)
        out = verify(root, db, run_type, day, rt)
        assert (out / "cases.csv").is_file(), f"{run_type} not verified"
        mails[run_type] = inbox.parsed(seen)
        if run_type == "SIM1":
            run = f"GV-{PERIOD}-SIM1"
            # confirmed first, assigned after: naming who fixes it leaves the hold confirmed
            decided += paywatch("decide", "confirm", "--case", CASE, "--run", run, "--by", "A. Reviewer",
                                "--reason", "spouse allowance paid twice the rate", "--db", str(db))
            decided += paywatch("decide", "assign", "--case", CASE, "--run", run, "--assignee", "J. Martin",
                                "--by", "A. Reviewer", "--reason", "J. Martin corrects PA0021", "--db", str(db))
    return root, home, mails, decided


def to(mails: list, addr: str):
    got = [m for m in mails if m["To"] == addr]
    assert len(got) <= 1
    return got[0] if got else None


def workbook(msg) -> dict:
    parts = [p for p in msg.iter_attachments() if (p.get_filename() or "").endswith(".xlsx")]
    assert len(parts) == 1
    return read_xlsx(parts[0].get_payload(decode=True))


def case_row(book: dict) -> dict:
    rows = [r for r in book["Cases"]["rows"] if r.get("Case ID") == CASE]
    assert len(rows) == 1, [r.get("Case ID") for r in book["Cases"]["rows"]]
    return rows[0]


def cases_csv(root: Path, run_type: str) -> dict[str, dict]:
    with (root / "reports" / run_type / "cases.csv").open(encoding="utf-8", newline="") as fh:
        return {r["case_id"]: r for r in csv.DictReader(fh)}


def section(text: str, title: str) -> str:
    """The lines of the plain-text mail under one part's title, up to the next part."""
    start = text.index(title)
    ends = [text.find(t, start + len(title)) for t in ("New since the last run", "Still open",
                                                      "Resolved since the last run", "Every case")]
    return text[start:min(e for e in ends if e > start)]


def test_sim1_the_case_is_new_and_the_mail_says_what_to_do_by_when(journey):
    root, _, mails, decided = journey
    assert "decision(s) recorded" in decided
    c = cases_csv(root, "SIM1")[CASE]
    assert (c["status"], c["owner"], c["due_date"]) == ("new", "HR", "2025-03-14")  # SIM2 is on the 15th
    hr = to(mails["SIM1"], "hr@example.org")
    assert hr is not None
    assert "to fix by 2025-03-14" in hr["Subject"] and "GV-202503-SIM1" in hr["Subject"]
    text = hr.get_body(("plain",)).get_content()
    assert text.splitlines()[0].startswith("SIM1 run GV-202503-SIM1 (March 2025):")
    assert "by 2025-03-14" in text.splitlines()[0]
    assert CASE in section(text, "New since the last run")
    row = case_row(workbook(hr))
    assert (row["Part"], row["Status"], row["Cause"], row["Amount at stake"]) == (
        "New since the last run", "new", "Spouse allowance mismatch", 100.0)


def test_sim2_shows_the_decision_status_and_assignee(journey):
    root, _, mails, _ = journey
    assert cases_csv(root, "SIM2")[CASE]["status"] == "confirmed"
    hr = to(mails["SIM2"], "hr@example.org")
    assert hr is not None
    row = case_row(workbook(hr))
    assert (row["Part"], row["Status"], row["Assignee"], row["Severity"]) == (
        "Still open", "confirmed", "J. Martin", "hold")
    assert row["Latest decision"].startswith("hold confirmed by A. Reviewer on ")
    assert "spouse allowance paid twice the rate" in row["Latest decision"]
    assert row["First seen in run"] == "GV-202503-SIM1" and row["PERNR"] == 10000001.0
    text = hr.get_body(("plain",)).get_content()
    still = section(text, "Still open")
    line = next(x for x in still.splitlines() if CASE in x)
    assert "confirmed" in line and "assigned to J. Martin" in line and "due 2025-03-19" in line
    html = hr.get_body(("html",)).get_content()
    assert CASE in html and "J. Martin" in html and "hold confirmed by A. Reviewer" in html
    assert CASE not in section(text, "New since the last run")


def test_final_lists_the_fixed_case_as_resolved_and_says_held_staff_are_not_paid(journey):
    root, _, mails, _ = journey
    assert CASE not in cases_csv(root, "FINAL")  # the source was fixed
    hr = to(mails["FINAL"], "hr@example.org")
    assert hr is not None, "HR still has cases to act on at FINAL (staff 10000002)"
    assert "excluded from this month's pay" in hr["Subject"]
    text = hr.get_body(("plain",)).get_content()
    assert "excluded from this month's pay" in text.splitlines()[0]
    assert CASE in section(text, "Resolved since the last run")
    assert CASE not in section(text, "Still open")
    row = case_row(workbook(hr))
    assert (row["Part"], row["Status"]) == ("Resolved since the last run", "resolved")
    cases = workbook(hr)["Cases"]["rows"]
    assert [r["Part"] for r in cases] == sorted((r["Part"] for r in cases),
                                                key=["New since the last run", "Still open",
                                                     "Resolved since the last run"].index)


def test_finance_with_nothing_to_act_on_gets_no_mail(journey):
    _, home, mails, _ = journey
    for run_type, _, _ in RUNS:
        assert to(mails[run_type], "finance@example.org") is None, run_type
    assert not list((home / "outbox").glob("*/owner-FINANCE"))


def test_workbook_is_laid_out_for_a_payroll_officer(journey):
    _, _, mails, _ = journey
    book = workbook(to(mails["SIM2"], "hr@example.org"))
    names = list(book)
    assert names[:3] == ["Summary", "Cases", "All findings"]
    assert "Spouse allowance mismatch" in names  # titled from paywatch/titles.py
    assert set(book["Summary"]["links"]) == {f"'{n}'!A1" for n in names[1:]}
    for name, sh in book.items():
        assert sh["frozen"] and sh["autofilter"], name
        assert sh["landscape"] and sh["fit_width"] and sh["repeat_header"], name
        assert sh["formulas"] == 0
    allf = book["All findings"]
    col = allf["header_cols"]
    rows = allf["rows"]
    mine = next(r for r in rows if r["Case ID"] == CASE)
    assert (mine["Found"], mine["Expected"], mine["Difference"]) == (500.0, 400.0, 100.0)
    assert (mine["Wage type"], mine["For-period"]) == (1100.0, 202503.0)
    i = rows.index(mine) + 1
    fmt, fill, wrap = allf["formats"][i], allf["fills"][i], allf["wrapped"][i]
    assert fmt[col["PERNR"]] == "00000000" and fmt[col["Wage type"]] == "0000"
    assert fmt[col["Difference"]] == "#,##0.00;-#,##0.00" and "Red" not in fmt[col["Found"]]
    assert wrap[col["Explanation"]] and not wrap[col["Found"]]
    assert fill[col["Severity"]] == "FFF4B6B6"  # hold


def test_a_blocked_run_says_so_in_words(tmp_path, mail_env):
    inbox = mail_env
    home = tmp_path / "home"
    home.mkdir()
    (home / "routing.toml").write_text(ROUTING, encoding="utf-8")
    # Geneva's post adjustment multiplier starts after the period: a critical data-quality failure
    gap = DEFAULT_FILES["T7UNPA.csv"].replace("GVA,20250101", "GVA,20250401")
    seen = len(inbox.messages)
    verify(tmp_path, home / "warehouse.duckdb", "SIM1", "10", None, {"T7UNPA.csv": gap})
    got = inbox.parsed(seen)
    assert sorted(m["To"] for m in got) == ["finance@example.org", "hr@example.org"]
    for m in got:
        assert m["Subject"].startswith("NOT CHECKED: GV-202503-SIM1"), m["Subject"]
        first = m.get_body(("plain",)).get_content().splitlines()[0]
        assert "was NOT checked" in first and "data-quality" in first and "corrected extract" in first
        body = m.get_body(("plain",)).get_content() + m.get_body(("html",)).get_content() + m["Subject"]
        assert "stations_multiplier_for_period" not in body and "No exceptions for you" not in body
        assert "GVA" in body  # the failed check, in words


def test_a_daily_digest_instead_of_no_mail(tmp_path):
    from paywatch.delivery.digest import due_digests, note_quiet
    from paywatch.routing import parse_routing

    routing = parse_routing(ROUTING + '[mail]\nempty = "digest"\n')
    assert routing.mail_empty == "digest"
    with pytest.raises(ValueError, match=r"\[mail\] empty must be one of"):
        parse_routing(ROUTING + '[mail]\nempty = "always"\n')
    fin = routing.owner("FINANCE")
    counts = {"cases": 2, "act": 0, "part_resolved": 1}
    note_quiet(tmp_path / "outbox", "GV-202503-SIM1", "verified", [(fin, counts)], date(2025, 3, 10))
    note_quiet(tmp_path / "outbox", "GV-202503-SIM2", "verified", [(fin, counts)], date(2025, 3, 10))
    assert due_digests("GV-202503-SIM2", tmp_path / "outbox", routing, tmp_path / "r", date(2025, 3, 10)) == []
    note_quiet(tmp_path / "outbox", "GV-202503-SIM3", "verified", [(fin, counts)], date(2025, 3, 11))
    pkgs = due_digests("GV-202503-SIM3", tmp_path / "outbox", routing, tmp_path / "r", date(2025, 3, 11))
    assert [p.recipient.key for p in pkgs] == ["digest-owner-FINANCE"] and pkgs[0].recipient.to == ("finance@example.org",)
    assert "2 run(s) checked, nothing for you to act on" in pkgs[0].subject
    assert "GV-202503-SIM1" in pkgs[0].text and "GV-202503-SIM2" in pkgs[0].text and "SIM3" not in pkgs[0].text
    msg = pkgs[0].message()
    assert not [p for p in msg.iter_attachments() if p.get_filename()]
    # the notes of the 10th went out once; the 11th waits for a later day
    assert due_digests("GV-202503-SIM3", tmp_path / "outbox", routing, tmp_path / "r", date(2025, 3, 11)) == []


def test_mail_ranks_by_amount_at_stake_escapes_and_masks_on_inline_cases():
    """Small inline cases: a 73.40 difference ranks below a 5,402.66 one whatever the gross
    amounts; a reviewer's text is escaped in HTML and its IBAN masked in both parts."""
    import polars as pl

    from paywatch.delivery.cases import REPORT_CASE_SCHEMA, cases_for
    from paywatch.delivery.mail import html_body, mail_context, text_body
    from paywatch.privacy import mask_iban
    from paywatch.routing import parse_routing

    iban = "CH9300762011623852957"
    base = {k: None for k in REPORT_CASE_SCHEMA} | {"part": "new", "owner": "HR", "in_copy": "", "severity": "hold",
                                                    "status": "new", "currency": "USD", "n_findings": 1,
                                                    "due_date": date(2025, 3, 14), "entity": "OHCHR"}
    rows = [base | {"case_id": "C-small", "pernr": "10000001", "cause_title": "Overtime amount mismatch",
                    "amount_at_stake_cents": 7340},
            base | {"case_id": "C-large", "pernr": "00000002", "cause_title": "Salary scale mismatch",
                    "amount_at_stake_cents": 540266, "assignee": "O'Brien & Co",
                    "latest_decision": f"hold confirmed by <script>alert(1)</script> on 2025-03-11: paid to {iban}"},
            base | {"case_id": "C-fin", "pernr": "10000003", "owner": "FINANCE", "cause_title": "Deduction changed",
                    "amount_at_stake_cents": 999999}]
    routing = parse_routing(ROUTING)
    hr = routing.owner("HR")
    mine = cases_for(pl.DataFrame(rows, schema=REPORT_CASE_SCHEMA), hr, routing)
    assert mine["case_id"].to_list() == ["C-small", "C-large"]  # Finance's case is not HR's
    counts = {"act": 2, "act_new": 2, "held": 0, "exceptions": 2, "staff": 2, "hold": 2, "review": 0, "info": 0}
    meta = {"run_id": "GV-202503-SIM1", "run_type": "SIM1", "period": "202503", "payroll_area": "GV",
            "dq_status": "verified", "dq_notes": [], "blocked": False, "due_date": date(2025, 3, 14)}
    ctx = mail_context(hr, meta, mine, counts)
    html, text = html_body(ctx), text_body(ctx)
    assert ctx["subject"] == "GV-202503-SIM1: 2 case(s) to fix by 2025-03-14 (2 new) — Payroll HR unit"
    assert html.index("C-large") < html.index("C-small") and text.index("C-large") < text.index("C-small")
    assert "5,402.66" in html and ">00000002<" in html  # the PERNR as written, leading zeros kept
    assert "<script>" not in html and "&lt;script&gt;" in html and "O&#39;Brien &amp; Co" in html
    assert iban not in html and iban not in text and mask_iban(iban) in text


def test_digest_setting_end_to_end_quiet_recipients_get_the_earlier_days_digest(journey, tmp_path):
    """routing `[mail] empty = "digest"`: delivering a run notes its quiet recipients and sends
    the digest of earlier days' notes (outbox only: no SMTP settings given)."""
    import duckdb
    import polars as pl

    from paywatch import delivery
    from paywatch.paths import Paths

    _, home, _, _ = journey
    routing = tmp_path / "routing.toml"
    routing.write_text(ROUTING + '[mail]\nempty = "digest"\n', encoding="utf-8")
    pending = tmp_path / "outbox" / "digest" / "owner-FINANCE" / "pending.json"
    pending.parent.mkdir(parents=True)
    pending.write_text('[{"run_id": "GV-202503-SIM1", "day": "2025-03-10", "dq": "verified", "in_copy": 0, '
                       '"resolved": 0}]', encoding="utf-8")
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rep = delivery.deliver_run_reports(con, "GV-202503-FINAL", pl.DataFrame(), "verified", [], tmp_path / "r",
                                           Paths(tmp_path), env={"PAYWATCH_ROUTING": str(routing)})
    finally:
        con.close()
    assert rep.ok, rep.summary()
    sent = {o.recipient for o in rep.outcomes}
    assert "digest-owner-FINANCE" in sent and "owner-FINANCE" not in sent
    eml = (tmp_path / "outbox" / "GV-202503-FINAL" / "digest-owner-FINANCE" / "message.eml").read_bytes()
    msg = email.message_from_bytes(eml, policy=policy.default)
    assert "Paywatch digest 2025-03-10: 1 run(s) checked" in msg["Subject"]
    assert "GV-202503-SIM1" in msg.get_body(("plain",)).get_content()
    # this run is noted for the next digest (no case to act on for either unit here)
    assert [e["run_id"] for e in json.loads(pending.read_text(encoding="utf-8"))] == ["GV-202503-FINAL"]
