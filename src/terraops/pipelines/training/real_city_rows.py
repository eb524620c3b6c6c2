"""Four ways to map one real city's LST, side by side, on land cells and on all cells.

For a real scene the model card shows, on the same cells:

1. the **registered synthetic model** as is (it never saw the city: no CV needed);
2. that model **adapted** to the city (``terraops train --init-from``: recalibrated,
   shrunk toward the city's mean and boosted on its pixels,
   :mod:`terraops.pipelines.training.adaptation`) — scored with spatial-block CV, each
   fold adapting on its own training blocks;
3. a model **trained from scratch** on the city, same recipe, same folds;
4. the **one-line NDVI fit**, also fitted on the training blocks of each fold (on their
   land cells for the land rows).

Every model that saw the city is scored on blocks it was not fitted to. Scores
(Spearman; MAE after removing the mean offset) are given over **land cells**
(open water masked: a cold sea makes any model look good and flips the NDVI
line's slope) and over **all cells**.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from terraops.adapters.registry import ModelRegistry
from terraops.domain import real_eval, spatial_cv
from terraops.errors import InvalidInputError
from terraops.pipelines.maps.raster_predict import ModelChoice, choose_model
from terraops.pipelines.training.adaptation import fit_adapted
from terraops.pipelines.training.city import INIT_TAG, check_features, land_cells
from terraops.pipelines.training.cross_validation import predict, to_arrays
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

ROWS = ("synthetic", "adapted", "from_scratch", "ndvi_line")
"""The rows, in the card's order."""


def folds_of(examples: pd.DataFrame, training: Mapping[str, Any]) -> list[spatial_cv.Fold]:
    """The spatial folds local CV uses (same blocks, buffer and seed, so the same folds)."""
    x, y, scenes = (examples[c].to_numpy() for c in ("x", "y", "scene"))
    return spatial_cv.spatial_block_folds(
        x,
        y,
        scenes=scenes,
        n_folds=int(training["cv_folds"]),
        block_size_m=float(training["cv_block_size_m"]),
        buffer_m=float(training["cv_buffer_m"]),
        seed=int(training["seed"]),
    )


def adapted_cv(
    service: ServiceDefinition,
    examples: pd.DataFrame,
    booster: Any,
    params: Mapping[str, Any],
    training: Mapping[str, Any],
    folds: list[spatial_cv.Fold],
    say: Any,
) -> np.ndarray:
    """Out-of-block predictions of the registered booster, adapted on each fold's blocks."""
    data = to_arrays(service, examples)
    predicted = np.full(len(examples), np.nan)
    for k, fold in enumerate(folds):
        say(f"adapted fold {k + 1}/{len(folds)}")
        rows = examples.iloc[fold.train].reset_index(drop=True)
        fold_training = {**training, "seed": int(training["seed"]) + k}
        model, _ = fit_adapted(service, rows, params, fold_training, booster)
        predicted[fold.test] = predict(service, model, data.X[fold.test], data.names)
    return predicted


def line_cv(
    examples: pd.DataFrame, target: str, folds: list[spatial_cv.Fold], fit_on: np.ndarray
) -> np.ndarray:
    """Out-of-block predictions of the NDVI line fitted on each fold's training blocks,
    on the cells ``fit_on`` marks there (land cells for the land rows: a line fitted
    across a cold sea has the wrong slope on land)."""
    ndvi = examples["ndvi"].to_numpy(np.float64)
    observed = examples[target].to_numpy(np.float64)
    predicted = np.full(len(examples), np.nan)
    for fold in folds:
        train = fold.train[fit_on[fold.train]]
        if train.size < real_eval.MIN_PAIRS or np.ptp(ndvi[train]) == 0:
            continue  # no line to fit on this fold's cells
        line = real_eval.fit_ndvi_line(ndvi[train], observed[train])
        predicted[fold.test] = line.predict(ndvi[fold.test])
    return predicted


def _row(observed: np.ndarray, predicted: np.ndarray, cross_validated: bool) -> dict[str, Any]:
    ok = np.isfinite(predicted)
    if ok.sum() < real_eval.MIN_PAIRS:
        return {"n": int(ok.sum()), "spearman": None, "mae_after_offset": None}
    scores = real_eval.offset_scores(observed[ok], predicted[ok])
    return {
        "n": scores.n,
        "offset": scores.offset,
        "mae_after_offset": scores.mae_after_offset,
        "spearman": scores.spearman,
        "spatial_cv": cross_validated,
    }


def side_by_side(
    service: ServiceDefinition,
    examples: pd.DataFrame,
    synthetic: Any,
    base_version: int,
    scratch: np.ndarray,
    params: Mapping[str, Any],
    training: Mapping[str, Any],
    say: Any,
) -> dict[str, Any]:
    """The four rows on land cells and on all cells (``synthetic``: the registered model
    the city's adaptation starts from; ``scratch``: local spatial CV's predictions)."""
    observed = examples[service.target].to_numpy(np.float64)
    folds = folds_of(examples, training)
    names = list(synthetic.feature_names)
    inputs = np.column_stack([examples[n].to_numpy(np.float64) for n in names])
    predictions: dict[str, np.ndarray | None] = {
        "synthetic": np.asarray(synthetic.predict(inputs), dtype=np.float64),
        "adapted": None,
        "from_scratch": scratch,
    }
    note = None
    try:
        check_features(service, base_version, names)
    except InvalidInputError as exc:  # a version of other features cannot be continued
        note = str(exc)
    else:
        predictions["adapted"] = adapted_cv(
            service, examples, synthetic.booster, params, training, folds, say
        )
    land = land_cells(examples)
    cells = {"land": land, "all": np.ones(len(examples), dtype=bool)}
    lines = {where: line_cv(examples, service.target, folds, m) for where, m in cells.items()}
    return {
        "base_version": base_version,
        "adapted_note": note,
        "block_size_m": float(training["cv_block_size_m"]),
        "buffer_m": float(training["cv_buffer_m"]),
        "folds": len(folds),
        **{
            where: {
                row: None
                if predicted is None
                else _row(observed[mask], predicted[mask], row != "synthetic")
                for row, predicted in (predictions | {"ndvi_line": lines[where]}).items()
            }
            for where, mask in cells.items()
        },
    }


def synthetic_base(settings: Settings, service: ServiceDefinition, choice: ModelChoice) -> Any:
    """The registered model the city rows start from: the evaluated version, or — when it
    was itself adapted to a city (``--init-from``) — the version it was adapted from."""
    tags = ModelRegistry(settings).get_version(service.name, choice.version).tags
    source = tags.get(INIT_TAG)
    if source and source.isdigit() and int(source) != choice.version:
        return choose_model(settings, service, int(source))
    return choice
