"""Numpy metrics agree with scikit-learn's reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from terraops.domain import metrics

seeds = st.integers(0, 10_000)


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(2, 300))
def test_regression_metrics_match_sklearn(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(30, 3, n)
    p = y + rng.normal(0, 1, n)
    got = metrics.regression_metrics(y, p)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert got["r2"] == pytest.approx(skm.r2_score(y, p))
    assert got["bias"] == pytest.approx(np.mean(p - y))


@settings(max_examples=60, deadline=None)
@given(seeds, st.integers(2, 300), st.booleans())
def test_binary_metrics_match_sklearn(seed: int, n: int, coarse: bool) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    y[0], y[1] = 0.0, 1.0  # both classes present
    p = np.clip(0.6 * y + rng.normal(0.2, 0.25, n), 0, 1)
    if coarse:  # many ties, as a tree model produces
        p = np.round(p, 1)
    got = metrics.binary_metrics(y, p, threshold=0.5)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert got["f1"] == pytest.approx(skm.f1_score(y, p >= 0.5, zero_division=0))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(p, 1e-12, 1 - 1e-12)))


def test_brier_skill_is_zero_for_climatology_and_one_for_perfect() -> None:
    y = np.array([0, 0, 0, 1.0])
    assert metrics.binary_metrics(y, np.full(4, 0.25))["brier_skill"] == pytest.approx(0.0)
    assert metrics.binary_metrics(y, y)["brier_skill"] == pytest.approx(1.0)


def test_single_class_auc_is_nan_not_an_error() -> None:
    got = metrics.binary_metrics(np.zeros(5), np.linspace(0, 1, 5))
    assert np.isnan(got["roc_auc"]) and np.isnan(got["pr_auc"])


def test_reliability_curve_bins() -> None:
    p = np.array([0.05, 0.05, 0.95, 0.95, 0.55])
    y = np.array([0, 1, 1, 1, 0])
    curve = metrics.reliability_curve(y, p, n_bins=10)
    assert curve.count.tolist() == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert curve.observed_frequency[0] == pytest.approx(0.5)
    assert curve.observed_frequency[9] == pytest.approx(1.0)
    assert curve.mean_predicted[5] == pytest.approx(0.55)
    assert np.isnan(curve.mean_predicted[1])


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError):
        metrics.regression_metrics(np.zeros(3), np.zeros(4))
