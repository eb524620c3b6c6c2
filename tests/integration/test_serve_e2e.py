"""Train → register → promote → ``terraops serve`` → predict, for both services."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from serving_support import LEGACY_BODY, RunningProcess, TrainedHome
from terraops.adapters.registry import ModelRegistry
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_served_predictions_name_the_promoted_versions(
    home_settings: Settings,
    trained_home: TrainedHome,
    start_server: Callable[..., RunningProcess],
) -> None:
    registry = ModelRegistry(home_settings)
    uhi_version = trained_home.uhi_versions[0]
    flood_version = trained_home.flood_versions[0]
    lifecycle.promote(home_settings, registry, "uhi", uhi_version, reason="e2e")
    lifecycle.promote(home_settings, registry, "flood", flood_version, reason="e2e")
    server = start_server(home_settings, workers=1)

    with httpx.Client(base_url=server.url, timeout=10) as client:
        ready = client.get("/readyz").json()
        assert ready["registry"] == "ok"
        assert ready["services"]["uhi"]["version"] == uhi_version
        assert ready["services"]["flood"]["version"] == flood_version

        uhi = client.post("/v1/uhi/predict", json=LEGACY_BODY)
        assert uhi.status_code == 200
        assert uhi.json()["model"] == {"name": "uhi", "version": uhi_version, "alias": "champion"}
        assert uhi.headers["X-Model-Version"] == str(uhi_version)
        assert 10 < uhi.json()["prediction"] < 70  # a land-surface temperature in °C

        flood_body = {f.name: f.example for f in get_service("flood").features if f.required}
        flood = client.post("/v1/flood/predict/batch", json={"instances": [flood_body] * 3})
        assert flood.status_code == 200
        probabilities = flood.json()["predictions"]
        assert len(probabilities) == 3 and all(0 <= p <= 1 for p in probabilities)
        assert flood.json()["model"]["version"] == flood_version

        bad = client.post("/v1/uhi/predict", json={**LEGACY_BODY, "ndvi": 3})
        assert bad.status_code == 422 and "allowed: -1 to 1" in bad.json()["message"]
        models = client.get("/v1/models").json()["services"]
        assert models["uhi"]["aliases"]["champion"] == uhi_version
        assert "/static-offline-docs/" in client.get("/docs").text
