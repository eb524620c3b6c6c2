"""The compiled trees predict what LightGBM predicts, or are not served.

Random models (regression and binary, NaN / zero-as-missing / no missing
handling) on inputs built to hit every rule LightGBM applies: the thresholds
themselves and their float neighbours, NaN, ±0, ±1e-35, huge values. The load
check refuses models the kernel does not reproduce and logs why.
"""

from __future__ import annotations

import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terraops.domain import compiled_forest as cf
from terraops.services.lightgbm_models import serving_forest

SPECIALS = [np.nan, 0.0, -0.0, cf.ZERO_THRESHOLD, -cf.ZERO_THRESHOLD, 1e-36, 1.0, -1.0]


def train(seed: int, objective: str, params: dict[str, Any], n_features: int) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, n_features)).round(1)
    X[rng.random(X.shape) < 0.15] = np.nan
    X[rng.random(X.shape) < 0.15] = 0.0
    y = np.nansum(X, axis=1) + rng.normal(scale=0.3, size=300)
    target = (y > 0).astype(float) if objective == "binary" else y
    base = {"objective": objective, "verbose": -1, "num_leaves": 7, "min_data_in_leaf": 5}
    return lgb.train({**base, **params}, lgb.Dataset(X, target), num_boost_round=12)


def reference(booster: lgb.Booster) -> Any:
    return lambda X: booster.predict(X, num_threads=1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    objective=st.sampled_from(["regression", "binary"]),
    missing=st.sampled_from(
        [{}, {"use_missing": False}, {"zero_as_missing": True}, {"sigmoid": 0.7}]
    ),
    n_features=st.integers(1, 4),
    extra=st.lists(
        st.one_of(st.sampled_from(SPECIALS), st.floats(allow_nan=True, allow_infinity=True)),
        min_size=4,
        max_size=4,
    ),
)
def test_compiled_forest_equals_lightgbm(
    seed: int, objective: str, missing: dict[str, Any], n_features: int, extra: list[float]
) -> None:
    params = missing if objective == "binary" or "sigmoid" not in missing else {}
    booster = train(seed, objective, params, n_features)
    dump = booster.dump_model()
    assert cf.unsupported_reason(dump) is None
    forest = cf.compile_forest(dump, n_features)
    X = cf.check_inputs(forest, rows=256, seed=seed)
    X = np.vstack([X, np.tile(np.array(extra), (n_features + 3) // 4)[:n_features]])
    mine, theirs = cf.predict(forest, X), booster.predict(X, num_threads=1)
    np.testing.assert_allclose(mine, theirs, rtol=cf.RELATIVE_TOLERANCE, atol=0)
    np.testing.assert_array_equal(cf.predict(forest, X, parallel=True), mine)


def test_values_on_thresholds_go_left_as_in_lightgbm() -> None:
    booster = train(7, "regression", {}, 3)
    forest = cf.compile_forest(booster.dump_model(), 3)
    finite = np.isfinite(forest.threshold) & forest.is_split
    cuts = forest.threshold[finite]
    X = np.repeat(cuts[:, np.newaxis], 3, axis=1)
    assert cf.agreement(forest, reference(booster), X) <= cf.RELATIVE_TOLERANCE


def test_infinities_and_several_blocks_agree_with_lightgbm() -> None:
    """Leaves are packed as 'go right to yourself' on a constant column: a row of −inf
    (which goes left everywhere) must still stop at the leaf. 700 rows: two full
    blocks and a partial one, NaN in some blocks only (the missing-value rules per block)."""
    booster = train(11, "regression", {}, 3)
    forest = cf.compile_forest(booster.dump_model(), 3)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(700, 3))
    X[:100] = -np.inf
    X[100:150] = np.inf
    X[600:650, 1] = np.nan
    mine, theirs = cf.predict(forest, X), booster.predict(X, num_threads=1)
    np.testing.assert_allclose(mine, theirs, rtol=cf.RELATIVE_TOLERANCE, atol=0)
    assert forest.nodes.shape == (2 * forest.n_nodes,)


def test_a_model_that_needs_lightgbm_stays_on_it(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 5, 400), rng.normal(size=400)]).astype(float)
    y = X[:, 0] * 2 + X[:, 1]
    data = lgb.Dataset(X, y, categorical_feature=[0])
    booster = lgb.train({"verbose": -1, "min_data_per_group": 5, "cat_smooth": 1}, data, 10)
    assert cf.unsupported_reason(booster.dump_model()) == "categorical splits"
    with caplog.at_level(logging.WARNING, logger="terraops.serving"):
        assert serving_forest(booster, "test model") is None
    assert "served by LightGBM, not compiled: categorical splits" in caplog.text


def test_a_compiled_model_that_differs_is_refused(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A split at exactly 1e300 cannot be told from an infinite one in ``dump_model``
    (which writes both as 1e300): the load check sees the difference and refuses."""
    booster = train(3, "regression", {}, 2)
    text = booster.model_to_string()
    first = next(line for line in text.splitlines() if line.startswith("threshold="))
    edited = text.replace(first, "threshold=1e+300 " + first.split("=", 1)[1].split(" ", 1)[1], 1)
    # The header's byte sizes of the trees no longer hold: LightGBM reads on without them.
    edited = "\n".join(line for line in edited.splitlines() if not line.startswith("tree_sizes="))
    (tmp_path / "model.txt").write_text(edited)
    crafted = lgb.Booster(model_file=str(tmp_path / "model.txt"))
    with caplog.at_level(logging.WARNING, logger="terraops.serving"):
        assert serving_forest(crafted, "crafted model") is None
    assert "differ from LightGBM's" in caplog.text
    assert serving_forest(booster, "plain model") is not None


def test_unsupported_models_are_named() -> None:
    assert cf.unsupported_reason({"num_class": 3, "num_tree_per_iteration": 3}) is not None
    assert cf.unsupported_reason({"objective": "lambdarank", "tree_info": []}) is not None
    linear = {"objective": "regression", "tree_info": [{"is_linear": True}]}
    assert cf.unsupported_reason(linear) == "linear trees"
    with pytest.raises(ValueError, match="cannot compile"):
        cf.compile_forest(linear, 1)
