"""Scene folder → cell table parquet, window by window, in memory bounded by the window.

:func:`terraops.pipelines.scenes.cell_tables.build_cell_table` computes the
features on whole arrays (about 100 bytes per pixel at its peak). This module
makes the same table — the same rows, columns and values, which the tests check
bit for bit — while holding only:

- per pixel of the scene, 1 byte of land cover and 1 bit of validity (kept
  from the first pass so the second neither classifies again nor reads the
  halo's bands);
- the hydrology grid (:class:`terraops.domain.hydrology.CatchmentModel`, at
  most 256² cells whatever the scene's size), built once per scene and land
  cover and cached in the scene folder;
- one window of pixel rows and its feature temporaries (:data:`WINDOW_PIXELS`),
  plus the rows the window's neighbourhood features and distances reach
  (:mod:`terraops.domain.windowed`: 1 byte a pixel for the mask rows);
- one float per vegetated cell while the rural reference temperature (a
  quantile and a median over the whole scene) is read back from the staged
  table.

Pass 1 reads the bands by windows, classifies them and reduces DEM and land
cover to the hydrology grid; two light sweeps find the rural reference
temperature (a column of every row, and a statistic of the whole scene); the
last pass reads the layers again by windows and writes each window's cells as
soon as they are computed, into a staging file that becomes the cache only
when complete, so a reader never sees a half-built table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from terraops.adapters import raster_io, tables
from terraops.domain import features
from terraops.domain import rural_reference as rural
from terraops.domain.bands import REFLECTANCE_BANDS
from terraops.domain.hydrology import DESIGN_STORMS_MM, CatchmentModel, catchment_model
from terraops.domain.hydrology_grid import HydroBlocks, hydro_blocks, hydro_factor, upsample_nearest
from terraops.domain.landcover import NODATA_CODE, LandCover
from terraops.domain.scene_record import Scene
from terraops.domain.windowed import (
    centre_distances,
    distance_reach_rows,
    focal_halo_cells,
    neighbourhood_window,
)
from terraops.pipelines.scenes import hydrology_cache
from terraops.pipelines.scenes.hydrology_cache import river_inflow, terrain_from
from terraops.pipelines.scenes.landcover_source import SPECTRAL, LandcoverSource

log = logging.getLogger(__name__)

CELL_TABLE_ROW_GROUP = 16_384
"""Rows per parquet row group of a cached cell table: what a streaming reader holds."""

WINDOW_PIXELS = 1 << 19
"""Pixels per window (~0.5 M: about 100 MB of pixel temporaries)."""

WINDOW_CELLS = 1 << 17
"""Cells per window (~130 k: the window's feature table, ~1 kB a cell at its peak)."""


def _cell_rows_per_window(scene: Scene, grid: features.CellGrid) -> int:
    by_pixels = WINDOW_PIXELS // (scene.width * grid.factor)
    return max(1, min(by_pixels, WINDOW_CELLS // grid.cols))


Progress = Callable[[str, int, int], None]
"""``progress(step, done, total)``: called after each window."""


@dataclass
class _Pass1:
    """What the first pass keeps of the whole scene."""

    landcover: np.ndarray  # (H, W) uint8, the classified land cover
    valid_bits: np.ndarray  # (H, ceil(W/8)) packed: every band finite
    observed: HydroBlocks | None
    truth: HydroBlocks | None


def _bands(scene: Scene, reader: raster_io.LayerRows, r0: int, r1: int) -> dict[str, np.ndarray]:
    raw = {b: reader.read(b, r0, r1) for b in REFLECTANCE_BANDS}
    return features.reflectance_bands(scene, raw)


def _row_windows(total: int, step: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, step):
        yield start, min(total, start + step)


def _first_pass(
    scene: Scene,
    reader: raster_io.LayerRows,
    landcover: LandcoverSource,
    hydro_f: int,
    progress: Progress,
) -> _Pass1:
    """Classify by windows; reduce DEM and land covers to the hydrology grid."""
    height, width = scene.height, scene.width
    has_dem, has_truth = scene.has_layer("dem"), scene.has_layer("landcover")
    step = hydro_f * max(1, WINDOW_PIXELS // (width * hydro_f))
    classes = np.empty((height, width), np.uint8)
    valid_bits = np.empty((height, -(-width // 8)), np.uint8)
    whole = None
    if landcover.kind != "spectral":
        # A segmentation model blends overlapping tiles: its labels depend on the
        # whole image, so it classifies once, whole (finer than 1 m: small scenes).
        whole = landcover.classify(_bands(scene, reader, 0, height))
    observed: list[HydroBlocks] = []
    truth: list[HydroBlocks] = []
    windows = list(_row_windows(height, step))
    for done, (r0, r1) in enumerate(windows, 1):
        bands = _bands(scene, reader, r0, r1)
        lc = whole[r0:r1] if whole is not None else landcover.classify(bands)
        classes[r0:r1] = lc
        valid_bits[r0:r1] = np.packbits(features.valid_pixels(bands, None), axis=1)
        if has_dem:
            dem = reader.read("dem", r0, r1).astype(np.float64)
            observed.append(hydro_blocks(dem, lc, hydro_f))
            if has_truth:
                truth.append(hydro_blocks(dem, reader.read("landcover", r0, r1), hydro_f))
        progress("classifying", done, len(windows))
    return _Pass1(
        classes,
        valid_bits,
        HydroBlocks.stack(observed) if observed else None,
        HydroBlocks.stack(truth) if truth else None,
    )


def _valid(first: _Pass1, r0: int, r1: int, width: int) -> np.ndarray:
    bits = np.unpackbits(first.valid_bits[r0:r1], axis=1, count=width).astype(bool)
    valid: np.ndarray = bits & (first.landcover[r0:r1] != NODATA_CODE)
    return valid


def _sub_grid(grid: features.CellGrid, rows: int) -> features.CellGrid:
    return features.CellGrid(grid.factor, rows, grid.cols, grid.resolution)


def _focal_sources(
    grid: features.CellGrid, landcover: np.ndarray, valid: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The neighbourhood sources of cell rows from the land cover alone (and their keep).

    The same expressions as :func:`terraops.domain.features.spectral_cell_features`
    (the equality tests hold the two together).
    """
    built = landcover == int(LandCover.BUILDING)
    road = landcover == int(LandCover.ROAD)
    sources = {
        "imperviousness": features.cell_mean(grid, built | road),
        "tree_cover": features.cell_mean(grid, landcover == int(LandCover.TREE)),
    }
    return sources, features.complete_cells(grid, valid)


def _focal_bounds(
    grid: features.CellGrid, first: _Pass1, width: int
) -> dict[str, tuple[float, float]] | None:
    """Each neighbourhood source's [min, max] over the scene's complete cells."""
    f = grid.factor
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    step = max(1, WINDOW_PIXELS // (width * f))
    for a, b in _row_windows(grid.rows, step):
        sub = _sub_grid(grid, b - a)
        sources, keep = _focal_sources(
            sub, first.landcover[a * f : b * f], _valid(first, a * f, b * f, width)
        )
        if not keep.any():
            continue
        for name, values in sources.items():
            lo[name] = min(lo.get(name, np.inf), float(values[keep].min()))
            hi[name] = max(hi.get(name, -np.inf), float(values[keep].max()))
    if not lo:
        return None
    return {name: (lo[name], hi[name]) for name in lo}


@dataclass(frozen=True)
class _Plan:
    """Everything a window of cell rows needs besides its own pixels."""

    scene: Scene
    grid: features.CellGrid
    first: _Pass1
    bounds: dict[str, tuple[float, float]] | None
    observed: CatchmentModel | None
    truth: CatchmentModel | None


def _distances(
    plan: _Plan, mask_rows: Callable[[int, int], np.ndarray], a: int, b: int
) -> np.ndarray:
    """Capped distance from the centre pixels of cell rows a … b-1 to a mask's pixels."""
    grid, height = plan.grid, plan.scene.height
    f, half = grid.factor, grid.factor // 2
    reach = distance_reach_rows(grid.resolution)
    m0, m1 = max(0, a * f - reach), min(height, b * f + reach)
    rows = np.arange(a, b) * f + half - m0
    cols = np.arange(grid.cols) * f + half
    return centre_distances(mask_rows(m0, m1), rows, cols, grid.resolution)


def _focal(plan: _Plan, a: int, b: int) -> dict[str, np.ndarray]:
    """The neighbourhood features of cell rows a … b-1, from the stored land cover."""
    grid, first, width = plan.grid, plan.first, plan.scene.width
    f, halo = grid.factor, focal_halo_cells(grid.cell_size)
    h0, h1 = max(0, a - halo), min(grid.rows, b + halo)
    lc = first.landcover[h0 * f : h1 * f]
    sources, keep = _focal_sources(
        _sub_grid(grid, h1 - h0), lc, _valid(first, h0 * f, h1 * f, width)
    )
    interior = slice(a - h0, a - h0 + (b - a))
    return neighbourhood_window(grid, sources, keep, interior, plan.bounds)


def _window_features(
    plan: _Plan, reader: raster_io.LayerRows, a: int, b: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every cell feature of cell rows a … b-1, and which of them are complete."""
    grid, first, width = plan.grid, plan.first, plan.scene.width
    f = grid.factor
    p0, p1 = a * f, b * f
    sub = _sub_grid(grid, b - a)
    lc = first.landcover[p0:p1]
    keep = features.complete_cells(sub, _valid(first, p0, p1, width))
    feats = features.spectral_cell_features(sub, _bands(plan.scene, reader, p0, p1), lc)
    feats["water_distance"] = _distances(
        plan, lambda m0, m1: first.landcover[m0:m1] == int(LandCover.WATER), a, b
    )
    feats.update(_focal(plan, a, b))
    if plan.observed is None:
        feats.update(
            {name: np.full((b - a, grid.cols), np.nan) for name in features.TERRAIN_FEATURES}
        )
        return feats, keep
    # Slope is a central difference: a cell row above and a pixel row below (the grid
    # crops it) make the window's exact, as the whole DEM's rows past the grid do.
    t0, end = max(0, a - 1), min(plan.scene.height, p1 + 1)
    dem = reader.read("dem", t0 * f, end).astype(np.float64)
    flood = plan.observed.window(t0 * f, dem, first.landcover[t0 * f : end])
    terrain = features.terrain_cell_features(_sub_grid(grid, b - t0), terrain_from(flood))
    inner = slice(a - t0, a - t0 + (b - a))
    feats.update({name: values[inner] for name, values in terrain.items()})
    observed = plan.observed
    feats["river_distance"] = _distances(
        plan,
        lambda m0, m1: upsample_nearest(
            observed.terrain.is_drainage, observed.factor, (m1 - m0, width), m0
        ),
        a,
        b,
    )
    return feats, keep & np.isfinite(feats["elevation"])


def _window_table(plan: _Plan, reader: raster_io.LayerRows, a: int, b: int) -> pd.DataFrame:
    """The cell table rows of cell rows a … b-1 (without the reference temperature)."""
    grid, scene = plan.grid, plan.scene
    feats, keep = _window_features(plan, reader, a, b)
    rows, cols = np.indices((b - a, grid.cols))
    rows = rows + a
    x0, y0 = scene.origin
    # The whole grid's expressions (CellGrid.centres) on the global row numbers.
    x = (x0 + (cols + 0.5) * grid.cell_size).astype(np.float64)
    y = (y0 - (rows + 0.5) * grid.cell_size).astype(np.float64)
    table = pd.DataFrame(
        {
            "row": rows[keep].astype(np.int64),
            "col": cols[keep].astype(np.int64),
            "x": x[keep],
            "y": y[keep],
            **{name: feats[name][keep].astype(np.float64) for name in features.CELL_FEATURES},
        }
    )
    table.insert(0, "scene", scene.name)
    _add_targets(plan, reader, table, keep, a, b)
    return table


def _add_targets(
    plan: _Plan,
    reader: raster_io.LayerRows,
    table: pd.DataFrame,
    keep: np.ndarray,
    a: int,
    b: int,
) -> None:
    """LST and, on a synthetic scene, the flood targets of the window's cells."""
    f, scene = plan.grid.factor, plan.scene
    sub = _sub_grid(plan.grid, b - a)
    if scene.has_layer("lst"):
        table["lst"] = features.cell_mean(sub, reader.read("lst", a * f, b * f))[keep]
    if plan.truth is None:
        return
    if scene.has_layer("flood_depth"):
        depth = reader.read("flood_depth", a * f, b * f)
        table["flood_depth"] = features.cell_mean(sub, depth)[keep]
    dem = reader.read("dem", a * f, b * f).astype(np.float64)
    truth = plan.truth.window(a * f, dem, reader.read("landcover", a * f, b * f))
    for storm in DESIGN_STORMS_MM:
        depth_c, frac = features.flood_cell_targets(sub, truth.depth(float(storm)))
        table[f"flood_depth_p{storm}"] = depth_c[keep]
        table[f"flood_frac_p{storm}"] = frac[keep]


def _rural_columns(
    plan: _Plan, reader: raster_io.LayerRows, a: int, b: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LST, 500 m sealed share and vegetated flag of the land cells of cell rows a … b-1.

    Land and vegetated as :func:`terraops.domain.rural_reference.rural_reference`
    decides them, over the cells the table keeps.
    """
    grid, first, scene = plan.grid, plan.first, plan.scene
    p0, p1 = a * grid.factor, b * grid.factor
    sub = _sub_grid(grid, b - a)
    keep = features.complete_cells(sub, _valid(first, p0, p1, scene.width))
    spectral = features.spectral_cell_features(
        sub, _bands(scene, reader, p0, p1), first.landcover[p0:p1]
    )
    if plan.observed is not None:
        dem = reader.read("dem", p0, p1).astype(np.float64)
        keep &= np.isfinite(features.cell_mean(sub, dem))
    lst = features.cell_mean(sub, reader.read("lst", p0, p1))[keep]
    sealed = _focal(plan, a, b)["imperviousness_500m"][keep]
    ndvi, water = spectral["ndvi"][keep], spectral["water_fraction"][keep]
    land = np.isfinite(lst) & ~(water >= rural.RURAL_MAX_WATER)
    vegetated = land & np.isfinite(sealed) & (ndvi > rural.RURAL_MIN_NDVI)
    return lst[land], sealed[land], vegetated[land]


def _reference_temperature(
    plan: _Plan, reader: raster_io.LayerRows, windows: list[tuple[int, int]], say: Progress
) -> float:
    """The scene's rural reference temperature (°C, NaN without LST), window by window.

    The same cells and statistics as
    :func:`terraops.pipelines.scenes.cell_tables.observed_reference_temperature`
    (the tests hold them equal) in two sweeps holding one float per vegetated
    cell: the sealed-share quantile, then the median LST of the cells under it
    (or the fallback percentile of the land cells' LST).
    """
    if not plan.scene.has_layer("lst"):
        return float("nan")
    sealed_parts = []
    for done, (a, b) in enumerate(windows, 1):
        _lst, sealed, vegetated = _rural_columns(plan, reader, a, b)
        sealed_parts.append(sealed[vegetated])
        say("rural reference temperature", done, 2 * len(windows))
    sealed_all = np.concatenate(sealed_parts)
    del sealed_parts
    enough = sealed_all.size >= rural.RURAL_MIN_CELLS
    cut = float(np.quantile(sealed_all, rural.RURAL_SEALED_QUANTILE)) if enough else 0.0
    del sealed_all
    chosen = []
    for done, (a, b) in enumerate(windows, len(windows) + 1):
        lst, sealed, vegetated = _rural_columns(plan, reader, a, b)
        chosen.append(lst[vegetated & (sealed <= cut)] if enough else lst)
        say("rural reference temperature", done, 2 * len(windows))
    values = np.concatenate(chosen)
    if enough:
        return float(np.median(values))
    if not values.size:
        return float("nan")
    return float(np.percentile(values, rural.RURAL_FALLBACK_PERCENTILE))


def write_cell_table(
    scene: Scene,
    cell_size_m: float,
    out: Path,
    *,
    landcover: LandcoverSource | None = None,
    progress: Progress | None = None,
) -> Path:
    """Build the scene's cell table window by window into the parquet ``out`` (atomically).

    The same table as :func:`terraops.pipelines.scenes.cell_tables.build_cell_table`
    (rows, columns, values and the ``landcover`` attribute).
    """
    say = progress or (lambda _step, _done, _total: None)
    source = (landcover or SPECTRAL).for_resolution(float(scene.resolution))
    grid = features.cell_grid(scene.shape, float(scene.resolution), cell_size_m)
    hydro_f = hydro_factor(scene.shape)
    names = [
        n
        for n in scene.layer_files
        if n in (*REFLECTANCE_BANDS, "dem", "lst", "landcover", "flood_depth")
    ]
    with raster_io.layer_rows(scene, names) as reader:
        first = _first_pass(scene, reader, source, hydro_f, say)
        plan = _Plan(
            scene,
            grid,
            first,
            _focal_bounds(grid, first, scene.width),
            _catchment(scene, first.observed, hydro_f, f"observed{source.cache_suffix}"),
            _catchment(scene, first.truth, hydro_f, "truth"),
        )
        windows = list(_row_windows(grid.rows, _cell_rows_per_window(scene, grid)))
        reference = _reference_temperature(plan, reader, windows, say)
        position = 5 + len(features.CELL_FEATURES)  # scene, row, col, x, y, features
        with tables.atomic_parquet_rows(
            out, attrs={"landcover": source.lineage}, row_group_rows=CELL_TABLE_ROW_GROUP
        ) as rows_out:
            wrote = False
            for done, (a, b) in enumerate(windows, 1):
                table = _window_table(plan, reader, a, b)
                table.insert(position, "reference_temperature", reference)
                # An empty window's columns have no types; write one only if all are.
                if len(table) or (done == len(windows) and not wrote):
                    rows_out.write(table)
                    wrote = True
                say("computing features", done, len(windows))
    return out


def _catchment(
    scene: Scene, blocks: HydroBlocks | None, hydro_f: int, which: str
) -> CatchmentModel | None:
    """The scene's hydrology grid model, from the cache or built once and cached."""
    if blocks is None:
        return None
    return hydrology_cache.catchment(
        scene,
        which,
        lambda: catchment_model(
            blocks,
            hydro_f,
            (scene.height, scene.width),
            float(scene.resolution),
            inflow=river_inflow(scene),
        ),
    )
