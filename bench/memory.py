"""Whole scenes in bounded memory: the cell table of a full-size scene, window by window.

A synthetic scene folder the size of a whole Landsat scene (7,800² px at 30 m)
or a whole Sentinel-2 tile (10,980² px at 10 m) is written strip by strip
(five reflectance bands, LST and a DEM, as an import writes them), then a
child process builds its cell table
(:func:`terraops.pipelines.scenes.cell_tables.ensure_cell_table`, the first
step of ``terraops predict-raster`` and of training) under
``/usr/bin/time -v``; its maximum resident set size is the figure.

    python -m bench.memory --sizes 7800:30 10980:10 --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
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

from bench.harness import machine_description, replace_section  # noqa: E402
from bench.maps import TIME_V, time_v_max_rss_mb  # noqa: E402

GOAL_MB = 2048
STRIP_ROWS = 512
BANDS = ("red", "green", "blue", "nir", "swir")


def _strip(size: int, r0: int, r1: int, resolution: float) -> dict[str, np.ndarray]:
    """A city-like pattern: water, parks, built blocks and fields, smooth LST and terrain."""
    rows = np.arange(r0, r1, dtype=np.float32)[:, None] * resolution
    cols = np.arange(size, dtype=np.float32)[None, :] * resolution
    wave = np.sin(cols / 900.0) * np.cos(rows / 1300.0) + 0.3 * np.sin((rows + cols) / 170.0)
    water = wave < -0.9
    green = (wave > 0.35) & ~water
    built = ~water & ~green
    red = np.where(water, 0.03, np.where(green, 0.05, 0.18))
    out = {
        "red": red,
        "green": np.where(water, 0.06, np.where(green, 0.08, 0.17)),
        "blue": np.where(water, 0.07, np.where(green, 0.04, 0.15)),
        "nir": np.where(water, 0.02, np.where(green, 0.40, 0.22)),
        "swir": np.where(water, 0.01, np.where(green, 0.15, 0.28)),
    }
    scaled = {b: np.clip(np.round(v * 10_000), 1, 65535).astype(np.uint16) for b, v in out.items()}
    lst = (25.0 + 8.0 * built - 5.0 * water + 0.5 * wave).astype(np.float32)
    dem = 20.0 + 15.0 * np.sin(rows / 5000.0) + 10.0 * np.cos(cols / 7000.0) + 2.0 * wave
    return {**scaled, "lst": lst, "dem": np.where(water, 0.0, dem).astype(np.float32)}


def write_scene(folder: Path, size: int, resolution: float) -> None:
    """A scene folder of ``size``² px written strip by strip (never whole in memory)."""
    from terraops.adapters import raster_io
    from terraops.domain.scene_record import Scene

    folder.mkdir(parents=True, exist_ok=True)
    transform = from_origin(500_000.0, 6_000_000.0, resolution, resolution)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "crs": "EPSG:32630",
        "transform": transform,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "BIGTIFF": "YES",
    }
    files = {}
    for name in (*BANDS, "lst", "dem"):
        dtype = "uint16" if name in BANDS else "float32"
        nodata = 0 if name in BANDS else float("nan")
        files[name] = rasterio.open(
            folder / f"{name}.tif", "w", **profile, dtype=dtype, nodata=nodata
        )
    try:
        for r0 in range(0, size, STRIP_ROWS):
            r1 = min(size, r0 + STRIP_ROWS)
            for name, values in _strip(size, r0, r1, resolution).items():
                files[name].write(values, 1, window=Window(0, r0, size, r1 - r0))
    finally:
        for f in files.values():
            f.close()
    manifest = {
        "name": folder.name,
        "kind": "imported",
        "crs": "EPSG:32630",
        "resolution": resolution,
        "width": size,
        "height": size,
        "transform": [resolution, 0.0, 500_000.0, 0.0, -resolution, 6_000_000.0],
        "reflectance": {"bands": list(BANDS), "scale": 1e-4, "offset": 0.0, "nodata": 0},
        "layers": {name: f"{name}.tif" for name in (*BANDS, "lst", "dem")},
        "units": {**{b: "reflectance x 10000" for b in BANDS}, "lst": "degC", "dem": "m"},
        "source": {"synthetic": "bench/memory.py"},
    }
    raster_io.write_manifest(folder, Scene.from_manifest(manifest, folder))


def cells_child(scene_dir: Path) -> dict[str, Any]:
    """In its own process: build the scene's cell table; progress on stderr."""
    from terraops.adapters import raster_io
    from terraops.pipelines.scenes.cell_tables import ensure_cell_table

    scene = raster_io.read_scene(scene_dir)
    started = time.perf_counter()

    def progress(step: str, done: int, total: int) -> None:
        print(f"{step}: window {done}/{total}", file=sys.stderr, flush=True)

    path = ensure_cell_table(scene, 20.0, progress=progress)
    assert isinstance(path, Path)
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(path).metadata.num_rows
    return {"seconds": time.perf_counter() - started, "cells": rows, "bytes": path.stat().st_size}


def measure(size: int, resolution: float, work: Path) -> dict[str, Any]:
    scene = work / f"scene-{size}"
    started = time.perf_counter()
    write_scene(scene, size, resolution)
    written_s = time.perf_counter() - started
    cmd = [sys.executable, "-m", "bench.memory", "cells-child", str(scene)]
    if TIME_V.exists():
        cmd = [str(TIME_V), "-v", *cmd]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"cell table child failed:\n{res.stderr[-3000:]}")
    result = dict(json.loads(res.stdout.strip().splitlines()[-1]))
    result |= {
        "size": size,
        "resolution": resolution,
        "written_s": written_s,
        "time_v_rss_mb": time_v_max_rss_mb(res.stderr),
        "windows": sum("computing features" in line for line in res.stderr.splitlines()),
    }
    shutil.rmtree(scene, ignore_errors=True)
    return result


def render(results: list[dict[str, Any]], took_s: float, command: str) -> str:
    load = os.getloadavg()[0]
    lines = [
        "## Whole scenes in bounded memory: the cell table of a full-size scene",
        "",
        f"Machine: {machine_description()}, {datetime.now(UTC):%Y-%m-%d}; 1-minute load "
        f"average {load:.1f} at the end (other work on the same cores); {took_s:.0f} s.  ",
        f"Command: `{command}`.  ",
        "A synthetic scene folder (5 reflectance bands, LST, DEM; written strip by strip) the "
        "size of a whole Landsat scene or Sentinel-2 tile; a child process builds its cell "
        "table with 20 m cells (one cell per pixel at 30 m, 2×2 pixels at 10 m) — what "
        "`terraops predict-raster` and training do first — window by window, with a progress "
        "line per window. Peak = `/usr/bin/time -v` maximum resident set size of the whole "
        "child (interpreter and imports included). Hydrology (the one global step) runs once "
        "on the scene's ≤ 256² hydrology grid (block means gathered window by window, ≈ 10 MB, "
        "cached in the scene folder); per pixel the build keeps 1 byte of land cover and "
        "1 bit of validity; the rural reference temperature keeps 3 floats per land cell.",
        "",
        "| scene | pixels | cells | windows | s | peak MiB | goal ≤ 2048 MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        peak = r["time_v_rss_mb"]
        ok = "met" if peak is not None and peak <= GOAL_MB else "**not met**"
        lines.append(
            f"| {r['size']:,}² px at {r['resolution']:g} m | {r['size'] ** 2 / 1e6:.1f} M | "
            f"{r['cells'] / 1e6:.1f} M | {r['windows']} | {r['seconds']:.0f} | "
            f"{peak:.0f} | {ok} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "cells-child":
        print(json.dumps(cells_child(Path(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=["7800:30", "10980:10"])
    parser.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md to update")
    args = parser.parse_args()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="terraops-bench-memory-"))
    try:
        results = []
        for spec in args.sizes:
            size, resolution = spec.split(":")
            results.append(measure(int(size), float(resolution), work))
            print(json.dumps(results[-1]), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = render(
        results, time.monotonic() - started, "python -m bench.memory " + " ".join(sys.argv[1:])
    )
    if args.out is None:
        print(text)
        return 0
    replace_section(args.out, "memory", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
