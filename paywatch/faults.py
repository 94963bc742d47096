"""Named crash points for fault-injection tests (tests/test_faults.py).

`checkpoint(name)` does nothing unless the environment variable PAYWATCH_CRASH_AT names this
point: then the process kills itself with SIGKILL on the spot, as a power cut or an OOM
kill would, so tests can prove the warehouse is exactly as before or exactly as after.
"""

from __future__ import annotations

import os
import signal

POINTS = ("load-transaction", "detection", "store-findings", "reports")
# inside the monthly close's transaction, both tables written, before the commit
CLOSE_POINTS = ("close-recorded",)


def checkpoint(name: str) -> None:
    if os.environ.get("PAYWATCH_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
