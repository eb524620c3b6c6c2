"""Shared CLI plumbing: settings built once, domain errors turned into exits.

Exit codes: 0 ok, 1 unexpected failure, 2 bad input/usage (as Click does),
3 not found, 4 refused (promotion gate, nothing to roll back, conflict),
5 registry unavailable, 6 storage full or read-only (disk full, quota, read-only
mount): an ``OSError`` or SQLite error of that kind, however deep MLflow or a
library wrapped it, is reported as one line that says which folder and why.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from terraops import errors
from terraops.adapters import storage_errors
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


def storage_error(exc: BaseException) -> errors.StorageError | None:
    """The ``StorageError`` behind ``exc`` (a full or read-only disk), judged against
    this home (see :func:`terraops.adapters.storage_errors.storage_error`)."""
    try:
        home = get_settings().home_dir
    except Exception:  # the settings are what failed: judge the working folder instead
        home = Path.cwd()
    return storage_errors.storage_error(exc, home)


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
