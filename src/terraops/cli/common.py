"""Shared CLI plumbing: settings built once, domain errors turned into exits.

Exit codes: 0 ok, 1 unexpected failure, 2 bad input/usage (as Click does),
3 not found, 4 refused (promotion gate, nothing to roll back, conflict),
5 registry unavailable, 6 storage full or read-only (disk full, quota, read-only
mount): an ``OSError`` or SQLite error of that kind, however deep MLflow or a
library wrapped it, is reported as one line that says which folder and why.
"""

from __future__ import annotations

import json
import os
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
from terraops.timing import start_clock, stop_clock

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


def settings_from(ctx: typer.Context) -> Settings:
    """This run's settings, kept on the root of the Click context.

    The ``terraops`` entry point builds them once from the environment; a caller that
    invokes the commands itself passes its own (``CliRunner().invoke(app, args,
    obj=settings)``). When neither did (a sub-app run on its own, or an environment
    the entry point could not read), they are built here, on first use, so a bad
    ``TERRAOPS_`` value fails in the command that needs it, as it always has.
    """
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Settings()
    if not isinstance(root.obj, Settings):
        raise TypeError(f"the CLI context holds {type(root.obj).__name__}, not Settings")
    return root.obj


def exit_code_for(exc: errors.TerraopsError) -> int:
    return errors.lookup_by_error_class(EXIT_CODES, exc, 1)


def _home_of_this_run(ctx: typer.Context | None) -> Path:
    """The home a failure is judged against: that of the command's settings (those
    of the environment for a command that reads no settings)."""
    try:
        settings = settings_from(ctx) if ctx is not None else Settings()
        return settings.home_dir
    except Exception:  # the settings are what failed: judge the working folder instead
        return Path.cwd()


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
def handle_errors(ctx: typer.Context | None = None) -> Iterator[None]:
    """Print a domain error (or a full / read-only disk) as one clear message and exit
    with its code; anything else is a bug and keeps its traceback.

    ``ctx``: the command's context, whose settings' home a full disk is judged against.
    """
    try:
        yield
    except (typer.Exit, typer.Abort):  # a command's own exit, already decided
        raise
    except Exception as exc:
        reported: errors.TerraopsError | None = storage_errors.storage_error(
            exc, _home_of_this_run(ctx)
        )
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


def _process_age_s() -> float | None:
    """Seconds since this process started (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime_s - int(stat[19]) / ticks)  # field 22: start time in ticks


def report_time_split(ctx: typer.Context) -> None:
    """Time this command (``--verbose``) and print the split when it ends."""
    startup_s = _process_age_s()
    clock = start_clock()

    def report() -> None:
        parts = clock.summary(startup_s)
        total = sum(parts.values())
        split = " · ".join(f"{name} {seconds:.2f} s" for name, seconds in parts.items())
        console.print(f"[dim]time: {split} · total {total:.2f} s[/]", soft_wrap=True)
        stop_clock()

    ctx.call_on_close(report)
