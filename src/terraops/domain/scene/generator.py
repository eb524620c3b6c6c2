"""Seed → city: terrain, layout, imagery, and the two physical targets.

The order matters and is fixed: terrain first (the river decides where the
city can be), then the layout around the water, the imagery of that layout,
and finally the targets computed from the *true* surface — LST from the
noise-free reflectance, flood depth from the stored (float32) DEM and land
cover, so that recomputing the flood from the files gives the same depths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from terraops.domain.hydrology import (
    DESIGN_STORMS_MM,
    RiverInflow,
    build_flood_model,
)
from terraops.domain.landcover import CURVE_NUMBER_SOIL_B
from terraops.domain.scene.counterfactual import counterfactual_layout
from terraops.domain.scene.layout import make_layout
from terraops.domain.scene.lst import PHYSICS_SUMMARY, LSTPhysics, land_surface_temperature
from terraops.domain.scene.spec import GENERATOR_VERSION, SceneSpec
from terraops.domain.scene.spectra import BANDS, RoofPalette, render_imagery
from terraops.domain.scene.terrain import make_terrain
from terraops.domain.whatif.scenario import Scenario, rasterise

REFLECTANCE_SCALE = 10_000
"""Stored reflectance = round(reflectance × 10 000) as uint16 (Sentinel-2 L2A style)."""
REFLECTANCE_NODATA = 0
UTM_EPSG = 32633  # WGS 84 / UTM zone 33N (Central Europe, ~12–18° E)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GeneratedScene:
    spec: SceneSpec
    layers: dict[str, np.ndarray]  # name → array as stored (dtype included)
    epsg: int
    origin: tuple[float, float]  # top-left corner (x, y), metres
    inflow: RiverInflow
    physics: LSTPhysics
    stats: dict[str, Any] = field(default_factory=dict)
    scenario: Scenario | None = None
    """The interventions this counterfactual city carries (``None``: the city as drawn)."""

    @property
    def reference_c(self) -> float:
        """The day's rural background LST (°C): drawn, or the spec's override."""
        return self.physics.reference_c


def to_scaled_reflectance(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance (0–1) → uint16 × 10 000, never 0 (0 is no-data)."""
    scaled = np.round(np.clip(reflectance, 0.0, 6.5) * REFLECTANCE_SCALE)
    stored: np.ndarray = np.maximum(scaled, 1).astype(np.uint16)
    return stored


def to_scaled_reflectance_or_nodata(reflectance: np.ndarray) -> np.ndarray:
    """Imported reflectance → uint16 × 10 000 clipped to [1, 65535]; NaN → 0 (no data)."""
    valid = np.isfinite(reflectance)
    scaled = np.clip(np.round(np.where(valid, reflectance, 0.0) * REFLECTANCE_SCALE), 1, 65535)
    stored: np.ndarray = np.where(valid, scaled, REFLECTANCE_NODATA).astype(np.uint16)
    return stored


STREAMS: tuple[str, ...] = ("georef", "terrain", "layout", "imagery", "lst", "physics", "roofs")
"""The random streams of a scene. New ones go at the end: the streams before
them (and so the layout and imagery of every seed) stay as they were."""


def scene_physics(spec: SceneSpec) -> LSTPhysics:
    """The city's LST coefficients: drawn from its own stream, or the nominal ones.

    Cheap (no pixels), so tests and reports can look at many cities' physics.
    Drawn even when the spec overrides the temperature, so that the override
    changes the temperature only.
    """
    if spec.physics == "nominal":
        physics = LSTPhysics.nominal()
    else:
        physics = LSTPhysics.draw(spec.rngs(*STREAMS)["physics"])
    if spec.reference_temperature_c is not None:
        physics = physics.with_reference(spec.reference_temperature_c)
    return physics


def scene_origin(spec: SceneSpec) -> tuple[float, float]:
    """The scene's top-left corner (x, y) in UTM 33N, drawn from its own stream.

    Cheap (no pixels): a scenario for the city can be checked against its
    bounds before anything is generated.
    """
    georef = spec.rngs(*STREAMS)["georef"]
    return (
        float(300_000 + 1000 * int(georef.integers(0, 300))),
        float(5_500_000 + 1000 * int(georef.integers(0, 500))),
    )


def scene_bounds(spec: SceneSpec) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of the scene in ``EPSG:{UTM_EPSG}``."""
    x0, y0 = scene_origin(spec)
    return (x0, y0 - spec.extent_m, x0 + spec.extent_m, y0)


def true_landcover(spec: SceneSpec) -> np.ndarray:
    """The city's true land cover as drawn (terrain and layout only: no imagery, no physics).

    What a scenario drawn for the city places its interventions on
    (:mod:`terraops.domain.scene.training_scenarios`).
    """
    rngs = spec.rngs(*STREAMS)
    terrain = make_terrain(spec, rngs["terrain"])
    return make_layout(spec, rngs["layout"], terrain).landcover


def generate(
    spec: SceneSpec,
    progress: Progress | None = None,
    *,
    physics: LSTPhysics | None = None,
    scenario: Scenario | None = None,
) -> GeneratedScene:
    """Make every layer of one scene (pure: no files).

    ``physics`` replaces the spec's LST coefficients (a what-if: the same city,
    same imagery and noise, other physics; in memory only, since the spec and
    so the scene's name do not record it); by default they come from
    :func:`scene_physics`. ``scenario`` (parsed against :func:`scene_bounds`)
    renders the counterfactual city: its interventions applied to the true
    layout, every random draw as without it
    (:mod:`terraops.domain.scene.counterfactual`).
    """
    say = progress or (lambda _msg: None)
    rngs = spec.rngs(*STREAMS)
    say("terrain")
    terrain = make_terrain(spec, rngs["terrain"])
    say("layout")
    layout = make_layout(spec, rngs["layout"], terrain)
    origin = scene_origin(spec)
    roof_override = None
    if scenario is not None:
        say("scenario")
        masks = rasterise(
            scenario, shape=layout.landcover.shape, origin=origin, resolution=spec.resolution
        )
        layout, roof_override = counterfactual_layout(
            layout, scenario, masks, resolution=spec.resolution
        )
    say("imagery")
    palette = RoofPalette.draw(rngs["roofs"], int(layout.object_id.max()) + 1)
    imagery = render_imagery(
        rngs["imagery"], layout, spec.resolution, roof_override=roof_override, palette=palette
    )
    if physics is None:
        physics = scene_physics(spec)
    say("land-surface temperature")
    lst = land_surface_temperature(
        rngs["lst"],
        physics=physics,
        true_reflectance=imagery.true,
        landcover=layout.landcover,
        shadow=imagery.shadow,
        dem=terrain.dem.astype(np.float64),
        sea=terrain.sea,
        resolution=spec.resolution,
    )
    say("flood")
    inflow = RiverInflow(
        row=terrain.inflow_row,
        col=terrain.inflow_col,
        area_km2=round(terrain.inflow_area_km2, 3),
        curve_number=round(terrain.inflow_curve_number, 2),
    )
    flood = build_flood_model(
        terrain.dem.astype(np.float64), layout.landcover, spec.resolution, inflow=inflow
    )
    depth = flood.depth(spec.rainfall_mm)
    layers: dict[str, np.ndarray] = {b: to_scaled_reflectance(imagery.observed[b]) for b in BANDS}
    layers.update(
        dem=terrain.dem,
        landcover=layout.landcover,
        lst=lst,
        flood_depth=depth,
    )
    stats = {
        "flooded_fraction": round(float((depth >= 0.1).mean()), 4),
        "lst_min_c": round(float(lst.min()), 2),
        "lst_max_c": round(float(lst.max()), 2),
    }
    return GeneratedScene(spec, layers, UTM_EPSG, origin, inflow, physics, stats, scenario)


def physics_block(scene: GeneratedScene) -> dict[str, Any]:
    """The relationships used, for the manifest (what a reader needs to trust the data)."""
    return {
        **PHYSICS_SUMMARY,
        "lst_physics": scene.spec.physics,
        "lst_coefficients": scene.physics.record(),
        "lst_reference_c": round(scene.reference_c, 3),
        "flood_runoff": "SCS curve number, Q=(P-0.2S)^2/(P+0.8S), S=25400/CN-254 mm "
        "(USDA TR-55, soil group B)",
        "flood_curve_numbers": {k.name.lower(): v for k, v in CURVE_NUMBER_SOIL_B.items()},
        "flood_routing": "priority-flood fill (Barnes 2014), D8, flow accumulation",
        "flood_stage": "d = 0.3 Q^0.4 (Leopold & Maddock 1953), stage = d(Qb+Qp) - d(Qb)",
        "flood_inundation": "HAND-FIM: depth = stage - HAND (Nobre 2011; Zheng 2018)",
        "river_inflow": {
            "row": scene.inflow.row,
            "col": scene.inflow.col,
            "area_km2": scene.inflow.area_km2,
            "curve_number": scene.inflow.curve_number,
        },
        "design_storms_mm": list(DESIGN_STORMS_MM),
    }


__all__ = [
    "GENERATOR_VERSION",
    "REFLECTANCE_NODATA",
    "REFLECTANCE_SCALE",
    "STREAMS",
    "GeneratedScene",
    "generate",
    "physics_block",
    "scene_bounds",
    "scene_origin",
    "scene_physics",
    "true_landcover",
]
