"""Shared CLI plumbing: settings built once, domain errors turned into exits.

Exit codes: 0 ok, 1 unexpected failure, 2 bad input/usage (as Click does),
3 not found, 4 refused (promotion gate, nothing to roll back, conflict),
5 registry unavailable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console

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


@contextmanager
def handle_errors() -> Iterator[None]:
    """Print a domain error as one clear message and exit with its code."""
    try:
        yield
    except errors.TerraopsError as exc:
        console.print(f"[bold red]error:[/] {exc.message}")
        reasons = getattr(exc, "reasons", None)
        for reason in reasons or []:
            console.print(f"  - {reason}")
        if exc.hint:
            console.print(f"[yellow]hint:[/] {exc.hint}")
        raise typer.Exit(exit_code_for(exc)) from None


def print_json(payload: Any) -> None:
    """Machine-readable output on stdout (plain, no colour)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    sys.stdout.flush()
