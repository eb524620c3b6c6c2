"""The prediction log: every served prediction lands on disk with its lineage and request id."""

from __future__ import annotations

import json
import math
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from terraops.adapters.prediction_log import (
    PredictionLog,
    delete_older_than,
    find_prediction,
    read_predictions,
)
from terraops.api.app import create_app
from terraops.api.model_holder import LoadedModel, ModelHolder
from terraops.services import get_service
from terraops.settings import Settings

LEGACY = {"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000}


class ConstantPredictor:
    def predict(self, X):  # type: ignore[no-untyped-def]
        return X[:, 0] * 0 + 31.5


def holder_with(version: int | None = 4) -> ModelHolder:
    definition = get_service("uhi")
    holder = ModelHolder(definition)
    if version is not None:
        holder.swap(
            LoadedModel(
                service="uhi",
                name="uhi",
                version=version,
                alias="champion",
                predictor=ConstantPredictor(),
                feature_names=tuple(definition.feature_names),
                source="registry",
            )
        )
    return holder


def test_records_are_flushed_as_json_lines_with_null_for_missing(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path)
    plog.record("r1", "uhi", 3, ["a", "b"], [[1.0, math.nan], [2.0, 0.5]], [10.0, 11.0], 0.2)
    assert plog.flush() == 2
    records = list(read_predictions(tmp_path, "uhi"))
    assert [r["features"] for r in records] == [{"a": 1.0, "b": None}, {"a": 2.0, "b": 0.5}]
    assert [(r["request_id"], r["index"]) for r in records] == [("r1", 0), ("r1", 1)]
    assert {r["version"] for r in records} == {3}
    assert {r["status"] for r in records} == {200}
    assert datetime.fromisoformat(records[0]["ts"]).tzinfo is not None
    assert plog.flush() == 0  # nothing written twice


def test_a_numpy_matrix_of_rows_is_logged_like_lists(tmp_path: Path) -> None:
    """The fast batch path hands the log its float64 matrix (NaN: not given)."""
    import numpy as np

    plog = PredictionLog(tmp_path)
    matrix = np.array([[1.0, math.nan], [2.0, 0.5]])
    plog.record("m1", "uhi", 3, ("a", "b"), matrix, [10.0, 11.0], 0.2)  # type: ignore[arg-type]
    assert plog.flush() == 2
    records = list(read_predictions(tmp_path, "uhi"))
    assert [r["features"] for r in records] == [{"a": 1.0, "b": None}, {"a": 2.0, "b": 0.5}]
    assert [r["prediction"] for r in records] == [10.0, 11.0]


def test_full_buffer_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    lost: list[tuple[str, int]] = []
    plog = PredictionLog(tmp_path, max_buffered=3, on_drop=lambda r, n: lost.append((r, n)))
    plog.record("a", "uhi", 1, ["a"], [[1.0], [2.0]], [1.0, 2.0], 0.1)
    plog.record("b", "uhi", 1, ["a"], [[1.0], [2.0]], [1.0, 2.0], 0.1)
    assert plog.dropped["buffer_full"] == 2 and lost == [("buffer_full", 2)]
    assert plog.flush() == 2
    plog.record("c", "uhi", 1, ["a"], [[1.0], [2.0]], [1.0, 2.0], 0.1)  # room again
    assert plog.flush() == 2


def test_reader_skips_a_truncated_last_line_and_a_broken_one(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path)
    plog.record("ok", "uhi", 1, ["a"], [[1.0], [2.0], [3.0]], [1.0, 2.0, 3.0], 0.1)
    plog.flush()
    (path,) = (tmp_path / "uhi").glob("*.jsonl")
    lines = path.read_bytes().split(b"\n")
    # a crash mid-write: the last record cut in half, no newline
    lines[1] = b'{"request_id":"garbage'
    path.write_bytes(b"\n".join(lines[:2]) + b"\n" + lines[2][: len(lines[2]) // 2])
    records = list(read_predictions(tmp_path, "uhi"))
    assert [r["index"] for r in records] == [0]
    assert find_prediction(tmp_path, "uhi", "ok", 2) is None  # the cut record is not "found"
    assert find_prediction(tmp_path, "uhi", "ok", 0)["prediction"] == 1.0  # type: ignore[index]


def test_reader_reads_records_of_the_earlier_format(tmp_path: Path) -> None:
    folder = tmp_path / "uhi"
    folder.mkdir()
    old = {"t": 1_700_000_000.0, "service": "uhi", "version": 2, "inputs": {"a": 1.0}}
    (folder / "2023-11-14-1.jsonl").write_text(json.dumps({**old, "prediction": 3.0}) + "\n")
    (record,) = read_predictions(tmp_path, "uhi")
    assert record["features"] == {"a": 1.0} and record["status"] == 200
    assert record["ts"].startswith("2023-11-14T22:13:20")


def test_files_rotate_by_size_and_read_back_in_order(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path, max_bytes=600)
    for i in range(12):
        plog.record(f"r{i}", "uhi", 1, ["a", "b"], [[float(i), 0.5]], [float(i)], 0.1)
        plog.flush()
    files = sorted((tmp_path / "uhi").glob("*.jsonl"))
    assert len(files) >= 4
    assert all(f.stat().st_size <= 600 for f in files)
    assert [r["request_id"] for r in read_predictions(tmp_path, "uhi")] == [
        f"r{i}" for i in range(12)
    ]


def test_old_files_are_deleted_by_the_writer(tmp_path: Path) -> None:
    old = tmp_path / "uhi" / "2020-01-01-1-0000.jsonl"
    old.parent.mkdir(parents=True)
    old.write_text('{"request_id":"x","index":0}\n')
    forty_days_ago = time.time() - 40 * 86400
    os.utime(old, (forty_days_ago, forty_days_ago))
    plog = PredictionLog(tmp_path, retention_s=30 * 86400)
    plog.record("new", "uhi", 1, ["a"], [[1.0]], [1.0], 0.1)
    plog.flush()
    assert not old.exists()
    assert [r["request_id"] for r in read_predictions(tmp_path, "uhi")] == ["new"]
    assert delete_older_than(tmp_path, time.time() - 86400) == []  # the new one stays


def test_since_filters_records(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path)
    plog.record("before", "uhi", 1, ["a"], [[1.0]], [1.0], 0.1)
    plog.flush()
    time.sleep(0.01)
    middle = datetime.now(UTC)
    time.sleep(0.01)
    plog.record("after", "uhi", 1, ["a"], [[1.0]], [1.0], 0.1)
    plog.flush()
    assert [r["request_id"] for r in read_predictions(tmp_path, "uhi", since=middle)] == ["after"]
    naive = middle.replace(tzinfo=None)  # taken as UTC
    assert [r["request_id"] for r in read_predictions(tmp_path, "uhi", since=naive)] == ["after"]
    future = middle + timedelta(days=1)
    assert list(read_predictions(tmp_path, "uhi", since=future)) == []


def test_a_failed_write_drops_counts_and_recovers(tmp_path: Path) -> None:
    """The fault comes from the file system: a file sits where the service's folder goes."""
    blocker = tmp_path / "uhi"
    blocker.write_text("not a folder")
    plog = PredictionLog(tmp_path)
    plog.record("lost", "uhi", 1, ["a"], [[1.0], [2.0]], [1.0, 2.0], 0.1)
    assert plog.flush() == 0
    assert plog.dropped["write_error"] == 2 and plog.last_error is not None
    blocker.unlink()
    plog.record("kept", "uhi", 1, ["a"], [[1.0]], [1.0], 0.1)
    plog.flush()
    assert [r["request_id"] for r in read_predictions(tmp_path, "uhi")] == ["kept"]
    assert plog.stats()["last_error"] is None and plog.written == 1


def test_a_partial_write_is_rolled_back(tmp_path: Path) -> None:
    """/dev/full accepts the open and fails the write (ENOSPC), like a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    plog = PredictionLog(tmp_path)
    plog.record("first", "uhi", 1, ["a"], [[1.0]], [1.0], 0.1)
    plog.flush()
    (path,) = (tmp_path / "uhi").glob("*.jsonl")
    good = path.read_bytes()
    path.unlink()
    path.symlink_to("/dev/full")
    plog.record("second", "uhi", 1, ["a"], [[2.0]], [2.0], 0.1)
    plog.flush()
    assert plog.dropped["write_error"] == 1 and "No space" in (plog.last_error or "")
    path.unlink()
    path.write_bytes(good)
    assert [r["request_id"] for r in read_predictions(tmp_path, "uhi")] == ["first"]


def test_served_predictions_are_logged_with_the_request_id(settings: Settings) -> None:
    app = create_app(settings, holders={"uhi": holder_with(4)}, watch=False)
    with TestClient(app) as client:  # the lifespan starts and stops the writer
        point = client.post("/v1/uhi/predict", json=LEGACY, headers={"X-Request-Id": "caller-7"})
        assert point.status_code == 200 and point.headers["X-Request-Id"] == "caller-7"
        batch = {"instances": [{"ndvi": 0.1, "building_density": 0.2, "water_distance": 5.0}] * 3}
        made = client.post("/v1/uhi/predict/batch", json=batch)
        assert made.status_code == 200
        bad = client.post("/v1/uhi/predict", json={"ndvi": 7}, headers={"X-Request-Id": "a b"})
        assert bad.status_code == 422
        assert bad.headers["X-Request-Id"] not in ("a b", made.headers["X-Request-Id"])
    records = list(read_predictions(settings.predictions_dir, "uhi"))
    assert len(records) == 4  # the rejected request is not a prediction
    first = records[0]
    assert first["request_id"] == "caller-7" and first["index"] == 0
    assert first["version"] == 4 and first["prediction"] == 31.5 and first["status"] == 200
    assert first["features"]["ndvi"] == 0.5 and first["features"]["tree_cover"] is None
    assert first["latency_ms"] >= 0
    batch_id = made.headers["X-Request-Id"]
    assert [(r["request_id"], r["index"]) for r in records[1:]] == [
        (batch_id, 0),
        (batch_id, 1),
        (batch_id, 2),
    ]


def test_generated_request_ids_are_unique_and_on_every_response(settings: Settings) -> None:
    app = create_app(settings, holders={"uhi": holder_with(4)}, watch=False)
    with TestClient(app) as client:
        ids = {
            client.post("/v1/uhi/predict", json=LEGACY).headers["X-Request-Id"] for _ in range(50)
        }
        assert len(ids) == 50
        assert client.get("/readyz").headers["X-Request-Id"]
        assert client.post("/v1/nope/predict", json=LEGACY).headers["X-Request-Id"]
        too_long = "x" * 129
        echoed = client.get("/healthz", headers={"X-Request-Id": too_long})
        assert echoed.headers["X-Request-Id"] != too_long


def test_requests_that_fail_after_validation_are_logged_with_their_status(
    settings: Settings,
) -> None:
    app = create_app(settings, holders={"uhi": holder_with(None)}, watch=False)
    with TestClient(app) as client:
        answer = client.post("/v1/uhi/predict", json=LEGACY, headers={"X-Request-Id": "early"})
        assert answer.status_code == 503
    (record,) = read_predictions(settings.predictions_dir, "uhi")
    assert record["request_id"] == "early" and record["status"] == 503
    assert record["prediction"] is None and record["version"] is None


def test_readyz_shows_log_losses_of_this_worker(settings: Settings) -> None:
    settings.predictions_dir.mkdir(parents=True)
    (settings.predictions_dir / "uhi").write_text("a file where the folder should be")
    app = create_app(settings, holders={"uhi": holder_with(4)}, watch=False)
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post("/v1/uhi/predict", json=LEGACY).status_code == 200
        app.state.prediction_log.flush()
        ready = client.get("/readyz")
        assert ready.status_code == 200  # losses are shown, they do not make the server unready
        shown = ready.json()["prediction_log"]
        assert shown["enabled"] and shown["dropped"]["write_error"] == 3
        assert "uhi" in shown["last_error"]
        metrics = client.get("/metrics").text
        assert 'terraops_prediction_log_dropped_total{reason="write_error"} 3.0' in metrics
