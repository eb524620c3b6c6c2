"""``POST /v1/{service}/predict`` and ``/predict/batch``, generated per service.

One code path for every service: the request model comes from the service
definition and the endpoints are built by :func:`predict_router`.

The request path is tuned for sub-millisecond answers: ``async def`` (the
sub-ms CPU work costs less than a thread-pool hop), the numpy row is built
straight from the validated model (no pandas), the response is serialised once
with ``json.dumps``, and the holder's current model is read exactly once per
request so the version reported is the one that computed the value.

Every request is logged with its request id (``X-Request-Id``, set by the
observability middleware): a served row with its prediction, a request that
failed after validation (503 no champion, 500 the model raised) with its status
and no prediction, so availability can be computed from the log. The handler
also tells the middleware which version answered and how many rows (metrics).
"""

# No ``from __future__ import annotations``: the endpoint signatures use the
# generated request models, which FastAPI must see as real classes.

import json
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from terraops.adapters.prediction_log import PredictionLog
from terraops.api.model_holder import LoadedModel, ModelHolder
from terraops.api.observability import RequestContext, request_context
from terraops.api.schemas import (
    BatchPredictionResponse,
    ErrorResponse,
    PredictionResponse,
    batch_model,
    features_model,
)
from terraops.errors import ModelNotReadyError, ServiceNotFoundError

# Batches above this size run the model in the thread pool so that a big batch
# does not stall the event loop for the point requests queued behind it.
THREADPOOL_BATCH_ROWS = 512

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown service"},
    422: {"model": ErrorResponse, "description": "Invalid input (field, allowed range)"},
    503: {"model": ErrorResponse, "description": "No champion loaded yet"},
}


def _not_ready(holder: ModelHolder) -> ModelNotReadyError:
    return ModelNotReadyError(
        f"no champion loaded for {holder.definition.name!r} yet",
        hint=f"promote a version: terraops promote {holder.definition.name} --version N",
    )


def _champion(holder: ModelHolder) -> LoadedModel:
    model = holder.current
    if model is None:
        raise _not_ready(holder)
    return model


def _json(payload: dict[str, Any], model: LoadedModel) -> Response:
    return Response(json.dumps(payload), media_type="application/json", headers=model.headers)


def predict_router(
    holder: ModelHolder, max_batch_size: int, prediction_log: PredictionLog | None = None
) -> APIRouter:
    """The prediction endpoints of one service (logged when ``prediction_log`` is given)."""
    definition = holder.definition
    features = features_model(definition)
    batch = batch_model(definition, features, max_batch_size)
    unit = definition.prediction_unit
    router = APIRouter(prefix=f"/v1/{definition.name}", tags=[definition.name])

    def log(
        ctx: RequestContext, model: LoadedModel, rows: Any, values: Any, started: float
    ) -> None:
        ctx.version = model.version
        ctx.rows = len(values)
        if prediction_log is not None:
            latency_ms = (time.perf_counter() - started) * 1e3
            prediction_log.record(
                ctx.request_id,
                model.service,
                model.version,
                model.feature_names,
                rows,
                values,
                latency_ms,
            )

    def log_failure(
        ctx: RequestContext, exc: Exception, model: LoadedModel | None, rows: Any, started: float
    ) -> None:
        """A request that passed validation but got no prediction (503/500)."""
        if prediction_log is None:
            return
        status = 503 if isinstance(exc, ModelNotReadyError) else 500
        names = model.feature_names if model is not None else definition.feature_names
        version = model.version if model is not None else None
        latency_ms = (time.perf_counter() - started) * 1e3
        prediction_log.record(
            ctx.request_id, definition.name, version, names, rows, None, latency_ms, status
        )

    async def predict(payload: features) -> Response:  # type: ignore[valid-type]
        started = time.perf_counter()
        ctx = request_context()
        model = holder.current
        values = vars(payload)
        try:
            if model is None:
                raise _not_ready(holder)
            row = [values[n] for n in model.feature_names]
            value = float(model.predictor.predict(np.array([row], dtype=np.float64))[0])
        except Exception as exc:
            names = model.feature_names if model is not None else tuple(definition.feature_names)
            log_failure(ctx, exc, model, [[values[n] for n in names]], started)
            raise
        log(ctx, model, [row], [value], started)
        return _json({"prediction": value, "unit": unit, "model": model.ref}, model)

    async def predict_batch(payload: batch) -> Response:  # type: ignore[valid-type]
        started = time.perf_counter()
        ctx = request_context()
        model = holder.current
        instances = payload.instances  # type: ignore[attr-defined]
        try:
            if model is None:
                raise _not_ready(holder)
            names = model.feature_names
            given = [[item.__dict__[n] for n in names] for item in instances]
            rows = np.array(given, dtype=np.float64)  # None (not given) becomes NaN
            if len(rows) > THREADPOOL_BATCH_ROWS:
                values = await run_in_threadpool(model.predictor.predict, rows)
            else:
                values = model.predictor.predict(rows)
            predictions = values.tolist()
        except Exception as exc:
            names = model.feature_names if model is not None else tuple(definition.feature_names)
            log_failure(
                ctx, exc, model, [[i.__dict__[n] for n in names] for i in instances], started
            )
            raise
        log(ctx, model, given, predictions, started)
        return _json({"predictions": predictions, "unit": unit, "model": model.ref}, model)

    router.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_model=PredictionResponse,
        responses=ERROR_RESPONSES,
        summary=f"{definition.title}: predict one location",
        description=f"{definition.description} Returns {definition.prediction_unit}.",
    )
    router.add_api_route(
        "/predict/batch",
        predict_batch,
        methods=["POST"],
        response_model=BatchPredictionResponse,
        responses=ERROR_RESPONSES,
        summary=f"{definition.title}: predict up to {max_batch_size} locations",
    )
    return router


def unknown_service_router(known: list[str]) -> APIRouter:
    """404 with the list of served services for any other ``/v1/{service}/predict``."""
    router = APIRouter()

    async def unknown(service: str) -> Response:
        raise ServiceNotFoundError(
            f"service {service!r} is not served here",
            hint=f"served services: {', '.join(known) or 'none'}",
        )

    for path in ("/v1/{service}/predict", "/v1/{service}/predict/batch", "/v1/{service}/feedback"):
        router.add_api_route(path, unknown, methods=["POST"], include_in_schema=False)
    return router
