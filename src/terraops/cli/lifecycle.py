"""``terraops promote`` / ``rollback`` / ``models list`` / ``models history``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from terraops.cli.common import console, handle_errors, out, print_json, settings_from
from terraops.domain.promotion import CHALLENGER
from terraops.errors import InvalidInputError
from terraops.pipelines.lifecycle.resolve import resolve_version_number

if TYPE_CHECKING:
    from terraops.domain.promotion import HistoryEntry
    from terraops.settings import Settings

models_app = typer.Typer(help="Registered model versions and their alias history.")

ServiceArg = Annotated[str, typer.Argument(help="Service name, e.g. uhi or flood.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (kept in the history).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _registry(settings: Settings) -> Any:
    from terraops.adapters.registry import ModelRegistry

    return ModelRegistry(settings)


def _describe(entry: HistoryEntry) -> str:
    old = f"v{entry.from_version}" if entry.from_version is not None else "(none)"
    new = f"v{entry.to_version}" if entry.to_version is not None else "(none)"
    return f"{entry.service} {entry.alias}: {old} → {new}"


def promote(
    ctx: typer.Context,
    service: ServiceArg,
    version: Annotated[
        int | None, typer.Option("--version", "-v", min=1, help="Version to promote.")
    ] = None,
    challenger: Annotated[
        bool, typer.Option("--challenger", help="Promote the version aliased 'challenger'.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Override data-quality/metric gates (recorded).")
    ] = False,
    reason: ReasonOpt = None,
) -> None:
    """Make VERSION (or the current challenger) the champion of SERVICE if it passes the gates."""
    from terraops.pipelines.lifecycle import aliases as lifecycle

    with handle_errors(ctx):
        registry = _registry(settings_from(ctx))
        version = _version_to_promote(registry, service, version, challenger)
        outcome = lifecycle.promote(
            settings_from(ctx), registry, service, version, reason=reason, force=force
        )
    for overridden in outcome.decision.overridden:
        console.print(f"[yellow]forced past:[/] {overridden}")
    console.print(f"[green]promoted[/] {_describe(outcome.entry)}")


def _version_to_promote(registry: Any, service: str, version: int | None, challenger: bool) -> int:
    if (version is None) == (not challenger):
        raise InvalidInputError(
            "give exactly one of --version N and --challenger",
            hint="`terraops models list SERVICE` shows versions and aliases",
        )
    hint = f"train one: `terraops train {service} ...`"
    return resolve_version_number(registry, service, version, CHALLENGER, hint=hint)


def rollback(
    ctx: typer.Context,
    service: ServiceArg,
    to: Annotated[
        int | None, typer.Option("--to", min=1, help="A former champion (default: previous).")
    ] = None,
    reason: ReasonOpt = None,
) -> None:
    """Restore the previous champion of SERVICE (from the alias history)."""
    from terraops.pipelines.lifecycle import aliases as lifecycle

    with handle_errors(ctx):
        settings = settings_from(ctx)
        entry = lifecycle.rollback(settings, _registry(settings), service, to, reason=reason)
    console.print(f"[green]rolled back[/] {_describe(entry)}")


@models_app.command("list")
def list_models(ctx: typer.Context, service: ServiceArg, as_json: JsonOpt = False) -> None:
    """Registered versions of SERVICE with aliases, primary metric and data quality."""
    from terraops.services.registered import model_service

    with handle_errors(ctx):
        definition = model_service(service)
        registry = _registry(settings_from(ctx))
        versions = registry.list_versions(service)
    rows = [
        {
            "version": v.version,
            "aliases": v.aliases,
            definition.primary_metric: v.metrics.get(definition.primary_metric),
            "data_quality": v.tags.get("terraops.data_quality"),
            "run_id": v.run_id,
            "created_at": v.created_at.isoformat(),
        }
        for v in sorted(versions, key=lambda v: v.version)
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{service} model versions")
    for column in ("version", "aliases", definition.primary_metric, "data quality", "created"):
        table.add_column(column)
    for row in rows:
        metric = row[definition.primary_metric]
        table.add_row(
            str(row["version"]),
            ", ".join(row["aliases"]),
            f"{metric:.4g}" if metric is not None else "-",
            str(row["data_quality"]),
            row["created_at"][:19],
        )
    out.print(table)


@models_app.command("history")
def show_history(ctx: typer.Context, service: ServiceArg, as_json: JsonOpt = False) -> None:
    """Alias history of SERVICE, newest first: who, when, from, to, why."""
    from terraops.pipelines.lifecycle import aliases as lifecycle

    with handle_errors(ctx):
        entries = lifecycle.history(settings_from(ctx), service)
    if as_json:
        print_json([e.as_dict() for e in entries])
        return
    table = Table(title=f"{service} alias history (newest first)")
    for column in ("when (UTC)", "alias", "action", "from", "to", "who", "status", "reason"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            e.created_at.isoformat()[:19],
            e.alias,
            e.action + (" (forced)" if e.forced else ""),
            str(e.from_version or "-"),
            str(e.to_version or "-"),
            e.actor,
            e.status,
            e.reason or "",
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.add_typer(models_app, name="models")
