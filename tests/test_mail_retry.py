"""The send_mail stage's retry policy against a real SMTP server on loopback (aiosmtpd).

The server refuses the first message it is given ("451 4.3.0 try again") and accepts the
rest, or refuses everything. `paywatch verify` (the CLI path, `paywatch.stages.run`) and the
Prefect flow (`flows.verify.verify_run`, task retries) must behave the same: with one
refusal the mail is delivered on the second attempt, counted as such in the delivery log,
nothing sent twice and no DELIVERY_FAILED.txt; with a server that always refuses, the
failure is recorded after the last attempt exactly as before (warehouse + note, exit 0).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import duckdb
import pytest

import smtp_server  # noqa: E402

from paywatch import delivery  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "gv-300"
RUN = (SAMPLE / "runs.txt").read_text(encoding="utf-8").split()[1]  # GV-202512-SIM1: has exceptions


class Flaky:
    """aiosmtpd handler: refuses the first `refuse` messages with a transient 451, then accepts."""

    def __init__(self, refuse: int):
        self.refuse = refuse
        self.refused: list[list[str]] = []
        self.accepted: list[tuple[list[str], bytes]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if len(self.refused) < self.refuse:
                self.refused.append(list(envelope.rcpt_tos))
                return "451 4.3.0 try again"
            self.accepted.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted for delivery"


@pytest.fixture
def server(monkeypatch):
    """Start a Flaky server: `server(refuse)` -> handler; PAYWATCH_SMTP_* point at it."""
    stack = contextlib.ExitStack()

    def start(refuse: int) -> Flaky:
        port, handler = stack.enter_context(smtp_server.running(Flaky(refuse)))
        smtp_server.point_paywatch_at(monkeypatch, port, "paywatch@retry.example.org", retries=2, backoff=0.05)
        return handler

    with stack:
        yield start


@pytest.fixture(scope="module")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def verify_cli(db: Path, out: Path) -> tuple[int, str]:
    from typer.testing import CliRunner

    from paywatch.cli import app

    r = CliRunner().invoke(app, ["verify", str(SAMPLE / RUN), "--db", str(db), "--out", str(out)])
    return r.exit_code, r.output


def verify_flow(db: Path, out: Path) -> tuple[int, str]:
    from flows.verify import verify_run

    res = verify_run(str(SAMPLE / RUN), str(db), str(out))
    return res["exit_code"], ""


def smtp_log(db: Path) -> list[tuple[str, str, int]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT recipient, status, attempts FROM report_deliveries WHERE run_id = ? "
                           "AND channel = 'smtp' ORDER BY recipient, recorded_at", [RUN]).fetchall()


def packages(db: Path) -> list[str]:
    return sorted(p.parent.name for p in (db.parent / "outbox" / RUN).glob("*/package.json"))


@pytest.mark.parametrize("path", ["cli", "flow"])
def test_refused_once_then_delivered_on_the_second_attempt(path, server, tmp_path, request):
    if path == "flow":
        request.getfixturevalue("prefect_server")
    handler = server(refuse=1)
    db = tmp_path / "home" / "warehouse.duckdb"
    code, output = (verify_cli if path == "cli" else verify_flow)(db, tmp_path / "out")
    assert code == 0, output
    assert "DELIVERY FAILED" not in output
    pkgs = packages(db)
    assert len(pkgs) >= 2, "one refused package among others: the test would be vacuous"
    log = smtp_log(db)
    # every package mailed once: the refused one on its second attempt, the others on their first
    assert sorted(r for r, _, _ in log) == pkgs and {s for _, s, _ in log} == {"sent"}
    assert sorted(a for _, _, a in log) == [1] * (len(pkgs) - 1) + [2]
    assert len(handler.refused) == 1 and len(handler.accepted) == len(pkgs)
    # the refused message came through on the retry, once; nothing else was sent twice
    accepted = sorted(sorted(rcpts) for rcpts, _ in handler.accepted)
    assert accepted.count(sorted(handler.refused[0])) == 1 and len(set(map(tuple, accepted))) == len(pkgs)
    assert not (db.parent / "outbox" / RUN / delivery.FAILED_NOTE).exists()


@pytest.mark.parametrize("path", ["cli", "flow"])
def test_always_refused_is_recorded_after_the_last_attempt(path, server, tmp_path, request):
    if path == "flow":
        request.getfixturevalue("prefect_server")
    handler = server(refuse=10**6)
    db = tmp_path / "home" / "warehouse.duckdb"
    code, output = (verify_cli if path == "cli" else verify_flow)(db, tmp_path / "out")
    assert code == 0, output  # the run is kept: mail is reports upstream, not the verification
    if path == "cli":
        assert "DELIVERY FAILED" in output
    pkgs = packages(db)
    log = smtp_log(db)
    # one failed row per package, after 1 + PAYWATCH_SMTP_RETRIES attempts (as before the stage owned them)
    assert sorted(r for r, _, _ in log) == pkgs and {(s, a) for _, s, a in log} == {("failed", 3)}
    alerts = [r for r in handler.refused if r == ["payroll-alerts@example.org"]]  # routing.toml [alerts]
    assert len(handler.refused) - len(alerts) == 3 * len(pkgs) and not handler.accepted
    if path == "flow":  # the scheduled path also raises a failed-mail alert (paywatch/alerts.py)
        assert alerts and (db.parent / "outbox" / "alerts" / f"mail-failed-{RUN}" / "message.eml").is_file()
    note = (db.parent / "outbox" / RUN / delivery.FAILED_NOTE).read_text(encoding="utf-8")
    assert "3 attempt(s)" in note and "451" in note
    assert (tmp_path / "out" / "exceptions.csv").is_file()
