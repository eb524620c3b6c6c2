"""Per-intervention rows and per-storm totals of a what-if (the JSON's numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from terraops.domain import features
from terraops.domain.explain import driver_contributions
from terraops.domain.landcover import LandCover
from terraops.domain.whatif.scenario import Intervention, Scenario
from terraops.errors import ConflictError
from terraops.pipelines.maps.raster_predict import ModelChoice
from terraops.pipelines.whatif.predict import DeltaGrids, StormDelta
from terraops.pipelines.whatif.summary import (
    CALIBRATED,
    MEMBER_SPREAD,
    EffectCalibration,
    Regions,
    delta_stats,
    driver_deltas,
    member_interval,
    regions,
)
from terraops.services.base import ServiceDefinition

FLOOD_THRESHOLD = 0.5
"""A cell counts as flooded at this probability (the flood service's decision threshold)."""

NO_MEMBERS = (
    "this model version keeps no leave-one-city-out member models, so the mean Δ has no "
    "interval; train a new version to get one"
)


def building_pixels(landcover: np.ndarray, grid: features.CellGrid) -> np.ndarray:
    """Building pixels per cell of a land-cover layer."""
    share = features.cell_mean(grid, landcover == int(LandCover.BUILDING))
    return np.rint(share * grid.factor**2).astype(np.int64)


def _positions(deltas: DeltaGrids, grid: features.CellGrid) -> np.ndarray:
    """(rows, cols) → index of the cell among the moved cells (−1: not moved)."""
    index = np.full((grid.rows, grid.cols), -1, np.int64)
    index[deltas.rows, deltas.cols] = np.arange(len(deltas.rows))
    return index


def _interval(
    model: ModelChoice, storm: StormDelta, moved: np.ndarray, n_cells: int, centre: float | None
) -> tuple[list[float] | None, str | None]:
    """The mean Δ's interval from the member models (see summary), or why there is none."""
    predictor = model.predictor
    if not getattr(predictor, "has_uncertainty", False):
        return None, NO_MEMBERS
    try:
        before = predictor.member_predict(storm.inputs_before[moved])
        after = predictor.member_predict(storm.inputs_after[moved])
    except ConflictError:
        return None, NO_MEMBERS
    if centre is None:
        return None, None
    interval = member_interval(after - before, n_cells, centre)
    return (list(interval) if interval else None), None


def _interval_fields(
    kind: str,
    centre: float | None,
    members: list[float] | None,
    calibration: EffectCalibration | None,
) -> dict[str, Any]:
    """The row's interval of the mean Δ and how it was derived (see summary's module doc).

    Calibrated on counterfactual cities when the model version carries a
    calibration for the intervention's group; else the member spread alone,
    said to be uncalibrated.
    """
    fields: dict[str, Any] = {
        "mean_delta_interval": members,
        "mean_delta_member_interval": members,
        "interval_method": MEMBER_SPREAD,
    }
    if calibration is None or members is None or centre is None:
        return fields
    calibrated = calibration.interval(kind, centre, (members[0], members[1]))
    if calibrated is not None:
        fields["mean_delta_interval"] = list(calibrated)
        fields["interval_method"] = CALIBRATED
        fields["interval_calibration_cases"] = calibration.n_cases
    return fields


def _drivers(
    service: str, model: ModelChoice, storm: StormDelta, moved: np.ndarray, n_cells: int
) -> list[dict[str, Any]]:
    """Δ of each driver's contribution, averaged inside (largest first)."""
    names = list(model.predictor.feature_names)
    if not moved.size:
        return driver_deltas([], np.zeros((0, 0)), np.zeros((0, 0)), 0)
    before = model.predictor.explain(storm.inputs_before[moved]).contributions
    after = model.predictor.explain(storm.inputs_after[moved]).contributions
    keys, before_drivers = driver_contributions(before, names, service)
    _, after_drivers = driver_contributions(after, names, service)
    return driver_deltas(keys, before_drivers, after_drivers, n_cells)


def _storm_effect(
    deltas: DeltaGrids,
    storm: StormDelta,
    moved: np.ndarray,
    cell_area_m2: float,
    buildings: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """Δ flooded area (ha) and Δ buildings exposed among the ``moved`` cells (their indices).

    Only moved cells can change: the others keep their inputs, so their
    probability, and their land cover, so their buildings.
    """
    rows, cols = deltas.rows[moved], deltas.cols[moved]
    before = storm.before[moved] >= FLOOD_THRESHOLD
    after = storm.after[moved] >= FLOOD_THRESHOLD
    exposed_before = int(buildings[0][rows, cols][before].sum())
    exposed_after = int(buildings[1][rows, cols][after].sum())
    return {
        "rainfall_mm": storm.rainfall_mm,
        "mean_delta": None,
        "flooded_area_delta_ha": round(float(after.sum() - before.sum()) * cell_area_m2 / 1e4, 4),
        "buildings_exposed_delta": exposed_after - exposed_before,
    }


def _moved_in(position: np.ndarray, where: np.ndarray) -> np.ndarray:
    selected = position[where]
    return selected[selected >= 0]


def _row(
    definition: ServiceDefinition,
    model: ModelChoice,
    intervention: Intervention,
    region: Regions,
    deltas: DeltaGrids,
    position: np.ndarray,
    cell_area_m2: float,
    buildings: tuple[np.ndarray, np.ndarray],
    calibration: EffectCalibration | None,
) -> dict[str, Any]:
    storm = deltas.storms[deltas.primary]
    inside = region.inside & np.isfinite(storm.delta)
    n_inside = int(inside.sum())
    moved_inside = _moved_in(position, inside)
    stats = delta_stats(storm.delta, region)
    interval, note = _interval(model, storm, moved_inside, n_inside, stats["mean_delta"])
    row: dict[str, Any] = {
        "id": intervention.id,
        "intervention": intervention.kind,
        "params": dict(intervention.params),
        "area_ha": round(intervention.area_m2 / 1e4, 4),
        "cells_inside": n_inside,
        **stats,
        **_interval_fields(intervention.kind, stats["mean_delta"], interval, calibration),
    }
    if note:
        row["interval_note"] = note
    row["drivers"] = _drivers(definition.name, model, storm, moved_inside, n_inside)
    if storm.rainfall_mm is not None:
        row["rainfall_mm"] = storm.rainfall_mm
        near = _moved_in(position, region.near)
        row["storms"] = []
        for each in deltas.storms:
            effect = _storm_effect(deltas, each, near, cell_area_m2, buildings)
            effect["mean_delta"] = delta_stats(each.delta, region)["mean_delta"]
            row["storms"].append(effect)
    return row


def intervention_rows(
    definition: ServiceDefinition,
    model: ModelChoice,
    scenario: Scenario,
    masks: Sequence[np.ndarray],
    grid: features.CellGrid,
    deltas: DeltaGrids,
    landcover_before: np.ndarray,
    landcover_after: np.ndarray,
    calibration: EffectCalibration | None = None,
) -> list[dict[str, Any]]:
    """One row per intervention (the JSON's ``interventions``), in scenario order.

    Interventions are applied together; a row's numbers are the scenario's
    effect seen from that polygon (its inside and rings), so two neighbouring
    polygons each see part of the other's spillover. ``calibration``: the
    model version's interval calibration against counterfactual cities, if any.
    """
    position = _positions(deltas, grid)
    buildings = (building_pixels(landcover_before, grid), building_pixels(landcover_after, grid))
    return [
        _row(
            definition,
            model,
            intervention,
            regions(mask, grid),
            deltas,
            position,
            grid.cell_size**2,
            buildings,
            calibration,
        )
        for intervention, mask in zip(scenario.interventions, masks, strict=True)
    ]


def storm_totals(
    deltas: DeltaGrids,
    grid: features.CellGrid,
    landcover_before: np.ndarray,
    landcover_after: np.ndarray,
) -> list[dict[str, Any]]:
    """Whole-scene Δ flooded area and buildings exposed per storm ([] without storms)."""
    if deltas.storms[0].rainfall_mm is None:
        return []
    buildings = (building_pixels(landcover_before, grid), building_pixels(landcover_after, grid))
    everywhere = np.arange(len(deltas.rows))
    totals = []
    for storm in deltas.storms:
        effect = _storm_effect(deltas, storm, everywhere, grid.cell_size**2, buildings)
        finite = storm.delta[np.isfinite(storm.delta)]
        effect["mean_delta"] = round(float(finite.mean()), 6) if finite.size else None
        totals.append(effect)
    return totals
