"""Starting helper processes (a Prefect server, the warm worker) and waiting for them: shared
by benchmarks/bench_warm.py and tests/test_warm_worker.py."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path


class NotReady(RuntimeError):
    """A process exited, or did not get ready in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    """Whether a Prefect server answers its /health endpoint."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def wait_for(what: str, check, proc: subprocess.Popen, log: Path, seconds: float = 240) -> object:
    """Poll `check()` until it returns something true; NotReady if `proc` exits first or the
    time runs out."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            raise NotReady(f"{what}: the process exited {proc.returncode}: {log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise NotReady(f"{what}: not within {seconds:.0f} s: {log.read_text()[-3000:]}")
