"""Shared CLI plumbing: settings built once, domain errors turned into exits.

Exit codes: 0 ok, 1 unexpected failure, 2 bad input/usage (as Click does),
3 not found, 4 refused (promotion gate, nothing to roll back, conflict),
5 registry unavailable, 6 storage full or read-only (disk full, quota, read-only
mount): an ``OSError`` or SQLite error of that kind, however deep MLflow or a
library wrapped it, is reported as one line that says which folder and why.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from terraops import errors
from terraops.settings import Settings

console = Console(stderr=True)
out = Console()

EXIT_CODES: dict[type[errors.TerraopsError], int] = {
    errors.InvalidInputError: 2,
    errors.NotFoundError: 3,
    errors.PromotionRefusedError: 4,
    errors.NothingToRollBackError: 4,
    errors.ConflictError: 4,
    errors.RegistryUnavailableError: 5,
    errors.StorageError: 6,
}

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

F = TypeVar("F", bound=Callable[..., Any])

_settings: Settings | None = None


def get_settings() -> Settings:
    """The process's settings, built once from the environment."""
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def exit_code_for(exc: errors.TerraopsError) -> int:
    return errors.lookup_by_error_class(EXIT_CODES, exc, 1)


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


def storage_error(exc: BaseException) -> errors.StorageError | None:
    """The ``StorageError`` behind ``exc`` when a write failed for lack of room or a
    read-only mount, else None.

    Why walk the chain: the same ENOSPC reaches the CLI as a bare ``OSError``
    (a report file), a ``sqlite3.OperationalError`` (the alias journal) or an
    MLflow exception wrapping SQLAlchemy wrapping SQLite (the tracking store).
    """
    try:
        home = get_settings().home_dir
    except Exception:  # the settings are what failed: judge the working folder instead
        home = Path.cwd()
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


def _print_error(exc: errors.TerraopsError) -> None:
    # Escaped: messages quote commands such as pip install 'terraops[segment]', which
    # rich would otherwise read as markup and print without the brackets.
    console.print(f"[bold red]error:[/] {escape(exc.message)}")
    reasons = getattr(exc, "reasons", None)
    for reason in reasons or []:
        console.print(f"  - {escape(str(reason))}")
    if exc.hint:
        console.print(f"[yellow]hint:[/] {escape(exc.hint)}")


@contextmanager
def handle_errors() -> Iterator[None]:
    """Print a domain error (or a full / read-only disk) as one clear message and exit
    with its code; anything else is a bug and keeps its traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort):  # a command's own exit, already decided
        raise
    except Exception as exc:
        reported: errors.TerraopsError | None = storage_error(exc)
        if reported is None and isinstance(exc, errors.TerraopsError):
            reported = exc
        if reported is None:
            raise
        _print_error(reported)
        raise typer.Exit(exit_code_for(reported)) from None


def print_json(payload: Any) -> None:
    """Machine-readable output on stdout (plain, no colour)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    sys.stdout.flush()
