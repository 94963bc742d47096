"""Texts as they may appear in a report: IBANs masked, never a formula, safe file names;
the data-quality lines of the cover sheet and the mail."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from paywatch.privacy import mask_ibans_in

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


def cell_text(value) -> str:
    """A text as it may appear in a report: IBANs masked, control characters removed, and
    never interpretable as a formula (OWASP CSV injection: a leading = + - @ gets a quote)."""
    s = _CONTROL_RE.sub("", mask_ibans_in("" if value is None else str(value)))
    if s.startswith(_FORMULA_START) or s.lstrip().startswith(_FORMULA_START[:4]):
        s = "'" + s
    return s[:32000]


def safe_name(text: str) -> str:
    """A file-name-safe form of a run id or recipient key."""
    return _SAFE_RE.sub("_", text).strip("._") or "x"


def html_text(value) -> str:
    """A value for an HTML body: IBANs masked, escaped."""
    return html.escape(mask_ibans_in("" if value is None else str(value)))


def dq_status_text(status: str, checks: Iterable[dict]) -> str:
    """One line for the cover sheet and the mail: the run's data-quality status."""
    checks = list(checks or [])
    failed_crit = [c["name"] for c in checks if c.get("severity") == "critical" and not c.get("success")]
    warns = [c["name"] for c in checks if c.get("severity") != "critical" and not c.get("success")]
    if status == "dq_blocked" or failed_crit:
        n = len(failed_crit)
        return (f"NOT VERIFIED — the extract failed {n or 'a'} critical data-quality check{'s' if n > 1 else ''}; "
                "no exceptions were looked for")
    if warns:
        return f"verified, with data-quality warnings: {', '.join(warns)}"
    return f"verified — all {len(checks)} data-quality checks passed" if checks else "verified"


def dq_details(checks: Iterable[dict]) -> list[str]:
    """The sentences of the failed checks (no personal data: checks name no one)."""
    return [f"{c['name']} ({c['severity']}): {c['detail']}" for c in (checks or []) if not c.get("success")]


def dq_lines(checks: Iterable[dict], blocked: bool = False) -> list[str]:
    """The failed checks in words for mails and workbooks (no internal check names): the
    critical ones when the run was blocked, else the warnings."""
    failed = [c for c in (checks or []) if not c.get("success")]
    crit = [c for c in failed if c.get("severity") == "critical"]
    return [str(c.get("detail") or c.get("description") or "a data-quality check failed")
            for c in (crit if blocked and crit else failed)]
