"""``terraops scene import landsat7``: a bare Landsat 7 ETM+ GeoTIFF of digital numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from terraops.cli.common import handle_errors
from terraops.cli.scene_options import (
    CorrectionOpt,
    DemOpt,
    JsonOpt,
    OutOpt,
    OverwriteOpt,
    print_imported,
    print_warnings,
)
from terraops.domain.landsat.etm_defaults import DEFAULT_GAINS, DEFAULT_SUN_ELEVATION_DEG


def import_landsat7(
    bands: Annotated[
        Path,
        typer.Argument(
            help="Multiband GeoTIFF of ETM+ Level-1 DN (bands 1,2,3,4,5,7; no MTL needed)."
        ),
    ],
    out: OutOpt,
    dem: DemOpt = None,
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
    correction: CorrectionOpt = "dos1",
    name: str | None = typer.Option(
        None, "--name", help="Scene name (map and lineage); default: the file's name."
    ),
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
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
    print_warnings(manifest)
    print_imported(manifest, out, as_json)
