"""The fast path of the prediction routes accepts only what the documented models accept.

``terraops.api.fast_inputs`` vouches for valid bodies and declines the rest,
which the documented Pydantic path then words. These tests hold it to that:
whatever it accepts, Pydantic accepts with the same values; the bodies that
matter (legacy point, full rows, big batches) are accepted; and through the
app, a batch with a bad row gets the documented 422 naming the row and field.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from terraops.api.app import create_app
from terraops.api.fast_inputs import FastInputs, finite_json_array
from terraops.api.model_holder import LoadedModel, ModelHolder
from terraops.api.schemas import batch_model, features_model
from terraops.services import all_services
from terraops.settings import Settings

UHI = all_services()["uhi"]
NAMES = UHI.feature_names
LEGACY = {"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000}
FULL = {f.name: f.example for f in UHI.features}
# A model order unlike the service's, to prove rows land in the model's columns.
MODEL_ORDER = tuple(reversed(NAMES))
MAX_ROWS = 5


@pytest.fixture(scope="module")
def fast() -> FastInputs:
    return FastInputs(UHI, MODEL_ORDER, MAX_ROWS)


def documented_row(data: Any) -> list[float] | None:
    """The model row the documented path would build (None: it refuses the body)."""
    try:
        parsed = features_model(UHI).model_validate(data)
    except ValidationError:
        return None
    return [math.nan if getattr(parsed, n) is None else getattr(parsed, n) for n in MODEL_ORDER]


def same(a: list[float], b: list[float]) -> bool:
    return np.array_equal(np.array(a), np.array(b), equal_nan=True)


def test_valid_points_are_accepted_in_model_order(fast: FastInputs) -> None:
    for body in (LEGACY, FULL, {**LEGACY, "tree_cover": None, "albedo": 0}):
        row = fast.point(json.loads(json.dumps(body)))
        assert row is not None, body
        assert same(row, documented_row(body))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        {**LEGACY, "ndvi": 1.5},  # out of range
        {**LEGACY, "ndvi": True},  # a boolean is not a number
        {**LEGACY, "ndvi": "0.5"},
        {**LEGACY, "ndvi": None},  # required: null is not allowed
        {**LEGACY, "ndvi": float("nan")},
        {**LEGACY, "water_distance": float("inf")},
        {**LEGACY, "water_distance": 10**400},  # no float holds it
        {"ndvi": 0.5, "building_density": 0.7},  # missing a required field
        {**LEGACY, "ndvi_typo": 0.5},  # unknown field
        [LEGACY],
        "text",
    ],
)
def test_invalid_points_are_declined(fast: FastInputs, body: Any) -> None:
    assert fast.point(body) is None
    assert documented_row(body) is None


values = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.none()
    | st.booleans()
    | st.text(max_size=3)
    | st.sampled_from([0, 0.0, -1, 1, 0.5, 50000, 1e-300])
)


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(st.sampled_from([*NAMES, "x"]), values, max_size=len(NAMES) + 1))
def test_whatever_the_fast_path_accepts_pydantic_accepts_alike(body: dict[str, Any]) -> None:
    row = FastInputs(UHI, MODEL_ORDER, MAX_ROWS).point(body)
    if row is not None:
        expected = documented_row(body)
        assert expected is not None, body
        assert same(row, expected)


def test_valid_batches_become_a_matrix_in_model_order(fast: FastInputs) -> None:
    rows = [LEGACY, FULL, {**LEGACY, "tree_cover": None}, {**FULL, "ndvi": -1}]
    matrix = fast.records({"instances": rows})
    assert matrix is not None and matrix.shape == (4, len(MODEL_ORDER))
    for got, body in zip(matrix.tolist(), rows, strict=True):
        assert same(got, documented_row(body))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "instances",
    [
        [LEGACY, {**LEGACY, "ndvi": 9}],  # a row out of range
        [LEGACY, {"ndvi": 0.5, "building_density": 0.7}],  # missing field
        [LEGACY, {**LEGACY, "albedo": "0.1"}],  # wrong type in an optional column
        [LEGACY, {**LEGACY, "ndvi": False}],
        [LEGACY, {**LEGACY, "tree_cover": float("nan")}],  # NaN next to a null
        [{**LEGACY, "tree_cover": None}, {**LEGACY, "tree_cover": float("nan")}],
        [LEGACY, {**LEGACY, "elevation": float("-inf")}],
        [LEGACY, {**LEGACY, "extra": 1}],  # unknown field
        [LEGACY, [0.5, 0.7, 1000]],  # a row that is not an object
        [LEGACY] * (MAX_ROWS + 1),  # too many rows
        [],
    ],
)
def test_invalid_batches_are_declined(fast: FastInputs, instances: list[Any]) -> None:
    body = {"instances": instances}
    assert fast.records(body) is None
    with pytest.raises(ValidationError):
        batch_model(UHI, features_model(UHI), MAX_ROWS).model_validate(body)


def test_batch_envelope_must_be_exact(fast: FastInputs) -> None:
    assert fast.records({"instances": [LEGACY], "other": 1}) is None
    assert fast.records({"rows": [LEGACY]}) is None
    assert fast.records([LEGACY]) is None


def test_finite_floats_encode_as_json_that_reads_back_the_same() -> None:
    values = [0.1, -2.5e-300, 1e300, 35.0, 0.0, 1 / 3, 1e-5]
    encoded = finite_json_array(values)
    assert encoded is not None and json.loads(encoded) == values
    assert finite_json_array([1.0, math.nan]) is None


# ----- through the app ----------------------------------------------------------------


class RowSum:
    """prediction = sum of the given inputs (NaN counted as 0), in the model's order."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.nansum(X, axis=1)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """One app for the module (building one costs seconds); the tests only read it."""
    holder = ModelHolder(UHI)
    holder.swap(
        LoadedModel(
            service="uhi",
            name="uhi",
            version=3,
            alias="champion",
            predictor=RowSum(),
            feature_names=MODEL_ORDER,
            source="registry",
        )
    )
    settings = Settings(home=tmp_path_factory.mktemp("fast") / "home", max_batch_size=MAX_ROWS)
    return TestClient(create_app(settings, holders={"uhi": holder}, watch=False))


def post(client: TestClient, path: str, body: Any, ctype: str) -> Any:
    return client.post(path, content=json.dumps(body), headers={"content-type": ctype})


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/uhi/predict", LEGACY),
        ("/v1/uhi/predict", FULL),
        ("/v1/uhi/predict/batch", {"instances": [LEGACY, FULL, {**LEGACY, "tree_cover": None}]}),
    ],
)
def test_fast_and_documented_paths_answer_alike(client: TestClient, path: str, body: Any) -> None:
    """``application/json`` takes the fast path; ``+json`` the documented one."""
    fast = post(client, path, body, "application/json")
    documented = post(client, path, body, "application/vnd.terraops+json")
    assert fast.status_code == documented.status_code == 200
    assert fast.content == documented.content
    for header in ("content-type", "x-model-name", "x-model-version", "x-model-alias"):
        assert fast.headers[header] == documented.headers[header]


@pytest.mark.parametrize(
    ("instances", "field", "phrase"),
    [
        ([LEGACY, LEGACY, {**LEGACY, "ndvi": 9}], "instances[2].ndvi", "allowed: -1 to 1"),
        ([LEGACY, {"ndvi": 0.5, "water_distance": 3}], "instances[1].building_density", "missing"),
        ([{**LEGACY, "albedo": "high"}], "instances[0].albedo", "must be a JSON number"),
        ([LEGACY, {**LEGACY, "typo": 1}], "instances[1].typo", "unknown field"),
    ],
)
def test_a_bad_row_gets_a_422_naming_its_index_and_field(
    client: TestClient, instances: list[Any], field: str, phrase: str
) -> None:
    response = post(client, "/v1/uhi/predict/batch", {"instances": instances}, "application/json")
    assert response.status_code == 422
    payload = response.json()
    assert [e["field"] for e in payload["errors"]] == [field]
    assert phrase in payload["message"]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_a_batch_are_refused(client: TestClient, token: str) -> None:
    row = '{"ndvi": 0.5, "building_density": 0.7, "water_distance": 1}'
    bad = f'{{"ndvi": {token}, "building_density": 0.7, "water_distance": 1}}'
    body = f'{{"instances": [{row}, {bad}]}}'
    response = client.post(
        "/v1/uhi/predict/batch", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "instances[1].ndvi: must be a finite number" in response.json()["message"]


def test_too_many_rows_names_the_limit(client: TestClient) -> None:
    body = {"instances": [LEGACY] * (MAX_ROWS + 1)}
    response = post(client, "/v1/uhi/predict/batch", body, "application/json")
    assert response.status_code == 422
    assert f"too many instances: {MAX_ROWS + 1} given, at most {MAX_ROWS}" in response.text
