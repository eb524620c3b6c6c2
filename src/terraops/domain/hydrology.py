"""Terrain hydrology and a HAND-based flood model (pure numpy/scipy).

The work is split in two on purpose:

* **Terrain analysis** (rainfall-independent, done once per DEM): depression
  filling, D8 flow directions, flow accumulation, the drainage network and
  HAND — the *height above nearest drainage* (Rennó et al. 2008; Nobre et al.
  2011, J. Hydrol. 404:13–29). This is the expensive part (a priority queue in
  Python), so it runs on a grid of at most :data:`MAX_HYDRO_CELLS` cells a
  side and is interpolated back to the pixels.
* **Flood depth for a rainfall P** (cheap, vectorised): SCS curve-number
  runoff per land-cover class (USDA NRCS 1986, TR-55), routed to the channel
  by the precomputed per-class upstream areas, turned into a channel stage by
  a power-law rating curve, and spread onto the land with the HAND rule of
  HAND-FIM (Zheng, Maidment et al. 2018, JAWRA 54:785–806): a cell is flooded
  where HAND ≤ stage of its drainage cell, with depth = stage − HAND.

Depth is non-decreasing in P by construction (runoff, accumulation with
non-negative weights, the rating curve and the interpolation are all
monotone), which the tests check as a property.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from terraops.domain.hydrology_grid import (
    MAX_HYDRO_CELLS,
    HydroBlocks,
    block_mean,
    hydro_blocks,
    hydro_factor,
    upsample_bilinear,
    upsample_nearest,
)
from terraops.domain.landcover import CURVE_NUMBER_SOIL_B, LandCover

DESIGN_STORMS_MM: tuple[int, ...] = (10, 20, 30, 50, 75, 100, 150)
"""Storm totals (mm, ~24 h) for which every cell table carries flood targets."""

DRAINAGE_THRESHOLD_KM2 = 0.05
"""A cell is a channel (drainage) when at least this much area drains through it."""

FILL_EPSILON_M = 1e-5
"""Gradient imposed across filled flats so every cell has a downhill neighbour."""

# Rating curve and hydrograph assumptions (documented in :func:`channel_stage`).
RATING_COEFFICIENT = 0.3
RATING_EXPONENT = 0.4
BASEFLOW_M3S_PER_KM2 = 0.01
HYDROGRAPH_BASE_HOURS = 6.0

_OFFSETS: tuple[tuple[int, int], ...] = (
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
)


# --------------------------------------------------------------------------- terrain analysis
def fill_depressions(dem: np.ndarray, *, epsilon: float = FILL_EPSILON_M) -> np.ndarray:
    """Fill every pit so water can leave the grid through its edge (or a NaN hole).

    Priority-Flood+ε (Barnes, Lehman & Mulla 2014, Computers & Geosciences
    62:117–127): cells are visited from the outlets inward in order of
    elevation; a neighbour lower than the cell it was reached from is raised to
    that level plus ``epsilon``, so filled flats keep a tiny downhill gradient
    and D8 is defined everywhere. The result is never below the input.
    NaN cells are no-data and act like the map edge.
    """
    h, w = dem.shape
    pw = w + 2
    padded = np.full((h + 2, pw), np.nan)
    padded[1:-1, 1:-1] = dem
    valid = np.isfinite(padded)
    z = np.where(valid, padded, -np.inf).ravel().tolist()
    closed = bytearray((~valid).ravel().astype(np.uint8).tobytes())
    # Seeds: valid cells touching an invalid cell (the padding is invalid).
    touching = ndimage.binary_dilation(~valid, structure=np.ones((3, 3), bool)) & valid
    heap: list[tuple[float, int]] = []
    for idx in np.flatnonzero(touching).tolist():
        heap.append((z[idx], idx))
        closed[idx] = 1
    heapq.heapify(heap)
    offsets = [dr * pw + dc for dr, dc in _OFFSETS]
    push, pop = heapq.heappush, heapq.heappop
    while heap:
        zc, c = pop(heap)
        for off in offsets:
            n = c + off
            if closed[n]:
                continue
            closed[n] = 1
            zn = z[n]
            if zn <= zc:
                zn = zc + epsilon
                z[n] = zn
            push(heap, (zn, n))
    filled = np.asarray(z).reshape(h + 2, pw)[1:-1, 1:-1]
    return np.where(np.isfinite(dem), filled, np.nan)


def d8_downstream(filled: np.ndarray, cell_size: float) -> np.ndarray:
    """Flat index of each cell's steepest-descent neighbour (−1 = outlet / no data).

    D8 (O'Callaghan & Mark 1984): all flow goes to the one of eight neighbours
    with the largest drop per distance. Only strictly lower neighbours count,
    so the graph has no cycles; cells with none are outlets.
    """
    h, w = filled.shape
    padded = np.pad(np.where(np.isfinite(filled), filled, np.inf), 1, constant_values=np.inf)
    best_slope = np.zeros((h, w))
    downstream = np.full((h, w), -1, dtype=np.int64)
    rows, cols = np.indices((h, w))
    for dr, dc in _OFFSETS:
        neighbour = padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
        slope = (filled - neighbour) / (cell_size * math.hypot(dr, dc))
        better = np.isfinite(slope) & (slope > best_slope)
        best_slope = np.where(better, slope, best_slope)
        downstream = np.where(better, (rows + dr) * w + (cols + dc), downstream)
    downstream[~np.isfinite(filled)] = -1
    return downstream.ravel()


def accumulate(downstream: np.ndarray, order: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum ``weights`` over each cell and everything upstream of it.

    ``order`` must list cells upstream-first (e.g. by descending filled
    elevation). ``weights`` may be (n,) or (n, k); columns are accumulated
    independently. A plain loop over Python lists: ~10 ms per 65k cells.
    """
    w2 = weights.reshape(len(downstream), -1).astype(np.float64)
    down = downstream.tolist()
    steps = [(i, down[i]) for i in order.tolist() if down[i] >= 0]
    out = np.empty_like(w2)
    for k in range(w2.shape[1]):
        acc = w2[:, k].tolist()
        for i, d in steps:
            acc[d] += acc[i]
        out[:, k] = acc
    return out.reshape(weights.shape)


def nearest_drainage(downstream: np.ndarray, is_drainage: np.ndarray) -> np.ndarray:
    """For each cell, the flat index of the first drainage cell (or outlet) downstream.

    Pointer jumping: every pass doubles the path length followed, so the loop
    runs ~log2(longest flow path) vectorised passes.
    """
    n = len(downstream)
    target = np.where(is_drainage | (downstream < 0), np.arange(n), downstream)
    while True:
        nxt = target[target]
        if np.array_equal(nxt, target):
            return target
        target = nxt


@dataclass(frozen=True)
class RiverInflow:
    """A river entering the grid from a catchment outside it."""

    row: int
    col: int
    area_km2: float
    curve_number: float


@dataclass(frozen=True)
class TerrainAnalysis:
    """Rainfall-independent hydrology on the (coarse) hydrology grid."""

    cell_size: float
    dem: np.ndarray  # (h, w) m
    filled: np.ndarray  # (h, w) m
    downstream: np.ndarray  # (h*w,) flat index, -1 = outlet
    order: np.ndarray  # (h*w,) cells upstream-first
    upstream_km2: np.ndarray  # (h, w) incl. external inflow
    is_drainage: np.ndarray  # (h, w) bool
    drain_index: np.ndarray  # (h*w,) nearest drainage / outlet cell
    hand: np.ndarray  # (h, w) m
    fixed_level: np.ndarray  # (h, w) bool: sea cells, stage pinned to 0

    @property
    def fill_depth(self) -> np.ndarray:
        """How much depression filling raised each cell (m, ≥ 0)."""
        raised: np.ndarray = np.nan_to_num(self.filled - self.dem)
        return raised


def analyse_terrain(
    dem: np.ndarray,
    cell_size: float,
    *,
    inflow_cell: tuple[int, int] | None = None,
    inflow_km2: float = 0.0,
    sea: np.ndarray | None = None,
    drainage_threshold_km2: float = DRAINAGE_THRESHOLD_KM2,
) -> TerrainAnalysis:
    """Fill, route, accumulate and compute HAND for one DEM grid."""
    filled = fill_depressions(dem)
    downstream = d8_downstream(filled, cell_size)
    order = np.argsort(-np.nan_to_num(filled, nan=-np.inf).ravel(), kind="stable")
    cell_km2 = (cell_size * cell_size) / 1e6
    area = np.where(np.isfinite(dem), cell_km2, 0.0).ravel()
    if inflow_cell is not None:
        area[inflow_cell[0] * dem.shape[1] + inflow_cell[1]] += inflow_km2
    upstream = accumulate(downstream, order, area).reshape(dem.shape)
    sea_mask = np.zeros(dem.shape, bool) if sea is None else sea
    is_drainage = (upstream >= drainage_threshold_km2) | sea_mask
    drain_index = nearest_drainage(downstream, is_drainage.ravel())
    flat_filled = filled.ravel()
    hand = np.maximum(flat_filled - flat_filled[drain_index], 0.0).reshape(dem.shape)
    return TerrainAnalysis(
        cell_size=cell_size,
        dem=dem,
        filled=filled,
        downstream=downstream,
        order=order,
        upstream_km2=upstream,
        is_drainage=is_drainage,
        drain_index=drain_index,
        hand=np.where(np.isfinite(dem), hand, np.nan),
        fixed_level=sea_mask,
    )


def catchment_curve_number(class_upstream_km2: np.ndarray, curve_numbers: np.ndarray) -> np.ndarray:
    """Area-weighted mean curve number of everything draining through each cell.

    ``class_upstream_km2`` is the (n, k) upstream area per runoff source (land
    cover classes and the outside inflow, from :func:`accumulate`) and
    ``curve_numbers`` the (k,) CN of each source. Runoff volume — what raises a
    channel's stage — is upstream area × the runoff of the upstream land cover,
    so this is the catchment's counterpart of a cell's own CN (which says
    nothing about the water arriving from upstream). NaN where no area drains.
    """
    total = class_upstream_km2.sum(axis=1)
    weighted = class_upstream_km2 @ np.asarray(curve_numbers, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weighted / np.where(total > 0, total, 1.0), np.nan)


# --------------------------------------------------------------------------- rainfall → depth
def scs_runoff_mm(rainfall_mm: float, curve_number: np.ndarray | float) -> np.ndarray:
    """Direct runoff depth Q (mm) of the SCS curve-number method (TR-55, eq. 2-1..2-4).

    S = 25400/CN − 254 (mm), Ia = 0.2 S, Q = (P − Ia)² / (P + 0.8 S) for P > Ia,
    else 0. Monotone in P and in CN.
    """
    cn = np.clip(np.asarray(curve_number, dtype=np.float64), 1.0, 100.0)
    s = 25400.0 / cn - 254.0
    excess = np.maximum(rainfall_mm - 0.2 * s, 0.0)
    return excess * excess / (rainfall_mm + 0.8 * s + 1e-12)


def channel_stage(peak_m3s: np.ndarray, base_m3s: np.ndarray) -> np.ndarray:
    """Rise of the water surface above its normal level (m) for a storm peak.

    Depth follows a power law of discharge, d = a·Q^b, the hydraulic-geometry
    relation of Leopold & Maddock (1953, USGS Prof. Paper 252) with b ≈ 0.4 and
    a ≈ 0.3 (SI). The DEM's water surface is the normal (baseflow) level, so
    the flood stage is d(Q_base + Q_peak) − d(Q_base).
    """
    a, b = RATING_COEFFICIENT, RATING_EXPONENT
    rise: np.ndarray = a * (np.power(base_m3s + peak_m3s, b) - np.power(base_m3s, b))
    return rise


@dataclass(frozen=True)
class FloodModel:
    """Everything rainfall-independent; :meth:`depth` is cheap per storm."""

    terrain: TerrainAnalysis
    class_curve_numbers: np.ndarray  # (k,) CN of each runoff source column
    class_upstream_km2: np.ndarray  # (h*w, k) upstream area per source
    factor: int  # pixels per hydrology cell (per side)
    fine_shape: tuple[int, int]  # pixels of this model's rows (all rows, or a window's)
    fine_dem: np.ndarray  # (H, W) m
    permanent_water: np.ndarray  # (H, W) bool: no flood depth reported there
    drain_surface: np.ndarray  # (H, W) elevation of the nearest drainage, interpolated
    fill_depth: np.ndarray  # (H, W) depth of the filled depressions, interpolated
    depression_label: np.ndarray  # (h*w,) depression id per hydrology cell, 0 = none
    depression_capacity_m3: np.ndarray  # (n_depressions + 1,) volume to fill each one
    row0: int = 0
    """First pixel row of the scene the pixel arrays hold (a window's model)."""

    def upstream_volume_m3(self, rainfall_mm: float) -> np.ndarray:
        """Storm runoff volume (m³) draining through each hydrology cell."""
        runoff_m = scs_runoff_mm(rainfall_mm, self.class_curve_numbers) / 1000.0
        return np.asarray((self.class_upstream_km2 * 1e6) @ runoff_m)

    def stage_grid(self, rainfall_mm: float) -> np.ndarray:
        """Flood stage (m) of the drainage cell each hydrology cell drains to."""
        peak = 2.0 * self.upstream_volume_m3(rainfall_mm) / (HYDROGRAPH_BASE_HOURS * 3600.0)
        base = BASEFLOW_M3S_PER_KM2 * self.terrain.upstream_km2.ravel()
        stage = channel_stage(peak, base)
        stage[self.terrain.fixed_level.ravel()] = 0.0
        at_drain = stage[self.terrain.drain_index]
        # Outlets that are not channels (tiny edge basins) get no flood stage.
        at_drain[~self.terrain.is_drainage.ravel()[self.terrain.drain_index]] = 0.0
        grid: np.ndarray = at_drain.reshape(self.terrain.filled.shape)
        return grid

    def pond_grid(self, rainfall_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Pluvial ponding depth (m) and "depression full" flag on the hydrology grid.

        Each depression receives the runoff of everything draining into it
        (the largest accumulated volume inside it). Its water level rises
        from the bottom towards the spill level in proportion to the filled
        share r = min(1, V_in / V_capacity) of its volume — a linear
        stage–storage simplification, monotone in rainfall. Only a full
        depression passes the river's flood stage on (flag = 1; cells outside
        depressions always have flag 1).
        """
        shape = self.terrain.filled.shape
        labels = self.depression_label
        if labels.max() == 0:
            return np.zeros(shape), np.ones(shape)
        ids = np.arange(labels.max() + 1)
        inflow = np.asarray(ndimage.maximum(self.upstream_volume_m3(rainfall_mm), labels, ids))
        share = np.minimum(1.0, inflow / np.maximum(self.depression_capacity_m3, 1e-9))
        share[0] = 1.0
        fill = self.terrain.fill_depth.ravel()
        max_depth = np.asarray(ndimage.maximum(fill, labels, ids))
        depth = np.maximum(fill - (1.0 - share[labels]) * max_depth[labels], 0.0)
        depth[labels == 0] = 0.0
        full = (share[labels] >= 1.0).astype(np.float64)
        return depth.reshape(shape), full.reshape(shape)

    def depth(self, rainfall_mm: float) -> np.ndarray:
        """Flood depth (m, float32) on the pixel grid for a storm of ``rainfall_mm``.

        depth = ponding in depressions + fluvial depth (HAND rule, on the
        depression-filled surface) where the depression is full or absent.
        Permanent water reports 0.
        """
        stage_c = self.stage_grid(rainfall_mm)
        pond_c, full_c = self.pond_grid(rainfall_mm)
        stage = upsample_bilinear(stage_c, self.factor, self.fine_shape, self.row0)
        fluvial = np.maximum(self.drain_surface + stage - (self.fine_dem + self.fill_depth), 0.0)
        pond = upsample_bilinear(pond_c, self.factor, self.fine_shape, self.row0)
        full = upsample_bilinear(full_c, self.factor, self.fine_shape, self.row0)
        depth = pond + full * fluvial
        depth[self.permanent_water | ~np.isfinite(self.fine_dem)] = 0.0
        flood_depth: np.ndarray = depth.astype(np.float32)
        return flood_depth

    @property
    def hand(self) -> np.ndarray:
        """HAND on the pixel grid (m, ≥ 0)."""
        height: np.ndarray = np.maximum(self.fine_dem - self.drain_surface, 0.0)
        return height

    @property
    def upstream_km2(self) -> np.ndarray:
        """Upstream area on the pixel grid (nearest hydrology cell)."""
        return upsample_nearest(self.terrain.upstream_km2, self.factor, self.fine_shape, self.row0)

    @property
    def drainage_upstream_km2(self) -> np.ndarray:
        """Area feeding the flood stage a pixel sees, on the pixel grid (km², ≥ 0).

        A hillslope floods from the channel it drains to, so what matters is
        the upstream area *at its nearest drainage cell*, not its own (tiny)
        accumulation. It is 0 where :meth:`stage_grid` gives no stage: the
        drainage is the sea (fixed level) or an edge outlet that is no channel.
        """
        t = self.terrain
        drain = t.drain_index
        raises_stage = t.is_drainage.ravel()[drain] & ~t.fixed_level.ravel()[drain]
        area = np.where(raises_stage, t.upstream_km2.ravel()[drain], 0.0)
        area = area.reshape(t.filled.shape)
        return upsample_nearest(area, self.factor, self.fine_shape, self.row0)

    @property
    def drainage_curve_number(self) -> np.ndarray:
        """Catchment-mean CN at each pixel's nearest drainage (outside inflow included)."""
        cn = catchment_curve_number(self.class_upstream_km2, self.class_curve_numbers)
        at_drain = cn[self.terrain.drain_index].reshape(self.terrain.filled.shape)
        return upsample_nearest(at_drain, self.factor, self.fine_shape, self.row0)

    @property
    def drainage(self) -> np.ndarray:
        """Channel network on the pixel grid (bool)."""
        return upsample_nearest(self.terrain.is_drainage, self.factor, self.fine_shape, self.row0)


@dataclass(frozen=True)
class CatchmentModel:
    """The flood model on the hydrology grid only: what is global about a scene's hydrology.

    Made once per scene (:func:`catchment_model`, a few MB whatever the scene's
    size: at most :data:`MAX_HYDRO_CELLS` cells a side) and turned into the
    pixel layers of any band of rows by :meth:`window` — the same numbers as
    :func:`build_flood_model` gives for those rows of the whole scene.
    """

    terrain: TerrainAnalysis
    class_curve_numbers: np.ndarray
    class_upstream_km2: np.ndarray
    factor: int
    scene_shape: tuple[int, int]
    drain_elevation: np.ndarray  # (h, w) filled elevation of each cell's drainage
    depression_label: np.ndarray
    depression_capacity_m3: np.ndarray

    def window(self, row0: int, dem: np.ndarray, landcover: np.ndarray) -> FloodModel:
        """The flood model of pixel rows ``row0 … row0 + len(dem)`` (their DEM and land cover)."""
        f, shape = self.factor, (int(dem.shape[0]), int(dem.shape[1]))
        return FloodModel(
            terrain=self.terrain,
            class_curve_numbers=self.class_curve_numbers,
            class_upstream_km2=self.class_upstream_km2,
            factor=f,
            fine_shape=shape,
            fine_dem=dem.astype(np.float64),
            permanent_water=landcover == int(LandCover.WATER),
            drain_surface=upsample_bilinear(self.drain_elevation, f, shape, row0),
            fill_depth=upsample_bilinear(self.terrain.fill_depth, f, shape, row0),
            depression_label=self.depression_label,
            depression_capacity_m3=self.depression_capacity_m3,
            row0=row0,
        )


def catchment_model(
    blocks: HydroBlocks,
    factor: int,
    scene_shape: tuple[int, int],
    resolution_m: float,
    *,
    inflow: RiverInflow | None = None,
) -> CatchmentModel:
    """Terrain analysis and per-class routing on the hydrology grid (deterministic).

    ``blocks`` are the scene's :func:`~terraops.domain.hydrology_grid.hydro_blocks`
    at ``factor`` (made whole, or band by band and stacked).
    """
    f = factor
    coarse_dem = blocks.dem
    sea = blocks.sea_share > 0.5
    cell_km2 = (resolution_m * f) ** 2 / 1e6
    sources = blocks.fractions.reshape(-1, blocks.fractions.shape[-1]) * cell_km2
    cns = [CURVE_NUMBER_SOIL_B[c] for c in CURVE_NUMBER_SOIL_B]
    inflow_cell = None
    if inflow is not None:
        inflow_cell = (
            min(inflow.row // f, coarse_dem.shape[0] - 1),
            min(inflow.col // f, coarse_dem.shape[1] - 1),
        )
        external = np.zeros((sources.shape[0], 1))
        external[inflow_cell[0] * coarse_dem.shape[1] + inflow_cell[1], 0] = inflow.area_km2
        sources = np.concatenate([sources, external], axis=1)
        cns.append(inflow.curve_number)
    terrain = analyse_terrain(
        coarse_dem,
        resolution_m * f,
        inflow_cell=inflow_cell,
        inflow_km2=inflow.area_km2 if inflow else 0.0,
        sea=sea,
    )
    class_upstream = accumulate(terrain.downstream, terrain.order, sources)
    drain_elev = terrain.filled.ravel()[terrain.drain_index].reshape(coarse_dem.shape)
    # Depressions deeper than the fill gradient (ε-raised flats are not ponds).
    labels, n_dep = ndimage.label(terrain.fill_depth > 0.05, structure=np.ones((3, 3), bool))
    cell_m2 = (resolution_m * f) ** 2
    capacity = np.asarray(
        ndimage.sum(terrain.fill_depth * cell_m2, labels, np.arange(n_dep + 1)), dtype=np.float64
    )
    return CatchmentModel(
        terrain=terrain,
        class_curve_numbers=np.asarray(cns, dtype=np.float64),
        class_upstream_km2=class_upstream,
        factor=f,
        scene_shape=scene_shape,
        drain_elevation=drain_elev,
        depression_label=labels.ravel(),
        depression_capacity_m3=capacity,
    )


def build_flood_model(
    dem: np.ndarray,
    landcover: np.ndarray,
    resolution_m: float,
    *,
    inflow: RiverInflow | None = None,
    sea_level_m: float = 0.0,
) -> FloodModel:
    """Run the terrain analysis for a pixel DEM + land cover (deterministic).

    Sea = water pixels at or below ``sea_level_m``; its level is fixed (no
    storm surge), so land draining straight into it does not flood.
    """
    f = hydro_factor(dem.shape)
    shape = (int(dem.shape[0]), int(dem.shape[1]))
    blocks = hydro_blocks(dem, landcover, f, sea_level_m)
    model = catchment_model(blocks, f, shape, resolution_m, inflow=inflow)
    return model.window(0, dem, landcover)


__all__ = [
    "DESIGN_STORMS_MM",
    "DRAINAGE_THRESHOLD_KM2",
    "MAX_HYDRO_CELLS",
    "CatchmentModel",
    "FloodModel",
    "HydroBlocks",
    "RiverInflow",
    "TerrainAnalysis",
    "accumulate",
    "analyse_terrain",
    "block_mean",
    "build_flood_model",
    "catchment_curve_number",
    "catchment_model",
    "channel_stage",
    "d8_downstream",
    "fill_depressions",
    "hydro_blocks",
    "hydro_factor",
    "nearest_drainage",
    "scs_runoff_mm",
    "upsample_bilinear",
    "upsample_nearest",
]
