"""Test settings that must be in place before Prefect is imported (docs/stack-notes.md)."""

from __future__ import annotations

import os
import tempfile

_PREFECT_HOME = tempfile.mkdtemp(prefix="paywatch-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PAYWATCH_RETRY_DELAY_SECONDS", "0.2")
# tests never mail anyone unless they start their own SMTP server
for key in [k for k in os.environ if k.startswith("PAYWATCH_SMTP_")]:
    del os.environ[key]
