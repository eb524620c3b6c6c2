"""Rasters read whole for checks and evaluation, and uploads probed before they are parsed.

Scene layers have their own reader (:mod:`terraops.adapters.raster_io`); this
module serves the callers that look at one band of an arbitrary raster — a
quality check's band statistics, a reference mask to score a prediction
against, a real sample's image — and hand the pixels and the georeference
back to the pipelines, which decide what is acceptable and say so in their
own words.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine

FILE_SIGNATURES = {
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"PK\x03\x04": "ZIP",
    b"%PDF": "PDF",
    b"<VRTDataset": "GDAL VRT",
}
"""First bytes of the formats users most often upload by mistake, to name them."""


@dataclass(frozen=True)
class BandRead:
    """Band 1 of a raster with what readers check before using it.

    ``transform`` is the file's own (full resolution) even when ``data`` was
    read decimated; ``count`` and ``dtype`` describe the file, not ``data``.
    """

    data: np.ndarray
    count: int
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None


def read_first_band(
    path: Path, *, max_side: int | None = None, georeferenced: bool = True
) -> BandRead:
    """Band 1 of ``path`` as stored, decimated (nearest) to at most ``max_side`` px a side.

    ``georeferenced=False`` reads a raster with no georeference of its own (a
    mask on another image's pixel grid) without GDAL's warning about it.
    """
    with warnings.catch_warnings():
        if not georeferenced:
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            if max_side is None:
                data = src.read(1)
            else:
                shape = (min(max_side, src.height), min(max_side, src.width))
                data = src.read(1, out_shape=shape, resampling=Resampling.nearest)
            return BandRead(data, src.count, src.dtypes[0], src.crs, src.transform, src.nodata)


def geotiff_open_error(path: Path) -> rasterio.errors.RasterioIOError | None:
    """Why GDAL's GTiff driver cannot open ``path``, or None when it can.

    Only the GTiff driver may parse an upload: with auto-detection a VRT (an
    XML file that can point at other files or URLs) would be opened and followed.
    """
    try:
        with rasterio.open(path, driver="GTiff"):
            return None
    except rasterio.errors.RasterioIOError as exc:
        return exc


def sniff_format(path: Path) -> str | None:
    """The format a non-GeoTIFF file looks like, from its first bytes (never parsed)."""
    with path.open("rb") as f:
        head = f.read(16).lstrip()
    return next((kind for magic, kind in FILE_SIGNATURES.items() if head.startswith(magic)), None)
