"""``Predictor.predict_row`` (the point query's path) gives exactly ``predict``'s numbers."""

from __future__ import annotations

import math
from pathlib import Path

import lightgbm as lgb
import numpy as np

from terraops.adapters.model_bundle import Baseline, Predictor, SingleRowPredictor


def test_predict_row_matches_predict_with_baseline_and_missing_inputs() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (400, 3))
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "num_threads": 1, "num_leaves": 7},
        lgb.Dataset(X, X @ [1.0, -2.0, 0.5]),
        num_boost_round=20,
    )
    predictor = Predictor(
        service="uhi",
        feature_names=["a", "b", "base", "c"],  # "base" is the baseline column
        task="regression",
        booster=booster,
        path=Path("unused"),
        single_row=SingleRowPredictor(booster, 3),
        baseline=Baseline(column=2, default=30.0),
    )
    rows = rng.uniform(0, 1, (50, 4))
    rows[::3, 2] = math.nan  # baseline not given: its default is added
    rows[::4, 1] = math.nan  # a model input not given
    rows[1, 2] = math.inf
    expected = predictor.predict(rows)
    got = [predictor.predict_row(row) for row in rows.tolist()]
    assert np.array_equal(np.array(got), expected)
