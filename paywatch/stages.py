"""Stages as data (after Kedro's nodes): a `Stage` names one step of a verification, its
function, what it takes and gives, and how it is retried or fanned out. The declared list
is `paywatch.pipeline.STAGES`; `run` is the plain runner (`paywatch verify`), and the
Prefect flows map each stage to a task with the same retry policy (flows/verify.py).

A runner is `runner(stage, *args, **kwargs)`; runners decide by the stage's data (its
`retry`, its `per_partition`), never by its name.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Retry:
    """Try a stage again on the errors `on`: `retries` more times after the first attempt,
    waiting `delay` seconds (doubled before each further attempt when `backoff`). The two
    numbers can be overridden in the environment (`retries_env`, `delay_env`), read when the
    stage runs so a deployment (or a test) sets them without code."""

    on: tuple[type[BaseException], ...]
    retries: int
    delay: float
    retries_env: str | None = None
    delay_env: str | None = None
    backoff: bool = False

    def resolved(self, env=None) -> tuple[int, list[float]]:
        """(retries, the wait before each retry) as configured now."""
        env = os.environ if env is None else env
        try:
            retries = max(int(env.get(self.retries_env, self.retries) if self.retries_env else self.retries), 0)
            delay = max(float(env.get(self.delay_env, self.delay) if self.delay_env else self.delay), 0.0)
        except ValueError:  # a mistyped setting must not cost the run: the declared policy
            retries, delay = self.retries, self.delay
        return retries, [delay * (2 ** i if self.backoff else 1) for i in range(retries)]


@dataclass(frozen=True, eq=False)
class Stage:
    """One step of a verification. `inputs`/`outputs` name the data it takes and gives (the
    contract order is checked against them); `per_partition`, when set, is the same step
    split by duty station: `per_partition(*args, map_partitions=...)`."""

    name: str
    fn: Callable
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    retry: Retry | None = None
    per_partition: Callable | None = None

    def __repr__(self) -> str:
        return f"Stage({self.name})"


@dataclass(frozen=True)
class Attempt:
    """Which attempt of a retried stage is running; `final` when no retry follows."""

    number: int = 1
    final: bool = True


_ATTEMPT: ContextVar[Attempt] = ContextVar("paywatch_attempt", default=Attempt())


def attempt() -> Attempt:
    """The attempt the calling stage runs in (1, final, when nothing retries it)."""
    return _ATTEMPT.get()


@contextlib.contextmanager
def attempting(number: int, retries: int) -> Iterator[Attempt]:
    """Run the body as attempt `number` of 1 + `retries` (runners set this, stages read it:
    a stage may hold back a failure that a later attempt can still repair)."""
    token = _ATTEMPT.set(Attempt(number, number > retries))
    try:
        yield _ATTEMPT.get()
    finally:
        _ATTEMPT.reset(token)


def run(stage: Stage, *args, **kwargs):
    """The plain runner: call the stage, and try it again as its `retry` says — the same
    policy the flow gives the stage's task, as a simple loop."""
    if stage.retry is None:
        return stage.fn(*args, **kwargs)
    retries, delays = stage.retry.resolved()
    for number in range(1, retries + 2):
        try:
            with attempting(number, retries):
                return stage.fn(*args, **kwargs)
        except stage.retry.on:
            if number > retries:
                raise
        time.sleep(delays[number - 1])
    raise AssertionError("unreachable")


def stage_count(stage: Stage, result) -> str:
    """What a stage gave, counted for its progress or log line (counts only: never a name or an
    account). One wording for `paywatch verify` and the Prefect task logs."""
    what = stage.outputs[0].replace("_", " ") if stage.outputs else "result"
    if hasattr(result, "height"):  # a frame
        return f"{result.height:,} {what}"
    if isinstance(result, tuple) and result and all(hasattr(r, "height") for r in result):
        return ", ".join(f"{r.height:,} {o.replace('_', ' ')}" for r, o in zip(result, stage.outputs))
    if isinstance(result, (list, tuple)):
        return f"{len(result):,} {what}"
    frames = getattr(result, "frames", None)
    if isinstance(frames, dict):  # an extract: its files and rows
        return f"{len(frames)} files, {sum(f.height for f in frames.values()):,} rows"
    outcome = getattr(result, "outcome", None)
    if isinstance(outcome, str):  # a load
        words = {"loaded": "new delivery", "noop": "already received, nothing changed",
                 "replaced": "replaces the earlier delivery"}
        return f"{words.get(outcome, outcome)} (version {getattr(result, 'run_version', '-')})"
    summary = getattr(result, "summary", None)
    if callable(summary):  # a delivery report
        return str(summary())
    return "done"
