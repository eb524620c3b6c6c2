"""Uncertainty layers of a raster prediction: interval bounds and the area of applicability.

Runs after :mod:`terraops.pipelines.maps.raster_predict` has written the
prediction and every cell's model inputs (``*.cells.parquet``): the inputs are
read back in row blocks and given to the predictor that made the map
(:meth:`~terraops.adapters.model_bundle.Predictor.interval_with_domain`).

Layers:
- ``{service}-lower-…`` / ``{service}-upper-…``: the calibrated interval at the
  asked level (conformal on held-out cities), in the prediction's unit; empty
  (no data) where the cell is outside the area of applicability — no interval
  is claimed there;
- ``{service}-applicability-…``: the dissimilarity index of each cell to the
  training data (Meyer & Pebesma 2021); above the layer's ``threshold`` (in its
  stats) the cell is outside the area of applicability.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from terraops.adapters import tables
from terraops.domain.layers import Layer, layer_id
from terraops.errors import ConflictError
from terraops.pipelines.maps.layer_products import raster_layer
from terraops.pipelines.maps.prediction_layers import PredictionContext, param_suffix

BLOCK_CELLS = 65_536


def _grids(
    predictor: Any, cells_path: Path, prediction: np.ndarray, level: float
) -> dict[str, np.ndarray]:
    names = list(predictor.feature_names)
    grids = {k: np.full(prediction.shape, np.nan, np.float32) for k in ("lower", "upper", "di")}
    for batch in tables.iter_parquet_batches(cells_path, BLOCK_CELLS):
        rows, cols = batch["row"].to_numpy(), batch["col"].to_numpy()
        X = batch[names].to_numpy(np.float64)
        centre = prediction[rows, cols].astype(np.float64)
        lower, upper, _ = predictor.interval_with_domain(X, level, centre)
        di, _ = predictor.applicability(X)
        grids["lower"][rows, cols], grids["upper"][rows, cols] = lower, upper
        grids["di"][rows, cols] = di
    return grids


def _write(
    ctx: PredictionContext, out: Path, key: str, values: np.ndarray, unit: str, **layer: Any
) -> Layer:
    lid = layer_id(ctx.definition.name, key, *param_suffix(ctx.spec, ctx.params), ctx.scene)
    path = out.with_name(f"{out.stem}.{key}.tif")
    ctx.write_cog(lid, unit, values, path)
    return raster_layer(
        lid=lid,
        group=ctx.spec.group,
        path=path,
        unit=unit,
        lineage=ctx.lineage,
        created_at=ctx.created_at,
        **layer,
    )


def write_uncertainty_layers(
    ctx: PredictionContext,
    out: Path,
    predictor: Any,
    cells_path: Path,
    prediction: np.ndarray,
    level: float,
) -> tuple[list[Layer], dict[str, Any]]:
    """Write the lower, upper and applicability layers; return them and their summary."""
    if not getattr(predictor, "has_uncertainty", False) or predictor.task != "regression":
        raise ConflictError(
            f"this {ctx.definition.name} model version has no calibrated intervals",
            hint="train and promote a new version, or drop --interval",
        )
    grids = _grids(predictor, cells_path, prediction, level)
    unit = ctx.definition.prediction_unit
    cells = np.isfinite(grids["di"])
    inside = np.isfinite(grids["lower"])
    finite = grids["lower"][inside]
    span = (float(finite.min()), float(grids["upper"][inside].max())) if finite.size else None
    domain = predictor.uncertainty.domain
    threshold = domain.subspace(np.ones(len(predictor.feature_names), bool)).threshold
    width = grids["upper"][inside] - grids["lower"][inside]
    summary = {
        "level": level,
        "cells": int(cells.sum()),
        "share_inside_domain": round(float(inside.sum() / max(cells.sum(), 1)), 4),
        "mean_width": round(float(width.mean()), 4) if width.size else None,
        "dissimilarity_threshold": round(float(threshold), 4),
    }
    pct = f"{level:.0%}"
    bounds = [
        _write(
            ctx,
            out,
            key,
            grids[key],
            unit,
            title=ctx.title(f"{pct} interval: {key} bound"),
            role=f"interval-{key}",
            legend=f"{key.capitalize()} bound of the {pct} prediction interval ({unit}); "
            "empty outside the area of applicability",
            colormap=ctx.spec.prediction.colormap,
            rescale=span,
            stats={"level": level, "cells": int(inside.sum())},
        )
        for key in ("lower", "upper")
    ]
    applicability = _write(
        ctx,
        out,
        "applicability",
        grids["di"],
        "1",
        title=ctx.title("Area of applicability"),
        role="applicability",
        legend="Dissimilarity to the training data; above "
        f"{threshold:.3g} the cell is outside the area of applicability",
        colormap="ylorrd",
        rescale=(0.0, round(2 * float(threshold), 4)),
        stats={"threshold": float(threshold), **summary},
    )
    return [*bounds, applicability], summary
