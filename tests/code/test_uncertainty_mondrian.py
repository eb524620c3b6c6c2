"""City-aware Mondrian intervals: per-class quantiles over exchangeable cities.

The city is the exchangeable unit (a new city is what the model is asked
about), so a land-cover class keeps its own quantile only with scores from
enough cities, and within a quantile every city weighs the same.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from terraops.adapters.uncertainty_bundle import load_uncertainty, save_uncertainty
from terraops.domain.conformal import EXACT_ROWS, TOLERANCE, CvPlusScores, member_weights
from terraops.domain.uncertainty import (
    CELL_CLASSES,
    MIN_CLASS_CITIES,
    MONDRIAN_MIN_SCORES,
    ApplicabilityDomain,
    ConformalScores,
    conformal_quantile,
    weighted_conformal_quantile,
)
from terraops.pipelines.training.calibration import (
    choose_variant,
    class_coverage,
    classes_without_interval,
)

WATER, BUILT, TREE, OPEN = range(4)


def _city(rng: np.random.Generator, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """One city's (classes, |residual|): its own mix of classes and its own offset per
    class (an error no cell feature explains), plus noise whose scale depends on the class."""
    scale = np.array([0.5, 1.0, 2.0, 1.0])
    classes = rng.choice(4, size=cells, p=rng.dirichlet(np.full(4, 2.0))).astype(np.int8)
    offset = rng.normal(0.0, 0.4, 4)
    return classes, np.abs(offset[classes] + rng.normal(size=cells) * scale[classes])


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_city_aware_mondrian_covers_every_class_of_new_exchangeable_cities(seed: int) -> None:
    """Calibrated on ten cities, each class of a new city drawn from the same law is
    covered at the level within the tolerance the coverage target allows (5 points),
    averaged over many calibrations."""
    rng = np.random.default_rng(seed)
    hits: list[list[np.ndarray]] = [[] for _ in CELL_CLASSES]
    for _ in range(120):
        parts = [_city(rng, int(rng.integers(200, 600))) for _ in range(10)]
        classes = np.concatenate([p[0] for p in parts])
        residual = np.concatenate([p[1] for p in parts])
        cities = np.repeat(np.arange(10), [len(p[0]) for p in parts])
        scores = ConformalScores.fit("mondrian", residual, np.ones(len(residual)), classes, cities)
        new_classes, new_residual = _city(rng, 400)
        half = scores.half_width(0.9, np.ones(400), new_classes)
        for code, found in enumerate(hits):
            pick = new_classes == code
            found.append(new_residual[pick] <= half[pick])
    coverage = [float(np.concatenate(found).mean()) for found in hits]
    assert min(coverage) >= 0.9 - 0.05, coverage


def test_a_class_seen_in_too_few_cities_falls_back_to_the_pooled_quantile() -> None:
    """Water in two cities (enough cells, too few cities) and a handful of tree cells:
    both use the pooled quantile; built and open, in every city, keep their own."""
    rng = np.random.default_rng(0)
    cities = np.repeat(np.arange(4), 200)
    classes = np.where(np.arange(800) % 2 == 0, BUILT, OPEN).astype(np.int8)
    classes[(cities < 2) & (np.arange(800) % 4 == 1)] = WATER  # 50 a city, in 2 cities
    classes[:10] = TREE
    residual = rng.exponential(size=800) * np.where(classes == BUILT, 3.0, 1.0)
    scores = ConformalScores.fit("mondrian", residual, np.ones(800), classes, cities)
    assert set(scores.per_class) == {BUILT, OPEN}
    assert MIN_CLASS_CITIES > 2 and (classes == WATER).sum() >= MONDRIAN_MIN_SCORES
    half = scores.half_width(0.9, np.ones(4), np.array([WATER, BUILT, TREE, OPEN]))
    assert half[0] == half[2] == scores.quantile(0.9)
    assert half[1] == scores.quantile(0.9, BUILT) > half[3] == scores.quantile(0.9, OPEN)


def test_every_city_weighs_the_same_in_a_city_aware_quantile() -> None:
    """900 calm scores from one city and 100 rough ones from another: counted by cell
    the median is calm; by city, each city is half the weight and the median is rough."""
    residual = np.concatenate([np.ones(900), np.full(100, 10.0)])
    cities = np.repeat([0, 1], [900, 100])
    classes = np.full(1000, BUILT, dtype=np.int8)
    by_cell = ConformalScores.fit("mondrian", residual, np.ones(1000), classes)
    by_city = ConformalScores.fit("mondrian", residual, np.ones(1000), classes, cities)
    assert by_cell.quantile(0.5, BUILT) == by_cell.quantile(0.5) == 1.0
    assert by_city.quantile(0.5) == 10.0  # (two cities: no class of its own)
    assert by_city.pooled_weights is not None
    assert by_city.pooled_weights.sum() == pytest.approx(1000)


@given(
    arrays(np.float64, st.integers(1, 200), elements=st.floats(-1e3, 1e3)), st.floats(0.05, 0.95)
)
def test_unit_weights_give_the_plain_conformal_quantile(scores: np.ndarray, level: float) -> None:
    ordered = np.sort(scores)
    expected = conformal_quantile(scores, level)
    assert weighted_conformal_quantile(ordered, np.ones(len(scores)), level) == expected


def _brute_balanced(
    scores: np.ndarray, member: np.ndarray, mu: np.ndarray, d: float, level: float, k: int
) -> tuple[float, float]:
    """City-balanced CV+ bounds of one row from the definition: the first candidate
    whose running weight reaches the rank."""
    n = len(scores)
    weights = member_weights(np.bincount(member, minlength=k), balanced=True)[member]

    def first_reaching(values: np.ndarray, rank: int) -> float:
        order = np.argsort(values, kind="stable")
        reached = np.cumsum(weights[order])
        return float(values[order][np.searchsorted(reached, rank - 1e-9 * rank)])

    rank = math.ceil(level * (n + 1) - 1e-9)
    if rank > n:
        return -math.inf, math.inf
    upper = first_reaching(mu[member] + d * scores, rank)
    lower = -first_reaching(-mu[member] + d * scores, rank)
    return lower, upper


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 6), st.integers(1, 40))
def test_balanced_cv_plus_bounds_are_the_weighted_order_statistics(
    seed: int, members: int, rows: int
) -> None:
    """A few rows are selected exactly; many are searched, never narrower and at most
    the search tolerance wider."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 400))
    member = np.concatenate([np.arange(members), rng.integers(0, members, n - members)])
    scores = rng.exponential(size=n)
    calibration = CvPlusScores(scores, member, np.zeros(n), members, 50, 3, balanced=True)
    mu, d = rng.normal(0, 2, (members, rows)), rng.uniform(0.2, 3, rows)
    lower, upper = calibration.bounds(0.9, mu, d, np.zeros(rows))
    slack = 1e-9 if 2 * rows <= EXACT_ROWS else TOLERANCE
    for j in range(rows):
        exact_lower, exact_upper = _brute_balanced(scores, member, mu[:, j], d[j], 0.9, members)
        assert exact_upper - 1e-9 <= upper[j] <= exact_upper + slack
        assert exact_lower - slack <= lower[j] <= exact_lower + 1e-9


def test_balancing_changes_nothing_when_cities_are_the_same_size() -> None:
    rng = np.random.default_rng(1)
    member, scores = np.repeat(np.arange(4), 60), rng.exponential(size=240)
    mu, d = rng.normal(size=(4, 30)), rng.uniform(0.5, 2, 30)
    plain = CvPlusScores(scores, member, np.zeros(240), 4, 50, 3)
    balanced = CvPlusScores(scores, member, np.zeros(240), 4, 50, 3, balanced=True)
    for a, b in zip(
        plain.bounds(0.9, mu, d, np.zeros(30)),
        balanced.bounds(0.9, mu, d, np.zeros(30)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, atol=TOLERANCE)


def test_the_stored_calibration_keeps_city_weights_and_balancing(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    names = ["ndvi", "building_density"]
    X = rng.random((300, 2))
    cities, classes = np.repeat(np.arange(3), 100), np.full(300, BUILT, dtype=np.int8)
    residual = rng.exponential(size=300) * (1 + cities)
    scores = ConformalScores.fit("mondrian", residual, np.ones(300), classes, cities)
    cv_plus = CvPlusScores(residual, cities, classes, 3, 50, 3, balanced=True)
    domain = ApplicabilityDomain.fit(X, names, np.ones(2), cities, residual)
    folder = save_uncertainty(
        tmp_path / "uncertainty",
        scores=scores,
        domain=domain,
        difficulty_booster=None,
        difficulty_floor=1.0,
        members=[],
        report={"variant": "mondrian"},
        cv_plus=cv_plus,
    )
    loaded = load_uncertainty(folder, names, lambda _path: lambda rows: rows[:, 0])
    rows = np.array([[0.5, 0.5], [0.1, 0.9]])
    np.testing.assert_array_equal(
        loaded.half_width(rows, 0.9), scores.half_width(0.9, np.ones(2), np.array([BUILT, BUILT]))
    )
    assert loaded.scores.quantile(0.5, BUILT) == scores.quantile(0.5, BUILT)
    assert loaded.cv_plus is not None and loaded.cv_plus.balanced


def test_the_choice_looks_at_each_class_averaged_over_held_out_cities() -> None:
    """Counted by cell, water is decided by the coastal city that holds most of it;
    averaged over the cities is what counts. A class may cover more than the level
    (the interval score pays for the width), not less than the level minus 5 points."""

    def table(water_by_cell: float, water_by_city: float, score: float) -> dict[str, Any]:
        classes = {name: {"n": 500, "coverage": 0.9} for name in CELL_CLASSES}
        classes["water"]["coverage"] = water_by_cell
        return {
            "all_cells": {
                "overall": {"coverage": 0.9, "interval_score": score},
                "classes": classes,
            },
            "city_mean_classes": {**{name: 0.9 for name in CELL_CLASSES}, "water": water_by_city},
            "required_fields_only": {"coverage": 0.9},
        }

    tables = {"normalised": table(0.9, 0.9, 5.0), "cv_plus": table(0.99, 0.93, 4.5)}
    assert class_coverage(tables["cv_plus"])["water"] == 0.93
    assert classes_without_interval(tables) == []
    assert choose_variant(tables)[0] == "cv_plus"
    tables["cv_plus"]["city_mean_classes"]["water"] = 0.97  # wider than needed: paid in score
    assert choose_variant(tables)[0] == "cv_plus"
    tables["cv_plus"]["city_mean_classes"]["water"] = 0.84  # a promise broken: ruled out
    assert choose_variant(tables)[0] == "normalised"
