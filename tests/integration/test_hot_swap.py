"""Zero-downtime hot swap between two *different* models, under load, on a real server.

Each service gets a second version trained with other hyper-parameters, so
every probe request has two clearly different answers (asserted before the
load starts). A real ``terraops serve --workers 2`` serves uhi and flood to
concurrent clients while a separate process (``bench/swap_load.py swap``)
promotes and rolls back both services through the admin API. Every response
must be 200 and carry exactly the value the version it names computes offline;
the machinery is shared with the benchmark (``bench/swap_load.py``, checks in
``bench/swap_checks.py``).

A swap must never stall the requests: the slowest response of the whole run
must stay under :data:`MAX_LATENCY_S`, a bound far above the normal latency of
a loaded 2-core machine (p99 tens of ms, the slowest a few hundred) but far
below a worker that stops answering while it loads (a 5 s stall once made one
request fail here).

Figures (throughput, p50/p95/p99, errors, swaps, promotion → all-workers
latency) are printed and written to ``$TERRAOPS_TEST_REPORT_DIR`` when set.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from serving_support import RunningProcess, TrainedHome, report, wait_until
from terraops.adapters.registry import ModelRegistry
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.pipelines.training.train import train_service
from terraops.services import get_service
from terraops.settings import Settings

# bench/ is a plain folder at the repository root (bench/run.py imports it the same way).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.swap_checks import late_responses, mismatches, smallest_gap
from bench.swap_load import VARIANT_PARAMS, SwapRun, offline_predictions, run_swap_load

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOKEN = "hot-swap-token"
SERVICES = ("uhi", "flood")
SWAPS = 8  # admin calls, services taking turns: each promoted and rolled back twice
#: The two versions must differ by at least this much on every probe (°C for
#: uhi, flood probability): a million times the 1e-9 match tolerance and more.
MIN_GAP = {"uhi": 0.05, "flood": 0.005}
#: No response may take longer, swaps included (see the module docstring).
MAX_LATENCY_S = 2.0


@pytest.fixture
def two_versions(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path]
) -> dict[str, tuple[int, int]]:
    """(champion, variant) per service: the session's model, and a new, different one.

    The variant is trained under its own experiment, whose artifacts live in
    this test's home: the shared template's artifact folder is never written.
    """
    variant_settings = home_settings.model_copy(update={"experiment_prefix": "hot-swap"})
    registry = ModelRegistry(home_settings)
    versions = {}
    for service, first in (
        ("uhi", trained_home.uhi_versions[0]),
        ("flood", trained_home.flood_versions[0]),
    ):
        definition = get_service(service)
        trained = train_service(
            variant_settings, definition, tiny_scenes, VARIANT_PARAMS, progress=False
        )
        lifecycle.promote(home_settings, registry, service, first, reason="hot-swap start")
        versions[service] = (first, trained.version)
    return versions


def stall_report(run: SwapRun, count: int = 8) -> str:
    """The slowest responses and the admin calls, in seconds from the first request."""
    start = min(s.sent for s in run.samples)
    slowest = sorted(run.samples, key=lambda s: s.received - s.sent)[-count:]
    lines = [
        f"{s.service} worker {s.worker} sent at {s.sent - start:.2f}: "
        f"{s.received - s.sent:.3f} s, status {s.status}"
        for s in slowest
    ]
    lines += [
        f"{c.service} {c.action} v{c.old}->v{c.new}: "
        f"{c.started - start:.2f} to {c.finished - start:.2f}"
        for c in run.changes
    ]
    return "\n".join(lines)


def workers_ready(url: str, workers: int) -> bool:
    """Ask /readyz on fresh connections until ``workers`` distinct ready workers answered."""
    ready: set[int] = set()
    for _ in range(100):
        response = httpx.get(f"{url}/readyz", timeout=5)
        if response.status_code == 200:
            ready.add(response.json()["pid"])
        if len(ready) >= workers:
            return True
    return False


def test_every_response_matches_the_version_it_names_while_champions_flip(
    home_settings: Settings,
    two_versions: dict[str, tuple[int, int]],
    start_server: Callable[..., RunningProcess],
    tmp_path: Path,
) -> None:
    home = home_settings.home_dir
    expected = {s: {v: offline_predictions(home, s, v) for v in two_versions[s]} for s in SERVICES}
    gaps = smallest_gap(expected)
    assert all(gaps[s] >= MIN_GAP[s] for s in SERVICES), gaps

    settings = home_settings.model_copy(update={"services": list(SERVICES)})
    server = start_server(settings, workers=2, TERRAOPS_ADMIN_TOKEN=TOKEN)
    wait_until(lambda: workers_ready(server.url, 2), 60, "both workers ready", server)
    run = run_swap_load(
        server.url,
        expected,
        SERVICES,
        token=TOKEN,
        workers=2,
        concurrency=8,
        seconds=60,
        swaps=SWAPS,
        every_s=2.0,
        workdir=tmp_path,
    )
    figures = run.figures
    report("hot_swap_different_models", {**figures, "smallest_gap": gaps})

    assert run.swapper_rc == 0, run.swapper_log[-3000:]
    assert figures["errors"] == 0, stall_report(run)
    slowest = max(s.received - s.sent for s in run.samples)
    assert slowest < MAX_LATENCY_S, stall_report(run)
    assert mismatches(run.samples, expected) == []
    # Workers other than the one handling the admin call follow at their next poll.
    lag_s = 4 * settings.poll_interval_s + 2
    assert late_responses(run.samples, expected, run.changes, lag_s) == []
    assert figures["swaps_by_service"] == {s: SWAPS // 2 for s in SERVICES}, figures
    assert figures["versions_seen"] == {s: sorted(two_versions[s]) for s in SERVICES}
    assert len(figures["responses_per_worker"]) == 2
    assert figures["propagation_max_s"] < lag_s, figures
    for service in SERVICES:
        history = httpx.get(
            f"{server.url}/v1/admin/{service}/history",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        ).json()["entries"]
        flips = figures["swaps_by_service"][service]
        actions = [e["action"] for e in history[:flips]]
        assert actions == [c.action for c in run.changes if c.service == service][::-1]
        assert history[0]["actor"].startswith("admin-api@127.0.0.1")
