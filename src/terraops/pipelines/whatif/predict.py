"""The moved cells predicted before and after by one model → Δ grids (one per storm for flood)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from terraops.domain import features
from terraops.domain.hydrology import DESIGN_STORMS_MM
from terraops.errors import InvalidInputError
from terraops.pipelines.maps.raster_predict import ModelChoice
from terraops.pipelines.whatif.recompute import ChangedCells
from terraops.services.base import ServiceDefinition

RAINFALL = "rainfall_mm"


@dataclass(frozen=True)
class StormDelta:
    """One Δ grid and the moved cells' inputs and predictions behind it.

    ``rainfall_mm`` is None for a service without storms (UHI).
    """

    rainfall_mm: float | None
    delta: np.ndarray
    before: np.ndarray
    after: np.ndarray
    inputs_before: np.ndarray
    inputs_after: np.ndarray


@dataclass(frozen=True)
class DeltaGrids:
    """Δ of every storm on the scene's cell grid, for the moved cells ``rows``/``cols``."""

    service: str
    unit: str
    rows: np.ndarray
    cols: np.ndarray
    storms: tuple[StormDelta, ...]
    primary: int
    """Index of the storm whose Δ the per-intervention headline numbers report."""

    def layers(self) -> Iterator[tuple[str, str, np.ndarray]]:
        """(key, title, grid) of each Δ layer."""
        for storm in self.storms:
            if storm.rainfall_mm is None:
                yield "delta", f"What-if Δ ({self.unit})", storm.delta
            else:
                key = f"delta-p{storm.rainfall_mm:g}"
                yield key, f"What-if Δ flood probability, {storm.rainfall_mm:g} mm", storm.delta


def delta_unit(definition: ServiceDefinition) -> str:
    """The unit of a Δ: a difference of °C is K; a probability stays a probability."""
    unit = definition.prediction_unit
    return "K" if unit in ("°C", "degC", "K") else unit


def storms_of(
    definition: ServiceDefinition, params: Mapping[str, float]
) -> tuple[list[float | None], int]:
    """The storms to compare (the given one, else every design storm) and the headline one."""
    if RAINFALL not in definition.feature_names:
        return [None], 0
    if RAINFALL in params:
        return [float(params[RAINFALL])], 0
    storms: list[float | None] = [float(s) for s in DESIGN_STORMS_MM]
    typical = float(definition.feature(RAINFALL).example)
    return storms, storms.index(typical) if typical in storms else len(storms) // 2


def model_inputs(table: pd.DataFrame, names: list[str], params: Mapping[str, float]) -> np.ndarray:
    """The rows' inputs in the model's column order (``params`` set whole columns)."""
    missing = [n for n in names if n not in table.columns and n not in params]
    if missing:
        raise InvalidInputError(
            f"the model needs {', '.join(missing)}, which the scene does not provide",
            hint="give them as parameters: " + " ".join(f"--param {n}=VALUE" for n in missing),
        )
    columns = [
        np.full(len(table), params[n]) if n in params else table[n].to_numpy(np.float64)
        for n in names
    ]
    return np.column_stack(columns).astype(np.float64) if columns else np.zeros((len(table), 0))


def _zero_grid(baseline: pd.DataFrame, grid: features.CellGrid) -> np.ndarray:
    """0 on every cell the scene has (nothing changed there), NaN where it has none."""
    values = np.full((grid.rows, grid.cols), np.nan)
    values[baseline["row"].to_numpy(), baseline["col"].to_numpy()] = 0.0
    return values


def predict_deltas(
    definition: ServiceDefinition,
    model: ModelChoice,
    cells: ChangedCells,
    baseline: pd.DataFrame,
    grid: features.CellGrid,
    params: Mapping[str, float],
) -> DeltaGrids:
    """Predict the moved cells before and after with the same model, for every storm."""
    names = list(model.predictor.feature_names)
    zero = _zero_grid(baseline, grid)
    storms, primary = storms_of(definition, params)
    results = []
    for rainfall in storms:
        storm_params = {**params, **({RAINFALL: rainfall} if rainfall is not None else {})}
        x_before = model_inputs(cells.before, names, storm_params)
        x_after = model_inputs(cells.after, names, storm_params)
        before = model.predictor.predict(x_before) if len(x_before) else np.zeros(0)
        after = model.predictor.predict(x_after) if len(x_after) else np.zeros(0)
        delta = zero.copy()
        delta[cells.rows, cells.cols] = after - before
        results.append(StormDelta(rainfall, delta, before, after, x_before, x_after))
    return DeltaGrids(
        definition.name, delta_unit(definition), cells.rows, cells.cols, tuple(results), primary
    )


def after_grid(
    model: ModelChoice,
    baseline: pd.DataFrame,
    grid: features.CellGrid,
    deltas: DeltaGrids,
    params: Mapping[str, float],
) -> np.ndarray:
    """The headline storm's prediction of every cell *after* the scenario.

    The map's before/after swipe needs the whole map, not only the moved
    cells: every cell is predicted from the scene's own table (the *before*),
    and the moved cells take their *after* value — the same model and inputs
    that made the Δ, so after − before is exactly the Δ layer.
    """
    storm = deltas.storms[deltas.primary]
    storm_params = {**params, **({RAINFALL: storm.rainfall_mm} if storm.rainfall_mm else {})}
    names = list(model.predictor.feature_names)
    values = np.full((grid.rows, grid.cols), np.nan)
    if len(baseline):
        rows, cols = baseline["row"].to_numpy(), baseline["col"].to_numpy()
        values[rows, cols] = model.predictor.predict(model_inputs(baseline, names, storm_params))
    values[deltas.rows, deltas.cols] = storm.after
    return values
