"""Terrain of a synthetic city: a river valley with a floodplain, hills, maybe a coast.

The DEM is a bare-earth terrain model (buildings are not in it) whose water
pixels hold the normal water surface, like a lidar DTM. Its shape is chosen
so the flood model has something real to work on:

* a meandering river (two superposed sine waves, wavelength ≈ 10–14 river
  widths, the classic meander scaling of Leopold & Wolman 1960) crossing the
  scene and sloping ~0.5–1.5 m/km downstream;
* a low floodplain either side (banks ~0.6–1.2 m above the water, rising a few
  mm per m), then valley walls rising 8–30 m with an exponential profile;
* fractal relief (hills, small depressions that depression filling must
  remove) damped on the floodplain;
* for ``coastal``: land falling towards a sea along the downstream edge, the
  river mouth at sea level, sea floor below 0 m.

Everything is built in a canonical frame (river flowing west → east) and then
rotated by a multiple of 90° chosen by the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from terraops.domain.scene.noise import fractal_noise, smooth_noise
from terraops.domain.scene.spec import SceneSpec


@dataclass(frozen=True)
class Terrain:
    dem: np.ndarray  # (n, n) float32 m
    river: np.ndarray  # bool
    sea: np.ndarray  # bool
    inflow_row: int
    inflow_col: int
    inflow_area_km2: float
    inflow_curve_number: float
    river_width_m: float


def _centreline_distance(
    n: int, res: float, rows_of_col: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance (m) of every pixel to the river centreline, and the centreline mask."""
    line = np.zeros((n, n), bool)
    sub = np.linspace(0, n - 1, 4 * n)
    cols = np.round(sub).astype(int)
    rows = np.round(np.interp(sub, np.arange(n), rows_of_col)).astype(int)
    inside = (rows >= 0) & (rows < n)
    line[rows[inside], cols[inside]] = True
    # Join vertical steps so the line is 8-connected.
    line = ndimage.binary_dilation(
        line, structure=np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], bool)
    )
    dist = ndimage.distance_transform_edt(~line, sampling=res)
    return np.asarray(dist), line


def make_terrain(spec: SceneSpec, rng: np.random.Generator) -> Terrain:
    """Build the DEM, the river and (for ``coastal``) the sea."""
    n, res = spec.size, spec.resolution
    extent = spec.extent_m
    x = (np.arange(n) + 0.5) * res  # along-river coordinate (m)

    width = float(rng.uniform(18.0, 36.0))
    wavelength = width * rng.uniform(10.0, 14.0) * rng.uniform(1.0, 2.5)
    amp1 = wavelength * rng.uniform(0.12, 0.25)
    centre_row_m = extent * rng.uniform(0.35, 0.65)
    phase1, phase2 = rng.uniform(0, 2 * np.pi, 2)
    row_m = (
        centre_row_m
        + amp1 * np.sin(2 * np.pi * x / wavelength + phase1)
        + 0.4 * amp1 * np.sin(2 * np.pi * x / (2.7 * wavelength) + phase2)
    )
    rows_of_col = row_m / res - 0.5
    dist, _ = _centreline_distance(n, res, rows_of_col)

    gradient = rng.uniform(0.5e-3, 1.5e-3)
    floodplain_half = rng.uniform(60.0, 200.0)
    bank = rng.uniform(0.6, 1.2)
    valley_depth = rng.uniform(8.0, 30.0)
    wall_scale = rng.uniform(150.0, 400.0)

    coastal = spec.morphology == "coastal"
    if coastal:
        coast_m = extent * rng.uniform(0.72, 0.85) + 0.04 * extent * smooth_noise(
            rng, (n, 1), 0.15 * n
        )
        to_coast: np.ndarray = coast_m - x[None, :]  # metres inland (negative at sea)
        z_river = 0.3 + gradient * np.maximum(to_coast, 0.0)
        # Valley walls fade towards the shore, where the land is a low plain.
        wall_fade = np.clip(to_coast / 400.0, 0.0, 1.0)
    else:
        to_coast = np.full((n, 1), np.inf)  # no sea
        z_river = rng.uniform(40.0, 180.0) + gradient * (extent - x)[None, :]
        wall_fade = np.ones((1, n))

    half = width / 2
    beyond_bank = np.maximum(dist - half, 0.0)
    cross = bank + 0.004 * np.minimum(beyond_bank, floodplain_half)
    wall = valley_depth * (1 - np.exp(-np.maximum(beyond_bank - floodplain_half, 0) / wall_scale))
    relief = fractal_noise(rng, (n, n), [300.0 / res, 80.0 / res, 25.0 / res], [3.0, 1.0, 0.35])
    damp = np.clip((beyond_bank - floodplain_half * 0.5) / 200.0, 0.05, 1.0)
    dem = z_river + cross + wall * wall_fade + relief * damp * np.maximum(wall_fade, 0.2)
    river = dist <= half
    # Water surface with a shallow V across the channel so flow follows the centre.
    dem = np.where(river, z_river - 0.3 * (1 - (dist / half) ** 2), dem)
    sea = np.broadcast_to(to_coast <= 0, (n, n)).copy()
    if coastal:
        dem = np.where(sea, -1.0 - np.minimum(-to_coast * 0.02, 14.0), dem)
        river &= ~sea

    inflow_row = int(np.clip(np.round(rows_of_col[0]), 0, n - 1))
    dem_r, river_r, sea_r, inflow = _rotate(rng, dem, river, sea, (inflow_row, 0))
    return Terrain(
        dem=dem_r.astype(np.float32),
        river=river_r,
        sea=sea_r,
        inflow_row=inflow[0],
        inflow_col=inflow[1],
        inflow_area_km2=float(rng.uniform(20.0, 200.0)),
        inflow_curve_number=float(rng.uniform(68.0, 78.0)),
        river_width_m=width,
    )


def _rotate(
    rng: np.random.Generator,
    dem: np.ndarray,
    river: np.ndarray,
    sea: np.ndarray,
    cell: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Rotate everything by k·90° (k from the seed) so rivers run any way."""
    k = int(rng.integers(4))
    marker = np.zeros(dem.shape, bool)
    marker[cell] = True
    marker = np.rot90(marker, k)
    r, c = (int(v) for v in np.argwhere(marker)[0])
    return (
        np.ascontiguousarray(np.rot90(dem, k)),
        np.ascontiguousarray(np.rot90(river, k)),
        np.ascontiguousarray(np.rot90(sea, k)),
        (r, c),
    )
