"""Reports upstream (paywatch/routing.py, paywatch/delivery/) against a real SMTP server.

A real aiosmtpd server listens on 127.0.0.1 (a free port) for the whole module and keeps
every message it receives. The first runs of the committed sample data_samples/gv-300 are
verified with `paywatch.pipeline.verify_run` into a temporary warehouse with PAYWATCH_SMTP_*
pointing at that server; the tests then parse what the server received with the `email`
package and the attached workbooks with zipfile + ElementTree (stdlib only), and compare
with what each recipient must get, computed independently from the run's exceptions.csv
and PA0001.csv. A second warehouse is verified with the mail server "down" (a closed
port).
"""

from __future__ import annotations

import csv
import email
import html as html_mod
import io
import json
import logging
import os
import shutil
import stat
import zipfile
from collections import Counter
from datetime import date
from email import policy
from pathlib import Path

import duckdb
import polars as pl
import pytest

from paywatch import delivery  # noqa: E402
from paywatch.pipeline import verify_run  # noqa: E402
from paywatch.privacy import IBAN_RE, mask_iban  # noqa: E402
from paywatch.routing import REPO_ROUTING, load_routing, parse_routing, route  # noqa: E402
from paywatch.titles import category_title  # noqa: E402
import smtp_server  # noqa: E402
from smtp_server import free_port  # noqa: E402
from xlsx_read import read_xlsx  # noqa: E402
from paywatch.warehouse.db import warehouse_digest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "gv-300"
ALL_RUNS = (SAMPLE / "runs.txt").read_text(encoding="utf-8").split()
RUNS = ALL_RUNS[:2]  # GV-202512-OC1 (no exceptions), GV-202512-SIM1: verified with the mail server up
DOWN_RUN = ALL_RUNS[2]  # GV-202512-SIM2: verified on a copy of that warehouse with the mail server down

FOCAL = ("OHCHR", "ICSC-GVA", "DSS-GVA", "UNCTAD")  # UNCTAD: no exceptions in these runs
ROUTING = """
focal_points_see_details_of = ["HR"]
[owners.HR]
name = "Payroll HR unit"
to = ["hr-unit@example.org"]
[owners.FINANCE]
name = "Finance payroll unit"
to = ["finance-unit@example.org", "finance-lead@example.org"]
""" + "".join(f'[entities.{e}]\nto = ["{e.lower()}-focal@example.org"]\n' for e in FOCAL)
FORMULA = "=cmd|' /C calc'!A0"
RAW_IBAN = "CH9300762011623852957"


# ------------------------------------------------------------------------------ the SMTP server


@pytest.fixture(scope="module")
def smtp():
    with smtp_server.running() as (port, inbox):
        yield port, inbox


def smtp_env(mp: pytest.MonkeyPatch, port: int, sender: str) -> None:
    smtp_server.point_paywatch_at(mp, port, sender)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


# ------------------------------------------------------------------------------ verified sample


class Verified:
    def __init__(self, home: Path, inbox: Inbox, results: dict, logs: list[str]):
        self.home, self.inbox, self.results, self.logs = home, inbox, results, logs
        self.db = home / "warehouse.duckdb"
        self.sender = "paywatch@module.example.org"

    def received(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(raw, policy=policy.default) for frm, _, raw in self.inbox.messages
                if frm == self.sender]


@pytest.fixture(scope="module")
def verified(tmp_path_factory, smtp) -> Verified:
    port, inbox = smtp
    home = tmp_path_factory.mktemp("home")
    (home / "routing.toml").write_text(ROUTING, encoding="utf-8")
    handler = Records()
    logger = logging.getLogger("paywatch")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    mp = pytest.MonkeyPatch()
    try:
        smtp_env(mp, port, "paywatch@module.example.org")
        results = {}
        for run in RUNS:
            res = verify_run(SAMPLE / run, db=home / "warehouse.duckdb", out=home / "out" / run)
            assert res.exit_code == 0, res.message
            assert res.delivery is not None and res.delivery.ok, res.message
            results[run] = res
    finally:
        mp.undo()
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return Verified(home, inbox, results, handler.lines)


# ------------------------------------------------------------------------------ independent truth


def period_of(run: str) -> str:
    return json.loads((SAMPLE / run / "manifest.json").read_text(encoding="utf-8"))["period"]


def entities(run: str) -> dict[str, str]:
    """PERNR -> ORGEH of the PA0001 record valid in the run's period (latest BEGDA)."""
    p = period_of(run)
    start = int(p + "01")
    end = int(p + "31")
    best: dict[str, tuple[str, str]] = {}
    with (SAMPLE / run / "PA0001.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if int(row["BEGDA"]) <= end and int(row["ENDDA"]) >= start:
                if row["PERNR"] not in best or row["BEGDA"] > best[row["PERNR"]][0]:
                    best[row["PERNR"]] = (row["BEGDA"], row["ORGEH"])
    return {k: v for k, (_, v) in best.items()}


def names(run: str) -> set[str]:
    with (SAMPLE / run / "PA0001.csv").open(encoding="utf-8", newline="") as fh:
        return {row["ENAME"] for row in csv.DictReader(fh)}


def ibans() -> set[str]:
    out = set()
    for run in RUNS:
        with (SAMPLE / run / "PA0009.csv").open(encoding="utf-8", newline="") as fh:
            out |= {row["IBAN"] for row in csv.DictReader(fh)}
    return out | {RAW_IBAN}


def exceptions(v: Verified, run: str) -> list[dict]:
    with (v.home / "out" / run / "exceptions.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def cases_of(v: Verified, run: str) -> list[dict]:
    with (v.home / "out" / run / "cases.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def expected(v: Verified, run: str) -> dict[str, Counter]:
    """recipient address -> multiset of (PERNR, category title, LGART, FPPER, owner) it must get,
    for the recipients that must be mailed: those with a case to act on (cases.csv: an owner's
    hold/review cases; a focal point's cases of its entity's staff owned by HR, whose details
    it sees). A recipient with nothing to act on gets no mail."""
    rows = exceptions(v, run)
    ent = entities(run)
    acting = [c for c in cases_of(v, run) if c["severity"] in ("hold", "review")
              and c["status"] not in ("released", "false_positive", "expected")]
    key = lambda r: (r["PERNR"], category_title(r["category"]), r["LGART"], r["FPPER"], r["owner"])  # noqa: E731
    out = {}
    for owner, addr in (("HR", "hr-unit@example.org"), ("FINANCE", "finance-unit@example.org")):
        if any(c["owner"] == owner for c in acting):
            out[addr] = Counter(key(r) for r in rows if r["owner"] == owner)
    for e in FOCAL:
        if any(c["owner"] == "HR" and ent.get(c["PERNR"]) == e for c in acting):
            out[f"{e.lower()}-focal@example.org"] = Counter(key(r) for r in rows if ent.get(r["PERNR"]) == e)
    return out


def code(value, width: int = 0) -> str:
    """A cell stored as a number (PERNR, wage type, period) as the extract writes it."""
    if isinstance(value, float):
        return f"{int(value):0{width}d}"
    return "" if value is None else str(value)


# ------------------------------------------------------------------------------ xlsx reading


def attachment(msg) -> tuple[str, bytes]:
    parts = [p for p in msg.iter_attachments() if p.get_filename()]
    assert len(parts) == 1, [p.get_filename() for p in parts]
    return parts[0].get_filename(), parts[0].get_payload(decode=True)


DETAIL_SHEETS = (delivery.COVER_SHEET, "Cases", "All findings")


def category_rows(book: dict) -> list[tuple[str, dict]]:
    return [(name, r) for name, sh in book.items() if name not in DETAIL_SHEETS for r in sh["rows"]]


def all_text(msg) -> list[bytes]:
    """Every decoded part of a message, and every member of an attached workbook."""
    return [b for _, b in all_parts(msg)]


def all_parts(msg) -> list[tuple[bool, bytes]]:
    """(is text, bytes) of every decoded part and of every member of an attached workbook."""
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        data = part.get_payload(decode=True) or b""
        out.append((part.get_content_maintype() == "text", data))
        if data[:2] == b"PK":
            z = zipfile.ZipFile(io.BytesIO(data))
            out += [(n.endswith((".xml", ".rels")), z.read(n)) for n in z.namelist()]
    return out


# ------------------------------------------------------------------------------ tests


def test_routing_file_of_the_repository_is_valid():
    r = load_routing(None, env={})
    assert r.source == str(REPO_ROUTING)
    assert {x.key for x in r.recipients} >= {"owner-HR", "owner-FINANCE", "entity-OHCHR", "entity-UNCTAD"}
    assert all(a.endswith("@example.org") for x in r.recipients for a in x.to)
    with pytest.raises(ValueError, match="owners.FINANCE"):
        parse_routing('[owners.HR]\nto = ["a@example.org"]\n')


def test_route_keeps_finance_rows_from_hr_and_redacts_them_for_focal_points():
    f = pl.DataFrame({"pernr": ["1", "2", "3"], "owner": ["HR", "FINANCE", "FINANCE"], "entity": ["A", "A", "B"],
                      "amount_cents": [100, -200, 300], "expected_cents": [1, 2, 3], "currency": ["CHF"] * 3,
                      "evidence": ["{}"] * 3, "explanation": ["hr detail", "deduction detail 12345678", "x"]})
    r = parse_routing(ROUTING.replace("OHCHR", "A"))
    got = {k.key: v for k, v in route(f, r).items()}
    assert got["owner-HR"]["pernr"].to_list() == ["1"]
    assert got["owner-FINANCE"]["pernr"].to_list() == ["2", "3"]
    assert "entity-ICSC-GVA" not in got  # no exceptions: no package for a focal point
    a = got["entity-A"].sort("pernr")
    assert a["pernr"].to_list() == ["1", "2"]
    assert a["amount_cents"].to_list() == [100, None] and a["redacted"].to_list() == [False, True]
    assert "deduction" not in a["explanation"][1] and "Finance payroll unit" in a["explanation"][1]


def test_each_recipient_gets_exactly_its_own_exceptions(verified: Verified):
    msgs = verified.received()
    assert msgs, "the SMTP server received nothing"
    by_run: dict[str, dict[str, Counter]] = {}
    for msg in msgs:
        run = msg["X-Paywatch-Run"]
        to = [a.strip() for a in msg["To"].split(",")]
        name, data = attachment(msg)
        assert name.endswith(".xlsx")
        book = read_xlsx(data)
        got = Counter((code(r["PERNR"], 8), sheet, code(r.get("Wage type"), 4), code(r.get("For-period")),
                       r["Owner"]) for sheet, r in category_rows(book))
        assert sorted(got.elements()) == sorted(
            (code(r["PERNR"], 8), r["Category"], code(r.get("Wage type"), 4), code(r.get("For-period")), r["Owner"])
            for r in book["All findings"]["rows"]), "All findings holds the rows of the category sheets"
        assert to[0] not in by_run.setdefault(run, {}), f"{to[0]} got two messages for {run}"
        by_run[run][to[0]] = got
        if to[0] == "finance-unit@example.org":
            assert to == ["finance-unit@example.org", "finance-lead@example.org"]
    for run in RUNS:
        want = expected(verified, run)
        got = by_run.get(run, {})
        assert set(got) == set(want), f"{run}: recipients {sorted(got)} != {sorted(want)}"
        for addr, rows in want.items():
            assert got[addr] == rows, f"{run}: {addr} did not get exactly its exceptions"
        assert all(o == "HR" for *_, o in got.get("hr-unit@example.org", ())), "HR got a FINANCE row"
    # the test is not vacuous: focal points got mail, HR and Finance had rows; a run with
    # nothing to act on mailed no one
    assert "GV-202512-OC1" not in by_run and not expected(verified, "GV-202512-OC1")
    sim1 = by_run["GV-202512-SIM1"]
    assert sum(sim1["hr-unit@example.org"].values()) and sum(sim1["finance-unit@example.org"].values())
    assert "ohchr-focal@example.org" in sim1 and "unctad-focal@example.org" not in sim1
    assert any(o == "FINANCE" for *_, o in sim1["ohchr-focal@example.org"])


def test_focal_points_see_no_finance_amounts_and_only_their_entity(verified: Verified):
    for msg in verified.received():
        to = msg["To"]
        if "-focal@" not in to:
            continue
        run = msg["X-Paywatch-Run"]
        entity = next(e for e in FOCAL if to.startswith(e.lower() + "-focal@"))
        ent = entities(run)
        book = read_xlsx(attachment(msg)[1])
        rows = category_rows(book)
        assert rows
        for _, r in rows:
            assert ent[code(r["PERNR"], 8)] == entity and r["Entity"] == entity
            if r["Owner"] == "FINANCE":
                assert not {"Found", "Expected", "Difference"} & set(r), "a focal point saw a Finance amount"
                assert "Finance payroll unit" in r["Explanation"]
        for r in book["Cases"]["rows"]:
            assert ent[code(r["PERNR"], 8)] == entity
            if r["Owner"] == "FINANCE":
                assert "Amount at stake" not in r, "a focal point saw a Finance amount"
        body = msg.get_body(("html",)).get_content()
        assert entity in body


def test_workbook_layout_summary_cases_findings_and_one_sheet_per_category(verified: Verified):
    for msg in verified.received():
        run = msg["X-Paywatch-Run"]
        book = read_xlsx(attachment(msg)[1])
        names_ = list(book)
        assert names_[:3] == [delivery.COVER_SHEET, "Cases", "All findings"]
        cover = {g.get("A"): g.get("B") for g in book[delivery.COVER_SHEET]["grid"]}
        manifest = json.loads((SAMPLE / run / "manifest.json").read_text(encoding="utf-8"))
        assert (cover["Run"], cover["Period"], cover["Run type"]) == (run, manifest["period"], manifest["run_type"])
        assert cover["Data quality"].startswith("verified")
        assert cover["Fix the source by"] == {c["due_date"] for c in cases_of(verified, run)}.pop()
        rows = category_rows(book)
        assert cover["Exceptions"] == len(rows) == len(book["All findings"]["rows"])
        assert cover["Cases, new and still open"] == len([r for r in book["Cases"]["rows"] if r["Part"] != "Resolved since the last run"])
        cats = {sheet for sheet, _ in rows}
        assert set(names_[3:]) == cats, "one sheet per category, none empty"
        assert all(len(n) <= 31 for n in names_)
        ex = {r["PERNR"]: r for r in exceptions(verified, run)}
        assert {category_title(r["category"]) for r in exceptions(verified, run)} >= cats
        for name in names_:
            sh = book[name]
            assert sh["frozen"] and sh["autofilter"], f"{name}: header not frozen or no filter"
            assert sh["landscape"] and sh["fit_width"] and sh["repeat_header"], f"{name}: print set-up"
        for name in names_[2:]:
            sh = book[name]
            assert list(sh["grid"][0].values())[:5] == ["PERNR", "Name", "Entity", "Severity", "Case ID"]
            for r in sh["rows"]:
                assert r["Name"], "staff are identified by PERNR and name"
                assert code(r["PERNR"], 8) in ex and r["Case ID"]
                if "Found" in r and "Expected" in r:
                    assert isinstance(r["Found"], float), "amounts are numbers, formatted"
                    assert abs(r["Difference"] - (r["Found"] - r["Expected"])) < 0.005
        assert all(sh["formulas"] == 0 for sh in book.values())


def test_mail_leads_with_cases_ranked_by_amount_at_stake(verified: Verified):
    for msg in verified.received():
        if msg["To"] != "hr-unit@example.org" or msg["X-Paywatch-Run"] != "GV-202512-SIM1":
            continue
        html = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        cases = [c for c in cases_of(verified, "GV-202512-SIM1") if c["owner"] == "HR"]
        assert 0 < len(cases) <= delivery.TOP_N
        due = cases[0]["due_date"]
        assert "GV-202512-SIM1" in msg["Subject"] and f"to fix by {due}" in msg["Subject"]
        assert f"by {due}" in text.splitlines()[0]
        for c in cases:
            assert f">{c['PERNR']}<" in html and c["case_id"] in html and c["case_id"] in text
        # ranked by amount at stake, not by gross amount: the order of the case ids in the text part
        listed = [line for line in text.splitlines() if line.startswith("- ")]
        stakes = {c["case_id"]: float(c["amount_at_stake"] or 0) for c in cases}
        order = [stakes[next(cid for cid in stakes if cid in line)] for line in listed if any(c in line for c in stakes)]
        assert order == sorted(order, reverse=True) and len(order) == len(cases)
        # names are in the workbook, not in the mail body
        people = names("GV-202512-SIM1")
        assert not any(html_mod.escape(n) in html or n in text for n in people if len(n) > 3)
        break
    else:
        pytest.fail("no HR message for GV-202512-SIM1")


def test_no_unmasked_iban_in_mail_outbox_reports_or_logs(verified: Verified):
    known = ibans()
    blobs: list[tuple[str, bytes]] = []
    for frm, _, raw in verified.inbox.messages:
        blobs.append(("raw mail", raw))
        msg = email.message_from_bytes(raw, policy=policy.default)
        blobs += [("mail text" if t else "mail binary", b) for t, b in all_parts(msg)]
    for p in list((verified.home / "outbox").rglob("*")) + list((verified.home / "out").rglob("recipients/**/*")):
        if p.is_file():
            data = p.read_bytes()
            blobs.append((str(p), data))
            if data[:2] == b"PK":
                z = zipfile.ZipFile(io.BytesIO(data))
                blobs += [(f"{p}:{n}", z.read(n)) for n in z.namelist()]
            if p.suffix == ".eml":
                msg = email.message_from_bytes(data, policy=policy.default)
                blobs += [(f"{p} {'text' if t else 'binary'}", b) for t, b in all_parts(msg)]
    assert len(blobs) > 20
    for where, data in blobs:
        for iban in known:
            assert iban.encode() not in data, f"unmasked IBAN in {where}"
    for where, data in blobs:
        if where.endswith(("html", "text", ".json", ".xml", ".rels")):
            text = data.decode("utf-8", "replace")
            assert not IBAN_RE.search(text), f"IBAN-like text in {where}"
    # logs: no names, no IBANs
    people = set().union(*(names(r) for r in RUNS))
    assert verified.logs
    for line in verified.logs:
        assert not any(n in line for n in people if len(n) > 3), f"a name in the log: {line}"
        assert not any(i in line for i in known)


def test_outbox_is_owner_only_and_holds_every_package(verified: Verified):
    outbox = verified.home / "outbox"
    n_pkg = 0
    for p in [outbox, *outbox.rglob("*"), *(verified.home / "out").rglob("recipients*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), f"{p} has mode {mode:o}"
        if p.name == "package.json":
            n_pkg += 1
            assert {f.name for f in p.parent.iterdir()} >= {"message.eml", "body.html", "package.json"}
    assert n_pkg == len(verified.received()), "every mailed package is also in the outbox"
    for p in (verified.home / "out").rglob("recipients/*/*"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_formula_text_is_stored_as_a_string_and_ibans_masked(verified: Verified, smtp, tmp_path: Path):
    port, inbox = smtp
    run = "GV-202512-SIM1"
    f = verified.results[run].findings
    hr_first = f.filter(pl.col("owner") == "HR").row(0, named=True)["finding_id"]
    f = f.with_columns(pl.when(pl.col("finding_id") == hr_first)
                       .then(pl.lit(f"{FORMULA} account {RAW_IBAN}")).otherwise(pl.col("explanation"))
                       .alias("explanation"))
    con = duckdb.connect(str(verified.db), read_only=True)
    try:
        pkgs = delivery.build_packages(con, run, f, "verified", tmp_path / "recipients", routing=parse_routing(ROUTING))
    finally:
        con.close()
    settings = delivery.SmtpSettings("127.0.0.1", port, sender="paywatch@formula.example.org")
    rep = delivery.deliver(pkgs, settings, tmp_path / "outbox", retries=0)
    assert rep.ok and {o.status for o in rep.outcomes} == {"written", "sent"}
    msgs = [email.message_from_bytes(raw, policy=policy.default) for frm, _, raw in inbox.messages
            if frm == "paywatch@formula.example.org"]
    hr = next(m for m in msgs if m["To"] == "hr-unit@example.org")
    book = read_xlsx(attachment(hr)[1])
    cells = [r["Explanation"] for _, r in category_rows(book) if "cmd|" in r["Explanation"]]
    assert cells == [f"'{FORMULA} account {mask_iban(RAW_IBAN)}"], cells
    assert all(sh["formulas"] == 0 for sh in book.values())
    for blob in all_text(hr) + [p.read_bytes() for p in (tmp_path / "outbox").rglob("*") if p.is_file()]:
        assert RAW_IBAN.encode() not in blob
    assert delivery.cell_text("@SUM(A1)") == "'@SUM(A1)" and delivery.cell_text(" -2+3") == "' -2+3"
    assert delivery.cell_text("Net pay is -1.00 CHF") == "Net pay is -1.00 CHF"


def test_send_outbox_mails_what_the_outbox_holds_once(verified: Verified, smtp, tmp_path: Path):
    """Building/writing the packages and mailing them are separate calls (a retried stage)."""
    port, inbox = smtp
    run = "GV-202512-SIM1"
    home = tmp_path / "home"
    shutil.copytree(verified.home, home, ignore=shutil.ignore_patterns("outbox", "out", "*.lock"))
    sender = "paywatch@outbox.example.org"
    settings = delivery.SmtpSettings("127.0.0.1", port, sender=sender)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        con.execute("DELETE FROM report_deliveries WHERE run_id = ?", [run])
        pkgs = delivery.build_packages(con, run, verified.results[run].findings, "verified", tmp_path / "recipients",
                                       routing=parse_routing(ROUTING))
        written = delivery.deliver(pkgs, None, home / "outbox", con=con, sender=sender)
        assert {o.status for o in written.outcomes} == {"written"} and not inbox_from(inbox, sender)
        sent = delivery.send_outbox(run, settings, home / "outbox", retries=0, con=con)
        assert sent.ok, sent.failures
        assert sorted(o.recipient for o in sent.outcomes if o.status == "sent") == sorted(p.recipient.key for p in pkgs)
        again = delivery.send_outbox(run, settings, home / "outbox", retries=0, con=con)
        assert not again.outcomes and len(again.skipped) == len(pkgs)
        assert con.execute("SELECT count(*) FROM report_deliveries WHERE run_id = ? AND channel = 'smtp' "
                           "AND status = 'sent'", [run]).fetchone()[0] == len(pkgs)
    finally:
        con.close()
    got = inbox_from(inbox, sender)
    assert len(got) == len(pkgs)
    for p in pkgs:
        m = next(m for m in got if m["X-Paywatch-Recipient"] == p.recipient.key)
        assert m["To"] == ", ".join(p.recipient.to)
        assert m["X-Paywatch-Content"].strip() == p.content_sha256  # a long header value is folded
        assert attachment(m)[1] == p.workbook_bytes


def inbox_from(inbox: Inbox, sender: str) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(raw, policy=policy.default) for frm, _, raw in inbox.messages if frm == sender]


def test_mail_server_down_retries_records_failure_and_keeps_the_run(verified: Verified, smtp, tmp_path: Path,
                                                                    monkeypatch):
    from typer.testing import CliRunner

    from paywatch.cli import app

    port, inbox = smtp
    home = tmp_path / "home"
    shutil.copytree(verified.home, home, ignore=shutil.ignore_patterns("outbox", "out", "*.lock"))
    db = home / "warehouse.duckdb"
    sender = "paywatch@down.example.org"
    smtp_env(monkeypatch, free_port(), sender)  # nothing listens there
    run = DOWN_RUN
    r = CliRunner().invoke(app, ["verify", str(SAMPLE / run), "--db", str(db), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "DELIVERY FAILED" in r.output
    assert (tmp_path / "out" / "exceptions.csv").is_file()
    run_dir = home / "outbox" / run
    note = run_dir / delivery.FAILED_NOTE
    assert note.is_file() and stat.S_IMODE(note.stat().st_mode) == 0o600
    text = note.read_text(encoding="utf-8")
    assert "owner-HR" in text and "ConnectionRefusedError" in text
    assert not any(n in text for n in names(run) if len(n) > 3) and not IBAN_RE.search(text)
    pkgs = sorted(p.parent.name for p in run_dir.glob("*/package.json"))
    ent = entities(run)
    with (tmp_path / "out" / "exceptions.csv").open(encoding="utf-8", newline="") as fh:
        focal = {ent.get(r["PERNR"]) for r in csv.DictReader(fh)} & set(FOCAL)
    assert focal, "no focal point has exceptions in this run: the test would be vacuous"
    assert pkgs == sorted(["owner-HR", "owner-FINANCE", *(f"entity-{e}" for e in focal)])
    assert all((run_dir / p / "message.eml").is_file() for p in pkgs)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT recipient, channel, status, attempts FROM report_deliveries WHERE run_id = ? "
                           "ORDER BY channel, recipient", [run]).fetchall()
        assert {(c, s, a) for _, c, s, a in rows} == {("outbox", "written", 1), ("smtp", "failed", 3)}
        assert len(rows) == 2 * len(pkgs)
        assert con.execute("SELECT count(*) FROM findings WHERE run_id = ?", [run]).fetchone()[0] > 0
    assert not [m for m in inbox.messages if m[0] == sender]

    # the server is back: verifying again sends what was not delivered, and only that
    smtp_env(monkeypatch, port, sender)
    res = verify_run(SAMPLE / run, db=db, out=tmp_path / "out2")
    assert res.exit_code == 0 and res.delivery.ok, res.message
    assert sorted(o.recipient for o in res.delivery.outcomes if o.status == "sent") == pkgs
    assert not any(o.channel == "outbox" for o in res.delivery.outcomes), "outbox copies were already there"
    assert not note.exists()
    assert len([m for m in inbox.messages if m[0] == sender]) == len(pkgs)

    # a third verify of the same run (its outbox copies lost meanwhile): nothing is sent, the
    # outbox copies are written again, nothing in the warehouse changes but `deliveries`
    shutil.rmtree(run_dir)
    with duckdb.connect(str(db), read_only=True) as con:
        before = warehouse_digest(con, exclude_delivery_log=True)
    res = verify_run(SAMPLE / run, db=db, out=tmp_path / "out3")
    assert res.exit_code == 0 and not res.delivery.outcomes and res.delivery.skipped
    with duckdb.connect(str(db), read_only=True) as con:
        assert warehouse_digest(con, exclude_delivery_log=True) == before
    assert len([m for m in inbox.messages if m[0] == sender]) == len(pkgs)
    assert sorted(p.parent.name for p in run_dir.glob("*/package.json")) == pkgs


def test_no_smtp_settings_means_outbox_only(tmp_path: Path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("PAYWATCH_SMTP_"):
            monkeypatch.delenv(k)
    assert delivery.smtp_settings_from_env() is None
    monkeypatch.setenv("PAYWATCH_SMTP_HOST", "mail.example.org")
    monkeypatch.setenv("PAYWATCH_SMTP_STARTTLS", "yes")
    monkeypatch.setenv("PAYWATCH_SMTP_PASSWORD", "s3cret")
    s = delivery.smtp_settings_from_env()
    assert s.port == 587 and s.starttls and "s3cret" not in repr(s)
    monkeypatch.setenv("PAYWATCH_SMTP_PORT", "x")
    with pytest.raises(delivery.SmtpConfigError):
        delivery.smtp_settings_from_env()
    assert delivery.period_bounds("202602") == (date(2026, 2, 1), date(2026, 2, 28))


def test_smtp_settings_from_a_prefect_block(monkeypatch):
    """PAYWATCH_SMTP_BLOCK names a prefect-email EmailServerCredentials block (stand-in here:
    prefect-email is an optional dependency, imported only on this path)."""
    import enum
    import sys
    import types

    class SMTPType(enum.Enum):
        SSL = 465
        STARTTLS = 587
        INSECURE = 25

    class Secret:
        def __init__(self, v):
            self.v = v

        def get_secret_value(self):
            return self.v

    class EmailServerCredentials:
        loaded = []

        @classmethod
        def load(cls, name):
            cls.loaded.append(name)
            return types.SimpleNamespace(smtp_server="127.0.0.1", smtp_port=2525, smtp_type=SMTPType.STARTTLS,
                                         username="bot@example.org", password=Secret("pw"))

    fake = types.ModuleType("prefect_email")
    fake.EmailServerCredentials = EmailServerCredentials
    monkeypatch.setitem(sys.modules, "prefect_email", fake)
    for k in list(os.environ):
        if k.startswith("PAYWATCH_SMTP_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("PAYWATCH_SMTP_BLOCK", "paywatch-mail")
    s = delivery.smtp_settings_from_env()
    assert EmailServerCredentials.loaded == ["paywatch-mail"]
    assert (s.host, s.port, s.starttls, s.use_ssl, s.user, s.password, s.sender) == (
        "127.0.0.1", 2525, True, False, "bot@example.org", "pw", "bot@example.org")


def test_data_quality_status_line():
    ok = {"name": "a", "severity": "critical", "success": True, "detail": "fine"}
    warn = {"name": "volume", "severity": "warning", "success": False, "detail": "fewer lines"}
    crit = {"name": "reference_data_for_period", "severity": "critical", "success": False, "detail": "no T510"}
    assert delivery.dq_status_text("verified", [ok]) == "verified — all 1 data-quality checks passed"
    assert delivery.dq_status_text("verified", [ok, warn]).startswith("verified, with data-quality warnings: volume")
    blocked = delivery.dq_status_text("dq_blocked", [ok, crit])
    assert blocked.startswith("NOT VERIFIED") and "reference_data_for_period" not in blocked, "no check id"
    assert delivery.dq_details([ok, warn]) == ["volume (warning): fewer lines"]
    # mails and workbooks say what failed in words: the critical failures of a blocked run
    assert delivery.dq_lines([ok, warn, crit], blocked=True) == ["no T510"]
    assert delivery.dq_lines([ok, warn]) == ["fewer lines"]


def test_broken_routing_file_is_surfaced_not_raised(verified: Verified, tmp_path: Path):
    from paywatch.paths import Paths

    bad = tmp_path / "routing.toml"
    bad.write_text('[owners.HR]\nto = ["not an address"]\n', encoding="utf-8")
    run = "GV-202512-SIM1"
    con = duckdb.connect(str(verified.db), read_only=True)
    try:
        rep = delivery.deliver_run_reports(con, run, verified.results[run].findings, "verified", [], tmp_path / "r",
                                           Paths(tmp_path), env={"PAYWATCH_ROUTING": str(bad)})
    finally:
        con.close()
    assert not rep.ok and "routing.toml" in rep.failures[0].error and "DELIVERY FAILED" in rep.summary()
    assert (tmp_path / "outbox" / run / delivery.FAILED_NOTE).is_file()
