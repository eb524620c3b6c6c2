"""Plans a case study tests, chosen from the scene itself: which streets, which lot, which depaving.

A case study must not hand-pick polygons (a reader could not reproduce them
on their city), so each plan is a rule over the scene's own grids:

- **street trees**: windows of about :data:`STREET_WINDOW_M` with enough
  street surface (:data:`MIN_STREET_SHARE` of road pixels), ranked by the
  predicted temperature; the hottest few, kept apart from each other, get
  trees on their *road pixels* (the polygon is the street, not the block);
- **a paved lot made a park**: among the hottest quarter of windows of
  about :data:`LOT_WINDOW_M`, the one with the largest paved share, away
  from the streets already chosen;
- **depaving**: windows ranked by flood probability in the heavy storm times
  their paved share, away from open water (:data:`WATER_BUFFER_M`: where
  the flooding is the rain's, not a river's); the most exposed few have their
  road pixels depaved.

Windows are counted in model cells (the grid the maps are on), so the same
rule works on a 2 m synthetic city and on a 30 m Landsat scene. Everything
here is pure (numpy, shapely, rasterio's in-memory polygoniser): no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio import features as rio_features
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape
from shapely.ops import unary_union

from terraops.domain import features
from terraops.domain.landcover import LandCover

STREET_WINDOW_M = 100.0
LOT_WINDOW_M = 80.0
MIN_STREET_SHARE = 0.2
MIN_LOT_SHARE = 0.5
WATER_BUFFER_M = 150.0
"""Depaving sites stay this far from open water: a river's flood comes from upstream, and
unsealing a street beside it cannot change that (when nothing else is exposed, the rule
falls back to every window)."""
STREET_CANOPY = 0.5
"""Tree share the street planting reaches on the street's plantable ground."""
PARK_CANOPY = 0.3
HOT_LOT_PERCENTILE = 75.0
"""The lot made a park is the most paved among the windows at least this hot (percentile)."""


@dataclass(frozen=True)
class PlannedSite:
    """One intervention the plan proposes: where, what, and why it was chosen."""

    id: str
    kind: str
    params: dict[str, float]
    geometry: Polygon | MultiPolygon
    score: float
    """The value it was ranked by (°C for heat, probability × paved share for flood)."""


@dataclass(frozen=True)
class SceneFrame:
    """The scene's pixel grid and its cell grid, to turn cell windows into polygons."""

    origin: tuple[float, float]
    resolution: float
    grid: features.CellGrid
    crs: str

    @property
    def pixel_transform(self) -> Affine:
        x0, y0 = self.origin
        return Affine(self.resolution, 0.0, x0, 0.0, -self.resolution, y0)


def _window_cells(frame: SceneFrame, metres: float) -> int:
    return max(1, round(metres / frame.grid.cell_size))


def _window_mean(values: np.ndarray, size: int) -> np.ndarray:
    """Mean of each ``size``×``size`` window (NaN cells count as missing), centred."""
    finite = np.isfinite(values)
    total = ndimage.uniform_filter(np.where(finite, values, 0.0), size, mode="constant")
    count = ndimage.uniform_filter(finite.astype(float), size, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0.5, total / np.maximum(count, 1e-9), np.nan)


def _pick(
    score: np.ndarray, count: int, spacing: int, taken: Sequence[tuple[int, int]] = ()
) -> list[tuple[int, int]]:
    """The ``count`` best-scoring window centres at least ``spacing`` cells from each other."""
    chosen: list[tuple[int, int]] = []
    order = np.argsort(np.where(np.isfinite(score), -score, np.inf), axis=None)
    for flat in order:
        r, c = np.unravel_index(int(flat), score.shape)
        if not np.isfinite(score[r, c]):
            break
        if all(max(abs(r - a), abs(c - b)) >= spacing for a, b in [*taken, *chosen]):
            chosen.append((int(r), int(c)))
            if len(chosen) == count:
                break
    return chosen


def _window_pixels(frame: SceneFrame, centre: tuple[int, int], size: int) -> tuple[slice, slice]:
    f = frame.grid.factor
    r0 = max(centre[0] - size // 2, 0)
    c0 = max(centre[1] - size // 2, 0)
    r1 = min(r0 + size, frame.grid.rows)
    c1 = min(c0 + size, frame.grid.cols)
    return slice(r0 * f, r1 * f), slice(c0 * f, c1 * f)


def _square(frame: SceneFrame, window: tuple[slice, slice]) -> Polygon:
    x0, y0 = frame.origin
    res = frame.resolution
    rows, cols = window
    return box(
        x0 + cols.start * res, y0 - rows.stop * res, x0 + cols.stop * res, y0 - rows.start * res
    )


def _mask_polygon(
    frame: SceneFrame, mask: np.ndarray, window: tuple[slice, slice]
) -> Polygon | MultiPolygon | None:
    """The pixels of ``mask`` inside ``window`` as one (multi)polygon in the scene CRS."""
    part = mask[window].astype(np.uint8)
    if not part.any():
        return None
    transform = frame.pixel_transform @ Affine.translation(window[1].start, window[0].start)
    pieces = [
        shape(geom) for geom, _ in rio_features.shapes(part, mask=part > 0, transform=transform)
    ]
    merged = unary_union(pieces)
    return merged if isinstance(merged, Polygon | MultiPolygon) else None


def street_tree_sites(
    frame: SceneFrame, landcover: np.ndarray, temperature: np.ndarray, *, count: int = 4
) -> list[PlannedSite]:
    """Trees on the road pixels of the ``count`` hottest street windows (see the module doc)."""
    roads = landcover == int(LandCover.ROAD)
    size = _window_cells(frame, STREET_WINDOW_M)
    road_share = _window_mean(features.cell_mean(frame.grid, roads), size)
    heat = _window_mean(temperature, size)
    score = np.where(road_share >= MIN_STREET_SHARE, heat, np.nan)
    sites = []
    for rank, centre in enumerate(_pick(score, count, 2 * size), start=1):
        geometry = _mask_polygon(frame, roads, _window_pixels(frame, centre, size))
        if geometry is not None:
            sites.append(
                PlannedSite(
                    f"street-{rank}",
                    "tree_planting",
                    {"canopy": STREET_CANOPY},
                    geometry,
                    round(float(heat[centre]), 3),
                )
            )
    return sites


def park_site(
    frame: SceneFrame,
    landcover: np.ndarray,
    temperature: np.ndarray,
    avoid: Sequence[PlannedSite] = (),
) -> PlannedSite | None:
    """The hot, mostly paved lot (a square window) that becomes a park."""
    paved = np.isin(landcover, [int(LandCover.ROAD), int(LandCover.BARE)])
    size = _window_cells(frame, LOT_WINDOW_M)
    share = _window_mean(features.cell_mean(frame.grid, paved), size)
    heat = _window_mean(temperature, size)
    finite = heat[np.isfinite(heat)]
    if not finite.size:
        return None
    hot = heat >= np.percentile(finite, HOT_LOT_PERCENTILE)
    score = np.where(hot, share, np.nan)
    taken = [_centre_cell(frame, site.geometry) for site in avoid]
    picked = _pick(score, 1, size + 1, taken=taken)
    if not picked:
        return None
    window = _window_pixels(frame, picked[0], size)
    return PlannedSite(
        "lot-park",
        "park",
        {"canopy": PARK_CANOPY},
        _square(frame, window),
        round(float(heat[picked[0]]), 3),
    )


def depave_sites(
    frame: SceneFrame, landcover: np.ndarray, probability: np.ndarray, *, count: int = 3
) -> list[PlannedSite]:
    """Depave the road pixels of the ``count`` windows most exposed in the heavy storm."""
    sealed = landcover == int(LandCover.ROAD)
    size = _window_cells(frame, STREET_WINDOW_M)
    share = _window_mean(features.cell_mean(frame.grid, sealed), size)
    exposure = _window_mean(probability, size)
    score = np.where(share >= MIN_STREET_SHARE, exposure * share, np.nan)
    away = _distance_to_water_m(frame, landcover) > WATER_BUFFER_M
    if np.isfinite(score[away]).any():
        score = np.where(away, score, np.nan)
    sites = []
    for rank, centre in enumerate(_pick(score, count, 2 * size), start=1):
        geometry = _mask_polygon(frame, sealed, _window_pixels(frame, centre, size))
        if geometry is not None:
            sites.append(
                PlannedSite(
                    f"depave-{rank}",
                    "depave",
                    {"share": 1.0},
                    geometry,
                    round(float(score[centre]), 4),
                )
            )
    return sites


def _distance_to_water_m(frame: SceneFrame, landcover: np.ndarray) -> np.ndarray:
    """Distance (m) from each cell's centre to the nearest mostly-water cell (inf: none)."""
    water = features.cell_mean(frame.grid, landcover == int(LandCover.WATER)) >= 0.5
    if not water.any():
        return np.full(water.shape, np.inf)
    return np.asarray(ndimage.distance_transform_edt(~water)) * frame.grid.cell_size


def _centre_cell(frame: SceneFrame, geometry: Polygon | MultiPolygon) -> tuple[int, int]:
    x0, y0 = frame.origin
    point = geometry.centroid
    size = frame.grid.cell_size
    return int((y0 - point.y) // size), int((point.x - x0) // size)


def scenario_document(frame: SceneFrame, sites: Sequence[PlannedSite]) -> dict[str, Any]:
    """The sites as a scenario file (GeoJSON in the scene's CRS, the ``crs`` member naming it)."""
    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": frame.crs}},
        "features": [
            {
                "type": "Feature",
                "properties": {"id": site.id, "intervention": site.kind, **site.params},
                "geometry": mapping(site.geometry),
            }
            for site in sites
        ],
    }
