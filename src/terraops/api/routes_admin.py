"""Admin API: promote, roll back and read the alias history over HTTP.

Off unless ``TERRAOPS_ADMIN_TOKEN`` is set (never open by default); requests
must carry ``Authorization: Bearer <token>``, compared in constant time. The
process that handles a promotion or rollback reloads the champion at once;
the other workers follow at their next registry poll.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from terraops.api.model_holder import ChampionWatcher, ModelHolder
from terraops.api.schemas import ErrorResponse, PromoteRequest, RollbackRequest
from terraops.errors import AdminDisabledError, AuthError
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="TERRAOPS_ADMIN_TOKEN")

ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token"},
    403: {"model": ErrorResponse, "description": "Admin API disabled (no token configured)"},
    404: {"model": ErrorResponse, "description": "Unknown service or version"},
    409: {"model": ErrorResponse, "description": "Refused by a gate / nothing to roll back"},
    503: {"model": ErrorResponse, "description": "Registry unreachable"},
}


def admin_router(
    settings: Settings,
    holders: dict[str, ModelHolder],
    watcher: ChampionWatcher | None,
    registry_factory: Callable[[], Any],
) -> APIRouter:
    async def require_admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        expected = settings.admin_token.get_secret_value() if settings.admin_token else ""
        if not expected:
            raise AdminDisabledError(
                "admin API disabled (set TERRAOPS_ADMIN_TOKEN)",
                hint="start the server with TERRAOPS_ADMIN_TOKEN=<secret> to enable it",
            )
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise AuthError(
                "missing or wrong admin token", hint="send 'Authorization: Bearer <token>'"
            )

    router = APIRouter(
        prefix="/v1/admin/{service}",
        tags=["admin"],
        dependencies=[Depends(require_admin)],
        responses=ADMIN_RESPONSES,
    )

    def acting(request: Request) -> Settings:
        """Record admin-API changes as such in the history (with the caller's address)."""
        client = request.client.host if request.client else "unknown"
        return settings.model_copy(update={"user": f"admin-api@{client} ({settings.actor})"})

    def serving(service: str) -> dict[str, Any] | None:
        if watcher is None or service not in holders:
            return None
        model = watcher.refresh(service)
        return model.ref if model else None

    @router.post("/promote", summary="Make a version champion (promotion gates apply)")
    def promote(service: str, body: PromoteRequest, request: Request) -> dict[str, Any]:
        outcome = lifecycle.promote(
            acting(request),
            registry_factory(),
            service,
            body.version,
            reason=body.reason,
            force=body.force,
        )
        return {
            "entry": outcome.entry.as_dict(),
            "overridden": outcome.decision.overridden,
            "serving": serving(service),
        }

    @router.post("/rollback", summary="Restore the previous champion (or a former one)")
    def rollback(service: str, body: RollbackRequest, request: Request) -> dict[str, Any]:
        entry = lifecycle.rollback(
            acting(request), registry_factory(), service, body.to_version, reason=body.reason
        )
        return {"entry": entry.as_dict(), "serving": serving(service)}

    @router.get("/history", summary="Alias history (who, when, from, to, why), newest first")
    def history(service: str) -> dict[str, Any]:
        entries = lifecycle.history(settings, service, registry=registry_factory())
        return {"service": service, "entries": [e.as_dict() for e in entries]}

    return router
