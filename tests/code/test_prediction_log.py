"""The prediction log: every served prediction lands on disk with its lineage."""

from __future__ import annotations

import math
from pathlib import Path

from fastapi.testclient import TestClient

from terraops.adapters.prediction_log import PredictionLog, read_predictions
from terraops.api.app import create_app
from terraops.api.model_holder import LoadedModel, ModelHolder
from terraops.services import get_service
from terraops.settings import Settings


class ConstantPredictor:
    def predict(self, X):  # type: ignore[no-untyped-def]
        return X[:, 0] * 0 + 31.5


def test_records_are_flushed_as_json_lines_with_null_for_missing(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path)
    plog.record("uhi", 3, ["a", "b"], [[1.0, math.nan], [2.0, 0.5]], [10.0, 11.0], 0.2)
    assert plog.flush() == 2
    records = list(read_predictions(tmp_path, "uhi"))
    assert [r["inputs"] for r in records] == [{"a": 1.0, "b": None}, {"a": 2.0, "b": 0.5}]
    assert {r["version"] for r in records} == {3}
    assert plog.flush() == 0  # nothing written twice


def test_full_buffer_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path, max_buffered=3)
    plog.record("uhi", 1, ["a"], [[1.0], [2.0]], [1.0, 2.0], 0.1)
    plog.record("uhi", 1, ["a"], [[1.0], [2.0]], [1.0, 2.0], 0.1)
    assert plog.dropped == 2
    assert plog.flush() == 2


def test_served_predictions_are_logged(settings: Settings) -> None:
    definition = get_service("uhi")
    holder = ModelHolder(definition)
    holder.swap(
        LoadedModel(
            service="uhi",
            name="uhi",
            version=4,
            alias="champion",
            predictor=ConstantPredictor(),
            feature_names=tuple(definition.feature_names),
            source="registry",
        )
    )
    app = create_app(settings, holders={"uhi": holder}, watch=False)
    with TestClient(app) as client:  # the lifespan starts and stops the writer
        assert (
            client.post(
                "/v1/uhi/predict",
                json={"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000},
            ).status_code
            == 200
        )
        batch = {"instances": [{"ndvi": 0.1, "building_density": 0.2, "water_distance": 5.0}] * 3}
        assert client.post("/v1/uhi/predict/batch", json=batch).status_code == 200
        assert client.post("/v1/uhi/predict", json={"ndvi": 7}).status_code == 422
    records = list(read_predictions(settings.predictions_dir, "uhi"))
    assert len(records) == 4  # the rejected request is not a prediction
    first = records[0]
    assert first["version"] == 4 and first["prediction"] == 31.5
    assert first["inputs"]["ndvi"] == 0.5 and first["inputs"]["tree_cover"] is None
    assert first["latency_ms"] >= 0
