"""Urban heat island (UHI) service: land-surface temperature of a 20 m cell.

Inputs are what a planner can read off a map or change in a scenario: how
green (NDVI, tree cover), how built (building density, NDBI, impervious
share), how bright (albedo), how far from water, how high, and the
neighbourhood (sealed share within ~500 m, tree canopy within ~200 m: the
scales at which the surface heat island and park cooling act). The three legacy
fields ``ndvi``, ``building_density`` and ``water_distance`` are required (the
original API request keeps working); everything else is optional and the
model was trained to use what it is given (missing-value augmentation).

Why LightGBM (``LGBMRegressor``) and not scikit-learn's HistGradientBoosting:
- serving speed: one-row ``booster.predict(X, num_threads=1)`` ≈ 27 µs against
  ≈ 1.3 ms for HGB's Python loop over trees (measured on the 2-core target
  machine) — the whole 1.5 ms p95 budget would go to HGB alone;
- native missing values: a NaN follows the split's learned default branch,
  which is how optional request fields are served without imputation;
- monotone constraints: physics we are sure of (more vegetation never makes a
  cell hotter, all else equal) is enforced, so "what-if" scenarios can never
  show planting trees as warming.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from terraops.domain.metrics import regression_metrics
from terraops.domain.rural_reference import percentile_threshold, rural_reference
from terraops.services.base import (
    ID_COLUMNS,
    SLO,
    AreaRule,
    DerivedRaster,
    Feature,
    MapSpec,
    RasterStyle,
    ServiceDefinition,
)
from terraops.services.lightgbm_models import BASE_PARAMS, lightgbm_factory

if TYPE_CHECKING:
    import pandas as pd

FEATURES: tuple[Feature, ...] = (
    Feature(
        "ndvi", "1", "Normalised difference vegetation index (NIR−red)/(NIR+red)", -1.0, 1.0, 0.5
    ),
    Feature(
        "building_density", "fraction", "Share of the cell covered by buildings", 0.0, 1.0, 0.7
    ),
    Feature(
        "water_distance",
        "m",
        "Distance from the cell centre to the nearest open water",
        0.0,
        50_000.0,
        1000.0,
    ),
    Feature(
        "ndbi",
        "1",
        "Normalised difference built-up index (SWIR−NIR)/(SWIR+NIR)",
        -1.0,
        1.0,
        0.1,
        required=False,
    ),
    Feature("albedo", "fraction", "Broadband surface albedo", 0.0, 1.0, 0.15, required=False),
    Feature(
        "tree_cover",
        "fraction",
        "Share of the cell under tree canopy",
        0.0,
        1.0,
        0.1,
        required=False,
    ),
    Feature(
        "imperviousness",
        "fraction",
        "Share of the cell sealed (buildings + roads)",
        0.0,
        1.0,
        0.8,
        required=False,
    ),
    Feature(
        "water_fraction",
        "fraction",
        "Share of the cell that is open water",
        0.0,
        1.0,
        0.0,
        required=False,
    ),
    Feature(
        "elevation", "m", "Terrain height above sea level", -100.0, 9000.0, 40.0, required=False
    ),
    Feature(
        "imperviousness_500m",
        "fraction",
        "Sealed share of the surroundings: gaussian-weighted mean imperviousness "
        "(σ = 150 m, out to 500 m)",
        0.0,
        1.0,
        0.6,
        required=False,
    ),
    Feature(
        "tree_cover_200m",
        "fraction",
        "Tree canopy share of the surroundings: gaussian-weighted mean tree cover "
        "(σ = 60 m, out to 200 m)",
        0.0,
        1.0,
        0.15,
        required=False,
    ),
    Feature(
        "reference_temperature",
        "°C",
        "The day's rural background land-surface temperature: the median LST of the "
        "scene's vegetated cells in the least-sealed quarter of surroundings. The model "
        "predicts LST relative to it and adds it back; when not given, the training data's "
        "mean stands in (a typical day)",
        -30.0,
        70.0,
        32.0,
        required=False,
    ),
)

#: Signs of effects physics fixes, enforced as LightGBM monotone constraints:
#: vegetation cools −0.6 to −0.9 K per +0.1 NDVI and trees cool their
#: surroundings (Schwaab et al. 2021), so more vegetation in the cell or trees
#: in its neighbourhood never warm it; a more sealed neighbourhood never cools it
#: (the surface heat island, Peng et al. 2012).
#: Albedo is left free although physics fixes its sign too (a brighter surface is never
#: hotter): constrained, the model trained on the benchmark's three cities answered a
#: +0.1 albedo with 7 % more cooling (−1.43 vs −1.34 K on built cells) but its spatial-CV
#: MAE grew from 0.450 to 0.459 K and its leave-one-city-out MAE from 0.91 to 0.93 K. What
#: under-states a cool roof is not the sign but the range: a tree model is flat beyond the
#: brightest cells it learned from (≈ 0.3 broadband albedo; BENCHMARKS.md, what-if section).
MONOTONE: dict[str, int] = {
    "ndvi": -1,
    "tree_cover": -1,
    "imperviousness_500m": 1,
    "tree_cover_200m": -1,
}

DEFAULT_PARAMS: dict[str, Any] = {
    **BASE_PARAMS,
    "n_estimators": 300,
    "min_child_samples": 20,
}


BASELINE = "reference_temperature"

make_model = lightgbm_factory(
    "LGBMRegressor", tuple(f for f in FEATURES if f.name != BASELINE), MONOTONE
)


def build_examples(cells: pd.DataFrame) -> pd.DataFrame:
    """One example per cell: ids, features, target ``lst``."""
    columns = [*ID_COLUMNS, *(f.name for f in FEATURES), "lst"]
    return cells.loc[:, columns].reset_index(drop=True)


HOT_SPOT_PERCENTILE = 90.0


def heat_island_intensity(
    lst: np.ndarray, inputs: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Surface UHI intensity: predicted LST minus the scene's rural reference (K)."""
    reference, method = rural_reference(
        lst, inputs["imperviousness_500m"], inputs["ndvi"], inputs["water_fraction"]
    )
    return lst - reference, {"rural_reference_c": round(reference, 3), "reference_method": method}


MAP = MapSpec(
    group="heat",
    key="lst",
    title="Land-surface temperature",
    prediction=RasterStyle("rdylbu_r", None, "Predicted daytime land-surface temperature (°C)"),
    derived=(
        DerivedRaster(
            key="intensity",
            title="Surface heat-island intensity",
            unit="K",
            style=RasterStyle("ylorrd", None, "LST above the scene's rural reference (K)"),
            inputs=("imperviousness_500m", "ndvi", "water_fraction"),
            compute=heat_island_intensity,
        ),
    ),
    areas=(
        AreaRule(
            key="hotspots",
            title="Heat hot spots",
            source="prediction",
            threshold=lambda values: percentile_threshold(values, HOT_SPOT_PERCENTILE),
            rule=f"connected cells at or above the {HOT_SPOT_PERCENTILE:g}th percentile of "
            "predicted LST",
        ),
    ),
)


UHI = ServiceDefinition(
    name="uhi",
    title="Urban heat island",
    description="Land-surface temperature (°C) of a 20 m cell from land cover and distances.",
    task="regression",
    features=FEATURES,
    target="lst",
    target_unit="°C",
    prediction_unit="°C",
    model_factory=make_model,
    default_params=DEFAULT_PARAMS,
    build_examples=build_examples,
    metrics=regression_metrics,
    primary_metric="mae_spatial_cv",
    primary_metric_higher_is_better=False,
    # Measured on the demo's six 768 px cities (each with its own drawn physics), features
    # from the imagery only: 0.61 K spatial-CV MAE, 1.01 K leave-one-city-out, and
    # 0.55–1.46 K (median 0.95) on 13 cities never trained on. 1 K leaves room for
    # real data while still failing a model that lost its land-cover signal.
    slo=SLO(p95_latency_ms=1.5, error_budget=0.001, metric="mae_spatial_cv", metric_target=1.0),
    monotone=MONOTONE,
    baseline=BASELINE,
    map=MAP,
    intended_use=(
        "Screening-level maps of daytime land-surface temperature for urban planning: where is "
        "it hottest, and roughly how much cooler would a street be with more trees, less "
        "sealing or a park (the 'what-if' scenarios). Inputs are 20 m cell summaries."
    ),
    out_of_scope=(
        "Air temperature or heat-stress (health) warnings: LST is the skin temperature of "
        "surfaces, not what people breathe.",
        "Decisions about one building or one plot: the model sees 20 m cells.",
        "Cities, climates or seasons unlike the training scenes without retraining.",
    ),
    limitations=(
        "Trained on synthetic, physically grounded scenes whose coefficients are drawn from "
        "published ranges; real Landsat LST adds atmosphere (Level-1 LST is not corrected "
        "for it), view-angle and time-of-day effects, emissivity errors and 30–100 m mixed "
        "pixels. On the real Landsat city it ranks LST better than an NDVI line, but a model "
        "trained on that city is about twice as accurate: retrain on a city's own thermal "
        "imagery where it exists (see the real-data evaluation below).",
        "Land cover comes from a spectral classification of the imagery (about 86–96 % of "
        "pixels agree with the synthetic truth; roofs and roads are told apart by brightness "
        "only), so `building_density` means 'bright built surface'.",
        "Neighbourhood effects are seen through two optional focal features "
        "(imperviousness_500m, tree_cover_200m) computed from the scene; in a what-if request "
        "they are whatever the caller sends, so planting trees in one cell does not update "
        "its neighbours' values.",
        "Without `reference_temperature` the model predicts a typical training day: the "
        "level can be off by the difference between that day and the real one (several K); "
        "the spatial pattern is unchanged.",
        "Optional features that are not sent are treated as unknown (NaN), not as zero; "
        "the `*_core_only` metric is the price of sending only the three legacy fields.",
    ),
)
