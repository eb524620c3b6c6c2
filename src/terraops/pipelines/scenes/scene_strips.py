"""Scenes written strip by strip: what every importer of whole products shares.

A whole Landsat scene (7,800² px) or Sentinel-2 tile (10,980² px) is imported
a band of rows at a time: each strip is read, derived and written into the
open GeoTIFFs of the staging folder, so what is held is one strip, never the
scene. The layers are the ones :func:`terraops.adapters.raster_io.write_geotiff`
writes whole (same profile, tags and scaling).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from terraops.adapters import raster_io
from terraops.adapters.landsat_product import Grid
from terraops.domain.scene.generator import REFLECTANCE_NODATA, REFLECTANCE_SCALE
from terraops.domain.scene.spectra import BANDS

STRIP_ROWS = 512
"""Rows per strip: an 11,000 px wide strip holds 5.6 M px, a few hundred MB of arrays."""


def row_strips(height: int) -> list[tuple[int, int]]:
    """``(first row, end row)`` of each strip of a ``height``-row area."""
    return [(r0, min(height, r0 + STRIP_ROWS)) for r0 in range(0, height, STRIP_ROWS)]


def layer_writers(
    stack: ExitStack, folder: Path, grid: Grid, layer_tags: Mapping[str, Mapping[str, str]]
) -> dict[str, raster_io.RowsWriter]:
    """An open row writer per layer of ``layer_tags`` (closed with ``stack``)."""
    return {
        name: stack.enter_context(_layer_writer(folder / f"{name}.tif", name, grid, tags))
        for name, tags in layer_tags.items()
    }


def _layer_writer(
    path: Path, name: str, grid: Grid, tags: Mapping[str, str]
) -> raster_io.GeoTiffRows:
    reflectance = name in BANDS
    dtype = np.uint16 if reflectance else np.uint8 if name == "clear" else np.float32
    return raster_io.geotiff_rows_writer(
        path,
        height=grid.height,
        width=grid.width,
        dtype=np.dtype(dtype),
        epsg=grid.epsg,
        transform=grid.transform,
        nodata=None if name == "clear" else REFLECTANCE_NODATA if reflectance else float("nan"),
        description=name,
        scale=1.0 / REFLECTANCE_SCALE if reflectance else None,
        offset=0.0 if reflectance else None,
        tags=tags,
    )
