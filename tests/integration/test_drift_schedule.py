"""Drift on a schedule: a real ``terraops serve`` checks its own prediction log and says so
on ``/metrics``.

Real traffic of a hot day (a reference temperature far beyond the training days) goes
through a 2-worker server whose scheduled drift check runs every second; the drift gauges
must turn critical on every worker, from one check (one thread for the whole server).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving_support import LEGACY_BODY, RunningProcess, TrainedHome, wait_until
from terraops.adapters.registry import ModelRegistry
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOT_DAY_C = 60.0
"""Rural background LST of the served requests: tens of kelvin above any training day."""


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` on a fresh connection (any worker) as {(sample name, labels): value}."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def uhi(name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, (("service", "uhi"),))


def test_scheduled_drift_check_exposes_critical_drift_on_metrics(
    home_settings: Settings,
    trained_home: TrainedHome,
    start_server: Callable[..., RunningProcess],
) -> None:
    lifecycle.promote(
        home_settings, ModelRegistry(home_settings), "uhi", trained_home.uhi_versions[0]
    )
    server = start_server(
        home_settings.model_copy(update={"services": ["uhi"]}),
        workers=2,
        TERRAOPS_DRIFT_CHECK_INTERVAL_S="1",
        TERRAOPS_DRIFT_WINDOW="1h",
    )
    before = scrape(server.url)
    assert before.get(uhi("terraops_drift_critical"), 0.0) == 0.0
    assert before[("terraops_registry_up", ())] == 1.0
    assert 0.0 < before[("terraops_home_free_ratio", ())] <= 1.0
    assert before[uhi("terraops_data_quality_failures_total")] >= 0.0

    sent_at = time.time()
    for i in range(60):
        body = {**LEGACY_BODY, "ndvi": 0.2 + i / 200, "reference_temperature": HOT_DAY_C}
        answer = httpx.post(f"{server.url}/v1/uhi/predict", json=body, timeout=10)
        assert answer.status_code == 200, answer.text

    def every_worker_says_critical() -> bool:
        return all(scrape(server.url).get(uhi("terraops_drift_critical")) == 1.0 for _ in range(4))

    wait_until(every_worker_says_critical, 60, "terraops_drift_critical 1", server)
    after = scrape(server.url)
    assert after[uhi("terraops_drift_critical_features")] == 1.0
    assert 0.0 < after[uhi("terraops_drift_drifted_share")] <= 1.0
    checked_at = after[uhi("terraops_drift_last_check_timestamp_seconds")]
    assert sent_at - 2 <= checked_at <= time.time() + 1

    state_file = home_settings.reports_dir / "drift" / "uhi" / "latest.json"

    def every_request_checked() -> bool:  # the log flushes every second, checks follow
        return int(json.loads(state_file.read_text())["current"]["n_rows"]) == 60

    wait_until(every_request_checked, 30, "a drift check over all 60 requests", server)
    state = json.loads(state_file.read_text())
    assert state["status"] == "checked" and state["dataset_drift"] is True
    assert state["features"]["reference_temperature"]["drifted"] is True
    server_log = server.log.read_text()
    assert server_log.count("uhi drift:") == 1, server_log[-3000:]  # one checker, one change
