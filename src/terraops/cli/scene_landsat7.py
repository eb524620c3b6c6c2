"""``terraops scene import landsat7``: a bare Landsat 7 ETM+ GeoTIFF of digital numbers."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from terraops.cli.common import console, handle_errors, print_json
from terraops.domain.landsat.etm import DEFAULT_GAINS, DEFAULT_SUN_ELEVATION_DEG


def import_landsat7(
    bands: Path = typer.Argument(
        ..., help="Multiband GeoTIFF of ETM+ Level-1 DN (bands 1,2,3,4,5,7; no MTL needed)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output scene folder (must not exist or be empty)."
    ),
    dem: Path | None = typer.Option(
        None, "--dem", help="Elevation GeoTIFF (any CRS), resampled onto the scene grid."
    ),
    band_numbers: str = typer.Option(
        "1,2,3,4,5,7", "--band-numbers", help="The ETM+ band of each file band, in order."
    ),
    gains: str = typer.Option(
        DEFAULT_GAINS,
        "--gains",
        help="Gain state (L/H) of bands 1,2,3,4,5,7 (default: Landsat 7's rule for land "
        "under a sun above 45°).",
    ),
    sun_elevation: float = typer.Option(
        DEFAULT_SUN_ELEVATION_DEG,
        "--sun-elevation",
        help="Sun elevation (degrees) at acquisition; in the MTL when there is one.",
    ),
    correction: str = typer.Option(
        "dos1", "--correction", help="dos1 (dark-object subtraction → surface) | none (TOA)."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Scene name (map and lineage); default: the file's name."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing scene."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Import a Landsat 7 ETM+ GeoTIFF of digital numbers without its MTL (no thermal, no
    QA band): approximate reflectance from the published calibration, DEM, no cloud mask."""
    from terraops.pipelines.scenes.landsat7_import import import_landsat7_dn, parse_band_numbers

    with handle_errors():
        manifest = import_landsat7_dn(
            bands,
            out,
            dem=dem,
            band_numbers=parse_band_numbers(band_numbers),
            gains=gains,
            sun_elevation_deg=sun_elevation,
            correction=correction,
            name=name,
            overwrite=overwrite,
            progress=True,
        )
    for warning in manifest["source"].get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if as_json:
        print_json(manifest)
        return
    console.print(
        f"[green]scene[/] {manifest['name']} → {out} ({manifest['width']}×{manifest['height']} "
        f"px, {manifest['crs']}, {manifest['resolution']:g} m; "
        f"{100 * manifest['stats']['clear_fraction']:.1f}% clear; no LST)"
    )
