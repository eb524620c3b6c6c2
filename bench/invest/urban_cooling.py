"""Run InVEST's Urban Cooling model on one or more land-cover rasters; save CC, HM and T_air.

This file runs under ``.venv-invest/bin/python`` (natcap-invest and its own GDAL),
never inside terraops' environment: the what-if validation bench
(``bench/whatif_validation.py``) writes the inputs as GeoTIFFs, calls this
script as a subprocess and reads back plain ``.npy`` arrays, so the two stacks
never share a process.

Usage::

    .venv-invest/bin/python bench/invest/urban_cooling.py --job job.json

``job.json``::

    {"workspace": DIR, "eto": ETO.tif, "aoi": AOI.geojson, "biophysical_table": CSV,
     "t_ref": 30.0, "uhi_max": 2.0, "green_area_cooling_distance": 100,
     "t_air_average_radius": 100, "runs": {"baseline": LULC.tif, "case1": LULC2.tif}}

For each run it writes ``DIR/<run>/{cc,hm,t_air}.npy`` (float32, NaN = no data).
The cooling capacity uses InVEST's "factors" method (shade, albedo and
evapotranspiration weighted 0.6 / 0.2 / 0.2, the model's defaults).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from pathlib import Path

import numpy as np
from natcap.invest import urban_cooling_model
from osgeo import gdal

# InVEST's "factors" defaults (Zardo et al. 2017 weights, the User's Guide).
CC_WEIGHTS = {"cc_weight_shade": 0.6, "cc_weight_albedo": 0.2, "cc_weight_eti": 0.2}


def _read(path: str) -> np.ndarray:
    """One band as float32 with the raster's no-data value turned into NaN."""
    dataset = gdal.OpenEx(path, gdal.OF_RASTER)
    band = dataset.GetRasterBand(1)
    array = band.ReadAsArray().astype(np.float32)
    nodata = band.GetNoDataValue()
    if nodata is not None:
        array[np.isclose(array, nodata)] = np.nan
    return array


def _find(workspace: Path, stem: str) -> str:
    """An output of the model by name, wherever this InVEST version puts it."""
    hits = sorted(glob.glob(str(workspace / "**" / f"{stem}*.tif"), recursive=True))
    hits = [h for h in hits if Path(h).stem.lower() in (stem.lower(), f"{stem.lower()}_")]
    if not hits:
        raise FileNotFoundError(f"InVEST wrote no {stem}*.tif under {workspace}")
    return hits[0]


def run_one(job: dict, name: str, lulc: str) -> dict[str, float]:
    """One Urban Cooling run; its three outputs saved as .npy beside its workspace."""
    workspace = Path(job["workspace"]) / name
    args = {
        "workspace_dir": str(workspace / "invest"),
        "results_suffix": "",
        "n_workers": -1,
        "lulc_raster_path": lulc,
        "ref_eto_raster_path": job["eto"],
        "aoi_vector_path": job["aoi"],
        "biophysical_table_path": job["biophysical_table"],
        "t_ref": float(job["t_ref"]),
        "uhi_max": float(job["uhi_max"]),
        "green_area_cooling_distance": float(job.get("green_area_cooling_distance", 100)),
        "t_air_average_radius": float(job.get("t_air_average_radius", 100)),
        "do_energy_valuation": False,
        "do_productivity_valuation": False,
        "cc_method": "factors",
        **CC_WEIGHTS,
    }
    problems = urban_cooling_model.validate(args)
    if problems:
        raise ValueError(f"InVEST rejected the inputs of {name}: {problems}")
    urban_cooling_model.execute(args)
    out = Path(args["workspace_dir"])
    arrays = {"cc": _read(_find(out, "cc")), "hm": _read(_find(out, "hm"))}
    arrays["t_air"] = _read(_find(out, "T_air"))
    for key, array in arrays.items():
        np.save(workspace / f"{key}.npy", array)
    return {key: float(np.nanmean(array)) for key, array in arrays.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", type=Path, required=True)
    job = json.loads(parser.parse_args().job.read_text())
    os.environ.setdefault("GDAL_NUM_THREADS", "1")
    summary = {name: run_one(job, name, lulc) for name, lulc in job["runs"].items()}
    json.dump(summary, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
