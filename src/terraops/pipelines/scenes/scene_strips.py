"""Scenes written strip by strip: what every importer of whole products shares.

A whole Landsat scene (7,800² px) or Sentinel-2 tile (10,980² px) is imported
a band of rows at a time: each strip is read, derived and written into the
open GeoTIFFs of the staging folder, so what is held is one strip, never the
scene. The layers are the ones :func:`terraops.adapters.raster_io.write_geotiff`
writes whole (same profile, tags and scaling).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from terraops.adapters import raster_io
from terraops.adapters.landsat_product import Grid
from terraops.domain.landsat.scene_constants import LstTally
from terraops.domain.mask_tally import MaskTally
from terraops.domain.scene.generator import REFLECTANCE_NODATA, REFLECTANCE_SCALE
from terraops.domain.scene.spectra import BANDS

STRIP_ROWS = 512
"""Rows per strip: an 11,000 px wide strip holds 5.6 M px, a few hundred MB of arrays."""


def row_strips(height: int) -> list[tuple[int, int]]:
    """``(first row, end row)`` of each strip of a ``height``-row area."""
    return [(r0, min(height, r0 + STRIP_ROWS)) for r0 in range(0, height, STRIP_ROWS)]


@dataclass
class StripLayers:
    """One strip as an importer derived it: what to write and what to tally.

    ``rows`` holds each layer's rows as stored (scaled reflectance, LST in °C),
    without the clear flag, which is written from ``clear``; ``lst_c`` is the
    strip's LST for the scene's summary, or ``None`` for a scene without one.
    """

    rows: Mapping[str, np.ndarray]
    clear: np.ndarray
    lst_c: np.ndarray | None
    tally: MaskTally
    record: dict[str, Any]


@dataclass
class StripsWritten:
    """What the manifest needs from the strips: the record (mask shares summed), the LST
    tally and the clear pixels."""

    record: dict[str, Any]
    lst: LstTally
    clear_pixels: int
    pixels: int


def write_strips(
    folder: Path,
    grid: Grid,
    layer_tags: Mapping[str, Mapping[str, str]],
    derive: Callable[[int, int], StripLayers],
    say: Callable[[str], None],
    *,
    doing: str,
) -> StripsWritten:
    """Every strip of ``grid`` derived (``derive(first row, end row)``) and written into
    ``folder``'s open layers, the mask shares and LST summed as the strips pass."""
    masks, lst = MaskTally(), LstTally()
    record: dict[str, Any] = {}
    clear_pixels = 0
    strips = row_strips(grid.height)
    with ExitStack() as stack:
        writers = layer_writers(stack, folder, grid, layer_tags)
        for i, (r0, r1) in enumerate(strips, start=1):
            say(f"{doing}: strip {i}/{len(strips)}")
            strip = derive(r0, r1)
            for name, rows in strip.rows.items():
                writers[name](rows, r0)
            writers["clear"](strip.clear.astype(np.uint8), r0)
            if strip.lst_c is not None:
                lst.add(strip.lst_c, strip.clear)
            masks += strip.tally
            clear_pixels += int(np.count_nonzero(strip.clear))
            record = strip.record
    masks.write_fractions(record)
    return StripsWritten(record, lst, clear_pixels, grid.width * grid.height)


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
