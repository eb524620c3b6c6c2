"""``terraops predict-raster``, ``terraops cog convert`` and ``terraops layers``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from terraops.cli.common import console, handle_errors, out, print_json, settings_from
from terraops.errors import InvalidInputError

if TYPE_CHECKING:
    from terraops.adapters.catalogue import LayerStatus


def _float_params(pairs: list[str]) -> dict[str, float]:
    from terraops.pipelines.training.train import parse_param_pairs

    params: dict[str, float] = {}
    for name, raw in parse_param_pairs(pairs).items():
        try:
            params[name] = float(raw)
        except ValueError:
            raise InvalidInputError(
                f"--param {name}={raw!r} is not a number", hint="e.g. --param rainfall_mm=50"
            ) from None
    return params


def predict_raster(
    ctx: typer.Context,
    service: str = typer.Argument(..., help="Service (uhi, flood)."),
    scene: Path = typer.Option(..., "--scene", help="Scene folder (scene.json + layers)."),
    out_path: Path | None = typer.Option(
        None, "--out", help="Output COG (default TERRAOPS_HOME/layers/<layer id>.tif)."
    ),
    version: int | None = typer.Option(None, "--version", help="Model version (default champion)."),
    param: list[str] = typer.Option(
        [], "--param", help="Scenario input, e.g. rainfall_mm=50; repeatable."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    explain: bool = typer.Option(
        False,
        "--explain",
        help="Also write why: one contribution layer per driver and the dominant driver.",
    ),
    interval: float | None = typer.Option(
        None,
        "--interval",
        help="Also write the calibrated interval at this level (e.g. 0.9): lower and upper "
        "bound layers and the area-of-applicability layer (cells outside it get no interval).",
    ),
) -> None:
    """Predict every cell of a scene → validated COG + vectors, registered as map layers."""
    from terraops.pipelines.maps.raster_predict import predict_raster as run
    from terraops.services import get_service

    with handle_errors(ctx):
        result = run(
            settings_from(ctx),
            get_service(service),
            scene,
            out=out_path,
            version=version,
            params=_float_params(param),
            progress=not as_json,
            explain=explain,
            interval=interval,
        )
    if as_json:
        print_json(result)
        return
    model = result["model"]
    console.print(
        f"[green]{service}[/] v{model['version']} on {result['scene']}: "
        f"{result['cells']} cells of {result['cell_size_m']:g} m in {result['seconds']:.2f} s "
        f"→ {result['out']}"
    )
    if result["evaluation"]:
        figures = ", ".join(
            f"{k} {v:.4g}" if k != "n" else f"n {v}" for k, v in result["evaluation"].items()
        )
        console.print(f"against the scene's own target: {figures}")
    if result.get("explain"):
        why = result["explain"]
        console.print(
            f"explained {why['cells']} cells in {why['seconds']:.2f} s "
            f"({why['cells_per_s']:.0f} cells/s, {why['megapixels_per_s']:.2f} Mpx/s of scene)"
        )
    if result.get("interval"):
        band = result["interval"]
        console.print(
            f"{band['level']:.0%} intervals: mean width {band['mean_width']}, "
            f"{band['share_inside_domain']:.0%} of cells inside the area of applicability"
        )
    for layer in result["layers"]:
        console.print(f"  layer [cyan]{layer['id']}[/] ({layer['kind']})")


def cog_convert(
    source: Path = typer.Argument(..., help="Any raster GDAL reads (GeoTIFF...)."),
    target: Path = typer.Argument(..., help="Output Cloud Optimized GeoTIFF."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Convert a raster to a validated COG (nothing is written if anything fails)."""
    from terraops.adapters.cog import convert_to_cog

    with handle_errors():
        result = convert_to_cog(source, target)
    if as_json:
        print_json(result)
    else:
        console.print(
            f"[green]valid COG[/] {result['path']} ({result['width']}×{result['height']})"
        )


_LAYER_COLUMNS = ("id", "kind", "group", "unit", "style", "model", "status")


def _layer_row(status: LayerStatus) -> tuple[str, ...]:
    """One catalogue entry as the text of :data:`_LAYER_COLUMNS`."""
    layer = status.layer
    style = layer.colormap or ("rgb" if layer.kind == "raster" else "polygons")
    if layer.rescale:
        style += f" {layer.rescale[0]:g}–{layer.rescale[1]:g}"
    model = f"{layer.model.get('name')} v{layer.model_version}" if layer.model else "–"
    state = "ok" if status.available else str(status.problem)
    return (layer.id, layer.kind, layer.group, layer.unit, style, model, state)


def layers_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the catalogue as JSON."),
) -> None:
    """The layer catalogue: every layer with its kind, unit, style and lineage."""
    from terraops.adapters.catalogue import LayerCatalogue

    with handle_errors(ctx):
        statuses = LayerCatalogue(settings_from(ctx).layers_dir).statuses()
    if as_json:
        print_json({"layers": [s.to_dict() for s in statuses]})
        return
    rows = [_layer_row(status) for status in statuses]
    if out.is_terminal:
        table = Table(title=f"{len(statuses)} layers")
        table.add_column("id", overflow="fold", min_width=24)
        for column in _LAYER_COLUMNS[1:]:
            table.add_column(column)
        for row in rows:
            table.add_row(*row[:-1], row[-1] if row[-1] == "ok" else f"[red]{row[-1]}[/]")
        out.print(table)
    else:
        # Piped or redirected: one tab-separated line per layer, for scripts (and at
        # once: laying out a table of thousands of rows takes rich seconds).
        sys.stdout.write("\n".join("\t".join(row) for row in [_LAYER_COLUMNS, *rows]) + "\n")
    missing = [s for s in statuses if not s.available]
    if missing:
        console.print(
            f"[yellow]{len(missing)} layer(s) have lost their file[/]: re-create them or "
            "`terraops layers remove ID`"
        )


def layers_remove(ctx: typer.Context, layer: str = typer.Argument(..., help="Layer id.")) -> None:
    """Remove a layer from the catalogue (its files are left where they are)."""
    from terraops.adapters.catalogue import LayerCatalogue

    with handle_errors(ctx):
        removed = LayerCatalogue(settings_from(ctx).layers_dir).remove(layer)
    console.print(f"removed layer {removed.id} (file kept: {removed.path})")


def layers_add_scene(
    ctx: typer.Context,
    scene: Path = typer.Argument(..., help="Scene folder."),
) -> None:
    """Add a scene's true-colour imagery to the catalogue (as a COG)."""
    from terraops.adapters.catalogue import LayerCatalogue
    from terraops.adapters.raster_io import read_scene
    from terraops.pipelines.maps.layer_products import scene_imagery_layer

    with handle_errors(ctx):
        settings = settings_from(ctx)
        imagery = scene_imagery_layer(settings, read_scene(scene))
        layer = LayerCatalogue(settings.layers_dir).add(imagery)
    console.print(f"layer [cyan]{layer.id}[/] → {layer.path}")


def register(app: typer.Typer) -> None:
    """Add ``predict-raster``, ``cog`` and ``layers`` to the main CLI."""
    app.command("predict-raster")(predict_raster)
    cog_app = typer.Typer(help="Cloud Optimized GeoTIFFs.", no_args_is_help=True)
    cog_app.command("convert")(cog_convert)
    app.add_typer(cog_app, name="cog")
    layers_app = typer.Typer(help="The map layer catalogue.", no_args_is_help=True)
    layers_app.command("list")(layers_list)
    layers_app.command("remove")(layers_remove)
    layers_app.command("add-scene")(layers_add_scene)
    app.add_typer(layers_app, name="layers")
