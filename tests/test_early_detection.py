"""Detection started beside validation (`paywatch.pipeline._EarlyDetection`): the same
exceptions.csv and warehouse as detecting after validation; detection really runs in its own
thread while validation runs; a critical data-quality failure still stops the run (exit 3, no
findings) and no detection outlives the verify; an error in detection is DETECT's error; a
runner that does not say it runs stages in this process detects as before."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from paywatch import pipeline, stages
from paywatch.warehouse.db import open_warehouse
from test_dq import EXCEPTIONS_HEADER, SAMPLE, TARGET, drop_rt_staff, variant

RUNS = (SAMPLE / "runs.txt").read_text(encoding="utf-8").split()
HISTORY = RUNS[: RUNS.index(TARGET)]
EARLY = "paywatch-early-detection"


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    """A warehouse with the runs before TARGET verified (history for detection)."""
    db = tmp_path_factory.mktemp("early") / "wh" / "warehouse.duckdb"
    for name in HISTORY:
        res = pipeline.verify_run(SAMPLE / name, db=db, out=db.parent.parent / "out" / name)
        assert res.exit_code in (0, 3), res.message
    return db


def _copy(db: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    (dest / db.name).write_bytes(db.read_bytes())
    return dest / db.name


def _findings_table(db: Path) -> list[tuple]:
    con = open_warehouse(db)
    try:
        cols = [r[0] for r in con.execute("SELECT * FROM findings LIMIT 0").description]
        keep = [c for c in cols if c not in ("finding_id", "created_at", "detected_at")]
        return con.execute(f"SELECT {', '.join(keep)} FROM findings ORDER BY ALL").fetchall()
    finally:
        con.close()


@pytest.fixture
def detect_calls(monkeypatch):
    """Every call of the detectors: the thread it ran in, and when it started and ended."""
    calls: list[dict] = []
    real = pipeline.detect

    def recording(inp, cfg):
        call = {"thread": threading.current_thread().name, "start": time.perf_counter()}
        calls.append(call)
        try:
            return real(inp, cfg)
        finally:
            call["end"] = time.perf_counter()

    monkeypatch.setattr(pipeline, "detect", recording)
    return calls


def _timing_runner(spans: list[tuple[float, float]]):
    """`stages.run` (so detection may start early), noting when VALIDATE starts and ends."""
    def timing(stage, *args, **kwargs):
        t = time.perf_counter()
        try:
            return stages.run(stage, *args, **kwargs)
        finally:
            if stage is pipeline.VALIDATE:
                spans.append((t, time.perf_counter()))

    timing.detects_in_process = True
    return timing


def test_detection_beside_validation_finds_the_same(history: Path, tmp_path: Path, detect_calls, monkeypatch):
    spans: list[tuple[float, float]] = []
    outs = {}
    for mode in ("0", "1"):
        monkeypatch.setenv("PAYWATCH_EARLY_DETECTION", mode)
        db = _copy(history, tmp_path / f"wh{mode}")
        res = pipeline.verify_run(SAMPLE / TARGET, db=db, out=tmp_path / f"out{mode}", runner=_timing_runner(spans))
        assert res.exit_code == 0, res.message
        outs[mode] = ((tmp_path / f"out{mode}" / "exceptions.csv").read_bytes(),
                      (tmp_path / f"out{mode}" / "cases.csv").read_bytes(), _findings_table(db))
    assert outs["1"] == outs["0"]
    assert outs["1"][0].count(b"\n") > 1  # the run has findings: a comparison that could differ
    off, on = detect_calls
    assert off["thread"] == threading.main_thread().name and on["thread"] == EARLY
    assert off["start"] >= spans[0][1]  # as before: detection after validation
    assert on["start"] < spans[1][1]  # started before validation ended
    assert not any(t.name == EARLY for t in threading.enumerate())


def test_a_critical_failure_still_stops_detection(history: Path, tmp_path: Path, detect_calls, monkeypatch):
    monkeypatch.setenv("PAYWATCH_EARLY_DETECTION", "1")
    folder = variant(tmp_path, drop_rt_staff(0.30))
    db = _copy(history, tmp_path / "wh")
    res = pipeline.verify_run(folder, db=db, out=tmp_path / "out")
    assert res.exit_code == 3, res.message
    assert (tmp_path / "out" / "exceptions.csv").read_text(encoding="utf-8") == EXCEPTIONS_HEADER
    assert _findings_table(db) == _findings_table(history)  # nothing of the discarded detection stored
    assert [c["thread"] for c in detect_calls] == [EARLY]  # it ran, beside validation, and was thrown away
    assert "end" in detect_calls[0]  # and had ended when the verify returned
    assert not any(t.name == EARLY for t in threading.enumerate())


def test_an_error_in_detection_is_detects_error(history: Path, tmp_path: Path, monkeypatch):
    def broken(inp, cfg):
        raise ZeroDivisionError("a detector broke")

    monkeypatch.setattr(pipeline, "detect", broken)
    seen = []

    def recording(stage, *args, **kwargs):
        seen.append(stage.name)
        return stages.run(stage, *args, **kwargs)

    recording.detects_in_process = True
    for mode in ("0", "1"):
        monkeypatch.setenv("PAYWATCH_EARLY_DETECTION", mode)
        seen.clear()
        db = _copy(history, tmp_path / f"wh{mode}")
        with pytest.raises(ZeroDivisionError, match="a detector broke"):
            pipeline.verify_run(SAMPLE / TARGET, db=db, out=tmp_path / f"out{mode}", runner=recording)
        assert seen[-1] == "detect", seen
        assert _findings_table(db) == _findings_table(history)


def test_a_runner_that_detects_elsewhere_gets_no_early_detection(history: Path, tmp_path: Path, detect_calls,
                                                                  monkeypatch):
    monkeypatch.setenv("PAYWATCH_EARLY_DETECTION", "1")

    def elsewhere(stage, *args, **kwargs):  # e.g. per duty station on a task runner
        return stages.run(stage, *args, **kwargs)

    assert not pipeline.early_detection(elsewhere) and pipeline.early_detection(stages.run)
    res = pipeline.verify_run(SAMPLE / TARGET, db=_copy(history, tmp_path / "wh"), out=tmp_path / "out",
                              runner=elsewhere)
    assert res.exit_code == 0, res.message
    assert [c["thread"] for c in detect_calls] == [threading.main_thread().name]
