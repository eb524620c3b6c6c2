"""A whole Landsat scene, imported and mapped: peak memory of each command.

A synthetic Landsat 8 Collection 2 Level-1 product the size of a whole scene
(7,800² px at 30 m: bands 1–7 and 10, QA_PIXEL and the MTL file, laid out as
USGS ships them, with a city-like pattern and a few clouds) is written strip by
strip. Then, each in its own process under ``/usr/bin/time -v``:

1. ``terraops scene import landsat PRODUCT --out SCENE``
2. ``terraops predict-raster uhi --scene SCENE`` with the benchmark home's UHI
   champion — the first call on the scene, so it builds the cell table too;
3. ``terraops scene import stac ITEM`` of a whole Sentinel-2 tile (10,980² px)
   lying inside that Landsat scene, without and then with ``--thermal PRODUCT``
   (the Landsat LST derived and resampled onto the 10 m tile).

    python bench/whole_scene.py --size 7800 --home HOME --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import sentinel2_support as s2  # noqa: E402
from bench.harness import machine_description, replace_section  # noqa: E402
from bench.maps import TIME_V, time_v_max_rss_mb  # noqa: E402
from bench.memory import STRIP_ROWS, _strip  # noqa: E402
from bench.run import TERRAOPS, prepare_home  # noqa: E402
from landsat_support import (  # noqa: E402
    K1,
    K2,
    PRODUCT_ID,
    RAD_ADD,
    RAD_MULT,
    REFL_ADD,
    REFL_MULT,
    SUN_ELEVATION,
    mtl_text,
)

GOAL_MB = 2048
QA_CLEAR, QA_CLOUD = 21824, 22280  # Collection 2 QA_PIXEL: clear land; high-confidence cloud
OLI = {1: "blue", 2: "blue", 3: "green", 4: "red", 5: "nir", 6: "swir", 7: "swir"}


def _dn(values: np.ndarray, mult: float, add: float) -> np.ndarray:
    return np.clip(np.round((values - add) / mult), 1, 65535).astype(np.uint16)


def _clouds(r0: int, r1: int, size: int) -> np.ndarray:
    """A few round clouds of 40 px radius on a regular lattice."""
    rows = np.arange(r0, r1)[:, None]
    cols = np.arange(size)[None, :]
    dr, dc = (rows % 1500) - 750, (cols % 1700) - 850
    return np.asarray(dr**2 + dc**2 < 40**2)


def write_product(folder: Path, size: int) -> Path:
    """A Level-1 product of ``size``² px, written strip by strip."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {f"B{n}": f"{PRODUCT_ID}_B{n}.TIF" for n in range(1, 8)}
    files |= {"B10": f"{PRODUCT_ID}_B10.TIF", "QA": f"{PRODUCT_ID}_QA_PIXEL.TIF"}
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint16",
        "crs": f"EPSG:{LANDSAT_EPSG}",
        "transform": from_origin(LANDSAT_ULX, LANDSAT_ULY, 30.0, 30.0),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
    }
    sin = math.sin(math.radians(SUN_ELEVATION))
    out = {role: rasterio.open(folder / name, "w", **profile) for role, name in files.items()}
    try:
        for r0 in range(0, size, STRIP_ROWS):
            r1 = min(size, r0 + STRIP_ROWS)
            window = Window(0, r0, size, r1 - r0)
            pattern = _strip(size, r0, r1, 30.0)
            cloud = _clouds(r0, r1, size)
            for n, name in OLI.items():
                toa = pattern[name].astype(np.float64) / 1e4
                toa = np.where(cloud, 0.6, toa * (0.7 if n == 7 else 1.0))
                out[f"B{n}"].write(_dn(toa * sin, REFL_MULT, REFL_ADD), 1, window=window)
            bt = np.where(cloud, 255.0, pattern["lst"].astype(np.float64) + 273.15 - 2.0)
            radiance = K1 / np.expm1(K2 / bt)
            out["B10"].write(_dn(radiance, RAD_MULT, RAD_ADD), 1, window=window)
            qa = np.where(cloud, QA_CLOUD, QA_CLEAR).astype(np.uint16)
            out["QA"].write(qa, 1, window=window)
    finally:
        for dataset in out.values():
            dataset.close()
    (folder / f"{PRODUCT_ID}_MTL.txt").write_text(mtl_text("L1", files))
    return folder


#: The synthetic Landsat scene's grid (30 m); the Sentinel-2 tile lies inside it, so
#: that it can take the scene's LST.
LANDSAT_EPSG, LANDSAT_ULX, LANDSAT_ULY = 32630, 500_000.0, 6_000_000.0


def write_s2_item(folder: Path, size: int, landsat_size: int) -> Path:
    """A Sentinel-2 L2A STAC item of a whole ``size``² px tile (10 m; B11, B12 and SCL
    at 20 m) with local GeoTIFF assets, written strip by strip, a tenth of the way into
    the ``landsat_size``² px Landsat scene."""
    inset = 0.1 * landsat_size * 30.0
    ulx, uly = LANDSAT_ULX + inset, LANDSAT_ULY - inset
    folder.mkdir(parents=True, exist_ok=True)
    half = size // 2
    bands = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B11": "swir"}
    bands |= {"B12": "swir", "SCL": "scl"}
    out = {}
    for band in bands:
        res = 20 if band in s2.TWENTY_M else 10
        side = half if res == 20 else size
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "width": side,
            "height": side,
            "count": 1,
            "dtype": "uint8" if band == "SCL" else "uint16",
            "crs": f"EPSG:{LANDSAT_EPSG}",
            "transform": from_origin(ulx, uly, res, res),
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
            "compress": "deflate",
        }
        out[band] = rasterio.open(folder / f"{band}.tif", "w", **profile)
    try:
        for r0 in range(0, size, STRIP_ROWS):
            r1 = min(size, r0 + STRIP_ROWS)
            pattern = _strip(size, r0, r1, 10.0)
            cloud = _clouds(r0, r1, size)
            for band, name in bands.items():
                if band == "SCL":
                    continue
                dn = pattern[name].astype(np.int64) * (7 if band == "B12" else 10) // 10
                dn = np.clip(dn - s2.OFFSET, 1, 65534).astype(np.uint16)
                if band in s2.TWENTY_M:
                    dn, cloud20 = dn[::2, ::2], cloud[::2, ::2]
                    out[band].write(dn, 1, window=Window(0, r0 // 2, half, dn.shape[0]))
                    scl = np.where(cloud20, 9, 4).astype(np.uint8)  # cloud high / vegetation
                    if band == "B11":
                        out["SCL"].write(scl, 1, window=Window(0, r0 // 2, half, scl.shape[0]))
                else:
                    out[band].write(dn, 1, window=Window(0, r0, size, r1 - r0))
    finally:
        for dataset in out.values():
            dataset.close()
    keys = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B11": "swir16"}
    keys |= {"B12": "swir22", "SCL": "scl"}
    assets = {}
    for band, key in keys.items():
        asset: dict[str, Any] = {"href": f"./{band}.tif", "type": "image/tiff; application=geotiff"}
        if band != "SCL":
            asset["raster:bands"] = [{"nodata": 0, "scale": 0.0001, "offset": s2.OFFSET / 1e4}]
        assets[key] = asset
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(LANDSAT_EPSG, 4326, always_xy=True)
    (x0, y0) = to_lonlat.transform(ulx, uly - size * 10)
    (x1, y1) = to_lonlat.transform(ulx + size * 10, uly)
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": f"S2B_{s2.TILE}_20230806_0_L2A",
        "collection": "sentinel-2-l2a",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
        },
        "bbox": [x0, y0, x1, y1],
        "properties": {
            "datetime": s2.SENSING_ISO,
            "platform": "sentinel-2b",
            "constellation": "sentinel-2",
            "s2:processing_baseline": "05.09",
            "s2:mgrs_tile": s2.TILE,
        },
        "links": [],
        "assets": assets,
    }
    path = folder / "item.json"
    path.write_text(json.dumps(item, indent=1))
    return path


def _timed(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    command = [str(TIME_V), "-v", *argv] if TIME_V.exists() else argv
    started = time.perf_counter()
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return {"seconds": seconds, "peak_mb": time_v_max_rss_mb(done.stderr)}


def measure(size: int, s2_size: int, home: Path, work: Path) -> list[dict[str, Any]]:
    env = prepare_home(home, 512)
    product = work / "product"
    started = time.perf_counter()
    write_product(product, size)
    print(f"product written in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    scene = work / "scene"
    out = work / "layers" / "uhi.tif"
    import_argv = [TERRAOPS, "scene", "import", "landsat", str(product), "--out", str(scene)]
    predict_argv = [TERRAOPS, "predict-raster", "uhi", "--scene", str(scene), "--out", str(out)]
    steps = {
        "scene import landsat": import_argv,
        "predict-raster uhi (first call: cell table + map)": predict_argv,
    }
    results = []
    for name, argv in steps.items():
        print(f"{name} …", file=sys.stderr, flush=True)
        results.append({"step": name, **_timed(argv, env)})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    manifest = json.loads((scene / "scene.json").read_text())
    results[0]["masked_fraction"] = manifest["source"]["masked_fraction"]
    if s2_size:
        item = write_s2_item(work / "s2", s2_size, size)
        argv = [TERRAOPS, "scene", "import", "stac", str(item)]
        name = f"scene import stac (Sentinel-2 L2A, {s2_size:,}² px at 10 m)"
        runs = {
            name: [*argv, "--out", str(work / "s2-scene")],
            f"{name} --thermal (Landsat LST)": [
                *argv, "--thermal", str(product), "--out", str(work / "s2-thermal"),
            ],
        }  # fmt: skip
        for step, step_argv in runs.items():
            print(f"{step} …", file=sys.stderr, flush=True)
            results.append({"step": step, **_timed(step_argv, env)})
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    shutil.rmtree(product)
    return results


def render(size: int, results: list[dict[str, Any]], took_s: float, command: str) -> str:
    load = os.getloadavg()[0]
    lines = [
        "## A whole Landsat scene: import and map in bounded memory",
        "",
        f"Machine: {machine_description()}, {datetime.now(UTC):%Y-%m-%d}; 1-minute load "
        f"average {load:.1f} at the end (other work on the same cores); {took_s:.0f} s.  ",
        f"Command: `{command}`.  ",
        f"A synthetic Landsat 8 Collection 2 Level-1 product of {size:,}² px at 30 m (a whole "
        "scene: bands 1–7 and 10, QA_PIXEL, MTL; a city-like pattern with round clouds, "
        f"{results[0].get('masked_fraction', 0):.1%} of it masked after dilation), each "
        "command in its own process under `/usr/bin/time -v` (peak = maximum resident set "
        "size, interpreter and imports included). The import reads the product in strips of "
        "512 rows three times (dark objects, the cold-cloud line, then calibration with a "
        "3-row halo for the cloud dilation) and writes each strip into the scene's GeoTIFFs. "
        "predict-raster's first call builds the cell table window by window (hydrology on a "
        "bounded grid, cached), then streams the table through the model. The Sentinel-2 "
        "tile (a STAC item with local per-band GeoTIFFs: B02, B03, B04, B08 at 10 m, B11, B12 "
        "and SCL at 20 m, the same pattern, inside the Landsat scene) is read, resampled and "
        "written in strips of 512 rows; with `--thermal` the Landsat scene's window over the "
        "tile is first derived to LST in strips into the staging folder, and each 10 m strip "
        "resamples its rows from there.",
        "",
        "| step | s | peak MiB | goal ≤ 2048 MiB |",
        "|---|---|---|---|",
    ]
    for r in results:
        peak = r["peak_mb"]
        ok = "met" if peak is not None and peak <= GOAL_MB else "**not met**"
        shown = f"{peak:.0f}" if peak is not None else "–"
        lines.append(f"| `terraops {r['step']}` | {r['seconds']:.0f} | {shown} | {ok} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=7800)
    parser.add_argument("--s2-size", type=int, default=10980, help="0: no Sentinel-2 tile")
    parser.add_argument("--home", type=Path, default=None, help="a benchmark home to reuse")
    parser.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md to update")
    args = parser.parse_args()
    started = time.monotonic()
    home = (args.home or Path(tempfile.mkdtemp(prefix="terraops-bench-home-"))).resolve()
    work = Path(tempfile.mkdtemp(prefix="terraops-bench-whole-"))
    try:
        results = measure(args.size, args.s2_size, home, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python bench/whole_scene.py " + " ".join(sys.argv[1:])
    text = render(args.size, results, time.monotonic() - started, command)
    if args.out is None:
        print(text)
        return 0
    replace_section(args.out, "whole-scene", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
