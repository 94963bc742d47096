"""When Paywatch itself cannot work (disk full, a damaged or unreadable warehouse, no
permission, a bug): one line for the person at the terminal and a private log file with the
traceback (docs/cli-contract.md 1.1, exit 1). Never a traceback on the terminal.

The line names what went wrong in general terms and the log file; it never carries an
exception's own message except what the operating system says (no values from the data).
"""

from __future__ import annotations

import errno
import os
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from paywatch.paths import make_private_dir, write_private
from paywatch.privacy import mask_ibans_in

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


def _chain(exc: BaseException):
    """The exception and every cause or context behind it (a library may wrap an OSError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def what_went_wrong(exc: BaseException) -> str:
    """A short, data-free description of why Paywatch could not work, and what to do."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            return f"disk full ({os.strerror(e.errno)}){_where(e)}: free some space and run the command again"
        if isinstance(e, OSError) and e.errno in _NO_PERMISSION:
            return f"no permission ({os.strerror(e.errno)}){_where(e)}: check the owner and mode of the folder"
    for e in _chain(exc):
        text = str(e)
        # DuckDB reports a full disk inside its own IOException, without an errno
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return "disk full (No space left on device): free some space and run the command again"
        if type(e).__module__.startswith(("duckdb", "_duckdb")):
            return (f"the warehouse could not be read or written ({type(e).__name__}): if it is damaged, "
                    "run `paywatch doctor` and rebuild it from the archive")
    return f"an unexpected error ({type(exc).__name__})"


def _where(e: OSError) -> str:
    return f" at {e.filename}" if e.filename else ""


def write_log(home: Path | None, exc: BaseException, command: str) -> Path | None:
    """`<home>/logs/paywatch-<timestamp>.log` (0600) with the traceback, IBANs masked; the
    temporary folder when the home cannot take it (a full disk); None when nothing can."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    text = mask_ibans_in(f"paywatch {command} failed at {stamp}\n"
                         + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    name = f"paywatch-{stamp}-{os.getpid()}.log"
    folders = ([Path(home) / "logs"] if home is not None else []) + [Path(tempfile.gettempdir()) / f"paywatch-logs-{os.getuid()}"]
    for folder in folders:
        try:
            return write_private(make_private_dir(folder) / name, text.encode("utf-8"))
        except OSError:
            continue
    return None


def one_line(exc: BaseException, log: Path | None) -> str:
    """The line printed on stderr (exit 1)."""
    where = f"details in {log}" if log else "no log file could be written either"
    return mask_ibans_in(f"paywatch cannot work: {what_went_wrong(exc)}; {where}")
