"""What a planner reads about one intervention: Δ inside, Δ around it, how sure, and why.

Pure numpy over the scene's cell grid (the grid the model predicts on), so the
maths is unit-tested on its own (``tests/code/test_whatif_summary.py``):

- **inside**: the cells at least half covered by the intervention's polygon
  (a polygon smaller than half a cell keeps the cells it touches, so a small
  block still has an answer);
- **rings** (spillover): the cells outside the polygon whose *centre* lies
  within 0–100 m, and within 100–250 m, of the polygon (its pixels): the
  scales at which parks and canopy cool their surroundings (Schwaab et al.
  2021);
- **interval of the mean Δ**: from the models kept with the champion, one per
  held-out city (leave-one-city-out). Each member predicts the scene before and
  after; its *mean Δ inside* is one plausible answer, and the interval is the
  spread of those K answers (the ``(1−level)/2`` and ``(1+level)/2`` quantiles,
  linearly interpolated — with a few members, nearly their range), laid
  around the model's own mean Δ (see :func:`member_interval`). It is not
  the sum of two cells' prediction intervals: most of a cell's error is shared
  by the before and the after prediction (the same place, the same model
  bias), so it cancels in Δ, and what remains is how much the *response* to
  the edit depends on which cities the model learned from;
- **drivers**: the change of each driver's contribution (TreeSHAP, summed by
  :func:`terraops.domain.explain.driver_contributions`), averaged inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from terraops.domain import features

RING_EDGES_M: tuple[float, float] = (100.0, 250.0)
"""Outer edges (m) of the two spillover rings around a polygon."""

INTERVAL_LEVEL = 0.9
"""Level of the interval of a mean Δ (the quantiles across the member models)."""


@dataclass(frozen=True)
class Regions:
    """Cell masks (rows, cols) of an intervention: inside and the two rings outside."""

    inside: np.ndarray
    ring_100m: np.ndarray
    ring_250m: np.ndarray

    @property
    def near(self) -> np.ndarray:
        """Inside or within 250 m: where an intervention's local effect is counted."""
        return np.asarray(self.inside | self.ring_100m | self.ring_250m)


def regions(mask: np.ndarray, grid: features.CellGrid) -> Regions:
    """Inside and ring cells of a pixel mask (see the module doc).

    The distance transform runs on a crop around the polygon (its pixels'
    bounding box plus the outer ring and a cell), so a small polygon on a large
    scene costs little.
    """
    f, res = grid.factor, grid.resolution
    cover = features.cell_mean(grid, mask)
    inside = cover >= 0.5
    if not inside.any():
        inside = cover > 0
    empty = np.zeros_like(inside)
    if not inside.any():
        return Regions(inside, empty, empty.copy())
    rows, cols = np.nonzero(cover > 0)
    pad = int(np.ceil(RING_EDGES_M[1] / grid.cell_size)) + 1
    r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad + 1, grid.rows)
    c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad + 1, grid.cols)
    crop = grid.crop(mask)[r0 * f : r1 * f, c0 * f : c1 * f]
    pixel_distance = np.asarray(ndimage.distance_transform_edt(~crop)) * res
    sub = features.CellGrid(factor=f, rows=r1 - r0, cols=c1 - c0, resolution=res)
    centre = np.full(inside.shape, np.inf)
    centre[r0:r1, c0:c1] = features.cell_centre_value(sub, pixel_distance)
    outside = ~inside
    ring_100 = outside & (centre <= RING_EDGES_M[0])
    ring_250 = outside & (centre > RING_EDGES_M[0]) & (centre <= RING_EDGES_M[1])
    return Regions(inside, ring_100, ring_250)


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _number(value: float) -> float | None:
    """A JSON number (rounded to 4 decimals), or None for no value."""
    return round(float(value), 4) if np.isfinite(value) else None


def mean_of(delta: np.ndarray, where: np.ndarray) -> float | None:
    """Mean Δ of the finite cells of a mask (None when it has none)."""
    values = _finite(delta[where])
    return _number(values.mean()) if values.size else None


def delta_stats(delta: np.ndarray, region: Regions) -> dict[str, float | None]:
    """Mean, min and max Δ inside and the ring means, as the JSON reports them."""
    inside = _finite(delta[region.inside])
    return {
        "mean_delta": _number(inside.mean()) if inside.size else None,
        "min_delta": _number(inside.min()) if inside.size else None,
        "max_delta": _number(inside.max()) if inside.size else None,
        "ring_100m_mean_delta": mean_of(delta, region.ring_100m),
        "ring_250m_mean_delta": mean_of(delta, region.ring_250m),
    }


def member_interval(
    member_deltas: np.ndarray, n_cells: int, centre: float, level: float = INTERVAL_LEVEL
) -> tuple[float, float] | None:
    """Interval of a mean Δ over ``n_cells`` cells from K member models' Δ.

    ``member_deltas`` (K, m) holds each member's after − before on the m
    cells whose inputs moved; the other ``n_cells − m`` cells have Δ = 0 for
    every member (same inputs, same answer). Each member's mean Δ is one
    answer; their central ``level`` quantile range, taken around the
    members' median, is laid around ``centre`` (the model's own mean Δ):
    each member learned from one city fewer, so where their answers sit is
    biased against the model's, while how far they spread is what measures
    how much the response depends on the cities learned from. None without
    members or cells.
    """
    values = np.asarray(member_deltas, float)
    if values.ndim != 2 or values.shape[0] == 0 or n_cells <= 0 or not np.isfinite(centre):
        return None
    member_means = _finite(values.sum(axis=1) / n_cells)
    if not member_means.size:
        return None
    tail = (1.0 - level) / 2.0
    lo, mid, hi = np.quantile(member_means, [tail, 0.5, 1.0 - tail])
    return (round(float(centre + lo - mid), 4), round(float(centre + hi - mid), 4))


def driver_deltas(
    keys: Sequence[str], before: np.ndarray, after: np.ndarray, n_cells: int
) -> list[dict[str, Any]]:
    """Mean change over ``n_cells`` of each driver's contribution, largest change first.

    ``before``/``after`` (m, D) are the drivers of the m moved cells; the
    other cells' drivers did not change (0 in the mean).
    """
    if n_cells <= 0:
        return []
    change = (np.asarray(after, float) - np.asarray(before, float)).sum(axis=0) / n_cells
    order = np.argsort(-np.abs(change), kind="stable")
    return [{"driver": keys[i], "delta": round(float(change[i]), 4)} for i in order]
