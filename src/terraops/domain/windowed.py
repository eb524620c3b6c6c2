"""Cell features of a scene window by window, equal to the whole-scene features.

The feature code (:mod:`terraops.domain.features`) works on whole arrays. Three
of its steps reach beyond a cell, and each has a bounded window form here that
gives exactly the whole-scene numbers:

- **neighbourhood means** (``imperviousness_500m``, ``tree_cover_200m``): a
  gaussian truncated at a known radius, so a band of cell rows needs
  :func:`focal_halo_cells` rows of cells either side; the one global input —
  the clip to the range of all valid values — is passed in as two sentinel
  cells placed beyond the kernel's reach (:func:`neighbourhood_window`), so
  :func:`terraops.domain.features.neighbourhood_cell_features` itself runs on
  the window;
- **distances** (to water, to the drainage network): capped at
  :data:`~terraops.domain.features.WATER_DISTANCE_NONE_M`, so a pixel never
  needs mask rows farther than :func:`distance_reach_rows`; the exact
  Euclidean distance at the cell centres comes from a separable transform
  (nearest mask pixel per column, then the lower envelope of parabolas along
  the row, Felzenszwalb & Huttenlocher 2012) in integer arithmetic, so it equals
  :func:`scipy.ndimage.distance_transform_edt` bit for bit (:func:`centre_distances`);
- **hydrology** is global and runs once on the coarse hydrology grid
  (:class:`terraops.domain.hydrology.CatchmentModel`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numba
import numpy as np

from terraops.domain import features
from terraops.domain.features import NEIGHBOURHOODS, CellGrid


def focal_halo_cells(cell_size: float) -> int:
    """Cell rows a window needs either side for every neighbourhood feature to be exact.

    scipy's gaussian reaches ``int(truncate·σ + 0.5)`` cells; one more for safety.
    """
    reach = 0
    for hood in NEIGHBOURHOODS.values():
        sigma = hood.sigma_m / cell_size
        truncate = max(hood.radius_m / cell_size, 1e-9) / sigma
        reach = max(reach, int(truncate * sigma + 0.5))
    return reach + 1


def neighbourhood_window(
    grid: CellGrid,
    sources: Mapping[str, np.ndarray],
    keep: np.ndarray,
    interior: slice,
    bounds: Mapping[str, tuple[float, float]] | None,
) -> dict[str, np.ndarray]:
    """The neighbourhood features of the ``interior`` rows of a window of cell rows.

    ``sources`` are the window's cell features the neighbourhoods average (with
    :func:`focal_halo_cells` rows of halo around ``interior``, fewer only at the
    scene's edges), ``keep`` its complete cells, and ``bounds`` each source's
    (min, max) over the whole scene's complete cells (None: the scene has none).
    """
    halo = focal_halo_cells(grid.cell_size)
    rows, cols = keep.shape
    extra = halo + 2 if bounds else 0
    padded_keep = np.zeros((rows + extra, cols), np.float64)
    padded_keep[:rows] = keep
    padded: dict[str, np.ndarray] = {}
    for name, values in sources.items():
        padded[name] = np.zeros((rows + extra, cols), np.float64)
        padded[name][:rows] = values
        if bounds:
            # Two valid cells beyond the kernel's reach holding the scene's range:
            # the clip sees the whole scene's [min, max], nothing else changes.
            padded[name][-2:, 0] = bounds[name]
    if bounds:
        padded_keep[-2:, 0] = 1.0
    focal = features.neighbourhood_cell_features(grid, padded, padded_keep)
    return {name: values[interior] for name, values in focal.items()}


def distance_reach_rows(resolution: float) -> int:
    """Pixel rows beyond which a mask pixel is farther than the distance cap."""
    return math.floor(features.WATER_DISTANCE_NONE_M / resolution) + 1


def centre_distances(
    mask: np.ndarray, query_rows: np.ndarray, query_cols: np.ndarray, resolution: float
) -> np.ndarray:
    """Capped distance (m) from pixels (``query_rows`` × ``query_cols``) to the nearest mask pixel.

    ``mask`` holds whole pixel rows (full width) and must include every row within
    :func:`distance_reach_rows` of the query rows that the scene has; ``query_rows``
    index into it (ascending). Equals ``features.distance_to(mask_of_scene)`` at
    those pixels.
    """
    d2 = _centre_d2(
        np.ascontiguousarray(mask, dtype=np.bool_),
        np.ascontiguousarray(query_rows, dtype=np.int64),
        np.ascontiguousarray(query_cols, dtype=np.int64),
    )
    with np.errstate(invalid="ignore"):
        dist = np.where(d2 >= 0, np.sqrt(d2.astype(np.float64)), np.inf) * resolution
    capped: np.ndarray = np.minimum(dist, features.WATER_DISTANCE_NONE_M)
    return capped


@numba.njit(cache=True)
def _column_gaps(mask: np.ndarray, query_rows: np.ndarray) -> np.ndarray:
    """Rows from each query row to the nearest mask pixel in each column (−1: none)."""
    n_rows, width = mask.shape
    nq = query_rows.size
    gap = np.full((nq, width), -1, np.int64)
    last = np.full(width, -1, np.int64)
    qi = 0
    for r in range(n_rows):
        for c in range(width):
            if mask[r, c]:
                last[c] = r
        while qi < nq and query_rows[qi] == r:
            for c in range(width):
                if last[c] >= 0:
                    gap[qi, c] = r - last[c]
            qi += 1
    nxt = np.full(width, -1, np.int64)
    qi = nq - 1
    for r in range(n_rows - 1, -1, -1):
        for c in range(width):
            if mask[r, c]:
                nxt[c] = r
        while qi >= 0 and query_rows[qi] == r:
            for c in range(width):
                if nxt[c] >= 0 and (gap[qi, c] < 0 or nxt[c] - r < gap[qi, c]):
                    gap[qi, c] = nxt[c] - r
            qi -= 1
    return gap


@numba.njit(cache=True)
def _centre_d2(mask: np.ndarray, query_rows: np.ndarray, query_cols: np.ndarray) -> np.ndarray:
    """Squared pixel distances (−1: no mask pixel) by the lower envelope of parabolas.

    Intersections are kept as exact fractions (numerator, denominator) of
    integers, so the envelope — and every distance — is exact.
    """
    gap = _column_gaps(mask, query_rows)
    width = mask.shape[1]
    out = np.full((query_rows.size, query_cols.size), -1, np.int64)
    v = np.empty(width, np.int64)
    z_num = np.empty(width + 1, np.int64)
    z_den = np.empty(width + 1, np.int64)
    for qi in range(query_rows.size):
        g = gap[qi]
        k = -1
        for q in range(width):
            if g[q] < 0:
                continue
            fq = g[q] * g[q] + q * q
            while k >= 0:
                p = v[k]
                num = fq - (g[p] * g[p] + p * p)
                den = 2 * (q - p)
                if k > 0 and num * z_den[k] <= z_num[k] * den:
                    k -= 1
                    continue
                break
            if k >= 0:
                p = v[k]
                z_num[k + 1] = fq - (g[p] * g[p] + p * p)
                z_den[k + 1] = 2 * (q - p)
            k += 1
            v[k] = q
        if k < 0:
            continue
        j = 0
        for i in range(query_cols.size):
            x = query_cols[i]
            while j < k and z_num[j + 1] < x * z_den[j + 1]:
                j += 1
            dx = x - v[j]
            out[qi, i] = dx * dx + g[v[j]] * g[v[j]]
    return out
