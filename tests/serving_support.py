"""Helpers for tests that start real processes (servers) on loopback ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from terraops.settings import Settings

LEGACY_BODY = {"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000}


@dataclass(frozen=True)
class TrainedHome:
    """The session's trained template home (see conftest ``trained_home``)."""

    path: Path
    uhi_versions: tuple[int, ...]
    flood_versions: tuple[int, ...]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process build the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TERRAOPS_")}
    env.update(
        TERRAOPS_HOME=str(settings.home_dir),
        TERRAOPS_USER=settings.actor,
        TERRAOPS_POLL_INTERVAL_S=str(settings.poll_interval_s),
        TERRAOPS_REGISTRY_TIMEOUT_S=str(settings.registry_timeout_s),
        TERRAOPS_SERVICES=json.dumps(settings.services),
        PYTHONUNBUFFERED="1",
    )
    if settings.mlflow_tracking_uri:
        env["TERRAOPS_MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    if settings.state_db_url is not None:
        env["TERRAOPS_STATE_DB_URL"] = settings.state_db_url.get_secret_value()
    env.update(extra)
    return env


@dataclass
class RunningProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process group this test started (server + its workers)."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, proc: RunningProcess | None = None
) -> float:
    """Poll ``check`` until true; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        if proc is not None and proc.process.poll() is not None:
            pytest.fail(f"{what}: process exited\n{proc.log.read_text()[-3000:]}")
        time.sleep(0.05)
    log = proc.log.read_text()[-3000:] if proc else ""
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{log}")


def predict_uhi(client: httpx.Client, url: str) -> Any:
    return client.post(
        f"{url}/v1/uhi/predict",
        json=LEGACY_BODY,
    )


def report(name: str, figures: dict[str, Any]) -> None:
    """Print measured figures and keep them in $TERRAOPS_TEST_REPORT_DIR when set."""
    print(f"\n[{name}] " + json.dumps(figures))
    folder = os.environ.get("TERRAOPS_TEST_REPORT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(json.dumps(figures, indent=2))


#: The clear southern strip of the real Landsat sample (product CRS, m): its middle
#: is under cumulus (the same crop as the Makefile's REAL_BBOX).
LANDSAT_SAMPLE_CLEAR_BBOX = "452475,3390555,471285,3394245"


FAST_TRAINING = {"n_estimators": 40, "cv_folds": 2}


def register_copy_of(settings: Settings, service: str, version: int) -> int:
    """Register another version of the same run and model (cheap second candidate)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    original = client.get_model_version(service, str(version))
    # A tracking server (REST store) requires the model_id of a ``models:/m-...`` source,
    # which its version records may leave empty: take it from the source, as MLflow does.
    from mlflow.store.artifact.utils.models import _parse_model_id_if_present

    model_id = original.model_id or _parse_model_id_if_present(original.source or "")
    created = client.create_model_version(
        service, original.source, run_id=original.run_id, model_id=model_id
    )
    return int(created.version)
