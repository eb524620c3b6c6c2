"""The scene's true-colour composite as a COG: the RGB bands read, stretched and written in strips.

An adapter because it is all raster reads and writes; the pipeline decides
when a scene needs one and what its catalogue entry says
(:mod:`terraops.pipelines.maps.layer_products`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from terraops.adapters import cog, raster_io
from terraops.domain.scene_record import Scene

RGB_STRETCH_PERCENTILES = (2.0, 98.0)
_STATS_SIDE = 1024
"""Side of the decimated read that gives the imagery stretch (memory flat in scene size)."""


def rgb_stretch(scene: Scene, nodata: float) -> tuple[float, float]:
    """Common 2–98 % stretch of the RGB bands, from a decimated read."""
    samples = []
    for band in ("red", "green", "blue"):
        with rasterio.open(raster_io.layer_path(scene, band)) as src:
            side = min(_STATS_SIDE, src.width), min(_STATS_SIDE, src.height)
            data = src.read(1, out_shape=(side[1], side[0]), resampling=Resampling.nearest)
            samples.append(data[data != nodata])
    values = np.concatenate(samples).astype(np.float64)
    lo, hi = np.percentile(values, RGB_STRETCH_PERCENTILES) if values.size else (0.0, 1.0)
    return float(lo), float(max(hi, lo + 1))


def write_rgb_composite(scene: Scene, out: Path, nodata: float) -> Path:
    """The scene's true-colour composite as a 3-band uint8 COG (0 = no data).

    Read and stretched one block row at a time, so memory stays flat as the
    scene grows; the stretch is common to the three bands (colours keep their
    balance). ``nodata`` is the bands' stored no-data value (the composite's 0).
    """
    lo, hi = rgb_stretch(scene, nodata)
    with rasterio.open(raster_io.layer_path(scene, "red")) as ref:
        profile = {
            "driver": "GTiff",
            "width": ref.width,
            "height": ref.height,
            "count": 3,
            "dtype": "uint8",
            "crs": ref.crs,
            "transform": ref.transform,
            "nodata": 0,
            "tiled": True,
            "blockxsize": cog.cog_block_size(ref.width, ref.height),
            "blockysize": cog.cog_block_size(ref.width, ref.height),
            "photometric": "RGB",
        }
        height, width = ref.height, ref.width
    sources = [rasterio.open(raster_io.layer_path(scene, b)) for b in ("red", "green", "blue")]
    try:
        with cog.staged_output(out) as staging:
            with cog.open_staged_geotiff(staging, profile) as dst:
                step = 256
                for row in range(0, height, step):
                    window = Window(0, row, width, min(step, height - row))
                    for band, src in enumerate(sources, start=1):
                        raw = src.read(1, window=window).astype(np.float32)
                        scaled = np.clip((raw - lo) / (hi - lo) * 254 + 1, 1, 255)
                        dst.write(
                            np.where(raw == nodata, 0, scaled).astype(np.uint8), band, window=window
                        )
            return cog.finish_cog(staging, out, tags={"terraops_layer": "rgb", "scene": scene.name})
    finally:
        for src in sources:
            src.close()
