"""CLI manners (issue #16): every refusal is one line on stderr with exit 2, no traceback;
a state with nothing to show says so in words."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "gv-300"
RUNS = (SAMPLE / "runs.txt").read_text().split()
PAYWATCH = [sys.executable, "-c", "from paywatch.cli import app; app()"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*PAYWATCH, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def refused(p: subprocess.CompletedProcess, code: int = 2) -> str:
    assert "Traceback" not in p.stderr + p.stdout
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.fixture(scope="module")
def verified(tmp_path_factory) -> Path:
    """A warehouse holding one verified run (no month closed)."""
    d = tmp_path_factory.mktemp("wh")
    p = run("verify", str(SAMPLE / RUNS[0]), "--db", str(d / "w.duckdb"), cwd=d)
    assert p.returncode == 0, p.stderr
    return d


def test_backtest_with_a_missing_config_is_refused(verified):
    p = run("backtest", "--config", str(verified / "missing.toml"), "--db", str(verified / "w.duckdb"), cwd=verified)
    line = refused(p)
    assert "--config" in line and "missing.toml" in line and p.stdout == ""  # no "alternative" presented


def test_backtest_with_a_missing_truth_file_is_refused(verified):
    cfg = verified / "alt.toml"
    cfg.write_text("")
    p = run("backtest", "--config", str(cfg), "--truth", str(verified / "nope.csv"), "--db",
            str(verified / "w.duckdb"), cwd=verified)
    assert "--truth" in refused(p) and p.stdout == ""


def test_tables_in_a_pipe_are_not_cut(verified):
    """Piped or captured, rich would assume 80 columns and cut headings ('false_posit…'):
    tables on stdout get a width that fits them."""
    cfg = verified / "alt-wide.toml"
    cfg.write_text("[PW201]\nthreshold_alone = 8.0\n")
    p = run("backtest", "--config", str(cfg), "--db", str(verified / "w.duckdb"), cwd=verified)
    assert p.returncode == 0, p.stderr
    assert "false_positive_flagged" in p.stdout and "confirmed_flagged" in p.stdout
    assert "…" not in p.stdout


@pytest.mark.parametrize("period", ["2026-01", "202613", "2026", "January"])
def test_close_names_a_malformed_period(verified, period):
    p = run("close", period, "--db", str(verified / "w.duckdb"), cwd=verified)
    line = refused(p)
    assert "YYYYMM" in line and "FINAL" not in line


def test_kpi_on_a_warehouse_with_no_close_says_so(verified):
    p = run("kpi", "--db", str(verified / "w.duckdb"), cwd=verified)
    assert p.returncode == 0 and p.stderr == "" and "Traceback" not in p.stdout
    assert p.stdout.strip() == "no FINAL run closed yet: close a month first (paywatch close YYYYMM)"


def test_verify_of_a_repeated_delivery_ends_in_words(verified):
    p = run("verify", str(SAMPLE / RUNS[0]), "--db", str(verified / "w.duckdb"), cwd=verified)
    assert p.returncode == 0 and "Traceback" not in p.stderr
    assert f"{RUNS[0]}: already verified: nothing changed;" in p.stdout and "noop" not in p.stdout


# ------------------------------------------------------------------------------ usage errors

@pytest.mark.parametrize("args, names", [
    (["kpi", "--bogus"], "--bogus"),                                  # unknown option
    (["close"], "period"),                                            # missing argument
    (["verify"], "run_folder"),                                       # missing argument
    (["simulate", "--out", "x", "--staff", "many"], "--staff"),       # bad value
    (["kpi", "--db"], "--db"),                                        # option without its value
    (["backtest", "--config", "nowhere.toml"], "nowhere.toml"),       # missing file for a path option
    (["verfy", "x"], "verfy"),                                        # unknown command
    (["simulate", "--out", "x", "--start", "2025-07"], "YYYYMM"),     # malformed period in an option
    (["backfill", "202601", "2026-02"], "YYYYMM"),                    # ... and in an argument
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path, args, names):
    p = run(*args, cwd=tmp_path)
    line = refused(p)
    assert names in line and line.startswith("paywatch") and p.stdout == ""
    assert "Usage:" not in line and "╭" not in p.stderr and "Try '" not in p.stderr  # not Click's panel


def test_malformed_period_is_named_as_such(tmp_path):
    line = refused(run("close", "2026-01", cwd=tmp_path))
    assert "period '2026-01' is not YYYYMM" in line


def test_backfill_with_start_after_end_is_refused(tmp_path):
    assert "after" in refused(run("backfill", "202602", "202601", cwd=tmp_path))


def test_help_still_works(tmp_path):
    for args in (["--help"], [], ["close", "--help"]):
        p = run(*args, cwd=tmp_path)
        assert p.returncode == 0 and "Usage" in p.stdout and p.stderr == "", args


# ------------------------------------------------------------------------------ verify as it goes

STAGE_LINE = r"^stage (\w+): .+ in \d+\.\d s$"


def test_verify_shows_one_line_per_stage_when_not_on_a_terminal(tmp_path):
    import re

    p = run("verify", str(SAMPLE / RUNS[1]), "--db", str(tmp_path / "w.duckdb"), cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    lines = p.stdout.strip().splitlines()
    stages = [re.match(STAGE_LINE, ln).group(1) for ln in lines[:-1]]
    assert stages == ["read", "load", "prepare", "validate", "detect", "triage", "group_cases", "store",
                      "write_reports", "send_mail"]
    assert "stage read: 10 files," in lines[0] and "new delivery" in lines[1]
    # ends in words: findings, cases, staff held
    assert re.match(rf"^{RUNS[1]}: verified; \d+ exceptions in \d+ cases, \d+ staff on hold", lines[-1]), lines[-1]
    again = run("verify", str(SAMPLE / RUNS[1]), "--db", str(tmp_path / "w.duckdb"), cwd=tmp_path)
    assert again.returncode == 0 and again.stderr == ""
    assert "validate" not in again.stdout and "already received, nothing changed" in again.stdout
    assert again.stdout.strip().splitlines()[-1].startswith(f"{RUNS[1]}: already verified: nothing changed;")


def test_verify_shows_a_live_display_on_a_terminal(tmp_path):
    """stderr on a pseudo-terminal: the stages show there (rich), stdout has only the result."""
    import os
    import pty
    import threading

    master, slave = pty.openpty()
    seen = bytearray()

    def drain():  # the child must never block on a full terminal buffer
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    p = subprocess.run([*PAYWATCH, "verify", str(SAMPLE / RUNS[2]), "--db", str(tmp_path / "w.duckdb")],
                       cwd=tmp_path, stdout=subprocess.PIPE, stderr=slave, text=True, timeout=600,
                       env=os.environ | {"TERM": "xterm-256color", "COLUMNS": "120"})
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    shown = seen.decode("utf-8", "replace")
    assert p.returncode == 0
    assert p.stdout.strip().splitlines() == [p.stdout.strip()] and p.stdout.startswith(f"{RUNS[2]}: verified;")
    for stage in ("start-up", "validate:", "detect:", "group_cases:", "send_mail:"):
        assert stage in shown, shown[-2000:]
    assert "✓" in shown


# ------------------------------------------------------------------------------ no tool noise

def test_uv_run_prints_nothing_of_its_own(tmp_path):
    """`uv run` compiled 13,000 files' bytecode (and said so) on every call while
    [tool.uv] compile-bytecode was set; bytecode is compiled once by `make setup` now."""
    import tomllib

    uv = shutil.which("uv")
    assert "compile-bytecode" not in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    assert "UV_COMPILE_BYTECODE=1" in (ROOT / "Makefile").read_text()
    if uv is None:
        pytest.skip("uv is not on PATH")
    p = subprocess.run([uv, "run", "--frozen", "paywatch", "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0 and "Bytecode compiled" not in p.stdout + p.stderr and p.stderr == "", p.stderr
