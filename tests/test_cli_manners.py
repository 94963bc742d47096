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
