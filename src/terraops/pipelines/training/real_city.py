"""Judge a registered model on a real scene, next to a one-line NDVI regression.

Synthetic cross-validation says how well a model learnt the generator; only a
real scene says whether it learnt the physics. For a regression service whose
target the scene carries (UHI: a Landsat scene's land-surface temperature),
:func:`evaluate_real` computes, on the scene's cells (the one feature path,
:func:`terraops.pipelines.scenes.cell_tables.scene_cell_table`):

1. **local spatial CV** — the service's model trained on this scene alone with
   spatial-block CV (:func:`terraops.pipelines.training.cross_validation.evaluate`): how well
   the features explain LST in this city when trained there;
2. **the registered model** (champion or a version) applied to every cell with
   an observation, with the scene's ``reference_temperature`` and once more
   with it hidden (a user may not know it): mean offset, MAE/RMSE after the
   offset, Spearman (:mod:`terraops.domain.real_eval`);
3. **the NDVI line** fitted on the same cells, in-sample (favouring it);
4. the **verdict** (model Spearman > line Spearman) and scores per
   stratum of the surroundings' sealed share (``imperviousness_500m``);
5. the **city rows** (:mod:`terraops.pipelines.training.real_city_rows`): the registered
   synthetic model, it adapted to the city, one trained from scratch and the NDVI line,
   with spatial CV wherever a model saw the city, on land cells and on all cells.

The result is written to ``TERRAOPS_HOME/evaluation/real/<service>-v<N>-<scene>.json``
(atomically) with a scatter plot beside it, and logged to the version's MLflow
run as ``real_data/<scene>.json`` / ``.png``, where the model card finds it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from terraops.adapters import atomic, tracking
from terraops.adapters.raster_io import read_scene
from terraops.domain import real_eval
from terraops.domain.scene_record import Scene
from terraops.errors import InvalidInputError
from terraops.pipelines.maps.raster_predict import choose_model
from terraops.pipelines.progress import status_line
from terraops.pipelines.scenes.cell_tables import scene_cell_table
from terraops.pipelines.scenes.landcover_source import LandcoverSource, landcover_of_model
from terraops.pipelines.training.cross_validation import evaluate
from terraops.pipelines.training.real_city_rows import side_by_side, synthetic_base
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

SCHEMA = "terraops.real_eval/1"
ARTIFACT_DIR = "real_data"
REFERENCE_FEATURE = "reference_temperature"
STRATIFIER = "imperviousness_500m"
"""Strata by the sealed share of the surroundings (from the classified imagery), not of
the cell itself: a 30 m Landsat cell is one pixel, so its own share is only ever 0 or 1,
while the neighbourhood's separates rural, suburban and urban fabric."""

LOCAL_BLOCK_SIZE_M = 500.0
"""Local-CV block side: the training default, and the reach of the widest feature
(``imperviousness_500m``); the residual autocorrelation of Landsat LST is a few
hundred metres, so a held-out block is mostly independent of its neighbours."""

LOCAL_BUFFER_M = 100.0
"""Local-CV buffer: Landsat's thermal band is 100 m native (TIRS), resampled to
30 m, so cells within 100 m of a held-out block share its thermal pixels; they
are dropped from training so the held-out LST cannot leak through them."""

MIN_CELLS = 50
"""Fewest cells with an observed target that a real-scene evaluation runs on."""


@dataclass(frozen=True)
class RealEvaluation:
    payload: dict[str, Any]
    json_path: Path
    plot_path: Path


def safe_name(name: str) -> str:
    """A scene name usable as a file and artifact name (Landsat ids pass unchanged)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "scene"


def result_path(settings: Settings, service: str, version: int, scene: str) -> Path:
    return (
        settings.home_dir / "evaluation" / "real" / f"{service}-v{version}-{safe_name(scene)}.json"
    )


def require_regression(service: ServiceDefinition) -> None:
    """Offsets, MAE and rank correlation of a temperature make no sense for a probability."""
    if service.task != "regression":
        raise InvalidInputError(
            f"{service.name} is a {service.task} service; real-data evaluation scores "
            "regression targets (offset, MAE, Spearman)",
            hint="use it for uhi (land-surface temperature)",
        )


def _no_target(service: ServiceDefinition, scene: str) -> InvalidInputError:
    return InvalidInputError(
        f"scene {scene} has no {service.target!r} layer to evaluate {service.name} against",
        hint="import the scene with its thermal band (Landsat band 10 or ST_B10, "
        "or --thermal FILE for a GeoTIFF)",
    )


def check_scene(service: ServiceDefinition, scene: Scene) -> None:
    """Refuse the scene before any registry call when it cannot be scored
    (no observed target layer)."""
    if not scene.has_layer(service.target):
        raise _no_target(service, scene.name)


def scene_examples(
    service: ServiceDefinition,
    scene: Scene,
    cell_size_m: float,
    landcover: LandcoverSource | None = None,
) -> pd.DataFrame:
    """The scene's examples with a finite target and NDVI
    (land cover from ``landcover``, the scored model's own source; default the rules)."""
    cells = scene_cell_table(scene, cell_size_m, landcover=landcover)
    if service.target not in cells.columns:
        raise _no_target(service, scene.name)
    examples = service.build_examples(cells)
    finite = np.isfinite(examples[service.target].to_numpy(np.float64))
    finite &= np.isfinite(examples["ndvi"].to_numpy(np.float64))
    examples = examples[finite].reset_index(drop=True)
    if len(examples) < MIN_CELLS:
        raise InvalidInputError(
            f"scene {scene.name} has {len(examples)} cells with an "
            f"observed {service.target}; at least {MIN_CELLS} are needed",
            hint="import a larger or clearer area (fewer clouds), or use a smaller --cell-size",
        )
    return examples


def model_inputs(names: list[str], table: pd.DataFrame, hidden: tuple[str, ...] = ()) -> np.ndarray:
    """The model's input matrix: its columns in its order; absent or hidden ones are NaN."""
    nan = np.full(len(table), np.nan)
    return np.column_stack(
        [nan if n in hidden or n not in table else table[n].to_numpy(np.float64) for n in names]
    )


def local_spatial_cv(
    service: ServiceDefinition,
    examples: pd.DataFrame,
    params: Mapping[str, Any],
    training: Mapping[str, Any],
    say: Any,
) -> tuple[dict[str, Any], np.ndarray]:
    """Train on this scene alone with spatial-block CV: held-out-block scores and predictions."""
    evaluation = evaluate(service, examples, params, training, lambda label: say(f"local {label}"))
    y = examples[service.target].to_numpy(np.float64)
    predicted = evaluation.spatial_prediction
    held_out = np.isfinite(predicted)
    m = evaluation.metrics
    summary = {
        **real_eval.offset_scores(y[held_out], predicted[held_out]).as_dict(),
        **{
            key: m.get(key)
            for key in (
                "mae_spatial_cv",
                "rmse_spatial_cv",
                "r2_spatial_cv",
                "mae_random_cv",
                "r2_random_cv",
                "leakage_gap",
            )
        },
        "block_size_m": float(training["cv_block_size_m"]),
        "buffer_m": float(training["cv_buffer_m"]),
        "folds": int(training["cv_folds"]),
        "params": {**params, **training},
    }
    return summary, predicted


@dataclass(frozen=True)
class SceneScores:
    """The registered model and the NDVI line on the scene's observed cells."""

    observed: np.ndarray
    ndvi: np.ndarray
    predicted: np.ndarray
    predicted_hidden: np.ndarray  # with the reference temperature hidden
    model: real_eval.OffsetScores
    model_hidden: real_eval.OffsetScores
    line: real_eval.NdviLine
    reference_used: bool
    strata: list[dict[str, Any]]


def score_scene(service: ServiceDefinition, examples: pd.DataFrame, predictor: Any) -> SceneScores:
    """Predict every observed cell (with and without the reference) and fit the NDVI line."""
    names = list(predictor.feature_names)
    observed = examples[service.target].to_numpy(np.float64)
    ndvi = examples["ndvi"].to_numpy(np.float64)
    predicted = np.asarray(predictor.predict(model_inputs(names, examples)), dtype=np.float64)
    hidden_inputs = model_inputs(names, examples, hidden=(REFERENCE_FEATURE,))
    predicted_hidden = np.asarray(predictor.predict(hidden_inputs), dtype=np.float64)
    if not (np.isfinite(predicted).all() and np.isfinite(predicted_hidden).all()):
        raise InvalidInputError(f"{service.name} predicted non-finite values on this scene")
    stratifier = examples[STRATIFIER].to_numpy(np.float64)
    strata = real_eval.stratum_scores(
        stratifier,
        observed,
        ndvi,
        {"champion": predicted, "champion_without_reference": predicted_hidden},
    )
    return SceneScores(
        observed=observed,
        ndvi=ndvi,
        predicted=predicted,
        predicted_hidden=predicted_hidden,
        model=real_eval.offset_scores(observed, predicted),
        model_hidden=real_eval.offset_scores(observed, predicted_hidden),
        line=real_eval.fit_ndvi_line(ndvi, observed),
        reference_used=REFERENCE_FEATURE in names,
        strata=strata,
    )


def scene_info(scene: Scene, examples: pd.DataFrame, cell_size_m: float) -> dict[str, Any]:
    """What identifies the scene: name, kind, Landsat product id and acquisition, size."""
    source = scene.source or {}
    kind = scene.kind or ("synthetic" if scene.generator_version is not None else None)
    reference = examples[REFERENCE_FEATURE].to_numpy(np.float64)
    return {
        "name": scene.name,
        "kind": kind,
        "product_id": source.get("product_id"),
        "acquired": source.get("acquired"),
        "sensor": source.get("sensor"),
        "path": str(scene.folder.resolve()),
        "crs": scene.crs,
        "resolution_m": scene.resolution,
        "cell_size_m": effective_cell_size(scene, cell_size_m),
        "requested_cell_size_m": cell_size_m,
        "n_cells": len(examples),
        "reference_temperature": float(np.nanmedian(reference))
        if np.isfinite(reference).any()
        else None,
    }


def effective_cell_size(scene: Scene, cell_size_m: float) -> float:
    """Cells are whole pixels (:func:`terraops.domain.features.cell_grid`): 20 m asked on
    30 m Landsat pixels gives 30 m cells, and the report says so."""
    resolution = float(scene.resolution)
    return resolution * max(1, round(cell_size_m / resolution))


def verdict_of(scores: SceneScores) -> dict[str, Any]:
    with_ref = real_eval.verdict(scores.model.spearman, scores.line.spearman)
    hidden = real_eval.verdict(scores.model_hidden.spearman, scores.line.spearman)
    return {
        "rule": "champion Spearman > NDVI-line Spearman on the same cells",
        "beats_ndvi_line": with_ref.beats_ndvi_line,
        "spearman_margin": with_ref.margin,
        "without_reference_beats_ndvi_line": hidden.beats_ndvi_line,
        "without_reference_spearman_margin": hidden.margin,
    }


def jsonable(value: Any) -> Any:
    """Plain JSON: numpy scalars → Python, non-finite floats → null (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def build_payload(
    service: ServiceDefinition,
    scene: dict[str, Any],
    model: dict[str, Any],
    scores: SceneScores,
    local: dict[str, Any],
) -> dict[str, Any]:
    """The report (schema :data:`SCHEMA`), as plain JSON."""
    stem = safe_name(scene["name"])
    report: dict[str, Any] = jsonable(
        {
            "schema": SCHEMA,
            "service": service.name,
            "target": service.target,
            "unit": service.target_unit,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "scene": scene,
            "model": model,
            "champion": scores.model.as_dict(),
            "champion_without_reference": {
                **scores.model_hidden.as_dict(),
                "reference_feature_used": scores.reference_used,
            },
            "ndvi_line": {**scores.line.as_dict(), "in_sample": True},
            "local_spatial_cv": local,
            "verdict": verdict_of(scores),
            "strata": {"by": STRATIFIER, "rows": scores.strata},
            "artifacts": {"json": f"{ARTIFACT_DIR}/{stem}.json", "plot": f"{stem}.png"},
        }
    )
    return report


def evaluate_real(
    settings: Settings,
    service: ServiceDefinition,
    scene_dir: Path,
    *,
    version: int | None = None,
    params: Mapping[str, Any] | None = None,
    cell_size_m: float | None = None,
    block_size_m: float | None = None,
    buffer_m: float | None = None,
    log_to_run: bool = True,
    progress: bool = False,
) -> RealEvaluation:
    """Evaluate the champion (or ``version``) on a real scene; write and log the result.

    ``block_size_m``/``buffer_m`` default to :data:`LOCAL_BLOCK_SIZE_M` and
    :data:`LOCAL_BUFFER_M`; ``params`` override the local model's parameters.
    """
    # training pipeline: SciPy's statistics (~0.4 s) behind it, only for the local model
    from terraops.pipelines.training.train import resolve_params

    started = time.perf_counter()
    require_regression(service)
    model_params, training = resolve_params(
        service,
        {
            "cv_block_size_m": LOCAL_BLOCK_SIZE_M if block_size_m is None else block_size_m,
            "cv_buffer_m": LOCAL_BUFFER_M if buffer_m is None else buffer_m,
            **(params or {}),
        },
    )
    cell_size = float(cell_size_m or settings.cell_size_m)
    with status_line(progress, f"real-data evaluation of {service.name}") as say:
        scene = read_scene(Path(scene_dir))
        check_scene(service, scene)
        say("registered model")
        choice = choose_model(settings, service, version)
        say("cell table")
        landcover = landcover_of_model(settings, choice.params)
        examples = scene_examples(service, scene, cell_size, landcover)
        scores = score_scene(service, examples, choice.predictor)
        local, scratch = local_spatial_cv(service, examples, model_params, training, say)
        base = synthetic_base(settings, service, choice)
        rows = side_by_side(
            service, examples, base.predictor, base.version, scratch, model_params, training, say
        )
    info = scene_info(scene, examples, cell_size)
    payload = build_payload(service, info, choice.lineage | {"alias": choice.alias}, scores, local)
    payload["city_rows"] = jsonable(rows)
    payload["duration_s"] = round(time.perf_counter() - started, 2)
    stem = safe_name(info["name"])
    json_path = result_path(settings, service.name, choice.version, info["name"])
    plot_path = json_path.with_suffix(".png")
    write_outputs(payload, scores, json_path, plot_path)
    if log_to_run and choice.run_id:
        log_outputs(settings, choice.run_id, stem, json_path, plot_path)
    return RealEvaluation(payload, json_path, plot_path)


def write_outputs(
    payload: dict[str, Any], scores: SceneScores, json_path: Path, plot_path: Path
) -> None:
    """JSON and plot, each written to a temporary sibling and renamed into place."""
    with atomic.atomic_path(plot_path, suffix=plot_path.suffix, parents=True) as staging:
        scatter_plot(payload, scores, staging)
    atomic.atomic_write_json(json_path, payload, indent=2, parents=True)


def log_outputs(settings: Settings, run_id: str, stem: str, json_path: Path, plot: Path) -> None:
    """Log ``real_data/<scene>.json`` and ``.png`` to the model version's run."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(json_path, Path(tmp) / f"{stem}.json")
        shutil.copyfile(plot, Path(tmp) / f"{stem}.png")
        tracking.log_folder_to_run(settings, run_id, Path(tmp), ARTIFACT_DIR)


def scatter_plot(payload: Mapping[str, Any], scores: SceneScores, path: Path) -> Path:
    """Two panels: model (offset removed) vs observed, and LST vs NDVI with the fitted line."""
    from matplotlib.figure import Figure

    unit = str(payload["unit"])
    observed, model, line = scores.observed, scores.model, scores.line
    centred = scores.predicted - model.offset
    fig = Figure(figsize=(10, 4.6))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    lo, hi = float(min(observed.min(), centred.min())), float(max(observed.max(), centred.max()))
    hb = left.hexbin(observed, centred, gridsize=50, bins="log", mincnt=1, cmap="viridis")
    left.plot([lo, hi], [lo, hi], color="crimson", lw=1, label="1:1")
    left.set(
        xlabel=f"observed {payload['target']} ({unit})",
        ylabel=f"predicted − offset ({unit})",
        title=f"v{payload['model']['version']}: offset {model.offset:+.2f}, "
        f"MAE {model.mae_after_offset:.2f}, ρ {model.spearman:.3f}",
    )
    left.legend(loc="upper left")
    fig.colorbar(hb, ax=left, label="cells (log)")
    right.hexbin(scores.ndvi, observed, gridsize=50, bins="log", mincnt=1, cmap="viridis")
    xs = np.linspace(float(scores.ndvi.min()), float(scores.ndvi.max()), 2)
    right.plot(xs, line.predict(xs), color="crimson", lw=1, label="least-squares line")
    right.set(
        xlabel="NDVI",
        ylabel=f"observed {payload['target']} ({unit})",
        title=f"NDVI line: {line.slope_k_per_0_1_ndvi:+.2f} K per 0.1, "
        f"MAE {line.mae:.2f}, ρ {line.spearman:.3f}",
    )
    right.legend(loc="upper right")
    fig.suptitle(f"{payload['scene']['name']}: {scores.model.n} cells")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    return path
