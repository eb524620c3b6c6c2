"""Run a what-if: a scenario applied to a scene, predicted before and after, compared.

1. The scenario is validated against the scene first (nothing is read or
   written for a bad one).
2. The interventions edit the scene's *observed* inputs — the bands and the
   land cover the model's land-cover source classifies from them
   (:mod:`terraops.domain.whatif.interventions`) — and the one feature path
   recomputes what the edit can reach (:mod:`terraops.pipelines.whatif.recompute`).
3. The same model (the champion, or ``version``) predicts the moved cells
   before and after; Δ = after − before, exactly 0 on every other cell.
4. Per intervention: Δ inside, in the spillover rings, the interval of the
   mean Δ (the member models' spread, calibrated on counterfactual cities
   when the version was validated against them) and the drivers that moved it
   (:mod:`terraops.pipelines.whatif.summary`); for flood, per design storm,
   also the change of flooded area and of buildings exposed.
5. Δ COGs, the map after the scenario (for a before/after swipe) and the
   interventions' GeoJSON go to the catalogue with lineage.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rasterio.transform import Affine

from terraops.adapters import raster_io, tables
from terraops.adapters.catalogue import LayerCatalogue
from terraops.domain import features
from terraops.domain.landcover import LandCover
from terraops.domain.layers import Layer
from terraops.domain.whatif.interventions import EditedInputs, apply_interventions
from terraops.domain.whatif.scenario import Scenario, ScenarioLimits, parse_scenario, rasterise
from terraops.errors import InvalidInputError
from terraops.pipelines.lifecycle.card_whatif import read_effect_calibration
from terraops.pipelines.maps.raster_predict import ModelChoice, check_params, choose_model
from terraops.pipelines.progress import status_line
from terraops.pipelines.scenes.cell_tables import ensure_cell_table, observed_inputs
from terraops.pipelines.scenes.landcover_source import LandcoverSource, landcover_of_model
from terraops.pipelines.whatif import layers as whatif_layers
from terraops.pipelines.whatif.predict import DeltaGrids, after_grid, predict_deltas
from terraops.pipelines.whatif.recompute import changed_cells
from terraops.pipelines.whatif.report import intervention_rows, storm_totals
from terraops.services import get_service
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings


@dataclass
class WhatIfResult:
    """A what-if's answer: the JSON the CLI and the API return, and where time went."""

    scenario: str
    service: str
    scene: str
    model: dict[str, Any]
    interventions: list[dict[str, Any]]
    layers: list[Layer]
    unit: str
    storms: list[dict[str, Any]] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "scenario": self.scenario,
            "service": self.service,
            "scene": self.scene,
            "model": self.model,
            "interventions": self.interventions,
            "layers": [layer.id for layer in self.layers],
            "unit": self.unit,
        }
        if self.storms:
            body["storms"] = self.storms
        return body


def scene_bounds(scene: Any) -> tuple[float, float, float, float]:
    """The scene's (minx, miny, maxx, maxy) in its own CRS."""
    x0, y0 = scene.origin
    res = float(scene.resolution)
    return (x0, y0 - scene.height * res, x0 + scene.width * res, y0)


def parse_for_scene(
    scene: Any, scenario_document: bytes | str | Mapping[str, Any], limits: ScenarioLimits | None
) -> Scenario:
    """The scenario validated against the scene (raises InvalidScenarioError)."""
    return parse_scenario(
        scenario_document, scene_crs=scene.crs, scene_bounds=scene_bounds(scene), limits=limits
    )


def whatif_service(service: str) -> ServiceDefinition:
    """A service that can answer a what-if: one with a map (a raster the Δ is drawn on)."""
    definition = get_service(service)
    if definition.map is None:
        raise InvalidInputError(f"service {service!r} has no maps, so no what-if")
    return definition


def run_whatif(
    settings: Settings,
    service: str,
    scene: Any,
    scenario_document: bytes | str | Mapping[str, Any],
    *,
    params: Mapping[str, float] | None = None,
    version: int | None = None,
    progress: bool = False,
    out_dir: Path | None = None,
    limits: ScenarioLimits | None = None,
    model: ModelChoice | None = None,
) -> WhatIfResult:
    """Apply a scenario to ``scene`` and compare the model's answer before and after.

    ``model``: an already loaded :func:`choose_model` answer (a server keeps
    one per version instead of loading the model on every request); by
    default the champion, or ``version``, is loaded here.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock, 4)
        clock = now

    definition = whatif_service(service)
    checked = check_params(definition, params or {})
    scenario = parse_for_scene(scene, scenario_document, limits)
    with status_line(progress, f"whatif {service}") as say:
        say("loading the model")
        if model is None:
            model = choose_model(settings, definition, version)
        landcover = landcover_of_model(settings, model.params)
        calibration = read_effect_calibration(settings, model.run_id)
        lap("model")
        say("reading the scene")
        layers = raster_io.read_layers(scene)
        observed = observed_inputs(scene, layers, landcover)
        baseline = _baseline_table(scene, settings, landcover)
        lap("read")
        say("editing the inputs and recomputing features")
        res = float(scene.resolution)
        masks = rasterise(scenario, shape=scene.shape, origin=scene.origin, resolution=res)
        edited = apply_interventions(
            observed.bands,
            observed.landcover,
            scenario,
            masks,
            resolution=res,
            footprints=building_footprints(layers),
        )
        edited = replace(
            edited,
            landcover=reobserved_landcover(
                landcover.for_resolution(res), observed.landcover, edited
            ),
        )
        cells = changed_cells(
            baseline,
            observed,
            edited.bands,
            edited.landcover,
            edited.changed,
            names=list(model.predictor.feature_names),
            cell_size_m=settings.cell_size_m,
        )
        grid = features.cell_grid(scene.shape, res, settings.cell_size_m)
        lap("features")
        say(f"predicting {len(cells.rows)} changed cells")
        deltas = predict_deltas(definition, model, cells, baseline, grid, checked)
        rows = intervention_rows(
            definition,
            model,
            scenario,
            masks,
            grid,
            deltas,
            observed.landcover,
            edited.buildings_landcover(observed.landcover),
            calibration=calibration,
        )
        lap("predict")
        say("writing the Δ layers")
        written = _write(
            settings,
            definition,
            model,
            scene,
            scenario,
            checked,
            deltas,
            baseline,
            rows,
            grid,
            out_dir,
        )
        lap("write")
    return WhatIfResult(
        scenario=scenario.sha256,
        service=service,
        scene=scene.name,
        model={"name": model.name, "version": model.version},
        interventions=rows,
        layers=written,
        unit=deltas.unit,
        storms=storm_totals(
            deltas, grid, observed.landcover, edited.buildings_landcover(observed.landcover)
        ),
        timings_s=timings,
    )


REOBSERVED_MARGIN_PX = 32
"""Pixels of context around the edit's rim given to the classification (the U-Net's view)."""


def reobserved_landcover(
    source: LandcoverSource, before: np.ndarray, edited: EditedInputs
) -> np.ndarray:
    """The edited land cover, with the pixels beside an edit as the classification sees them.

    The sensor's blur carries an edit onto its neighbours (a dark lane between
    roofs planted with grass turns greener), and the classification the
    model was trained on then calls some of them otherwise, as it would on
    the counterfactual city's imagery. The pixels the edit set keep their
    class; only those it moved through the blur are classified again, on a
    window around them.
    """
    rim = edited.changed & ~edited.roofs & (edited.landcover == before)
    if not rim.any():
        return edited.landcover
    rows, cols = np.nonzero(rim)
    pad = REOBSERVED_MARGIN_PX
    window = (
        slice(max(int(rows.min()) - pad, 0), int(rows.max()) + pad + 1),
        slice(max(int(cols.min()) - pad, 0), int(cols.max()) + pad + 1),
    )
    classified = source.classify({b: v[window] for b, v in edited.bands.items()})
    out = edited.landcover.copy()
    out[window] = np.where(rim[window], classified, out[window])
    return out


FOOTPRINT_LAYERS = ("buildings", "landcover")
"""Layers a scene may carry its building footprints in: ``buildings`` (non-zero: a
building), or a ``landcover`` layer in terraops' legend (its ``building`` class)."""


def building_footprints(layers: Mapping[str, Any]) -> Any:
    """The building footprints the scene carries (bool), or None.

    A roof intervention repaints the roofs inside its polygon. From imagery
    alone a dark bitumen roof looks like asphalt, so where the scene brings
    its footprints (a cadastre, OpenStreetMap; the synthetic cities' land
    cover) the roofs come from them too; otherwise only from the land cover
    classified from the imagery (the rules, or the segmentation model).
    """
    if "buildings" in layers:
        return layers["buildings"] != 0
    if "landcover" in layers:
        return layers["landcover"] == int(LandCover.BUILDING)
    return None


def _baseline_table(scene: Any, settings: Settings, landcover: Any) -> pd.DataFrame:
    """The scene's cell table (built and cached first if needed): the *before* inputs."""
    cached = ensure_cell_table(scene, settings.cell_size_m, landcover=landcover)
    return tables.read_parquet_table(cached) if isinstance(cached, Path) else cached


def _write(
    settings: Settings,
    definition: ServiceDefinition,
    model: ModelChoice,
    scene: Any,
    scenario: Scenario,
    params: Mapping[str, float],
    deltas: DeltaGrids,
    baseline: pd.DataFrame,
    rows: list[dict[str, Any]],
    grid: features.CellGrid,
    out_dir: Path | None,
) -> list[Layer]:
    """Δ COGs (one per storm for flood), the map after the scenario and the
    interventions' GeoJSON, in the catalogue."""
    assert definition.map is not None
    x0, y0 = scene.origin
    ctx = whatif_layers.context(
        service=definition.name,
        group=definition.map.group,
        model=model.lineage,
        scene=scene.name,
        scene_dir=Path(scene.folder),
        scenario_sha256=scenario.sha256,
        params=params,
        crs=scene.crs,
        transform=Affine(grid.cell_size, 0.0, x0, 0.0, -grid.cell_size, y0),
        out_dir=Path(out_dir) if out_dir else settings.layers_dir,
    )
    written = [
        whatif_layers.delta_layer(ctx, key=key, title=title, unit=deltas.unit, delta=values)
        for key, title, values in deltas.layers()
    ]
    written.append(
        whatif_layers.after_layer(
            ctx,
            title=definition.map.title,
            unit=definition.prediction_unit,
            values=after_grid(model, baseline, grid, deltas, params),
            style=definition.map.prediction,
        )
    )
    geometries = [i.geometry for i in scenario.interventions]
    written.append(whatif_layers.interventions_layer(ctx, geometries, rows, deltas.unit))
    LayerCatalogue(settings.layers_dir).add(*written)
    return written


__all__ = [
    "FOOTPRINT_LAYERS",
    "WhatIfResult",
    "building_footprints",
    "parse_for_scene",
    "run_whatif",
    "scene_bounds",
    "whatif_service",
]
