"""Import Sentinel-2 L2A products as terraops scenes, with Landsat land-surface temperature.

The scene has the layout the Landsat import writes (``red, green, blue, nir,
swir`` as uint16 reflectance × 10 000, ``clear``, optional ``lst`` and
``dem``), so the one feature path reads both. Sentinel-2 has no thermal band:
``lst`` comes from a Landsat 8/9 product of a near date when one is given
(``--thermal``) — its LST, computed exactly as the Landsat import computes it
(with its own cloud mask), is resampled bilinearly onto the 10 m grid and the
days between the two acquisitions are recorded. Without one the scene has
no ``lst`` layer, as a GeoTIFF imported without ``--thermal``: it can be
mapped and predicted on, not trained on.

The product is read, masked and written strip by strip (a whole 10,980² px
tile in bounded memory) into a staging folder that becomes the scene only when
everything is written. The Landsat LST, when given, is resampled onto the
whole 10 m grid at once (4 bytes per pixel).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from terraops.adapters import landsat_product, raster_io, sentinel2_product
from terraops.adapters.landsat_product import Grid
from terraops.adapters.sentinel2_product import S2Product
from terraops.domain.landsat.product import derive_layers as derive_landsat
from terraops.domain.scene.generator import to_scaled_reflectance_or_nodata
from terraops.domain.scene.spectra import BANDS
from terraops.domain.sentinel2.product import derive_layers, footprint_geojson
from terraops.errors import InvalidInputError
from terraops.pipelines.progress import status_line
from terraops.pipelines.scenes.importing import (
    _dem,
    _layer_tags,
    _refuse_unsafe_output,
    _units,
    area_record,
    finish_strip_import,
)
from terraops.pipelines.scenes.scene_strips import StripLayers, StripsWritten, write_strips

log = logging.getLogger(__name__)

THERMAL_GAP_WARNING_DAYS = 16.0
"""One Landsat revisit: a thermal product further away than this is worth a warning."""
THERMAL_HALO_PX = 2
NO_LST = (
    "no land-surface temperature: Sentinel-2 has no thermal band; pass --thermal with a "
    "Landsat 8/9 product of a near date to add one (the scene can be mapped, not trained on)"
)


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _padded(window: Window, grid: Grid, halo: int) -> Window:
    col0, row0 = max(int(window.col_off) - halo, 0), max(int(window.row_off) - halo, 0)
    col1 = min(int(window.col_off + window.width) + halo, grid.width)
    row1 = min(int(window.row_off + window.height) + halo, grid.height)
    return Window(col0, row0, col1 - col0, row1 - row0)


def landsat_thermal(
    folder: Path, grid: Grid, acquired: str | None
) -> tuple[np.ndarray, dict[str, Any], list[str]]:
    """LST (°C, NaN = none) of a Landsat product on ``grid``, its record and any warning."""
    product = landsat_product.open_product(Path(folder))
    if not sentinel2_product.overlaps(grid, product.grid):
        raise InvalidInputError(
            f"the thermal Landsat product {product.meta.product_id} does not overlap the "
            "Sentinel-2 scene",
            hint="use a Landsat product whose path/row covers the Sentinel-2 tile",
        )
    window = landsat_product.bbox_window(product.grid, grid.bounds, grid.crs)
    window = _padded(window, product.grid, THERMAL_HALO_PX)
    source_grid = landsat_product.window_grid(product.grid, window)
    derived = derive_landsat(
        landsat_product.read_pixels(product, window), product.meta, thermal=product.thermal
    )
    lst = sentinel2_product.reproject_array(derived.lst_c, source_grid, grid)
    coverage = float(np.isfinite(lst).mean())
    if coverage == 0.0:
        raise InvalidInputError(
            f"the thermal Landsat product {product.meta.product_id} has no clear "
            "land-surface temperature over the Sentinel-2 scene (cloud or no data)",
            hint="use a clearer Landsat acquisition of a near date",
        )
    warnings: list[str] = []
    s2_time, landsat_time = _instant(acquired), _instant(product.meta.acquired)
    gap = None
    if s2_time is not None and landsat_time is not None:
        gap = round((landsat_time - s2_time).total_seconds() / 86400.0, 3)
        if abs(gap) > THERMAL_GAP_WARNING_DAYS:
            warnings.append(
                f"the thermal Landsat product was acquired {abs(gap):.1f} days "
                f"{'after' if gap > 0 else 'before'} the Sentinel-2 scene: surface "
                "temperatures may have changed in between"
            )
    if coverage < 1.0:
        warnings.append(
            f"the thermal Landsat product gives no LST for {100 * (1 - coverage):.1f}% of the "
            "scene (its clouds, no data or edge): those pixels are masked"
        )
    files = {"MTL": product.mtl, **product.files}
    info = {
        "product_id": product.meta.product_id,
        "spacecraft": product.meta.spacecraft,
        "processing_level": product.meta.processing_level,
        "acquired": product.meta.acquired,
        "date_gap_days": abs(gap) if gap is not None else None,
        "landsat_minus_sentinel2_days": gap,
        "lst_source": "Level-2 ST_B10" if product.thermal == "st" else "computed from band 10",
        "lst": derived.record.get("lst"),
        "landsat_masked_fraction": derived.record["masked_fraction"],
        "window": {
            "col_off": int(window.col_off),
            "row_off": int(window.row_off),
            "width": int(window.width),
            "height": int(window.height),
        },
        "resampling": f"bilinear {abs(product.grid.transform.a):g} m -> "
        f"{abs(grid.transform.a):g} m",
        "coverage": round(coverage, 6),
        "files": {
            role: {"name": path.name, "sha256": landsat_product.file_sha256(path)}
            for role, path in files.items()
        },
    }
    return lst, info, warnings


def _file_record(href: str) -> dict[str, str]:
    path = Path(href)
    if path.is_file():
        return {"name": path.name, "sha256": landsat_product.file_sha256(path)}
    return {"href": href}


def import_product(
    product: S2Product,
    out_dir: Path,
    *,
    lineage: dict[str, Any],
    inputs: list[Path],
    thermal: Path | None = None,
    dem: Path | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    bbox_crs: str = "EPSG:4326",
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """An opened Sentinel-2 product → a scene folder; ``lineage`` joins the manifest's source.

    ``lineage`` must hold ``acquired`` (ISO 8601) for the thermal date gap.
    """
    _refuse_unsafe_output(out_dir, overwrite, [*inputs, *[p for p in (thermal, dem) if p]])
    with status_line(progress, "importing Sentinel-2 product") as say:
        grid, window = product.grid, None
        if bbox is not None:
            crs = landsat_product.parse_crs(bbox_crs, product.grid.crs)
            window = landsat_product.bbox_window(product.grid, bbox, crs)
            grid = landsat_product.window_grid(product.grid, window)
        lst_c: np.ndarray | None = None
        warnings: list[str] = []
        source: dict[str, Any] = {"product_id": product.name, **lineage, **product.record}
        if thermal is not None:
            say("land-surface temperature from Landsat")
            lst_c, source["thermal"], warnings = landsat_thermal(
                thermal, grid, lineage.get("acquired")
            )
            source["lst_source"] = f"Landsat {source['thermal']['product_id']}"
        else:
            warnings.append(NO_LST)
            source["lst_source"] = "none"
        dem_layer, dem_info = _dem(dem, grid)
        names = [*BANDS, *(["lst"] if lst_c is not None else []), "clear"]
        units = _units("Level-2A surface reflectance", [*names, *(["dem"] if dem else [])])
        with raster_io.atomic_directory(Path(out_dir), overwrite=overwrite) as tmp:
            written = _write_strips(
                tmp, product, window, grid, lst_c, {n: _layer_tags(n, units[n]) for n in names}, say
            )
            source |= {
                "notes": list(warnings),
                "warnings": warnings,
                "files": {role: _file_record(href) for role, href in product.files.items()},
                **written.record,
            }
            source["masked_fraction"] = round(1.0 - written.clear_pixels / written.pixels, 6)
            source |= area_record(bbox, bbox_crs, window, grid, dem_info)
            return finish_strip_import(
                tmp,
                Path(out_dir),
                name=product.name,
                kind="sentinel2",
                grid=grid,
                units=units,
                source=source,
                clear_pixels=written.clear_pixels,
                lst=written.lst,
                dem_layer=dem_layer,
            )


def _write_strips(
    folder: Path,
    product: S2Product,
    window: Window | None,
    grid: Grid,
    lst_c: np.ndarray | None,
    layer_tags: dict[str, dict[str, str]],
    say: Callable[[str], None],
) -> StripsWritten:
    """Each strip of the 10 m grid read (20 m bands resampled), masked and written."""
    row_off = int(window.row_off) if window is not None else 0
    col_off = int(window.col_off) if window is not None else 0

    def derive(r0: int, r1: int) -> StripLayers:
        strip = Window(col_off, row_off + r0, grid.width, r1 - r0)
        pixels, methods = sentinel2_product.read_pixels(product, strip)
        derived = derive_layers(pixels, product.scaling, resampling=methods)
        clear, rows, lst_rows = derived.clear, {}, None
        if lst_c is not None:
            clear = clear & np.isfinite(lst_c[r0:r1])
            lst_rows = np.where(clear, lst_c[r0:r1], np.float32(np.nan)).astype(np.float32)
            rows["lst"] = lst_rows
        for name in BANDS:
            reflectance = np.where(clear, derived.reflectance[name], np.nan)
            rows[name] = to_scaled_reflectance_or_nodata(reflectance)
        return StripLayers(rows, clear, lst_rows, derived.tally, derived.record)

    return write_strips(folder, grid, layer_tags, derive, say, doing="reading, masking and writing")


def import_sentinel2(
    product_dir: Path,
    out_dir: Path,
    *,
    thermal: Path | None = None,
    dem: Path | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    bbox_crs: str = "EPSG:4326",
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """A Sentinel-2 L2A SAFE folder (+ optional Landsat thermal and DEM) → a scene folder."""
    _refuse_unsafe_output(out_dir, overwrite, [Path(product_dir)])
    product = sentinel2_product.open_safe(Path(product_dir))
    meta = product.meta
    assert meta is not None
    lineage = {
        "spacecraft": meta.spacecraft,
        "processing_level": meta.processing_level,
        "acquired": meta.sensing_start,
        "footprint": footprint_geojson(meta.footprint),
    }
    return import_product(
        product,
        out_dir,
        lineage=lineage,
        inputs=[Path(product_dir)],
        thermal=thermal,
        dem=dem,
        bbox=bbox,
        bbox_crs=bbox_crs,
        overwrite=overwrite,
        progress=progress,
    )
