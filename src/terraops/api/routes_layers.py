"""Map layers over HTTP: the catalogue, XYZ tiles, point values, downloads.

Every route names a layer by its **catalogue id** — never a path or URL —
which is the point of this module: TiTiler's ``?url=`` reads anything the
server can reach, these routes read only what the catalogue lists. Two guards
make that hold for every route here (and for the STAC and TiTiler routes):

* a query parameter the route does not declare (``url``, ``path``, ``file``...)
  is refused with a 422 *before* the endpoint runs, so nothing is opened;
* an id that is not a catalogue slug (``..``, ``file://``, ``/vsicurl/``,
  ``x.vrt``) is a 404 from the catalogue lookup, and any other path under
  ``/layers`` or ``/stac`` gets the same clear JSON 404.

Tiles are rendered by rio-tiler in the threadpool (CPU work must not block the
event loop), cached by layer + model version + file fingerprint + style, and
sent with a strong ``ETag`` so browsers revalidate with a 304.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from terraops.adapters import layer_files
from terraops.adapters.catalogue import LayerCatalogue, LayerStatus
from terraops.adapters.tile_cache import TileCache, TileKey
from terraops.api.schemas import ErrorResponse
from terraops.domain.layers import Layer
from terraops.errors import InvalidInputError, NotFoundError
from terraops.settings import Settings

MAX_ZOOM = 30
#: Documented on every layer route (a client can read the error shape from /docs).
LAYER_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such layer, or the point/tile is outside it"},
    422: {"model": ErrorResponse, "description": "Bad parameter, or an undeclared one (url=...)"},
}
_TILE_NAME = re.compile(r"^(\d{1,10})(?:@([12])x)?\.png$")
_PRIVATE_KEY = re.compile(r"(^|_)(path|dir|file)s?$")
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"

# ----- guards -------------------------------------------------------------------


def _declared_query_names(dependant: Any, out: set[str]) -> set[str]:
    for field in dependant.query_params:
        out.add(field.alias)
    for sub in dependant.dependencies:
        _declared_query_names(sub, out)
    return out


# Route id → (route, names). Holding the route keeps its id from being reused.
_DECLARED: dict[int, tuple[Any, frozenset[str]]] = {}


def refuse_undeclared_query(request: Request) -> None:
    """Refuse any query parameter the matched route does not declare.

    Why: a stray ``?url=`` or ``?path=`` must never reach a reader, even one a
    future route forgets to guard. Declared names come from the route's own
    FastAPI signature (and its dependencies), so the check cannot drift.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    cached = _DECLARED.get(id(route))
    if cached is None:
        cached = (route, frozenset(_declared_query_names(dependant, set())))
        _DECLARED[id(route)] = cached
    declared = cached[1]
    extra = sorted({name for name in request.query_params if name not in declared})
    if extra:
        names = ", ".join(repr(name[:40]) for name in extra[:5])
        raise InvalidInputError(
            f"unknown query parameter {names}: layers are named by catalogue id in the "
            "path, and this server never reads a path or URL given in a request",
            hint=f"allowed here: {', '.join(sorted(declared)) or 'none'}; GET /layers lists ids",
        )


def add_catch_all(router: APIRouter, prefix: str, what: str) -> None:
    """A JSON 404 for every other path under ``prefix`` (``/layers/../x``, ``/layers/a/b``)."""

    @router.api_route(f"{prefix}/{{rest:path}}", methods=["GET", "HEAD"], include_in_schema=False)
    def not_a_layer_resource(rest: str) -> None:
        raise NotFoundError(
            f"no {what} at {prefix}/{rest[:100]}", hint="GET /layers lists the catalogue's layers"
        )


# ----- JSON shapes ----------------------------------------------------------------


def public_lineage(value: Any) -> Any:
    """Lineage without server paths (``scene_dir``, ``*_path``): never leak the disk layout."""
    if isinstance(value, dict):
        return {
            k: public_lineage(v)
            for k, v in value.items()
            if not (isinstance(k, str) and _PRIVATE_KEY.search(k))
        }
    if isinstance(value, list | tuple):
        return [public_lineage(v) for v in value]
    return value


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def layer_links(layer: Layer, base: str) -> dict[str, str]:
    """Absolute URLs of what a client can do with a layer."""
    root = f"{base}/layers/{layer.id}"
    links = {"self": root, "stac": f"{base}/stac/items/{layer.id}.json"}
    if layer.kind == "raster":
        links.update(
            tilejson=f"{root}/tilejson.json",
            tiles=f"{root}/tiles/{{z}}/{{x}}/{{y}}.png",
            point=f"{root}/point",
            download=f"{root}/cog.tif",
        )
    else:
        links.update(data=f"{root}/data.geojson", download=f"{root}/data.geojson")
    return links


def layer_json(status: LayerStatus, base: str) -> dict[str, Any]:
    """A catalogue entry as clients see it: no absolute paths, plus links and legend."""
    layer = status.layer
    body = status.to_dict()
    for private in ("path", "features_path"):
        body.pop(private, None)
    body["problem"] = None if status.available else "the layer's file is missing on the server"
    body["lineage"] = public_lineage(body["lineage"])
    body["has_features"] = layer.features_path is not None
    body["legend_stops"] = (
        layer_files.legend_stops(layer.colormap, layer.rescale)
        if layer.colormap and layer_files.known_colormap(layer.colormap)
        else []
    )
    body["links"] = layer_links(layer, base)
    return body


# ----- tile parameters -----------------------------------------------------------------


def parse_tile_name(name: str) -> tuple[int, int]:
    """``"12.png"`` → (12, 1); ``"12@2x.png"`` → (12, 2)."""
    match = _TILE_NAME.fullmatch(name)
    if match is None:
        raise InvalidInputError(
            f"tile name {name[:40]!r} is not '{{y}}.png' or '{{y}}@2x.png'",
            hint="tiles are /layers/{id}/tiles/{z}/{x}/{y}.png",
        )
    return int(match.group(1)), int(match.group(2) or 1)


def check_tile_index(z: int, x: int, y: int) -> None:
    side = 1 << z
    if x >= side or y >= side:
        raise InvalidInputError(f"tile {z}/{x}/{y} does not exist: x and y must be < 2^z = {side}")


def parse_rescale(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise InvalidInputError(
            f"rescale {text[:40]!r} is not 'lo,hi'", hint="e.g. ?rescale=20,40"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise InvalidInputError(f"rescale {text[:40]!r}: need finite numbers with lo < hi")
    return lo, hi


def _stats_range(layer: Layer) -> tuple[float, float] | None:
    lo, hi = layer.stats.get("min"), layer.stats.get("max")
    if isinstance(lo, int | float) and isinstance(hi, int | float) and lo < hi:
        return float(lo), float(hi)
    return None


def resolve_style(layer: Layer, colormap: str | None, rescale: str | None) -> layer_files.TileStyle:
    """The layer's default style with validated overrides (422 with a reason otherwise)."""
    if colormap is not None:
        if layer.colormap is None:
            raise InvalidInputError(
                f"layer {layer.id!r} is shown as it is (RGB imagery); colormap does not apply"
            )
        if not layer_files.known_colormap(colormap):
            raise InvalidInputError(
                f"unknown colormap {colormap[:40]!r}",
                hint="use a rio-tiler colormap name, e.g. viridis, rdylbu_r, blues, magma",
            )
    name = colormap or layer.colormap
    lo_hi = parse_rescale(rescale) if rescale is not None else layer.rescale
    if name is not None and lo_hi is None:
        lo_hi = _stats_range(layer)
        if lo_hi is None:
            raise InvalidInputError(f"layer {layer.id!r} has no value range; give ?rescale=lo,hi")
    return layer_files.TileStyle(name, lo_hi)


def etag_matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` uses weak comparison (RFC 9110 §13.1.2)."""
    if not header:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in candidates or etag in candidates


def tile_headers(layer: Layer, etag: str, max_age: int) -> dict[str, str]:
    return {
        **layer.lineage_headers(),
        "ETag": etag,
        "Cache-Control": f"public, max-age={max_age}",
    }


# ----- routes ------------------------------------------------------------------------

_COLORMAP_Q = Query(None, description="rio-tiler colormap name overriding the layer's")
_RESCALE_Q = Query(None, description="'lo,hi' value range overriding the layer's")


def _add_catalogue_routes(router: APIRouter, catalogue: LayerCatalogue) -> None:
    @router.get("/layers", summary="Every catalogue layer, with links and legend")
    def list_layers(request: Request) -> list[dict[str, Any]]:
        base = base_url(request)
        return [layer_json(status, base) for status in catalogue.statuses()]

    @router.get("/layers/{layer_id}", summary="One catalogue layer")
    def get_layer(request: Request, layer_id: str) -> dict[str, Any]:
        layer = catalogue.get(layer_id)
        return layer_json(catalogue.status(layer), base_url(request))

    @router.get("/layers/{layer_id}/tilejson.json", summary="TileJSON 3.0.0 of a raster layer")
    async def tilejson(
        request: Request,
        layer_id: str,
        colormap: str | None = _COLORMAP_Q,
        rescale: str | None = _RESCALE_Q,
    ) -> dict[str, Any]:
        layer = catalogue.get_available(layer_id)
        resolve_style(layer, colormap, rescale)  # refuse a bad style here, not per tile
        minzoom, maxzoom, bounds = await run_in_threadpool(layer_files.tile_zooms, layer)
        style = {"colormap": colormap, "rescale": rescale}
        query = urlencode({k: v for k, v in style.items() if v is not None}, safe=",")
        template = layer_links(layer, base_url(request))["tiles"] + (f"?{query}" if query else "")
        west, south, east, north = bounds
        return {
            "tilejson": "3.0.0",
            "name": layer.title,
            "description": layer.legend,
            "version": "1.0.0",
            "scheme": "xyz",
            "tiles": [template],
            "minzoom": minzoom,
            "maxzoom": maxzoom,
            "bounds": [west, south, east, north],
            "center": [(west + east) / 2, (south + north) / 2, minzoom],
            "attribution": attribution(layer),
        }


def attribution(layer: Layer) -> str:
    """Who made the layer, as a map's attribution line shows it."""
    model = layer.model
    text = "terraops"
    if model:
        text += f" · model {model.get('name', '?')} v{model.get('version', '?')}"
        if model.get("run_id"):
            text += f" (run {str(model['run_id'])[:12]})"
    scene = layer.lineage.get("scene")
    return f"{text} · scene {scene}" if scene else text


def _add_tile_route(
    router: APIRouter, catalogue: LayerCatalogue, cache: TileCache, max_age: int
) -> None:
    @router.get(
        "/layers/{layer_id}/tiles/{z}/{x}/{tile}",
        summary="XYZ PNG tile ({y}.png, or {y}@2x.png for 512 px)",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 304: {"description": "Not modified"}},
    )
    async def tile(
        request: Request,
        layer_id: str,
        z: int = Path(ge=0, le=MAX_ZOOM),
        x: int = Path(ge=0),
        tile: str = Path(description="'{y}.png' or '{y}@2x.png'"),
        colormap: str | None = _COLORMAP_Q,
        rescale: str | None = _RESCALE_Q,
    ) -> Response:
        y, scale = parse_tile_name(tile)
        check_tile_index(z, x, y)
        layer = catalogue.get_available(layer_id)
        style = resolve_style(layer, colormap, rescale)
        key = TileKey(layer.cache_token, z, x, y, scale, "png", style.key())
        headers = tile_headers(layer, key.etag(), max_age)
        if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        data = cache.get(key)
        headers["X-Tile-Cache"] = "miss" if data is None else "hit"
        if data is None:
            data = await run_in_threadpool(layer_files.render_tile, layer, z, x, y, scale, style)
            cache.put(key, data)
        return Response(data, media_type="image/png", headers=headers)


def _add_point_route(router: APIRouter, catalogue: LayerCatalogue) -> None:
    @router.get(
        "/layers/{layer_id}/point", summary="The layer's value (and model inputs) at a point"
    )
    async def point(
        layer_id: str,
        lon: float = Query(ge=-180, le=180, description="Longitude (WGS 84)"),
        lat: float = Query(ge=-90, le=90, description="Latitude (WGS 84)"),
    ) -> JSONResponse:
        layer = catalogue.get_available(layer_id)
        sample = await run_in_threadpool(layer_files.sample_point, layer, lon, lat)
        features = await run_in_threadpool(
            layer_files.feature_row, layer.features_path, sample.row, sample.col
        )
        body = {
            "layer": layer.id,
            "lon": lon,
            "lat": lat,
            "value": sample.values[0] if sample.values else None,
            "values": sample.values,
            "unit": layer.unit,
            "row": sample.row,
            "col": sample.col,
            "lineage": public_lineage(dict(layer.lineage)),
            "features": features,
        }
        return JSONResponse(body, headers=layer.lineage_headers())


def _add_file_routes(router: APIRouter, catalogue: LayerCatalogue, max_age: int) -> None:
    def cog(layer_id: str) -> FileResponse:
        layer = catalogue.get_available(layer_id)
        if layer.kind != "raster":
            raise NotFoundError(
                f"layer {layer_id!r} is a vector layer; it has no COG",
                hint=f"GET /layers/{layer_id}/data.geojson",
            )
        layer_files.check_geotiff(layer)
        headers = {**layer.lineage_headers(), "Cache-Control": f"public, max-age={max_age}"}
        return FileResponse(
            layer.path, media_type="image/tiff", headers=headers, filename=f"{layer.id}.tif"
        )

    path = "/layers/{layer_id}/cog.tif"
    summary = "Download the layer's COG (HTTP Range supported, for QGIS / GDAL /vsicurl/)"
    router.add_api_route(path, cog, methods=["GET"], summary=summary, response_class=FileResponse)
    # HEAD answers the same (GDAL and QGIS ask for the size first); one operation in the schema.
    router.add_api_route(path, cog, methods=["HEAD"], include_in_schema=False)

    @router.get(
        "/layers/{layer_id}/data.geojson",
        summary="A vector layer as GeoJSON (EPSG:4326)",
        response_class=FileResponse,
    )
    def geojson(layer_id: str) -> FileResponse:
        layer = catalogue.get_available(layer_id)
        if layer.kind != "vector":
            raise NotFoundError(
                f"layer {layer_id!r} is a raster layer; it has no GeoJSON",
                hint=f"GET /layers/{layer_id}/cog.tif or its tiles",
            )
        headers = {**layer.lineage_headers(), "Cache-Control": f"public, max-age={max_age}"}
        return FileResponse(layer.path, media_type="application/geo+json", headers=headers)


def guarded_router() -> APIRouter:
    """A router whose every route refuses undeclared query parameters (layers, STAC)."""
    return APIRouter(
        tags=["layers"], dependencies=[Depends(refuse_undeclared_query)], responses=LAYER_ERRORS
    )


def layers_router(settings: Settings, catalogue: LayerCatalogue, cache: TileCache) -> APIRouter:
    """Catalogue, tiles, points and downloads — all by layer id, all query-guarded.

    The STAC documents of the same layers are :func:`terraops.api.routes_stac.stac_router`.
    """
    router = guarded_router()
    _add_catalogue_routes(router, catalogue)
    _add_tile_route(router, catalogue, cache, settings.tile_max_age_s)
    _add_point_route(router, catalogue)
    _add_file_routes(router, catalogue, settings.tile_max_age_s)
    add_catch_all(router, "/layers", "layer resource")
    return router
