"""The heat case study's numbers: hot spots, why they are hot, a greening plan and its cooling.

Every number comes from a run made here, with the registered model:

1. ``predict-raster uhi --explain --interval 0.9`` on the scene
   (:func:`terraops.pipelines.maps.raster_predict.predict_raster`): the
   temperature map, the heat-island intensity, the driver contribution and
   dominant-driver layers, the calibrated interval and the area of
   applicability — all registered on the map like any other run;
2. the hot spots by the map's own rule (the service's ``hotspots`` area
   rule), each with where it is, how hot, and its drivers;
3. a greening plan drawn from the scene (:mod:`terraops.pipelines.reports.plans`),
   run through :func:`terraops.pipelines.whatif.run.run_whatif`.

The result is a :class:`Study`: the JSON facts the text quotes, and the grids
the figures draw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import box

from terraops.adapters import raster_io
from terraops.domain.explain import driver_legend, service_drivers
from terraops.domain.mapping import area_polygons
from terraops.errors import ConflictError
from terraops.pipelines.maps.raster_predict import choose_model, predict_raster
from terraops.pipelines.reports import plans
from terraops.pipelines.reports.grids import (
    Study,
    cell_transform,
    cells_of,
    frame_of,
    layer_by_key,
    lon_lat,
    read_grid,
    rgb_image,
    rounded,
    sibling,
)
from terraops.pipelines.scenes.cell_tables import observed_inputs
from terraops.pipelines.scenes.landcover_source import landcover_of_model
from terraops.pipelines.whatif.run import run_whatif
from terraops.services import get_service
from terraops.settings import Settings

HOT_SPOTS_SHOWN = 5
INTERVAL_LEVEL = 0.9
COOLED_K = 0.05
"""A cell counts as cooled by the plan below this Δ (K): beyond the models' numerical noise."""


def _predict(settings: Settings, scene_dir: Path, version: int | None) -> dict[str, Any]:
    """predict-raster with explanations and, when the model keeps them, intervals."""
    definition = get_service("uhi")
    try:
        return predict_raster(
            settings, definition, scene_dir, version=version, explain=True, interval=INTERVAL_LEVEL
        )
    except ConflictError:  # a model version without calibrated intervals
        return predict_raster(settings, definition, scene_dir, version=version, explain=True)


def _driver_grids(out: str) -> dict[str, np.ndarray]:
    return {
        driver.key: read_grid(sibling(out, f"why-{driver.key}.tif"))
        for driver in service_drivers("uhi").drivers
    }


def _hot_spots(
    frame: plans.SceneFrame,
    temperature: np.ndarray,
    intensity: np.ndarray,
    dominant: np.ndarray,
    drivers: dict[str, np.ndarray],
) -> tuple[float, list[Any], list[dict[str, Any]]]:
    """The map's hot-spot areas (largest first), with place, heat and drivers."""
    rule = get_service("uhi").map.areas[0]  # type: ignore[union-attr]
    threshold = float(rule.threshold(temperature))
    polygons = area_polygons(temperature, threshold, cell_transform(frame))
    legend = {c["code"]: c["key"] for c in driver_legend("uhi")}
    rows = []
    for rank, polygon in enumerate(polygons[:HOT_SPOTS_SHOWN], start=1):
        inside = cells_of(frame, polygon.geometry) & np.isfinite(temperature)
        codes = dominant[inside]
        codes = codes[np.isfinite(codes) & (codes != 255)].astype(int)
        top = int(np.bincount(codes).argmax()) if codes.size else 0
        rows.append(
            {
                "rank": rank,
                "area_ha": round(polygon.area_m2 / 1e4, 2),
                "mean_c": round(polygon.mean, 2),
                "max_c": round(polygon.max, 2),
                "intensity_k": rounded(np.nanmean(intensity[inside]), 2),
                "lon_lat": lon_lat(frame.crs, polygon.geometry),
                "dominant_driver": legend.get(top, "none"),
                "drivers_k": {
                    key: rounded(np.nanmean(grid[inside]), 2) for key, grid in drivers.items()
                },
            }
        )
    return threshold, [p.geometry for p in polygons[:HOT_SPOTS_SHOWN]], rows


def _dominant_shares(dominant: np.ndarray) -> dict[str, float]:
    filled = dominant[np.isfinite(dominant) & (dominant != 255)]
    total = max(filled.size, 1)
    return {
        c["key"]: round(float((filled == c["code"]).sum()) / total, 4) for c in driver_legend("uhi")
    }


def _plan(
    settings: Settings, scene: Any, frame: plans.SceneFrame, temperature: np.ndarray, model: Any
) -> tuple[list[plans.PlannedSite], dict[str, np.ndarray]]:
    """Street trees on the hottest streets and one hot paved lot made a park."""
    landcover = landcover_of_model(settings, model.params)
    observed = observed_inputs(scene, raster_io.read_layers(scene), landcover)
    streets = plans.street_tree_sites(frame, observed.landcover, temperature)
    park = plans.park_site(frame, observed.landcover, temperature, avoid=streets)
    return [*streets, *([park] if park else [])], dict(observed.bands)


def _by_kind(rows: list[dict[str, Any]], cell_ha: float) -> list[dict[str, Any]]:
    """Per kind of intervention: area, area-weighted mean Δ inside, cooling per hectare."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        kinds.setdefault(row["intervention"], []).append(row)
    out = []
    for kind, group in kinds.items():
        ha = sum(r["area_ha"] for r in group)
        rated = [r for r in group if r["mean_delta"] is not None]
        mean = sum(r["mean_delta"] * r["area_ha"] for r in rated) / ha if rated and ha else None
        inside_kha = -sum(r["mean_delta"] * r["cells_inside"] for r in rated) * cell_ha
        out.append(
            {
                "intervention": kind,
                "area_ha": round(ha, 2),
                "mean_delta": rounded(mean, 2),
                "cooling_per_ha": rounded(inside_kha / ha, 2) if ha else None,
            }
        )
    return out


def _cooling(rows: list[dict[str, Any]], delta: np.ndarray, cell_ha: float) -> dict[str, Any]:
    """Scene-wide cooling (K·ha) and cooling per hectare planted."""
    planted_ha = sum(r["area_ha"] for r in rows)
    finite = delta[np.isfinite(delta)]
    cooling_kha = -float(finite.sum()) * cell_ha
    cooled = finite < -COOLED_K
    return {
        "planted_ha": round(planted_ha, 2),
        "cooling_k_ha": round(cooling_kha, 2),
        "cooling_per_planted_ha": round(cooling_kha / planted_ha, 2) if planted_ha else None,
        "cooled_threshold_k": COOLED_K,
        "cells_cooled": int(cooled.sum()),
        "area_cooled_ha": round(float(cooled.sum()) * cell_ha, 2),
        "max_cooling_k": round(-float(finite.min()), 2) if finite.size else None,
    }


def gather_heat(settings: Settings, scene_dir: Path, *, version: int | None = None) -> Study:
    """Run everything the heat case study quotes (see the module doc)."""
    scene = raster_io.read_scene(Path(scene_dir))
    prediction = _predict(settings, Path(scene_dir), version)
    out = prediction["out"]
    frame = frame_of(scene, settings.cell_size_m)
    temperature = read_grid(out)
    intensity = read_grid(sibling(out, "intensity.tif"))
    dominant = read_grid(sibling(out, "why-dominant.tif"))
    drivers = _driver_grids(out)
    threshold, spot_shapes, spots = _hot_spots(frame, temperature, intensity, dominant, drivers)
    model = choose_model(settings, get_service("uhi"), prediction["model"]["version"])
    sites, bands = _plan(settings, scene, frame, temperature, model)
    document = plans.scenario_document(frame, sites)
    whatif = run_whatif(settings, "uhi", scene, json.dumps(document).encode(), model=model)
    body = whatif.to_json()
    delta = read_grid(layer_by_key(whatif.layers, "delta").path)
    cell_ha = frame.grid.cell_size**2 / 1e4
    finite_t = temperature[np.isfinite(temperature)]
    facts: dict[str, Any] = {
        "study": "heat",
        "scene": {
            "name": scene.name,
            "crs": scene.crs,
            "size_px": [scene.width, scene.height],
            "resolution_m": float(scene.resolution),
            "area_km2": round(scene.width * scene.height * float(scene.resolution) ** 2 / 1e6, 2),
            "synthetic": scene.has_layer("lst") and scene.has_layer("landcover"),
            "lon_lat": lon_lat(scene.crs, _scene_box(frame)),
        },
        "model": prediction["model"],
        "cell_size_m": frame.grid.cell_size,
        "cells": prediction["cells"],
        "evaluation": prediction.get("evaluation"),
        "temperature": {
            "mean_c": round(float(finite_t.mean()), 2),
            "p10_c": round(float(np.percentile(finite_t, 10)), 2),
            "p90_c": round(float(np.percentile(finite_t, 90)), 2),
            "max_c": round(float(finite_t.max()), 2),
            "hot_spot_threshold_c": round(threshold, 2),
            "rural_reference_c": rounded(np.nanmean(temperature - intensity), 2),
            "max_intensity_k": rounded(np.nanmax(intensity), 2),
        },
        "hot_spots": spots,
        "hot_spot_count": len(area_polygons(temperature, threshold, cell_transform(frame))),
        "dominant_driver_share": _dominant_shares(dominant),
        "interval": prediction.get("interval"),
        "plan": [
            {"id": s.id, "intervention": s.kind, "params": s.params, "chosen_at_c": s.score}
            for s in sites
        ],
        "whatif": body,
        "cooling": _cooling(body["interventions"], delta, cell_ha),
        "by_kind": _by_kind(body["interventions"], cell_ha),
        "spillover_100m_k": _spread(body["interventions"], "ring_100m_mean_delta"),
        "limitations": list(get_service("uhi").limitations),
        "layers": [layer["id"] for layer in prediction["layers"]] + body["layers"],
        "scenario": document,
    }
    return Study(
        facts=facts,
        grids={
            "temperature": temperature,
            "intensity": intensity,
            "dominant": dominant,
            "delta": delta,
            "rgb": rgb_image(bands, frame),
            **{f"why-{k}": v for k, v in drivers.items()},
        },
        shapes={"hot_spots": spot_shapes, "plan": [s.geometry for s in sites]},
        frame=frame,
    )


def _spread(rows: list[dict[str, Any]], key: str) -> list[float] | None:
    values = [r[key] for r in rows if r[key] is not None]
    return [round(min(values), 2), round(max(values), 2)] if values else None


def _scene_box(frame: plans.SceneFrame) -> Any:
    x0, y0 = frame.origin
    size = frame.grid.cell_size
    return box(x0, y0 - frame.grid.rows * size, x0 + frame.grid.cols * size, y0)
