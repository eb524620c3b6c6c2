"""The FastAPI application factory (thin: settings in, routes wired, nothing else).

``create_app(settings)`` builds one app; ``create_app_from_env()`` is the
factory uvicorn workers call (``terraops serve``), so every worker builds the
same settings from the ``TERRAOPS_`` environment. Docs (``/docs``, ``/redoc``)
are served from the installed ``fastapi-offline`` assets: no CDN, works
air-gapped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache, partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from terraops import __version__
from terraops.adapters.catalogue import LayerCatalogue
from terraops.adapters.feedback_store import FeedbackStore
from terraops.adapters.model_bundle import Predictor
from terraops.adapters.prediction_log import PredictionLog
from terraops.adapters.process_env import PROCESS_ENV_DEFAULTS
from terraops.adapters.registry import ModelRegistry
from terraops.adapters.tile_cache import TileCache
from terraops.api.errors import install_error_handlers
from terraops.api.limits import BodyLimitMiddleware, self_limited_paths
from terraops.api.model_holder import (
    ChampionWatcher,
    LazyRegistry,
    Loader,
    ModelHolder,
    ServingRegistry,
)
from terraops.api.observability import (
    FeedbackCollector,
    ObservabilityMiddleware,
    ServingMetrics,
    measured_routes,
    metrics_router,
)
from terraops.api.ops_metrics import OperationsCollector
from terraops.api.request_stats import RequestStats
from terraops.api.routes_admin import admin_router
from terraops.api.routes_feedback import feedback_guards, feedback_router
from terraops.api.routes_layers import layers_router
from terraops.api.routes_ops import ops_router
from terraops.api.routes_pages import install_pages
from terraops.api.routes_predict import predict_router, unknown_service_router
from terraops.api.routes_segment import (
    SegmenterSource,
    inference_threads,
    load_segmenter,
    segment_router,
)
from terraops.api.routes_stac import stac_router
from terraops.api.routes_titiler import install_titiler
from terraops.api.routes_whatif import whatif_router
from terraops.pipelines.lifecycle.aliases import load_and_verify
from terraops.services import all_services
from terraops.services.segmentation import SEGMENTATION
from terraops.settings import Settings

# Per-instance JSON is ~40 bytes per feature; this leaves generous room while
# refusing absurd bodies before they are parsed.
BODY_BYTES_PER_INSTANCE = 2048
BODY_BYTES_BASE = 64 * 1024
SERVING_SWITCH_INTERVAL_S = 0.0005


def load_for_serving(path: Path, definition: Any) -> Any:
    """:func:`load_and_verify`: what must hold before a version may serve.

    Nothing more: the old version serves until this returns, and every step here
    competes with the requests for the interpreter. What only ``?explain=true``
    needs comes after the swap (:func:`prepare_for_serving`).
    """
    return load_and_verify(path, definition)


def prepare_for_serving(served: Any) -> None:
    """A served predictor's TreeSHAP tables and compiled kernel, built once it serves
    (at start-up before the first request, after a swap in the background), so
    that ``?explain=true`` requests do not pay them; one arriving before they are
    built waits for them."""
    if isinstance(served, Predictor):
        served.prepare_explanations()


def warm_admin_registry(settings: Settings) -> None:
    """Import MLflow's client now, in a server whose admin API is on.

    The first promotion or rollback otherwise imports it (about a thousand
    modules, seconds of work) in the middle of serving, competing with the
    requests for the interpreter. A registry that fails here fails the admin
    call too, which answers for it.
    """
    with contextlib.suppress(Exception):
        _default_registry(settings, settings.registry_timeout_s).ping()


def body_limit_bytes(settings: Settings) -> int:
    """``TERRAOPS_MAX_BODY_MB``, or room for the largest batch the server accepts."""
    if settings.max_body_mb is not None:
        return int(settings.max_body_mb * 1024 * 1024)
    return BODY_BYTES_BASE + BODY_BYTES_PER_INSTANCE * settings.max_batch_size


def served_services(settings: Settings) -> list[str]:
    """Configured services that exist (unknown names are ignored, not fatal)."""
    known = all_services()
    return [name for name in dict.fromkeys(settings.services) if name in known]


def _default_registry(settings: Settings, timeout_s: float | None) -> ModelRegistry:
    """MLflow's registry, built only when no registry is passed in (it loads MLflow)."""
    return ModelRegistry(settings, timeout_s=timeout_s)


def create_app(
    settings: Settings,
    *,
    holders: dict[str, ModelHolder] | None = None,
    registry: ServingRegistry | None = None,
    loader: Loader | None = None,
    watch: bool = True,
) -> FastAPI:
    """Build the API.

    By default each configured service gets a holder kept on the registry's
    champion by a :class:`ChampionWatcher`. Tests pass prebuilt ``holders`` with
    ``watch=False`` (the registry is then asked only about the segmenter, on the
    first ``POST /v1/segment``), or a fake ``registry``/``loader``.
    """
    for name, value in PROCESS_ENV_DEFAULTS.items():  # once per process, before any MLflow call
        os.environ.setdefault(name, value)
    definitions = all_services()
    if holders is None:
        holders = {name: ModelHolder(definitions[name]) for name in served_services(settings)}
    # One watcher follows every champion this process serves: the services' holders
    # (unless the caller keeps them itself: watch=False) and the segmenter, on demand.
    watcher = ChampionWatcher(
        holders if watch else {},
        registry or LazyRegistry(lambda: _default_registry(settings, settings.registry_timeout_s)),
        loader or load_for_serving,
        cache_dir=settings.model_cache_dir,
        poll_interval_s=settings.poll_interval_s,
        prepare=prepare_for_serving,
    )
    threads = inference_threads(settings.segment_vector_workers)
    segmenter = ModelHolder(SEGMENTATION, loader=partial(load_segmenter, threads=threads))
    watcher.follow_on_demand(segmenter)
    services_watcher = watcher if watch else None

    @cache
    def lifecycle_registry() -> Any:
        return registry or _default_registry(settings, None)

    metrics = ServingMetrics()
    for holder in holders.values():  # count every load and hot swap (/metrics)
        holder.on_swap.append(lambda m: metrics.model_loaded(m.service, m.version, m.source))
        if holder.current is not None:
            metrics.model_loaded(holder.current.service, holder.current.version, "given")
    prediction_log = (
        PredictionLog(
            settings.predictions_dir,
            max_bytes=int(settings.prediction_log_max_mb * 1024 * 1024),
            retention_s=settings.prediction_log_retention_days * 86400,
            on_drop=metrics.log_drop,
        )
        if settings.prediction_log
        else None
    )
    feedback_store = FeedbackStore(settings.feedback_db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(watcher.start)
        if prediction_log is not None:
            prediction_log.start()
        folding = asyncio.create_task(metrics.fold_periodically())
        try:
            yield
        finally:
            folding.cancel()
            if prediction_log is not None:
                await run_in_threadpool(prediction_log.stop)
            await run_in_threadpool(watcher.stop)

    app = FastAPIOffline(
        title="terraops",
        version=__version__,
        description="Urban heat and flood-risk models with lineage in every answer. "
        "Every response names the model version that computed it (body and X-Model-* headers).",
        lifespan=lifespan,
        # terraops exports Prometheus metrics itself; FastAPI's OpenTelemetry hooks would
        # look up three providers (environment reads) on every request for nothing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.holders = holders
    app.state.watcher = watcher
    app.state.prediction_log = prediction_log
    app.state.feedback_store = feedback_store
    app.state.metrics = metrics
    install_error_handlers(app, {name: h.definition for name, h in holders.items()})
    # Prediction routes first: routes are matched in order, and they are the hot path.
    for holder in holders.values():
        app.include_router(predict_router(holder, settings.max_batch_size, prediction_log))
    guards = feedback_guards(settings)  # token + per-client rate, shared by every service
    for holder in holders.values():
        app.include_router(
            feedback_router(
                holder,
                feedback_store,
                prediction_log,
                settings.prediction_log_retention_days,
                guards=guards,
            )
        )
    app.include_router(ops_router(holders, services_watcher, prediction_log))
    # Drift, registry contact, free disk, data-quality refusals (read at each scrape).
    operations = OperationsCollector(settings, holders, lambda: watcher.registry_status)
    app.include_router(
        metrics_router(
            metrics,
            lambda: [
                FeedbackCollector(feedback_store, holders, settings.live_error_window_h),
                operations,
            ],
        )
    )
    app.include_router(unknown_service_router(sorted(holders)))
    app.include_router(admin_router(settings, holders, services_watcher, lifecycle_registry))
    segment = segment_router(settings, SegmenterSource(segmenter, watcher))  # GeoTIFF → GeoJSON
    app.include_router(segment)
    # Map layers by catalogue id only (tiles, points, downloads, STAC); see routes_layers.
    app.state.layer_catalogue = LayerCatalogue(settings.layers_dir)
    app.state.tile_cache = TileCache.from_megabytes(settings.tile_cache_mb)
    app.include_router(layers_router(settings, app.state.layer_catalogue, app.state.tile_cache))
    app.include_router(stac_router(app.state.layer_catalogue))
    # What-if runs on catalogue scenes (scenario in, Δ layers added to the catalogue).
    app.include_router(whatif_router(settings, app.state.layer_catalogue))
    install_titiler(app, app.state.layer_catalogue)

    @cache
    def pages_registry() -> Any:
        # Fail fast like the poller: a dashboard must not hang on a registry outage.
        if registry is not None and hasattr(registry, "list_versions"):
            return registry
        return _default_registry(settings, settings.registry_timeout_s)

    request_stats = RequestStats(holders)
    install_pages(app, settings, holders, registry_factory=pages_registry, stats=request_stats)
    # JSON 413 in the error shape; routes with their own streaming limit are left to it.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=body_limit_bytes(settings),
        exempt_paths=self_limited_paths(segment.routes),
    )
    # Outermost: a request id on every response, metrics for the measured routes.
    app.add_middleware(
        ObservabilityMiddleware,
        observers=[metrics.observe, request_stats.observe],
        routes=measured_routes(holders),
    )
    return app


def configure_process_for_serving(settings: Settings) -> None:
    """Environment a serving process needs; call before workers start.

    One OpenMP thread per worker (2 workers × N threads on 2 cores collapse),
    a registry call that fails fast instead of retrying for minutes, and a
    short GIL switch interval: the registry poller and the prediction-log writer
    are Python threads, and with the default 5 ms interval a request arriving
    while one of them runs waits up to 5 ms — the p95/p99 of a sub-millisecond
    endpoint. At 0.5 ms the request thread gets the GIL back almost at once.
    """
    sys.setswitchinterval(SERVING_SWITCH_INTERVAL_S)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault(
        "MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(settings.registry_timeout_s)))
    )


def create_app_from_env() -> FastAPI:
    """uvicorn ``--factory`` entry point: settings from the ``TERRAOPS_`` environment."""
    settings = Settings()
    configure_process_for_serving(settings)
    app = create_app(settings)
    if settings.admin_token is not None:
        warm_admin_registry(settings)
    # Move the ~150k objects of the imports out of the collector's sight: a full
    # collection otherwise walks them all, a multi-ms pause in some request, and
    # per-request allocations (the prediction log's buffer) trigger those often.
    gc.collect()
    gc.freeze()
    return app


__all__ = ["body_limit_bytes", "create_app", "create_app_from_env", "served_services"]
