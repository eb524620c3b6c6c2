"""Training on a city's own observations: blocks sized to the scene, held-out blocks, adaptation.

A synthetic city is a few km of generated pixels and any number of them can be
made; a real city is one or a few imported Landsat dates, each with its own
observed LST and the day's reference temperature measured on it
(:func:`terraops.pipelines.scenes.cell_tables.observed_reference_temperature`).
Training on one therefore differs in three ways, all decided here:

- **blocks sized to the scene**: the spatial-CV block side shrinks so that every
  imported scene gives at least :data:`MIN_BLOCKS_PER_SCENE` blocks, and held-out
  blocks are buffered by a Landsat thermal pixel (:data:`CITY_BUFFER_M`);
- **held-out blocks**: :data:`HOLDOUT_FRACTION` of each imported scene's blocks
  never reach the registered model; the run compares on them the new model, one
  trained from scratch and the registered model as is (:func:`compare`), and keeps
  them (``city_holdout/holdout.parquet``) so the promotion gates score champion and
  candidate on those same cells (:func:`city_holdout_set`);
- **adaptation** (``--init-from``): the registered booster is recalibrated to the
  city, shrunk toward its mean, and boosted on its pixels — one LightGBM booster,
  which needs the same features (:mod:`terraops.pipelines.training.adaptation`).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from terraops.adapters import tables
from terraops.adapters.registry import ModelRegistry
from terraops.adapters.tracked_run import TrackedRun
from terraops.domain import real_eval, spatial_cv
from terraops.domain.promotion import CHAMPION
from terraops.domain.scene_record import Scene
from terraops.errors import InvalidInputError, ModelNotFoundError
from terraops.pipelines.lifecycle.resolve import resolve_version_number
from terraops.pipelines.training.city_holdout import (
    HOLDOUT_ARTIFACT,
    HOLDOUT_TAG,
    fingerprint,
    holdout_label,
)
from terraops.pipelines.training.cross_validation import fit_final_model, predict, to_arrays
from terraops.services.base import ID_COLUMNS, ServiceDefinition
from terraops.settings import Settings

MIN_BLOCKS_PER_SCENE = 10
"""Fewest spatial blocks an imported scene is cut into (held-out blocks need company)."""

CITY_BUFFER_M = 100.0
"""Buffer around held-out blocks: Landsat's thermal band is 100 m native, resampled to
30 m, so neighbours within 100 m share the held-out LST (as ``evaluate-real`` uses)."""

HOLDOUT_FRACTION = 0.2
"""Share of each imported scene's blocks kept away from the registered model."""

LAND_WATER_FRACTION = 0.5
"""Land cells: open-water share below this (a 30 m cell is one pixel: 0 or 1)."""

KIND_TAG = "terraops.training_kind"
INIT_TAG = "terraops.init_from"
COMPARISON_ARTIFACT = "city_comparison.json"

ADAPTED, FROM_SCRATCH, SYNTHETIC, MIXED = "adapted", "from-scratch", "synthetic", "mixed"


def is_observed(scene: Scene) -> bool:
    """An imported scene (its LST observed), not one the generator drew."""
    return scene.generator_version is None


def training_kind(scenes: Sequence[Scene], adapted: bool) -> str:
    """What the run is: adapted, from-scratch (observed scenes only), synthetic or mixed."""
    if adapted:
        return ADAPTED
    observed = [is_observed(s) for s in scenes]
    if all(observed):
        return FROM_SCRATCH
    return SYNTHETIC if not any(observed) else MIXED


def scene_block_size(examples: pd.DataFrame, names: Sequence[str], largest: float) -> float:
    """The block side (m): at most ``largest``, small enough that each named scene gives
    at least :data:`MIN_BLOCKS_PER_SCENE` blocks (its extent's area / side² ≥ that)."""
    side = float(largest)
    for name in names:
        rows = examples[examples["scene"] == name]
        if rows.empty:
            continue
        width = float(rows["x"].max() - rows["x"].min())
        height = float(rows["y"].max() - rows["y"].min())
        area = max(width, 1.0) * max(height, 1.0)
        side = min(side, math.sqrt(area / MIN_BLOCKS_PER_SCENE))
    return max(side, 1.0)


def city_training(
    training: dict[str, Any],
    overrides: Mapping[str, Any],
    examples: pd.DataFrame,
    city_scenes: Sequence[str],
) -> dict[str, Any]:
    """Training knobs for observed scenes: blocks sized to them and a thermal-pixel
    buffer, unless ``--param`` set them."""
    sized = dict(training)
    if "cv_block_size_m" not in overrides:
        sized["cv_block_size_m"] = scene_block_size(
            examples, city_scenes, float(training["cv_block_size_m"])
        )
    if "cv_buffer_m" not in overrides:
        sized["cv_buffer_m"] = CITY_BUFFER_M
    return sized


def holdout_mask(
    examples: pd.DataFrame,
    city_scenes: Sequence[str],
    training: Mapping[str, Any],
    place_of: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(held out, training pool): whole blocks of the observed scenes' places, and the
    rest minus the cells within the buffer of a held-out one (other scenes: all in
    the pool).

    ``place_of`` maps a scene to its place (its CRS): the scenes of one place — two
    dates of a city — share one grid of blocks, so a block held out is held out on
    every date and no date of it is fitted to; nor is any cell of any date within
    the buffer. Without it each scene is its own place.
    """
    x, y, scenes = (examples[c].to_numpy() for c in ("x", "y", "scene"))
    place_of = place_of or {}
    observed = np.isin(scenes, list(city_scenes))
    place = examples["scene"].map(lambda s: f"place:{place_of.get(s, s)}").to_numpy()
    places = np.where(observed, place, "scene:" + examples["scene"].astype(str).to_numpy())
    blocks = spatial_cv.block_ids(x, y, float(training["cv_block_size_m"]), places)
    rng = np.random.default_rng(int(training["seed"]))
    held = np.zeros(len(examples), dtype=bool)
    for place in dict.fromkeys(places[observed]):
        ids = np.unique(blocks[places == place])
        if len(ids) < 2:
            names = ", ".join(sorted({str(s) for s in scenes[places == place]}))
            raise InvalidInputError(
                f"scene {names} gives {len(ids)} spatial block; held-out blocks need at least 2",
                hint="use a larger area or --param cv_block_size_m=<smaller side>",
            )
        n = max(1, round(HOLDOUT_FRACTION * len(ids)))
        held |= np.isin(blocks, rng.choice(ids, size=n, replace=False))
    rows = np.arange(len(examples))
    fold = spatial_cv.Fold(rows[~held], rows[held])
    (buffered,) = spatial_cv.apply_buffer([fold], x, y, float(training["cv_buffer_m"]), places)
    pool = np.zeros(len(examples), dtype=bool)
    pool[buffered.train] = True
    return held, pool


@dataclass(frozen=True)
class InitModel:
    """A registered model to adapt: its version, loaded predictor and booster."""

    version: int
    predictor: Any

    @property
    def booster(self) -> Any:
        return self.predictor.booster


def load_init_model(settings: Settings, service: ServiceDefinition, init_from: str) -> InitModel:
    """``champion`` or a version number → the registered model, checked to have the
    service's features in the service's order (its trees are kept in the adapted model)."""
    # MLflow and the lifecycle load only when a run adapts a registered model
    from terraops.pipelines.lifecycle.aliases import load_verified_predictor

    text = init_from.strip().lower()
    if text != CHAMPION and not text.isdigit():
        raise InvalidInputError(
            f"--init-from {init_from!r} is neither 'champion' nor a version number",
            hint=f"use --init-from champion or --init-from N (terraops models {service.name})",
        )
    registry = ModelRegistry(settings)
    version = resolve_version_number(
        registry,
        service.name,
        int(text) if text.isdigit() else None,
        purpose="to adapt",
        hint=f"train one first (terraops train {service.name} --scenes ...) or pass a version",
    )
    try:
        _, predictor = load_verified_predictor(registry, service, version)
    except ValueError as exc:
        raise ModelNotFoundError(f"{service.name} v{version} cannot be adapted: {exc}") from exc
    check_features(service, version, list(predictor.feature_names))
    return InitModel(version, predictor)


def check_features(service: ServiceDefinition, version: int, names: list[str]) -> None:
    """The adapted model keeps the registered trees over the same columns: refuse any
    other list."""
    if names == service.feature_names:
        return
    missing = [n for n in service.feature_names if n not in names]
    extra = [n for n in names if n not in service.feature_names]
    detail = "; ".join(
        part
        for part in (
            f"it lacks {', '.join(missing)}" if missing else "",
            f"it has {', '.join(extra)} the service no longer computes" if extra else "",
            "same names in another order" if not (missing or extra) else "",
        )
        if part
    )
    raise InvalidInputError(
        f"{service.name} v{version} was trained on other features than the service has now "
        f"({detail}); it cannot be adapted",
        hint="adapt a version trained with the current features, or train from scratch "
        "(leave out --init-from)",
    )


def model_inputs(names: Sequence[str], table: pd.DataFrame) -> np.ndarray:
    """The model's input matrix: its columns in its order, NaN where the table has none."""
    nan = np.full(len(table), np.nan)
    return np.column_stack([table[n].to_numpy(np.float64) if n in table else nan for n in names])


def land_cells(table: pd.DataFrame) -> np.ndarray:
    """Cells that are not open water (a cold sea flatters any ranking)."""
    water = table["water_fraction"].to_numpy(np.float64)
    return ~(water >= LAND_WATER_FRACTION)


def _scores(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float | int | None]:
    if observed.size < real_eval.MIN_PAIRS or not np.isfinite(predicted).all():
        return {"n": int(observed.size), "mae": None, "mae_after_offset": None, "spearman": None}
    s = real_eval.offset_scores(observed, predicted)
    return {"n": s.n, "mae": s.mae, "mae_after_offset": s.mae_after_offset, "spearman": s.spearman}


def compare(
    service: ServiceDefinition,
    held: pd.DataFrame,
    predictions: Mapping[str, np.ndarray],
    on_land: Mapping[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """One row per model on the held-out cells: MAE, MAE after the offset, Spearman,
    on all cells and on land cells (``on_land``: a model's other predictions for those,
    e.g. the NDVI line fitted on land cells)."""
    observed = held[service.target].to_numpy(np.float64)
    land = land_cells(held)
    rows = []
    for label, predicted in predictions.items():
        land_predicted = (on_land or {}).get(label, predicted)
        every = _scores(observed, predicted)
        on_land_scores = _scores(observed[land], land_predicted[land])
        land_row = {f"land_{k}": v for k, v in on_land_scores.items()}
        rows.append({"model": label, **every, **land_row})
    return rows


def holdout_table(service: ServiceDefinition, held: pd.DataFrame) -> pd.DataFrame:
    """The held-out cells as the gates score them: ids, features, target."""
    columns = [c for c in (*ID_COLUMNS, *service.feature_names, service.target) if c in held]
    return held.loc[:, columns].reset_index(drop=True)


def comparison_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """``holdout_<score>_<model>`` for each finite score of the comparison (run metrics)."""
    metrics = {}
    for row in rows:
        label = str(row["model"]).replace("-", "_")
        for key in ("mae", "mae_after_offset", "spearman", "land_spearman"):
            value = row[key]
            if value is not None and math.isfinite(value):
                metrics[f"holdout_{key}_{label}"] = float(value)
    return metrics


def log_city(
    run: TrackedRun,
    service: ServiceDefinition,
    kind: str,
    init: InitModel | None,
    table: pd.DataFrame,
    rows: list[dict[str, Any]],
) -> None:
    """Tags (which kind, adapted from which version, which held-out set), the comparison
    as an MLflow table (its metrics go with the run's: :func:`comparison_metrics`), and
    the held-out cells the gates score."""
    digest = fingerprint(table)
    scenes = sorted({str(s) for s in table["scene"].unique()})
    run.set_tags(
        {
            KIND_TAG: kind,
            HOLDOUT_TAG: holdout_label(service.name, scenes, digest),
            **({INIT_TAG: str(init.version)} if init is not None else {}),
        }
    )
    columns = list(rows[0]) if rows else []
    run.log_dict(
        {"columns": columns, "data": [[row[c] for c in columns] for row in rows]},
        COMPARISON_ARTIFACT,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(HOLDOUT_ARTIFACT).name
        tables.write_parquet(table, path)
        run.log_artifact(path, str(Path(HOLDOUT_ARTIFACT).parent))


@dataclass(frozen=True)
class CityPlan:
    """How a run on observed scenes splits its examples (see the module docstring)."""

    kind: str
    scenes: list[str]  # the observed scenes whose blocks are held out
    training: dict[str, Any]  # with blocks sized to the scenes
    held: np.ndarray  # rows never fitted to
    pool: np.ndarray  # rows the models are fitted to (held-out ones and their buffer: not)


def plan_city(
    scenes: Sequence[Scene],
    examples: pd.DataFrame,
    training: dict[str, Any],
    overrides: Mapping[str, Any],
    init: InitModel | None,
) -> CityPlan | None:
    """The split of a run with observed scenes (None: synthetic scenes only, or flood's
    table with no observed target: every row is fitted to, as before)."""
    kind = training_kind(scenes, init is not None)
    names = [s.name for s in scenes if is_observed(s)]
    if not names:
        if init is not None:
            raise InvalidInputError(
                "--init-from adapts a registered model to a city's observations; "
                "these scenes are all synthetic",
                hint="pass imported scenes (terraops scene import landsat ...) with --scenes",
            )
        return None
    sized = city_training(training, overrides, examples, names)
    places = {s.name: s.crs for s in scenes}  # dates of one place share its blocks
    held, pool = holdout_mask(examples, names, sized, places)
    return CityPlan(kind, names, sized, held, pool)


def ndvi_line_prediction(
    pool: pd.DataFrame, held: pd.DataFrame, target: str, land_only: bool = False
) -> np.ndarray:
    """The one-line NDVI fit on the training pool (its land cells with ``land_only``:
    a line across a cold sea has the wrong slope on land), applied to the held-out cells."""
    fit = pool[land_cells(pool)] if land_only else pool
    if len(fit) < real_eval.MIN_PAIRS or np.ptp(fit["ndvi"].to_numpy()) == 0:
        return np.full(len(held), np.nan)
    line = real_eval.fit_ndvi_line(fit["ndvi"].to_numpy(), fit[target].to_numpy())
    return line.predict(held["ndvi"].to_numpy(np.float64))


def registered_for_comparison(
    settings: Settings, service: ServiceDefinition, init: InitModel | None
) -> InitModel | None:
    """The registered model a run is compared with: the one it adapts, else the
    champion when there is one with the same features (else none)."""
    if init is not None:
        return init
    try:
        return load_init_model(settings, service, CHAMPION)
    except (ModelNotFoundError, InvalidInputError):
        return None


def city_comparison(
    service: ServiceDefinition,
    plan: CityPlan,
    examples: pd.DataFrame,
    model: Any,
    params: Mapping[str, Any],
    registered: InitModel | None,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The held-out cells and, on them, this run's model, one trained from scratch on the
    same pool (an adapted run fits it here), the registered model as is and the NDVI line."""
    pool = examples[plan.pool].reset_index(drop=True)
    held = examples[plan.held].reset_index(drop=True)
    data = to_arrays(service, held)
    own = predict(service, model, data.X, data.names)
    predictions: dict[str, np.ndarray] = {}
    if plan.kind == ADAPTED:
        scratch = fit_final_model(service, pool, params, plan.training)
        predictions |= {ADAPTED: own, FROM_SCRATCH: predict(service, scratch, data.X, data.names)}
    else:
        predictions[plan.kind] = own
    if registered is not None:
        names = registered.predictor.feature_names
        predictions["registered"] = registered.predictor.predict(model_inputs(names, held))
    predictions["ndvi_line"] = ndvi_line_prediction(pool, held, service.target)
    land_line = ndvi_line_prediction(pool, held, service.target, land_only=True)
    rows = compare(service, held, predictions, {"ndvi_line": land_line})
    for row in rows:
        row["version"] = registered.version if row["model"] == "registered" and registered else None
    return holdout_table(service, held), rows
