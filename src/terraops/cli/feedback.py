"""``terraops feedback import FILE`` and ``terraops feedback error SERVICE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from terraops.cli.common import console, handle_errors, out, print_json, settings_from

feedback_app = typer.Typer(
    help="Ground truth for served predictions, and the live error it gives.",
    no_args_is_help=True,
)


@feedback_app.command("import")
def import_file(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV or JSON lines (.csv, .jsonl).")],
    service: Annotated[
        str | None,
        typer.Option(help="Service of rows without a 'service' field/column."),
    ] = None,
    version: Annotated[
        int | None,
        typer.Option(min=1, help="Score feature rows with this version (default: champion)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Import observed values: every row is checked first, then all are stored at once.

    A row gives ``request_id`` (the X-Request-Id of a prediction; ``index`` for
    a row of a batch) or the features, and ``observed``. Bad rows are listed
    with their line numbers and nothing is imported.
    """
    from terraops.pipelines.monitoring.feedback import import_feedback

    with handle_errors(ctx):
        settings = settings_from(ctx)
        entries = _validated_entries(file, service)
        summary = import_feedback(
            settings, entries, source=f"import:{file.name}", path=file, version=version
        )
    if as_json:
        print_json(summary)
        return
    console.print(f"imported {summary['imported']} feedback row(s) from {file}")
    for name, figures in summary["live_error"].items():
        out.print(_error_line(name, figures))


@feedback_app.command("error")
def live_error(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="uhi, flood, ...")],
    since: Annotated[
        str | None, typer.Option(help="Feedback received at or after (ISO 8601).")
    ] = None,
    version: Annotated[int | None, typer.Option(min=1, help="Only this model version.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Live error of a service from the feedback received (MAE, or Brier and F1)."""
    from datetime import datetime

    from terraops.adapters.feedback_store import FeedbackStore
    from terraops.errors import InvalidInputError
    from terraops.services import get_service

    with handle_errors(ctx):
        get_service(service)
        try:
            moment = datetime.fromisoformat(since) if since else None
        except ValueError:
            raise InvalidInputError(f"--since: {since!r} is not an ISO 8601 time") from None
        figures = FeedbackStore(settings_from(ctx).feedback_db).live_error(service, moment, version)
    if as_json:
        print_json(figures)
    else:
        out.print(_error_line(service, figures))


def _error_line(service: str, figures: dict[str, Any]) -> str:
    if figures["value"] is None:
        return f"{service}: no feedback yet"
    parts = [f"{service}: {figures['metric']} {figures['value']:.4g} over {figures['n']} row(s)"]
    for version, v in figures["by_version"].items():
        parts.append(f"  v{version}: {figures['metric']} {v[figures['metric']]:.4g} (n={v['n']})")
    return "\n".join(parts)


def _validated_entries(file: Path, default_service: str | None) -> list[Any]:
    """Parse and validate every row like the API does; report all bad lines at once."""
    from terraops.api.errors import describe_validation_error
    from terraops.api.routes_feedback import entry_from_body, feedback_model
    from terraops.api.schemas import features_model
    from terraops.errors import InvalidInputError
    from terraops.pipelines.monitoring.feedback import bad_rows_error, read_feedback_file
    from terraops.services import all_services

    services = all_services()
    models: dict[str, Any] = {}
    entries, bad = [], []
    for line, item in read_feedback_file(file):
        name = item.pop("service", None) or default_service
        if name is None:
            bad.append(f"line {line}: no service (add a 'service' field or pass --service)")
            continue
        if name not in services:
            bad.append(f"line {line}: unknown service {name!r}")
            continue
        definition = services[name]
        if name not in models:
            models[name] = feedback_model(definition, features_model(definition))
        try:
            body = models[name].model_validate(item)
            entries.append(entry_from_body(definition, body, line))
        except ValidationError as exc:
            for error in exc.errors():
                message = describe_validation_error(error, definition)["message"]
                bad.append(f"line {line}: {message}")
        except InvalidInputError as exc:
            bad.append(f"line {line}: {exc.message}")
    if bad:
        raise bad_rows_error(file, bad)
    if not entries:
        raise InvalidInputError(f"{file}: no rows to import")
    return entries


def register(app: typer.Typer) -> None:
    app.add_typer(feedback_app, name="feedback")
