"""Scenes on disk: generate a synthetic city folder, turn a scene into a cell table.

``generate_scene`` = pure generator (:mod:`terraops.domain.scene`) + atomic
folder write (:mod:`terraops.adapters.raster_io`). ``scene_cell_table``
reads the layers back and runs the one feature implementation
(:mod:`terraops.domain.features`) plus the flood model for every design
storm; the result is cached as parquet inside the scene folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rasterio.transform import Affine

from terraops.adapters import raster_io
from terraops.domain import features
from terraops.domain.hydrology import DESIGN_STORMS_MM, RiverInflow, build_flood_model
from terraops.domain.landcover import LANDCOVER_LEGEND, classify_spectral
from terraops.domain.scene.generator import (
    REFLECTANCE_NODATA,
    REFLECTANCE_SCALE,
    GeneratedScene,
    generate,
    physics_block,
)
from terraops.domain.scene.spec import GENERATOR_VERSION, SceneSpec
from terraops.domain.scene.spectra import BANDS
from terraops.errors import InvalidInputError
from terraops.pipelines.progress import status_line

log = logging.getLogger(__name__)

LAYER_UNITS: dict[str, str] = {
    **{b: f"surface reflectance x {REFLECTANCE_SCALE}" for b in BANDS},
    "dem": "m",
    "landcover": "class code",
    "lst": "degC",
    "flood_depth": "m",
}


def _transform(scene: GeneratedScene) -> Affine:
    res = scene.spec.resolution
    return Affine(res, 0.0, scene.origin[0], 0.0, -res, scene.origin[1])


def build_manifest(scene: GeneratedScene) -> dict[str, Any]:
    """The ``scene.json`` content (deterministic: no timestamps, no paths)."""
    spec = scene.spec
    t = _transform(scene)
    extent = spec.size * spec.resolution
    x0, y0 = scene.origin
    return {
        "name": spec.name,
        "crs": f"EPSG:{scene.epsg}",
        "resolution": spec.resolution,
        "width": spec.size,
        "height": spec.size,
        "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "bounds": [x0, y0 - extent, x0 + extent, y0],
        "seed": spec.seed,
        "morphology": spec.morphology,
        "rainfall_mm": spec.rainfall_mm,
        "generator_version": GENERATOR_VERSION,
        "reflectance": {
            "bands": list(BANDS),
            "scale": 1.0 / REFLECTANCE_SCALE,
            "offset": 0.0,
            "nodata": REFLECTANCE_NODATA,
        },
        "layers": {name: f"{name}.tif" for name in scene.layers},
        "units": {name: LAYER_UNITS[name] for name in scene.layers},
        "landcover_legend": {str(k): v for k, v in LANDCOVER_LEGEND.items()},
        "physics": physics_block(scene),
        "stats": scene.stats,
    }


def _write_layers(folder: Path, scene: GeneratedScene) -> None:
    t = _transform(scene)
    for name, array in scene.layers.items():
        if name in BANDS:
            nodata: float | None = REFLECTANCE_NODATA
            scale: float | None = 1.0 / REFLECTANCE_SCALE
        else:
            nodata = 0 if name == "landcover" else float("nan")
            scale = None
        raster_io.write_geotiff(
            folder / f"{name}.tif",
            array,
            epsg=scene.epsg,
            transform=t,
            nodata=nodata,
            description=name,
            scale=scale,
            offset=0.0 if scale else None,
            tags={"terraops_layer": name, "unit": LAYER_UNITS[name]},
        )


def generate_scene(
    out_dir: Path,
    *,
    seed: int,
    size: int = 1024,
    resolution: float = 2.0,
    morphology: str = "dense",
    rainfall_mm: float = 50.0,
    reference_temperature_c: float | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Generate one synthetic city into ``out_dir`` (atomically) and return its manifest."""
    spec = SceneSpec(
        seed=seed,
        size=size,
        resolution=resolution,
        morphology=morphology,
        rainfall_mm=rainfall_mm,
        reference_temperature_c=reference_temperature_c,
    )
    with (
        raster_io.atomic_directory(Path(out_dir), overwrite=overwrite) as tmp,
        status_line(progress, "generating scene") as say,
    ):
        scene = generate(spec, progress=say)
        say("writing GeoTIFFs")
        _write_layers(tmp, scene)
        manifest = build_manifest(scene)
        raster_io.write_manifest(tmp, manifest)
    return manifest


# --------------------------------------------------------------------------- cell tables
def _cache_path(scene_dir: Path, manifest: dict[str, Any], cell_size_m: float) -> Path:
    """Cache file name: changes with the cell size, the scene's generator and the features."""
    version = manifest.get("generator_version", GENERATOR_VERSION)
    return scene_dir / f"cells_{cell_size_m:g}m_g{version}_f{features.FEATURES_VERSION}.parquet"


def scene_cell_table(scene_dir: Path, cell_size_m: float = 20.0) -> pd.DataFrame:
    """One row per complete cell: ids, features and targets (see the team contract).

    Cached inside the scene folder, keyed by cell size and generator version;
    a read-only scene folder simply is not cached.
    """
    cached = ensure_cell_table(scene_dir, cell_size_m)
    return pd.read_parquet(cached) if isinstance(cached, Path) else cached


def ensure_cell_table(scene_dir: Path, cell_size_m: float = 20.0) -> Path | pd.DataFrame:
    """The cached cell table's parquet path, built first if needed.

    Returns the table itself only when it cannot be cached (read-only scene).
    """
    scene_dir = Path(scene_dir)
    if not (cell_size_m > 0 and np.isfinite(cell_size_m)):
        raise InvalidInputError(f"cell size must be > 0 m, got {cell_size_m}")
    manifest = raster_io.read_manifest(scene_dir)
    cache = _cache_path(scene_dir, manifest, cell_size_m)
    if cache.is_file():
        return cache
    table = _build_cell_table(scene_dir, manifest, cell_size_m)
    try:
        raster_io.write_parquet_atomic(table, cache, row_group_rows=CELL_TABLE_ROW_GROUP)
    except OSError as exc:
        log.warning("could not cache cell table at %s: %s", cache, exc)
        return table
    return cache


CELL_TABLE_ROW_GROUP = 16_384
"""Rows per parquet row group of a cached cell table: what a streaming reader holds."""


def iter_cell_table(
    scene_dir: Path, cell_size_m: float = 20.0, *, batch_rows: int = CELL_TABLE_ROW_GROUP
) -> Iterator[pd.DataFrame]:
    """The scene's cell table in row-ordered batches (memory bounded by ``batch_rows``).

    The same table training uses (same cache, same feature code); a consumer
    that maps cells to pixels never needs the whole table at once.
    """
    import pyarrow.parquet as pq

    cached = ensure_cell_table(scene_dir, cell_size_m)
    if isinstance(cached, pd.DataFrame):
        for start in range(0, len(cached), batch_rows):
            yield cached.iloc[start : start + batch_rows]
        return
    parquet = pq.ParquetFile(cached)
    for batch in parquet.iter_batches(batch_size=batch_rows):
        yield batch.to_pandas()


def _build_cell_table(
    scene_dir: Path, manifest: dict[str, Any], cell_size_m: float
) -> pd.DataFrame:
    _, layers = raster_io.read_scene_layers(scene_dir)
    scale = float(manifest["reflectance"]["scale"])
    nodata = manifest["reflectance"]["nodata"]
    bands = {
        b: np.where(layers[b] == nodata, np.nan, layers[b].astype(np.float64) * scale)
        for b in BANDS
    }
    landcover = layers["landcover"]
    dem = layers["dem"].astype(np.float64)
    resolution = float(manifest["resolution"])
    inflow_info = manifest.get("physics", {}).get("river_inflow")
    inflow = RiverInflow(**inflow_info) if inflow_info else None
    flood = build_flood_model(dem, landcover, resolution, inflow=inflow)
    origin = (float(manifest["transform"][2]), float(manifest["transform"][5]))
    table, grid, keep = features.cell_feature_table(
        bands=bands,
        landcover=landcover,
        resolution=resolution,
        cell_size_m=cell_size_m,
        origin=origin,
        terrain=features.TerrainLayers(
            dem=dem,
            hand=flood.hand,
            drainage=flood.drainage,
            upstream_km2=flood.upstream_km2,
            drainage_upstream_km2=flood.drainage_upstream_km2,
            drainage_curve_number=flood.drainage_curve_number,
            depression_depth=flood.fill_depth,
        ),
    )
    table.insert(0, "scene", str(manifest["name"]))
    table["reference_temperature"] = float(manifest["physics"]["lst_reference_c"])
    table["lst"] = features.cell_mean(grid, layers["lst"])[keep]
    table["flood_depth"] = features.cell_mean(grid, layers["flood_depth"])[keep]
    for storm in DESIGN_STORMS_MM:
        depth, frac = features.flood_cell_targets(grid, flood.depth(float(storm)))
        table[f"flood_depth_p{storm}"] = depth[keep]
        table[f"flood_frac_p{storm}"] = frac[keep]
    return table


def geotiff_cell_table(
    path: Path,
    *,
    cell_size_m: float = 20.0,
    band_order: list[str] | None = None,
) -> pd.DataFrame:
    """Features of a user's multiband GeoTIFF (no targets, no terrain features).

    Without a land-cover layer the classes come from a spectral
    classification (water by NDWI, vegetation by NDVI, built-up by NDBI).
    """
    image = raster_io.read_multiband_geotiff(Path(path), band_order=band_order)
    log.warning(
        "%s has no land-cover layer: land-cover features come from a spectral classification "
        "(NDWI water, NDVI vegetation, NDBI built-up); roads count as buildings",
        path,
    )
    b = image.bands
    landcover = classify_spectral(green=b["green"], red=b["red"], nir=b["nir"], swir=b["swir"])
    table, _, _ = features.cell_feature_table(
        bands=b,
        landcover=landcover,
        resolution=image.resolution,
        cell_size_m=cell_size_m,
        origin=image.origin,
    )
    table.insert(0, "scene", Path(path).stem)
    table["reference_temperature"] = np.nan  # unknown for a user's image
    return table
