"""``terraops`` command line: each command group registers itself here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="terraops",
    help="MLOps for environmental and geospatial models (urban heat, flood risk, maps).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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
