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


def _number(value: Any) -> str:
    return "—" if value is None else f"{value:+.2f}"


def _peak(row: dict[str, Any]) -> float | None:
    """The strongest cell change in the direction of the mean (most cooling for a cooling)."""
    mean, low, high = row["mean_delta"], row["min_delta"], row["max_delta"]
    if mean is None or low is None or high is None:
        return None
    return float(low if mean < 0 else high)


def _table(result: dict[str, Any]) -> Table:
    """The per-intervention figures, narrow enough for an 80-column terminal."""
    unit = result["unit"]
    table = Table(
        title=f"What-if {result['service']} on {result['scene']}: Δ = after − before ({unit})"
    )
    table.add_column("id", overflow="fold")
    table.add_column("what", overflow="fold")
    for column in ("ha", "mean Δ", "interval", "peak Δ", "0–100 m", "100–250 m"):
        table.add_column(column, justify="right")
    for row in result["interventions"]:
        interval = row["mean_delta_interval"]
        table.add_row(
            str(row["id"]),
            row["intervention"].replace("_", " "),
            f"{row['area_ha']:.1f}",
            _number(row["mean_delta"]),
            f"{interval[0]:+.2f} {interval[1]:+.2f}" if interval else "—",
            _number(_peak(row)),
            _number(row["ring_100m_mean_delta"]),
            _number(row["ring_250m_mean_delta"]),
        )
    return table


def _print_drivers(result: dict[str, Any]) -> None:
    """Which drivers moved each mean Δ (the table has no room for them)."""
    for row in result["interventions"]:
        drivers = [d for d in row["drivers"] if d["delta"]][:3]
        if drivers:
            moved = ", ".join(f"{d['driver']} {d['delta']:+.2f}" for d in drivers)
            console.print(f"{row['id']}: moved most by {moved} {result['unit']}")


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
    _print_drivers(body)
    _print_storms(body)
    console.print(f"model {body['model']['name']} v{body['model']['version']}; layers:")
    for layer in body["layers"]:
        console.print(f"  {layer}")


def register(app: typer.Typer) -> None:
    """Add ``whatif`` to the main CLI."""
    app.command("whatif")(whatif)
