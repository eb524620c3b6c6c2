"""``POST /v1/{service}/predict`` and ``/predict/batch``, generated per service.

One code path for every service: the request model comes from the service
definition and the endpoints are built by :class:`PredictRoutes` (the
holder, batch limit and prediction log injected; :func:`predict_router`).

Two ways through each route, one behaviour. The *fast path* (a
:class:`FastPredictRoute` handler in front of FastAPI's) parses the JSON body
once with the same parser FastAPI uses, accepts it only when it is valid
(:mod:`terraops.api.fast_inputs`: column-wise numpy checks for a batch), runs
the model and answers with bytes pre-encoded per model version. Anything it
does not vouch for goes to the *documented path*: FastAPI's handler with the
Pydantic request models of the OpenAPI document, which words every 422 (field,
row index, allowed range). Why: FastAPI's generic handler (content-type
parsing, dependency solving, one Pydantic object per row) cost more than the
model itself for a point request, and one object per row capped batches.

Both paths read the holder's current model exactly once per request, so the
version reported (body and ``X-Model-*`` headers) is the one that computed the
values. Every request is logged with its request id (``X-Request-Id``, set by
the observability middleware): a served row with its prediction, a request that
failed after validation (503 no champion, 500 the model raised) with its status
and no prediction, so availability can be computed from the log. The handler
also tells the middleware which version answered and how many rows (metrics).
"""

# No ``from __future__ import annotations``: the endpoint signatures use the
# generated request models, which FastAPI must see as real classes.

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from terraops.adapters.prediction_log import PredictionLog
from terraops.api.columnar_inputs import (
    ARROW_STREAM,
    ColumnarInputs,
    arrow_request,
    batch_openapi,
    is_columnar_json,
)
from terraops.api.fast_inputs import FastInputs, finite_json_array
from terraops.api.fast_route import PreEncodedJSON, is_json, route_class
from terraops.api.model_holder import LoadedModel, ModelHolder
from terraops.api.observability import RequestContext, request_context
from terraops.api.predict_extras import (
    NO_EXTRAS,
    ExplainQuery,
    IntervalQuery,
    PredictExtras,
    extra_fields,
    fast_extras,
)
from terraops.api.schemas import (
    BatchPredictionResponse,
    ErrorResponse,
    PredictionResponse,
    batch_model,
    features_model,
)
from terraops.errors import ConflictError, ModelNotReadyError, ServiceNotFoundError
from terraops.services.base import ServiceDefinition

# Batches above this size run the model in the thread pool so that a big batch
# does not stall the event loop for the point requests queued behind it.
THREADPOOL_BATCH_ROWS = 512

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown service"},
    409: {
        "model": ErrorResponse,
        "description": "`interval` asked of a model version that has no calibrated intervals",
    },
    422: {"model": ErrorResponse, "description": "Invalid input (field, allowed range)"},
    503: {"model": ErrorResponse, "description": "No champion loaded yet"},
}


def _not_ready(holder: ModelHolder) -> ModelNotReadyError:
    return ModelNotReadyError(
        f"no champion loaded for {holder.definition.name!r} yet",
        hint=f"promote a version: terraops promote {holder.definition.name} --version N",
    )


def _json(payload: dict[str, Any], model: LoadedModel) -> Response:
    return Response(json.dumps(payload), media_type="application/json", headers=model.headers)


class Prepared:
    """What the fast path needs for one loaded model, built once per model version."""

    def __init__(self, model: LoadedModel, inputs: FastInputs | None, unit: str) -> None:
        self.model = model
        self.inputs = inputs
        title = model.service.title().replace("_", "")
        self.columnar = ColumnarInputs(inputs, title) if inputs is not None else None
        predictor = model.predictor
        self.predict_row: Callable[[list[float]], float] = getattr(
            predictor, "predict_row", None
        ) or (lambda row: float(predictor.predict(np.array([row], dtype=np.float64))[0]))
        self.raw_headers = [(b"content-type", b"application/json")] + [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in model.headers.items()
        ]
        # The bytes json.dumps writes for {"prediction(s)": …, "unit": …, "model": …}.
        tail = f', "unit": {json.dumps(unit)}, "model": {json.dumps(model.ref)}}}'
        self.point_head = b'{"prediction": '
        self.batch_head = b'{"predictions": '
        self.tail = tail.encode("ascii")


def _endpoint(
    handler: Callable[[Any, PredictExtras], Awaitable[Response]], payload_model: type
) -> Callable[..., Awaitable[Response]]:
    """``handler`` as a FastAPI endpoint whose JSON body is ``payload_model``.

    The request models are generated per service, so the annotation FastAPI
    reads (body schema, validation, OpenAPI) is set here, not written in code.
    """

    async def endpoint(
        payload: Any, interval: IntervalQuery = None, explain: ExplainQuery = False
    ) -> Response:
        return await handler(payload, PredictExtras(interval, explain))

    endpoint.__annotations__ = {
        "payload": payload_model,
        "interval": IntervalQuery,
        "explain": ExplainQuery,
        "return": Response,
    }
    return endpoint


@dataclass(eq=False)
class PredictRoutes:
    """The prediction endpoints of one service, from the dependencies they use.

    ``holder`` gives the model (read once per request), ``prediction_log`` (when
    given) records every request; :meth:`router` builds the two routes, each
    with its fast path (:meth:`fast_predict`, :meth:`fast_predict_batch`) in
    front of its documented path (:meth:`predict`, :meth:`predict_batch`).
    """

    holder: ModelHolder
    max_batch_size: int
    prediction_log: PredictionLog | None = None
    #: Encodings of the last model seen (one slot, replaced when the model is swapped).
    _prepared: Prepared | None = field(default=None, init=False, repr=False)

    @property
    def definition(self) -> ServiceDefinition:
        return self.holder.definition

    def router(self) -> APIRouter:
        definition = self.definition
        features = features_model(definition)
        batch = batch_model(definition, features, self.max_batch_size)
        router = APIRouter(prefix=f"/v1/{definition.name}", tags=[definition.name])
        router.add_api_route(
            "/predict",
            _endpoint(self.predict, features),
            methods=["POST"],
            response_model=PredictionResponse,
            responses=ERROR_RESPONSES,
            summary=f"{definition.title}: predict one location",
            description=f"{definition.description} Returns {definition.prediction_unit}.",
            route_class_override=route_class(self.fast_predict),
        )
        router.add_api_route(
            "/predict/batch",
            _endpoint(self.predict_batch, batch),
            methods=["POST"],
            response_model=BatchPredictionResponse,
            responses=ERROR_RESPONSES,
            summary=f"{definition.title}: predict up to {self.max_batch_size} locations",
            description=(
                f"`instances`: 1 to {self.max_batch_size} objects, each with the fields of "
                f"`POST /v1/{definition.name}/predict`, or the same rows as `columns` (one array "
                f"per feature), or an Arrow IPC stream (`{ARROW_STREAM}`, one numeric column "
                "per feature, nulls for unknown optional values). Predictions come back in the "
                "same order. A bad value is refused with 422 naming its row and field, e.g. "
                f"`instances[3].{definition.feature_names[0]}` or "
                f"`columns.{definition.feature_names[0]}[3]`; nothing is predicted for any "
                "row then."
            ),
            openapi_extra=batch_openapi(),
            route_class_override=route_class(self.fast_predict_batch),
        )
        return router

    # ----- shared ------------------------------------------------------------------------
    def prepare(self, model: LoadedModel) -> Prepared:
        ready = self._prepared
        if ready is None or ready.model is not model:
            try:
                inputs: FastInputs | None = FastInputs(
                    self.definition, model.feature_names, self.max_batch_size
                )
            except ValueError:  # the model needs an input requests cannot give
                inputs = None
            ready = self._prepared = Prepared(model, inputs, self.definition.prediction_unit)
        return ready

    def log(
        self, ctx: RequestContext, model: LoadedModel, rows: Any, values: Any, started: float
    ) -> None:
        ctx.version = model.version
        ctx.rows = len(values)
        if self.prediction_log is not None:
            latency_ms = (time.perf_counter() - started) * 1e3
            self.prediction_log.record(
                ctx.request_id,
                model.service,
                model.version,
                model.feature_names,
                rows,
                values,
                latency_ms,
            )

    async def log_batch(
        self, ctx: RequestContext, model: LoadedModel, rows: Any, values: Any, started: float
    ) -> None:
        """:meth:`log` for a batch, which first waits for room in a log that fell behind.

        Why wait rather than drop: a sustained load of big batches would otherwise
        lose rows from the log that monitoring and feedback read.
        """
        if self.prediction_log is not None:
            await self.prediction_log.room_for(len(values))
        self.log(ctx, model, rows, values, started)

    def log_failure(
        self,
        ctx: RequestContext,
        exc: Exception,
        model: LoadedModel | None,
        rows: Any,
        started: float,
    ) -> None:
        """A request that passed validation but got no prediction (503/500)."""
        if self.prediction_log is None:
            return
        status = 503 if isinstance(exc, ModelNotReadyError) else 500
        status = 409 if isinstance(exc, ConflictError) else status
        names = model.feature_names if model is not None else self.definition.feature_names
        version = model.version if model is not None else None
        latency_ms = (time.perf_counter() - started) * 1e3
        self.prediction_log.record(
            ctx.request_id, self.definition.name, version, names, rows, None, latency_ms, status
        )

    def _names(self, model: LoadedModel | None) -> tuple[str, ...]:
        """The feature order of ``model`` (of the service when none is loaded), for the log."""
        return model.feature_names if model is not None else tuple(self.definition.feature_names)

    async def parsed_body(self, request: Request) -> tuple[LoadedModel, Prepared, Any] | None:
        """The model, its prepared encodings and the parsed JSON body, or ``None`` (decline)."""
        model = self.holder.current
        if model is None or not is_json(request.scope):
            return None  # 503 and non-JSON bodies: the documented path words them
        ready = self.prepare(model)
        if ready.inputs is None:
            return None
        body = await request.body()  # a body over the size limit raises its 413 here
        try:
            # str, not bytes: skips json's encoding sniffing; a body that is not UTF-8
            # (UnicodeDecodeError is a ValueError) goes to the documented path.
            return model, ready, json.loads(body.decode())
        except (ValueError, RecursionError):  # the documented path words the error
            return None

    async def batch_extras(
        self, model: LoadedModel, rows: np.ndarray, values: list[float], extras: PredictExtras
    ) -> dict[str, Any]:
        """What ``?interval=``/``?explain=`` add to a batch (big ones off the event loop)."""
        if extras.wanted and len(rows) > THREADPOOL_BATCH_ROWS:
            return await run_in_threadpool(
                extra_fields, model.predictor, rows, values, extras, batch=True
            )
        return extra_fields(model.predictor, rows, values, extras, batch=True)

    # ----- one location ----------------------------------------------------------------
    async def fast_predict(self, request: Request) -> Response | None:
        started = time.perf_counter()
        parsed = await self.parsed_body(request)
        if parsed is None:
            return None
        model, ready, data = parsed
        assert ready.inputs is not None
        row = ready.inputs.point(data)
        extras = fast_extras(request)
        if row is None or extras is None:
            return None
        ctx = request_context()
        try:
            value = ready.predict_row(row)
            added = (
                None
                if extras is NO_EXTRAS
                else extra_fields(model.predictor, [row], [value], extras)
            )
        except Exception as exc:
            self.log_failure(ctx, exc, model, [row], started)
            raise
        self.log(ctx, model, [row], [value], started)
        if added:
            unit = self.definition.prediction_unit
            return _json({"prediction": value, "unit": unit, "model": model.ref, **added}, model)
        number = float.__repr__(value) if value - value == 0.0 else json.dumps(value)
        body = b"".join((ready.point_head, number.encode("ascii"), ready.tail))
        return PreEncodedJSON(body, ready.raw_headers)

    async def predict(self, payload: Any, extras: PredictExtras = NO_EXTRAS) -> Response:
        started = time.perf_counter()
        ctx = request_context()
        model = self.holder.current
        values = vars(payload)
        try:
            if model is None:
                raise _not_ready(self.holder)
            row = [values[n] for n in model.feature_names]
            rows = np.array([row], dtype=np.float64)  # None (not given) becomes NaN
            value = float(model.predictor.predict(rows)[0])
            added = extra_fields(model.predictor, rows, [value], extras)
        except Exception as exc:
            self.log_failure(ctx, exc, model, [[values[n] for n in self._names(model)]], started)
            raise
        self.log(ctx, model, [row], [value], started)
        unit = self.definition.prediction_unit
        return _json({"prediction": value, "unit": unit, "model": model.ref, **added}, model)

    # ----- many locations ----------------------------------------------------------------
    async def run_batch(self, model: LoadedModel, rows: np.ndarray) -> list[float]:
        if len(rows) > THREADPOOL_BATCH_ROWS:
            values = await run_in_threadpool(model.predictor.predict, rows)
        else:
            values = model.predictor.predict(rows)
        predictions: list[float] = np.asarray(values, dtype=np.float64).tolist()
        return predictions

    async def columnar_body(self, request: Request) -> tuple[LoadedModel, Prepared, Any] | None:
        """Model, encodings and matrix of a columnar JSON or Arrow body (``None``: neither).

        Its bad values are refused here (422 naming column and row): the
        documented path knows only rows.
        """
        arrow = arrow_request(request.scope)
        if not arrow and not is_json(request.scope):
            return None
        body = await request.body()  # a body over the size limit raises its 413 here
        model = self.holder.current
        if model is None and (arrow or is_columnar_json(body)):
            raise _not_ready(self.holder)  # the documented path knows only rows
        if model is None or (ready := self.prepare(model)).columnar is None:
            return None
        if arrow:
            return model, ready, ready.columnar.from_arrow(body)
        if is_columnar_json(body):
            return model, ready, ready.columnar.from_json(body)
        return None

    async def fast_predict_batch(self, request: Request) -> Response | None:
        started = time.perf_counter()
        columnar = await self.columnar_body(request)
        if columnar is not None:
            model, ready, rows = columnar
        else:
            parsed = await self.parsed_body(request)
            if parsed is None:
                return None
            model, ready, data = parsed
            assert ready.inputs is not None
            rows = ready.inputs.records(data)
        extras = fast_extras(request)
        if rows is None or extras is None:
            return None
        ctx = request_context()
        try:
            predictions = await self.run_batch(model, rows)
            added = await self.batch_extras(model, rows, predictions, extras)
        except Exception as exc:
            self.log_failure(ctx, exc, model, rows, started)
            raise
        await self.log_batch(ctx, model, rows, predictions, started)
        encoded = finite_json_array(predictions)
        if encoded is None or added:  # NaN/Infinity written as json.dumps would
            unit = self.definition.prediction_unit
            answer = {"predictions": predictions, "unit": unit, "model": model.ref, **added}
            return _json(answer, model)
        return PreEncodedJSON(b"".join((ready.batch_head, encoded, ready.tail)), ready.raw_headers)

    async def predict_batch(self, payload: Any, extras: PredictExtras = NO_EXTRAS) -> Response:
        started = time.perf_counter()
        ctx = request_context()
        model = self.holder.current
        instances = payload.instances
        try:
            if model is None:
                raise _not_ready(self.holder)
            names = model.feature_names
            given = [[item.__dict__[n] for n in names] for item in instances]
            rows = np.array(given, dtype=np.float64)  # None (not given) becomes NaN
            predictions = await self.run_batch(model, rows)
            added = await self.batch_extras(model, rows, predictions, extras)
        except Exception as exc:
            names = self._names(model)
            given_rows = [[i.__dict__[n] for n in names] for i in instances]
            self.log_failure(ctx, exc, model, given_rows, started)
            raise
        await self.log_batch(ctx, model, given, predictions, started)
        encoded = None if added else finite_json_array(predictions)
        if encoded is not None:  # the fast path's bytes
            ready = self.prepare(model)
            return PreEncodedJSON(
                b"".join((ready.batch_head, encoded, ready.tail)), ready.raw_headers
            )
        unit = self.definition.prediction_unit
        body = {"predictions": predictions, "unit": unit, "model": model.ref, **added}
        return _json(body, model)


def predict_router(
    holder: ModelHolder, max_batch_size: int, prediction_log: PredictionLog | None = None
) -> APIRouter:
    """The prediction endpoints of one service (logged when ``prediction_log`` is given)."""
    return PredictRoutes(holder, max_batch_size, prediction_log).router()


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
