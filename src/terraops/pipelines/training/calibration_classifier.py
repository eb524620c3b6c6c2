"""Flood's calibration: it is a classifier whose probabilities are already calibrated,
so it gets the area of applicability and its reliability per design-storm size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from terraops.adapters.uncertainty_bundle import ARTIFACT, save_uncertainty
from terraops.domain.metrics import reliability_curve
from terraops.domain.uncertainty import ApplicabilityDomain, ConformalScores
from terraops.pipelines.training.calibration_types import Calibration
from terraops.pipelines.training.cross_validation import Evaluation
from terraops.services.base import ServiceDefinition


def calibrate_classifier(
    service: ServiceDefinition,
    examples: pd.DataFrame,
    evaluation: Evaluation,
    domain: ApplicabilityDomain,
    members: list[Any],
    base: dict[str, Any],
) -> Calibration:
    """Flood: reliability of the spatial-CV probabilities per design-storm size."""
    observed = examples[service.target].to_numpy(dtype=np.float64)
    predicted = evaluation.spatial_prediction
    storms = (
        examples["rainfall_mm"].to_numpy() if "rainfall_mm" in examples else np.zeros(len(observed))
    )
    per_storm: dict[str, dict[str, float]] = {}
    metrics: dict[str, float] = {}
    for storm in np.unique(storms):
        pick = (storms == storm) & np.isfinite(predicted)
        curve = reliability_curve(observed[pick], predicted[pick])
        filled = curve.count > 0
        gap = np.abs(curve.mean_predicted[filled] - curve.observed_frequency[filled])
        ece = float(np.sum(curve.count[filled] * gap) / max(int(pick.sum()), 1))
        brier = float(np.mean((predicted[pick] - observed[pick]) ** 2))
        per_storm[f"{storm:g}"] = {"n": int(pick.sum()), "ece": ece, "brier": brier}
        metrics[f"ece_spatial_cv_storm_{storm:g}mm"] = ece
    report = {**base, "reliability_per_storm_mm": per_storm}
    empty = ConformalScores("local", np.empty(0))

    def write(folder: Path) -> Path:
        return save_uncertainty(
            folder,
            scores=empty,
            domain=domain,
            difficulty_booster=None,
            difficulty_floor=1.0,
            members=members,
            report=report,
        )

    meta = {
        "artifact": ARTIFACT,
        "variant": "none",
        "held_out_unit": base["held_out_unit"],
        "members": len(members),
    }
    return Calibration(meta, metrics, report, write)
