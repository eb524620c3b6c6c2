"""Conformal intervals and the area of applicability (terraops.domain.uncertainty)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from terraops.domain.uncertainty import (
    CELL_CLASSES,
    ApplicabilityDomain,
    ConformalScores,
    cell_classes,
    conformal_quantile,
    coverage_table,
    interval_score,
    upper_whisker,
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
