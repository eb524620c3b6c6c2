"""Scores for judging a model on a real scene: ranking, offset-free error, the NDVI baseline.

Why these and not plain MAE: a model trained on synthetic cities meets a real
scene whose overall temperature level (the day, the season, the sensor's
calibration) no feature fully observes, so its raw MAE is dominated by one
constant offset. What a planner uses a heat map for is *where* it is hotter,
so the scene is judged by

- the **mean offset** (mean prediction − mean observation), reported, then
  removed: **MAE and RMSE after the offset** measure the spatial pattern;
- the **Spearman rank correlation** (scipy.stats.spearmanr), blind to any
  monotone distortion of the scale;

next to the cheapest honest baseline, a **one-line NDVI regression**
(LST = a + b·NDVI by least squares on the same cells). NDVI alone explains a
large share of LST variance in Landsat studies (−0.6 to −0.9 K per +0.1 NDVI),
so a model that does not rank better than that line adds nothing. The line is
fitted in-sample and its Spearman is taken as |Spearman(NDVI, LST)| — the best
orientation of a one-variable ranking — so every comparison favours the line.

Pure numpy/scipy; no I/O.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise

import numpy as np
from scipy.stats import spearmanr

from terraops.errors import InvalidInputError

MIN_PAIRS = 3
"""Fewest finite pairs a score is computed on (a rank correlation of two points is ±1)."""

IMPERVIOUSNESS_EDGES: tuple[float, ...] = (0.2, 0.5)
"""Strata of a sealed share: open/green (< 0.2), mixed, built-up (≥ 0.5)."""


def _paired(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Two equal-length float arrays, every value finite, at least :data:`MIN_PAIRS` long."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InvalidInputError(f"{what}: {x.size} values against {y.size}")
    if x.size < MIN_PAIRS or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InvalidInputError(
            f"{what} needs at least {MIN_PAIRS} pairs of finite values, got {x.size}",
            hint="drop cells without an observation first",
        )
    return x, y


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant (no ranking to compare)."""
    x, y = _paired(a, b, "spearman")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = spearmanr(x, y).statistic
    return float(rho)


@dataclass(frozen=True)
class OffsetScores:
    """How a prediction matches an observation once the scene's mean offset is removed."""

    n: int
    offset: float  # mean(predicted) − mean(observed)
    mae: float  # raw, offset included
    mae_after_offset: float
    rmse_after_offset: float
    spearman: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def offset_scores(observed: np.ndarray, predicted: np.ndarray) -> OffsetScores:
    """Offset, raw MAE, MAE/RMSE after removing the offset, and Spearman.

    Removing the *mean* offset is the least-squares shift, so RMSE after it is
    the residual standard deviation; MAE after it is what a user who calibrates
    the map with one thermometer reading would still see.
    """
    obs, pred = _paired(observed, predicted, "offset scores")
    residual = pred - obs
    offset = float(residual.mean())
    centred = residual - offset
    return OffsetScores(
        n=int(obs.size),
        offset=offset,
        mae=float(np.mean(np.abs(residual))),
        mae_after_offset=float(np.mean(np.abs(centred))),
        rmse_after_offset=float(np.sqrt(np.mean(centred**2))),
        spearman=spearman(pred, obs),
    )


@dataclass(frozen=True)
class NdviLine:
    """LST = intercept + slope·NDVI, fitted by least squares on the scored cells."""

    intercept: float
    slope: float  # K per unit NDVI
    n: int
    mae: float  # in-sample; a least-squares line has zero mean residual, so = after offset
    rmse: float
    spearman: float  # |Spearman(NDVI, LST)|
    spearman_ndvi_lst: float  # signed, for the record (negative: greener is cooler)

    @property
    def slope_k_per_0_1_ndvi(self) -> float:
        """The slope as the literature quotes it (K per +0.1 NDVI)."""
        return 0.1 * self.slope

    def predict(self, ndvi: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * np.asarray(ndvi, dtype=np.float64)

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "slope_k_per_0_1_ndvi": self.slope_k_per_0_1_ndvi}


def fit_ndvi_line(ndvi: np.ndarray, lst: np.ndarray) -> NdviLine:
    """The one-line NDVI regression on these cells and its in-sample scores."""
    x, y = _paired(ndvi, lst, "NDVI line")
    if np.ptp(x) == 0:
        raise InvalidInputError(
            "NDVI is the same in every cell: no line can be fitted",
            hint="the scene's red/NIR bands look empty or constant; check the import",
        )
    slope, intercept = np.polyfit(x, y, 1)
    residual = intercept + slope * x - y
    rho = spearman(x, y)
    return NdviLine(
        intercept=float(intercept),
        slope=float(slope),
        n=int(x.size),
        mae=float(np.mean(np.abs(residual))),
        rmse=float(np.sqrt(np.mean(residual**2))),
        spearman=abs(rho),
        spearman_ndvi_lst=rho,
    )


@dataclass(frozen=True)
class Verdict:
    """Does the model rank the scene's LST better than the NDVI line?"""

    beats_ndvi_line: bool
    margin: float  # model Spearman − line Spearman (NaN when either is undefined)


def verdict(model_spearman: float, line_spearman: float) -> Verdict:
    """Strictly better ranking wins; an undefined Spearman never does."""
    margin = float(model_spearman) - float(line_spearman)
    return Verdict(beats_ndvi_line=bool(np.isfinite(margin) and margin > 0), margin=margin)


def stratum_labels(edges: Sequence[float] = IMPERVIOUSNESS_EDGES) -> list[str]:
    """``["< 0.2", "0.2–0.5", "≥ 0.5"]`` for the default edges."""
    inner = [f"{lo:g}–{hi:g}" for lo, hi in pairwise(edges)]
    return [f"< {edges[0]:g}", *inner, f"≥ {edges[-1]:g}"]


def strata(values: np.ndarray, edges: Sequence[float] = IMPERVIOUSNESS_EDGES) -> np.ndarray:
    """Stratum index of each value: 0 below the first edge, …, len(edges) at or above the last.

    NaN values get −1 (in no stratum).
    """
    v = np.asarray(values, dtype=np.float64)
    if list(edges) != sorted(edges) or len(edges) == 0:
        raise InvalidInputError(f"stratum edges must be increasing, got {list(edges)}")
    index = np.digitize(v, np.asarray(edges, dtype=np.float64), right=False)
    return np.where(np.isfinite(v), index, -1)


def spearman_or_nan(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`spearman`, or NaN when there are too few pairs (a small stratum)."""
    if np.asarray(a).size < MIN_PAIRS:
        return float("nan")
    return spearman(a, b)


def stratum_scores(
    stratifier: np.ndarray,
    observed: np.ndarray,
    ndvi: np.ndarray,
    models: dict[str, np.ndarray],
    edges: Sequence[float] = IMPERVIOUSNESS_EDGES,
) -> list[dict[str, float | int | str | None]]:
    """n and Spearman of each model and of the NDVI line within each stratum.

    Cheap, and it tells *where* a model wins: NDVI alone ranks green cells
    well, so a model earns its keep in the built-up strata or not at all. The
    line's Spearman is |Spearman(NDVI, LST)| within the stratum (a line fitted
    there), again in the line's favour.
    """
    index = strata(stratifier, edges)
    bounds = [None, *edges, None]
    rows: list[dict[str, float | int | str | None]] = []
    for k, label in enumerate(stratum_labels(edges)):
        m = index == k
        row: dict[str, float | int | str | None] = {
            "stratum": label,
            "lower": bounds[k],
            "upper": bounds[k + 1],
            "n": int(m.sum()),
        }
        for name, predicted in models.items():
            row[f"{name}_spearman"] = spearman_or_nan(predicted[m], observed[m])
        row["ndvi_line_spearman"] = abs(spearman_or_nan(ndvi[m], observed[m]))
        rows.append(row)
    return rows
