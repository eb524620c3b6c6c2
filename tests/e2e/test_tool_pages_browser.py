"""The tools around the models, in a real browser: the API's Swagger UI and a run in the MLflow UI.

Each page comes from a real process started here — ``terraops serve`` for
``/docs``, ``mlflow server`` on the trained home's SQLite store for the run —
and the README's screenshots of them are taken from it (the drift report's is
taken in test_dashboard_browser, where a real drift check writes one).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import PageWatch, assert_offline_and_clean, save_still, serve

from serving_support import RunningProcess, TrainedHome, free_port, settings_env, wait_until
from terraops.adapters.registry import ModelRegistry
from terraops.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

OpenPage = Callable[[], tuple[Any, PageWatch]]


def test_swagger_ui_lists_every_service_route_offline(
    map_settings: Settings,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
    screenshots: Path,
) -> None:
    server = serve(start_server, map_settings)  # a home with champions: the server is ready
    schema = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    page, watch = open_page()
    page.goto(f"{server.url}/docs")
    page.locator(".swagger-ui .opblock").first.wait_for(timeout=30_000)
    shown = page.locator(".swagger-ui .opblock-summary-path").all_inner_texts()
    for path in ("/v1/uhi/predict", "/v1/flood/predict", "/v1/models"):
        assert path in schema["paths"] and path in {p.replace("\u200b", "") for p in shown}
    page.wait_for_load_state("networkidle")
    save_still(page.screenshot(full_page=True), screenshots / "api-docs.png", crop=(1280, 1400))
    assert_offline_and_clean(watch)


def _mlflow_server(
    settings: Settings, start_process: Callable[..., RunningProcess], tmp_path: Path
) -> RunningProcess:
    """``mlflow server`` on the home's own store (artifacts stay where training put them)."""
    port = free_port()
    args = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--workers", "1", "--backend-store-uri", settings.tracking_uri]
    args += ["--artifacts-destination", str(tmp_path / "mlflow-artifacts")]
    server = start_process(args, settings_env(settings), f"http://127.0.0.1:{port}", "mlflow")
    wait_until(
        lambda: httpx.get(f"{server.url}/health", timeout=2).status_code == 200,
        120,
        "mlflow server up",
        server,
    )
    return server


def test_mlflow_ui_shows_the_training_run_of_the_registered_model(
    home_settings: Settings,
    trained_home: TrainedHome,
    start_process: Callable[..., RunningProcess],
    open_page: OpenPage,
    screenshots: Path,
    tmp_path: Path,
) -> None:
    from mlflow.tracking import MlflowClient

    info = ModelRegistry(home_settings).get_version("uhi", trained_home.uhi_versions[0])
    run = MlflowClient(home_settings.tracking_uri).get_run(info.run_id)
    server = _mlflow_server(home_settings, start_process, tmp_path)
    page, _ = open_page()  # the MLflow UI is not ours: its outside requests are not judged
    page.set_viewport_size({"width": 1280, "height": 1250})  # the run's metrics too
    page.goto(f"{server.url}/#/experiments/{run.info.experiment_id}/runs/{info.run_id}")
    page.get_by_text(run.info.run_name).first.wait_for(timeout=60_000)
    page.get_by_text("mae_spatial_cv").first.wait_for(timeout=30_000)
    page.wait_for_timeout(2000)  # the UI keeps polling the server: no "network idle" to wait for
    assistant = page.locator("button[aria-label='Close']")  # MLflow 3's side chat, not the run
    if assistant.count() and assistant.first.is_visible():
        assistant.first.click()
        page.wait_for_timeout(500)
    save_still(page.screenshot(), screenshots / "mlflow-run.png")
