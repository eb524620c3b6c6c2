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
everything is written; the Landsat LST, when given, is staged and cut into the
same strips (:mod:`terraops.pipelines.scenes.landsat_thermal`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from terraops.adapters import landsat_product, raster_io, sentinel2_product
from terraops.adapters.landsat_product import Grid
from terraops.adapters.sentinel2_product import S2Product
from terraops.domain.scene.generator import to_scaled_reflectance_or_nodata
from terraops.domain.scene.spectra import BANDS
from terraops.domain.sentinel2.product import derive_layers, footprint_geojson
from terraops.pipelines.progress import status_line
from terraops.pipelines.scenes.importing import (
    _dem,
    _layer_tags,
    _refuse_unsafe_output,
    _units,
    area_record,
    finish_strip_import,
)
from terraops.pipelines.scenes.landsat_thermal import StagedThermal, open_thermal, stage_thermal
from terraops.pipelines.scenes.scene_strips import StripLayers, StripsWritten, write_strips

log = logging.getLogger(__name__)

NO_LST = (
    "no land-surface temperature: Sentinel-2 has no thermal band; pass --thermal with a "
    "Landsat 8/9 product of a near date to add one (the scene can be mapped, not trained on)"
)


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
        warnings: list[str] = []
        source: dict[str, Any] = {"product_id": product.name, **lineage, **product.record}
        thermal_source = open_thermal(thermal, grid) if thermal is not None else None
        dem_layer, dem_info = _dem(dem, grid)
        names = [*BANDS, *(["lst"] if thermal is not None else []), "clear"]
        units = _units("Level-2A surface reflectance", [*names, *(["dem"] if dem else [])])
        with raster_io.atomic_directory(Path(out_dir), overwrite=overwrite) as tmp:
            staged = None
            if thermal_source is not None:
                say("land-surface temperature from Landsat")
                staged, warnings = stage_thermal(
                    thermal_source, tmp, grid, lineage.get("acquired"), say
                )
                source["lst_source"] = f"Landsat {staged.info['product_id']}"
            else:
                warnings.append(NO_LST)
                source["lst_source"] = "none"
            tags = {n: _layer_tags(n, units[n]) for n in names}
            written = _write_strips(tmp, product, window, grid, staged, tags, say)
            if staged is not None:
                warnings += staged.finish()
                source["thermal"] = staged.info
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
    thermal: StagedThermal | None,
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
        if thermal is not None:
            lst_c = thermal.rows(grid, r0, r1)
            clear = clear & np.isfinite(lst_c)
            lst_rows = np.where(clear, lst_c, np.float32(np.nan)).astype(np.float32)
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
