"""TiTiler's own endpoints (info, statistics, tiles, point, preview...) keyed by layer id.

Why mount TiTiler at all when ``/layers`` already serves tiles: its
``/info`` and ``/statistics`` answer the questions a GIS analyst asks of a
COG (bands, dtype, histogram, percentiles) without terraops re-implementing
them. Why not mount it as is: TiTiler's ``?url=`` reads any path or URL the
server can reach. Here the factory's ``path_dependency`` takes a catalogue
**layer id** from the path and returns the catalogue's file, refused unless it
is a GeoTIFF; the undeclared-query guard means a ``url=`` can never arrive
(TiTiler's ``url`` parameter is not declared on these routes at all). The
HTML map viewer is left out: it loads its scripts from a CDN.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from rio_tiler.errors import PointOutsideBounds, RioTilerError, TileOutsideBounds
from titiler.core.factory import TilerFactory

from terraops.adapters import layer_files
from terraops.adapters.catalogue import LayerCatalogue
from terraops.api.routes_layers import add_catch_all, refuse_undeclared_query
from terraops.api.schemas import ErrorResponse
from terraops.errors import NotFoundError

PREFIX = "/titiler/layers/{layer_id}"


def _json_error(description: str) -> dict[str, Any]:
    # Spelled out, not ``model=``: FastAPI would document the error under the route's own
    # media type, and some TiTiler routes answer GeoJSON; errors are always JSON.
    schema = ErrorResponse.model_json_schema()
    return {"description": description, "content": {"application/json": {"schema": schema}}}


#: rio-tiler refusals (bad expression, band index...) are 400s; see ``_rio_tiler_error``.
TILER_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _json_error("rio-tiler refused the parameters"),
    404: _json_error("No such raster layer, or outside its bounds"),
    422: _json_error("Bad parameter, or an undeclared one (url=...)"),
}


def titiler_router(catalogue: LayerCatalogue) -> APIRouter:
    """TiTiler's ``TilerFactory`` under ``/titiler/layers/{layer_id}``, id → catalogue file."""

    def layer_path(layer_id: str = Path(description="Catalogue layer id")) -> str:
        layer = catalogue.get_available(layer_id)
        if layer.kind != "raster":
            raise NotFoundError(f"layer {layer_id!r} is a vector layer; TiTiler serves rasters")
        layer_files.check_geotiff(layer)
        return layer.path

    factory = TilerFactory(
        router=APIRouter(dependencies=[Depends(refuse_undeclared_query)]),
        path_dependency=layer_path,
        router_prefix=PREFIX,
        add_viewer=False,
    )
    router = APIRouter()
    router.include_router(factory.router, prefix=PREFIX, tags=["titiler"], responses=TILER_ERRORS)
    add_catch_all(router, "/titiler", "TiTiler resource")
    return router


async def _rio_tiler_error(request: Request, exc: Exception) -> JSONResponse:
    """rio-tiler errors in the terraops error shape (TiTiler's own handlers are not installed)."""
    outside = isinstance(exc, TileOutsideBounds | PointOutsideBounds)
    body = {"error": "outside_bounds" if outside else "invalid_request", "message": str(exc)}
    return JSONResponse(body, status_code=404 if outside else 400)


def install_titiler(app: FastAPI, catalogue: LayerCatalogue) -> None:
    app.include_router(titiler_router(catalogue))
    app.add_exception_handler(RioTilerError, _rio_tiler_error)


__all__ = ["install_titiler", "titiler_router"]
