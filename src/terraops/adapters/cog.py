"""Cloud Optimized GeoTIFFs: write, convert, validate.

Writing goes through GDAL's own COG driver (``rasterio.shutil.copy(...,
driver="COG")``) with deflate, the right predictor for the data type,
internal overviews and all CPU cores compressing: the COG layout (tiles,
overviews before data, ghost header) is GDAL's, not ours, and no Python loop
touches pixels. Every file is checked with ``rio_cogeo.cog_validate`` — the
Python API, because ``rio cogeo validate`` exits 0 even on invalid files —
before it is renamed into place, so a caller finds either a valid COG at the
output path or nothing at all.

Producers write a plain tiled GeoTIFF window by window (memory flat in the
raster's size) into a temporary file next to the output, then call
:func:`finish_cog`, which turns it into the COG.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import RasterioIOError

from terraops.adapters import atomic
from terraops.errors import InvalidInputError, NotFoundError

COG_BLOCK = 256
SMALL_COG_BLOCK = 128
"""GDAL's smallest COG block; rasters under 512 px use it."""
SMALLEST_OVERVIEW_PX = 32
COPY_CACHE_MB = 64
"""GDAL block cache while copying: its default (5 % of RAM) grows with the raster,
and a COG copy streams blocks, so a fixed cache keeps memory flat at no cost."""


def cog_block_size(width: int, height: int) -> int:
    return COG_BLOCK if min(width, height) >= 2 * COG_BLOCK else SMALL_COG_BLOCK


def cog_options(
    dtype: str, width: int, height: int, *, count: int = 1, threads: bool = True
) -> dict[str, Any]:
    """COG driver creation options: deflate, predictor by type, overviews, parallel.

    GDAL makes overviews only for rasters larger than a block; a small raster
    (a 20 m prediction grid of a 2 km city is ~100 px) still gets levels down to
    ~32 px, so viewers zoomed out read a few bytes instead of the whole grid.
    Overviews average continuous values and imagery; a single integer band is
    taken as classes (a mask) and keeps the nearest class.
    """
    floating = np.issubdtype(np.dtype(dtype), np.floating)
    block = cog_block_size(width, height)
    options: dict[str, Any] = {
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "FLOATING_POINT" if floating else "STANDARD",
        "BLOCKSIZE": block,
        "OVERVIEWS": "IGNORE_EXISTING",
        "OVERVIEW_RESAMPLING": "AVERAGE" if floating or count > 1 else "NEAREST",
        "BIGTIFF": "IF_SAFER",
    }
    side = min(width, height)
    if side <= block and side >= 2 * SMALLEST_OVERVIEW_PX:
        options["OVERVIEW_COUNT"] = int(np.log2(side / SMALLEST_OVERVIEW_PX))
    if threads:
        options["NUM_THREADS"] = "ALL_CPUS"
    return options


def validate_cog(path: Path) -> list[str]:
    """Errors ``rio_cogeo`` finds in ``path`` (empty list = a valid COG)."""
    from rio_cogeo.cogeo import cog_validate

    valid, errors, _warnings = cog_validate(str(path), quiet=True)
    return [] if valid else (errors or ["not a valid COG"])


def _temp_sibling(path: Path, label: str) -> Path:
    """A unique hidden GeoTIFF name next to ``path`` (GDAL picks drivers by suffix)."""
    return atomic.temp_sibling(path, label=label, suffix=".tif")


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """A temporary GeoTIFF path next to ``out`` for a producer to fill.

    After the block, call :func:`finish_cog` inside it; any error removes the
    temporary file and leaves ``out`` untouched.
    """
    out = Path(out).expanduser().absolute()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot create {out.parent}: {exc.strerror or exc}", hint="choose a writable --out"
        ) from exc
    staging = _temp_sibling(out, "staging")
    try:
        yield staging
    finally:
        staging.unlink(missing_ok=True)


@contextmanager
def open_staged_geotiff(
    staging: Path, profile: Mapping[str, Any], *, cache_mb: int | None = None
) -> Iterator[Any]:
    """The staged GeoTIFF (from :func:`staged_output`) open for writing, as a rasterio dataset.

    Producers write it window by window, so memory stays flat in the raster's
    size; ``cache_mb`` caps GDAL's block cache while it is open (its default
    grows with the machine's memory, not with what a streaming writer needs).
    """
    with ExitStack() as stack:
        if cache_mb is not None:
            stack.enter_context(rasterio.Env(GDAL_CACHEMAX=cache_mb))
        yield stack.enter_context(rasterio.open(staging, "w", **profile))


def write_cog(src_path: Path, out: Path) -> Path:
    """Copy any GDAL-readable raster to a validated COG at ``out`` (atomic rename).

    Metadata tags travel with the copy, so lineage must be on the source.
    """
    out = Path(out).expanduser().absolute()
    with rasterio.open(src_path) as src:
        options = cog_options(src.dtypes[0], src.width, src.height, count=src.count)
    with atomic.atomic_path(out, label="cog", suffix=".tif") as tmp:
        try:
            with rasterio.Env(GDAL_CACHEMAX=COPY_CACHE_MB):
                rasterio.shutil.copy(src_path, tmp, driver="COG", **options)
        except RasterioIOError as exc:
            raise InvalidInputError(f"{src_path} could not be read to the end: {exc}") from exc
        problems = validate_cog(tmp)
        if problems:
            raise InvalidInputError(f"the COG written for {out} is invalid: {'; '.join(problems)}")
    return out


def finish_cog(staging: Path, out: Path, *, tags: Mapping[str, str] | None = None) -> Path:
    """Tag the staged GeoTIFF and turn it into a validated COG at ``out``."""
    if tags:
        with rasterio.open(staging, "r+") as dst:
            dst.update_tags(**tags)
    return write_cog(staging, out)


def convert_to_cog(src_path: Path, out: Path) -> dict[str, Any]:
    """Any raster GDAL can read → a validated COG at ``out`` (nothing written on error)."""
    src_path = Path(src_path)
    out = Path(out).expanduser().absolute()
    if not src_path.is_file():
        raise NotFoundError(f"input raster not found: {src_path}")
    if src_path.resolve() == out.resolve():
        raise InvalidInputError("input and output are the same file", hint="choose another OUT")
    try:
        with rasterio.open(src_path) as src:
            if src.driver == "VRT":
                raise InvalidInputError(
                    f"{src_path} is a VRT, which may read other files",
                    hint="convert the VRT with gdal_translate first",
                )
            info: dict[str, Any] = {"width": src.width, "height": src.height, "count": src.count}
            info["dtype"] = src.dtypes[0]
            info["crs"] = src.crs.to_string() if src.crs else None
    except RasterioIOError as exc:
        raise InvalidInputError(
            f"{src_path} is not a readable raster: {exc}",
            hint="give a GeoTIFF (or any format GDAL reads)",
        ) from exc
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create {out.parent}: {exc.strerror or exc}") from exc
    path = write_cog(src_path, out)
    return {**info, "path": str(path), "valid_cog": True}


def write_array_cog(
    array: np.ndarray,
    out: Path,
    *,
    crs: str,
    transform: Any,
    nodata: float | None,
    tags: Mapping[str, str] | None = None,
    descriptions: tuple[str, ...] = (),
) -> Path:
    """An in-memory (bands, rows, cols) or (rows, cols) array → a validated COG."""
    data = array if array.ndim == 3 else array[np.newaxis]
    count, height, width = data.shape
    block = cog_block_size(width, height)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
    }
    with staged_output(Path(out)) as staging:
        with open_staged_geotiff(staging, profile) as dst:
            dst.write(data)
            for band, text in enumerate(descriptions, start=1):
                dst.set_band_description(band, text)
        return finish_cog(staging, Path(out), tags=tags)
