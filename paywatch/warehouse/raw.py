"""The raw layer on disk: content-addressed archive and quarantine of received files.

Both only ever copy the contract's eleven file names, as regular files: a symbolic link in a
run folder is never followed (O_NOFOLLOW), so nothing outside the folder can be pulled in.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from paywatch.extract.model import ExtractError
from paywatch.extract.schema import FILE_NAMES
from paywatch.privacy import mask_ibans_in
from paywatch.paths import DIR_MODE, FILE_MODE, make_private_dir
from paywatch.warehouse.db import utc_now

MANIFEST = "manifest.json"
CONTRACT_NAMES = (MANIFEST, *FILE_NAMES)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchivedFile:
    """One received file: its name in the delivery, checksum, size and archive location."""

    file_name: str
    sha256: str
    size_bytes: int
    archived_path: str  # relative to the archive folder: <sha256[:2]>/<sha256>


class NotRegularFile(OSError):
    pass


def _open_regular(path: Path) -> int:
    """Open for reading without following a symbolic link; refuse anything but a file."""
    # O_NONBLOCK: opening a FIFO must not hang (no effect on regular files).
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(f"{path} is not a regular file")
    return fd


def _copy_to_temp(source: bytes | Path, tmp_dir: Path) -> tuple[str, str, int]:
    """Copy bytes or a file into a new private temp file; return (temp path, sha256, size)."""
    fd_out, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=".incoming-")  # mode 0600
    h, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd_out, "wb") as out:
            if isinstance(source, (bytes, bytearray, memoryview)):
                data = bytes(source)
                h.update(data)
                out.write(data)
                size = len(data)
            else:
                with os.fdopen(_open_regular(Path(source)), "rb") as src:
                    while chunk := src.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, h.hexdigest(), size


def archive_files(
    received: Mapping[str, bytes | Path],
    archive_dir: Path,
    expected: Mapping[str, str] | None = None,
) -> list[ArchivedFile]:
    """Store each received file once under `<archive_dir>/<sha[:2]>/<sha>` (never overwritten).

    Written to a temp file and moved in with os.replace, so a reader never sees half a file.
    `expected` (file name -> sha256 from the manifest) is checked on the bytes archived: the
    files must not have changed since the reader validated them (▣ checksum rule).
    """
    archive_dir = make_private_dir(Path(archive_dir))
    tmp_dir = make_private_dir(archive_dir / ".tmp")
    out = []
    for name in sorted(received):
        source = received[name]
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = bytes(source)
            sha, size = hashlib.sha256(source).hexdigest(), len(source)
            rel = f"{sha[:2]}/{sha}"
            if not (archive_dir / rel).exists():
                _place(_copy_to_temp(source, tmp_dir)[0], archive_dir / rel)
        else:
            try:
                tmp, sha, size = _copy_to_temp(source, tmp_dir)  # one pass: copy and hash
            except OSError as exc:
                raise ExtractError(name, None, None,
                                   f"cannot read the received file: {exc}") from exc
            rel = f"{sha[:2]}/{sha}"
            _place(tmp, archive_dir / rel)
        if expected is not None and name in expected and expected[name] != sha:
            raise ExtractError(
                name, None, None,
                f"sha256 {sha} differs from the manifest's {expected[name]} "
                "(file changed after it was read)",
            )
        out.append(ArchivedFile(name, sha, size, rel))
    return out


def _place(tmp: str, target: Path) -> None:
    """Move a finished temp file to its content address; an existing copy is kept as is."""
    if target.exists():
        os.unlink(tmp)
        return
    make_private_dir(target.parent)
    os.replace(tmp, target)


def read_archived(archive_dir: Path, sha256: str) -> bytes:
    """The exact bytes received with this checksum."""
    return (Path(archive_dir) / sha256[:2] / sha256).read_bytes()


# --- quarantine ----------------------------------------------------------------------------


def safe_name(text: str | None) -> str:
    """A run id made safe as part of a folder name ('unknown' when there is none).

    The reader only lets contract-safe run ids through; this is the second net for any
    other caller: never a separator, never a leading dot, never more than 64 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text or "").lstrip("._")[:64]
    return cleaned or "unknown"


def copy_to_quarantine(
    folder: Path, reason: str, quarantine_dir: Path, run_id: str | None = None
) -> tuple[Path, list[ArchivedFile], list[str]]:
    """Copy the contract's regular files of `folder` into a new quarantine folder with
    REASON.txt. Returns (folder, files copied, notes on files not copied)."""
    quarantine_dir = make_private_dir(Path(quarantine_dir))
    stamp = utc_now().strftime("%Y%m%dT%H%M%S.%fZ")
    base = f"{stamp}-{safe_name(run_id)}"
    target, n = quarantine_dir / base, 1
    while True:
        try:
            os.mkdir(target, DIR_MODE)
            break
        except FileExistsError:
            n += 1
            target = quarantine_dir / f"{base}-{n}"
    copied, skipped = [], []
    for name in CONTRACT_NAMES:
        src = Path(folder) / name
        try:
            st = os.lstat(src)
        except OSError:
            skipped.append(f"{name}: not received")
            continue
        if not stat.S_ISREG(st.st_mode):
            kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
            skipped.append(f"{name}: not copied ({kind})")
            continue
        try:
            tmp, sha, size = _copy_to_temp(src, target)
        except OSError as exc:
            skipped.append(f"{name}: not copied ({exc})")
            continue
        os.replace(tmp, target / name)
        copied.append(ArchivedFile(name, sha, size, name))
    _write_reason(target, reason, folder, run_id, copied, skipped)
    return target, copied, skipped


def _write_reason(target, reason, folder, run_id, copied, skipped) -> None:
    lines = [
        mask_ibans_in(reason),
        "",
        f"run_id: {safe_name(run_id)}",
        f"received from: {mask_ibans_in(str(folder))}",
        f"quarantined at: {utc_now().isoformat(timespec='seconds')}Z",
        "files:",
        *(f"  {f.file_name} sha256={f.sha256} bytes={f.size_bytes}" for f in copied),
        *(f"  {s}" for s in skipped),
    ]
    fd = os.open(target / "REASON.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
