"""Drift statistics and decisions, as pure functions (no Evidently, no I/O).

The drift report (:mod:`terraops.pipelines.monitoring.drift_report`) hands these same tests to
Evidently, so the HTML report, the JSON summary and the drift map agree.

Why these tests, and not Evidently's defaults (KS p-values under 1,000 rows,
normed Wasserstein ≥ 0.1 above):

- **Cells of a city are not independent draws.** Land cover is spatially
  autocorrelated, so a p-value test on 2,600 cells flags any two cities as
  different, and a 0.1 σ effect size flags two dense cities of the same
  generator. Measured on 256 px tiny cities against a reference of two dense
  cities, another dense city moves the land-cover features by 0.01–0.18 σ (normed
  Wasserstein), a sprawl city by 0.6–1.3 σ, a coastal one by 0.4–1.0 σ. The
  default threshold is therefore **0.5 σ** (``wasserstein``, normed by the
  reference's standard deviation): half a spread of the training data.
- **Context features are constant over a scene** (UHI's
  ``reference_temperature``, the day's rural background temperature): a
  sample of a few training days has a meaningless standard deviation, so a
  normed distance cannot be used. They are tested in their own unit, either
  as a shift (``abs_wasserstein``: Wasserstein distance = mean shift for a
  constant) or — for a baseline the model adds to its output — by how far the
  current values lie **beyond the range of the training days**
  (``beyond_range``, mean distance outside [min, max]): a day inside that
  range is what the relative relationships were learned on, however far from
  the mean. The tolerance is stated per feature (UHI: 3 K; a heat wave is
  ≥ 5 K above the normal, per the WMO heat-wave duration index). A drifted
  context feature is **critical**: it alone makes the dataset drifted.
- **Dataset drift** = share of drifted features ≥ ``drift_share`` (0.5, as
  Evidently) **or** any critical feature drifted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

Method = Literal["wasserstein", "abs_wasserstein", "beyond_range"]

NORM_FLOOR = 1e-3
"""Smallest reference standard deviation a normed distance divides by (as Evidently)."""


@dataclass(frozen=True)
class FeatureRule:
    """How one feature is tested: method, threshold (drift at ≥), critical or not."""

    method: Method = "wasserstein"
    threshold: float = 0.5
    critical: bool = False
    why: str = ""


@dataclass(frozen=True)
class DriftPolicy:
    """Per-feature tests and the dataset-level rule of one service."""

    default: FeatureRule = field(default_factory=FeatureRule)
    per_feature: Mapping[str, FeatureRule] = field(default_factory=dict)
    drift_share: float = 0.5
    min_rows: int = 30
    """Fewer non-null rows than this on either side: the feature is not tested."""

    def rule(self, feature: str) -> FeatureRule:
        return self.per_feature.get(feature, self.default)

    def describe(self) -> dict[str, Any]:
        return {
            "default": {"method": self.default.method, "threshold": self.default.threshold},
            "per_feature": {
                name: {
                    "method": r.method,
                    "threshold": r.threshold,
                    "critical": r.critical,
                    "why": r.why,
                }
                for name, r in self.per_feature.items()
            },
            "drift_share": self.drift_share,
            "dataset_rule": f"share of drifted features >= {self.drift_share:g}, or any "
            "critical feature drifted",
        }


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    method: str
    threshold: float
    score: float | None  # None: not enough data to test
    drifted: bool
    critical: bool
    n_reference: int
    n_current: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "method": self.method,
            "threshold": self.threshold,
            "score": None if self.score is None else round(self.score, 6),
            "drifted": self.drifted,
            "critical": self.critical,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
        }


@dataclass(frozen=True)
class DriftSummary:
    features: list[FeatureDrift]
    drift_share: float
    dataset_drift: bool
    reasons: list[str]

    @property
    def n_tested(self) -> int:
        return sum(1 for f in self.features if f.score is not None)

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "share_of_drifted_features": round(self.drift_share, 4),
            "n_features_tested": self.n_tested,
            "n_drifted_features": len(self.drifted_features),
            "drifted_features": self.drifted_features,
            "reasons": self.reasons,
            "features": {f.feature: f.as_dict() for f in self.features},
        }


# ----- the statistics -----------------------------------------------------------


def wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """First Wasserstein (earth mover's) distance of two 1-D samples."""
    from scipy import stats

    return float(stats.wasserstein_distance(reference, current))


def normed_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein distance in units of the reference's standard deviation (as Evidently)."""
    return wasserstein(reference, current) / max(float(np.std(reference)), NORM_FLOOR)


def beyond_range(reference: np.ndarray, current: np.ndarray) -> float:
    """Mean distance of the current values outside the reference's [min, max] (0 inside)."""
    lo, hi = float(np.min(reference)), float(np.max(reference))
    return float(np.mean(np.maximum(lo - current, 0.0) + np.maximum(current - hi, 0.0)))


def score(method: str, reference: np.ndarray, current: np.ndarray) -> float:
    if method == "wasserstein":
        return normed_wasserstein(reference, current)
    if method == "abs_wasserstein":
        return wasserstein(reference, current)
    if method == "beyond_range":
        return beyond_range(reference, current)
    raise ValueError(f"unknown drift method {method!r}")


def _finite(values: pd.Series | np.ndarray) -> np.ndarray:
    array = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    finite: np.ndarray = array[np.isfinite(array)]
    return finite


def feature_drift(
    feature: str,
    reference: pd.Series | np.ndarray,
    current: pd.Series | np.ndarray,
    rule: FeatureRule,
    min_rows: int,
) -> FeatureDrift:
    """Test one feature (NaN = not given: left out on both sides)."""
    ref, cur = _finite(reference), _finite(current)
    if len(ref) < min_rows or len(cur) < min_rows:
        value: float | None = None
    else:
        value = score(rule.method, ref, cur)
    return FeatureDrift(
        feature=feature,
        method=rule.method,
        threshold=rule.threshold,
        score=value,
        drifted=value is not None and value >= rule.threshold,
        critical=rule.critical,
        n_reference=len(ref),
        n_current=len(cur),
    )


def summarize(features: Iterable[FeatureDrift], policy: DriftPolicy) -> DriftSummary:
    """The dataset-level decision over per-feature results (see the module doc)."""
    results = list(features)
    tested = [f for f in results if f.score is not None]
    drifted = [f for f in tested if f.drifted]
    share = len(drifted) / len(tested) if tested else 0.0
    reasons: list[str] = []
    if tested and share >= policy.drift_share:
        reasons.append(
            f"{len(drifted)} of {len(tested)} features drifted "
            f"(share {share:.2f} >= {policy.drift_share:g})"
        )
    for f in drifted:
        if f.critical:
            reasons.append(
                f"critical feature {f.feature} drifted "
                f"({f.method} {f.score:.3g} >= {f.threshold:g})"
            )
    return DriftSummary(results, share, bool(reasons), reasons)


def compare(
    reference: pd.DataFrame, current: pd.DataFrame, features: Iterable[str], policy: DriftPolicy
) -> DriftSummary:
    """Per-feature tests of ``current`` against ``reference`` and the dataset decision."""
    results = []
    for name in features:
        ref = reference[name] if name in reference else pd.Series(dtype=float)
        cur = current[name] if name in current else pd.Series(dtype=float)
        results.append(feature_drift(name, ref, cur, policy.rule(name), policy.min_rows))
    return summarize(results, policy)


# ----- drift per tile (the drift map) --------------------------------------------

SUPPORT_QUANTILES = (0.005, 0.995)
"""The training range of a feature: its central 99 % in the reference."""


def support_bounds(reference: np.ndarray, rule: FeatureRule) -> tuple[float, float]:
    """Where a value is still "like training" for one feature.

    The reference's central 99 %, widened by the feature's drift threshold in its
    own scale: ``threshold`` reference standard deviations for the normed test,
    ``threshold`` units for a context feature (so a heat-wave day at +9 K is out,
    a normal day 1 K beyond the training days is not).
    """
    lo, hi = np.quantile(reference, SUPPORT_QUANTILES)
    if rule.method in ("abs_wasserstein", "beyond_range"):
        margin = rule.threshold
    else:
        margin = rule.threshold * max(float(np.std(reference)), NORM_FLOOR)
    return float(lo - margin), float(hi + margin)


def outside_support(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str], policy: DriftPolicy
) -> np.ndarray:
    """Per current row: is any (given) feature outside its training range?"""
    out = np.zeros(len(current), dtype=bool)
    for name in features:
        if name not in reference or name not in current:
            continue
        ref = _finite(reference[name])
        if len(ref) < policy.min_rows:
            continue
        lo, hi = support_bounds(ref, policy.rule(name))
        values = pd.to_numeric(current[name], errors="coerce").to_numpy(dtype=np.float64)
        out |= np.isfinite(values) & ((values < lo) | (values > hi))
    return out


def tile_drift_scores(
    reference: pd.DataFrame,
    cells: pd.DataFrame,
    features: list[str],
    policy: DriftPolicy,
    *,
    shape: tuple[int, int],
    tile_cells: int,
    min_cells: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Share of a tile's cells outside the training range, per ``tile_cells``² block.

    Why not the report's distribution tests per tile: a 200 m tile is one
    neighbourhood, and a neighbourhood never has the distribution of a whole
    city — even the training cities' own tiles would "drift". The map instead
    shows where the model is asked to **extrapolate**: cells with any feature
    outside :func:`support_bounds`. ``cells`` carries the cell-grid
    ``row``/``col`` (a cell may appear in several rows, e.g. one per storm).
    Returns (score grid, drifted flag = score ≥ 0.5) at tile resolution; tiles
    with fewer than ``min_cells`` rows are NaN.
    """
    rows = -(-shape[0] // tile_cells)
    cols = -(-shape[1] // tile_cells)
    novel = outside_support(reference, cells, features, policy).astype(np.float64)
    tile = (cells["row"].to_numpy() // tile_cells) * cols + cells["col"].to_numpy() // tile_cells
    counts = np.bincount(tile, minlength=rows * cols)
    hits = np.bincount(tile, weights=novel, minlength=rows * cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(counts >= min_cells, hits / np.maximum(counts, 1), np.nan)
    scores = share.reshape(rows, cols).astype(np.float32)
    flags = (np.nan_to_num(scores, nan=0.0) >= 0.5).astype(np.uint8)
    return scores, flags


def sample_rows(table: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows, drawn without replacement (deterministic)."""
    if len(table) <= max_rows:
        return table.reset_index(drop=True)
    return table.sample(n=max_rows, random_state=seed).reset_index(drop=True)
