"""The layer catalogue as a static-looking STAC catalogue, built with pystac.

Why STAC: QGIS (STAC data source), STAC Browser and any STAC client can then
find terraops' layers, read their extent, projection and lineage, and stream
the COG by HTTP Range — without knowing terraops' own JSON. Items are built
per request from the live catalogue (a few microseconds each), so a layer
added by the CLI is in STAC at once; hrefs are absolute from the request's
base URL, as STAC clients resolve links against the document they fetched.
"""

from __future__ import annotations

from typing import Any

import pystac
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pystac.extensions.projection import ProjectionExtension
from starlette.concurrency import run_in_threadpool

from terraops import __version__
from terraops.adapters import layer_files
from terraops.adapters.catalogue import LayerCatalogue
from terraops.api.routes_layers import (
    add_catch_all,
    base_url,
    guarded_router,
    layer_links,
    public_lineage,
)
from terraops.domain.layers import Layer

CATALOG_ID = "terraops"
WEB_MAP_LINKS = "https://stac-extensions.github.io/web-map-links/v1.2.0/schema.json"
STAC_JSON = "application/json"


def _box(bounds: tuple[float, float, float, float]) -> dict[str, Any]:
    west, south, east, north = bounds
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def build_catalog(layers: list[Layer], base: str) -> pystac.Catalog:
    """Root catalog with one ``item`` link per layer."""
    catalog = pystac.Catalog(
        id=CATALOG_ID,
        title="terraops map layers",
        description="Model predictions (urban heat, flood risk), scene imagery and vectors, "
        f"each with its model lineage. terraops {__version__}.",
    )
    catalog.set_self_href(f"{base}/stac/catalog.json")
    for layer in layers:
        catalog.add_link(
            pystac.Link(
                rel=pystac.RelType.ITEM,
                target=f"{base}/stac/items/{layer.id}.json",
                media_type=pystac.MediaType.GEOJSON,
                title=layer.title,
            )
        )
    return catalog


def _properties(layer: Layer, available: bool) -> dict[str, Any]:
    lineage = public_lineage(dict(layer.lineage))
    return {
        "title": layer.title,
        "description": layer.legend,
        "terraops:kind": layer.kind,
        "terraops:group": layer.group,
        "terraops:role": layer.role,
        "terraops:unit": layer.unit,
        "terraops:available": available,
        "terraops:model": lineage.get("model") or None,
        "terraops:scene": lineage.get("scene"),
        "terraops:params": lineage.get("params") or {},
        "terraops:fingerprint": layer.fingerprint,
    }


def build_item(
    layer: Layer, base: str, proj: dict[str, Any] | None, available: bool
) -> pystac.Item:
    """A STAC item: extent, datetime, lineage, projection, data asset, tile links."""
    item = pystac.Item(
        id=layer.id,
        geometry=_box(layer.bounds),
        bbox=list(layer.bounds),
        datetime=pystac.utils.str_to_datetime(layer.created_at),
        properties=_properties(layer, available),
    )
    links = layer_links(layer, base)
    item.set_self_href(f"{base}/stac/items/{layer.id}.json")
    for rel in (pystac.RelType.ROOT, pystac.RelType.PARENT):
        item.add_link(
            pystac.Link(rel=rel, target=f"{base}/stac/catalog.json", media_type=STAC_JSON)
        )
    if layer.kind == "raster":
        item.add_asset(
            "data",
            pystac.Asset(
                href=links["download"],
                media_type=pystac.MediaType.COG,
                roles=["data"],
                title=layer.title,
            ),
        )
        item.stac_extensions.append(WEB_MAP_LINKS)
        item.add_link(
            pystac.Link(rel="xyz", target=links["tiles"], media_type="image/png", title=layer.title)
        )
        item.add_link(pystac.Link(rel="tilejson", target=links["tilejson"], media_type=STAC_JSON))
    else:
        item.add_asset(
            "data",
            pystac.Asset(
                href=links["data"],
                media_type=pystac.MediaType.GEOJSON,
                roles=["data"],
                title=layer.title,
            ),
        )
    if proj is not None:
        ext = ProjectionExtension.ext(item, add_if_missing=True)
        ext.apply(
            code=proj["code"],
            wkt2=proj["wkt2"],
            shape=proj["shape"],
            transform=proj["transform"],
            bbox=proj["bbox"],
        )
    return item


def add_stac_routes(router: APIRouter, catalogue: LayerCatalogue) -> None:
    """``/stac/catalog.json`` and ``/stac/items/{id}.json`` on ``router`` (a guarded router)."""

    @router.get("/stac/catalog.json", summary="STAC root catalog of the map layers", tags=["stac"])
    def stac_catalog(request: Request) -> JSONResponse:
        catalog = build_catalog(catalogue.layers(), base_url(request))
        return JSONResponse(catalog.to_dict(include_self_link=True, transform_hrefs=False))

    @router.get("/stac/items/{layer_id}.json", summary="STAC item of one layer", tags=["stac"])
    async def stac_item(request: Request, layer_id: str) -> JSONResponse:
        layer = catalogue.get(layer_id)
        status = catalogue.status(layer)
        proj = None
        if status.available and layer.kind == "raster":
            proj = await run_in_threadpool(layer_files.projection, layer)
        item = build_item(layer, base_url(request), proj, status.available)
        body = item.to_dict(include_self_link=True, transform_hrefs=False)
        return JSONResponse(
            body, media_type=pystac.MediaType.GEOJSON, headers=layer.lineage_headers()
        )


def stac_router(catalogue: LayerCatalogue) -> APIRouter:
    """The STAC documents of the catalogue's layers, behind the layers routes' guards."""
    router = guarded_router()
    add_stac_routes(router, catalogue)
    add_catch_all(router, "/stac", "STAC document")
    return router


__all__ = ["add_stac_routes", "build_catalog", "build_item", "stac_router"]
