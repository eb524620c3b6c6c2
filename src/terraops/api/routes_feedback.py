"""``POST /v1/{service}/feedback`` and ``GET /v1/{service}/live-error``.

Truth for a served prediction, by the request id the caller got in
``X-Request-Id`` (plus ``index`` for a row of a batch), or by features (scored
with the champion this worker serves). It is joined to the prediction, stored
durably (SQLite, see ``adapters.feedback_store``) and counted in the live error
at once; ``201`` means the row is on disk.

A prediction reaches the log within one flush interval, possibly from another
worker, so an id not found yet is looked for again for up to about two flush
intervals before the answer is ``404``.
"""

# No ``from __future__ import annotations``: FastAPI must see the generated models.

import asyncio
import hmac
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.params import Depends as Dependency
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.concurrency import run_in_threadpool

from terraops.adapters.feedback_store import FeedbackStore
from terraops.adapters.prediction_log import PredictionLog, find_prediction
from terraops.api.model_holder import ModelHolder
from terraops.api.observability import REQUEST_ID_PATTERN, request_context
from terraops.api.rate_limit import rate_limit
from terraops.api.schemas import ErrorResponse, features_model
from terraops.errors import (
    AuthError,
    FeedbackDisabledError,
    InvalidInputError,
    ModelNotReadyError,
    NotFoundError,
)
from terraops.pipelines.monitoring.feedback import FeedbackEntry, check_observed, row_from_record
from terraops.pipelines.monitoring.feedback import score_features as score
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

_bearer = HTTPBearer(
    auto_error=False, description="TERRAOPS_FEEDBACK_TOKEN (default: TERRAOPS_ADMIN_TOKEN)"
)

FEEDBACK_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token"},
    403: {"model": ErrorResponse, "description": "Feedback disabled (no token configured)"},
    404: {"model": ErrorResponse, "description": "No prediction with this request id"},
    409: {"model": ErrorResponse, "description": "This prediction already has feedback"},
    422: {"model": ErrorResponse, "description": "Invalid feedback"},
    429: {"model": ErrorResponse, "description": "Too many feedback requests (Retry-After)"},
    503: {"model": ErrorResponse, "description": "No champion to score features with"},
}


def feedback_guards(settings: Settings) -> list[Dependency]:
    """What every feedback request passes, in order: the client's rate, then the token.

    Feedback moves the live error, and a live error beyond its target can roll
    the champion back — so it is never open: the token is
    ``TERRAOPS_FEEDBACK_TOKEN``, else ``TERRAOPS_ADMIN_TOKEN``; with neither set
    feedback is refused (403). The rate limit comes first so that guessing the
    token is rate-limited too. One list for every service: they share the budget.
    """
    secret = settings.feedback_token or settings.admin_token
    expected = secret.get_secret_value().encode() if secret is not None else b""

    async def require_feedback_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if not expected:
            raise FeedbackDisabledError(
                "feedback is disabled: no token is configured",
                hint="start the server with TERRAOPS_FEEDBACK_TOKEN=<secret> (or "
                "TERRAOPS_ADMIN_TOKEN) and send 'Authorization: Bearer <secret>'",
            )
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, expected):
            raise AuthError(
                "missing or wrong feedback token",
                hint="send 'Authorization: Bearer <token>' with TERRAOPS_FEEDBACK_TOKEN "
                "(or TERRAOPS_ADMIN_TOKEN when no feedback token is set)",
            )

    limited = rate_limit(
        settings.feedback_rate_per_min, "feedback", "TERRAOPS_FEEDBACK_RATE_PER_MIN"
    )
    return [Depends(limited), Depends(require_feedback_token)]


def feedback_model(definition: ServiceDefinition, features: type[BaseModel]) -> type[BaseModel]:
    """The feedback body of a service: a request id or features, and the observed value."""
    observed_doc = f"What was observed: {definition.target} [{definition.target_unit}]" + (
        " — 0 or 1" if definition.task == "binary" else ""
    )
    request_id = Annotated[
        str | None,
        Field(
            pattern=REQUEST_ID_PATTERN,
            description="X-Request-Id of the prediction response",
            examples=["3f9a0c1e-2a"],
        ),
    ]
    index = Annotated[int, Field(strict=True, ge=0, description="Row of a batch request")]
    observed = Annotated[float, Field(strict=True, allow_inf_nan=False, description=observed_doc)]
    optional_features: Any = features | None
    return create_model(
        f"{''.join(p.capitalize() for p in definition.name.split('_'))}Feedback",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"Ground truth for a {definition.title} prediction.",
        request_id=(request_id, None),
        index=(index, 0),
        features=(optional_features, None),
        observed=(observed, ...),
    )


def entry_from_body(definition: ServiceDefinition, body: BaseModel, line: int = 0) -> FeedbackEntry:
    """A validated body as a pipeline entry (either a request id or features)."""
    values = body.__dict__
    if (values["request_id"] is None) == (values["features"] is None):
        raise InvalidInputError(
            'give either "request_id" (from the X-Request-Id header of a prediction) '
            'or "features" (the inputs that were predicted), not both or neither'
        )
    if values["features"] is not None and values["index"]:
        raise InvalidInputError('"index" goes with "request_id", not with "features"')
    observed = check_observed(definition, values["observed"])
    features = values["features"].__dict__ if values["features"] is not None else None
    return FeedbackEntry(
        line, definition.name, observed, values["request_id"], values["index"], features
    )


def feedback_router(
    holder: ModelHolder,
    store: FeedbackStore,
    prediction_log: PredictionLog | None,
    retention_days: float,
    *,
    guards: Sequence[Dependency],
) -> APIRouter:
    """The feedback routes of one service; ``guards`` (see :func:`feedback_guards`)
    protect ``POST /feedback``."""
    definition = holder.definition
    body_model = feedback_model(definition, features_model(definition))
    router = APIRouter(prefix=f"/v1/{definition.name}", tags=[definition.name])

    async def logged(request_id: str, index: int) -> dict[str, Any]:
        if prediction_log is None:
            raise InvalidInputError(
                "the prediction log is off here (TERRAOPS_PREDICTION_LOG=false), "
                "so request ids cannot be looked up",
                hint='send "features" with the observed value instead',
            )
        await run_in_threadpool(prediction_log.flush)  # this worker's recent predictions
        deadline = time.monotonic() + 2 * prediction_log.flush_interval_s + 0.5
        while True:
            record = await run_in_threadpool(
                find_prediction, prediction_log.root, definition.name, request_id, index
            )
            if record is not None:
                return record
            if time.monotonic() > deadline:
                raise NotFoundError(
                    f"no prediction with request id {request_id!r} (row {index}) "
                    f"in the {definition.name} prediction log",
                    hint=f"use the X-Request-Id header of a /v1/{definition.name}/predict "
                    f"response; the log keeps {retention_days:g} days",
                )
            await asyncio.sleep(0.1)

    async def feedback(payload: body_model) -> JSONResponse:  # type: ignore[valid-type]
        entry = entry_from_body(definition, payload)
        if entry.request_id is not None:
            record = await logged(entry.request_id, entry.index)
            row = row_from_record(definition, record, entry.observed, "api")
        else:
            model = holder.current
            if model is None:
                raise ModelNotReadyError(
                    f"no champion loaded for {definition.name!r} to score the features with"
                )
            (row,) = score(definition, model.predictor, model.version, [entry], "api")
        ctx = request_context()
        ctx.version = row.version
        (stored,) = await run_in_threadpool(store.add_many, [row])
        return JSONResponse(stored.as_dict(), status_code=201)

    async def live_error(
        since: Annotated[
            datetime | None, Query(description="Only feedback received at or after (ISO 8601)")
        ] = None,
        version: Annotated[
            int | None, Query(ge=1, le=2**31 - 1, description="Only this model version")
        ] = None,
    ) -> dict[str, Any]:
        if since is not None:
            try:
                since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
            except OverflowError:
                raise InvalidInputError(f"since: {since} is out of range") from None
        return await run_in_threadpool(store.live_error, definition.name, since, version)

    router.add_api_route(
        "/feedback",
        feedback,
        methods=["POST"],
        status_code=201,
        responses=FEEDBACK_RESPONSES,
        dependencies=list(guards),
        summary=f"{definition.title}: report what was observed for a prediction",
        description="Give `request_id` (the `X-Request-Id` of the prediction; `index` for a "
        "row of a batch) or `features`, plus `observed`. Stored durably; counted in the "
        "live error (MAE for regression, Brier/F1 for yes/no services) at once. Needs "
        "`Authorization: Bearer <TERRAOPS_FEEDBACK_TOKEN>` (default: the admin token); "
        "each client may send `TERRAOPS_FEEDBACK_RATE_PER_MIN` a minute.",
    )
    router.add_api_route(
        "/live-error",
        live_error,
        methods=["GET"],
        summary=f"{definition.title}: live error from the feedback received",
    )
    return router


__all__ = ["entry_from_body", "feedback_guards", "feedback_model", "feedback_router"]
