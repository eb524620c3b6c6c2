"""Import a bare Landsat 7 ETM+ GeoTIFF of digital numbers (no MTL, no thermal, no QA band).

Such a file — the Olinda/Recife crop that the stars R package ships is one — holds
ETM+ bands 1, 2, 3, 4, 5 and 7 as 8-bit Level-1 DN and nothing else. It becomes a
scene with the layout every other import has: bands 1–5 as ``blue, green, red, nir,
swir`` approximate surface reflectance (published ETM+ calibration with the
assumptions :mod:`terraops.domain.landsat.etm` states, then DOS1), the DEM resampled
onto the scene grid when one is given (so flood applies), and a ``clear`` layer.
Open water is not a layer: the one feature path finds it by NDWI from these bands,
as for every scene.

What it cannot have is said in the lineage and printed as warnings, like the
Landsat import does for a product without ``QA_PIXEL``: no cloud mask (only fill
and saturated pixels are masked), no land-surface temperature (ETM+ band 6 is not
in the file: heat can be predicted here but not compared with an observation), and
the calibration assumptions. Everything is computed before the output folder
exists, which is then written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from terraops.adapters import landsat_product
from terraops.adapters.etm_file import read_dn_bands
from terraops.domain.landsat.etm import (
    ETM_BANDS,
    TERRAOPS_BANDS,
    check_sun_elevation,
    etm_reflectance,
    parse_gains,
)
from terraops.domain.landsat.etm_defaults import DEFAULT_GAINS, DEFAULT_SUN_ELEVATION_DEG
from terraops.domain.landsat.product import CORRECTIONS
from terraops.errors import InvalidInputError
from terraops.pipelines.progress import status_line
from terraops.pipelines.scenes.importing import (
    _dem,
    _refuse_unsafe_output,
    _scene_layers,
    write_imported_scene,
)

NO_CLOUD_MASK = (
    "no cloud mask: the file has no QA band, so only fill (DN 0) and saturated (DN 255) "
    "pixels are masked; clouds, if any, stay in the scene"
)
NO_THERMAL = (
    "no thermal: ETM+ band 6 is not in the file, so the scene has no land-surface "
    "temperature; heat is predicted here but cannot be compared with an observation"
)
CALIBRATION_ASSUMED = (
    "calibration assumed: no MTL, so the published ETM+ constants, the gain states {gains} "
    "(bands 1,2,3,4,5,7) and a sun elevation of {sun:g}° are used; absolute reflectance "
    "is approximate (about ±10 % from the sun elevation, which the spectral indices do not "
    "depend on; they do depend on the gain states)"
)


def parse_band_numbers(text: str) -> tuple[int, ...]:
    """``"1,2,3,4,5,7"`` → (1, 2, 3, 4, 5, 7); bands 1–5 must all be there."""
    try:
        numbers = tuple(int(part) for part in text.split(","))
    except ValueError:
        numbers = ()
    missing = [b for b in TERRAOPS_BANDS if b not in numbers]
    bad = [b for b in numbers if b not in ETM_BANDS]
    if not numbers or missing or bad or len(set(numbers)) != len(numbers):
        raise InvalidInputError(
            f"bad band numbers {text!r}",
            hint="the ETM+ band of each file band, in order, from 1, 2, 3, 4, 5, 7 (bands 1-5 "
            "are needed); e.g. 1,2,3,4,5,7",
        )
    return numbers


def _source(
    path: Path, bands: Sequence[int], record: dict[str, Any], warnings: list[str]
) -> dict[str, Any]:
    return {
        "product": "Landsat 7 ETM+ Level-1 digital numbers, bare GeoTIFF (no MTL)",
        "spacecraft": "LANDSAT_7",
        "sensor": "ETM+",
        "file": path.name,
        "sha256": landsat_product.file_sha256(path),
        "band_numbers": list(bands),
        "lst_source": "none",
        "thermal": NO_THERMAL,
        "cloud_mask": NO_CLOUD_MASK,
        "qa": {"scheme": "none", "decoding": NO_CLOUD_MASK},
        "water": "not a layer: the feature path finds open water by NDWI from green and NIR",
        "notes": list(warnings),
        "warnings": list(warnings),
        **record,
    }


def import_landsat7_dn(
    bands_path: Path,
    out_dir: Path,
    *,
    dem: Path | None = None,
    band_numbers: Sequence[int] = ETM_BANDS,
    gains: str = DEFAULT_GAINS,
    sun_elevation_deg: float = DEFAULT_SUN_ELEVATION_DEG,
    correction: str = "dos1",
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """A Landsat 7 ETM+ DN GeoTIFF (+ optional DEM) → a scene folder; returns its manifest."""
    if correction not in CORRECTIONS:
        raise InvalidInputError(
            f"unknown correction {correction!r}", hint=f"use one of {', '.join(CORRECTIONS)}"
        )
    gain_states = parse_gains(gains)
    sun = check_sun_elevation(sun_elevation_deg)
    bands_path = Path(bands_path)
    _refuse_unsafe_output(out_dir, overwrite, [bands_path, *([Path(dem)] if dem else [])])
    with status_line(progress, "importing Landsat 7 ETM+ DN") as say:
        dn, grid = read_dn_bands(bands_path, band_numbers)
        say(f"calibrating {grid.width}x{grid.height} px")
        reflectance, clear, record = etm_reflectance(
            dn, gains=gain_states, sun_elevation_deg=sun, correction=correction
        )
        dem_layer, dem_info = _dem(dem, grid)
        layers = _scene_layers(reflectance, clear, None, dem_layer)
        warnings = [
            NO_CLOUD_MASK,
            NO_THERMAL,
            CALIBRATION_ASSUMED.format(gains=gains.upper(), sun=sun),
        ]
        source = _source(bands_path, band_numbers, record, warnings)
        if dem_info:
            source["dem"] = dem_info
        source["masked_fraction"] = round(float(1.0 - np.mean(clear)), 6)
        kind = "DOS1 surface" if correction == "dos1" else "TOA"
        return write_imported_scene(
            out_dir,
            name=name or bands_path.stem,
            kind="landsat7-dn",
            reflectance=f"{kind} reflectance (approximate: no MTL)",
            grid=grid,
            layers=layers,
            clear=clear,
            source=source,
            overwrite=overwrite,
            say=say,
        )
