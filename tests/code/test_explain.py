"""Per-cell explanations: additivity on real LightGBM models, driver grouping, the sentence."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from terraops.adapters.model_bundle import Baseline, Predictor, SingleRowPredictor
from terraops.domain.explain import (
    DRIVER_GROUPS,
    NO_PUSH,
    contribution_unit,
    dominant_driver,
    dominant_one,
    driver_contributions,
    driver_legend,
    explain_sentence,
    explanation_card_section,
    explanation_json,
    ranked_mask,
)
from terraops.domain.tree_shap import compile_model, supports_model, tree_shap
from terraops.services import get_service

NAMES = ["ndvi", "building_density", "reference_temperature", "water_distance"]


def _predictor(task: str, with_baseline: bool) -> Predictor:
    """A real small booster on three inputs (NaNs in training, so missing-value branches exist)."""
    rng = np.random.default_rng(7)
    X = rng.uniform(0, 1, (600, 3))
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    signal = np.nan_to_num(X) @ [-3.0, 2.0, 0.7] + rng.normal(0, 0.2, 600)
    target = (signal > 0.2).astype(float) if task == "binary" else 30 + signal
    objective = "binary" if task == "binary" else "regression"
    booster = lgb.train(
        {"objective": objective, "verbose": -1, "num_threads": 1, "num_leaves": 15},
        lgb.Dataset(X, target),
        num_boost_round=40,
    )
    names = NAMES if with_baseline else [n for n in NAMES if n != "reference_temperature"]
    return Predictor(
        service="uhi",
        feature_names=names,
        task=task,  # type: ignore[arg-type]
        booster=booster,
        path=Path("unused"),
        metadata={"prediction_unit": "probability" if task == "binary" else "°C"},
        single_row=SingleRowPredictor(booster, 3),
        baseline=Baseline(column=2, default=31.5) if with_baseline else None,
    )


PREDICTORS = {
    (task, base): _predictor(task, base)
    for task in ("regression", "binary")
    for base in (True, False)
}

_values = st.one_of(
    st.floats(-2.0, 3.0, allow_nan=False), st.just(float("nan")), st.floats(20.0, 45.0)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=arrays(np.float64, st.tuples(st.integers(1, 40), st.just(4)), elements=_values),
    task=st.sampled_from(["regression", "binary"]),
    with_baseline=st.booleans(),
    block_rows=st.integers(1, 64),
)
def test_baseline_plus_contributions_equals_the_prediction(
    rows: np.ndarray, task: str, with_baseline: bool, block_rows: int
) -> None:
    predictor = PREDICTORS[(task, with_baseline)]
    X = rows if with_baseline else np.delete(rows, 2, axis=1)
    explanation = predictor.explain(X, block_rows=block_rows)
    assert explanation.contributions.shape == X.shape
    assert explanation.feature_names == tuple(predictor.feature_names)
    total = explanation.baseline + explanation.contributions.sum(axis=1)
    np.testing.assert_allclose(total, predictor.predict(X), rtol=0, atol=1e-6)


def test_the_reference_contributes_its_distance_from_a_typical_day() -> None:
    predictor = PREDICTORS[("regression", True)]
    rows = np.array([[0.3, 0.5, 31.5, 0.2], [0.3, 0.5, 35.0, 0.2], [0.3, 0.5, np.nan, 0.2]])
    explanation = predictor.explain(rows)
    np.testing.assert_allclose(explanation.contributions[:, 2], [0.0, 3.5, 0.0])
    # The model's part is the same for all three: only the day moved.
    np.testing.assert_allclose(explanation.contributions[0], explanation.contributions[2])
    assert explanation.unit == "°C" and contribution_unit(explanation.unit) == "K"
    row = explanation.row(1)
    assert set(row["contributions"]) == set(NAMES)
    assert row["baseline"] + sum(row["contributions"].values()) == pytest.approx(
        float(predictor.predict(rows[1:2])[0]), abs=1e-9
    )


def test_probability_contributions_keep_the_log_odds_signs() -> None:
    predictor = PREDICTORS[("binary", False)]
    X = np.random.default_rng(1).uniform(0, 1, (200, 3))
    explanation = predictor.explain(X)
    raw = predictor.booster.predict(X, pred_contrib=True)[:, :-1]
    moved = np.abs(raw) > 1e-9
    assert np.array_equal(np.sign(explanation.contributions[moved]), np.sign(raw[moved]))
    assert explanation.unit == "probability"
    assert np.all((explanation.baseline > 0) & (explanation.baseline < 1))


def test_every_feature_of_every_service_belongs_to_a_driver() -> None:
    for service, groups in DRIVER_GROUPS.items():
        names = get_service(service).feature_names
        assert set(names) <= set(groups), service


def test_driver_sums_keep_the_total() -> None:
    names = get_service("uhi").feature_names
    contributions = np.random.default_rng(3).normal(0, 1, (50, len(names)))
    keys, drivers = driver_contributions(contributions, names, "uhi")
    assert keys == ("vegetation", "built", "water", "terrain", "reference")
    np.testing.assert_allclose(drivers.sum(axis=1), contributions.sum(axis=1))
    vegetation = [names.index(n) for n in ("ndvi", "tree_cover", "tree_cover_200m")]
    np.testing.assert_allclose(drivers[:, 0], contributions[:, vegetation].sum(axis=1))
    with pytest.raises(ValueError, match="no driver for rain"):
        driver_contributions(contributions[:, :2], ["ndvi", "rain"], "uhi")


def test_dominant_driver_is_the_largest_push_up_and_ignores_the_day() -> None:
    ranked = ranked_mask("uhi")
    drivers = np.array(
        [
            [0.5, 2.0, -0.1, 0.0, 9.0],  # built pushes most; the hot day is not ranked
            [-1.0, -0.5, -0.2, -0.1, 3.0],  # nothing in the place pushes up
            [1.2, np.nan, 0.0, 0.0, 0.0],  # no data
            [0.1, 0.0, 0.7, 0.0, -2.0],
        ]
    )
    assert dominant_driver(drivers, ranked).tolist() == [1, NO_PUSH, NO_PUSH, 2]
    legend = driver_legend("uhi")
    assert [entry["key"] for entry in legend] == ["none", "vegetation", "built", "water", "terrain"]
    assert [entry["code"] for entry in legend] == [0, 1, 2, 3, 4]
    assert all(entry["colour"].startswith("#") for entry in legend)


@settings(max_examples=200, deadline=None)
@given(
    values=arrays(
        np.float64,
        5,
        elements=st.one_of(
            st.sampled_from([0.0, -0.0, 0.5, 1.0, float("nan")]), st.floats(-3.0, 3.0)
        ),
    )
)
def test_the_one_row_dominant_driver_is_the_same_rule(values: np.ndarray) -> None:
    """A point answer's dominant driver (plain Python) is the map's (numpy), ties included."""
    ranked = ranked_mask("uhi")
    expected = int(dominant_driver(values[np.newaxis], ranked)[0])
    assert dominant_one(values.tolist(), ranked.tolist()) == expected


def test_sentence_names_the_top_drivers_with_signs_and_unit() -> None:
    sentence = explain_sentence("uhi", [1.3, 2.1, 0.1, 0.0, 0.0], "K")
    assert sentence == (
        "Hot mostly because of sealed, built-up surroundings, +2.1 K, and little greenery, +1.3 K."
    )
    cool = explain_sentence("uhi", [-3.0, 0.4, -0.2, 0.0, 2.0], "K")
    assert (
        cool
        == "Cool mostly because of greenery and shade, −3.0 K; a day warmer than usual adds +2.0 K."
    )
    flood = explain_sentence("flood", [0.3, 0.05, 0.2, 0.0], "probability")
    assert flood.startswith("Flood-prone mostly because of heavy rain, +0.30 probability")
    assert explain_sentence("uhi", [0, 0, 0, 0, 0], "K") == "About typical: no driver moves it."
    with pytest.raises(ValueError):
        explain_sentence("uhi", [1.0, 2.0], "K")


def test_explanation_json_is_one_cells_waterfall_and_sentence() -> None:
    predictor = PREDICTORS[("regression", True)]
    rows = np.array([[0.1, 0.9, 34.0, 0.8]])
    explanation = predictor.explain(rows)
    answer = explanation_json(explanation, "uhi", 0)
    assert answer["unit"] == "K"
    bars = {bar["driver"]: bar["contribution"] for bar in answer["drivers"]}
    assert bars["reference"] == pytest.approx(2.5)
    assert answer["baseline"] + sum(bars.values()) == pytest.approx(
        float(predictor.predict(rows)[0]), abs=1e-9
    )
    assert answer["sentence"].endswith("a day warmer than usual adds +2.5 K.")


def test_the_card_lists_each_drivers_own_inputs() -> None:
    uhi = get_service("uhi")
    lines = explanation_card_section("uhi", uhi.feature_names)
    assert lines[0] == "## Explanations"
    assert "- Vegetation: `ndvi`, `tree_cover`, `tree_cover_200m`" in lines
    assert not any("slope" in line for line in lines), "uhi has no slope input"
    flood = get_service("flood")
    assert "- Storm: `rainfall_mm`" in explanation_card_section("flood", flood.feature_names)
    assert explanation_card_section("landcover", []) == []


def _mixed_missing_booster() -> lgb.Booster:
    """31-leaf trees on four inputs: NaNs seen in training on two (missing type NaN), not on two.

    The other two read a NaN as 0.0 (missing type None); both routings must match LightGBM.
    """
    rng = np.random.default_rng(11)
    X = rng.normal(0, 1, (3000, 4))
    X[:, :2][rng.uniform(size=(3000, 2)) < 0.15] = np.nan
    y = np.nan_to_num(X) @ [1.5, -2.0, 0.8, 0.3] + np.sin(3 * np.nan_to_num(X[:, 2]))
    return lgb.train(
        {"objective": "regression", "verbose": -1, "num_threads": 1, "num_leaves": 31},
        lgb.Dataset(X, y),
        num_boost_round=30,
    )


MIXED = _mixed_missing_booster()
MIXED_TABLES = compile_model(MIXED.dump_model(), 4)
MIXED_THRESHOLDS = st.sampled_from(sorted(float(t) for t in MIXED_TABLES.threshold))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=arrays(
        np.float64,
        st.tuples(st.integers(1, 300), st.just(4)),
        elements=st.one_of(
            st.floats(-4.0, 4.0),
            st.just(float("nan")),
            MIXED_THRESHOLDS,
            st.sampled_from([0.0, -0.0, 1e-36, -1e-36, 1.0000000180025095e-35, -2e-35]),
        ),
    ),
    threads=st.integers(1, 2),
)
def test_fast_tree_shap_equals_lightgbms_pred_contrib(rows: np.ndarray, threads: int) -> None:
    """On split thresholds, NaNs, zeros and values LightGBM reads as zero: it is the reference."""
    assert supports_model(MIXED.dump_model())
    reference = np.asarray(MIXED.predict(rows, pred_contrib=True))
    fast = tree_shap(MIXED_TABLES, rows, threads=threads)
    np.testing.assert_allclose(fast, reference[:, :-1], rtol=0, atol=1e-9)
    assert MIXED_TABLES.expected_value == pytest.approx(reference[0, -1], abs=1e-12)


@pytest.mark.parametrize("task", ["regression", "binary"])
def test_predictor_explain_uses_the_fast_path_with_lightgbms_values(task: str) -> None:
    predictor = PREDICTORS[(task, False)]
    X = np.random.default_rng(5).uniform(-0.5, 1.5, (500, 3))
    X[::7, 1] = np.nan
    raw = predictor.booster.predict(X, pred_contrib=True)
    explanation = predictor.explain(X)
    assert predictor._tree_shap_tables() is not None
    if task == "regression":
        np.testing.assert_allclose(explanation.contributions, raw[:, :-1], rtol=0, atol=1e-9)
        np.testing.assert_allclose(explanation.baseline, raw[:, -1], rtol=0, atol=1e-9)
    total = explanation.baseline + explanation.contributions.sum(axis=1)
    np.testing.assert_allclose(total, predictor.predict(X), rtol=0, atol=1e-6)


@pytest.mark.parametrize("with_baseline", [True, False])
def test_a_point_explanation_is_the_batch_ones_row(with_baseline: bool) -> None:
    """The single-row path (a server request) and the block path give the same numbers."""
    predictor = PREDICTORS[("regression", with_baseline)]
    predictor.prepare_explanations()
    width = len(predictor.feature_names)
    X = np.random.default_rng(9).uniform(-0.5, 1.5, (20, width))
    X[::3, 0] = np.nan
    if with_baseline:
        X[:, 2] = np.where(np.arange(20) % 4 == 0, np.nan, 33.0)
    batch = predictor.explain(X)
    for i in range(len(X)):
        one = predictor.explain(X[i])
        np.testing.assert_allclose(one.contributions[0], batch.contributions[i], atol=1e-12)
        assert one.baseline[0] == pytest.approx(batch.baseline[i], abs=1e-12)
        assert one.prediction[0] == pytest.approx(predictor.predict(X[i])[0], abs=1e-6)


def test_a_model_the_fast_path_cannot_reproduce_stays_on_lightgbm() -> None:
    """A categorical split: refused by the fast path, explained by pred_contrib, still additive."""
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.integers(0, 6, 800), rng.uniform(0, 1, 800)]).astype(float)
    y = np.where(np.isin(X[:, 0], [1, 4]), 3.0, 0.0) + X[:, 1]
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "num_threads": 1, "num_leaves": 7},
        lgb.Dataset(X, y, categorical_feature=[0]),
        num_boost_round=10,
    )
    assert not supports_model(booster.dump_model())
    predictor = Predictor("uhi", ["ndvi", "building_density"], "regression", booster, Path("x"))
    explanation = predictor.explain(X[:50])
    assert predictor._tree_shap_tables() is None
    raw = np.asarray(booster.predict(X[:50], pred_contrib=True))
    np.testing.assert_allclose(explanation.contributions, raw[:, :-1], rtol=0, atol=1e-12)


def test_a_model_whose_tables_would_be_too_large_stays_on_lightgbm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert supports_model(MIXED.dump_model())
    monkeypatch.setattr("terraops.domain.tree_shap.MAX_TABLE_VALUES", 100)
    assert not supports_model(MIXED.dump_model())
    monkeypatch.setattr("terraops.domain.tree_shap.MAX_TABLE_VALUES", 10**9)
    monkeypatch.setattr("terraops.domain.tree_shap.MAX_PATH_FEATURES", 1)
    assert not supports_model(MIXED.dump_model())
