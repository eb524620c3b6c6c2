"""Sentinel-2 L2A products on disk or behind URLs (rasterio): SAFE folders and per-band COGs.

* A SAFE folder is checked completely before a pixel is read: its
  ``MTD_MSIL2A.xml`` and ``GRANULE/*/MTD_TL.xml``, every band file the import
  needs (by the metadata's IMAGE_FILE names, else by the ``*_B04_10m.jp2``
  ending), and that every file lies on the tile grid ``MTD_TL.xml`` describes.
* The per-band COGs of a STAC item (local paths or URLs, which GDAL reads in
  ranges) are checked to cover the same area on grids of 10 m multiples.
* Only the requested window is read; bands coarser than 10 m (B11, SCL) are
  resampled onto the 10 m window by GDAL's warper: bilinear for reflectance,
  nearest neighbour for the classification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from terraops.adapters.landsat_product import Grid, band1_onto, window_grid
from terraops.domain.sentinel2.metadata import (
    ProductMetadata,
    TileGeometry,
    check_name,
    parse_product_metadata,
    parse_tile_metadata,
)
from terraops.domain.sentinel2.product import (
    NATIVE_RESOLUTION_M,
    S2_BANDS,
    SCL,
    TARGET_RESOLUTION_M,
    BandScaling,
    S2Pixels,
    check_scl_legend,
)
from terraops.errors import InvalidInputError, NotFoundError

ROLES: tuple[str, ...] = (*S2_BANDS.values(), SCL)
_NATIVE = {**NATIVE_RESOLUTION_M, SCL: 20}
_INCOMPLETE_HINT = "download the complete product (unzip the .zip: the .SAFE folder)"
_SAFE_HINT = "pass the .SAFE folder of a Sentinel-2 L2A product (unzip the download first)"


@dataclass(frozen=True)
class S2Product:
    """A Sentinel-2 L2A product ready to read: where each band is and how to scale it."""

    name: str
    files: dict[str, str]  # "B04" / "SCL" → local path or URL
    grid: Grid  # the 10 m grid
    scaling: dict[str, BandScaling]
    record: dict[str, Any] = field(default_factory=dict)  # product facts for the lineage
    meta: ProductMetadata | None = None
    tile: TileGeometry | None = None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _safe_folder(folder: Path) -> Path:
    """The .SAFE folder itself, or the one .SAFE folder inside an unzipped download."""
    if not folder.is_dir():
        raise NotFoundError(f"product folder not found: {folder}")
    if (folder / "MTD_MSIL2A.xml").is_file():
        return folder
    if (folder / "MTD_MSIL1C.xml").is_file():
        raise InvalidInputError(
            f"{folder} is a Sentinel-2 Level-1C product (top of atmosphere)",
            hint="download the Level-2A product (MSIL2A) of the same date",
        )
    inner = [p for p in folder.iterdir() if p.is_dir() and p.name.endswith(".SAFE")]
    if len(inner) == 1 and (inner[0] / "MTD_MSIL2A.xml").is_file():
        return inner[0]
    raise NotFoundError(
        f"no MTD_MSIL2A.xml in {folder}: not a Sentinel-2 L2A SAFE folder", hint=_SAFE_HINT
    )


def _granule(safe: Path) -> Path:
    granules = sorted(p for p in (safe / "GRANULE").glob("*") if p.is_dir())
    if len(granules) != 1 or not (granules[0] / "MTD_TL.xml").is_file():
        raise InvalidInputError(
            f"{safe.name} has {len(granules)} granule folders with an MTD_TL.xml, not one",
            hint=_INCOMPLETE_HINT,
        )
    return granules[0]


def _band_file(safe: Path, granule: Path, meta: ProductMetadata, role: str) -> Path | None:
    """The JP2 of ``role`` at its native resolution: the metadata's name, else the ending."""
    res = _NATIVE[role]
    ending = f"_{role}_{res}m.jp2".lower()
    for entry in meta.image_files:
        if f"{entry}.jp2".lower().endswith(ending) and (safe / f"{entry}.jp2").is_file():
            return safe / f"{entry}.jp2"
    folder = granule / "IMG_DATA" / f"R{res}m"
    found = sorted(p for p in folder.glob("*") if p.name.lower().endswith(ending))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InvalidInputError(f"several files could be {role}: {names}", hint=_INCOMPLETE_HINT)
    return found[0] if found else None


def _profile(href: str, role: str) -> tuple[CRS | None, Affine, int, int, str]:
    try:
        with rasterio.open(href) as src:
            return src.crs, src.transform, src.width, src.height, src.dtypes[0]
    except RasterioIOError as exc:
        raise InvalidInputError(
            f"{role} file {href} is not a readable raster: {exc}", hint=_INCOMPLETE_HINT
        ) from exc


def _check_on_tile(files: dict[str, str], tile: TileGeometry) -> Grid:
    """Every band on the grid MTD_TL.xml gives for its resolution; returns the 10 m grid."""
    for role, href in files.items():
        crs, transform, width, height, dtype = _profile(href, role)
        res = _NATIVE[role]
        expected = (tile.origins.get(res), tile.sizes.get(res))
        if None in expected:
            raise InvalidInputError(f"MTD_TL.xml gives no {res} m grid (needed by {role})")
        (ulx, uly), (ncols, nrows) = expected  # type: ignore[misc]
        found = (
            crs.to_epsg() if crs else None,
            transform.c,
            transform.f,
            transform.a,
            width,
            height,
        )
        if found != (tile.epsg, ulx, uly, float(res), ncols, nrows):
            raise InvalidInputError(
                f"{role} ({Path(href).name}) is not on the tile grid: EPSG:{found[0]}, origin "
                f"({found[1]:g}, {found[2]:g}), {found[3]:g} m, {width}x{height} px; MTD_TL.xml "
                f"says EPSG:{tile.epsg}, ({ulx:g}, {uly:g}), {res} m, {ncols}x{nrows} px",
                hint="every band must come from the same product; " + _INCOMPLETE_HINT,
            )
        if not np.issubdtype(np.dtype(dtype), np.integer):
            raise InvalidInputError(f"{role} file holds {dtype} values, not L2A digital numbers")
    (ulx, uly), (ncols, nrows) = tile.origins[10], tile.sizes[10]
    return Grid(CRS.from_epsg(tile.epsg), Affine(10.0, 0, ulx, 0, -10.0, uly), ncols, nrows)


def open_safe(folder: Path) -> S2Product:
    """Find, parse and check a Sentinel-2 L2A SAFE folder (reads no pixels)."""
    safe = _safe_folder(Path(folder))
    meta = parse_product_metadata(_read_text(safe / "MTD_MSIL2A.xml"))
    name_fields = check_name(safe.name, meta)
    check_scl_legend(meta.scl_legend)
    granule = _granule(safe)
    tile = parse_tile_metadata(_read_text(granule / "MTD_TL.xml"))
    found = {role: _band_file(safe, granule, meta, role) for role in ROLES}
    missing = [
        f"{r} (R{_NATIVE[r]}m/*_{r}_{_NATIVE[r]}m.jp2)" for r, p in found.items() if p is None
    ]
    if missing:
        raise InvalidInputError(
            f"the product {safe.name} misses required band files: {', '.join(missing)}",
            hint=_INCOMPLETE_HINT,
        )
    files = {role: str(path) for role, path in found.items() if path is not None}
    grid = _check_on_tile(files, tile)
    source = (
        "BOA_ADD_OFFSET of MTD_MSIL2A.xml" if meta.offsets else "no offset before baseline 04.00"
    )
    scaling = {
        band: BandScaling(meta.offsets.get(band, 0.0), meta.quantification, source)
        for band in S2_BANDS.values()
    }
    record = {
        "processing_baseline": meta.baseline,
        "product_type": meta.product_type,
        "relative_orbit": meta.relative_orbit,
        "tile": name_fields.get("tile"),
        "grid": f"from MTD_TL.xml: EPSG:{tile.epsg}, UL ({grid.transform.c:g}, "
        f"{grid.transform.f:g}), checked against every band file",
        "metadata_files": {
            "MTD_MSIL2A": "MTD_MSIL2A.xml",
            "MTD_TL": f"GRANULE/{granule.name}/MTD_TL.xml",
        },
    }
    name = meta.product_uri or safe.name.removesuffix(".SAFE")
    return S2Product(name, files, grid, scaling, record, meta, tile)


def _same(a: float, b: float, tol: float) -> bool:
    return math.isclose(a, b, abs_tol=tol)


def open_cogs(name: str, files: dict[str, str], scaling: dict[str, BandScaling]) -> S2Product:
    """Per-band rasters of one tile (a STAC item's COGs): one area, grids of 10 m multiples."""
    reference = files[S2_BANDS["red"]]
    crs, transform, width, height, _ = _profile(reference, S2_BANDS["red"])
    if crs is None:
        raise InvalidInputError(f"{reference} has no CRS", hint=_INCOMPLETE_HINT)
    grid = Grid(crs, transform, width, height)
    left, bottom, right, top = grid.bounds
    for role, href in files.items():
        this_crs, t, w, h, dtype = _profile(href, role)
        this = Grid(this_crs, t, w, h) if this_crs is not None else None
        factor = abs(t.a) / abs(transform.a)
        ok = (
            this is not None
            and this_crs == crs
            and abs(factor - round(factor)) < 1e-6
            and all(
                _same(a, b, 1e-3)
                for a, b in zip(this.bounds, (left, bottom, right, top), strict=True)
            )
        )
        if not ok:
            raise InvalidInputError(
                f"{role} ({href}) does not cover the same area as {S2_BANDS['red']} on a grid "
                f"of {abs(transform.a):g} m multiples (its CRS {this_crs}, {w}x{h} px of "
                f"{abs(t.a):g} m)",
                hint="all assets must come from the same Sentinel-2 item",
            )
        if not np.issubdtype(np.dtype(dtype), np.integer):
            raise InvalidInputError(f"{role} ({href}) holds {dtype} values, not digital numbers")
    if not _same(abs(transform.a), TARGET_RESOLUTION_M, 1e-6):
        raise InvalidInputError(f"{S2_BANDS['red']} has {abs(transform.a):g} m pixels, not 10 m")
    return S2Product(name, files, grid, scaling)


def _resampled(href: str, grid: Grid, role: str) -> tuple[np.ndarray, str]:
    """``href`` on ``grid``: read as is when it already is, else warped (NaN / 0 = no data)."""
    with rasterio.open(href) as src:
        same = src.crs == grid.crs and _same(src.transform.a, grid.transform.a, 1e-9)
        if same:
            col = (grid.transform.c - src.transform.c) / src.transform.a
            row = (grid.transform.f - src.transform.f) / src.transform.e
            if _same(col, round(col), 1e-6) and _same(row, round(row), 1e-6):
                window = Window(round(col), round(row), grid.width, grid.height)
                data = src.read(1, window=window)
                if role == SCL:
                    return data.astype(np.uint8), "none"
                return np.where(data == 0, np.nan, data.astype(np.float32)), "none"
        categorical = role == SCL
        out = np.zeros((grid.height, grid.width), np.uint8 if categorical else np.float32)
        if not categorical:
            out[:] = np.nan
        method = Resampling.nearest if categorical else Resampling.bilinear
        reproject(
            source=rasterio.band(src, 1),
            destination=out,
            src_nodata=0,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=0 if categorical else np.nan,
            resampling=method,
        )
        label = f"{method.name} {abs(src.transform.a):g} m -> {abs(grid.transform.a):g} m"
    return out, label


def read_pixels(product: S2Product, window: Window | None) -> tuple[S2Pixels, dict[str, str]]:
    """The digital numbers of every band on the 10 m grid of ``window`` (all of it if None)."""
    grid = product.grid if window is None else window_grid(product.grid, window)
    bands: dict[str, np.ndarray] = {}
    methods: dict[str, str] = {}
    scl = np.zeros((grid.height, grid.width), np.uint8)
    for role, href in product.files.items():
        try:
            data, methods[role] = _resampled(href, grid, role)
        except RasterioIOError as exc:
            raise InvalidInputError(
                f"cannot read {role} ({href}): {exc}", hint=_INCOMPLETE_HINT
            ) from exc
        if role == SCL:
            scl = data
        else:
            bands[role] = data
    return S2Pixels(bands, scl), methods


# --------------------------------------------------------------------------- other grids
def overlaps(a: Grid, b: Grid) -> bool:
    """Whether grid ``a``'s area meets grid ``b``'s (in ``b``'s CRS)."""
    left, bottom, right, top = transform_bounds(a.crs, b.crs, *a.bounds, densify_pts=21)
    b_left, b_bottom, b_right, b_top = b.bounds
    return bool(left < b_right and right > b_left and bottom < b_top and top > b_bottom)


def reproject_file(path: Path, target: Grid) -> np.ndarray:
    """Band 1 of a float GeoTIFF (NaN = no data) resampled bilinearly onto ``target``."""
    with rasterio.open(path) as src:
        return band1_onto(src, target, src_nodata=np.nan)
