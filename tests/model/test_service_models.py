"""Model quality on the tiny synthetic cities (no MLflow: the evaluation itself).

Thresholds leave room for the tiny scenes' noise but fail a model that
learned nothing, a broken CV, or a lost monotone constraint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from terraops.adapters.raster_io import read_scene
from terraops.domain import spatial_cv
from terraops.pipelines.training.cross_validation import Evaluation, evaluate, fit_final_model
from terraops.pipelines.training.train import resolve_params
from terraops.services import get_service
from terraops.services.base import ServiceDefinition

pytestmark = pytest.mark.slow

FAST = {"n_estimators": 120, "learning_rate": 0.1}


def examples_of(service: ServiceDefinition, scenes: list[Path]) -> pd.DataFrame:
    from terraops.pipelines.scenes.cell_tables import scene_cell_table

    tables = [service.build_examples(scene_cell_table(read_scene(d))) for d in scenes]
    return pd.concat(tables, ignore_index=True)


@pytest.fixture(scope="module")
def uhi_run(tiny_scenes: list[Path]) -> tuple[pd.DataFrame, dict[str, Any], Evaluation]:
    uhi = get_service("uhi")
    examples = examples_of(uhi, tiny_scenes)
    params, training = resolve_params(uhi, FAST)
    return examples, training, evaluate(uhi, examples, params, training, lambda _: None)


@pytest.fixture(scope="module")
def flood_run(tiny_scenes: list[Path]) -> tuple[pd.DataFrame, Any, Evaluation]:
    flood = get_service("flood")
    examples = examples_of(flood, tiny_scenes)
    params, training = resolve_params(flood, FAST)
    evaluation = evaluate(flood, examples, params, training, lambda _: None)
    return examples, fit_final_model(flood, examples, params, training), evaluation


def test_uhi_beats_the_mean_baseline_in_spatial_cv(uhi_run: tuple) -> None:
    examples, training, evaluation = uhi_run
    x, y, scenes = (examples[c].to_numpy() for c in ("x", "y", "scene"))
    lst = examples["lst"].to_numpy()
    folds = spatial_cv.spatial_block_folds(
        x, y, scenes=scenes, n_folds=training["cv_folds"],
        block_size_m=training["cv_block_size_m"], seed=training["seed"],
    )  # fmt: skip
    baseline = np.concatenate([np.abs(lst[f.test] - lst[f.train].mean()) for f in folds]).mean()
    m = evaluation.metrics
    assert m["mae_spatial_cv"] < 0.5 * baseline, (m["mae_spatial_cv"], baseline)
    assert m["r2_spatial_cv"] > 0.7
    # Only the three legacy fields: no day's reference temperature either, so the
    # level is the training cities' mean day (these two differ by ~8 K) — worse,
    # but never wild.
    assert m["mae_spatial_cv_core_only"] < 1.2 * baseline
    assert m["leakage_gap"] == pytest.approx(m["mae_spatial_cv"] - m["mae_random_cv"])


def test_flood_probability_never_decreases_with_rainfall(flood_run: tuple) -> None:
    examples, model, _ = flood_run
    flood = get_service("flood")
    cells = examples.drop_duplicates(["scene", "row", "col"]).sample(300, random_state=0)
    rain = np.linspace(0, 300, 61)
    for legacy in (False, True):
        X = np.repeat(cells[flood.feature_names].to_numpy(dtype=float), len(rain), axis=0)
        X[:, flood.feature_names.index("rainfall_mm")] = np.tile(rain, len(cells))
        if legacy:  # optional features not sent
            X[:, [flood.feature_names.index(n) for n in flood.optional_features]] = np.nan
        frame = pd.DataFrame(X, columns=flood.feature_names)
        prob = model.predict_proba(frame)[:, 1].reshape(len(cells), len(rain))
        assert (np.diff(prob, axis=1) >= -1e-12).all()
        assert prob[:, -1].mean() > prob[:, 0].mean() + 0.05  # rain does matter


def test_flood_beats_climatology(flood_run: tuple) -> None:
    _, _, evaluation = flood_run
    m = evaluation.metrics
    assert m["brier_skill_spatial_cv"] > 0.3  # Brier well below the base-rate forecast's
    assert m["roc_auc_spatial_cv"] > 0.9
    assert 0 < m["brier_spatial_cv"] < 0.1
