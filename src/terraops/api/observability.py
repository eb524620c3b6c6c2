"""Request ids and Prometheus metrics, for every worker of a server.

Request ids: every response carries ``X-Request-Id``. A caller's id is kept
when it is well formed (1–128 characters of ``A–Z a–z 0–9 . _ : -``: safe in a
header, a log line and a URL); otherwise one is made from a random per-process
prefix and a counter (unique across workers and restarts, ~0.2 µs, no
``uuid4``). The prediction log records it, and feedback joins truth by it.

Metrics: ``GET /metrics`` in the Prometheus text format through
``prometheus-client``. Under ``terraops serve`` the client runs in
*multiprocess mode* (``PROMETHEUS_MULTIPROC_DIR``, set by ``serve`` before
workers start): each worker writes its samples to memory-mapped files in that
folder and whichever worker answers a scrape sums them all, so a scrape sees
the whole server, not one worker. Without the variable (tests, an embedded
app) the figures are this process's.

Why a pure ASGI middleware: ``BaseHTTPMiddleware`` costs tens of µs; this one
scans the request headers once, wraps ``send`` to add the id and capture the
status, and for a measured route (predict, batch, feedback) adds the request to
an in-process tally (a dict lookup, a ``bisect`` and three additions). The
tally is folded into prometheus-client's values on the event loop every
``FOLD_INTERVAL_S`` and before every scrape: in multiprocess mode each value
update is a locked write to a memory-mapped file (~3 µs), which a histogram
observation plus a counter would cost three times per request. A scrape may
therefore miss at most the last second of *another* worker's requests. See
``bench/monitoring.py`` for the measured cost. The handler tells the middleware
which model version answered (and how many rows) through a
:class:`RequestContext` in a ``ContextVar``, so a version swap mid-request is
labelled correctly.

Live error (``terraops_live_error``) and feedback counts are read from the
feedback store at scrape time: SQLite is the one source of truth for every
worker, so nothing has to be kept in step across processes; the on-call gauges
(drift, registry contact, free disk, data-quality refusals) are read the same
way, by :class:`terraops.api.ops_metrics.OperationsCollector`.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
_VALID_ID = re.compile(REQUEST_ID_PATTERN.encode("ascii")).fullmatch
_HEADER = REQUEST_ID_HEADER.lower().encode("ascii")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Latency buckets (s): fine below 5 ms, where the point-predict SLO lives.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0015, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
FOLD_INTERVAL_S = 1.0


class RequestContext:
    """What the middleware and the handler of one request share."""

    __slots__ = ("request_id", "rows", "version")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.version: int | None = None
        self.rows = 0


current_request: ContextVar[RequestContext | None] = ContextVar("terraops_request", default=None)


class RequestIds:
    """Makes request ids: random per-process prefix + counter."""

    def __init__(self) -> None:
        self.prefix = os.urandom(4).hex() + "-"
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}{next(self._counter):x}"


def request_context() -> RequestContext:
    """This request's context (a fresh one when no middleware set it)."""
    ctx = current_request.get()
    if ctx is None:
        ctx = RequestContext(_fallback_ids.new())
        current_request.set(ctx)
    return ctx


_fallback_ids = RequestIds()


def multiprocess_dir() -> Path | None:
    """The multiprocess folder when prometheus-client runs in that mode."""
    from prometheus_client import values

    folder = os.environ.get(MULTIPROC_ENV)
    if folder and getattr(values.ValueClass, "_multiprocess", False):
        return Path(folder)
    return None


def prepare_multiprocess_dir(folder: Path) -> Path:
    """Create the folder and remove samples of an earlier run (``serve`` calls it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
    return folder


class ServingMetrics:
    """The server's Prometheus metrics (one instance per app)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "terraops_request_duration_seconds",
            "Latency of prediction and feedback requests (s), by service, model version, "
            "endpoint and HTTP status; _count is the request count.",
            ["service", "version", "endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "terraops_predictions",
            "Rows predicted, by service and model version.",
            ["service", "version"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "terraops_model_reloads",
            "Models loaded into a worker (start-up and every hot swap), by source.",
            ["service", "version", "source"],
            registry=self.registry,
        )
        self.loaded = Gauge(
            "terraops_model_loaded_version",
            "Model version each live worker serves.",
            ["service"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.log_dropped = Counter(
            "terraops_prediction_log_dropped",
            "Prediction-log records lost, by reason (buffer_full, write_error).",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("buffer_full", "write_error"):
            self.log_dropped.labels(reason)  # exported as 0 before the first loss
        self._bounds = [*LATENCY_BUCKETS, math.inf]
        # (service, endpoint, version, status) -> [latency sum, rows, count per bucket]
        self._pending: dict[tuple[str, str, int | None, int], list[Any]] = {}

    # ----- request path (event loop thread) -----------------------------------------
    def observe(
        self, route: tuple[str, str], version: int | None, status: int, seconds: float, rows: int
    ) -> None:
        """Tally one request; :meth:`fold` moves the tally into the metrics."""
        key = (route[0], route[1], version, status)
        tally = self._pending.get(key)
        if tally is None:
            tally = self._pending[key] = [0.0, 0, [0] * len(self._bounds)]
        tally[0] += seconds
        tally[1] += rows
        tally[2][bisect.bisect_left(self._bounds, seconds)] += 1

    def fold(self) -> None:
        """Add the tallied requests to the Prometheus values (call on the event loop).

        Adds a whole tally to a histogram child's ``_sum`` and ``_buckets``
        values: prometheus-client has no public "observe n times", and these
        attributes are how its ``observe`` itself records (pinned version;
        ``tests/code/test_observability.py`` checks the exposed counts).
        """
        pending, self._pending = self._pending, {}
        for (service, endpoint, version, status), (total, rows, counts) in pending.items():
            label = "none" if version is None else str(version)
            child = self.requests.labels(service, label, endpoint, str(status))
            child._sum.inc(total)
            for bucket, count in zip(child._buckets, counts, strict=True):
                if count:
                    bucket.inc(count)
            if rows:
                self.predictions.labels(service, label).inc(rows)

    async def fold_periodically(self) -> None:
        """The app's lifespan runs this: fold every ``FOLD_INTERVAL_S`` until cancelled."""
        try:
            while True:
                await asyncio.sleep(FOLD_INTERVAL_S)
                self.fold()
        finally:
            self.fold()

    # ----- events ----------------------------------------------------------------
    def model_loaded(self, service: str, version: int, source: str) -> None:
        self.reloads.labels(service, str(version), source).inc()
        self.loaded.labels(service).set(version)

    def log_drop(self, reason: str, count: int) -> None:
        self.log_dropped.labels(reason).inc(count)

    # ----- scrape -----------------------------------------------------------------
    def render(self, extra: Iterable[Any] = ()) -> bytes:
        """The exposition text: every worker's samples plus ``extra`` collectors."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry(auto_describe=False)
        folder = multiprocess_dir()
        if folder is not None:
            mark_dead_workers(folder)
            MultiProcessCollector(registry, path=str(folder))
        else:
            registry.register(_Forward(self.registry))
        for collector in extra:
            registry.register(collector)
        return generate_latest(registry)


class _Forward:
    """Expose another registry's metrics inside a scrape registry."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterable[Any]:
        return self.source.collect()


def mark_dead_workers(folder: Path) -> list[int]:
    """Drop the live gauges of workers that exited (their counters stay summed).

    uvicorn restarts a dead worker but tells nobody; the scrape checks the pids
    that own sample files instead (``os.kill(pid, 0)``).
    """
    from prometheus_client.multiprocess import mark_process_dead

    dead = []
    for path in folder.glob("gauge_live*_*.db"):
        try:
            pid = int(path.stem.rsplit("_", 1)[1])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(folder))
            dead.append(pid)
        except PermissionError:  # alive, owned by someone else
            continue
    return dead


class FeedbackCollector:
    """Feedback counts and live error per service and version, read at scrape time."""

    def __init__(self, store: Any, services: Iterable[str], window_h: float) -> None:
        self.store = store
        self.services = list(services)
        self.window_h = window_h

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        count = CounterMetricFamily(
            "terraops_feedback",
            "Ground-truth rows received, by service and model version.",
            labels=["service", "version"],
        )
        error_sum = CounterMetricFamily(
            "terraops_feedback_error",
            "Sum of absolute errors (regression) or squared errors (binary: Brier) of the "
            "feedback received; rate(terraops_feedback_error_total) / "
            "rate(terraops_feedback_total) is the live error over any window.",
            labels=["service", "version", "metric"],
        )
        live = GaugeMetricFamily(
            "terraops_live_error",
            "Live error (MAE or Brier) of the feedback received in the last "
            "TERRAOPS_LIVE_ERROR_WINDOW_H hours.",
            labels=["service", "version", "metric"],
        )
        if not self.store.path.exists():
            return [count, error_sum, live]
        since = datetime.now(UTC) - timedelta(hours=self.window_h)
        for service in self.services:
            total = self.store.live_error(service)
            metric = total["metric"]
            sum_key = "brier_sum" if metric == "brier" else "abs_error_sum"
            for version, figures in total["by_version"].items():
                count.add_metric([service, str(version)], figures["n"])
                error_sum.add_metric([service, str(version), metric], figures[sum_key])
            recent = self.store.live_error(service, since=since)
            for version, figures in recent["by_version"].items():
                if figures[metric] is not None:
                    live.add_metric([service, str(version), metric], figures[metric])
            if recent["value"] is not None:
                live.add_metric([service, "all", metric], recent["value"])
        return [count, error_sum, live]


Observer = Callable[[tuple[str, str], int | None, int, float, int], None]
"""Told of each measured request: (service, endpoint), version, status, seconds, rows."""


class ObservabilityMiddleware:
    """Request id on every response; each measured request timed once and handed to the
    observers (the Prometheus tally, the dashboard's recent-request figures)."""

    def __init__(
        self,
        app: ASGIApp,
        observers: Sequence[Observer],
        routes: dict[str, tuple[str, str]],
    ) -> None:
        self.app = app
        self.observers = tuple(observers)
        self.routes = routes
        self.ids = RequestIds()
        self._clock = time.perf_counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                if _VALID_ID(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            request_id = self.ids.new()
        ctx = RequestContext(request_id)
        token = current_request.set(ctx)
        id_header = (_HEADER, request_id.encode("ascii"))
        status = 500  # an exception before the response starts is a server error

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        route = self.routes.get(scope["path"]) if self.observers else None
        started = self._clock()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request.reset(token)
            if route is not None:
                seconds = self._clock() - started
                for observe in self.observers:
                    observe(route, ctx.version, status, seconds, ctx.rows)


def measured_routes(services: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Path → (service, endpoint) of the routes with latency histograms."""
    routes = {}
    for service in services:
        routes[f"/v1/{service}/predict"] = (service, "predict")
        routes[f"/v1/{service}/predict/batch"] = (service, "batch")
        routes[f"/v1/{service}/feedback"] = (service, "feedback")
    return routes


def metrics_router(metrics: ServingMetrics, extra: Callable[[], Iterable[Any]]) -> APIRouter:
    """``GET /metrics``: Prometheus text exposition of every worker's figures."""
    from prometheus_client import CONTENT_TYPE_LATEST

    router = APIRouter(tags=["operations"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics (all workers): latency, predictions, reloads, "
        "log drops, live error",
        response_class=Response,
    )
    async def prometheus_metrics() -> Response:
        metrics.fold()  # this worker's latest requests (others fold every second)
        body = await run_in_threadpool(metrics.render, extra())
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router


__all__ = [
    "REQUEST_ID_HEADER",
    "FeedbackCollector",
    "ObservabilityMiddleware",
    "RequestContext",
    "ServingMetrics",
    "current_request",
    "mark_dead_workers",
    "measured_routes",
    "metrics_router",
    "prepare_multiprocess_dir",
    "request_context",
]
