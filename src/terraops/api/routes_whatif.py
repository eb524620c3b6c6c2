"""``POST /v1/{service}/whatif``: a scenario applied to a catalogue scene, Δ layers back.

The body names a scene the layer catalogue knows (its imagery layer id, any
layer id of the scene, or the scene's name), the scenario as a GeoJSON
FeatureCollection and optional parameters; the answer is the JSON of
``terraops whatif --json`` plus each new layer's links. The run takes
seconds of CPU, so it goes to the thread pool, never the event loop.

Bounded, because one request writes files and costs CPU: the body size
(``TERRAOPS_WHATIF_MAX_BODY_BYTES``, 413), the number of interventions
(``TERRAOPS_WHATIF_MAX_FEATURES``) and their total area
(``TERRAOPS_WHATIF_MAX_AREA_HA``, 422 naming the feature and field like every
scenario refusal), and a per-client rate (``TERRAOPS_WHATIF_RATE_PER_MIN``, 429).

No admin token: a what-if changes no model, alias or served answer — it
adds Δ layers, named by the scenario's sha256 (the same scenario replaces its
own layers) — and the map page sends it from the browser, where no secret
can be kept. The rate limit and the bounds are what protect the server.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from terraops.adapters import raster_io
from terraops.adapters.catalogue import LayerCatalogue
from terraops.adapters.registry import ModelRegistry
from terraops.api.rate_limit import rate_limit
from terraops.api.routes_layers import base_url, layer_links
from terraops.domain.scene_record import Scene
from terraops.domain.whatif.scenario import ScenarioLimits
from terraops.errors import (
    InvalidInputError,
    InvalidScenarioError,
    NotFoundError,
    PayloadTooLargeError,
)
from terraops.pipelines.lifecycle.resolve import resolve_version
from terraops.pipelines.maps.raster_predict import ModelChoice, choose_model
from terraops.pipelines.whatif.run import parse_for_scene, run_whatif, whatif_service
from terraops.settings import Settings


class _Models:
    """Loaded models per (service, version): loading one takes seconds, a what-if should not.

    Only the :data:`KEEP` most recently used stay loaded, so asking for many old
    versions cannot grow the server's memory without bound.
    """

    KEEP = 4

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: OrderedDict[tuple[str, int], ModelChoice] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, service: str, version: int | None) -> ModelChoice:
        definition = whatif_service(service)
        info = resolve_version(ModelRegistry(self.settings), service, version)
        key = (service, info.version)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = choose_model(self.settings, definition, info.version)
                while len(self._loaded) > self.KEEP:
                    self._loaded.popitem(last=False)
            self._loaded.move_to_end(key)
            return self._loaded[key]


def find_scene(catalogue: LayerCatalogue, scene: str) -> Scene:
    """The scene a catalogue layer id (or scene name) stands for."""
    for layer in catalogue.layers():
        scene_dir = layer.lineage.get("scene_dir")
        if scene_dir and scene in (layer.id, layer.lineage.get("scene")):
            return raster_io.read_scene(scene_dir)
    raise NotFoundError(
        f"no scene {scene!r} in the layer catalogue",
        hint="use a scene's imagery layer id from GET /v1/layers "
        "(e.g. scene-<name>-rgb), or add it with `terraops layers add-scene`",
    )


def _body(raw: bytes, limit: int) -> tuple[str, Any, dict[str, float], int | None]:
    """(scene, scenario, params, version) of a request body, checked."""
    if len(raw) > limit:
        raise PayloadTooLargeError(
            f"the what-if body is larger than the {limit:,} bytes this server accepts",
            hint="draw fewer or simpler polygons, or raise TERRAOPS_WHATIF_MAX_BODY_BYTES",
        )
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("scene"), str):
        raise InvalidInputError(
            "the body must be an object with 'scene' (a catalogue scene id) and 'scenario'",
            hint='{"scene": "scene-<name>-rgb", "scenario": {"type": "FeatureCollection", ...}}',
        )
    if "scenario" not in body:
        raise InvalidScenarioError("the body has no 'scenario'", field="scenario")
    params = body.get("params") or {}
    if not isinstance(params, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in params.values()
    ):
        raise InvalidInputError("'params' must map input names to numbers")
    version = body.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise InvalidInputError("'version' must be an integer")
    return body["scene"], body["scenario"], {k: float(v) for k, v in params.items()}, version


def whatif_router(settings: Settings, catalogue: LayerCatalogue) -> APIRouter:
    limited = rate_limit(settings.whatif_rate_per_min, "what-if", "TERRAOPS_WHATIF_RATE_PER_MIN")
    router = APIRouter(tags=["what-if"])
    models = _Models(settings)
    limits = ScenarioLimits(
        max_features=settings.whatif_max_features,
        max_area_m2=settings.whatif_max_area_ha * 1e4,
    )

    def run(service: str, raw: bytes, base: str) -> dict[str, Any]:
        scene_id, scenario, params, version = _body(raw, settings.whatif_max_body_bytes)
        whatif_service(service)  # an unknown service is a 404 before any work
        scene = find_scene(catalogue, scene_id)
        parse_for_scene(scene, scenario, limits)  # a bad scenario fails before a model loads
        result = run_whatif(
            settings,
            service,
            scene,
            scenario,
            params=params,
            limits=limits,
            model=models.get(service, version),
        )
        body = result.to_json()
        body["layer_links"] = {layer.id: layer_links(layer, base) for layer in result.layers}
        return body

    @router.post("/v1/{service}/whatif", dependencies=[Depends(limited)])
    async def whatif(service: str, request: Request) -> dict[str, Any]:
        """Apply a scenario to a catalogue scene; the Δ layers join the catalogue."""
        raw = await request.body()
        return await run_in_threadpool(run, service, raw, base_url(request))

    return router
