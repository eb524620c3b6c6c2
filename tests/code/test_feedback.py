"""Ground truth: the feedback API, ``terraops feedback import`` and the live error."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from terraops.adapters.feedback_store import FeedbackRow, FeedbackStore
from terraops.api.app import create_app
from terraops.api.model_holder import LoadedModel, ModelHolder
from terraops.cli.main import app as cli
from terraops.errors import ConflictError
from terraops.pipelines.monitoring.feedback import BadRowsError, FeedbackEntry, import_feedback
from terraops.services import get_service
from terraops.settings import Settings

LEGACY = {"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000}
FEEDBACK_TOKEN = "feedback-test-token"
FLOOD = {f.name: f.example for f in get_service("flood").features if f.required}


class Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, X):  # type: ignore[no-untyped-def]
        return X[:, 0] * 0 + self.value


def holder(service: str, version: int, value: float) -> ModelHolder:
    definition = get_service(service)
    h = ModelHolder(definition)
    h.swap(
        LoadedModel(
            service=service,
            name=service,
            version=version,
            alias="champion",
            predictor=Constant(value),
            feature_names=tuple(definition.feature_names),
            source="registry",
        )
    )
    return h


@pytest.fixture
def client(settings: Settings) -> Any:
    holders = {"uhi": holder("uhi", 4, 31.5), "flood": holder("flood", 2, 0.8)}
    secured = settings.model_copy(update={"feedback_token": SecretStr(FEEDBACK_TOKEN)})
    app = create_app(secured, holders=holders, watch=False)
    with TestClient(app, headers={"Authorization": f"Bearer {FEEDBACK_TOKEN}"}) as c:
        c.app_state = app.state  # type: ignore[attr-defined]
        yield c


def predict(client: Any, request_id: str, body: dict[str, Any] = LEGACY) -> None:
    answer = client.post("/v1/uhi/predict", json=body, headers={"X-Request-Id": request_id})
    assert answer.status_code == 200


def test_feedback_by_request_id_is_joined_to_the_served_prediction(
    client: Any, settings: Settings
) -> None:
    predict(client, "req-1")
    predict(client, "req-2")
    first = client.post("/v1/uhi/feedback", json={"request_id": "req-1", "observed": 30.0})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["version"] == 4 and body["prediction"] == 31.5 and body["error"] == 1.5
    assert client.post(
        "/v1/uhi/feedback", json={"request_id": "req-2", "observed": 34.5}
    ).is_success
    live = client.get("/v1/uhi/live-error").json()
    assert live["n"] == 2 and live["metric"] == "mae" and live["value"] == pytest.approx(2.25)
    assert live["by_version"]["4"]["bias"] == pytest.approx(-0.75)
    # durable: another store on the same file (as another worker or the CLI) sees it
    stored = FeedbackStore(settings.feedback_db).live_error("uhi")
    assert stored["n"] == 2 and stored["by_version"][4]["mae"] == pytest.approx(2.25)


def test_a_prediction_gets_truth_once(client: Any, settings: Settings) -> None:
    predict(client, "once")
    assert client.post("/v1/uhi/feedback", json={"request_id": "once", "observed": 30.0}).is_success
    again = client.post("/v1/uhi/feedback", json={"request_id": "once", "observed": 99.0})
    assert again.status_code == 409 and "already received" in again.json()["message"]
    (row,) = FeedbackStore(settings.feedback_db).rows("uhi")
    assert row["observed"] == 30.0  # the first value is kept


def test_unknown_request_id_is_a_clear_404(client: Any) -> None:
    answer = client.post("/v1/uhi/feedback", json={"request_id": "never-made", "observed": 1.0})
    assert answer.status_code == 404
    assert "no prediction with request id 'never-made'" in answer.json()["message"]
    assert "X-Request-Id" in answer.json()["hint"]


def test_feedback_for_a_row_of_a_batch(client: Any) -> None:
    batch = {"instances": [LEGACY, LEGACY]}
    made = client.post("/v1/uhi/predict/batch", json=batch, headers={"X-Request-Id": "b-1"})
    assert made.status_code == 200
    ok = client.post("/v1/uhi/feedback", json={"request_id": "b-1", "index": 1, "observed": 31.0})
    assert ok.status_code == 201 and ok.json()["index"] == 1
    missing = client.post(
        "/v1/uhi/feedback", json={"request_id": "b-1", "index": 5, "observed": 31.0}
    )
    assert missing.status_code == 404 and "(row 5)" in missing.json()["message"]


def test_feedback_by_features_is_scored_with_the_champion(client: Any) -> None:
    answer = client.post("/v1/uhi/feedback", json={"features": LEGACY, "observed": 33.5})
    assert answer.status_code == 201
    assert answer.json()["prediction"] == 31.5 and answer.json()["version"] == 4
    assert answer.json()["features"]["ndvi"] == 0.5


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"observed": 1.0}, 422, "give either"),
        ({"request_id": "x", "features": LEGACY, "observed": 1.0}, 422, "not both"),
        ({"request_id": "x"}, 422, "observed: required field is missing"),
        ({"request_id": "x", "observed": "30"}, 422, "must be a JSON number"),
        ({"request_id": "x", "observed": True}, 422, "must be a JSON number"),
        ({"request_id": "bad id", "observed": 1.0}, 422, "request_id"),
        ({"request_id": "x", "observed": 1.0, "extra": 1}, 422, "unknown field"),
        ({"request_id": "x", "index": -1, "observed": 1.0}, 422, "index"),
        ({"features": {**LEGACY, "ndvi": 4}, "observed": 1.0}, 422, "allowed: -1 to 1"),
        ({"features": LEGACY, "index": 2, "observed": 1.0}, 422, "index"),
    ],
)
def test_bad_feedback_gets_a_clear_422(
    client: Any, body: dict[str, Any], status: int, message: str
) -> None:
    answer = client.post("/v1/uhi/feedback", json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["message"]


def test_binary_feedback_takes_0_or_1_and_gives_brier_and_f1(client: Any) -> None:
    bad = client.post("/v1/flood/feedback", json={"features": FLOOD, "observed": 0.5})
    assert bad.status_code == 422 and "give 0 or 1" in bad.json()["message"]
    for observed in (1, 1, 0):  # constant p = 0.8
        assert client.post(
            "/v1/flood/feedback", json={"features": FLOOD, "observed": observed}
        ).is_success
    live = client.get("/v1/flood/live-error").json()
    assert live["metric"] == "brier" and live["n"] == 3
    assert live["value"] == pytest.approx((0.04 + 0.04 + 0.64) / 3)
    assert live["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 0))


def test_unknown_service_feedback_is_404(client: Any) -> None:
    answer = client.post("/v1/nope/feedback", json={"request_id": "x", "observed": 1.0})
    assert answer.status_code == 404 and "not served" in answer.json()["message"]


def test_live_error_filters_by_version_and_time(settings: Settings) -> None:
    store = FeedbackStore(settings.feedback_db)
    assert store.live_error("uhi") == {
        "service": "uhi", "n": 0, "metric": "mae", "value": None, "since": None,
        "by_version": {}, "bias": None,
    }  # fmt: skip
    assert store.live_error("flood")["metric"] == "brier"
    for version, prediction in ((1, 30.0), (2, 34.0)):
        store.add(
            "uhi", task="regression", version=version, prediction=prediction, observed=31.0,
            predicted_at="2025-01-01T00:00:00+00:00", request_id=f"r{version}",
        )  # fmt: skip
    assert store.live_error("uhi", version=2)["value"] == 3.0
    assert store.live_error("uhi")["value"] == 2.0
    from datetime import UTC, datetime, timedelta

    assert store.live_error("uhi", since=datetime.now(UTC) + timedelta(seconds=5))["n"] == 0


def test_concurrent_writers_lose_nothing(settings: Settings) -> None:
    store_path = settings.feedback_db

    def write(worker: int) -> None:
        store = FeedbackStore(store_path)
        for i in range(20):
            store.add(
                "uhi", task="regression", version=1, prediction=1.0, observed=0.0,
                predicted_at="2025-01-01T00:00:00+00:00", request_id=f"w{worker}-{i}",
            )  # fmt: skip

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert FeedbackStore(store_path).live_error("uhi")["n"] == 80


def test_add_many_is_all_or_nothing(settings: Settings) -> None:
    store = FeedbackStore(settings.feedback_db)
    row = FeedbackRow("uhi", "regression", 1, 1.0, 0.0, "2025-01-01T00:00:00+00:00", "dup")
    store.add_many([row])
    other = FeedbackRow("uhi", "regression", 1, 1.0, 0.0, "2025-01-01T00:00:00+00:00", "new")
    with pytest.raises(ConflictError, match="'dup'"):
        store.add_many([other, row])
    assert [r["request_id"] for r in store.rows("uhi")] == ["dup"]


# ----- terraops feedback import -----------------------------------------------------------


def served(settings: Settings, ids: list[str]) -> None:
    """Predictions made by a real app (so the log holds them), then the app stopped."""
    app = create_app(settings, holders={"uhi": holder("uhi", 4, 31.5)}, watch=False)
    with TestClient(app) as c:
        for rid in ids:
            predict(c, rid)


def run_cli(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), obj=settings)


def test_import_csv_joins_by_request_id(settings: Settings, tmp_path: Path) -> None:
    served(settings, ["a1", "a2", "a3"])
    data = tmp_path / "truth.csv"
    data.write_text("request_id,observed\na1,30.5\na2,32.5\n\na3,31.5\n")
    result = run_cli(settings, "feedback", "import", str(data), "--service", "uhi", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["imported"] == 3
    assert summary["live_error"]["uhi"]["value"] == pytest.approx(2 / 3)
    shown = run_cli(settings, "feedback", "error", "uhi")
    assert "mae 0.6667 over 3 row(s)" in shown.stdout


def test_import_with_bad_rows_names_the_lines_and_stores_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    served(settings, ["k1", "k2"])
    data = tmp_path / "truth.jsonl"
    rows = [
        {"service": "uhi", "request_id": "k1", "observed": 30.0},  # 1 fine
        {"service": "uhi", "request_id": "zz", "observed": 30.0},  # 2 unknown id
        {"service": "uhi", "request_id": "k2", "observed": "hot"},  # 3 not a number
        {"request_id": "k2", "observed": 30.0},  # 4 no service
        {"service": "uhi", "request_id": "k1", "observed": 31.0},  # 5 duplicate of line 1
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    result = run_cli(settings, "feedback", "import", str(data))
    assert result.exit_code == 2
    assert "line 6: not valid JSON" in result.output and "nothing imported" in result.output
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = run_cli(settings, "feedback", "import", str(data))
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "line 3: observed: must be a JSON number" in out
    assert "line 4: no service" in out
    assert FeedbackStore(settings.feedback_db).live_error("uhi")["n"] == 0
    good = [rows[0], rows[1]]
    data.write_text("\n".join(json.dumps(r) for r in good) + "\n")
    result = run_cli(settings, "feedback", "import", str(data))
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and "line 2: no prediction with request id 'zz'" in out
    assert FeedbackStore(settings.feedback_db).live_error("uhi")["n"] == 0  # not even line 1
    data.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[4]) + "\n")
    result = run_cli(settings, "feedback", "import", str(data))
    assert "already given on line 1" in " ".join(result.output.split())


def test_import_twice_is_refused_with_the_lines(settings: Settings, tmp_path: Path) -> None:
    served(settings, ["t1"])
    data = tmp_path / "truth.csv"
    data.write_text("service,request_id,observed\nuhi,t1,30\n")
    assert run_cli(settings, "feedback", "import", str(data)).exit_code == 0
    again = run_cli(settings, "feedback", "import", str(data))
    assert again.exit_code == 2 and "line 2: request id 't1' already has feedback" in again.output
    assert FeedbackStore(settings.feedback_db).live_error("uhi")["n"] == 1


def test_import_feature_rows_scores_them_with_the_given_model(
    settings: Settings, tmp_path: Path
) -> None:
    entries = [
        FeedbackEntry(2, "uhi", 30.0, features=dict(LEGACY)),
        FeedbackEntry(3, "uhi", 29.0, features=dict(LEGACY)),
    ]
    summary = import_feedback(
        settings, entries, source="import:test", path=tmp_path / "x.csv", version=7,
        load_predictor=lambda service, version: (version, Constant(31.0)),
    )  # fmt: skip
    assert summary["imported"] == 2
    assert summary["live_error"]["uhi"]["by_version"][7]["mae"] == pytest.approx(1.5)


def test_import_csv_cells_are_checked(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "truth.csv"
    data.write_text("ndvi,building_density,water_distance,observed\n0.5,0.7,abc,30\n9,0.7,5,30\n")
    result = run_cli(settings, "feedback", "import", str(data), "--service", "uhi")
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and "line 2: water_distance: 'abc' is not a number" in out
    data.write_text("request_id\nx\n")
    result = run_cli(settings, "feedback", "import", str(data), "--service", "uhi")
    assert result.exit_code == 2 and "observed" in result.output
    with pytest.raises(BadRowsError):
        import_feedback(
            settings, [FeedbackEntry(1, "flood", 3.0, request_id="q")], source="t", path=data
        )
