"""What every ``terraops scene import`` command shares: its options and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from terraops.cli.common import console, print_json

OutOpt = Annotated[
    Path, typer.Option("--out", help="Output scene folder (must not exist or be empty).")
]
DemOpt = Annotated[
    Path | None,
    typer.Option("--dem", help="Elevation GeoTIFF (any CRS), resampled onto the scene grid."),
]
BboxOpt = Annotated[
    str | None,
    typer.Option("--bbox", help="Crop to minx,miny,maxx,maxy (only this window is read)."),
]
BboxCrsOpt = Annotated[
    str,
    typer.Option("--bbox-crs", help="CRS of --bbox (EPSG:4326 lon/lat, or 'product')."),
]
CorrectionOpt = Annotated[
    str,
    typer.Option("--correction", help="dos1 (dark-object subtraction → surface) | none (TOA)."),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing scene.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")]


def print_warnings(manifest: dict[str, Any]) -> None:
    """What the import could not do as usual (no cloud mask, assumed calibration...)."""
    for warning in manifest["source"].get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


def print_imported(manifest: dict[str, Any], out: Path, as_json: bool) -> None:
    """The imported scene in one line (or its manifest as JSON)."""
    if as_json:
        print_json(manifest)
        return
    stats = manifest["stats"]
    lst = "; no LST"
    if stats.get("lst_median_c") is not None:
        lst = (
            f"; LST {stats['lst_min_c']}–{stats['lst_max_c']} °C, median {stats['lst_median_c']} °C"
        )
    console.print(
        f"[green]scene[/] {manifest['name']} → {out} "
        f"({manifest['width']}×{manifest['height']} px, {manifest['crs']}, "
        f"{manifest['resolution']:g} m; {100 * stats['clear_fraction']:.1f}% clear{lst})"
    )
