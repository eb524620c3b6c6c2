"""Conformal intervals and the area of applicability (terraops.domain.uncertainty)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from terraops.domain.conformal import EXACT_ROWS, TOLERANCE, CvPlusScores
from terraops.domain.uncertainty import (
    CELL_CLASSES,
    ApplicabilityDomain,
    ConformalScores,
    cell_classes,
    city_offsets,
    city_term,
    conformal_quantile,
    coverage_table,
    difficulty_inputs,
    interval_score,
    upper_whisker,
    with_city_term,
    within_city,
)
from terraops.pipelines.training.calibration import (
    CalibrationSet,
    choose_variant,
    classes_without_interval,
    compare_variants,
)

NAMES = ["ndvi", "building_density", "water_distance", "tree_cover", "water_fraction"]
finite = st.floats(-1e3, 1e3, allow_nan=False)


@given(arrays(np.float64, st.integers(1, 200), elements=finite), st.floats(0.05, 0.95))
def test_conformal_quantile_bounds_the_finite_sample_rank(scores: np.ndarray, level: float) -> None:
    q = conformal_quantile(scores, level)
    needed = math.ceil((len(scores) + 1) * level)
    if needed > len(scores):
        assert q == math.inf
    else:
        assert int((scores <= q).sum()) >= needed


@pytest.mark.parametrize("level", [0.8, 0.9])
def test_split_conformal_covers_exchangeable_data_at_the_level(level: float) -> None:
    rng = np.random.default_rng(7)
    n_cal, hits = 99, []
    for _ in range(2000):
        draws = np.abs(rng.standard_t(3, size=n_cal + 1))
        hits.append(draws[-1] <= conformal_quantile(draws[:-1], level))
    coverage = float(np.mean(hits))
    # Guarantee: level ≤ coverage ≤ level + 1/(n+1); ± sampling error of 2000 draws.
    assert level - 0.02 <= coverage <= level + 1 / (n_cal + 1) + 0.02


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(5, 60))
def test_training_point_has_zero_dissimilarity(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES)))
    domain = ApplicabilityDomain.fit(
        X, NAMES, rng.random(len(NAMES)) + 0.1, rng.integers(0, 3, n), np.abs(rng.normal(size=n))
    )
    di, inside = domain.dissimilarity(X)
    np.testing.assert_allclose(di, 0.0, atol=1e-9)
    assert inside.all()


def test_far_cells_fall_outside_the_area_of_applicability() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, len(NAMES)))
    domain = ApplicabilityDomain.fit(
        X, NAMES, np.ones(len(NAMES)), rng.integers(0, 4, 400), np.ones(400)
    )
    di, inside = domain.dissimilarity(np.vstack([X[:1] + 0.01, np.full((1, len(NAMES)), 25.0)]))
    assert inside.tolist() == [True, False] and di[1] > di[0]
    # A row missing features is compared in the space of those it gives.
    partial = np.array([[X[3, 0], X[3, 1], X[3, 2], np.nan, np.nan]])
    assert domain.dissimilarity(partial)[0][0] == pytest.approx(0.0, abs=1e-9)


def test_a_feature_no_training_cell_gave_is_left_out_of_the_geometry() -> None:
    """A city without a DEM has no elevation anywhere: its cells are still complete
    training points, and a request without elevation is a complete one."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, len(NAMES)))
    X[:, 2] = np.nan
    residual = np.abs(rng.normal(size=200))
    domain = ApplicabilityDomain.fit(
        X, NAMES, np.ones(len(NAMES)), rng.integers(0, 4, 200), residual, residual + 5.0
    )
    assert len(domain.points) == 200
    di, inside = domain.dissimilarity(X[:3])
    np.testing.assert_allclose(di, 0.0, atol=1e-9)
    assert inside.all()
    neighbours = domain.neighbour_residuals(X[:3], k=1)
    np.testing.assert_allclose(neighbours[:, 0], residual[:3])  # complete: not the +5 ones


@given(
    arrays(np.float64, 80, elements=st.floats(0.01, 10)),
    arrays(np.float64, 20, elements=st.floats(0.01, 10)),
)
def test_normalised_intervals_widen_with_difficulty(residual: np.ndarray, d: np.ndarray) -> None:
    classes = np.zeros(80, dtype=np.int8)
    for variant in ("normalised", "mondrian"):
        scores = ConformalScores.fit(variant, residual, np.ones(80), classes)
        ordered = np.sort(d)
        half = scores.half_width(0.9, ordered, np.zeros(20, dtype=np.int8))
        assert (np.diff(half) >= 0).all()


def test_local_intervals_follow_the_neighbours() -> None:
    scores = ConformalScores.fit("local", np.ones(10), np.ones(10), np.zeros(10))
    calm, rough = np.full((1, 50), 0.1), np.full((1, 50), 3.0)
    assert scores.half_width(0.9, np.ones(1), np.zeros(1), calm)[0] == 0.1
    assert scores.half_width(0.9, np.ones(1), np.zeros(1), rough)[0] == 3.0


def test_cell_classes_use_shares_when_given_and_ndvi_otherwise() -> None:
    nan = np.nan
    X = np.array(
        [
            [0.2, 0.0, 0.0, 0.0, 0.9],  # water share
            [-0.3, 0.0, 0.0, nan, nan],  # negative NDVI, no share: water
            [0.1, 0.5, 100.0, 0.0, 0.0],  # buildings
            [0.4, 0.0, 100.0, 0.6, 0.0],  # canopy
            [0.7, 0.0, 100.0, nan, nan],  # dense vegetation, no canopy share: tree
            [0.4, 0.1, 100.0, 0.1, 0.0],  # grass: open
        ]
    )
    names = [CELL_CLASSES[c] for c in cell_classes(X, NAMES)]
    assert names == ["water", "water", "built", "tree", "tree", "open"]


def test_interval_score_is_the_width_plus_the_scaled_miss() -> None:
    y = np.array([0.0, 5.0, -3.0])
    lower, upper = np.full(3, -1.0), np.full(3, 1.0)
    np.testing.assert_allclose(interval_score(y, lower, upper, 0.9), [2.0, 2 + 20 * 4, 2 + 20 * 2])
    table = coverage_table(y, lower, upper, 0.9, np.zeros(3, dtype=np.int8))
    assert table["overall"]["coverage"] == pytest.approx(1 / 3)
    assert table["classes"]["water"]["n"] == 3


def test_upper_whisker_is_the_largest_value_inside_the_fence() -> None:
    values = np.array([1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 100.0])
    assert upper_whisker(values) == 4.0


def test_mondrian_quantiles_cover_every_class_on_exchangeable_data() -> None:
    """Per-class quantiles hold the level within each class, where a pooled one
    over-covers the calm class and under-covers the rough one."""
    rng = np.random.default_rng(3)
    scale = np.array([0.2, 1.0, 3.0, 1.0])  # water calm, tree rough
    hits: dict[str, list[np.ndarray]] = {"mondrian": [], "normalised": []}
    for _ in range(200):
        classes = rng.integers(0, 4, 2000).astype(np.int8)
        residual = np.abs(rng.normal(size=2000)) * scale[classes]
        test_classes = rng.integers(0, 4, 400).astype(np.int8)
        truth = np.abs(rng.normal(size=400)) * scale[test_classes]
        for variant, found in hits.items():
            scores = ConformalScores.fit(variant, residual, np.ones(2000), classes)
            half = scores.half_width(0.9, np.ones(400), test_classes)
            found.append(np.stack([test_classes, truth <= half]))
    for variant, found in hits.items():
        joined = np.hstack(found)
        per_class = [joined[1][joined[0] == code].mean() for code in range(4)]
        gaps = np.abs(np.array(per_class) - 0.9)
        assert (gaps < 0.01).all() if variant == "mondrian" else gaps.max() > 0.05, per_class


@given(
    arrays(np.float64, 60, elements=st.floats(-5, 5)),
    st.lists(st.floats(0, 3), min_size=2, max_size=2),
)
def test_city_term_adds_in_variance_and_never_shrinks_a_part(
    residual: np.ndarray, tau: list[float]
) -> None:
    cities, stratum = np.repeat(np.arange(3), 20), np.tile([0, 1], 30)
    offsets = city_offsets(residual, cities, stratum)
    within = within_city(residual, cities, stratum, offsets)
    for (city, s), offset in offsets.items():
        pick = (cities == city) & (stratum == s)
        assert np.median(residual[pick] - offset) == pytest.approx(0.0, abs=1e-9)
    spread = with_city_term(within, np.array(tau), stratum)
    assert (spread >= within - 1e-12).all()
    assert (spread >= np.array(tau)[stratum] - 1e-12).all()
    rms = city_term(offsets)
    for s in (0, 1):
        values = [v for (_, k), v in offsets.items() if k == s]
        assert rms[s] == pytest.approx(math.sqrt(np.mean(np.square(values))))


def test_difficulty_sees_the_days_reference_only_as_given_or_not() -> None:
    X = np.array([[0.3, 31.7], [0.5, np.nan], [0.1, 24.0]])
    rows = difficulty_inputs(X, 1)
    assert rows[:, 1].tolist() == [1.0, 0.0, 1.0]
    assert rows[:, 0].tolist() == X[:, 0].tolist()
    assert np.isnan(X[1, 1])  # the caller's rows are left as they were


def _cities_with_offsets(seed: int, cities: int = 6, cells: int = 300) -> CalibrationSet:
    """Held-out-city residuals as training makes them: each city has its own day
    (a reference temperature that names it) and its own offset no feature explains;
    every cell also once more without the reference (the model then uses a typical day)."""
    rng = np.random.default_rng(seed)
    city = np.repeat(np.arange(cities), cells)
    x = rng.random(len(city))
    reference = 20.0 + 3.0 * city
    y = (
        reference
        + 2 * x
        + rng.normal(0, 1.0, cities)[city]
        + rng.normal(size=len(x)) * (0.3 + 2 * x)
    )
    full = np.column_stack([x, reference])
    required_only = np.column_stack([x, np.full(len(x), np.nan)])
    prediction = np.concatenate([reference + 2 * x, 27.5 + 2 * x])
    return CalibrationSet(
        X=np.vstack([full, required_only]),
        y=np.concatenate([y, y]),
        prediction=prediction,
        group=np.concatenate([city, city]),
        degraded=np.repeat([False, True], len(x)),
        classes=np.tile((x > 0.5).astype(np.int8) + 1, 2),
    )


@pytest.mark.slow
def test_every_variant_covers_held_out_cities_when_cities_are_exchangeable() -> None:
    """Cross-fitted difficulties: no variant is scored by a difficulty that saw the
    city (in-sample, the reference names the city and coverage fell to ~0.75)."""
    cal = _cities_with_offsets(0)
    tables = compare_variants(cal, ["x", "reference_temperature"], np.array([1.0, 0.0]), 1, 0)
    for variant, table in tables["variants"].items():
        rows = table["all_cells"]
        assert abs(rows["overall"]["coverage"] - 0.9) <= 0.04, (variant, rows["overall"])
        for name in ("built", "tree"):
            assert abs(rows["classes"][name]["coverage"] - 0.9) <= 0.06, (variant, name)
        assert table["required_fields_only"]["coverage"] >= 0.84, variant


def _brute_cv_plus(
    scores: np.ndarray, member: np.ndarray, mu: np.ndarray, d: float, level: float
) -> tuple[float, float]:
    """CV+ bounds of one row straight from the definition (sorting every candidate)."""
    n = len(scores)
    lows = np.sort(mu[member] - d * scores)
    highs = np.sort(mu[member] + d * scores)
    # ranks with a hair of slack: (1 − 0.9)·210 is 20.999… in floating point
    low_rank = math.floor((1 - level) * (n + 1) + 1e-9)
    high_rank = math.ceil(level * (n + 1) - 1e-9)
    lower = lows[low_rank - 1] if low_rank >= 1 else -math.inf
    upper = highs[high_rank - 1] if high_rank <= n else math.inf
    return float(lower), float(upper)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 6), st.integers(1, 40))
def test_cv_plus_bounds_are_the_order_statistics_of_the_definition(
    seed: int, members: int, rows: int
) -> None:
    """A few rows are selected exactly; many are searched, never narrower and at most
    the search tolerance wider."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    scores, member = rng.exponential(size=n), rng.integers(0, members, n)
    calibration = CvPlusScores(scores, member, np.zeros(n), members, 50, 3)
    mu = rng.normal(0, 2, (members, rows))
    d = rng.uniform(0.2, 3, rows)
    lower, upper = calibration.bounds(0.9, mu, d, np.zeros(rows))
    for j in range(rows):
        exact_lower, exact_upper = _brute_cv_plus(scores, member, mu[:, j], d[j], 0.9)
        slack = 1e-9 if 2 * rows <= EXACT_ROWS else TOLERANCE
        assert exact_upper - 1e-9 <= upper[j] <= exact_upper + slack
        assert exact_lower - slack <= lower[j] <= exact_lower + 1e-9


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 6), st.floats(0.1, 0.3))
def test_cv_plus_covers_at_least_one_minus_twice_alpha_on_exchangeable_data(
    seed: int, folds: int, alpha: float
) -> None:
    """Barber et al. (2021), theorem 4: K-fold CV+ covers ≥ 1 − 2α for exchangeable
    data whatever the (symmetric) fitting algorithm; here a line fitted by least
    squares on every fold but one, heteroscedastic noise, a class per half."""
    rng = np.random.default_rng(seed)
    per_fold, tests = 80, 3000
    x = rng.random(folds * per_fold)
    y = 3 * x + rng.normal(size=len(x)) * (0.2 + x)
    fold = np.repeat(np.arange(folds), per_fold)
    lines = [np.polyfit(x[fold != k], y[fold != k], 1) for k in range(folds)]
    scores = np.empty(len(x))
    for k, line in enumerate(lines):
        scores[fold == k] = np.abs(y[fold == k] - np.polyval(line, x[fold == k]))
    classes = (x > 0.5).astype(np.int64)
    calibration = CvPlusScores(scores, fold, classes, folds, 50, 2)
    x_new = rng.random(tests)
    y_new = 3 * x_new + rng.normal(size=tests) * (0.2 + x_new)
    mu = np.vstack([np.polyval(line, x_new) for line in lines])
    lower, upper = calibration.bounds(1 - alpha, mu, np.ones(tests), (x_new > 0.5).astype(int))
    covered = (y_new >= lower) & (y_new <= upper)
    assert covered.mean() >= 1 - 2 * alpha


def test_a_cv_plus_class_needs_scores_from_enough_cities() -> None:
    """Water seen in one city only: its cells get the scores of every class."""
    member = np.repeat(np.arange(4), 100)
    classes = np.where((member == 0) & (np.arange(400) % 2 == 0), 0, 3)
    calibration = CvPlusScores(np.ones(400), member, classes, 4, 50, 3)
    assert set(calibration.per_class) == {3}
    assert calibration.class_cities() == {0: 1, 3: 4}


def test_a_class_no_variant_calibrates_gets_no_interval_and_does_not_pick_the_variant() -> None:
    """Water off by 30 points in every variant: left out, and the kept variant is
    the one with the best score among those that hold the other classes."""

    def table(water: float, built: float, score: float) -> dict[str, Any]:
        classes = {name: {"n": 100, "coverage": 0.9} for name in CELL_CLASSES}
        classes["water"]["coverage"], classes["built"]["coverage"] = water, built
        overall = {"coverage": 0.9, "interval_score": score}
        return {
            "all_cells": {"overall": overall, "classes": classes},
            "required_fields_only": {"coverage": 0.9},
        }

    tables = {
        "normalised": table(0.60, 0.80, 1.0),
        "mondrian": table(0.59, 0.92, 2.0),
        "local": table(0.5, 0.9, 3.0),
    }
    assert classes_without_interval(tables) == ["water"]
    assert choose_variant(tables, ["water"])[0] == "mondrian"
    assert choose_variant(tables)[0] == "normalised"  # without leaving water out: closest
