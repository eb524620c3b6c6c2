"""``terraops`` command line: each command group registers itself here."""

from __future__ import annotations

import contextlib
import importlib
import os

import typer
from pydantic import ValidationError

from terraops.adapters.process_env import PROCESS_ENV_DEFAULTS
from terraops.cli.common import report_time_split
from terraops.settings import Settings

app = typer.Typer(
    name="terraops",
    help="MLOps for environmental and geospatial models (urban heat, flood risk, maps).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Process-wide library switches (MLflow's progress bars and run links, GX analytics),
# set once here: library code never writes the environment other threads read.
for _name, _value in PROCESS_ENV_DEFAULTS.items():
    os.environ.setdefault(_name, _value)


@app.callback()
def build_settings(
    ctx: typer.Context,
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="After the command, say how its time split: start-up, imports, model "
        "loading and the work itself.",
    ),
) -> None:
    """Build this run's settings once, here at the entry point, for the commands to
    read through their context (``settings_from(ctx)``); settings a caller passed in
    (``obj=``) are kept."""
    if verbose:
        report_time_split(ctx)
    if ctx.obj is None:
        # An unreadable TERRAOPS_ value is left for the command that needs the settings
        # to report, as it always has: --help and commands that need none still work.
        with contextlib.suppress(ValidationError):
            ctx.obj = Settings()


# Each module exposes ``register(app)``; a module that is not there yet is skipped
# so that the CLI keeps working while capabilities arrive one issue at a time.
_COMMAND_MODULES = (
    "terraops.cli.scene",
    "terraops.cli.training",
    "terraops.cli.lifecycle",
    "terraops.cli.serving",
    "terraops.cli.maps",
    "terraops.cli.feedback",
    "terraops.cli.monitor",
    "terraops.cli.samples",
    "terraops.cli.evaluate",
    "terraops.cli.segment",
    "terraops.cli.whatif",
    "terraops.cli.report",
)

for _module_name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(_module_name)
    except ModuleNotFoundError as _exc:
        if _exc.name != _module_name:
            raise
        continue
    _module.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
