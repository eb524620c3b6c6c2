"""Calibrated prediction intervals and the area of applicability (pure, no I/O).

Intervals are *split conformal* (Vovk et al. 2005; Lei et al. 2018): with
``n`` calibration scores exchangeable with the score of a new case, the
``⌈(n + 1)·level⌉``-th smallest score bounds the new one with probability
≥ ``level``. The exchangeable unit here is the *city*: the scores are the
out-of-fold residuals of models that never saw that city, so a new city's
residuals look like them — a cell-level split would not (neighbouring cells
share their errors).

Three nonconformity scores, compared at training time on held-out cities:

- ``normalised``: ``|residual| / difficulty(x)``, with ``difficulty`` a model
  of ``|residual|`` from the features: intervals widen where the model is less
  sure (Lei et al. 2018, "locally weighted" residuals in their words);
- ``mondrian``: the same scores, with a quantile per land-cover class of the
  cell (:func:`cell_classes`): coverage holds *within* each class
  (Vovk 2012, Mondrian conformal), not only on average. Given the cities, a
  class keeps its own quantile only with scores from enough of them (else the
  pooled one), and every city weighs the same in a quantile
  (:func:`terraops.domain.conformal.member_weights`): the city, not the cell,
  is the exchangeable unit;
- ``local``: the quantile of the ``|residual|`` of the cell's ``k`` nearest
  training cells in the applicability space (localised conformal,
  Guan 2023): no difficulty model, the neighbours are the difficulty;
- ``mondrian_city``: Mondrian quantiles of scores normalised by a difficulty
  with a *city term*: ``sqrt(τ² + s(x)²)``, ``τ`` the spread of the cities'
  own offsets (the median residual of each held-out city: a between-city
  error no cell feature explains) and ``s`` a model of the *within-city*
  ``|residual − offset|``. A difficulty model fitted on raw ``|residual|``
  instead tries to explain each city's offset with cell features, which does
  not carry to a new city;
- ``cv_plus``: the ``mondrian_city`` scores, but each centred on the member
  that produced it rather than on the served model (K-fold CV+, Barber et al.
  2021; :mod:`terraops.domain.conformal`).

Every difficulty is *cross-fitted*: the score of a cell of city ``c`` uses a
difficulty fitted without city ``c`` (as a new city's cell is scored by one
that never saw it). Scored in-sample, the difficulty model learns each
calibration city's error level (the day's reference temperature alone names
the city) and the scores come out too small — intervals then cover ~0.75
on a new city instead of 0.9. The day's reference temperature enters the
difficulty model only as "given or not" for the same reason.

The area of applicability follows Meyer & Pebesma (2021): features
standardised and weighted by their importance; the dissimilarity index DI of
a cell is its distance to the nearest training cell divided by the mean
pairwise distance between training cells; the threshold is the upper whisker
(largest value ≤ Q3 + 1.5·IQR) of the training cells' DI computed across CV
folds (each to the nearest cell of *other* folds). Cells with DI above it are
outside: the model has not seen anything like them, and no interval is claimed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist

from terraops.domain.conformal import member_weights

VARIANTS = ("normalised", "mondrian", "local", "mondrian_city", "cv_plus")
#: The variants whose quantile is taken per cell class.
MONDRIAN_VARIANTS = ("mondrian", "mondrian_city", "cv_plus")

#: Land-cover classes of a cell, by code (the index in this tuple).
CELL_CLASSES = ("water", "built", "tree", "open")
#: Thresholds of :func:`cell_classes`, first match wins (water, built, tree, else open).
WATER_FRACTION_MIN = 0.5  # half the cell open water …
WATER_NDVI_MAX = 0.0  # … or, without a water share, negative NDVI (water absorbs NIR)
BUILT_BUILDING_MIN = 0.3  # a third of the cell under buildings …
BUILT_IMPERVIOUS_MIN = 0.6  # … or most of it sealed
TREE_COVER_MIN = 0.3  # a third under canopy …
TREE_NDVI_MIN = 0.6  # … or, without a canopy share, dense vegetation

#: Fewest calibration scores a Mondrian class needs for its own quantile; below
#: it the class uses the pooled one (a 0.9 quantile of 20 scores is the 19th).
MONDRIAN_MIN_SCORES = 50
#: A Mondrian class keeps its own quantile only when this many calibration cities
#: have cells of it (``MONDRIAN_MIN_SCORES // 2`` each); with fewer, how the model
#: errs on that class in a new city cannot be judged from the others.
MIN_CLASS_CITIES = 3
#: Neighbours of the ``local`` variant.
LOCAL_NEIGHBOURS = 100


def _column(X: np.ndarray, names: Sequence[str], name: str) -> np.ndarray:
    if name in names:
        return np.asarray(X[:, list(names).index(name)], dtype=np.float64)
    return np.full(len(X), np.nan)


def cell_classes(X: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Land-cover class code per row (index into :data:`CELL_CLASSES`) from its features.

    A share when given (water, building, sealed, canopy), NDVI when not, so a
    request with only the required fields is classed too.
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    ndvi, water = _column(X, names, "ndvi"), _column(X, names, "water_fraction")
    buildings, sealed = _column(X, names, "building_density"), _column(X, names, "imperviousness")
    trees = _column(X, names, "tree_cover")
    with np.errstate(invalid="ignore"):
        is_water = np.where(np.isfinite(water), water >= WATER_FRACTION_MIN, ndvi < WATER_NDVI_MAX)
        is_built = (buildings >= BUILT_BUILDING_MIN) | (sealed >= BUILT_IMPERVIOUS_MIN)
        is_tree = np.where(np.isfinite(trees), trees >= TREE_COVER_MIN, ndvi >= TREE_NDVI_MIN)
    codes = np.full(len(X), CELL_CLASSES.index("open"), dtype=np.int8)
    codes[is_tree] = CELL_CLASSES.index("tree")
    codes[is_built] = CELL_CLASSES.index("built")
    codes[is_water] = CELL_CLASSES.index("water")
    return codes


def check_level(level: float) -> float:
    """``level`` as a float strictly between 0 and 1 (else ValueError)."""
    value = float(level)
    if not 0.0 < value < 1.0:
        raise ValueError(f"interval level must be between 0 and 1 (exclusive), got {level}")
    return value


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ``⌈(n + 1)·level⌉``-th smallest score (``inf`` when there are too few)."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = len(ordered)
    rank = math.ceil((n + 1) * check_level(level))
    return float(ordered[rank - 1]) if 1 <= rank <= n else math.inf


def weighted_conformal_quantile(ordered: np.ndarray, weights: np.ndarray, level: float) -> float:
    """:func:`conformal_quantile` of sorted scores whose weights sum to their count:
    the first score at which the running weight reaches ``⌈(n + 1)·level⌉``."""
    n = len(ordered)
    rank = math.ceil((n + 1) * check_level(level))
    if not 1 <= rank <= n:
        return math.inf
    reached = np.cumsum(np.asarray(weights, dtype=np.float64))
    index = min(int(np.searchsorted(reached, rank - 1e-9 * rank)), n - 1)
    return float(ordered[index])


def city_balanced(scores: np.ndarray, cities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted scores, their weights): each city's scores weigh ``n / (K·n_city)``."""
    scores = np.asarray(scores, dtype=np.float64)
    _, index, sizes = np.unique(cities, return_inverse=True, return_counts=True)
    weights = member_weights(sizes, balanced=True)[index.ravel()]
    order = np.argsort(scores, kind="stable")
    return scores[order], weights[order]


def row_quantiles(scores: np.ndarray, level: float) -> np.ndarray:
    """:func:`conformal_quantile` of each row of an ``(n, k)`` array of scores."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64), axis=1)
    rank = math.ceil((ordered.shape[1] + 1) * check_level(level))
    if rank > ordered.shape[1]:
        return np.full(len(ordered), np.inf)
    return ordered[:, rank - 1]


def interval_score(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float) -> np.ndarray:
    """Gneiting & Raftery (2007) interval score per case (lower is better).

    Width plus ``2/α`` times how far the truth falls outside, ``α = 1 − level``.
    """
    alpha = 1.0 - check_level(level)
    below = np.maximum(lower - y, 0.0)
    above = np.maximum(y - upper, 0.0)
    score: np.ndarray = (upper - lower) + (2.0 / alpha) * (below + above)
    return score


def coverage_table(
    y: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float, classes: np.ndarray
) -> dict[str, Any]:
    """Coverage, mean width and mean interval score, overall and per cell class."""

    def summary(pick: np.ndarray) -> dict[str, float]:
        lo, hi, truth = lower[pick], upper[pick], y[pick]
        return {
            "n": int(pick.sum()),
            "coverage": float(np.mean((truth >= lo) & (truth <= hi))) if pick.any() else math.nan,
            "mean_width": float(np.mean(hi - lo)) if pick.any() else math.nan,
            "interval_score": float(np.mean(interval_score(truth, lo, hi, level)))
            if pick.any()
            else math.nan,
        }

    finite = np.isfinite(lower) & np.isfinite(upper) & np.isfinite(y)
    table: dict[str, Any] = {"level": level, "overall": summary(finite)}
    table["classes"] = {
        name: summary(finite & (classes == code)) for code, name in enumerate(CELL_CLASSES)
    }
    return table


def difficulty_inputs(X: np.ndarray, baseline_column: int | None) -> np.ndarray:
    """The rows a difficulty model sees: the baseline column (a per-city constant,
    the day's reference) reduced to whether it was given, so that the model
    cannot learn one error level per calibration city from it."""
    rows = np.array(np.atleast_2d(X), dtype=np.float64)
    if baseline_column is not None and baseline_column >= 0:
        rows[:, baseline_column] = np.isfinite(rows[:, baseline_column])
    return rows


def city_offsets(
    residual: np.ndarray, cities: np.ndarray, stratum: np.ndarray
) -> dict[tuple[int, int], float]:
    """The median residual of each (city, stratum): the part of a city's error
    shared by all its cells (stratum: e.g. whether the day's reference is given)."""
    return {
        (int(c), int(s)): float(np.median(residual[(cities == c) & (stratum == s)]))
        for c in np.unique(cities)
        for s in np.unique(stratum[cities == c])
    }


def city_term(offsets: Mapping[tuple[int, int], float], strata: int = 2) -> np.ndarray:
    """``τ`` per stratum: the root mean square of the cities' offsets (0 if none)."""
    tau = np.zeros(strata)
    for s in range(strata):
        values = [v for (_, k), v in offsets.items() if k == s]
        tau[s] = math.sqrt(float(np.mean(np.square(values)))) if values else 0.0
    return tau


def within_city(
    residual: np.ndarray,
    cities: np.ndarray,
    stratum: np.ndarray,
    offsets: Mapping[tuple[int, int], float],
) -> np.ndarray:
    """``|residual − its city's offset|``: the error cell features can explain."""
    shift = np.array([offsets[(int(c), int(s))] for c, s in zip(cities, stratum, strict=True)])
    within: np.ndarray = np.abs(np.asarray(residual, dtype=np.float64) - shift)
    return within


def with_city_term(within: np.ndarray, tau: np.ndarray, stratum: np.ndarray) -> np.ndarray:
    """``sqrt(τ[stratum]² + within²)``: between- and within-city errors add in variance."""
    per_row = np.asarray(tau, dtype=np.float64)[np.asarray(stratum, dtype=np.int64)]
    spread: np.ndarray = np.hypot(per_row, np.asarray(within, dtype=np.float64))
    return spread


@dataclass(frozen=True)
class ConformalScores:
    """The calibration of one variant: the sorted scores it takes quantiles of.

    Scores are kept rather than one quantile so that any level can be asked.
    ``local`` keeps none here: its scores are the neighbours' ``|residual|``
    (:attr:`ApplicabilityDomain.residuals`).
    """

    variant: str
    pooled: np.ndarray
    per_class: Mapping[int, np.ndarray] = field(default_factory=dict)
    #: City-balanced weights aligned with ``pooled`` / ``per_class`` (absent: each
    #: score counts one, as versions calibrated before them).
    pooled_weights: np.ndarray | None = None
    class_weights: Mapping[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        variant: str,
        abs_residual: np.ndarray,
        difficulty: np.ndarray,
        classes: np.ndarray,
        cities: np.ndarray | None = None,
    ) -> ConformalScores:
        """The variant's scores; ``cities`` (each score's held-out city) makes the
        Mondrian variants city-aware: a class needs scores from
        :data:`MIN_CLASS_CITIES` cities, and cities weigh the same."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown conformal variant {variant!r}; known: {VARIANTS}")
        if variant == "local":
            return cls(variant, np.sort(abs_residual))
        scores = abs_residual / difficulty
        if variant not in MONDRIAN_VARIANTS:
            return cls(variant, np.sort(scores))
        if cities is None:
            per_class = {
                code: np.sort(scores[classes == code])
                for code in range(len(CELL_CLASSES))
                if int((classes == code).sum()) >= MONDRIAN_MIN_SCORES
            }
            return cls(variant, np.sort(scores), per_class)
        cities = np.asarray(cities)
        pooled, pooled_weights = city_balanced(scores, cities)
        per_class, class_weights = {}, {}
        for code in range(len(CELL_CLASSES)):
            pick = classes == code
            _, counts = np.unique(cities[pick], return_counts=True)
            enough = int((counts >= max(MONDRIAN_MIN_SCORES // 2, 1)).sum())
            if int(pick.sum()) >= MONDRIAN_MIN_SCORES and enough >= MIN_CLASS_CITIES:
                per_class[code], class_weights[code] = city_balanced(scores[pick], cities[pick])
        return cls(variant, pooled, per_class, pooled_weights, class_weights)

    def quantile(self, level: float, code: int | None = None) -> float:
        """The conformal quantile of class ``code``'s scores (None: the pooled ones)."""
        ordered = self.pooled if code is None else self.per_class[code]
        weights = self.pooled_weights if code is None else self.class_weights.get(code)
        if weights is None:
            return conformal_quantile(ordered, level)
        return weighted_conformal_quantile(ordered, weights, level)

    def half_width(
        self,
        level: float,
        difficulty: np.ndarray,
        classes: np.ndarray,
        neighbour_residuals: np.ndarray | None = None,
    ) -> np.ndarray:
        """Half the interval width per row (in the prediction's unit)."""
        if self.variant == "local":
            assert neighbour_residuals is not None, "the local variant needs neighbours"
            return row_quantiles(neighbour_residuals, level)
        factor = np.full(len(difficulty), self.quantile(level))
        for code in self.per_class:
            factor[classes == code] = self.quantile(level, code)
        half: np.ndarray = factor * np.asarray(difficulty, dtype=np.float64)
        return half


def upper_whisker(values: np.ndarray) -> float:
    """The largest value ≤ Q3 + 1.5·IQR (a box plot's upper whisker)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return math.inf
    q1, q3 = np.percentile(finite, [25, 75])
    return float(finite[finite <= q3 + 1.5 * (q3 - q1)].max())


@dataclass
class _Subspace:
    """The applicability geometry of one set of given features (a missing-value pattern)."""

    tree: cKDTree
    columns: np.ndarray
    mean_distance: float
    threshold: float


@dataclass
class ApplicabilityDomain:
    """Meyer & Pebesma's area of applicability over a bounded sample of training cells.

    ``points``: standardised, importance-weighted training cells (no NaN);
    ``folds``: their CV fold (city) code; ``residuals``: their out-of-fold
    ``|residual|`` (the ``local`` variant's scores). A cell with some features
    not given is compared in the space of the features it has (each such
    pattern's geometry is built once and cached).
    """

    names: tuple[str, ...]
    centre: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    points: np.ndarray
    folds: np.ndarray
    residuals: np.ndarray
    #: Their ``|residual|`` when only some features are given (the model degrades
    #: then): the ``local`` scores of a row that misses any feature.
    partial_residuals: np.ndarray
    _cache: dict[bytes, _Subspace] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        names: Sequence[str],
        importance: np.ndarray,
        folds: np.ndarray,
        abs_residual: np.ndarray,
        partial_abs_residual: np.ndarray | None = None,
        *,
        max_points: int = 2000,
        seed: int = 0,
    ) -> ApplicabilityDomain:
        """Standardise, weight and subsample (at most ``max_points``) the training cells."""
        X = np.asarray(X, dtype=np.float64)
        # A feature no training cell gave (a city without a DEM has no elevation) is
        # not part of the geometry: its centre stays NaN, so it never counts as given.
        observed = np.isfinite(X).any(axis=0)
        centre = np.full(X.shape[1], np.nan)
        scale = np.ones(X.shape[1])
        centre[observed] = np.nanmean(X[:, observed], axis=0)
        spread = np.nanstd(X[:, observed], axis=0)
        scale[observed] = np.where(spread > 0, spread, 1.0)
        weights = np.where(observed, np.asarray(importance, dtype=np.float64), 0.0)
        weights = weights / weights.sum() if weights.sum() > 0 else observed.astype(np.float64)
        complete = np.flatnonzero(np.isfinite(X[:, observed]).all(axis=1))
        rng = np.random.default_rng(seed)
        if len(complete) > max_points:
            complete = np.sort(rng.choice(complete, size=max_points, replace=False))
        points = (X[complete] - centre) / scale * weights
        partial = abs_residual if partial_abs_residual is None else partial_abs_residual
        return cls(
            tuple(names),
            centre,
            scale,
            weights,
            points,
            np.asarray(folds)[complete],
            np.asarray(abs_residual, dtype=np.float64)[complete],
            np.asarray(partial, dtype=np.float64)[complete],
        )

    def standardise(self, X: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(np.asarray(X, dtype=np.float64))
        z: np.ndarray = (rows - self.centre) / self.scale * self.weights
        return z

    def subspace(self, given: np.ndarray) -> _Subspace:
        """The geometry of the features marked ``given`` (weight > 0 ones only)."""
        key = np.asarray(given, dtype=bool).tobytes()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        columns = np.flatnonzero(np.asarray(given, dtype=bool) & (self.weights > 0))
        points = self.points[:, columns]
        mean_distance = float(pdist(points).mean()) if len(points) > 1 else 0.0
        mean_distance = mean_distance if mean_distance > 0 else 1.0
        training_di = np.full(len(points), np.nan)
        for fold in np.unique(self.folds):
            inside, others = self.folds == fold, self.folds != fold
            if others.any():
                distance, _ = cKDTree(points[others]).query(points[inside])
                training_di[inside] = distance / mean_distance
        threshold = upper_whisker(training_di)
        built = _Subspace(cKDTree(points), columns, mean_distance, threshold)
        with self._lock:
            self._cache[key] = built
        return built

    def _by_pattern(self, X: np.ndarray) -> list[tuple[np.ndarray, _Subspace, np.ndarray, bool]]:
        """Rows grouped by which features they give: (row indices, geometry, their
        points, whether every feature is given)."""
        z = self.standardise(X)
        given = np.isfinite(z)
        known = np.isfinite(self.centre)  # the features training ever gave
        if len(given) == 1:  # a point request: no grouping to do
            space = self.subspace(given[0])
            complete = bool(given[0][known].all())
            return [(np.zeros(1, np.int64), space, z[:, space.columns], complete)]
        patterns, inverse = np.unique(given, axis=0, return_inverse=True)
        groups = []
        for k, pattern in enumerate(patterns):
            rows = np.flatnonzero(inverse.ravel() == k)
            space = self.subspace(pattern)
            complete = bool(pattern[known].all())
            groups.append((rows, space, z[np.ix_(rows, space.columns)], complete))
        return groups

    def dissimilarity(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(DI, inside the area of applicability) per row."""
        n = len(np.atleast_2d(X))
        di, threshold = np.empty(n), np.empty(n)
        for rows, space, z, _ in self._by_pattern(X):
            distance, _ = space.tree.query(z)
            di[rows] = distance / space.mean_distance
            threshold[rows] = space.threshold
        return di, di <= threshold

    def neighbour_residuals(self, X: np.ndarray, k: int = LOCAL_NEIGHBOURS) -> np.ndarray:
        """``(n, k)`` out-of-fold ``|residual|`` of each row's ``k`` nearest training cells."""
        n = len(np.atleast_2d(X))
        k = min(k, len(self.points))
        out = np.empty((n, k))
        for rows, space, z, complete in self._by_pattern(X):
            _, index = space.tree.query(z, k=k)
            # A row missing any feature — even the day's reference, which weighs
            # nothing in the distance — is predicted worse: its neighbours' scores
            # are their residuals when only the required fields were given.
            residuals = self.residuals if complete else self.partial_residuals
            out[rows] = residuals[np.asarray(index).reshape(len(rows), k)]
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that define it (for storage; :meth:`from_arrays` reverses)."""
        return {
            "aoa_centre": self.centre,
            "aoa_scale": self.scale,
            "aoa_weights": self.weights,
            "aoa_points": self.points,
            "aoa_folds": self.folds,
            "aoa_residuals": self.residuals,
            "aoa_partial_residuals": self.partial_residuals,
        }

    @classmethod
    def from_arrays(
        cls, names: Sequence[str], arrays: Mapping[str, np.ndarray]
    ) -> ApplicabilityDomain:
        return cls(
            tuple(names),
            centre=np.asarray(arrays["aoa_centre"]),
            scale=np.asarray(arrays["aoa_scale"]),
            weights=np.asarray(arrays["aoa_weights"]),
            points=np.asarray(arrays["aoa_points"]),
            folds=np.asarray(arrays["aoa_folds"]),
            residuals=np.asarray(arrays["aoa_residuals"]),
            partial_residuals=np.asarray(
                arrays.get("aoa_partial_residuals", arrays["aoa_residuals"])
            ),
        )
