"""Cross-validated evaluation and fitting of a service's model (generic, no MLflow).

Three CV schemes (random K-fold over cells, spatial block K-fold with an
optional buffer, leave-one-scene-out) share one fitting routine with
*missing-value augmentation*: part of each training set is copied with
optional features set to NaN (half the copies all of them — a legacy request —
half each one with p = 0.5), so LightGBM learns where missing values go. Only
training rows are augmented; test rows are scored as they are, and once more
with the optional features removed (``*_core_only``: what a request that sends
only the required fields gets).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from terraops.domain import real_eval, spatial_cv
from terraops.services.base import ServiceDefinition

Advance = Callable[[str], None]


@dataclass(frozen=True)
class Arrays:
    """Example table as arrays, plus what CV needs to know about each row."""

    X: np.ndarray
    y: np.ndarray
    optional: np.ndarray  # column indices of optional features
    names: list[str]


def _augment(
    data: Arrays, rows: np.ndarray, frac: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training rows plus masked copies (optional features → NaN).

    Returns the feature rows and, for each, the example it was made from.
    """
    X, source = data.X[rows], np.asarray(rows)
    n_extra = round(frac * len(rows))
    if n_extra == 0 or len(data.optional) == 0:
        return X, source
    pick = rng.choice(len(rows), size=n_extra, replace=n_extra > len(rows))
    extra = X[pick].copy()
    mask = rng.random((n_extra, len(data.optional))) < 0.5
    mask[: n_extra // 2] = True  # half the copies look like a legacy request
    sub = extra[:, data.optional]
    sub[mask] = np.nan
    extra[:, data.optional] = sub
    return np.vstack([X, extra]), np.concatenate([source, source[pick]])


@dataclass(frozen=True)
class BaselineModel:
    """A fitted model of ``target − baseline``; :meth:`predict` adds the baseline back.

    See :attr:`ServiceDefinition.baseline`. ``default`` (the training rows'
    mean baseline) stands in where a row's baseline is unknown.
    """

    model: Any
    inputs: list[str]
    baseline: str
    default: float

    @property
    def booster_(self) -> Any:
        return self.model.booster_

    def baseline_of(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame[self.baseline].to_numpy(np.float64)
        return np.where(np.isfinite(values), values, self.default)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        relative = np.asarray(self.model.predict(frame[self.inputs]), dtype=np.float64)
        return relative + self.baseline_of(frame)


def _fit(
    service: ServiceDefinition,
    params: Mapping[str, Any],
    data: Arrays,
    rows: np.ndarray,
    frac: float,
    seed: int,
    init_model: Any = None,
) -> Any:
    """One model on ``rows`` (augmented); ``init_model``: a registered booster to continue
    boosting from (adaptation: the new trees fit what it gets wrong on these rows)."""
    X, source = _augment(data, rows, frac, np.random.default_rng(seed))
    frame, y = pd.DataFrame(X, columns=data.names), data.y[source]
    model = service.model_factory(params)
    if service.baseline is None:
        model.fit(frame, y, init_model=init_model)
        return model
    # Each row's own baseline: masked copies hide the feature, not the fact.
    known = data.X[source, data.names.index(service.baseline)]
    default = float(np.nanmean(known)) if np.isfinite(known).any() else 0.0
    wrapped = BaselineModel(model, service.model_inputs, service.baseline, default)
    relative = y - np.where(np.isfinite(known), known, default)
    model.fit(frame[wrapped.inputs], relative, init_model=init_model)
    return wrapped


def predict(service: ServiceDefinition, model: Any, X: np.ndarray, names: list[str]) -> np.ndarray:
    frame = pd.DataFrame(X, columns=names)
    if service.task == "binary":
        return np.asarray(model.predict_proba(frame)[:, 1], dtype=np.float64)
    return np.asarray(model.predict(frame), dtype=np.float64)


def _out_of_fold(
    service: ServiceDefinition,
    params: Mapping[str, Any],
    data: Arrays,
    folds: list[spatial_cv.Fold],
    training: Mapping[str, Any],
    advance: Advance,
    label: str,
    with_core: bool,
    init_model: Any = None,
) -> tuple[np.ndarray, np.ndarray | None, list[Any]]:
    """Out-of-fold predictions with all features (and, if asked, only the required ones),
    and the fold models (kept for calibration: its held-out residuals and ensemble)."""
    full = np.full(len(data.y), np.nan)
    core = np.full(len(data.y), np.nan) if with_core else None
    models: list[Any] = []
    for k, fold in enumerate(folds):
        model = _fit(
            service,
            params,
            data,
            fold.train,
            training["missing_augment_frac"],
            training["seed"] + k,
            init_model,
        )
        models.append(model)
        X_test = data.X[fold.test]
        full[fold.test] = predict(service, model, X_test, data.names)
        if core is not None:
            X_core = X_test.copy()
            X_core[:, data.optional] = np.nan
            core[fold.test] = predict(service, model, X_core, data.names)
        advance(f"{label} fold {k + 1}/{len(folds)}")
    return full, core, models


def suffixed(metrics: Mapping[str, float], suffix: str) -> dict[str, float]:
    return {f"{k}_{suffix}": float(v) for k, v in metrics.items()}


@dataclass(frozen=True)
class HeldOut:
    """One CV scheme's folds, fold models and out-of-fold predictions."""

    folds: list[spatial_cv.Fold]
    models: list[Any]
    prediction: np.ndarray


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    spatial_prediction: np.ndarray  # out-of-block prediction for every row
    #: Per scheme (``spatial_cv``, ``scene_cv``): what calibration reuses.
    held_out: dict[str, HeldOut] = field(default_factory=dict)


def evaluate(
    service: ServiceDefinition,
    examples: pd.DataFrame,
    params: Mapping[str, Any],
    training: Mapping[str, Any],
    advance: Advance,
    init_model: Any = None,
) -> Evaluation:
    """Random, spatial-block and leave-one-scene-out CV of the service's model.

    ``init_model``: every fold continues boosting this booster (an adapted model's CV).
    Regression services also get ``spearman_<scheme>``: the rank correlation a planner
    reads a heat map by (blind to the level an offset would shift).
    """
    data = to_arrays(service, examples)
    x, y, scenes = (examples[c].to_numpy() for c in ("x", "y", "scene"))
    cells = (
        examples["scene"].astype(str)
        + ":"
        + examples["row"].astype(str)
        + ":"
        + examples["col"].astype(str)
    )
    n_folds, seed = training["cv_folds"], training["seed"]
    schemes = {
        "random_cv": spatial_cv.random_folds(len(examples), n_folds, groups=cells, seed=seed),
        "spatial_cv": spatial_cv.spatial_block_folds(
            x,
            y,
            scenes=scenes,
            n_folds=n_folds,
            block_size_m=training["cv_block_size_m"],
            buffer_m=training["cv_buffer_m"],
            seed=seed,
        ),
    }
    if len(set(scenes.tolist())) >= 2:
        schemes["scene_cv"] = spatial_cv.leave_one_scene_out(scenes)
    metrics: dict[str, float] = {}
    spatial_prediction = np.full(len(examples), np.nan)
    held_out: dict[str, HeldOut] = {}
    for scheme, folds in schemes.items():
        spatial = scheme == "spatial_cv"  # the legacy-request cost is reported for it only
        full, core, models = _out_of_fold(
            service, params, data, folds, training, advance, scheme, spatial, init_model
        )
        if scheme != "random_cv":
            held_out[scheme] = HeldOut(folds, models, full)
        metrics |= suffixed(service.metrics(data.y, full), scheme)
        if service.task == "regression":
            metrics[f"spearman_{scheme}"] = _spearman(data.y, full)
        if core is not None:
            metrics |= suffixed(service.metrics(data.y, core), "spatial_cv_core_only")
        if spatial:
            spatial_prediction = full
    base = service.primary_metric.removesuffix("_spatial_cv")
    metrics["leakage_gap"] = metrics[f"{base}_spatial_cv"] - metrics[f"{base}_random_cv"]
    return Evaluation(metrics, spatial_prediction, held_out)


def _spearman(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Spearman over the rows that were predicted (NaN with fewer than three)."""
    finite = np.isfinite(observed) & np.isfinite(predicted)
    return real_eval.spearman_or_nan(predicted[finite], observed[finite])


def fit_final_model(
    service: ServiceDefinition,
    examples: pd.DataFrame,
    params: Mapping[str, Any],
    training: Mapping[str, Any],
    init_model: Any = None,
) -> Any:
    """The model to register: fitted on every example (with missing-value augmentation)."""
    data = to_arrays(service, examples)
    return _fit(
        service,
        params,
        data,
        np.arange(len(data.y)),
        training["missing_augment_frac"],
        training["seed"],
        init_model,
    )


def to_arrays(service: ServiceDefinition, examples: pd.DataFrame) -> Arrays:
    names = service.feature_names
    optional = np.array([names.index(n) for n in service.optional_features], dtype=np.int64)
    return Arrays(
        examples[names].to_numpy(dtype=np.float64),
        examples[service.target].to_numpy(dtype=np.float64),
        optional,
        names,
    )
