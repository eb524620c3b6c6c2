"""Web pages: the offline Leaflet map (``/map``) and the operator dashboard (``/``).

Server-rendered Jinja2 templates plus plain JavaScript from our own package
and Leaflet from the installed ``xstatic-leaflet`` package (its polygon-drawing
plugin, Leaflet.draw, from the files the ``django-leaflet`` package ships): no
build step, no CDN, nothing fetched from outside the server (the pages' Content-Security-Policy
says so to the browser too). The pages read the same JSON API every client
uses (``/layers``, ``/v1/{service}/predict``, ``/v1/admin/...``), plus small
read-only endpoints for the dashboard: the registry's versions of a service
with their metrics, this process's request figures, and the SLO status
(``/v1/ops/slo``, from :mod:`terraops.api.routes_ops`).

The admin token is never rendered into a page: the operator types it, the
dashboard keeps it in the tab's ``sessionStorage`` and sends it as a bearer
header to the admin API, which checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import xstatic.pkg.leaflet
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from terraops import __version__
from terraops.api.model_holder import ModelHolder
from terraops.api.request_stats import RequestStats
from terraops.api.routes_ops import slo_status_router
from terraops.errors import ServiceNotFoundError
from terraops.settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
LEAFLET_URL = "/static/leaflet"
LEAFLET_DRAW_URL = "/static/leaflet-draw"
STATIC_URL = "/static/terraops"

#: Pages may talk to this server only: tiles, data and the API are same-origin,
#: images include Leaflet's inline icons (``data:``). Leaflet positions tiles
#: through the CSSOM, which ``style-src`` does not restrict.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MapView = Literal["heat", "flood"]
VIEWS: dict[str, str] = {"heat": "Heat", "flood": "Flood"}


def leaflet_dir() -> Path:
    """Leaflet's files as installed by the ``xstatic-leaflet`` package."""
    return Path(xstatic.pkg.leaflet.BASE_DIR)


def leaflet_draw_dir() -> Path:
    """Leaflet.draw's files as shipped inside the installed ``django-leaflet`` package.

    Located through the distribution's metadata, never imported: importing its
    Python package would configure Django, which terraops does not use. No
    package ships Leaflet.draw alone, and the page may fetch nothing from
    outside the server, so this one is a dependency for its static files only.
    """
    try:
        folder = Path(str(metadata.distribution("django-leaflet").locate_file("leaflet")))
    except metadata.PackageNotFoundError:
        folder = Path("leaflet")
    draw = folder / "static" / "leaflet" / "draw"
    if not (draw / "leaflet.draw.js").is_file():
        raise RuntimeError(
            "the map's drawing tool (Leaflet.draw) is missing: "
            "install terraops's dependencies again (pip install -e .)"
        )
    return draw


def _metric_summary(metrics: dict[str, float], primary: str) -> dict[str, float]:
    """The metrics a dashboard shows: every cross-validation figure and the leakage gap."""
    keep = ("_cv", "loco", "leakage", "city")
    return {k: v for k, v in sorted(metrics.items()) if any(tag in k for tag in keep)} or {
        k: v for k, v in metrics.items() if k == primary
    }


def challenger_version(aliases: dict[str, int]) -> int | None:
    """The challenger, if there is one: a challenger equal to the champion is not one.

    Training aliases each new version ``challenger`` and promotion moves
    ``champion`` without clearing it, so after a promotion both name one version.
    """
    challenger = aliases.get("challenger")
    return None if challenger is None or challenger == aliases.get("champion") else challenger


def service_versions(holder: ModelHolder, registry: Any, service: str) -> dict[str, Any]:
    """The registry's versions of ``service`` with aliases and headline metrics."""
    definition = holder.definition
    versions = registry.list_versions(service)
    aliases: dict[str, int] = {}
    rows = []
    for info in versions:
        for alias in info.aliases:
            aliases[alias] = info.version
        rows.append(
            {
                "version": info.version,
                "aliases": info.aliases,
                "run_id": info.run_id,
                "created_at": info.created_at.isoformat(timespec="seconds"),
                "primary_metric": info.metrics.get(definition.primary_metric),
                "metrics": _metric_summary(info.metrics, definition.primary_metric),
                "data_quality": info.tags.get("terraops.data_quality"),
                "scenes": info.tags.get("terraops.scenes"),
            }
        )
    loaded = holder.current
    return {
        "service": service,
        "challenger": challenger_version(aliases),
        "title": definition.title,
        "unit": definition.prediction_unit,
        "primary_metric": definition.primary_metric,
        "primary_metric_higher_is_better": definition.primary_metric_higher_is_better,
        "aliases": aliases,
        "serving": loaded.ref if loaded is not None else None,
        "versions": rows,
    }


def dashboard_api_router(
    holders: dict[str, ModelHolder],
    registry_factory: Callable[[], Any],
    stats: RequestStats,
) -> APIRouter:
    """Read-only JSON the dashboard polls (no token: nothing here is secret)."""
    router = APIRouter(tags=["operations"])

    @router.get(
        "/v1/stats",
        summary="Recent prediction requests, latency (p50/p95) and errors of this worker",
    )
    async def request_stats() -> dict[str, Any]:
        return stats.snapshot()

    @router.get(
        "/v1/models/{service}/versions",
        summary="Registered versions with aliases and cross-validation metrics",
        responses={
            404: {"description": "Unknown service"},
            503: {"description": "Registry unreachable (serving continues on the cached model)"},
        },
    )
    def versions(service: str) -> dict[str, Any]:
        # A plain ``def``: MLflow calls block, so they run in the thread pool and
        # never hold up the event loop that serves predictions.
        holder = holders.get(service)
        if holder is None:
            raise ServiceNotFoundError(
                f"service {service!r} is not served here",
                hint=f"served services: {', '.join(sorted(holders)) or 'none'}",
            )
        return service_versions(holder, registry_factory(), service)

    return router


def pages_router(settings: Settings, holders: dict[str, ModelHolder]) -> APIRouter:
    """``GET /`` (dashboard) and ``GET /map`` (heat or flood view)."""
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    router = APIRouter(include_in_schema=False)
    services = [
        {
            "name": name,
            "title": holder.definition.title,
            "unit": holder.definition.prediction_unit,
            "primary_metric": holder.definition.primary_metric,
        }
        for name, holder in holders.items()
    ]
    admin_enabled = settings.admin_token is not None and bool(
        settings.admin_token.get_secret_value()
    )

    def render(request: Request, name: str, **context: Any) -> HTMLResponse:
        context.update(
            version=__version__,
            leaflet_url=LEAFLET_URL,
            leaflet_draw_url=LEAFLET_DRAW_URL,
            static_url=STATIC_URL,
            views=VIEWS,
            services=services,
        )
        response = templates.TemplateResponse(request, name, context)
        response.headers.update(PAGE_HEADERS)
        return response

    @router.get("/", response_class=HTMLResponse)
    async def dashboard(request: Request) -> HTMLResponse:
        return render(
            request,
            "dashboard.html",
            page="dashboard",
            title="Operator dashboard",
            admin_enabled=admin_enabled,
        )

    @router.get("/map", response_class=HTMLResponse)
    async def map_page(request: Request, view: MapView = "heat") -> HTMLResponse:
        return render(
            request,
            "map.html",
            page="map",
            view=view,
            map_scene=settings.map_scene or "",
            title=f"{VIEWS[view]} map",
        )

    return router


def install_pages(
    app: FastAPI,
    settings: Settings,
    holders: dict[str, ModelHolder],
    *,
    registry_factory: Callable[[], Any],
    stats: RequestStats,
) -> None:
    """Mount the static files and add the pages and their JSON endpoints to ``app``."""
    app.mount(LEAFLET_URL, StaticFiles(directory=leaflet_dir()), name="leaflet")
    app.mount(LEAFLET_DRAW_URL, StaticFiles(directory=leaflet_draw_dir()), name="leaflet-draw")
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="terraops-static")
    app.include_router(dashboard_api_router(holders, registry_factory, stats))
    app.include_router(slo_status_router(settings, holders))
    app.include_router(pages_router(settings, holders))


__all__ = [
    "challenger_version",
    "dashboard_api_router",
    "install_pages",
    "leaflet_dir",
    "leaflet_draw_dir",
    "pages_router",
    "service_versions",
]
