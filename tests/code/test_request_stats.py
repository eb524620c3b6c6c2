"""The in-process request figures behind ``GET /v1/stats`` and the dashboard's versions API."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from terraops.api.app import create_app
from terraops.api.model_holder import ModelHolder
from terraops.api.observability import ObservabilityMiddleware, measured_routes
from terraops.api.request_stats import RequestStats
from terraops.errors import RegistryUnavailableError
from terraops.services import all_services
from terraops.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _respond(status: int) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def _call(app: Any, path: str) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        return None

    # Driven by hand, not asyncio.run(): nothing here suspends, and a browser test
    # earlier in the same session may hold the thread's event loop (Playwright).
    coroutine = app({"type": "http", "path": path, "headers": []}, receive, send)
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise AssertionError("the fake ASGI app suspended")


def _middleware(app: Any, stats: RequestStats) -> Any:
    return ObservabilityMiddleware(app, [stats.observe], measured_routes(["uhi"]))


def test_counts_statuses_per_route_and_windows_forget_old_requests() -> None:
    clock = Clock()
    stats = RequestStats(["uhi"], clock=clock)
    for status, times in ((200, 3), (422, 2), (503, 1)):
        for _ in range(times):
            _call(_middleware(_respond(status), stats), "/v1/uhi/predict")
    _call(_middleware(_respond(200), stats), "/v1/uhi/predict/batch")
    _call(_middleware(_respond(200), stats), "/readyz")  # not measured
    snap = stats.snapshot()["services"]["uhi"]
    assert snap["predict"]["total"] == 6 and snap["batch"]["total"] == 1
    minute = snap["predict"]["windows"]["60s"]
    assert (minute["requests"], minute["errors_4xx"], minute["errors_5xx"]) == (6, 2, 1)
    assert minute["p50_ms"] is not None and minute["p95_ms"] >= minute["p50_ms"]

    clock.now += 120  # two minutes later: out of the 1-min window, still in the 5-min one
    snap = stats.snapshot()["services"]["uhi"]["predict"]
    assert snap["windows"]["60s"]["requests"] == 0 and snap["windows"]["60s"]["p95_ms"] is None
    assert snap["windows"]["300s"]["requests"] == 6 and snap["errors_4xx_total"] == 2


def test_an_exception_counts_as_a_server_error() -> None:
    stats = RequestStats(["uhi"])

    async def boom(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError):
        _call(_middleware(boom, stats), "/v1/uhi/predict")
    assert stats.snapshot()["services"]["uhi"]["predict"]["errors_5xx_total"] == 1


class DownRegistry:
    def get_aliases(self, service: str) -> dict[str, int]:
        raise RegistryUnavailableError("model registry at http://x unavailable")

    def list_versions(self, service: str) -> list[Any]:
        raise RegistryUnavailableError("model registry at http://x unavailable (list versions)")


def test_versions_api_says_503_when_the_registry_is_down_and_stats_name_the_worker(
    settings: Settings,
) -> None:
    holders = {name: ModelHolder(d) for name, d in all_services().items()}
    app = create_app(settings, holders=holders, registry=DownRegistry(), watch=False)
    with TestClient(app) as client:
        down = client.get("/v1/models/uhi/versions")
        assert down.status_code == 503
        assert "unavailable" in down.json()["message"]
        assert client.get("/v1/models/nope/versions").status_code == 404
        client.post("/v1/uhi/predict", json={"ndvi": 3})
        stats = client.get("/v1/stats").json()
        assert isinstance(stats["pid"], int)
        assert stats["services"]["uhi"]["predict"]["errors_4xx_total"] == 1
        page = client.get("/")
        assert (
            page.status_code == 200
            and "default-src 'self'" in page.headers["content-security-policy"]
        )
        assert client.get("/static/leaflet/leaflet.js").status_code == 200
