"""The flood case study's numbers: exposed streets and buildings, a depaving plan and its effect.

Every number comes from a run made here, with the registered model:

1. ``predict-raster flood --param rainfall_mm=30`` and ``=100``
   (:func:`terraops.pipelines.maps.raster_predict.predict_raster`): the
   probability maps and flooded areas, registered on the map;
2. exposure: building footprints from the land cover the registered
   segmentation champion (a U-Net) draws when there is one, else the
   spectral land cover — a building is exposed when any of it lies in a
   cell at or above the service's decision threshold; streets are the road
   pixels in those cells;
3. a depaving plan on the most exposed sealed ground
   (:func:`terraops.pipelines.reports.plans.depave_sites`), run through
   :func:`terraops.pipelines.whatif.run.run_whatif` (every design storm).

A scene without elevation cannot be run (the flood features are terrain);
the study then records why instead of inventing numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from terraops.adapters import raster_io
from terraops.domain import features
from terraops.domain.landcover import LandCover
from terraops.errors import InvalidInputError
from terraops.pipelines.maps.raster_predict import choose_model, predict_raster
from terraops.pipelines.reports import plans
from terraops.pipelines.reports.grids import (
    Study,
    frame_of,
    layer_by_key,
    lon_lat,
    read_grid,
    rgb_image,
)
from terraops.pipelines.scenes.cell_tables import observed_inputs
from terraops.pipelines.scenes.landcover_source import (
    LandcoverSource,
    landcover_of_model,
    resolve_landcover_source,
)
from terraops.pipelines.whatif.report import FLOOD_THRESHOLD
from terraops.pipelines.whatif.run import run_whatif
from terraops.services import get_service
from terraops.settings import Settings

STORMS_MM: tuple[float, float] = (30.0, 100.0)
"""The two storms the study compares: a common heavy shower and a rare cloudburst."""


def _footprint_source(settings: Settings, resolution: float) -> LandcoverSource:
    """The segmentation champion when there is one (resolving these pixels), else the rules."""
    return resolve_landcover_source(settings, "auto").for_resolution(resolution)


def _source_text(source: LandcoverSource) -> dict[str, Any]:
    if source.kind == "segmentation":
        return {
            "kind": "segmentation",
            "model": f"segmentation v{source.version}",
            "reason": source.reason,
        }
    return {"kind": "spectral", "model": None, "reason": source.reason}


def _exposure(
    frame: plans.SceneFrame, probability: np.ndarray, landcover: np.ndarray
) -> dict[str, Any]:
    """Buildings (connected footprints) and street pixels in flooded cells."""
    f, res = frame.grid.factor, frame.resolution
    flooded_cells = np.nan_to_num(probability, nan=0.0) >= FLOOD_THRESHOLD
    flooded = np.zeros(landcover.shape, bool)
    rows, cols = frame.grid.rows * f, frame.grid.cols * f
    flooded[:rows, :cols] = np.kron(flooded_cells, np.ones((f, f), bool)).astype(bool)
    buildings, count = ndimage.label(landcover == int(LandCover.BUILDING))
    hit = np.unique(buildings[flooded & (buildings > 0)])
    roads = landcover == int(LandCover.ROAD)
    pixel_ha = res * res / 1e4
    road_total = float(roads.sum())
    return {
        "flooded_area_ha": round(float(flooded_cells.sum()) * frame.grid.cell_size**2 / 1e4, 2),
        "flooded_share": round(float(flooded_cells.mean()), 4),
        "buildings": int(count),
        "buildings_exposed": int(hit.size),
        "building_area_exposed_ha": round(
            float(np.isin(buildings, hit[hit > 0]).sum()) * pixel_ha, 2
        ),
        "street_area_exposed_ha": round(float((roads & flooded).sum()) * pixel_ha, 2),
        "street_share_exposed": round(float((roads & flooded).sum()) / road_total, 4)
        if road_total
        else None,
    }


def _not_applicable(scene: Any, reason: str) -> Study:
    return Study(
        facts={
            "study": "flood",
            "applies": False,
            "reason": reason,
            "scene": _scene_facts(scene),
            "limitations": list(get_service("flood").limitations),
        }
    )


def _scene_facts(scene: Any) -> dict[str, Any]:
    return {
        "name": scene.name,
        "crs": scene.crs,
        "size_px": [scene.width, scene.height],
        "resolution_m": float(scene.resolution),
        "area_km2": round(scene.width * scene.height * float(scene.resolution) ** 2 / 1e6, 2),
        "has_elevation": scene.has_layer("dem"),
    }


def _storm_rows(body: dict[str, Any], pixel_m2: float) -> list[dict[str, Any]]:
    """The what-if's whole-city effect in the study's two storms (footprint change in m² too)."""
    return [
        {**s, "building_footprint_delta_m2": round(s["buildings_exposed_delta"] * pixel_m2, 1)}
        for s in body.get("storms", [])
        if float(s["rainfall_mm"]) in STORMS_MM
    ]


def gather_flood(settings: Settings, scene_dir: Path, *, version: int | None = None) -> Study:
    """Run everything the flood case study quotes (see the module doc)."""
    scene = raster_io.read_scene(Path(scene_dir))
    if not scene.has_layer("dem"):
        return _not_applicable(
            scene,
            "its scene has no elevation layer, and the flood model's inputs are terrain "
            "(height above the nearest drainage, depressions, upstream area), so it cannot "
            "run here; import the scene with a DEM (--dem) to study floods",
        )
    definition = get_service("flood")
    try:
        runs = {
            storm: predict_raster(
                settings,
                definition,
                Path(scene_dir),
                version=version,
                params={"rainfall_mm": storm},
            )
            for storm in STORMS_MM
        }
    except InvalidInputError as exc:
        return _not_applicable(scene, str(exc))
    frame = frame_of(scene, settings.cell_size_m)
    probability = {storm: read_grid(run["out"]) for storm, run in runs.items()}
    layers = raster_io.read_layers(scene)
    source = _footprint_source(settings, float(scene.resolution))
    bands = features.reflectance_bands(scene, layers)
    footprints = source.classify(bands)
    exposure = {
        f"{storm:g}": _exposure(frame, probability[storm], footprints) for storm in STORMS_MM
    }
    model_version = runs[STORMS_MM[0]]["model"]["version"]
    model = choose_model(settings, definition, model_version)
    observed = observed_inputs(scene, layers, landcover_of_model(settings, model.params))
    heavy = probability[STORMS_MM[-1]]
    sites = plans.depave_sites(frame, observed.landcover, heavy)
    document = plans.scenario_document(frame, sites)
    whatif = run_whatif(settings, "flood", scene, json.dumps(document).encode(), model=model)
    body = whatif.to_json()
    delta = read_grid(layer_by_key(whatif.layers, f"delta-p{STORMS_MM[-1]:g}").path)
    facts: dict[str, Any] = {
        "study": "flood",
        "applies": True,
        "scene": {
            **_scene_facts(scene),
            "lon_lat": lon_lat(scene.crs, sites[0].geometry) if sites else None,
        },
        "model": runs[STORMS_MM[0]]["model"],
        "cell_size_m": frame.grid.cell_size,
        "threshold": FLOOD_THRESHOLD,
        "evaluation": {f"{s:g}": runs[s].get("evaluation") for s in STORMS_MM},
        "footprints": _source_text(source),
        "exposure": exposure,
        "plan": [
            {
                "id": s.id,
                "intervention": s.kind,
                "params": s.params,
                "score": s.score,
                "lon_lat": lon_lat(scene.crs, s.geometry),
            }
            for s in sites
        ],
        "depaved_ha": round(sum(r["area_ha"] for r in body["interventions"]), 2),
        "whatif": body,
        "effect": _storm_rows(body, float(scene.resolution) ** 2),
        "pixel_area_m2": float(scene.resolution) ** 2,
        "limitations": list(definition.limitations),
        "layers": [layer["id"] for run in runs.values() for layer in run["layers"]]
        + body["layers"],
        "scenario": document,
    }
    return Study(
        facts=facts,
        grids={
            **{f"p{storm:g}": probability[storm] for storm in STORMS_MM},
            "delta": delta,
            "rgb": rgb_image(bands, frame),
            "buildings": features.cell_mean(frame.grid, footprints == int(LandCover.BUILDING)),
        },
        shapes={"plan": [s.geometry for s in sites]},
        frame=frame,
    )
