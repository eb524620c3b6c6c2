"""The main bench's side of InVEST: write its inputs, run it in .venv-invest, read its outputs.

Runs in terraops' environment. The model itself runs in ``.venv-invest``
(``urban_cooling.py`` as a subprocess), so the two GDAL/numpy stacks never meet
in one process: they exchange GeoTIFFs, a JSON job and ``.npy`` arrays.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
INVEST_PYTHON = ROOT / ".venv-invest" / "bin" / "python"
BIOPHYSICAL_TABLE = HERE / "biophysical_table.csv"
REFERENCE_ETO_MM_DAY = 5.0
"""Uniform reference evapotranspiration: a Central European summer day (see README)."""
COOL_ROOF_CODE = 7
GREEN_ROOF_CODE = 8


@dataclass(frozen=True)
class CoolingOutputs:
    """InVEST's per-pixel cooling capacity, heat-mitigation index and air temperature."""

    cc: np.ndarray
    hm: np.ndarray
    t_air: np.ndarray


def invest_available() -> bool:
    """Whether ``make bench-invest-env`` has built the InVEST environment."""
    return INVEST_PYTHON.is_file()


def _write_raster(
    path: Path, array: np.ndarray, transform: Affine, crs: str, nodata: float
) -> None:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=array.shape[1],
        height=array.shape[0],
        count=1,
        dtype=array.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(array, 1)


def _write_aoi(path: Path, transform: Affine, shape: tuple[int, int], crs: str) -> None:
    """The scene's extent as a one-polygon GeoJSON (InVEST summarises inside it)."""
    x0, y0 = transform.c, transform.f
    x1, y1 = x0 + shape[1] * transform.a, y0 + shape[0] * transform.e
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    epsg = crs.split(":")[-1]
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}},
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"name": "scene"},
                        "geometry": {"type": "Polygon", "coordinates": [ring]},
                    }
                ],
            }
        )
    )


def run_urban_cooling(
    workspace: Path,
    landcovers: dict[str, np.ndarray],
    *,
    transform: Affine,
    crs: str,
    t_ref: float,
    uhi_max: float,
) -> dict[str, CoolingOutputs]:
    """InVEST Urban Cooling on each named land cover (uint8 codes, 0 = no data)."""
    workspace.mkdir(parents=True, exist_ok=True)
    shape = next(iter(landcovers.values())).shape
    eto = np.full(shape, REFERENCE_ETO_MM_DAY, dtype=np.float32)
    _write_raster(workspace / "eto.tif", eto, transform, crs, -1.0)
    _write_aoi(workspace / "aoi.geojson", transform, shape, crs)
    runs = {}
    for name, landcover in landcovers.items():
        path = workspace / f"lulc_{name}.tif"
        _write_raster(path, landcover.astype(np.uint8), transform, crs, 0)
        runs[name] = str(path)
    job = {
        "workspace": str(workspace),
        "eto": str(workspace / "eto.tif"),
        "aoi": str(workspace / "aoi.geojson"),
        "biophysical_table": str(BIOPHYSICAL_TABLE),
        "t_ref": t_ref,
        "uhi_max": uhi_max,
        "runs": runs,
    }
    (workspace / "job.json").write_text(json.dumps(job, indent=2))
    done = subprocess.run(
        [str(INVEST_PYTHON), str(HERE / "urban_cooling.py"), "--job", str(workspace / "job.json")],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"InVEST Urban Cooling failed:\n{done.stderr[-3000:]}")
    return {
        name: CoolingOutputs(
            *(np.load(workspace / name / f"{key}.npy") for key in ("cc", "hm", "t_air"))
        )
        for name in runs
    }
