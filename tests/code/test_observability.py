"""``/metrics`` in one process: what is counted, under which labels; dead-worker bookkeeping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from terraops.api.app import create_app
from terraops.api.model_holder import LoadedModel, ModelHolder
from terraops.api.observability import mark_dead_workers
from terraops.services import get_service
from terraops.settings import Settings

LEGACY = {"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000}


class Constant:
    def predict(self, X):  # type: ignore[no-untyped-def]
        return X[:, 0] * 0 + 30.0


def loaded(version: int) -> LoadedModel:
    definition = get_service("uhi")
    return LoadedModel(
        service="uhi",
        name="uhi",
        version=version,
        alias="champion",
        predictor=Constant(),
        feature_names=tuple(definition.feature_names),
        source="registry",
    )


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(figures: dict[Any, float], name: str, **labels: str) -> float:
    return figures.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_by_version_status_and_swaps(settings: Settings) -> None:
    holder = ModelHolder(get_service("uhi"))
    holder.swap(loaded(1))
    secured = settings.model_copy(update={"feedback_token": SecretStr("t")})
    app = create_app(secured, holders={"uhi": holder}, watch=False)
    with TestClient(app, headers={"Authorization": "Bearer t"}) as client:
        for _ in range(3):
            assert client.post("/v1/uhi/predict", json=LEGACY).status_code == 200
        assert client.post("/v1/uhi/predict", json={"ndvi": 9}).status_code == 422
        holder.swap(loaded(2))  # what the watcher does on a promotion
        batch = {"instances": [LEGACY] * 4}
        assert client.post("/v1/uhi/predict/batch", json=batch).status_code == 200
        assert client.post("/v1/uhi/feedback", json={"features": LEGACY, "observed": 31.0})
        answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    figures = samples(answer.text)
    count = "terraops_request_duration_seconds_count"
    assert value(figures, count, service="uhi", version="1", endpoint="predict", status="200") == 3
    assert (
        value(figures, count, service="uhi", version="none", endpoint="predict", status="422") == 1
    )
    assert value(figures, count, service="uhi", version="2", endpoint="batch", status="200") == 1
    assert value(figures, count, service="uhi", version="2", endpoint="feedback", status="201") == 1
    assert value(figures, "terraops_predictions_total", service="uhi", version="1") == 3
    assert value(figures, "terraops_predictions_total", service="uhi", version="2") == 4
    reloads = "terraops_model_reloads_total"
    assert value(figures, reloads, service="uhi", version="2", source="registry") == 1
    assert value(figures, "terraops_model_loaded_version", service="uhi") == 2
    assert value(figures, "terraops_feedback_total", service="uhi", version="2") == 1
    assert value(figures, "terraops_live_error", service="uhi", version="2", metric="mae") == 1.0
    assert value(figures, "terraops_live_error", service="uhi", version="all", metric="mae") == 1.0
    assert (
        value(figures, "terraops_feedback_error_total", service="uhi", version="2", metric="mae")
        == 1.0
    )
    bucket = "terraops_request_duration_seconds_bucket"
    fast = value(
        figures, bucket, service="uhi", version="1", endpoint="predict", status="200", le="5.0"
    )
    assert fast == 3


def test_no_live_error_before_feedback(settings: Settings) -> None:
    holder = ModelHolder(get_service("uhi"))
    holder.swap(loaded(1))
    with TestClient(create_app(settings, holders={"uhi": holder}, watch=False)) as client:
        text = client.get("/metrics").text
    assert "terraops_live_error{" not in text
    assert 'terraops_prediction_log_dropped_total{reason="buffer_full"} 0.0' in text


def test_dead_workers_lose_their_live_gauges(tmp_path: Path) -> None:
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                            capture_output=True, text=True)  # fmt: skip
    dead_pid = int(exited.stdout)
    for name in (f"gauge_liveall_{dead_pid}.db", "gauge_liveall_1.db", f"counter_{dead_pid}.db"):
        (tmp_path / name).write_bytes(b"")
    assert mark_dead_workers(tmp_path) == [dead_pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{dead_pid}.db",  # counters of a dead worker still count
        "gauge_liveall_1.db",  # pid 1 is alive
    ]
