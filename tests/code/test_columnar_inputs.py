"""Batches given column by column (columnar JSON, Arrow IPC) predict what rows predict.

Through the app, with a model whose prediction is the sum of its inputs in
its own feature order: the same rows as ``instances``, as ``columns`` and as an
Arrow stream give the same answer; a bad value is refused with a 422 naming
its column and row; a body over the size limit gets the 413; the OpenAPI
document describes the three bodies.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from terraops.api.app import create_app
from terraops.api.columnar_inputs import ARROW_STREAM
from terraops.api.model_holder import LoadedModel, ModelHolder
from terraops.services import all_services
from terraops.settings import Settings

UHI = all_services()["uhi"]
NAMES = UHI.feature_names
ROWS = [
    {"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000.0},
    {"ndvi": -0.2, "building_density": 0.1, "water_distance": 3.0, "tree_cover": 0.4},
    {"ndvi": 0.9, "building_density": 0.0, "water_distance": 0.0, "tree_cover": None},
]
COLUMNS = {
    "ndvi": [0.5, -0.2, 0.9],
    "building_density": [0.7, 0.1, 0.0],
    "water_distance": [1000.0, 3.0, 0],
    "tree_cover": [None, 0.4, None],
}
MAX_ROWS = 5
BATCH = "/v1/uhi/predict/batch"


class RowSum:
    """prediction = sum of the given inputs (NaN counted as 0), in the model's order."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.nansum(X, axis=1)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    holder = ModelHolder(UHI)
    holder.swap(
        LoadedModel(
            service="uhi",
            name="uhi",
            version=2,
            alias="champion",
            predictor=RowSum(),
            feature_names=tuple(reversed(NAMES)),
            source="registry",
        )
    )
    home = tmp_path_factory.mktemp("columnar") / "home"
    settings = Settings(home=home, max_batch_size=MAX_ROWS, max_body_mb=0.01)
    return TestClient(create_app(settings, holders={"uhi": holder}, watch=False))


def arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def post_json(client: TestClient, body: Any) -> Any:
    content = body if isinstance(body, str) else json.dumps(body)
    return client.post(BATCH, content=content, headers={"content-type": "application/json"})


def post_arrow(client: TestClient, body: bytes) -> Any:
    return client.post(BATCH, content=body, headers={"content-type": ARROW_STREAM})


def refused(response: Any, field: str, phrase: str) -> None:
    assert response.status_code == 422, response.text
    payload = response.json()
    assert [e["field"] for e in payload["errors"]] == [field]
    assert phrase in payload["message"], payload["message"]


def test_columns_and_arrow_answer_as_rows_do(client: TestClient) -> None:
    rows = post_json(client, {"instances": ROWS})
    columns = post_json(client, {"columns": COLUMNS})
    table = pa.table({**COLUMNS, "water_distance": pa.array([1000, 3, 0], pa.int64())})
    streamed = post_arrow(client, arrow(table))
    assert rows.status_code == columns.status_code == streamed.status_code == 200
    assert rows.json()["predictions"] == pytest.approx([1000.5 + 0.7, 3.3, 0.9])
    assert columns.content == rows.content == streamed.content
    assert streamed.headers["x-model-version"] == "2"


@pytest.mark.parametrize(
    ("change", "field", "phrase"),
    [
        ({"ndvi": [0.5, 0.4, 9]}, "columns.ndvi[2]", "9.0 is out of range (allowed: -1 to 1)"),
        ({"ndvi": [0.5, "x", 0.1]}, "columns.ndvi[1]", "must be a JSON number, got string"),
        ({"ndvi": [0.5, None, 0.1]}, "columns.ndvi[1]", "must be a JSON number, got null"),
        ({"ndvi": [0.5, True, 0.1]}, "columns.ndvi[1]", "got boolean"),
        ({"tree_cover": [0.1, 0.2, 1.5]}, "columns.tree_cover[2]", "out of range"),
        ({"ndvi": [0.5, 0.4]}, "columns.ndvi", "has 2 values but"),
        ({"typo": [1, 2, 3]}, "columns.typo", "unknown field"),
        ({"ndvi": 0.5}, "columns.ndvi", "must be an array of numbers"),
    ],
)
def test_a_bad_column_value_gets_a_422_naming_column_and_row(
    client: TestClient, change: dict[str, Any], field: str, phrase: str
) -> None:
    refused(post_json(client, {"columns": {**COLUMNS, **change}}), field, phrase)


def test_columnar_json_envelope_errors(client: TestClient) -> None:
    missing = {k: v for k, v in COLUMNS.items() if k != "building_density"}
    refused(post_json(client, {"columns": missing}), "columns.building_density", "missing")
    too_many = {k: [0.1] * (MAX_ROWS + 1) for k in COLUMNS}
    refused(post_json(client, {"columns": too_many}), "columns.ndvi", "send 1 to 5 rows")
    row = "[0.5, 1e999, 0.1]"
    body = json.dumps({"columns": COLUMNS}).replace("[0.5, -0.2, 0.9]", row)
    refused(post_json(client, body), "columns.ndvi[1]", "must be a finite number")
    broken = json.dumps({"columns": COLUMNS})[:-5]
    assert post_json(client, broken).status_code == 422


def test_a_bad_arrow_value_gets_a_422_naming_column_and_row(client: TestClient) -> None:
    base = {**COLUMNS, "ndvi": pa.array([0.5, 0.4, 0.3])}
    nan = pa.table({**base, "ndvi": pa.array([0.5, math.nan, 0.3])})
    refused(post_arrow(client, arrow(nan)), "ndvi[1]", "must be a finite number")
    high = pa.table({**base, "building_density": pa.array([0.1, 0.2, 3.0])})
    refused(post_arrow(client, arrow(high)), "building_density[2]", "out of range")
    null = pa.table({**base, "ndvi": pa.array([0.5, None, 0.3], pa.float64())})
    refused(post_arrow(client, arrow(null)), "ndvi[1]", "got null")
    text = pa.table({**base, "ndvi": pa.array(["a", "b", "c"])})
    refused(post_arrow(client, arrow(text)), "ndvi", "must be a column of numbers")
    extra = pa.table({**base, "typo": pa.array([1.0, 2.0, 3.0])})
    refused(post_arrow(client, arrow(extra)), "typo", "unknown field")
    short = pa.table({k: v for k, v in base.items() if k != "water_distance"})
    refused(post_arrow(client, arrow(short)), "water_distance", "missing")
    refused(post_arrow(client, b"not arrow"), "body", "is not an Arrow IPC stream")


def test_bodies_over_the_size_limit_get_the_413(client: TestClient) -> None:
    big = {k: [0.1] * 2000 for k in ("ndvi", "building_density", "water_distance")}
    assert post_json(client, {"columns": big}).status_code == 413
    table = pa.table({k: pa.array(np.full(2000, 0.1)) for k in big})
    response = post_arrow(client, arrow(table))
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_openapi_describes_the_three_bodies(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    body = document["paths"][BATCH]["post"]["requestBody"]["content"]
    assert body[ARROW_STREAM]["schema"]["format"] == "binary"
    schema = document["components"]["schemas"]["UhiBatchRequest"]
    titles = [shape.get("title") for shape in schema["oneOf"]]
    assert titles == ["Rows", "Columns"]
    columns = schema["oneOf"][1]["properties"]["columns"]
    assert columns["properties"]["ndvi"]["items"]["maximum"] == 1
    assert set(columns["required"]) == {f.name for f in UHI.features if f.required}


def test_without_a_model_columnar_bodies_get_the_503(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path / "home", max_batch_size=MAX_ROWS)
    empty = TestClient(create_app(settings, holders={"uhi": ModelHolder(UHI)}, watch=False))
    table = pa.table({k: pa.array([0.1, 0.2, 0.3]) for k in ("ndvi", "building_density")})
    for response in (post_json(empty, {"columns": COLUMNS}), post_arrow(empty, arrow(table))):
        assert response.status_code == 503, response.text
        assert "no champion loaded" in response.json()["message"]
