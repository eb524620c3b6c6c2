"""``terraops train`` and ``terraops card``: thin wrappers over the pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from terraops.cli.common import console, handle_errors, out, print_json, settings_from

if TYPE_CHECKING:
    from terraops.pipelines.training.train import TrainResult
    from terraops.settings import Settings


_SCHEMES = ("random_cv", "spatial_cv", "scene_cv", "spatial_cv_core_only", "train")


def _summary_table(result: TrainResult, primary: str) -> Table:
    """Rows: metric; columns: CV scheme (the primary metric in bold)."""
    by_base: dict[str, dict[str, float]] = {}
    for key, value in result.metrics.items():
        for scheme in sorted(_SCHEMES, key=len, reverse=True):
            if key.endswith(f"_{scheme}"):
                by_base.setdefault(key.removesuffix(f"_{scheme}"), {})[scheme] = value
                break
    table = Table(title=f"{result.service} v{result.version}")
    table.add_column("metric")
    for scheme in _SCHEMES:
        table.add_column(scheme.replace("_", " "), justify="right")
    for base, values in sorted(by_base.items()):
        cells = []
        for scheme in _SCHEMES:
            text = f"{values[scheme]:.4g}" if scheme in values else "–"
            cells.append(f"[bold]{text}[/]" if f"{base}_{scheme}" == primary else text)
        table.add_row(base, *cells)
    return table


def _comparison_table(result: TrainResult) -> Table:
    """Rows: the models compared on the city's held-out blocks; all cells and land cells."""
    table = Table(title=f"held-out blocks ({result.kind} run)")
    for column in ("model", "n", "MAE", "MAE after offset", "Spearman", "land n", "land ρ"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in result.comparison:
        version = f" v{row['version']}" if row.get("version") else ""
        values = (
            row[k] for k in ("n", "mae", "mae_after_offset", "spearman", "land_n", "land_spearman")
        )
        cells = ("–" if v is None else f"{v:.4g}" for v in values)
        table.add_row(f"{row['model']}{version}", *cells)
    return table


def _champion_if_none(settings: Settings, service: str, version: int) -> int | None:
    """Promote ``version`` when ``service`` has no champion yet; returns the champion it made.

    A fresh home has nothing to serve until something is champion: the first
    trained version takes that place, through the same gates as ``terraops
    promote`` (a refusal is reported and the version stays challenger). Once a
    champion exists, a new version only ever becomes challenger.
    """
    from terraops.adapters.registry import ModelRegistry
    from terraops.domain.promotion import CHAMPION
    from terraops.errors import PromotionRefusedError
    from terraops.pipelines.lifecycle import aliases as lifecycle

    registry = ModelRegistry(settings)
    if registry.get_alias(service, CHAMPION) is not None:
        return None
    try:
        lifecycle.promote(
            settings, registry, service, version, reason="first version that passed the gates"
        )
    except PromotionRefusedError as refused:
        console.print(f"[yellow]{service} v{version} stays challenger:[/] {refused}")
        for reason in refused.reasons:
            console.print(f"  - {reason}")
        return None
    console.print(f"[green]{service} v{version} is champion[/] (the first that passed the gates)")
    return version


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        ctx: typer.Context,
        service: str = typer.Argument(..., help="Service to train (uhi, flood)."),
        scenes: list[Path] = typer.Option(
            ..., "--scenes", help="Scene folder(s): --scenes A B C (or repeat --scenes)."
        ),
        more_scenes: list[Path] | None = typer.Argument(
            None, hidden=True, help="Further scene folders after --scenes A."
        ),
        param: list[str] = typer.Option([], "--param", help="Override: name=value; repeatable."),
        cell_size: float | None = typer.Option(None, "--cell-size", help="Cell size (m)."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
        champion_if_none: bool = typer.Option(
            False,
            "--champion-if-none",
            help="Also make it champion when the service has none yet and it passes the gates.",
        ),
        init_from: str | None = typer.Option(
            None,
            "--init-from",
            help="Adapt a registered model to imported scenes: 'champion' or a version number "
            "(rescaled to the city, shrunk toward its mean, and boosted on its pixels).",
        ),
    ) -> None:
        """Train a service on scenes with spatial CV, log to MLflow, register a challenger.

        Imported scenes (several dates of one or more cities) train a model of those cities:
        blocks sized to each scene, a share of them held out, and on those blocks this
        model, one trained from scratch and the registered model side by side.
        """
        from terraops.pipelines.training.train import parse_param_pairs, train_service
        from terraops.services import get_service

        with handle_errors(ctx):
            settings = settings_from(ctx)
            definition = get_service(service)
            result = train_service(
                settings,
                definition,
                [*scenes, *(more_scenes or [])],
                parse_param_pairs(param),
                cell_size_m=cell_size,
                progress=not no_progress and not as_json,
                init_from=init_from,
            )
            first = None
            if champion_if_none and result.data_quality_passed:
                first = _champion_if_none(settings, service, result.version)
        if as_json:
            print_json(
                {
                    "run_id": result.run_id,
                    "version": result.version,
                    "service": result.service,
                    "data_quality": "passed" if result.data_quality_passed else "failed",
                    "kind": result.kind,
                    "mae_spatial_cv": result.metrics.get("mae_spatial_cv"),
                    "spearman_spatial_cv": result.metrics.get("spearman_spatial_cv"),
                    "metrics": result.metrics,
                    **({"held_out_comparison": result.comparison} if result.comparison else {}),
                    **({"champion": first} if champion_if_none else {}),
                }
            )
        else:
            out.print(_summary_table(result, definition.primary_metric))
            if result.comparison:
                out.print(_comparison_table(result))
            out.print(
                f"run [cyan]{result.run_id}[/] → {result.service} v{result.version} "
                f"in {result.duration_s:.1f} s; leakage gap "
                f"{result.metrics.get('leakage_gap', float('nan')):.3g}"
            )
        if not result.data_quality_passed:
            console.print(
                "[bold red]error:[/] data-quality checks failed: the version is registered "
                "for the record but not made challenger, and promotion will refuse it"
            )
            console.print("[yellow]hint:[/] see data_quality.json in the run's artifacts")
            raise typer.Exit(2)

    @app.command("card")
    def card(
        ctx: typer.Context,
        service: str = typer.Argument(..., help="Service (uhi, flood, segmentation)."),
        out_path: Path | None = typer.Option(
            None, "--out", help="Output file (default docs/model_cards/<service>.md)."
        ),
        version: int | None = typer.Option(None, "--version", help="Version (default champion)."),
    ) -> None:
        """Write the Markdown model card of the champion (or --version) from the registry."""
        from terraops.pipelines.lifecycle.aliases import model_service
        from terraops.pipelines.lifecycle.cards import write_model_card

        with handle_errors(ctx):
            settings = settings_from(ctx)
            target = out_path or Path("docs/model_cards") / f"{service}.md"
            path, used = write_model_card(settings, model_service(service), target, version=version)
        console.print(f"model card for {service} v{used} written to {path}")
