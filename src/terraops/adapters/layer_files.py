"""Reading catalogue layers' files: tiles, point values, projection facts.

The only door from a web request to a file. Every function takes a
:class:`Layer` — a catalogue entry, never a path or URL from a request — and
:func:`open_raster` refuses anything that is not a plain GeoTIFF *before*
GDAL parses it: the first bytes must be a TIFF header and only GDAL's GTiff
driver may open it. A VRT (XML that can name any file or ``/vsicurl/`` URL)
planted in the catalogue is therefore never read through.

Rendering is rio-tiler's (``Reader.tile`` + ``ImageData.render`` with a
rio-tiler colormap), not a home-made renderer, so terraops tiles look exactly
like TiTiler's for the same COG and parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import rasterio
from rasterio.errors import RasterioIOError
from rio_tiler.colormap import cmap
from rio_tiler.errors import InvalidColorMapName, PointOutsideBounds, TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.utils import render

from terraops.domain.layers import Layer
from terraops.errors import InvalidInputError, NotFoundError, OutsideBoundsError

TILE_SIZE = 256
LEGEND_STOPS = 11
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF


@dataclass(frozen=True)
class TileStyle:
    """How a single-band layer is coloured: rio-tiler colormap name + value range.

    ``colormap is None`` means "show the bands as they are" (RGB imagery).
    """

    colormap: str | None
    rescale: tuple[float, float] | None

    def key(self) -> tuple[Any, ...]:
        return (self.colormap, self.rescale)


@dataclass(frozen=True)
class PointSample:
    """A raster's values under one point, and the cell that holds them."""

    values: list[float | None]
    row: int
    col: int


def known_colormap(name: str) -> bool:
    return name in cmap.list()


def colormap_table(name: str) -> Any:
    """rio-tiler's colour table for ``name`` (``InvalidInputError`` if unknown)."""
    try:
        return cmap.get(name)
    except InvalidColorMapName as exc:
        raise InvalidInputError(
            f"unknown colormap {name!r}",
            hint="use a rio-tiler colormap name, e.g. viridis, rdylbu_r, blues, magma",
        ) from exc


def legend_stops(
    colormap: str | None, rescale: tuple[float, float] | None, n: int = LEGEND_STOPS
) -> list[list[Any]]:
    """``[[value, "#rrggbb"], ...]`` from the colormap the tiles use.

    Computed from rio-tiler's own 256-entry table and the rescale range, so
    the page draws a legend that cannot disagree with the tiles.
    """
    if colormap is None or rescale is None:
        return []
    table = colormap_table(colormap)
    if not isinstance(table, dict):  # interval colormaps have no linear legend
        return []
    lo, hi = rescale
    stops: list[list[Any]] = []
    for i in range(n):
        index = round(i * 255 / (n - 1))
        r, g, b = (int(c) for c in table[index][:3])
        stops.append([lo + (hi - lo) * index / 255, f"#{r:02x}{g:02x}{b:02x}"])
    return stops


def check_geotiff(layer: Layer) -> None:
    """Refuse a catalogued file that is not a TIFF, from its first bytes, before GDAL sees it."""
    path = Path(layer.path)
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except FileNotFoundError as exc:
        raise NotFoundError(f"layer {layer.id!r} is catalogued but its file is missing") from exc
    if head not in _TIFF_MAGIC:
        raise NotFoundError(
            f"layer {layer.id!r} is not a GeoTIFF; terraops serves only GeoTIFF/COG rasters",
            hint="re-create the layer with terraops predict-raster or cog convert",
        )


@contextmanager
def open_geotiff(layer: Layer) -> Iterator[Any]:
    """The layer's file as a rasterio dataset, opened by GDAL's GTiff driver only."""
    if layer.kind != "raster":
        raise NotFoundError(
            f"layer {layer.id!r} is a {layer.kind} layer, not a raster",
            hint=f"GET /layers/{layer.id}/data.geojson serves it",
        )
    check_geotiff(layer)
    try:
        dataset = rasterio.open(layer.path, driver="GTiff")
    except RasterioIOError as exc:
        raise NotFoundError(f"layer {layer.id!r}'s file cannot be read as a GeoTIFF") from exc
    with dataset:
        yield dataset


@contextmanager
def open_raster(layer: Layer) -> Iterator[Reader]:
    """A rio-tiler ``Reader`` on the layer's GeoTIFF (see :func:`open_geotiff`)."""
    with open_geotiff(layer) as dataset, Reader(None, dataset=dataset) as reader:
        yield reader


def _touches_envelope(layer: Layer, z: int, x: int, y: int) -> bool:
    """Whether a web-mercator tile overlaps the layer's lon/lat bounding box.

    A UTM raster sits tilted in web mercator, so its lon/lat envelope has
    corners with no data. A map asks for tiles across the whole envelope (it
    is all it knows); those corner tiles are a real, empty part of the layer,
    not an error.
    """
    import morecantile

    tile = morecantile.tms.get("WebMercatorQuad").bounds(morecantile.Tile(x, y, z))
    west, south, east, north = layer.bounds
    return tile.left < east and tile.right > west and tile.bottom < north and tile.top > south


@cache
def empty_tile(size: int) -> bytes:
    """A fully transparent PNG tile of ``size`` px."""
    data: bytes = render(np.zeros((1, size, size), np.uint8), mask=np.zeros((size, size), np.uint8))
    return data


def _embedded_palette(dataset: Any) -> dict[int, tuple[int, int, int, int]] | None:
    """A single-band categorical raster's own colour table (a segmentation mask's classes)."""
    if dataset.count != 1:
        return None
    try:
        return dict(dataset.colormap(1))
    except ValueError:  # no colour table
        return None


def render_tile(layer: Layer, z: int, x: int, y: int, scale: int, style: TileStyle) -> bytes:
    """One PNG map tile (``256 * scale`` px) of a raster layer, rendered by rio-tiler."""
    with open_geotiff(layer) as dataset, Reader(None, dataset=dataset) as src:
        indexes = 1 if style.colormap is not None or dataset.count < 3 else (1, 2, 3)
        palette = _embedded_palette(dataset) if style.colormap is None else None
        try:
            img = src.tile(x, y, z, tilesize=TILE_SIZE * scale, indexes=indexes)
        except TileOutsideBounds as exc:
            if _touches_envelope(layer, z, x, y):
                return empty_tile(TILE_SIZE * scale)
            raise OutsideBoundsError(
                f"tile {z}/{x}/{y} is outside layer {layer.id!r}",
                hint=f"GET /layers/{layer.id}/tilejson.json gives its bounds and zooms",
            ) from exc
    colormap = colormap_table(style.colormap) if style.colormap is not None else palette
    # NaN no-data pixels (every prediction COG) are masked, but numpy's masked
    # arithmetic still casts them and warns once per tile: noise in server logs.
    with np.errstate(invalid="ignore"):
        if style.rescale is not None:
            img.rescale(in_range=(style.rescale,) * img.count)
        data: bytes = img.render(img_format="PNG", colormap=colormap)
    return data


def tile_zooms(layer: Layer) -> tuple[int, int, tuple[float, float, float, float]]:
    """(minzoom, maxzoom, WGS 84 bounds) as rio-tiler sees the COG."""
    with open_raster(layer) as src:
        west, south, east, north = src.get_geographic_bounds(rasterio.crs.CRS.from_epsg(4326))
        return int(src.minzoom), int(src.maxzoom), (west, south, east, north)


def sample_point(layer: Layer, lon: float, lat: float) -> PointSample:
    """The layer's values at a WGS 84 point (``None`` where masked or nodata)."""
    with open_raster(layer) as src:
        try:
            point = src.point(lon, lat)
        except PointOutsideBounds as exc:
            raise OutsideBoundsError(
                f"point ({lon:g}, {lat:g}) is outside layer {layer.id!r}",
                hint=f"the layer covers lon/lat {', '.join(f'{b:g}' for b in layer.bounds)}",
            ) from exc
    col, row = point.pixel_location  # type: ignore[misc]
    values: list[float | None] = []
    for value, masked in zip(point.array.data, np.ma.getmaskarray(point.array), strict=True):
        number = float(value)
        values.append(None if masked or not math.isfinite(number) else number)
    return PointSample(values, int(row), int(col))


def projection(layer: Layer) -> dict[str, Any]:
    """STAC projection-extension facts read from the raster itself."""
    with open_geotiff(layer) as ds:
        epsg = ds.crs.to_epsg() if ds.crs else None
        return {
            "code": f"EPSG:{epsg}" if epsg else None,
            "wkt2": None if epsg or not ds.crs else ds.crs.to_wkt(),
            "shape": [ds.height, ds.width],
            "transform": list(ds.transform)[:6],
            "bbox": list(ds.bounds),
            "dtype": ds.dtypes[0],
            "count": ds.count,
            "nodata": ds.nodata,
        }


def feature_row(path: str | None, row: int, col: int) -> dict[str, float] | None:
    """The model inputs of cell (row, col) from a layer's features parquet.

    Only finite numbers come back (a NaN input is "not computed", not a
    value). ``None`` when the layer has no features table or it is missing.
    """
    if path is None or not Path(path).is_file():
        return None
    table = pq.read_table(path, filters=[("row", "=", row), ("col", "=", col)])
    if table.num_rows == 0:
        return {}
    record = table.slice(0, 1).to_pylist()[0]
    out: dict[str, float] = {}
    for name, value in record.items():
        if name in ("row", "col") or isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


__all__ = [
    "PointSample",
    "TileStyle",
    "check_geotiff",
    "colormap_table",
    "feature_row",
    "known_colormap",
    "legend_stops",
    "open_geotiff",
    "open_raster",
    "projection",
    "render_tile",
    "sample_point",
    "tile_zooms",
]
