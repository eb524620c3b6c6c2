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
- **interval of the mean Δ**, in two layers:

  1. *member spread*: the models kept with the champion, one per held-out
     city (leave-one-city-out), each predict the scene before and after; each
     member's mean Δ inside is one plausible answer, and the central
     ``level`` quantile range of those K answers (linearly interpolated —
     with a few members, nearly their range) is laid around the model's own
     mean Δ (:func:`member_interval`). It is not the sum of two cells'
     prediction intervals: most of a cell's error is shared by the before
     and the after prediction (the same place, the same model bias), so it
     cancels in Δ, and what remains is how much the *response* to the edit
     depends on which cities the model learned from. It has no term for an
     error every member shares — a response none of the training cities
     shows (a roof brighter than any roof they have), or a city whose own
     physics differs from the average the pooled model learned — so on its
     own it holds the truth far less often than its level says;
  2. *calibrated on counterfactual cities* (:class:`EffectCalibration`),
     when the model version was validated against the generator's
     counterfactual cities (``make bench``): split-conformal on the *effect*
     error. For each validation case i (a city × intervention × size) with
     true mean Δ ``t``, model mean Δ ``d`` and member interval ``[l, u]``
     the score is how far the truth lies outside the member interval,
     relative to the effect's size::

         s_i = max(t − u, l − t, 0) / max(|d|, floor)

     (``floor`` = :data:`EFFECT_FLOOR_K`: relative for big effects, absolute
     for small ones, whose relative error is meaningless). With n cases of
     the intervention's group, ``q`` is the ⌈(n+1)·level⌉-th smallest score
     (infinite when n is too small: no claim), and the interval is
     ``[l − q·S, u + q·S]`` with ``S = max(|d|, floor)``. Groups
     (:func:`effect_group`) are Mondrian: roof interventions change a
     surface the training cities rarely show at that brightness and err
     differently from ground interventions, so each is calibrated on its
     own cases. The exchangeable unit is the *city* (its own drawn physics),
     so the benchmark cross-fits by city: calibrated on the other cities'
     cases, scored on the held-out city; the stored calibration uses every
     validation city. The guarantee is marginal over cities like the
     validation ones and interventions of the same group — not per case.
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

EFFECT_FLOOR_K = 0.3
"""Below this |mean Δ| (K) the calibrated interval's scale stops shrinking: the
validation's own tolerance, under which a relative error means nothing."""

ROOF_INTERVENTIONS = frozenset({"cool_roof", "green_roof"})
"""Interventions that change roofs only (calibrated apart from those on the ground)."""

MEMBER_SPREAD = "member spread (not calibrated against counterfactual truth)"
CALIBRATED = "calibrated on counterfactual cities"
"""``interval_method`` of a what-if row: which interval of the mean Δ it reports."""


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


def effect_group(kind: str) -> str:
    """The calibration group of an intervention kind: ``roof`` or ``ground``."""
    return "roof" if kind in ROOF_INTERVENTIONS else "ground"


def effect_scale(centre: float, floor: float = EFFECT_FLOOR_K) -> float:
    """The unit a calibrated effect error is measured in: ``max(|mean Δ|, floor)``."""
    return max(abs(float(centre)), floor)


def effect_score(
    truth: float, centre: float, members: tuple[float, float], floor: float = EFFECT_FLOOR_K
) -> float:
    """How far the truth lies outside the member interval, in units of :func:`effect_scale`."""
    lo, hi = members
    return max(truth - hi, lo - truth, 0.0) / effect_scale(centre, floor)


def conformal_quantile(scores: Sequence[float], level: float = INTERVAL_LEVEL) -> float:
    """The ⌈(n+1)·level⌉-th smallest score (split conformal); inf when n is too small."""
    ordered = np.sort(np.asarray(scores, float))
    rank = int(np.ceil((ordered.size + 1) * level))
    return float(ordered[rank - 1]) if 0 < rank <= ordered.size else float("inf")


@dataclass(frozen=True)
class EffectCase:
    """One validation case: its intervention, true and model mean Δ, the member interval."""

    intervention: str
    truth: float
    centre: float
    members: tuple[float, float]


@dataclass(frozen=True)
class EffectCalibration:
    """Conformal quantiles of the effect error per group (see the module doc)."""

    level: float
    floor: float
    quantiles: dict[str, float]
    cases: dict[str, int]

    @classmethod
    def fit(
        cls,
        cases: Sequence[EffectCase],
        level: float = INTERVAL_LEVEL,
        floor: float = EFFECT_FLOOR_K,
    ) -> EffectCalibration:
        scores: dict[str, list[float]] = {}
        for case in cases:
            score = effect_score(case.truth, case.centre, case.members, floor)
            scores.setdefault(effect_group(case.intervention), []).append(score)
        return cls(
            level,
            floor,
            {g: conformal_quantile(v, level) for g, v in scores.items()},
            {g: len(v) for g, v in scores.items()},
        )

    @property
    def n_cases(self) -> int:
        return sum(self.cases.values())

    def interval(
        self, kind: str, centre: float, members: tuple[float, float]
    ) -> tuple[float, float] | None:
        """The calibrated interval of a mean Δ; None where the group has no finite quantile."""
        q = self.quantiles.get(effect_group(kind), float("inf"))
        if not np.isfinite(q):
            return None
        pad = q * effect_scale(centre, self.floor)
        return (round(members[0] - pad, 4), round(members[1] + pad, 4))

    def to_json(self) -> dict[str, Any]:
        finite = {g: (round(q, 6) if np.isfinite(q) else None) for g, q in self.quantiles.items()}
        return {
            "level": self.level,
            "floor_k": self.floor,
            "quantiles": finite,
            "cases": self.cases,
        }

    @classmethod
    def from_json(cls, data: Any) -> EffectCalibration | None:
        """The stored calibration, or None when absent or not of this form."""
        try:
            quantiles = {
                str(g): float("inf") if q is None else float(q)
                for g, q in data["quantiles"].items()
            }
            cases = {str(g): int(n) for g, n in data["cases"].items()}
            return cls(float(data["level"]), float(data["floor_k"]), quantiles, cases)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def cross_fitted_coverage(
    cases: Sequence[EffectCase], cities: Sequence[str], level: float = INTERVAL_LEVEL
) -> tuple[list[tuple[float, float] | None], list[int]]:
    """Each case's interval calibrated on the *other* cities' cases, and [hits, cases].

    ``cities[i]`` is case i's city: the held-out unit (leave-one-city-out).
    A case whose group has too few calibration cases gets no interval (a miss).
    """
    intervals: list[tuple[float, float] | None] = []
    for i, case in enumerate(cases):
        others = [c for c, city in zip(cases, cities, strict=True) if city != cities[i]]
        calibration = EffectCalibration.fit(others, level)
        intervals.append(calibration.interval(case.intervention, case.centre, case.members))
    hits = sum(
        iv is not None and iv[0] <= c.truth <= iv[1] for iv, c in zip(intervals, cases, strict=True)
    )
    return intervals, [int(hits), len(cases)]


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
