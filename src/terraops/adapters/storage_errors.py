"""A full or read-only disk, recognised however deeply a library wrapped it.

MLflow wraps SQLAlchemy, which wraps SQLite, which says "database or disk is
full"; a report writer raises a bare ``OSError(ENOSPC)``. The entry points ask
:func:`storage_error` whether an unexpected exception is one of those, so the
person at the keyboard reads which folder and why instead of a traceback.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from terraops import errors

#: errno → what it means for the person who must fix it.
STORAGE_ERRNOS: dict[int, str] = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EFBIG: "a file would exceed the allowed file size",
    errno.EROFS: "the file system is read-only",
}

#: SQLite's words for the same failures (MLflow's store and the alias journal are SQLite).
#: "disk I/O error" is what SQLite says when its WAL cannot grow, so it is diagnosed below.
_SQLITE_STORAGE_TEXT = (
    "database or disk is full",
    "attempt to write a readonly database",
    "disk i/o error",
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or during (each once)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [c for c in (current.__cause__, current.__context__) if c is not None]


def _diagnose(folder: Path) -> str | None:
    """Why ``folder`` (or its nearest existing parent) cannot be written, if it cannot."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None:
        return None
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        return STORAGE_ERRNOS[errno.EROFS]
    if shutil.disk_usage(existing).free < 1024 * 1024:
        return STORAGE_ERRNOS[errno.ENOSPC]
    limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if limit != resource.RLIM_INFINITY:
        return f"{STORAGE_ERRNOS[errno.EFBIG]} (ulimit -f: {limit} bytes)"
    return None


def storage_error(exc: BaseException, home: Path) -> errors.StorageError | None:
    """The ``StorageError`` behind ``exc`` when a write failed for lack of room or a
    read-only mount, else None (``home``: where to look when the error names no file).

    Why walk the chain: the same ENOSPC reaches the caller as a bare ``OSError``
    (a report file), a ``sqlite3.OperationalError`` (the alias journal) or an
    MLflow exception wrapping SQLAlchemy wrapping SQLite (the tracking store).
    """
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.errno in STORAGE_ERRNOS:
            where = Path(cause.filename) if cause.filename else home
            return _storage(STORAGE_ERRNOS[cause.errno], where)
        if isinstance(cause, FileNotFoundError) and "No usable temporary directory" in str(cause):
            where = Path(tempfile.tempdir or os.environ.get("TMPDIR") or "/tmp")
            return _storage(
                "no temporary folder can be written (full or read-only)",
                where,
                hint="free space there or set TMPDIR to a writable folder",
            )
    for cause in _causes(exc):
        text = str(cause).lower()
        said = next((words for words in _SQLITE_STORAGE_TEXT if words in text), None)
        if said is not None:
            diagnosis = _diagnose(home)
            if diagnosis is not None or said != "disk i/o error":
                return _storage(diagnosis or said, home)
    return None


def _storage(why: str, where: Path, *, hint: str | None = None) -> errors.StorageError:
    return errors.StorageError(
        f"cannot write {where}: {why}",
        hint=hint
        or "free space there (or remount it read-write), or set TERRAOPS_HOME to a "
        "writable folder with room; then rerun the command",
    )
