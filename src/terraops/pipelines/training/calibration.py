"""Calibrate a freshly trained model: conformal intervals and the area of applicability.

Why held-out *cities*: a new city is what the model is asked about, and cells
of one city share their errors (the same sensor day, the same morphology), so
residuals of cells from cities the model saw are far too small. The
leave-one-scene-out models of cross-validation (each scene is one city) give
every training cell a residual from a model that never saw its city; those
residuals are the conformal calibration set, and those models are kept as the
version's *members* (the spread of a what-if Δ). With a single scene there is
no other city: spatial blocks are held out instead and the record says so.

Each cell is scored twice: with every feature, and as a request that gives
only the required fields (its model prediction then degrades, and the
difficulty model learns that), so intervals stay honest for both.

The variants of :mod:`terraops.domain.uncertainty` are compared on the same
held-out-city residuals — each city in turn is the test set, calibrated on the
others, every difficulty cross-fitted inside them (a calibration city's scores
use a difficulty that never saw it; the test city's uses one fitted on all the
calibration cities) — and the one kept is the one with the smallest interval
score among those whose coverage falls short of the level by at most 5 points
in no land-cover class (each class's coverage averaged over the held-out
cities, the city being the unit a new request comes from; else the one
closest to it): validity, then sharpness. Conformal guarantees are lower
bounds, and a band wider than needed already pays for it in the interval
score, so over-coverage does not rule a variant out. The Mondrian variants
are city-aware: a class keeps its own quantile only with scores from enough
cities, and each city weighs the same in it.

Flood is a classifier whose probabilities are already calibrated: it gets the
area of applicability and its reliability per design-storm size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from terraops.adapters.uncertainty_bundle import ARTIFACT, save_uncertainty
from terraops.domain.conformal import CvPlusScores
from terraops.domain.uncertainty import (
    CELL_CLASSES,
    MONDRIAN_MIN_SCORES,
    VARIANTS,
    ApplicabilityDomain,
    ConformalScores,
    cell_classes,
    city_offsets,
    city_term,
    coverage_table,
    difficulty_inputs,
    with_city_term,
    within_city,
)
from terraops.pipelines.training.calibration_classifier import calibrate_classifier
from terraops.pipelines.training.calibration_cvplus import PairModels, fit_cv_plus, pair_models
from terraops.pipelines.training.calibration_types import Calibration
from terraops.pipelines.training.cross_validation import Evaluation, HeldOut, predict, to_arrays
from terraops.services.base import ServiceDefinition

LEVEL = 0.9
#: A class's coverage may miss the level by this much before a variant is passed over.
CLASS_TOLERANCE = 0.05
#: The difficulty model: small and strongly regularised (it is fitted and used on the
#: same calibration cells, so it must not learn their noise).
DIFFICULTY_PARAMS: dict[str, Any] = {
    "n_estimators": 120,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 200,
    "subsample": 0.8,
    "subsample_freq": 1,
    "verbose": -1,
    "n_jobs": 1,
}
AOA_MAX_POINTS = 2000
#: The variants centred on the served model (``cv_plus`` is centred on the members).
_SPLIT_VARIANTS = tuple(v for v in VARIANTS if v != "cv_plus")


@dataclass(frozen=True)
class CalibrationSet:
    """Every training cell twice (all features; required only), with held-out predictions."""

    X: np.ndarray
    y: np.ndarray
    prediction: np.ndarray
    group: np.ndarray  # held-out fold (city) code
    degraded: np.ndarray  # True: the copy with only the required features
    classes: np.ndarray

    @property
    def abs_residual(self) -> np.ndarray:
        return np.abs(self.y - self.prediction)


def _held_out(evaluation: Evaluation) -> tuple[str, HeldOut]:
    if "scene_cv" in evaluation.held_out:
        return "city", evaluation.held_out["scene_cv"]
    return "spatial block (one city only)", evaluation.held_out["spatial_cv"]


def _groups(held: HeldOut, n_rows: int) -> np.ndarray:
    group = np.full(n_rows, -1, dtype=np.int64)
    for k, fold in enumerate(held.folds):
        group[fold.test] = k
    return group


def calibration_set(
    service: ServiceDefinition, examples: pd.DataFrame, held: HeldOut
) -> CalibrationSet:
    data = to_arrays(service, examples)
    group = _groups(held, len(data.y))
    degraded_X = data.X.copy()
    degraded_X[:, data.optional] = np.nan
    degraded_prediction = np.full(len(data.y), np.nan)
    for fold, model in zip(held.folds, held.models, strict=True):
        degraded_prediction[fold.test] = predict(service, model, degraded_X[fold.test], data.names)
    X = np.vstack([data.X, degraded_X])
    return CalibrationSet(
        X=X,
        y=np.concatenate([data.y, data.y]),
        prediction=np.concatenate([held.prediction, degraded_prediction]),
        group=np.concatenate([group, group]),
        degraded=np.repeat([False, True], len(data.y)),
        classes=cell_classes(X, data.names),
    )


def feature_weights(service: ServiceDefinition, final_model: Any) -> np.ndarray:
    """Gain importance per feature in the service's order (the baseline: 0, not a model input)."""
    gain = dict(
        zip(
            service.model_inputs,
            final_model.booster_.feature_importance(importance_type="gain"),
            strict=True,
        )
    )
    return np.array([float(gain.get(name, 0.0)) for name in service.feature_names])


@dataclass(frozen=True)
class Difficulty:
    """A fitted difficulty: ``s(x)`` (a model of ``|residual|``, floored) and, for
    the ``mondrian_city`` variant, the city term ``τ`` per stratum (whether the
    day's reference was given): ``sqrt(τ² + s²)``."""

    model: Any
    floor: float
    baseline_column: int | None
    tau: np.ndarray | None = None

    def __call__(self, X: np.ndarray) -> np.ndarray:
        rows = difficulty_inputs(X, self.baseline_column)
        spread = np.maximum(np.asarray(self.model.predict(rows), dtype=np.float64), self.floor)
        if self.tau is None:
            return spread
        return with_city_term(spread, self.tau, _stratum(X, self.baseline_column))


def _stratum(X: np.ndarray, baseline_column: int | None) -> np.ndarray:
    """1 where the day's reference (the baseline) is given, else 0."""
    if baseline_column is None:
        return np.ones(len(X), dtype=np.int64)
    return np.isfinite(np.asarray(X)[:, baseline_column]).astype(np.int64)


def fit_difficulty(
    cal: CalibrationSet, rows: np.ndarray, with_city: bool, baseline_column: int | None, seed: int
) -> Difficulty:
    """The difficulty of ``rows``' cells: of ``|residual|`` or, ``with_city``, of the
    within-city ``|residual − city offset|`` plus the between-city term."""
    from lightgbm import LGBMRegressor

    X, residual = cal.X[rows], (cal.y - cal.prediction)[rows]
    target, tau = np.abs(residual), None
    if with_city:
        stratum = _stratum(X, baseline_column)
        offsets = city_offsets(residual, cal.group[rows], stratum)
        target = within_city(residual, cal.group[rows], stratum, offsets)
        tau = city_term(offsets)
    model = LGBMRegressor(**DIFFICULTY_PARAMS, random_state=seed)
    model.fit(difficulty_inputs(X, baseline_column), target)
    floor = max(float(np.quantile(target, 0.05)), 1e-6)
    return Difficulty(model, floor, baseline_column, tau)


def cross_fitted_difficulty(
    cal: CalibrationSet, rows: np.ndarray, with_city: bool, baseline_column: int | None, seed: int
) -> np.ndarray:
    """The difficulty of every cell in ``rows``, each city's from a fit without it
    (with one city only there is no other: then fitted on it, in-sample)."""
    out = np.full(len(cal.y), np.nan)
    cities = np.unique(cal.group[rows])
    if len(cities) < 2:
        out[rows] = fit_difficulty(cal, rows, with_city, baseline_column, seed)(cal.X[rows])
        return out
    for city in cities:
        own = rows & (cal.group == city)
        difficulty = fit_difficulty(cal, rows & ~own, with_city, baseline_column, seed)
        out[own] = difficulty(cal.X[own])
    return out


def _domain(
    cal: CalibrationSet, pick: np.ndarray, names: list[str], weights: np.ndarray, seed: int
) -> ApplicabilityDomain:
    """The area of applicability of the full-feature cells in ``pick``."""
    rows = pick & ~cal.degraded
    half = len(cal.y) // 2  # the required-only copy of cell i is row i + half
    return ApplicabilityDomain.fit(
        cal.X[rows],
        names,
        weights,
        cal.group[rows],
        cal.abs_residual[rows],
        cal.abs_residual[np.flatnonzero(rows) + half],
        max_points=AOA_MAX_POINTS,
        seed=seed,
    )


def compare_variants(
    cal: CalibrationSet,
    names: list[str],
    weights: np.ndarray,
    baseline_column: int | None,
    seed: int,
    pairs: PairModels | None = None,
) -> dict[str, Any]:
    """Coverage, width and interval score of every variant, each city held out in turn
    (``cv_plus`` only given the pairwise models; else it is left out)."""
    lower = {v: np.full(len(cal.y), np.nan) for v in VARIANTS}
    upper = {v: np.full(len(cal.y), np.nan) for v in VARIANTS}
    inside = np.zeros(len(cal.y), dtype=bool)
    abs_residual = cal.abs_residual
    for g in np.unique(cal.group):
        test, train = cal.group == g, cal.group != g
        domain = _domain(cal, train, names, weights, seed)
        _, inside[test] = domain.dissimilarity(cal.X[test])
        neighbours = domain.neighbour_residuals(cal.X[test])
        # (train, test) difficulty per kind: none (local), of |residual|, with the city term
        difficulties: dict[bool | None, tuple[np.ndarray, np.ndarray]] = {}
        difficulties[None] = (np.ones(int(train.sum())), np.ones(int(test.sum())))
        for with_city in (False, True):
            crossed = cross_fitted_difficulty(cal, train, with_city, baseline_column, seed)
            fitted = fit_difficulty(cal, train, with_city, baseline_column, seed)
            difficulties[with_city] = (crossed[train], fitted(cal.X[test]))
        if pairs is not None:
            every = np.full(len(cal.y), np.nan)
            every[train], every[test] = difficulties[True]
            lower["cv_plus"][test], upper["cv_plus"][test] = pairs.bounds(
                int(g), cal.y, cal.classes, every, LEVEL
            )
        for variant in _SPLIT_VARIANTS:
            kind = None if variant == "local" else variant == "mondrian_city"
            d_train, d_test = difficulties[kind]
            scores = ConformalScores.fit(
                variant, abs_residual[train], d_train, cal.classes[train], cal.group[train]
            )
            half = scores.half_width(LEVEL, d_test, cal.classes[test], neighbours)
            lower[variant][test] = cal.prediction[test] - half
            upper[variant][test] = cal.prediction[test] + half
    full = ~cal.degraded
    tables: dict[str, Any] = {}
    for variant in VARIANTS if pairs is not None else _SPLIT_VARIANTS:
        lo, hi = lower[variant], upper[variant]

        def table(pick: np.ndarray, lo: np.ndarray = lo, hi: np.ndarray = hi) -> dict[str, Any]:
            return coverage_table(cal.y[pick], lo[pick], hi[pick], LEVEL, cal.classes[pick])

        tables[variant] = {
            "all_cells": table(full),
            "city_mean_classes": _city_mean_classes(cal, full, lo, hi),
            "inside_domain": table(full & inside),
            "required_fields_only": table(cal.degraded)["overall"],
            "per_city": {
                int(g): table(full & (cal.group == g))["overall"]["coverage"]
                for g in np.unique(cal.group)
            },
        }
    return {
        "variants": tables,
        "share_inside_domain": float(inside[full].mean()),
    }


def _city_mean_classes(
    cal: CalibrationSet, pick: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> dict[str, float]:
    """Per land-cover class, each held-out city's coverage averaged over the cities with
    ``MONDRIAN_MIN_SCORES // 2`` cells of it (NaN: none). The city is the unit a new
    request comes from: counted by cell, the one or two cities holding most of a class
    (the coastal ones, for water) would decide its coverage alone."""
    covered = (cal.y >= lower) & (cal.y <= upper)
    out = {}
    for code, name in enumerate(CELL_CLASSES):
        per_city = [
            covered[rows].mean()
            for g in np.unique(cal.group)
            if (rows := pick & (cal.group == g) & (cal.classes == code)).sum()
            >= MONDRIAN_MIN_SCORES // 2
        ]
        out[name] = float(np.mean(per_city)) if per_city else float("nan")
    return out


def class_coverage(table: dict[str, Any]) -> dict[str, float]:
    """The per-class coverage the choice of variant looks at: city-averaged
    (:func:`_city_mean_classes`) where recorded, else counted by cell (classes with
    fewer than 50 cells left out)."""
    if "city_mean_classes" in table:
        return {k: v for k, v in table["city_mean_classes"].items() if np.isfinite(v)}
    classes = table["all_cells"]["classes"]
    return {name: c["coverage"] for name, c in classes.items() if c["n"] >= 50}


def classes_without_interval(tables: dict[str, Any]) -> list[str]:
    """Land-cover classes no variant calibrates on held-out cities (every one short of
    the level by more than the tolerance): how the model errs on them in a city it did not see
    cannot be told from the others (water: a river in one city, the sea in another),
    so they get no interval rather than a wrong one."""
    coverage = [class_coverage(t) for t in tables.values()]
    return [
        name
        for name in CELL_CLASSES
        if all(name in c and LEVEL - c[name] > CLASS_TOLERANCE for c in coverage)
    ]


def choose_variant(tables: dict[str, Any], skip: Sequence[str] = ()) -> tuple[str, str]:
    """The kept variant and why (see the module docstring); ``skip``: classes left
    out of the comparison (those :func:`classes_without_interval` names)."""

    def worst_shortfall(variant: str) -> float:
        classes = class_coverage(tables[variant])
        short = [LEVEL - c for name, c in classes.items() if name not in skip]
        short.append(LEVEL - tables[variant]["required_fields_only"]["coverage"])
        return max(short)

    def score(variant: str) -> float:
        return float(tables[variant]["all_cells"]["overall"]["interval_score"])

    compared = [v for v in VARIANTS if v in tables]
    passing = [v for v in compared if worst_shortfall(v) <= CLASS_TOLERANCE]
    if passing:
        best = min(passing, key=score)
        others = ", ".join(f"{v} {score(v):.3g}" for v in compared if v != best)
        return best, (
            f"no land-cover class given an interval (averaged over held-out cities), nor "
            f"requests with only the required fields, below {LEVEL - CLASS_TOLERANCE:.0%} "
            f"coverage, and the smallest interval score ({score(best):.3g}; {others})"
        )
    best = min(compared, key=worst_shortfall)
    return best, (
        f"every variant left a land-cover class given an interval (averaged over held-out "
        f"cities) or required-only requests below {LEVEL - CLASS_TOLERANCE:.0%} coverage; "
        f"this one came closest (worst short by {worst_shortfall(best):.1%})"
    )


def _metrics(variant: str, tables: dict[str, Any], share_inside: float) -> dict[str, float]:
    table = tables[variant]["all_cells"]
    metrics = {
        "interval_coverage_90": table["overall"]["coverage"],
        "interval_mean_width_90": table["overall"]["mean_width"],
        "interval_score_90": table["overall"]["interval_score"],
        "interval_coverage_90_inside_domain": tables[variant]["inside_domain"]["overall"][
            "coverage"
        ],
        "interval_coverage_90_required_only": tables[variant]["required_fields_only"]["coverage"],
        "aoa_share_inside_held_out": share_inside,
    }
    for name, row in table["classes"].items():
        metrics[f"interval_coverage_90_{name}"] = row["coverage"]
    for name, value in tables[variant].get("city_mean_classes", {}).items():
        metrics[f"interval_coverage_90_{name}_city_mean"] = value
    for other in tables:
        held = tables[other]["all_cells"]
        metrics[f"interval_score_90_{other}"] = held["overall"]["interval_score"]
        metrics[f"interval_coverage_90_{other}"] = held["overall"]["coverage"]
        metrics[f"interval_mean_width_90_{other}"] = held["overall"]["mean_width"]
        gaps = [abs(c - LEVEL) for c in class_coverage(tables[other]).values()]
        metrics[f"interval_worst_class_gap_90_{other}"] = max(gaps, default=float("nan"))
    return {k: float(v) for k, v in metrics.items() if np.isfinite(v)}


@dataclass(frozen=True)
class FittedVariant:
    """One variant calibrated on every held-out cell: its scores (cross-fitted
    difficulties), the difficulty a new city's cells get (fitted on all; None for
    ``local``) and, for ``cv_plus``, the scores by member."""

    scores: ConformalScores
    difficulty: Difficulty | None
    cv_plus: CvPlusScores | None = None


def fit_variant(cal: CalibrationSet, variant: str, column: int | None, seed: int) -> FittedVariant:
    """See :class:`FittedVariant` (``column``: the baseline feature's, if any)."""
    everything = np.ones(len(cal.y), dtype=bool)
    if variant == "local":
        local = ConformalScores.fit(variant, cal.abs_residual, everything, cal.classes)
        return FittedVariant(local, None)
    with_city = variant in ("mondrian_city", "cv_plus")
    crossed = cross_fitted_difficulty(cal, everything, with_city, column, seed)
    difficulty = fit_difficulty(cal, everything, with_city, column, seed)
    scores = ConformalScores.fit(variant, cal.abs_residual, crossed, cal.classes, cal.group)
    if variant != "cv_plus":
        return FittedVariant(scores, difficulty)
    cv_plus = fit_cv_plus(cal.abs_residual, crossed, cal.group, cal.classes)
    return FittedVariant(scores, difficulty, cv_plus)


def calibrate(
    service: ServiceDefinition,
    examples: pd.DataFrame,
    evaluation: Evaluation,
    final_model: Any,
    seed: int = 0,
    *,
    params: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
) -> Calibration:
    """Fit and compare the interval variants (regression) or the reliability (classifier).

    ``params``, ``training``: the model's and training's settings, to fit the
    pairwise models that compare ``cv_plus`` honestly (without them it is not
    compared, nor kept)."""
    unit, held = _held_out(evaluation)
    cal = calibration_set(service, examples, held)
    weights = feature_weights(service, final_model)
    members = [model.booster_ for model in held.models]
    names = service.feature_names
    everything = np.ones(len(cal.y), dtype=bool)
    domain = _domain(cal, everything, names, weights, seed)
    base = {"level": LEVEL, "held_out_unit": unit, "n_held_out": len(held.folds)}
    if service.task == "binary":
        return calibrate_classifier(service, examples, evaluation, domain, members, base)
    baseline_column = names.index(service.baseline) if service.baseline in names else None
    pairs = pair_models(service, examples, cal.X, cal.group, params, training)
    comparison = compare_variants(cal, names, weights, baseline_column, seed, pairs)
    without = classes_without_interval(comparison["variants"])
    variant, why = choose_variant(comparison["variants"], without)
    fitted = fit_variant(cal, variant, baseline_column, seed)
    scores, difficulty = fitted.scores, fitted.difficulty
    report = {
        **base,
        "variant": variant,
        "reason": why,
        "cell_classes": list(CELL_CLASSES),
        "classes_without_interval": without,
        **comparison,
    }
    metrics = _metrics(variant, comparison["variants"], comparison["share_inside_domain"])

    def write(folder: Path) -> Path:
        return save_uncertainty(
            folder,
            scores=scores,
            domain=domain,
            difficulty_booster=None if difficulty is None else difficulty.model.booster_,
            difficulty_floor=1.0 if difficulty is None else difficulty.floor,
            difficulty_city_term=None if difficulty is None else difficulty.tau,
            baseline_column=baseline_column,
            members=members,
            report=report,
            cv_plus=fitted.cv_plus,
        )

    meta = {
        "artifact": ARTIFACT,
        "variant": variant,
        "held_out_unit": unit,
        "members": len(members),
        "classes_without_interval": ",".join(without) or "none",
    }
    return Calibration(meta, metrics, report, write)
