"""Zero-downtime hot swap: promote/rollback under load against a real server.

Figures (requests, errors, p99, promotion → all-workers latency) are printed
and written to ``$TERRAOPS_TEST_REPORT_DIR`` when set, for BENCHMARKS/notes.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from serving_support import RunningProcess, TrainedHome, predict_uhi, report, wait_until

from terraops.adapters.registry import ModelRegistry
from terraops.pipelines import lifecycle
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOKEN = "hot-swap-token"


@dataclass(frozen=True)
class Sample:
    sent: float
    received: float
    status: int
    version: int | None


@dataclass(frozen=True)
class Change:
    """An alias change happened somewhere inside [started, finished]."""

    started: float
    finished: float
    old: int
    new: int


class LoadClient(threading.Thread):
    """Sends point predictions back to back (bounded count and time), loopback only."""

    def __init__(self, url: str, max_requests: int = 50_000, max_seconds: float = 120) -> None:
        super().__init__(daemon=True)
        self.url, self.max_requests, self.max_seconds = url, max_requests, max_seconds
        self.samples: list[Sample] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(timeout=10) as client:
            while not self.stop_event.is_set() and len(self.samples) < self.max_requests:
                if time.monotonic() > deadline:
                    break
                sent = time.monotonic()
                try:
                    response = predict_uhi(client, self.url)
                    status = response.status_code
                    version = response.json()["model"]["version"] if status == 200 else None
                except httpx.HTTPError:
                    status, version = 599, None
                self.samples.append(Sample(sent, time.monotonic(), status, version))

    def stop(self) -> list[Sample]:
        self.stop_event.set()
        self.join(timeout=30)
        return self.samples


def champion_windows(initial: int, changes: list[Change]) -> list[tuple[int, float, float]]:
    """(version, from, to): when each version may have been champion.

    A version is champion from the start of the change that made it champion
    to the end of the change that replaced it (the change itself is atomic but
    happens somewhere within its admin call).
    """
    windows, version, since = [], initial, float("-inf")
    for change in changes:
        assert change.old == version
        windows.append((version, since, change.finished))
        version, since = change.new, change.started
    windows.append((version, since, float("inf")))
    return windows


def latency_figures(samples: list[Sample]) -> dict[str, Any]:
    latencies = sorted((s.received - s.sent) * 1000 for s in samples)
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(samples),
        "non_2xx": sum(not 200 <= s.status < 300 for s in samples),
        "p50_ms": round(quantiles[49], 3),
        "p99_ms": round(quantiles[98], 3),
        "max_ms": round(latencies[-1], 3),
    }


def test_promote_and_rollback_under_load_drop_nothing(
    home_settings: Settings,
    trained_home: TrainedHome,
    start_server: Callable[..., RunningProcess],
) -> None:
    v1, v2 = trained_home.uhi_versions
    settings = home_settings.model_copy(update={"services": ["uhi"]})
    lifecycle.promote(settings, ModelRegistry(settings), "uhi", v1)
    server = start_server(settings, workers=1, TERRAOPS_ADMIN_TOKEN=TOKEN)
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )
    load = LoadClient(server.url)
    load.start()
    time.sleep(0.5)
    changes: list[Change] = []
    current = v1
    for cycle in range(10):
        for path, body, new in (
            ("promote", {"version": v2, "reason": f"cycle {cycle}"}, v2),
            ("rollback", {"reason": f"cycle {cycle}"}, v1),
        ):
            started = time.monotonic()
            response = admin.post(f"/v1/admin/uhi/{path}", json=body)
            finished = time.monotonic()
            assert response.status_code == 200, response.text
            assert response.json()["serving"]["version"] == new
            changes.append(Change(started, finished, current, new))
            current = new
            time.sleep(0.15)
    samples = load.stop()

    windows = champion_windows(v1, changes)
    stale = [
        s
        for s in samples
        if not any(v == s.version and lo <= s.received and s.sent <= hi for v, lo, hi in windows)
    ]
    figures = latency_figures(samples)
    figures.update(
        changes=len(changes), versions_seen=sorted({s.version for s in samples} - {None})
    )
    report("hot_swap_1_worker", figures)
    assert figures["non_2xx"] == 0
    assert stale == []
    assert figures["versions_seen"] == sorted({v1, v2})
    assert figures["requests"] > 200
    history = admin.get("/v1/admin/uhi/history").json()["entries"]
    assert [e["action"] for e in history[:20]] == ["rollback", "promote"] * 10
    assert history[0]["actor"].startswith("admin-api@127.0.0.1")


def versions_by_worker(url: str) -> dict[int, int | None]:
    """Ask /readyz on fresh connections until both workers answered."""
    seen: dict[int, int | None] = {}
    for _ in range(200):
        body = httpx.get(f"{url}/readyz", timeout=5).json()
        seen[body["pid"]] = body["services"]["uhi"]["version"]
        if len(seen) >= 2:
            break
    return seen


def test_promotion_reaches_every_worker_within_a_poll_interval_or_two(
    home_settings: Settings,
    trained_home: TrainedHome,
    start_server: Callable[..., RunningProcess],
) -> None:
    v1, v2 = trained_home.uhi_versions
    settings = home_settings.model_copy(update={"services": ["uhi"], "poll_interval_s": 0.5})
    registry = ModelRegistry(settings)
    lifecycle.promote(settings, registry, "uhi", v1)
    server = start_server(settings, workers=2)
    wait_until(lambda: len(versions_by_worker(server.url)) == 2, 30, "two workers", server)
    load = LoadClient(server.url)
    load.start()
    figures: dict[str, Any] = {"workers": 2, "poll_interval_s": settings.poll_interval_s}
    for label, change in (
        ("promote", lambda: lifecycle.promote(settings, registry, "uhi", v2)),
        ("rollback", lambda: lifecycle.rollback(settings, registry, "uhi")),
    ):
        expected = v2 if label == "promote" else v1
        change()
        committed = time.monotonic()
        first_seen: dict[int, float] = {}

        def all_workers_switched(
            expected: int = expected, first_seen: dict[int, float] = first_seen
        ) -> bool:
            for pid, version in versions_by_worker(server.url).items():
                if version == expected:
                    first_seen.setdefault(pid, time.monotonic())
            return len(first_seen) >= 2

        wait_until(all_workers_switched, 20, f"{label} reaching both workers", server)
        figures[f"{label}_to_all_workers_s"] = round(max(first_seen.values()) - committed, 3)
    samples = load.stop()
    figures.update(latency_figures(samples))
    report("hot_swap_2_workers", figures)
    assert figures["non_2xx"] == 0
    for label in ("promote", "rollback"):
        assert figures[f"{label}_to_all_workers_s"] < 4 * settings.poll_interval_s + 2
