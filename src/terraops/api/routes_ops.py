"""Operational endpoints: liveness, readiness and what is being served."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from terraops.adapters.prediction_log import PredictionLog
from terraops.api.model_holder import ChampionWatcher, ModelHolder


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
