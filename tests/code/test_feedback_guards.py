"""Feedback behind a token and a per-client rate; orphaned model-cache temporaries."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from terraops.adapters.cache_cleanup import remove_orphaned_temporaries
from terraops.adapters.feedback_store import FeedbackStore
from terraops.api.app import create_app
from terraops.api.model_holder import LoadedModel, ModelHolder
from terraops.api.rate_limit import TokenBuckets
from terraops.services import get_service
from terraops.settings import Settings

LEGACY = {"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000}
BODY = {"features": LEGACY, "observed": 31.0}


class Constant:
    def predict(self, X: Any) -> Any:
        return X[:, 0] * 0 + 31.5


def app_with(settings: Settings, **update: Any) -> Any:
    holder = ModelHolder(get_service("uhi"))
    holder.swap(
        LoadedModel(
            "uhi",
            "uhi",
            1,
            "champion",
            Constant(),
            tuple(holder.definition.feature_names),
            "registry",
        )
    )
    return create_app(settings.model_copy(update=update), holders={"uhi": holder}, watch=False)


def stored(settings: Settings) -> int:
    return len(FeedbackStore(settings.feedback_db).rows("uhi"))


def test_feedback_is_refused_when_no_token_is_configured(settings: Settings) -> None:
    with TestClient(app_with(settings)) as client:
        answer = client.post("/v1/uhi/feedback", json=BODY, headers={"Authorization": "Bearer x"})
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "feedback_disabled"
    assert "TERRAOPS_FEEDBACK_TOKEN" in answer.json()["hint"]
    assert stored(settings) == 0


@pytest.mark.parametrize(
    ("update", "accepted", "refused"),
    [
        ({"admin_token": SecretStr("adm")}, "adm", "nope"),
        ({"admin_token": SecretStr("adm"), "feedback_token": SecretStr("fb")}, "fb", "adm"),
    ],
    ids=["admin-token-by-default", "feedback-token-wins"],
)
def test_feedback_needs_its_token(
    settings: Settings, update: dict[str, Any], accepted: str, refused: str
) -> None:
    with TestClient(app_with(settings, **update)) as client:
        for headers in ({}, {"Authorization": f"Bearer {refused}"}):
            answer = client.post("/v1/uhi/feedback", json=BODY, headers=headers)
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"] == "auth" and "feedback token" in answer.json()["message"]
            assert answer.headers["www-authenticate"] == "Bearer"
        assert stored(settings) == 0
        ok = client.post(
            "/v1/uhi/feedback", json=BODY, headers={"Authorization": f"Bearer {accepted}"}
        )
        assert ok.status_code == 201, ok.text
        # Reading the live error stays open, like /metrics.
        assert client.get("/v1/uhi/live-error").json()["n"] == 1


def test_feedback_over_the_rate_is_429_with_retry_after(settings: Settings) -> None:
    app = app_with(settings, feedback_token=SecretStr("fb"), feedback_rate_per_min=3)
    with TestClient(app, headers={"Authorization": "Bearer fb"}) as client:
        statuses = [client.post("/v1/uhi/feedback", json=BODY).status_code for _ in range(4)]
        limited = client.post("/v1/uhi/feedback", json=BODY)
    assert statuses == [201, 201, 201, 429]
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert "TERRAOPS_FEEDBACK_RATE_PER_MIN" in limited.json()["hint"]
    assert 1 <= int(limited.headers["retry-after"]) <= 20
    assert stored(settings) == 3


def test_token_buckets_refill_per_client() -> None:
    now = [0.0]
    buckets = TokenBuckets(60, burst=2, clock=lambda: now[0])
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.0]
    assert buckets.take("a") == pytest.approx(1.0)  # 60/min: one token a second
    assert buckets.take("b") == 0.0  # another client has its own bucket
    now[0] = 0.5
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] = 1.0
    assert buckets.take("a") == 0.0


def test_token_buckets_forget_the_least_recent_client_beyond_the_cap() -> None:
    buckets = TokenBuckets(60, burst=1, max_clients=2, clock=lambda: 0.0)
    for key in ("a", "b", "c"):
        assert buckets.take(key) == 0.0
    assert buckets.take("a") == 0.0  # "a" was forgotten: a full bucket again
    assert buckets.take("c") > 0


def _temporary(folder: Path, version: int, pid: int, age_s: float) -> Path:
    path = folder / f".{version}.{pid}.0badc0de.download"
    (path / "artifacts").mkdir(parents=True)
    (path / "artifacts" / "model.pkl").write_bytes(b"x" * 100)
    past = time.time() - age_s
    for item in (path, path / "artifacts", path / "artifacts" / "model.pkl"):
        os.utime(item, (past, past))
    return path


def test_orphaned_downloads_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    cache = tmp_path / "model-cache"
    (cache / "uhi" / "1").mkdir(parents=True)
    (cache / "uhi" / "1" / "MLmodel").write_text("model")
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(finished.stdout)
    orphan = _temporary(cache / "uhi", 2, dead, age_s=600)
    just_died = _temporary(cache / "uhi", 3, dead, age_s=5)  # maybe another host's: grace
    live = _temporary(cache / "uhi", 4, os.getppid(), age_s=600)
    stale = _temporary(cache / "uhi", 5, os.getppid(), age_s=7200)
    removed = remove_orphaned_temporaries(cache)
    assert {r.path for r in removed} == {orphan, stale}
    assert not orphan.exists() and not stale.exists()
    assert just_died.exists() and live.exists() and (cache / "uhi" / "1" / "MLmodel").exists()
    assert remove_orphaned_temporaries(tmp_path / "absent") == []
