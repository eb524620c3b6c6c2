"""A real Prometheus scrapes a real 2-worker ``terraops serve``; figures read back via its API.

This is how operators consume the metrics: Debian's ``prometheus`` server on
loopback (its own temporary storage, scraping only the test server every
second), queried through ``/api/v1/query``. Traffic crosses a promotion, so the
per-version counts are checked against the ``X-Model-Version`` each response
carried, and the live MAE against the errors of the feedback sent.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_support import by_label, eventually, query, start_prometheus

from serving_support import LEGACY_BODY, RunningProcess, TrainedHome, wait_until
from terraops.adapters.registry import ModelRegistry
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def fresh_post(url: str, path: str, body: Any, **headers: str) -> httpx.Response:
    """One request on its own connection, so the kernel spreads them over the workers."""
    return httpx.post(f"{url}{path}", json=body, headers=headers, timeout=10)


def test_prometheus_reads_request_counts_per_version_and_live_mae(
    home_settings: Settings,
    trained_home: TrainedHome,
    start_server: Callable[..., RunningProcess],
    start_process: Callable[..., RunningProcess],
    tmp_path: Path,
) -> None:
    v1, v2 = trained_home.uhi_versions[:2]
    registry = ModelRegistry(home_settings)
    lifecycle.promote(home_settings, registry, "uhi", v1, reason="prometheus test")
    lifecycle.promote(home_settings, registry, "flood", trained_home.flood_versions[0])
    server = start_server(home_settings, workers=2, TERRAOPS_FEEDBACK_TOKEN="prometheus-fb")
    target = server.url.removeprefix("http://")
    prometheus = start_prometheus(start_process, target, tmp_path)
    eventually(
        lambda: (by_label(query(prometheus, "up"), "job").get("terraops") == 1.0, None),
        "the first scrape",
    )

    sent: Counter[str] = Counter()
    feedback_errors: dict[str, list[float]] = {}

    def traffic(n: int, observe_every: int) -> None:
        for i in range(n):
            answer = fresh_post(server.url, "/v1/uhi/predict", LEGACY_BODY)
            assert answer.status_code == 200
            version = answer.headers["X-Model-Version"]
            sent[version] += 1
            if i % observe_every == 0:
                observed = 30.0 + i % 3
                fb = fresh_post(
                    server.url,
                    "/v1/uhi/feedback",
                    {"request_id": answer.headers["X-Request-Id"], "observed": observed},
                    Authorization="Bearer prometheus-fb",
                )
                assert fb.status_code == 201, fb.text
                feedback_errors.setdefault(version, []).append(
                    abs(answer.json()["prediction"] - observed)
                )

    traffic(40, observe_every=4)
    assert fresh_post(server.url, "/v1/uhi/predict", {"ndvi": 5}).status_code == 422
    lifecycle.promote(home_settings, registry, "uhi", v2, reason="prometheus test swap")

    def both_workers_swapped() -> bool:
        versions = []
        for _ in range(8):
            answer = fresh_post(server.url, "/v1/uhi/predict", LEGACY_BODY)
            assert answer.status_code == 200
            versions.append(answer.headers["X-Model-Version"])
        sent.update(versions)  # probes are requests too: tallied like the rest
        return set(versions) == {str(v2)}

    wait_until(both_workers_swapped, 60, "both workers on the new champion", server)
    traffic(30, observe_every=3)

    # Every 200 answer the test got is counted once, under the version that computed it.
    def counts_match() -> tuple[bool, Any]:
        counts = by_label(
            query(
                prometheus,
                'sum by (version) (terraops_request_duration_seconds_count{service="uhi",'
                'endpoint="predict",status="200"})',
            ),
            "version",
        )
        return counts == {v: float(n) for v, n in sent.items()}, counts

    eventually(counts_match, f"request counts per version = {dict(sent)}")
    predicted = by_label(
        query(prometheus, 'sum by (version) (terraops_predictions_total{service="uhi"})'),
        "version",
    )
    assert predicted == {v: float(n) for v, n in sent.items()}
    rejected = query(
        prometheus,
        'sum(terraops_request_duration_seconds_count{service="uhi",endpoint="predict",'
        'status="422",version="none"})',
    )
    assert float(rejected[0]["value"][1]) == 1

    workers = query(prometheus, 'count(terraops_model_loaded_version{service="uhi"})')
    assert float(workers[0]["value"][1]) == 2  # one live gauge per worker: both reported

    errors = [e for values in feedback_errors.values() for e in values]
    expected_mae = statistics.fmean(errors)

    def live_mae() -> tuple[bool, Any]:
        result = by_label(query(prometheus, 'terraops_live_error{service="uhi"}'), "version")
        return abs(result.get("all", -1) - expected_mae) < 1e-9, result

    live = eventually(live_mae, "live MAE")
    for version, values in feedback_errors.items():
        assert live[version] == pytest.approx(statistics.fmean(values), abs=1e-9)
    feedback = by_label(query(prometheus, "terraops_feedback_total"), "version")
    assert {v: int(n) for v, n in feedback.items()} == {
        v: len(e) for v, e in feedback_errors.items()
    }
    drops = query(prometheus, "sum(terraops_prediction_log_dropped_total)")
    assert float(drops[0]["value"][1]) == 0
    reloads = by_label(
        query(prometheus, 'sum by (version) (terraops_model_reloads_total{service="uhi"})'),
        "version",
    )
    assert reloads[str(v1)] == 2 and reloads[str(v2)] == 2  # each worker loaded each once
