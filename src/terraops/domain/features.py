"""Per-cell features from raster layers — the one implementation used by training,
batch prediction and serving.

Pixels are grouped into square cells of ``cell_size_m`` (default 20 m, about
a Sentinel-2 SWIR pixel and the scale at which planners think about a
street or a courtyard). Each cell gets spectral indices, land-cover
fractions (of the land cover classified from the imagery — the caller's
choice, see :mod:`terraops.pipelines.scenes.cell_tables`), distances and
terrain/hydrology descriptors, plus the
*neighbourhood* (focal) composition around it; see :data:`CELL_FEATURES` for
names and units. Cells that contain any no-data pixel are dropped rather than
guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from terraops.domain.bands import REFLECTANCE_BANDS
from terraops.domain.landcover import (
    NODATA_CODE,
    LandCover,
    curve_number_map,
)
from terraops.domain.scene_record import ReflectanceEncoding, Scene
from terraops.errors import InvalidInputError

FEATURES_VERSION = "6"
"""Bumped whenever the same layers would give different cell features (cache key)."""

CELL_FEATURES: tuple[str, ...] = (
    "ndvi",
    "ndbi",
    "albedo",
    "building_density",
    "tree_cover",
    "imperviousness",
    "water_fraction",
    "water_distance",
    "elevation",
    "hand",
    "slope",
    "river_distance",
    "upstream_area",
    "curve_number",
    "drainage_upstream_area",
    "drainage_curve_number",
    "depression_depth",
    "imperviousness_500m",
    "tree_cover_200m",
)

CONTEXT_FEATURES: tuple[str, ...] = ("reference_temperature",)
"""Scene-level context, the same for every cell of a scene.

``reference_temperature`` is the day's rural background land-surface
temperature (°C). Surface UHI is defined relative to it (Peng et al. 2012:
urban minus rural LST), and it varies by several K between days and climates,
which no land-cover feature can see. It is *observed*, never the generator's
constant: the median LST of the scene's rural cells
(:func:`terraops.domain.mapping.rural_reference`, computed by
:mod:`terraops.pipelines.scenes.cell_tables` the same way for every scene), or NaN
where the scene has no thermal layer (a user's GeoTIFF); the models treat it
as optional.
"""

WATER_DISTANCE_NONE_M = 10_000.0
"""Distance reported when a scene has no water at all (and the cap for all distances)."""

FLOOD_FRACTION_MIN_DEPTH_M = 0.1
"""A pixel counts as flooded from this depth (the usual 'wet feet' threshold)."""

_EPS = 1e-9


def reflectance_bands(scene: Scene, layers: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The stored bands as reflectance (0–1, float64) with NaN for no-data.

    A scene stores its bands as numbers (often integer DNs) plus the
    manifest's ``reflectance`` scale, offset and no-data value; every reader —
    the cell table, the segmentation trainer, a window reader — converts them
    here, so that they all see the same reflectance.
    """
    encoding = scene.reflectance or ReflectanceEncoding(REFLECTANCE_BANDS, 1.0, 0.0, None)
    missing = [b for b in REFLECTANCE_BANDS if b not in encoding.bands or b not in layers]
    if missing:
        raise InvalidInputError(
            f"scene {scene.name} lacks reflectance bands {missing}",
            hint="features need red, green, blue, nir and swir; re-import the scene",
        )
    scale, offset, nodata = float(encoding.scale), float(encoding.offset), encoding.nodata
    return {
        b: np.where(
            layers[b] == nodata if nodata is not None else False,
            np.nan,
            layers[b].astype(np.float64) * scale + offset,
        )
        for b in REFLECTANCE_BANDS
    }


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """Normalised difference vegetation index (Rouse et al. 1974), in [−1, 1]."""
    index: np.ndarray = (nir - red) / (nir + red + _EPS)
    return index


def ndbi(swir: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """Normalised difference built-up index (Zha, Gao & Ni 2003), in [−1, 1]."""
    index: np.ndarray = (swir - nir) / (swir + nir + _EPS)
    return index


def broadband_albedo(bands: Mapping[str, np.ndarray]) -> np.ndarray:
    """Short-wave broadband albedo from five reflectance bands.

    Liang (2001, Remote Sens. Environ. 76:213–238) for Landsat TM/ETM+:
    α = 0.356·blue + 0.130·red + 0.373·NIR + 0.085·SWIR1 + 0.072·SWIR2 − 0.0018.
    We have no SWIR2 band, so its weight goes to SWIR1 (the two are highly
    correlated over urban and vegetated surfaces); green, which Liang leaves
    out, is not used either.
    """
    albedo = (
        0.356 * bands["blue"]
        + 0.130 * bands["red"]
        + 0.373 * bands["nir"]
        + (0.085 + 0.072) * bands["swir"]
        - 0.0018
    )
    return np.clip(albedo, 0.0, 1.0)


@dataclass(frozen=True)
class CellGrid:
    """Square cells of ``factor``×``factor`` pixels covering the raster's top-left."""

    factor: int
    rows: int
    cols: int
    resolution: float

    @property
    def cell_size(self) -> float:
        return self.factor * self.resolution

    def crop(self, pixels: np.ndarray) -> np.ndarray:
        return pixels[: self.rows * self.factor, : self.cols * self.factor]

    def blocks(self, pixels: np.ndarray) -> np.ndarray:
        f = self.factor
        return self.crop(pixels).reshape(self.rows, f, self.cols, f)

    def centres(self, origin_x: float, origin_y: float) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre coordinates for a north-up grid whose top-left corner is the origin."""
        rows, cols = np.indices((self.rows, self.cols))
        x = origin_x + (cols + 0.5) * self.cell_size
        y = origin_y - (rows + 0.5) * self.cell_size
        return x.astype(np.float64), y.astype(np.float64)


def cell_grid(shape: tuple[int, int], resolution: float, cell_size_m: float) -> CellGrid:
    """The cell grid for a raster; ``cell_size_m`` is rounded to whole pixels."""
    factor = max(1, round(cell_size_m / resolution))
    rows, cols = shape[0] // factor, shape[1] // factor
    if rows == 0 or cols == 0:
        raise InvalidInputError(
            f"raster of {shape[0]}×{shape[1]} px is smaller than one {cell_size_m:g} m cell",
            hint="use a smaller cell size",
        )
    return CellGrid(factor=factor, rows=rows, cols=cols, resolution=resolution)


def cell_mean(grid: CellGrid, pixels: np.ndarray) -> np.ndarray:
    """Mean of each cell (float64)."""
    means: np.ndarray = grid.blocks(pixels.astype(np.float64)).mean(axis=(1, 3))
    return means


def cell_max(grid: CellGrid, pixels: np.ndarray) -> np.ndarray:
    maxima: np.ndarray = grid.blocks(pixels.astype(np.float64)).max(axis=(1, 3))
    return maxima


def cell_centre_value(grid: CellGrid, pixels: np.ndarray) -> np.ndarray:
    """The value of the pixel at (or just past) each cell's centre."""
    half = grid.factor // 2
    return grid.blocks(pixels)[:, half, :, half].astype(np.float64)


def distance_to(mask: np.ndarray, resolution: float) -> np.ndarray:
    """Distance (m) from every pixel to the nearest ``True`` pixel, capped."""
    if not mask.any():
        return np.full(mask.shape, WATER_DISTANCE_NONE_M)
    dist = np.asarray(ndimage.distance_transform_edt(~mask)) * resolution
    return np.minimum(dist, WATER_DISTANCE_NONE_M)


def slope_degrees(dem: np.ndarray, resolution: float) -> np.ndarray:
    """Terrain slope (degrees) by central differences (Horn-like, edges one-sided)."""
    gy, gx = np.gradient(dem.astype(np.float64), resolution)
    degrees: np.ndarray = np.degrees(np.arctan(np.hypot(gx, gy)))
    return degrees


def valid_pixels(bands: Mapping[str, np.ndarray], landcover: np.ndarray | None) -> np.ndarray:
    """Pixels with every band finite (and a known land-cover class)."""
    valid = np.ones(next(iter(bands.values())).shape, bool)
    for name in REFLECTANCE_BANDS:
        valid &= np.isfinite(bands[name])
    if landcover is not None:
        valid &= landcover != NODATA_CODE
    return valid


def spectral_cell_features(
    grid: CellGrid, bands: Mapping[str, np.ndarray], landcover: np.ndarray
) -> dict[str, np.ndarray]:
    """Indices, albedo, land-cover fractions and water distance per cell."""
    res = grid.resolution
    water = landcover == int(LandCover.WATER)
    building = landcover == int(LandCover.BUILDING)
    road = landcover == int(LandCover.ROAD)
    # Indices from cell-mean reflectance (what a 20 m sensor would see), not
    # the mean of pixel ratios, which over-weights dark shadowed pixels.
    mean = {b: cell_mean(grid, np.nan_to_num(bands[b])) for b in REFLECTANCE_BANDS}
    cn = curve_number_map(landcover)
    return {
        "ndvi": ndvi(mean["red"], mean["nir"]),
        "ndbi": ndbi(mean["swir"], mean["nir"]),
        "albedo": broadband_albedo(mean),
        "building_density": cell_mean(grid, building),
        "tree_cover": cell_mean(grid, landcover == int(LandCover.TREE)),
        "imperviousness": cell_mean(grid, building | road),
        "water_fraction": cell_mean(grid, water),
        "water_distance": cell_centre_value(grid, distance_to(water, res)),
        "curve_number": cell_mean(grid, np.nan_to_num(cn, nan=float(np.nanmean(cn)))),
    }


@dataclass(frozen=True)
class TerrainLayers:
    """Pixel-grid terrain and hydrology layers (from :mod:`terraops.domain.hydrology`).

    ``drainage_upstream_km2`` and ``drainage_curve_number`` describe the
    channel each pixel drains to — its catchment area and the area-weighted CN
    of that catchment (outside inflow included) — because that channel's stage
    is what floods the pixel. ``depression_depth`` is how deep the pixel lies
    in a closed depression (m), where runoff ponds before any river rises.
    """

    dem: np.ndarray
    hand: np.ndarray
    drainage: np.ndarray
    upstream_km2: np.ndarray
    drainage_upstream_km2: np.ndarray
    drainage_curve_number: np.ndarray
    depression_depth: np.ndarray


TERRAIN_FEATURES: tuple[str, ...] = (
    "elevation",
    "hand",
    "slope",
    "river_distance",
    "upstream_area",
    "drainage_upstream_area",
    "drainage_curve_number",
    "depression_depth",
)
"""Cell features that need a DEM (NaN in a table built without one)."""


def terrain_cell_features(grid: CellGrid, terrain: TerrainLayers) -> dict[str, np.ndarray]:
    """Elevation, HAND, slope, channel distance, upstream area and the drainage's catchment."""
    res = grid.resolution
    return {
        "elevation": cell_mean(grid, terrain.dem),
        "hand": cell_mean(grid, terrain.hand),
        "slope": cell_mean(grid, slope_degrees(terrain.dem, res)),
        "river_distance": cell_centre_value(grid, distance_to(terrain.drainage, res)),
        # The largest area draining through the cell: a channel crossing it counts.
        "upstream_area": cell_max(grid, terrain.upstream_km2),
        # Likewise the largest channel any part of the cell drains to.
        "drainage_upstream_area": cell_max(grid, terrain.drainage_upstream_km2),
        "drainage_curve_number": cell_mean(grid, terrain.drainage_curve_number),
        "depression_depth": cell_mean(grid, terrain.depression_depth),
    }


def flood_cell_targets(grid: CellGrid, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean flood depth (m) and share of pixels ≥ 0.1 m deep, per cell."""
    return cell_mean(grid, depth), cell_mean(grid, depth >= FLOOD_FRACTION_MIN_DEPTH_M)


@dataclass(frozen=True)
class Neighbourhood:
    """A gaussian neighbourhood of a cell: weights fall off with ``sigma_m`` and stop at
    ``radius_m`` (≈ 3.3 σ, where the weight is down to 0.4 % of the centre's)."""

    source: str
    sigma_m: float
    radius_m: float


#: Focal features (name → the cell feature averaged and its neighbourhood).
#: The UHI literature describes LST by land-cover composition in 100–500 m
#: buffers: the surface heat island grows with the sealed share of the
#: surroundings (Peng et al. 2012, Environ. Sci. Technol. 46:696–703), and
#: parks and tree canopy cool their neighbourhood over ~50–200 m (Schwaab et
#: al. 2021, Nat. Commun. 12:6763). The scales match the scene physics
#: (:mod:`terraops.domain.scene.lst`: σ = 150 m for imperviousness, 60 m for
#: trees), so what the model sees is what makes LST. A neighbourhood NDVI was
#: tried and left out: open water has negative NDVI yet cools, so "less green
#: surroundings" near a river or the sea meant *cooler*, and it made
#: leave-one-scene-out error worse.
NEIGHBOURHOODS: dict[str, Neighbourhood] = {
    "imperviousness_500m": Neighbourhood("imperviousness", sigma_m=150.0, radius_m=500.0),
    "tree_cover_200m": Neighbourhood("tree_cover", sigma_m=60.0, radius_m=200.0),
}


def focal_mean(
    values: np.ndarray, weights: np.ndarray, sigma_cells: float, radius_cells: float
) -> np.ndarray:
    """Gaussian-weighted neighbourhood mean that ignores cells of weight 0.

    Normalised convolution (Knutsson & Westin 1993): ``G∗(w·v) / G∗w``. Cells
    outside the raster and no-data cells (weight 0, or a non-finite value)
    simply do not vote, so a scene edge or a hole does not pull the mean
    towards zero — a uniform field stays uniform right up to the edge. The
    result is a convex combination of the valid inputs; it is clipped to
    their [min, max] so rounding cannot push a fraction past 1. Cells with no
    valid neighbour at all are NaN.
    """
    w = np.where(np.isfinite(values), np.clip(weights, 0.0, None), 0.0).astype(np.float64)
    if not (w > 0).any():
        return np.full(values.shape, np.nan)
    v = np.where(w > 0, values, 0.0).astype(np.float64)
    truncate = max(radius_cells, 1e-9) / sigma_cells

    def smooth(a: np.ndarray) -> np.ndarray:
        return np.asarray(
            ndimage.gaussian_filter(a, sigma_cells, mode="constant", cval=0.0, truncate=truncate)
        )

    weight_sum = smooth(w)
    valid_sum = np.where(weight_sum > 1e-12, weight_sum, np.nan)
    mean = smooth(v * w) / valid_sum
    lo, hi = float(v[w > 0].min()), float(v[w > 0].max())
    return np.clip(mean, lo, hi)


def neighbourhood_cell_features(
    grid: CellGrid, cell_features: Mapping[str, np.ndarray], valid_cells: np.ndarray
) -> dict[str, np.ndarray]:
    """The :data:`NEIGHBOURHOODS` features of every cell, from the valid cells' values."""
    return {
        name: focal_mean(
            cell_features[hood.source],
            valid_cells.astype(np.float64),
            hood.sigma_m / grid.cell_size,
            hood.radius_m / grid.cell_size,
        )
        for name, hood in NEIGHBOURHOODS.items()
    }


def complete_cells(grid: CellGrid, valid: np.ndarray) -> np.ndarray:
    """Cells whose every pixel is valid (the others are dropped)."""
    return np.asarray(grid.blocks(valid).all(axis=(1, 3)))


def cell_feature_table(
    *,
    bands: Mapping[str, np.ndarray],
    landcover: np.ndarray,
    resolution: float,
    cell_size_m: float,
    origin: tuple[float, float],
    terrain: TerrainLayers | None = None,
) -> tuple[pd.DataFrame, CellGrid, np.ndarray]:
    """Feature table (ids + :data:`CELL_FEATURES`) of the complete cells.

    ``bands`` hold reflectance (0–1) with NaN for no-data. Terrain features
    are NaN when no ``terrain`` is given. Returns the table, the grid and the boolean
    (rows, cols) mask of kept cells, so callers can add targets in the same
    order (``values[keep]``).
    """
    grid = cell_grid(landcover.shape, resolution, cell_size_m)
    keep = complete_cells(grid, valid_pixels(bands, landcover))
    feats = spectral_cell_features(grid, bands, landcover)
    feats.update(neighbourhood_cell_features(grid, feats, keep))
    if terrain is not None:
        feats.update(terrain_cell_features(grid, terrain))
        keep &= np.isfinite(feats["elevation"])
    else:
        feats.update({name: np.full((grid.rows, grid.cols), np.nan) for name in TERRAIN_FEATURES})
    rows, cols = np.indices((grid.rows, grid.cols))
    x, y = grid.centres(*origin)
    table = pd.DataFrame(
        {
            "row": rows[keep].astype(np.int64),
            "col": cols[keep].astype(np.int64),
            "x": x[keep],
            "y": y[keep],
            **{name: feats[name][keep].astype(np.float64) for name in CELL_FEATURES},
        }
    )
    return table, grid, keep
