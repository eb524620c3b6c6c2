"""Satellite product folders and side layers on disk (rasterio).

* A Landsat product folder is checked completely before a pixel is read:
  its MTL, every band file the import needs (by the MTL's names, else by the
  ``_B4.TIF``-style ending, since renamed files are common), and that all of
  them share one grid. A partial or mixed product fails here with a message
  that names the files, before any output exists.
* With a bounding box only the window is read from each band (a city is a
  few hundred pixels of a 7 800² scene).
* Side layers (DEM, thermal) of any CRS are resampled bilinearly onto the
  scene grid by GDAL's warper, which reads only the part it needs.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio import windows
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import Affine
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from terraops.domain.landsat.grid import grid_from_mtl
from terraops.domain.landsat.mtl import (
    REFLECTIVE_BANDS,
    Mtl,
    ProductMetadata,
    file_suffixes,
    parse_mtl,
    product_metadata,
    thermal_source,
)
from terraops.domain.landsat.product import NO_CLOUD_MASK, ProductPixels
from terraops.errors import InvalidInputError, NotFoundError

REQUIRED_ROLES: tuple[str, ...] = (*(f"B{n}" for n in REFLECTIVE_BANDS), "QA")
_INCOMPLETE_HINT = "download the complete product (all band GeoTIFFs and the *_MTL.txt)"


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: where a scene's pixels are."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def epsg(self) -> int:
        code = self.crs.to_epsg()
        if code is None:
            raise InvalidInputError(
                f"the CRS has no EPSG code: {self.crs.to_wkt()[:80]}…",
                hint="reproject the input to a UTM zone (gdalwarp -t_srs EPSG:326xx)",
            )
        return int(code)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, bottom, right, top = windows.bounds(
            Window(0, 0, self.width, self.height), self.transform
        )
        return (left, bottom, right, top)


@dataclass(frozen=True)
class LandsatProduct:
    folder: Path
    mtl: Path
    meta: ProductMetadata
    files: dict[str, Path]  # role ("B4", "QA", "B10", "ST_B10") → file
    grid: Grid
    thermal: str  # "st" (Level-2 ST_B10) | "b10" (computed from band 10)
    grid_from_mtl: str | None = None  # how the grid was read when the bands carry none
    notes: tuple[str, ...] = ()  # what the user should know (no cloud mask, ...)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- product folders
def find_mtl(folder: Path) -> Path:
    if not folder.is_dir():
        raise NotFoundError(f"product folder not found: {folder}")
    found = sorted(p for p in folder.iterdir() if p.name.lower().endswith("_mtl.txt"))
    if not found:
        raise NotFoundError(
            f"no *_MTL.txt in {folder}: not a Landsat product folder",
            hint="pass the folder that holds the band GeoTIFFs and the *_MTL.txt "
            "(unpack the downloaded .tar first)",
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InvalidInputError(
            f"{folder} holds several products ({names})", hint="one product per folder"
        )
    return found[0]


def _stem(name: str) -> str:
    lower = name.lower()
    for ext in (".tif", ".tiff"):
        if lower.endswith(ext):
            return lower[: -len(ext)]
    return ""


def _find_file(listing: Sequence[Path], role: str, mtl_name: str | None) -> Path | None:
    """The band file of ``role``: the MTL's name (any case), else the one ``*_B4.TIF``."""
    if mtl_name:
        exact = [p for p in listing if p.name.lower() == mtl_name.lower()]
        if exact:
            return exact[0]
    suffixes = file_suffixes(role)
    candidates = [
        p
        for p in listing
        if _stem(p.name).endswith(suffixes) and not (role == "B10" and "_st_b10" in p.name.lower())
    ]
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise InvalidInputError(
            f"several files could be {role}: {names}", hint="keep one product per folder"
        )
    return candidates[0] if candidates else None


def _open_quietly(path: Path) -> Any:
    """Open a raster; a band file without georeferencing is expected (the MTL has the grid)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def _check_grids(files: dict[str, Path]) -> Grid:
    """All band files readable, integer DN, and on one grid (shape, transform, CRS).

    The grid's CRS is None when no band file is georeferenced (then every one
    must lack it: a mix means files from different sources)."""
    grid: Grid | None = None
    reference = ""
    for role, path in files.items():
        try:
            with _open_quietly(path) as src:
                this = Grid(src.crs, src.transform, src.width, src.height)
                dtype = src.dtypes[0]
        except RasterioIOError as exc:
            raise InvalidInputError(
                f"{role} file {path.name} is not a readable raster: {exc}",
                hint=_INCOMPLETE_HINT,
            ) from exc
        if not np.issubdtype(np.dtype(dtype), np.integer):
            raise InvalidInputError(
                f"{role} file {path.name} holds {dtype} values, not Landsat digital numbers"
            )
        if grid is None:
            grid, reference = this, f"{role} ({path.name})"
        elif (
            (this.width, this.height) != (grid.width, grid.height)
            or this.crs != grid.crs
            or not this.transform.almost_equals(grid.transform, precision=1e-6)
        ):
            raise InvalidInputError(
                f"band grids do not match: {role} ({path.name}) is {this.width}x{this.height} px "
                f"at {tuple(this.transform)[:6]} in {this.crs}, {reference} is "
                f"{grid.width}x{grid.height} px at {tuple(grid.transform)[:6]} in {grid.crs}",
                hint="every band must come from the same product (30 m bands; the 15 m "
                "panchromatic band 8 is not used)",
            )
    assert grid is not None
    return grid


def _grid_or_mtl(grid: Grid, mtl: Mtl, files: dict[str, Path]) -> tuple[Grid, str | None]:
    """The band files' grid, or the MTL's when they carry no georeferencing at all."""
    if grid.crs is not None:
        return grid, None
    if not grid.transform.is_identity:
        names = ", ".join(path.name for path in files.values())
        raise InvalidInputError(
            f"the band files ({names}) have a geotransform but no CRS",
            hint="assign the product's CRS with gdal_edit.py -a_srs EPSG:326xx",
        )
    from_mtl = grid_from_mtl(mtl, width=grid.width, height=grid.height)
    found = Grid(CRS.from_epsg(from_mtl.epsg), Affine(*from_mtl.transform), grid.width, grid.height)
    return found, from_mtl.describe()


def open_product(folder: Path) -> LandsatProduct:
    """Find, parse and check a Landsat 8/9 product folder (reads no pixels)."""
    folder = Path(folder)
    mtl_path = find_mtl(folder)
    try:
        text = mtl_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {mtl_path}: {exc.strerror or exc}") from exc
    mtl = parse_mtl(text)
    meta = product_metadata(mtl)
    listing = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    roles = (*REQUIRED_ROLES, "B10", "ST_B10")
    found = {role: _find_file(listing, role, meta.file_names.get(role)) for role in roles}
    # A Level-2 product without QA_PIXEL (cropped teaching products) is imported
    # without a cloud mask, and says so; a Level-1 one is an incomplete download.
    qa_optional = meta.reflectance_level == "surface"
    missing = [
        role
        for role in REQUIRED_ROLES
        if found[role] is None and not (role == "QA" and qa_optional)
    ]
    if found["B10"] is None and found["ST_B10"] is None:
        missing.append("B10 (or Level-2 ST_B10)")
    if missing:
        raise InvalidInputError(
            f"the product in {folder} misses required band files: {', '.join(missing)}",
            hint=_INCOMPLETE_HINT,
        )
    thermal = thermal_source(
        meta, have_b10=found["B10"] is not None, have_st=found["ST_B10"] is not None
    )
    files = {role: path for role, path in found.items() if path is not None}
    if thermal == "b10":
        files.pop("ST_B10", None)
    elif meta.thermal is None:  # band 10 is only read for the cloud test's BT
        files.pop("B10", None)
    grid, from_mtl = _grid_or_mtl(_check_grids(files), mtl, files)
    notes = () if "QA" in files else (NO_CLOUD_MASK,)
    return LandsatProduct(folder, mtl_path, meta, files, grid, thermal, from_mtl, notes)


# --------------------------------------------------------------------------- windows
def parse_crs(text: str, product_crs: CRS) -> CRS:
    if text.strip().lower() == "product":
        return product_crs
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise InvalidInputError(
            f"unknown CRS {text!r}", hint="e.g. EPSG:4326, EPSG:32616 or 'product'"
        ) from exc


def bbox_window(grid: Grid, bbox: tuple[float, float, float, float], bbox_crs: CRS) -> Window:
    """The pixel window covering ``bbox`` (in ``bbox_crs``), clipped to the grid."""
    left, bottom, right, top = transform_bounds(bbox_crs, grid.crs, *bbox, densify_pts=21)
    win = windows.from_bounds(left, bottom, right, top, grid.transform)
    col0 = max(math.floor(round(win.col_off, 6)), 0)
    row0 = max(math.floor(round(win.row_off, 6)), 0)
    col1 = min(math.ceil(round(win.col_off + win.width, 6)), grid.width)
    row1 = min(math.ceil(round(win.row_off + win.height, 6)), grid.height)
    if col1 <= col0 or row1 <= row0:
        product = transform_bounds(grid.crs, bbox_crs, *grid.bounds)
        raise InvalidInputError(
            f"the bbox {list(bbox)} does not overlap the product "
            f"(product bounds in {bbox_crs.to_string()}: {[round(v, 5) for v in product]})",
            hint="check the coordinates' order (minx,miny,maxx,maxy = lon,lat,lon,lat) and "
            "--bbox-crs",
        )
    return Window(col0, row0, col1 - col0, row1 - row0)


def window_grid(grid: Grid, window: Window) -> Grid:
    return Grid(
        grid.crs, windows.transform(window, grid.transform), int(window.width), int(window.height)
    )


def _read(path: Path, window: Window | None) -> np.ndarray:
    try:
        with _open_quietly(path) as src:
            return np.asarray(src.read(1, window=window))
    except RasterioIOError as exc:
        raise InvalidInputError(f"cannot read {path.name}: {exc}", hint=_INCOMPLETE_HINT) from exc


def read_pixels(product: LandsatProduct, window: Window | None) -> ProductPixels:
    """The digital numbers of every band the import uses, in ``window`` only."""
    files = product.files
    reflective = {n: _read(files[f"B{n}"], window) for n in REFLECTIVE_BANDS}
    thermal = _read(files["B10"], window) if "B10" in files else None
    st = _read(files["ST_B10"], window) if product.thermal == "st" else None
    qa = _read(files["QA"], window) if "QA" in files else None
    return ProductPixels(reflective, qa, thermal, st)


# --------------------------------------------------------------------------- side layers
def describe_bands(path: Path) -> tuple[int, list[str]]:
    """Band count and lower-case band descriptions of a GeoTIFF."""
    if not Path(path).is_file():
        raise NotFoundError(f"raster not found: {path}")
    try:
        with rasterio.open(path) as src:
            return src.count, [(d or "").lower() for d in src.descriptions]
    except RasterioIOError as exc:
        raise InvalidInputError(f"{path} is not a readable raster: {exc}") from exc


def band1_onto(src: Any, grid: Grid, *, src_nodata: float | None) -> np.ndarray:
    """Band 1 of the open dataset ``src`` resampled bilinearly onto ``grid`` (float32, NaN =
    no data). GDAL reads only the source rows the grid needs, so a strip of a large grid
    costs that strip, not the file."""
    out = np.full((grid.height, grid.width), np.nan, dtype=np.float32)
    reproject(
        source=rasterio.band(src, 1),
        destination=out,
        src_nodata=src_nodata,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=np.nan,
        resampling=Resampling.bilinear,
    )
    return out


def reproject_to_grid(path: Path, grid: Grid, *, what: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Band 1 of any GeoTIFF resampled (bilinear) onto ``grid``: float32, NaN = no data.

    The file's scale/offset are applied. Fails when the layer does not
    overlap the grid at all; partial cover is allowed and reported.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{what} not found: {path}")
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InvalidInputError(f"{what} {path.name} is not a readable raster: {exc}") from exc
    with src:
        if src.crs is None:
            raise InvalidInputError(
                f"{what} {path.name} has no CRS", hint="assign one with gdal_edit.py -a_srs"
            )
        left, bottom, right, top = transform_bounds(src.crs, grid.crs, *src.bounds)
        g_left, g_bottom, g_right, g_top = grid.bounds
        if left >= g_right or right <= g_left or bottom >= g_top or top <= g_bottom:
            raise InvalidInputError(
                f"the {what} {path.name} does not overlap the scene",
                hint=f"use a {what} that covers the scene's area",
            )
        out = band1_onto(src, grid, src_nodata=src.nodata)
        scale, offset = src.scales[0], src.offsets[0]
        crs_text = src.crs.to_string()
    if (scale, offset) != (1.0, 0.0):
        out = (out * np.float32(scale) + np.float32(offset)).astype(np.float32)
    coverage = float(np.isfinite(out).mean())
    if coverage == 0.0:
        raise InvalidInputError(
            f"the {what} {path.name} has no valid data over the scene",
            hint=f"use a {what} that covers the scene's area",
        )
    info = {"file": path.name, "sha256": file_sha256(path), "crs": crs_text}
    return out, info | {"coverage": round(coverage, 6), "resampling": "bilinear"}
