"""A real MLflow tracking server goes down and comes back while terraops serves.

The servers must keep answering with the model they have, report the registry
as unreachable (``/readyz`` and the ``terraops_registry_up`` gauge on
``/metrics`` that pages on call), start from the local cache during the
outage, and pick up a new champion by themselves once the registry is back. The tracking server is
killed with SIGKILL (no graceful shutdown: its polls die mid-request) and
restarted on the same store.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving_support import (
    LEGACY_BODY,
    RunningProcess,
    TrainedHome,
    free_port,
    report,
    settings_env,
    wait_until,
)
from terraops.adapters.registry import ModelRegistry
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start_mlflow(
    start_process: Callable[..., RunningProcess], settings: Settings, port: int
) -> RunningProcess:
    """``mlflow server`` on the home's SQLite store, loopback only."""
    args = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--backend-store-uri", f"sqlite:///{settings.home_dir / 'mlflow.db'}"]
    args += ["--default-artifact-root", settings.artifact_root.as_uri(), "--workers", "1"]
    env = settings_env(settings, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    server = start_process(args, env, f"http://127.0.0.1:{port}", "mlflow")
    wait_until(
        lambda: httpx.get(f"{server.url}/health", timeout=2).status_code == 200,
        90,
        "mlflow server",
        server,
    )
    return server


def serving(url: str) -> tuple[int, str, int | None]:
    """(readyz status, registry status, uhi version) of one server."""
    response = httpx.get(f"{url}/readyz", timeout=5)
    body = response.json()
    return response.status_code, body["registry"], body["services"]["uhi"]["version"]


def registry_up(url: str) -> float | None:
    """``terraops_registry_up`` on one server's ``/metrics`` (None: not exported)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    return next((s.value for s in samples if s.name == "terraops_registry_up"), None)


def test_servers_ride_out_a_registry_outage(
    home_settings: Settings,
    trained_home: TrainedHome,
    start_process: Callable[..., RunningProcess],
    start_server: Callable[..., RunningProcess],
) -> None:
    v1, v2 = trained_home.uhi_versions
    port = free_port()
    mlflow_server = start_mlflow(start_process, home_settings, port)
    remote = home_settings.model_copy(
        update={"mlflow_tracking_uri": mlflow_server.url, "services": ["uhi"]}
    )
    lifecycle.promote(remote, ModelRegistry(remote), "uhi", v1)
    first = start_server(remote)
    assert serving(first.url) == (200, "ok", v1)
    assert registry_up(first.url) == 1.0

    mlflow_server.stop(signal.SIGKILL)
    down_for = wait_until(lambda: serving(first.url)[1] == "unreachable", 15, "outage seen", first)
    answers = [httpx.post(f"{first.url}/v1/uhi/predict", json=LEGACY_BODY) for _ in range(30)]
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["model"]["version"] for a in answers} == {v1}
    assert serving(first.url) == (200, "unreachable", v1)
    assert registry_up(first.url) == 0.0  # what TerraopsRegistryUnavailable fires on

    cold = start_server(remote)  # a restart during the outage: last champion from the cache
    assert serving(cold.url) == (200, "unreachable", v1)
    loaded = httpx.get(f"{cold.url}/v1/models").json()["services"]["uhi"]["loaded"]
    assert loaded["source"] == "cache" and loaded["version"] == v1
    assert registry_up(cold.url) == 0.0

    start_mlflow(start_process, home_settings, port)
    restarted = time.monotonic()
    lifecycle.promote(remote, ModelRegistry(remote), "uhi", v2, reason="after the outage")
    for server in (first, cold):
        wait_until(lambda s=server: serving(s.url) == (200, "ok", v2), 15, "recovery", server)
    recovered_in = time.monotonic() - restarted
    assert registry_up(first.url) == 1.0 and registry_up(cold.url) == 1.0
    report(
        "registry_outage",
        {
            "poll_interval_s": remote.poll_interval_s,
            "outage_detected_s": round(down_for, 3),
            "recovered_and_promoted_s": round(recovered_in, 3),
        },
    )
    assert recovered_in < 10 * remote.poll_interval_s + 10
