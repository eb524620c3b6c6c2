"""Operational endpoints: liveness, readiness, what is being served, and the SLO status."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from terraops.adapters.prediction_log import PredictionLog
from terraops.api.model_holder import ChampionWatcher, ModelHolder
from terraops.errors import NotFoundError, ServiceNotFoundError
from terraops.pipelines.monitoring.drift_schedule import latest_drift_state
from terraops.pipelines.monitoring.slo import parse_window
from terraops.pipelines.monitoring.slo_status import drift_view, service_status
from terraops.settings import Settings

SLO_STATUS_TTL_S = 10.0
"""The SLO status is computed at most this often per worker: it reads the
window's prediction log, and every open dashboard tab polls it."""

#: An Evidently report is a page of its own with inline scripts: it runs
#: sandboxed (an opaque origin: no access to this server's pages or storage)
#: and may load nothing from anywhere.
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts; default-src 'none'; "
    "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _loaded(holder: ModelHolder) -> dict[str, Any] | None:
    model = holder.current
    if model is None:
        return None
    return {
        **model.ref,
        "source": model.source,
        "loaded_at": model.loaded_at.isoformat(),
    }


def ops_router(
    holders: dict[str, ModelHolder],
    watcher: ChampionWatcher | None,
    prediction_log: PredictionLog | None = None,
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    def registry_status() -> str:
        return watcher.registry_status if watcher is not None else "unknown"

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get(
        "/readyz",
        summary="Readiness: a champion is loaded for every served service",
        responses={503: {"description": "At least one service has no model loaded"}},
    )
    async def readyz() -> JSONResponse:
        services = {
            name: {
                "ready": holder.current is not None,
                "version": holder.current.version if holder.current else None,
                "registry": registry_status(),
                "last_error": holder.last_error,
            }
            for name, holder in holders.items()
        }
        ready = bool(holders) and all(s["ready"] for s in services.values())
        body = {
            "status": "ready" if ready else "not ready",
            "pid": os.getpid(),  # which worker answered (multi-worker diagnostics)
            "registry": registry_status(),
            "services": services,
            # This worker's log writer: losses are shown, never silent (they do
            # not make the server unready: predictions are still served).
            "prediction_log": (
                {"enabled": True, **prediction_log.stats()}
                if prediction_log is not None
                else {"enabled": False}
            ),
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/v1/models", summary="Services, loaded versions and registry aliases")
    async def models() -> dict[str, Any]:
        return {
            "registry": registry_status(),
            "services": {
                name: {
                    "title": holder.definition.title,
                    "task": holder.definition.task,
                    "unit": holder.definition.prediction_unit,
                    "loaded": _loaded(holder),
                    "aliases": holder.aliases,
                    "features": [f.name for f in holder.definition.features],
                    "required_features": holder.definition.required_features,
                }
                for name, holder in holders.items()
            },
        }

    return router


def _holder(holders: dict[str, ModelHolder], service: str) -> ModelHolder:
    holder = holders.get(service)
    if holder is None:
        raise ServiceNotFoundError(
            f"service {service!r} is not served here",
            hint=f"served services: {', '.join(sorted(holders)) or 'none'}",
        )
    return holder


def slo_status_router(settings: Settings, holders: dict[str, ModelHolder]) -> APIRouter:
    """``GET /v1/ops/slo``: the on-call view the dashboard polls (read-only, no token)."""
    router = APIRouter(tags=["operations"])
    window = parse_window(settings.slo_window)
    cache: dict[str, Any] = {"at": -SLO_STATUS_TTL_S, "body": None}
    lock = threading.Lock()

    def compute() -> dict[str, Any]:
        now = datetime.now(UTC)
        services = {}
        for name, holder in holders.items():
            loaded = holder.current
            version = loaded.version if loaded is not None else None
            status = service_status(settings, holder.definition, window, version=version, now=now)
            if status["drift"] is not None:
                html = status["drift"].pop("report_html")  # a server path: not for the page
                status["drift"]["report_url"] = report_url(name) if html else None
            services[name] = status
        return {
            "window": settings.slo_window,
            "window_s": window.total_seconds(),
            "checked_at": now.isoformat(timespec="seconds"),
            "services": services,
        }

    @router.get(
        "/v1/ops/slo",
        summary="SLO status per service: objectives, error budget left, burn rate, live error",
        description="The objectives of SLO.md judged over `TERRAOPS_SLO_WINDOW` for the "
        "version this worker serves, as `terraops slo check` judges them (this never rolls "
        "back). Computed at most every 10 s.",
    )
    def slo_status() -> dict[str, Any]:
        # A plain ``def``: it reads the prediction log and SQLite, in the thread pool.
        with lock:
            if time.monotonic() - cache["at"] >= SLO_STATUS_TTL_S:
                cache["body"] = compute()
                cache["at"] = time.monotonic()
            return dict(cache["body"])

    @router.get(
        "/v1/ops/drift/{service}/report",
        response_class=HTMLResponse,
        summary="The Evidently HTML report of the service's last drift check",
        responses={404: {"description": "Unknown service, or its last check wrote no report"}},
    )
    def drift_report_html(service: str) -> FileResponse:
        _holder(holders, service)
        return FileResponse(drift_report_path(settings, service), headers=REPORT_HEADERS)

    return router


def report_url(service: str) -> str:
    return f"/v1/ops/drift/{service}/report"


def drift_report_path(settings: Settings, service: str) -> Path:
    """The HTML report of the last drift check, if it is a file under the home."""
    drift = drift_view(latest_drift_state(settings, service))
    html = Path(drift["report_html"]).resolve() if drift and drift["report_html"] else None
    if html is None or not html.is_relative_to(settings.home_dir) or not html.is_file():
        raise NotFoundError(
            f"the last drift check of {service!r} wrote no HTML report",
            hint=f"terraops monitor drift {service} --from-log --since 24h "
            f"--out $TERRAOPS_HOME/reports/drift/{service}/latest.html",
        )
    return html
