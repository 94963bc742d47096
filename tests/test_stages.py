"""The declared stage list (paywatch.pipeline.STAGES): complete, in contract order, unique
names, every input produced by an earlier stage; the flow has a task per stage; runners
decide on stage data, never on names; the plain runner's retry loop."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paywatch import pipeline, stages
from paywatch.stages import Retry, Stage

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "gv-300"
# docs/design.md "Stages": read ▸ load ▸ validate ▸ detect ▸ group into cases ▸ store ▸ write reports ▸ send mail
CONTRACT = ("read", "load", "prepare", "validate", "detect", "triage", "group_cases", "store", "write_reports",
            "send_mail")


def test_stage_list_is_complete_and_in_contract_order():
    assert tuple(s.name for s in pipeline.STAGES) == CONTRACT
    assert len({s.name for s in pipeline.STAGES}) == len(pipeline.STAGES)
    assert len({id(s) for s in pipeline.STAGES}) == len(pipeline.STAGES)
    assert all(isinstance(s, Stage) and callable(s.fn) and s.outputs for s in pipeline.STAGES)
    constants = {k: v for k, v in vars(pipeline).items() if isinstance(v, Stage)}
    assert set(constants.values()) == set(pipeline.STAGES)
    assert all(k == v.name.upper() for k, v in constants.items())


def test_every_input_is_a_run_input_or_an_earlier_output():
    known = set(pipeline.RUN_INPUTS)
    for s in pipeline.STAGES:
        missing = set(s.inputs) - known
        assert not missing, f"{s.name} takes {missing} before any stage gives it"
        known |= set(s.outputs)


def test_policies_are_declared_on_the_stages():
    assert pipeline.SEND_MAIL.retry is not None and pipeline.MailDeferred in pipeline.SEND_MAIL.retry.on
    assert pipeline.READ.retry is not None
    assert [s for s in pipeline.STAGES if s.per_partition is not None] == [pipeline.DETECT]
    env = {"PAYWATCH_SMTP_RETRIES": "2", "PAYWATCH_SMTP_BACKOFF": "0.5"}
    assert pipeline.SEND_MAIL.retry.resolved(env) == (2, [0.5, 1.0])
    assert pipeline.SEND_MAIL.retry.resolved({"PAYWATCH_SMTP_RETRIES": "x"}) == (3, [2.0, 4.0, 8.0])


def test_the_flow_has_a_task_per_stage_named_after_it():
    from flows.verify import TASKS

    assert list(TASKS) == list(pipeline.STAGES)
    assert [t.name for t in TASKS.values()] == list(CONTRACT)


def test_no_runner_compares_stage_names():
    pattern = re.compile(r"""name\s*(==|!=|in)\s*\(?\s*["'](%s)["']""" % "|".join(CONTRACT))
    for path in [*ROOT.glob("flows/*.py"), *ROOT.glob("paywatch/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        assert not pattern.search(text), f"{path.relative_to(ROOT)} branches on a stage name"


def test_plain_runner_retries_as_declared_and_flags_the_last_attempt(monkeypatch):
    seen = []

    def flaky():
        a = stages.attempt()
        seen.append((a.number, a.final))
        if not a.final:
            raise TimeoutError("not yet")
        return "done"

    monkeypatch.setenv("TEST_RETRIES", "2")
    s = Stage("flaky", flaky, (), ("x",), retry=Retry((TimeoutError,), retries=5, delay=0.0, retries_env="TEST_RETRIES"))
    assert stages.run(s) == "done" and seen == [(1, False), (2, False), (3, True)]

    def broken():
        raise ValueError("not retried")

    calls = []
    s = Stage("broken", lambda: calls.append(1) or broken(), (), ("x",), retry=Retry((TimeoutError,), 3, 0.0))
    with pytest.raises(ValueError):
        stages.run(s)
    assert calls == [1]
    assert stages.attempt() == stages.Attempt(1, True)  # outside any runner: one, final attempt


def test_verify_walks_the_stages_in_order(tmp_path):
    walked = []

    def recording(stage, *args, **kwargs):
        walked.append(stage)
        return stages.run(stage, *args, **kwargs)

    run = (SAMPLE / "runs.txt").read_text(encoding="utf-8").split()[0]
    res = pipeline.verify_run(SAMPLE / run, db=tmp_path / "w.duckdb", out=tmp_path / "out", runner=recording)
    assert res.exit_code == 0, res.message
    assert walked == list(pipeline.STAGES)
