"""``terraops whatif``: a scenario file applied to a scene, the model's answer before and after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from terraops.cli.common import console, handle_errors, print_json, settings_from
from terraops.cli.maps import _float_params
from terraops.errors import InvalidInputError


def _read_scenario(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read the scenario file {path}: {exc.strerror or exc}",
            hint="give a GeoJSON FeatureCollection of interventions with --scenario FILE",
        ) from None


def _number(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:+.2f}{unit}" if unit else f"{value:+.2f}"


def _table(result: dict[str, Any]) -> Table:
    unit = result["unit"]
    suffix = f" {unit}" if unit == "K" else ""
    table = Table(title=f"What-if {result['service']} on {result['scene']} (Δ = after − before)")
    for column in ("id", "intervention", "area ha", "mean Δ", "interval", "max Δ"):
        table.add_column(column, justify="left" if column in ("id", "intervention") else "right")
    table.add_column("ring 0–100 m", justify="right")
    table.add_column("ring 100–250 m", justify="right")
    table.add_column("moved most by")
    for row in result["interventions"]:
        interval = row["mean_delta_interval"]
        drivers = [d for d in row["drivers"] if d["delta"]][:2]
        table.add_row(
            str(row["id"]),
            row["intervention"],
            f"{row['area_ha']:.2f}",
            _number(row["mean_delta"], suffix),
            f"{interval[0]:+.2f} to {interval[1]:+.2f}" if interval else "—",
            _number(row["max_delta"]),
            _number(row["ring_100m_mean_delta"]),
            _number(row["ring_250m_mean_delta"]),
            ", ".join(f"{d['driver']} {d['delta']:+.2f}" for d in drivers) or "—",
        )
    return table


def _print_storms(result: dict[str, Any]) -> None:
    for storm in result.get("storms", []):
        console.print(
            f"{storm['rainfall_mm']:g} mm storm: flooded area "
            f"{storm['flooded_area_delta_ha']:+.2f} ha, buildings exposed "
            f"{storm['buildings_exposed_delta']:+d} px"
        )


def whatif(
    ctx: typer.Context,
    service: str = typer.Argument(..., help="Service (uhi, flood)."),
    scene: Path = typer.Option(..., "--scene", help="Scene folder (scene.json + layers)."),
    scenario: Path = typer.Option(
        ..., "--scenario", help="GeoJSON FeatureCollection of interventions."
    ),
    param: list[str] = typer.Option(
        [], "--param", help="Model input set for every cell, e.g. rainfall_mm=50; repeatable."
    ),
    version: int | None = typer.Option(None, "--version", help="Model version (default champion)."),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Folder for the Δ layers (default TERRAOPS_HOME/layers)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Apply a scenario (plant trees, depave, cool roofs, build...) and map the change.

    The interventions edit the scene's imagery and land cover inside their
    polygons; every feature is recomputed, neighbourhoods included, so the
    effect around each polygon (spillover) is reported too.
    """
    from terraops.adapters import raster_io
    from terraops.pipelines.whatif.run import run_whatif

    with handle_errors(ctx):
        document = _read_scenario(scenario)
        result = run_whatif(
            settings_from(ctx),
            service,
            raster_io.read_scene(Path(scene)),
            document,
            params=_float_params(param),
            version=version,
            progress=not as_json,
            out_dir=out_dir,
        )
    body = result.to_json()
    if as_json:
        print_json(body)
        return
    console.print(_table(body))
    _print_storms(body)
    console.print(f"model {body['model']['name']} v{body['model']['version']}; layers:")
    for layer in body["layers"]:
        console.print(f"  {layer}")


def register(app: typer.Typer) -> None:
    """Add ``whatif`` to the main CLI."""
    app.command("whatif")(whatif)
