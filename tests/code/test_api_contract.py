"""HTTP contract of the prediction API, with a fake model (fast, no MLflow).

Every class of bad input must get a 4xx whose message names the field and, for
a feature, its allowed range; no input may produce a 5xx.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from terraops.api.app import create_app
from terraops.api.model_holder import LoadedModel, ModelHolder
from terraops.services import all_services
from terraops.settings import Settings

LEGACY = {"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000}


class LinearPredictor:
    """prediction = 30 + 10·ndvi − 5·(tree_cover or 0); records what it was given."""

    def __init__(self, feature_names: list[str]) -> None:
        self.feature_names = feature_names
        self.last: np.ndarray | None = None

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.last = X
        tree = np.nan_to_num(X[:, self.feature_names.index("tree_cover")])
        return 30 + 10 * X[:, 0] - 5 * tree


def loaded(service: str, version: int) -> LoadedModel:
    names = all_services()[service].feature_names
    return LoadedModel(
        service=service,
        name=service,
        version=version,
        alias="champion",
        predictor=LinearPredictor(names),
        feature_names=tuple(names),
        source="registry",
    )


@pytest.fixture
def holders() -> dict[str, ModelHolder]:
    services = all_services()
    holders = {name: ModelHolder(services[name]) for name in ("uhi", "flood")}
    holders["uhi"].swap(loaded("uhi", 7))
    return holders


@pytest.fixture
def client(settings: Settings, holders: dict[str, ModelHolder]) -> TestClient:
    settings.max_batch_size = 3
    return TestClient(create_app(settings, holders=holders, watch=False))


def post_raw(client: TestClient, path: str, body: bytes, ctype: str = "application/json") -> Any:
    return client.post(path, content=body, headers={"content-type": ctype})


def test_legacy_request_returns_prediction_unit_and_lineage(client: TestClient) -> None:
    response = client.post("/v1/uhi/predict", json=LEGACY)
    assert response.status_code == 200
    assert response.json() == {
        "prediction": pytest.approx(35.0),
        "unit": "°C",
        "model": {"name": "uhi", "version": 7, "alias": "champion"},
    }
    assert response.headers["X-Model-Version"] == "7"
    assert response.headers["X-Model-Name"] == "uhi"


def test_optional_features_reach_the_model_as_nan_or_value(
    client: TestClient, holders: dict[str, ModelHolder]
) -> None:
    predictor = holders["uhi"].current.predictor  # type: ignore[union-attr]
    client.post("/v1/uhi/predict", json=LEGACY)
    row = predictor.last[0]
    assert row[:3].tolist() == [0.5, 0.7, 1000.0] and np.isnan(row[3:]).all()
    response = client.post("/v1/uhi/predict", json={**LEGACY, "tree_cover": 0.4, "ndbi": None})
    assert response.json()["prediction"] == pytest.approx(33.0)


@pytest.mark.parametrize(
    ("body", "field", "phrase"),
    [
        ({**LEGACY, "ndvi": 1.5}, "ndvi", "1.5 is out of range (allowed: -1 to 1)"),
        ({**LEGACY, "water_distance": -3}, "water_distance", "allowed: 0 to 50000 m"),
        ({**LEGACY, "ndvi": True}, "ndvi", "must be a JSON number, got boolean"),
        ({**LEGACY, "ndvi": "0.5"}, "ndvi", "got string"),
        ({**LEGACY, "ndvi": [0.5]}, "ndvi", "got array"),
        ({**LEGACY, "ndvi": None}, "ndvi", "got null"),
        ({"ndvi": 0.5, "building_density": 0.7}, "water_distance", "required field is missing"),
        ({**LEGACY, "ndvi_typo": 0.5}, "ndvi_typo", "unknown field 'ndvi_typo'"),
        ({**LEGACY, "albedo": 2}, "albedo", "allowed: 0 to 1 fraction"),
    ],
)
def test_bad_fields_are_422_naming_field_and_range(
    client: TestClient, body: dict[str, Any], field: str, phrase: str
) -> None:
    response = client.post("/v1/uhi/predict", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["error"] == "invalid_request"
    assert field in payload["message"] and phrase in payload["message"]
    assert [e["field"] for e in payload["errors"]] == [field]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client: TestClient, token: str) -> None:
    body = f'{{"ndvi": {token}, "building_density": 0.7, "water_distance": 10}}'.encode()
    response = post_raw(client, "/v1/uhi/predict", body)
    assert response.status_code == 422
    assert "ndvi: must be a finite number" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "ctype", "phrase"),
    [
        (b'{"ndvi": ', "application/json", "not valid JSON"),
        (b"", "application/json", "required"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b'"text"', "application/json", "must be a JSON object"),
        (json.dumps(LEGACY).encode(), "text/plain", "must be a JSON object"),
        (b"\xff\xfe", "application/json", ""),
    ],
)
def test_malformed_bodies_are_4xx_with_a_message(
    client: TestClient, body: bytes, ctype: str, phrase: str
) -> None:
    response = post_raw(client, "/v1/uhi/predict", body, ctype)
    assert 400 <= response.status_code < 500
    assert phrase in response.text


def test_deeply_nested_json_is_4xx(client: TestClient) -> None:
    response = post_raw(client, "/v1/uhi/predict", b"[" * 20000)
    assert 400 <= response.status_code < 500


def test_batch_predicts_each_instance_with_one_version(client: TestClient) -> None:
    instances = [LEGACY, {**LEGACY, "ndvi": 0.0}, {**LEGACY, "tree_cover": 1.0}]
    response = client.post("/v1/uhi/predict/batch", json={"instances": instances})
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == pytest.approx([35.0, 30.0, 30.0])
    assert body["model"]["version"] == 7 and response.headers["X-Model-Version"] == "7"


def test_batch_limits_are_clear(client: TestClient) -> None:
    too_many = client.post("/v1/uhi/predict/batch", json={"instances": [LEGACY] * 4})
    assert too_many.status_code == 422
    assert "too many instances: 4 given, at most 3" in too_many.json()["message"]
    empty = client.post("/v1/uhi/predict/batch", json={"instances": []})
    assert empty.status_code == 422 and "at least one" in empty.json()["message"]
    bad_item = client.post(
        "/v1/uhi/predict/batch", json={"instances": [LEGACY, {**LEGACY, "ndvi": 9}]}
    )
    assert bad_item.status_code == 422
    assert bad_item.json()["errors"][0]["field"] == "instances[1].ndvi"


def test_unknown_service_is_404_listing_served_ones(client: TestClient) -> None:
    response = client.post("/v1/wildfire/predict", json=LEGACY)
    assert response.status_code == 404
    assert response.json()["hint"] == "served services: flood, uhi"


def test_service_without_champion_is_503_and_not_ready(client: TestClient) -> None:
    flood = all_services()["flood"]
    body = {f.name: f.example for f in flood.features if f.required}
    response = client.post("/v1/flood/predict", json=body)
    assert response.status_code == 503 and response.json()["error"] == "model_not_ready"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["services"]["uhi"]["version"] == 7
    assert ready.json()["services"]["flood"]["ready"] is False


def test_ready_when_every_service_has_a_champion(
    client: TestClient, holders: dict[str, ModelHolder]
) -> None:
    holders["flood"].swap(loaded("flood", 2))
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").json() == {"status": "alive"}
    models = client.get("/v1/models").json()["services"]
    assert models["uhi"]["loaded"]["version"] == 7 and models["flood"]["loaded"]["version"] == 2


def test_docs_are_served_offline(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "http://" not in html and "https://" not in html, page
        assets = [a for a in html.split('"') if a.startswith("/static-offline-docs/")]
        assert assets, page
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
    schema = client.get("/openapi.json").json()
    uhi = schema["components"]["schemas"]["UhiFeatures"]
    assert uhi["required"] == ["ndvi", "building_density", "water_distance"]
    assert uhi["properties"]["ndvi"]["maximum"] == 1.0


def test_admin_api_is_disabled_without_a_token(client: TestClient) -> None:
    response = client.post("/v1/admin/uhi/promote", json={"version": 1})
    assert response.status_code == 403
    assert response.json()["message"] == "admin API disabled (set TERRAOPS_ADMIN_TOKEN)"
    assert client.get("/v1/admin/uhi/history").status_code == 403


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic c2VjcmV0", "Bearer "])
def test_admin_api_needs_the_right_bearer_token(
    settings: Settings, holders: dict[str, ModelHolder], auth: str | None
) -> None:
    secured = Settings(home=settings.home, admin_token="s3cret")  # type: ignore[arg-type]
    client = TestClient(create_app(secured, holders=holders, watch=False))
    headers = {"Authorization": auth} if auth else {}
    response = client.post("/v1/admin/uhi/rollback", json={}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | finite | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=8,
)


@hypothesis_settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.dictionaries(
        st.sampled_from([*all_services()["uhi"].feature_names, "x"]), json_values | finite
    )
)
def test_no_input_produces_a_5xx(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/v1/uhi/predict", json=body)
    assert response.status_code in (200, 422)
    if response.status_code == 200:
        assert math.isfinite(response.json()["prediction"])
    else:
        assert response.json()["message"]
