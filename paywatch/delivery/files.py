"""Owner-only folders and files for report packages (they carry names and amounts)."""

from __future__ import annotations

import os
from pathlib import Path

from paywatch.warehouse.db import make_private_dir, owner_only_umask

FILE_MODE, DIR_MODE = 0o600, 0o700


def private_dir(path: Path) -> Path:
    """Create `path` if missing and make it 0700 (also when it existed)."""
    make_private_dir(path)
    os.chmod(path, DIR_MODE)
    return path


def write_private(path: Path, data: bytes) -> Path:
    """Write a file readable by its owner only (atomically: no half-written package)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with owner_only_umask():
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
    return path
