"""Scene folder → cell table: the one feature path for training, maps and imported cities.

Every scene — a synthetic city, an imported Landsat product, a user's GeoTIFF
— goes through :func:`build_cell_table`, and its features come from what a
real city can give: the reflectance bands, the land cover *classified from
them* (the segmentation champion when one is registered, else the spectral
rules: :mod:`terraops.pipelines.scenes.landcover_source`), the DEM when
there is one, and a rural reference temperature measured on the scene's own
thermal layer. A synthetic scene's true land cover and constants are never
inputs; its truth only makes the targets (LST, flood depth per design storm).

The table is cached as parquet inside the scene folder (keyed by cell size,
generator and feature versions, and the land-cover source and model version)
and can be streamed in row groups.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from terraops.adapters import raster_io, tables
from terraops.domain import features
from terraops.domain.hydrology import DESIGN_STORMS_MM, RiverInflow, build_flood_model
from terraops.domain.rural_reference import rural_reference
from terraops.domain.scene_record import Scene
from terraops.errors import InvalidInputError
from terraops.pipelines.scenes.hydrology_cache import river_inflow, terrain_from
from terraops.pipelines.scenes.landcover_source import SPECTRAL, LandcoverSource
from terraops.pipelines.scenes.windowed_cells import (
    CELL_TABLE_ROW_GROUP,
    Progress,
    write_cell_table,
)

log = logging.getLogger(__name__)


def _cache_path(scene: Scene, cell_size_m: float, suffix: str = "") -> Path:
    """Cache file name: changes with the cell size, the scene's generator and the features.

    ``suffix`` names the land-cover source (``LandcoverSource.cache_suffix``: empty
    for the spectral rules, the model version for a segmentation model).
    """
    version = scene.cache_version
    name = f"cells_{cell_size_m:g}m_g{version}_f{features.FEATURES_VERSION}{suffix}.parquet"
    return scene.folder / name


def cached_cell_table(scene: Scene, cell_size_m: float = 20.0, suffix: str = "") -> Path | None:
    """The scene's cached cell table when it is already built, else None (builds nothing).

    What a scheduler asks first, so that only missing tables become work
    (:mod:`terraops.pipelines.scenes.distributed`); ``suffix`` as in :func:`_cache_path`.
    """
    cache = _cache_path(scene, cell_size_m, suffix)
    return cache if cache.is_file() else None


def scene_cell_table(
    scene: Scene, cell_size_m: float = 20.0, *, landcover: LandcoverSource | None = None
) -> pd.DataFrame:
    """One row per complete cell: ids, features and the targets the scene has.

    Cached inside the scene folder; a read-only scene folder simply is not cached.
    """
    cached = ensure_cell_table(scene, cell_size_m, landcover=landcover)
    return tables.read_parquet_table(cached) if isinstance(cached, Path) else cached


def ensure_cell_table(
    scene: Scene,
    cell_size_m: float = 20.0,
    *,
    landcover: LandcoverSource | None = None,
    progress: Progress | None = None,
) -> Path | pd.DataFrame:
    """The cached cell table's parquet path, built first if needed.

    It is built window by window straight into the cache
    (:func:`terraops.pipelines.scenes.windowed_cells.write_cell_table`: memory
    bounded by the window, whatever the scene's size). Returns the table itself
    only when it cannot be cached (read-only scene: built whole, in memory).
    """
    if not (cell_size_m > 0 and np.isfinite(cell_size_m)):
        raise InvalidInputError(f"cell size must be > 0 m, got {cell_size_m}")
    landcover = landcover or SPECTRAL
    cache = _cache_path(scene, cell_size_m, landcover.cache_suffix)
    if cache.is_file():
        return cache
    try:
        return write_cell_table(scene, cell_size_m, cache, landcover=landcover, progress=progress)
    except OSError as exc:
        log.warning("could not cache cell table at %s: %s", cache, exc)
    return build_cell_table(scene, cell_size_m, landcover=landcover)


def iter_cell_table(
    scene: Scene,
    cell_size_m: float = 20.0,
    *,
    batch_rows: int = CELL_TABLE_ROW_GROUP,
    landcover: LandcoverSource | None = None,
) -> Iterator[pd.DataFrame]:
    """The scene's cell table in row-ordered batches (memory bounded by ``batch_rows``).

    The same table training uses (same cache, same feature code); a consumer
    that maps cells to pixels never needs the whole table at once.
    """
    cached = ensure_cell_table(scene, cell_size_m, landcover=landcover)
    if isinstance(cached, pd.DataFrame):
        for start in range(0, len(cached), batch_rows):
            yield cached.iloc[start : start + batch_rows]
        return
    yield from tables.iter_parquet_batches(cached, batch_rows)


# --------------------------------------------------------------------------- building
@dataclass(frozen=True)
class SceneInputs:
    """What a scene's features are computed from: its *observed* inputs only.

    Reflectance bands (0–1, NaN = no data), the land cover classified from
    them, the DEM when there is one, and the river entering from outside. A
    what-if (:mod:`terraops.pipelines.whatif`) edits exactly these — the
    bands and the land cover — and hands them back to
    :func:`cell_features_from_inputs`, so its features come from the same code
    as the training table's.
    """

    bands: Mapping[str, np.ndarray]
    landcover: np.ndarray
    dem: np.ndarray | None
    resolution: float
    origin: tuple[float, float]
    inflow: RiverInflow | None = None

    def window(self, rows: slice, cols: slice) -> SceneInputs:
        """The inputs of a pixel window (its origin moved to the window's top-left)."""
        x0, y0 = self.origin
        return replace(
            self,
            bands={b: v[rows, cols] for b, v in self.bands.items()},
            landcover=self.landcover[rows, cols],
            dem=None if self.dem is None else self.dem[rows, cols],
            origin=(
                x0 + (cols.start or 0) * self.resolution,
                y0 - (rows.start or 0) * self.resolution,
            ),
        )


@dataclass(frozen=True)
class CellFeatures:
    """Feature table of the complete cells, their grid and mask, and the flood model built."""

    table: pd.DataFrame
    grid: features.CellGrid
    keep: np.ndarray
    flood: Any | None


def observed_inputs(
    scene: Scene, layers: Mapping[str, np.ndarray], landcover: LandcoverSource
) -> SceneInputs:
    """The scene's observed inputs: its bands, the land cover ``landcover`` classifies, its DEM."""
    bands = features.reflectance_bands(scene, layers)
    return SceneInputs(
        bands=bands,
        landcover=landcover.for_resolution(float(scene.resolution)).classify(bands),
        dem=layers["dem"].astype(np.float64) if "dem" in layers else None,
        resolution=float(scene.resolution),
        origin=scene.origin,
        inflow=river_inflow(scene),
    )


def terrain_without_flow(dem: np.ndarray) -> features.TerrainLayers:
    """Terrain of a DEM *window*: elevation and slope only, the flow layers NaN.

    Drainage is global (a pixel's channel may start far outside any window), so
    a window cannot know it; callers that use flow features build them on the
    whole scene (``hydrology=True``).
    """
    nan = np.full(dem.shape, np.nan)
    return features.TerrainLayers(dem, nan, np.zeros(dem.shape, bool), nan, nan, nan, nan)


def cell_features_from_inputs(
    inputs: SceneInputs, cell_size_m: float, *, hydrology: bool = True
) -> CellFeatures:
    """Cell features of observed (or edited) inputs: the one feature path.

    With a DEM and ``hydrology``, the flood model is built on ``inputs.landcover``
    (curve numbers, the drainage's catchment CN) so an edited land cover moves
    the hydrology features too; without ``hydrology`` only elevation and slope
    come from the DEM (a window, see :func:`terrain_without_flow`).
    """
    flood = None
    terrain = None
    if inputs.dem is not None and hydrology:
        flood = build_flood_model(
            inputs.dem, inputs.landcover, inputs.resolution, inflow=inputs.inflow
        )
        terrain = terrain_from(flood)
    elif inputs.dem is not None:
        terrain = terrain_without_flow(inputs.dem)
    table, grid, keep = features.cell_feature_table(
        bands=inputs.bands,
        landcover=inputs.landcover,
        resolution=inputs.resolution,
        cell_size_m=cell_size_m,
        origin=inputs.origin,
        terrain=terrain,
    )
    return CellFeatures(table, grid, keep, flood)


def build_cell_table(
    scene: Scene, cell_size_m: float = 20.0, *, landcover: LandcoverSource | None = None
) -> pd.DataFrame:
    """Features (from imagery and DEM only) and the scene's targets, one row per cell.

    The observed land cover comes from ``landcover`` (default: the spectral
    rules; :func:`terraops.pipelines.scenes.landcover_source.resolve_landcover_source`
    picks the segmentation champion when there is one; ``auto`` keeps the rules
    on pixels coarser than the U-Net resolves). Which source and model
    version made it is kept in ``table.attrs["landcover"]`` (stored in the
    cached parquet's metadata too).
    """
    layers = raster_io.read_layers(scene)
    landcover = (landcover or SPECTRAL).for_resolution(float(scene.resolution))
    inputs = observed_inputs(scene, layers, landcover)
    cells = cell_features_from_inputs(inputs, cell_size_m)
    table, grid, keep = cells.table, cells.grid, cells.keep
    table.insert(0, "scene", scene.name)
    lst = features.cell_mean(grid, layers["lst"])[keep] if "lst" in layers else None
    table["reference_temperature"] = observed_reference_temperature(table, lst)
    if lst is not None:
        table["lst"] = lst
    if "landcover" in layers and inputs.dem is not None:
        _add_flood_targets(table, grid, keep, layers, inputs.dem, inputs.resolution, inputs.inflow)
    table.attrs["landcover"] = landcover.lineage
    return table


def observed_reference_temperature(table: pd.DataFrame, lst: np.ndarray | None) -> float:
    """The day's rural background LST as measured on the scene itself (°C), NaN without LST.

    The heat island is relative to it (Peng et al. 2012), so the models take it
    as an input — but only as a statistic anyone can compute from a thermal
    image: :func:`terraops.domain.mapping.rural_reference` over the cells
    (median LST of the vegetated cells with the least sealed surroundings), the same
    rule the heat-island intensity map uses. Never the generator's constant.
    """
    if lst is None or not np.isfinite(lst).any():
        return float("nan")
    value, _method = rural_reference(
        lst,
        table["imperviousness_500m"].to_numpy(np.float64),
        table["ndvi"].to_numpy(np.float64),
        table["water_fraction"].to_numpy(np.float64),
    )
    return value


def _add_flood_targets(
    table: pd.DataFrame,
    grid: features.CellGrid,
    keep: np.ndarray,
    layers: Mapping[str, np.ndarray],
    dem: np.ndarray,
    resolution: float,
    inflow: RiverInflow | None,
) -> None:
    """Flood depth per design storm from the *true* land cover (targets, not features)."""
    truth = build_flood_model(dem, layers["landcover"], resolution, inflow=inflow)
    if "flood_depth" in layers:
        table["flood_depth"] = features.cell_mean(grid, layers["flood_depth"])[keep]
    for storm in DESIGN_STORMS_MM:
        depth, frac = features.flood_cell_targets(grid, truth.depth(float(storm)))
        table[f"flood_depth_p{storm}"] = depth[keep]
        table[f"flood_frac_p{storm}"] = frac[keep]
