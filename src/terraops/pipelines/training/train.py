"""Train any service: scenes → example table → checks → CV → final model → MLflow.

Generic over :class:`~terraops.services.base.ServiceDefinition`; nothing here
knows UHI from flood. Every run reports the same families of metrics:

- ``{m}_random_cv``: K-fold over cells (random) — optimistic on gridded data;
- ``{m}_spatial_cv``: K-fold over square blocks with an optional buffer
  (Roberts et al. 2017) — the honest number, and the primary metric's family;
- ``{m}_scene_cv``: leave-one-scene-out (≥ 2 scenes) — transfer to a new city;
- ``{m}_spatial_cv_core_only``: spatial CV with only the *required* features
  sent (what a legacy 3-field request costs);
- ``{m}_train``: in-sample fit of the final model (for spotting under-fit);
- ``leakage_gap``: spatial − random CV of the primary metric (positive = the
  random split flatters the model by that much).

The CV and fitting (with missing-value augmentation) live in
:mod:`terraops.pipelines.training.cross_validation`; this module adds parameters, data
checks, fingerprints, plots and the MLflow record.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from terraops.adapters import tracking
from terraops.adapters.raster_io import read_scene
from terraops.adapters.registry import ModelRegistry
from terraops.adapters.tracked_run import TrackedRun
from terraops.domain import spatial_cv
from terraops.domain.metrics import reliability_curve
from terraops.domain.scene_record import Scene
from terraops.errors import InvalidInputError
from terraops.pipelines.lifecycle.aliases import assign_alias
from terraops.pipelines.monitoring.drift_report import log_reference
from terraops.pipelines.monitoring.quality import check_examples, refuse_unless_passed
from terraops.pipelines.scenes.cell_tables import scene_cell_table
from terraops.pipelines.scenes.distributed import prepare_cell_tables
from terraops.pipelines.scenes.landcover_source import LandcoverSource, resolve_landcover_source
from terraops.pipelines.training import city
from terraops.pipelines.training.adaptation import adapt
from terraops.pipelines.training.calibration import Calibration, calibrate
from terraops.pipelines.training.cross_validation import (
    Advance,
    Evaluation,
    evaluate,
    fit_final_model,
    predict,
    suffixed,
    to_arrays,
)
from terraops.pipelines.training.params import coerce_param
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

#: Training knobs (not model hyper-parameters); overridable with ``--param``.
TRAINING_DEFAULTS: dict[str, Any] = {
    "cv_folds": 5,
    "cv_block_size_m": spatial_cv.DEFAULT_BLOCK_SIZE_M,
    "cv_buffer_m": 0.0,
    "missing_augment_frac": 0.5,
    "seed": 0,
}


@dataclass(frozen=True)
class TrainResult:
    service: str
    run_id: str
    version: int
    metrics: dict[str, float]
    data_quality_passed: bool
    n_rows: int
    duration_s: float
    kind: str = city.SYNTHETIC  # adapted, from-scratch, synthetic or mixed
    #: Observed scenes: each model's scores on the held-out blocks (see ``city.compare``).
    comparison: list[dict[str, Any]] = field(default_factory=list)


# ----- parameters -----------------------------------------------------------
def parse_param_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}``."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"bad --param {pair!r}", hint="use --param name=value")
        parsed[key.strip()] = value.strip()
    return parsed


def resolve_params(
    service: ServiceDefinition, overrides: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model params, training params) = defaults updated by validated overrides."""
    model = dict(service.default_params)
    training = dict(TRAINING_DEFAULTS)
    for name, raw in (overrides or {}).items():
        if name in model:
            model[name] = coerce_param(name, raw, model[name])
        elif name in training:
            training[name] = coerce_param(name, raw, training[name])
        else:
            known = ", ".join(sorted([*model, *training]))
            raise InvalidInputError(f"unknown parameter {name!r}", hint=f"known: {known}")
    if training["cv_folds"] < 2:
        raise InvalidInputError("cv_folds must be at least 2")
    if not 0 <= training["missing_augment_frac"] <= 1:
        raise InvalidInputError("missing_augment_frac must be within [0, 1]")
    return model, training


# ----- data -----------------------------------------------------------------
def read_scenes(scene_dirs: Sequence[Path]) -> list[Scene]:
    """Every training scene's manifest, read once here and passed down."""
    if not scene_dirs:
        raise InvalidInputError("no scenes given", hint="pass --scenes DIR (one or more)")
    return [read_scene(Path(d)) for d in scene_dirs]


def build_example_table(
    service: ServiceDefinition,
    scenes: Sequence[Scene],
    cell_size_m: float,
    landcover: LandcoverSource | None = None,
) -> pd.DataFrame:
    """The service's examples from every scene.

    ``landcover``: where the features' land cover comes from (default spectral rules).
    """
    cells = pd.concat(
        [scene_cell_table(scene, cell_size_m, landcover=landcover) for scene in scenes],
        ignore_index=True,
    )
    return service.build_examples(cells)


def data_fingerprint(examples: pd.DataFrame, scene_records: Sequence[Scene]) -> dict[str, Any]:
    """sha256 of the example table's values and of each scene manifest."""
    table_hash = hashlib.sha256(
        pd.util.hash_pandas_object(examples, index=False).to_numpy().tobytes()
    ).hexdigest()
    scenes: list[dict[str, Any]] = []
    for m in (scene.to_manifest() for scene in scene_records):
        text = json.dumps(m, sort_keys=True, default=str)
        scenes.append(
            {
                "name": m.get("name"),
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
                "manifest": m,
            }
        )
    combined = hashlib.sha256(
        (table_hash + "".join(s["sha256"] for s in scenes)).encode()
    ).hexdigest()
    return {
        "sha256": combined,
        "table_sha256": table_hash,
        "n_rows": len(examples),
        "columns": list(examples.columns),
        "scenes": scenes,
    }


def feature_schema(service: ServiceDefinition) -> dict[str, Any]:
    """What a client must send: names, units, ranges, required flags (logged per run)."""
    return {
        "service": service.name,
        "task": service.task,
        "target": service.target,
        "target_unit": service.target_unit,
        "prediction_unit": service.prediction_unit,
        "features": [
            {
                "name": f.name,
                "unit": f.unit,
                "description": f.description,
                "minimum": f.minimum,
                "maximum": f.maximum,
                "example": f.example,
                "required": f.required,
                "monotone": service.monotone.get(f.name, 0),
            }
            for f in service.features
        ],
    }


def _plots(
    service: ServiceDefinition,
    examples: pd.DataFrame,
    evaluation: Evaluation,
    model: Any,
    out: Path,
) -> list[Path]:
    from terraops.adapters import plots  # matplotlib: ~1 s to import, figures only

    observed = examples[service.target].to_numpy(dtype=np.float64)
    predicted = evaluation.spatial_prediction
    residual = pd.DataFrame(
        {
            "scene": examples["scene"].astype(str),
            "x": examples["x"],
            "y": examples["y"],
            "r": predicted - observed,
        }
    )
    per_cell = residual.groupby(["scene", "x", "y"], sort=False, as_index=False)["r"].mean()
    files = [
        plots.residual_maps(
            per_cell["x"].to_numpy(),
            per_cell["y"].to_numpy(),
            per_cell["r"].to_numpy(),
            per_cell["scene"].to_numpy(),
            out / "residual_map.png",
            unit=service.target_unit,
        ),
        plots.feature_importance(
            service.model_inputs,
            model.booster_.feature_importance(importance_type="gain"),
            out / "feature_importance.png",
        ),
    ]
    if service.task == "binary":
        files.append(
            plots.reliability_diagram(
                reliability_curve(observed, predicted),
                out / "reliability.png",
                title=f"{service.title}: spatial-CV reliability",
            )
        )
    else:
        files.append(
            plots.predicted_vs_observed(
                observed,
                predicted,
                out / "predicted_vs_observed.png",
                unit=service.target_unit,
                title=f"{service.title}: spatial CV",
            )
        )
    return files


def _progress(enabled: bool, total: int) -> tuple[Any, Advance]:
    """A rich progress bar on stderr (or a no-op) and the callback that advances it."""
    if not enabled:
        return nullcontext(), lambda _label: None
    progress = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("training", total=total)

    def advance(label: str) -> None:
        progress.update(task, advance=1, description=label)

    return progress, advance


def train_service(
    settings: Settings,
    service: ServiceDefinition,
    scene_dirs: Sequence[Path],
    params: Mapping[str, Any] | None = None,
    *,
    cell_size_m: float | None = None,
    progress: bool = True,
    init_from: str | None = None,
) -> TrainResult:
    """Train, evaluate, log and register one version; make it the ``challenger``.

    The example table must pass the service's Great Expectations suite
    (:mod:`terraops.pipelines.monitoring.quality`) first: failing data is **refused** —
    ``DataQualityError`` names the failed expectations, the report is saved under
    ``TERRAOPS_HOME/reports/quality`` and nothing is trained, logged or
    registered (a model of bad data is never a candidate). Every run keeps a
    bounded sample of its training features (``reference/reference.parquet``),
    the reference drift reports compare against.

    Imported (observed) scenes are trained on as a city (:mod:`terraops.pipelines.training.city`):
    blocks sized to the scene, held-out blocks no model is fitted to, and a comparison on
    them; ``init_from`` (``champion`` or a version) adapts that registered model
    (:mod:`terraops.pipelines.training.adaptation`).
    """
    started = time.perf_counter()
    model_params, training = resolve_params(service, params)
    init = city.load_init_model(settings, service, init_from) if init_from else None
    cell_size = float(cell_size_m or settings.cell_size_m)
    n_scenes = len(scene_dirs)
    total = 2 * training["cv_folds"] + (n_scenes if n_scenes >= 2 else 0) + 3
    bar, advance = _progress(progress, total)
    with bar:
        landcover = resolve_landcover_source(settings)
        scenes = read_scenes(scene_dirs)
        prepare_cell_tables(settings, scenes, cell_size, landcover)  # on Dask, if set
        examples = build_example_table(service, scenes, cell_size, landcover)
        quality = _quality_gate(settings, service, examples, scene_dirs)
        examples = examples[examples[service.target].notna()].reset_index(drop=True)
        fingerprint = data_fingerprint(examples, scenes)
        plan = city.plan_city(scenes, examples, training, params or {}, init)
        every = examples
        if plan is not None:  # observed scenes: fit to the pool, keep held-out blocks away
            training, examples = plan.training, examples[plan.pool].reset_index(drop=True)
        advance("example table")
        # adapted: the registered booster recalibrated and shrunk, and how many trees to add
        adapted = adapt(service, examples, model_params, training, init.booster) if init else None
        fit_params = adapted.params(model_params) if adapted else model_params
        booster = adapted.booster if adapted else None
        evaluation = evaluate(service, examples, fit_params, training, advance, booster)
        model = fit_final_model(service, examples, fit_params, training, booster)
        compared = None
        if plan is not None:
            registered = city.registered_for_comparison(settings, service, init)
            compared = city.city_comparison(service, plan, every, model, model_params, registered)
        calibration = calibrate(
            service,
            examples,
            evaluation,
            model,
            training["seed"],
            params=model_params,
            training=training,
        )
        data = to_arrays(service, examples)
        metrics = {
            **evaluation.metrics,
            **calibration.metrics,
            **suffixed(
                service.metrics(data.y, predict(service, model, data.X, data.names)), "train"
            ),
            **(city.comparison_metrics(compared[1]) if compared is not None else {}),
        }
        advance("final model")
        experiment_id = tracking.ensure_experiment(settings, service.name)
        with tracking.owned_run(settings, experiment_id, f"{service.name}-train") as run:
            run_id = run.run_id
            version = _log_run(
                run,
                service,
                examples,
                evaluation,
                model,
                metrics,
                {
                    **model_params,
                    **training,
                    "cell_size_m": cell_size,
                    "n_rows": len(examples),
                    "n_scenes": n_scenes,
                    **landcover.lineage,
                    "init_from": init.version if init is not None else None,
                    **(adapted.record() if adapted else {}),
                    "n_holdout_rows": int(plan.held.sum()) if plan is not None else 0,
                    **{f"uncertainty/{k}": v for k, v in calibration.metadata.items()},
                },
                quality,
                fingerprint,
                calibration,
            )
            kind = plan.kind if plan is not None else city.training_kind(scenes, False)
            run.set_tag(city.KIND_TAG, kind)
            if plan is not None and compared is not None:
                city.log_city(run, service, plan.kind, init, *compared)
        advance("logged to MLflow")
    registry = ModelRegistry(settings)
    assign_alias(
        settings,
        registry,
        service.name,
        "challenger",
        version,
        reason=f"trained by run {run_id}",
    )
    duration = time.perf_counter() - started
    return TrainResult(
        service.name,
        run_id,
        version,
        metrics,
        bool(quality["passed"]),
        len(examples),
        duration,
        kind,
        compared[1] if compared is not None else [],
    )


def _quality_gate(
    settings: Settings,
    service: ServiceDefinition,
    examples: pd.DataFrame,
    scene_dirs: Sequence[Path],
) -> dict[str, Any]:
    """Run the service's data-quality suite; raise ``DataQualityError`` if it fails."""
    source = ", ".join(str(d) for d in scene_dirs)
    result = check_examples(settings, service, examples, source=source)
    refuse_unless_passed([result], f"training data of {service.name} ({source})")
    return result.as_dict()


def _log_run(
    run: TrackedRun,
    service: ServiceDefinition,
    examples: pd.DataFrame,
    evaluation: Evaluation,
    model: Any,
    metrics: dict[str, float],
    params: dict[str, Any],
    quality: dict[str, Any],
    fingerprint: dict[str, Any],
    calibration: Calibration,
) -> int:
    """Everything a run records; returns the registered version."""
    scenes = [str(s.get("name")) for s in fingerprint["scenes"]]
    run.set_tags(
        {
            "terraops.service": service.name,
            "terraops.data_fingerprint": fingerprint["sha256"],
            "terraops.data_quality": "passed" if quality["passed"] else "failed",
            "terraops.scenes": ",".join(scenes),
        }
    )
    run.log_params(params)
    run.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
    run.log_dict(quality, "data_quality.json")
    run.log_dict(fingerprint, "data_fingerprint.json")
    run.log_dict(feature_schema(service), "feature_schema.json")
    run.log_dict(calibration.report, "calibration.json")
    run.set_tag("terraops.reference_rows", str(log_reference(run, service, examples)))
    with tempfile.TemporaryDirectory() as tmp:
        run.log_artifacts(_plots(service, examples, evaluation, model, Path(tmp)), "plots")
    meta = {
        "service": service.name,
        "task": service.task,
        "feature_names": service.feature_names,
        "required_features": service.required_features,
        "target": service.target,
        "prediction_unit": service.prediction_unit,
        "run_id": run.run_id,
        "data_fingerprint": fingerprint["sha256"],
    }
    if service.baseline is not None:
        meta["baseline"] = {"feature": model.baseline, "default": model.default}
    meta["uncertainty"] = calibration.metadata
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = calibration.artifacts(Path(tmp))
        _, version = tracking.log_service_model(run, model.booster_, service, meta, artifacts)
    return version
