"""Adapting a registered booster to a city: the rewritten booster, the choices, the fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terraops.pipelines.training import adaptation
from terraops.pipelines.training.cross_validation import fit_final_model
from terraops.services import get_service
from terraops.services.lightgbm_models import serving_forest

UHI = get_service("uhi")
PARAMS = {**UHI.default_params, "n_estimators": 40}
TRAINING = {"seed": 0, "cv_block_size_m": 600.0, "missing_augment_frac": 0.5}


def city(n_side: int, seed: int, strength: float, sea: int = 4) -> pd.DataFrame:
    """A ``n_side``² grid of 30 m cells: LST falls with NDVI as ``strength`` says, a
    ``sea`` cells wide strip on one side (cold, flat), every feature the service reads."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(n_side) * 30.0 + 15, np.arange(n_side) * 30.0 + 15)
    n = n_side * n_side
    frame = pd.DataFrame({name: rng.uniform(0, 1, n) for name in UHI.feature_names})
    frame["water_fraction"] = (xs.ravel() < sea * 30.0).astype(float)
    frame["reference_temperature"] = 20.0
    ndvi = frame["ndvi"].to_numpy()
    land = frame["water_fraction"].to_numpy() < 0.5
    noise = rng.normal(0, 0.3, n)
    frame["lst"] = np.where(land, 30 - strength * 8 * ndvi + noise, 15 + noise)
    frame["scene"], frame["x"], frame["y"] = "LC08_T", xs.ravel(), ys.ravel()
    frame["row"], frame["col"] = 0, np.arange(n)
    return frame


@pytest.fixture(scope="module")
def registered() -> Any:
    """A 'synthetic' model whose NDVI response is twice the city's."""
    fitted = fit_final_model(
        UHI, city(40, 1, strength=2.0), {**PARAMS, "n_estimators": 200}, TRAINING
    )
    return fitted.booster_


def inputs(frame: pd.DataFrame) -> np.ndarray:
    return frame[UHI.model_inputs].to_numpy(np.float64)


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(-3, 3), offset=st.floats(-50, 50))
def test_the_rewritten_booster_predicts_the_affine_map_exactly(
    registered: Any, scale: float, offset: float
) -> None:
    X = inputs(city(12, 2, 1.0))
    rewritten = adaptation.scaled_booster(registered, scale, offset)
    expected = scale * registered.predict(X) + offset
    np.testing.assert_allclose(rewritten.predict(X), expected, rtol=1e-9, atol=1e-9)
    # TreeSHAP's contributions still add up to the prediction (internal values scaled too)
    contrib = rewritten.predict(X, pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1), expected, rtol=1e-9, atol=1e-8)


def test_the_rewritten_booster_is_served_by_the_compiled_trees(registered: Any) -> None:
    rewritten = adaptation.scaled_booster(registered, 0.4, 1.5)
    forest = serving_forest(rewritten, "rewritten")
    assert forest is not None  # it reproduced LightGBM within the tolerance


def test_adapt_recalibrates_the_registered_slope_and_starts_from_it(registered: Any) -> None:
    frame = city(36, 3, strength=1.0, sea=0)
    chosen = adaptation.adapt(UHI, frame, PARAMS, TRAINING, registered)
    assert 0.4 < chosen.slope < 0.6  # the registered model answers NDVI twice as strongly
    assert chosen.share == adaptation.PRIOR_SHARE
    assert 1 <= chosen.new_trees <= adaptation.MAX_NEW_TREES
    target = frame["lst"].to_numpy() - 20.0
    raw = registered.predict(inputs(frame))
    expected = adaptation.start_score(raw, target, chosen.share, chosen.slope)
    np.testing.assert_allclose(chosen.booster.predict(inputs(frame)), expected, atol=1e-8)
    assert abs(expected.mean() - target.mean()) < 1e-9  # shrunk toward the city's mean
    assert set(chosen.record()) == {"adapt_share", "adapt_slope", "adapt_offset", "adapt_new_trees"}


def test_an_adapted_model_holds_the_rewritten_trees_and_the_new_ones(registered: Any) -> None:
    frame = city(36, 4, strength=1.0)
    model, chosen = adaptation.fit_adapted(UHI, frame, PARAMS, TRAINING, registered)
    booster = model.booster_
    assert booster.num_trees() == registered.num_trees() + chosen.new_trees
    X = inputs(frame)
    head = booster.predict(X, num_iteration=registered.current_iteration())
    np.testing.assert_allclose(head, chosen.booster.predict(X), atol=1e-8)
    held = city(20, 5, strength=1.0)
    rho = pd.Series(model.predict(held)).corr(held["lst"], method="spearman")
    assert rho > 0.8


def test_more_city_cells_keep_more_new_trees(registered: Any) -> None:
    """Early stopping on the inner split: a bigger city supports a longer fit."""
    small = adaptation.adapt(UHI, city(24, 8, strength=1.0), PARAMS, TRAINING, registered)
    large = adaptation.adapt(UHI, city(72, 8, strength=1.0), PARAMS, TRAINING, registered)
    assert large.new_trees >= small.new_trees


def test_a_city_of_one_inner_block_keeps_the_usual_number_of_trees(registered: Any) -> None:
    frame = city(10, 6, strength=1.0)  # 300 m across: one 300 m inner block
    chosen = adaptation.adapt(UHI, frame, PARAMS, TRAINING, registered)
    assert chosen.new_trees == PARAMS["n_estimators"]
    assert chosen.params(PARAMS)["n_estimators"] == PARAMS["n_estimators"]


def test_two_dates_of_one_place_validate_together() -> None:
    """Inner blocks are places: a cell's other date never trains while it validates."""
    one = city(30, 9, strength=1.0)
    two = pd.concat([one, one.assign(scene="LC08_U")], ignore_index=True)
    val = adaptation.inner_split(two, 300.0, seed=0)
    assert val is not None and 0 < val.mean() < 1
    np.testing.assert_array_equal(val[: len(one)], val[len(one) :])
