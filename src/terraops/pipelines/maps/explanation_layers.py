"""Explanation layers of a raster prediction: one contribution COG per driver + the dominant driver.

Runs after :mod:`terraops.pipelines.maps.raster_predict` has written the
prediction and the model inputs of every cell (``*.cells.parquet``): the
inputs are read back in row blocks, explained by the very predictor that made
the map (:meth:`~terraops.adapters.model_bundle.Predictor.explain`), summed
into drivers (:mod:`terraops.domain.explain`) and written into grids at cell
resolution. Memory is one block of cells plus one grid per driver (a 20 m
cell of a 2 m scene is 1/100 of its pixels).

Layers:
- ``{service}-why-{driver}-...``: the driver's contribution in the
  prediction's unit (K for temperature), on a diverging palette centred on 0
  (red pushes the prediction up, blue down);
- ``{service}-why-dominant-...``: the driver with the largest push up, a
  categorical raster with its colour table embedded and its legend in the
  layer's ``stats["classes"]`` (code 0: nothing in the place pushes it up).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from terraops.adapters import cog, tables
from terraops.domain.explain import (
    contribution_unit,
    dominant_driver,
    driver_contributions,
    driver_legend,
    hex_rgba,
    ranked_mask,
    service_drivers,
)
from terraops.domain.layers import Layer, layer_id
from terraops.pipelines.maps.layer_products import raster_layer
from terraops.pipelines.maps.prediction_layers import PredictionContext, param_suffix

#: Cells explained per ``Predictor.explain`` call: a few MB of contributions.
BLOCK_CELLS = 32_768
#: TreeSHAP threads: 0 = every core (a batch job, not a server worker).
EXPLAIN_THREADS = 0
#: No-data code of the dominant-driver raster (transparent on the map).
DOMINANT_NODATA = 255
DIVERGING = "rdbu_r"


@dataclass(frozen=True)
class ExplanationLayers:
    """The catalogue entries written, and what explaining cost."""

    layers: list[Layer]
    facts: dict[str, Any]


@dataclass
class _DriverGrids:
    contributions: np.ndarray  # (drivers, rows, cols) float32, NaN = no cell
    dominant: np.ndarray  # (rows, cols) uint8 class codes
    baseline: list[float]


def _explain_cells(
    predictor: Any, service: str, cells_path: Path, shape: tuple[int, int]
) -> _DriverGrids:
    """One pass over the cells parquet: contributions per driver and dominant codes per cell."""
    keys = service_drivers(service).keys
    ranked = ranked_mask(service)
    names = list(predictor.feature_names)
    grids = _DriverGrids(
        np.full((len(keys), *shape), np.nan, np.float32),
        np.full(shape, DOMINANT_NODATA, np.uint8),
        [],
    )
    for batch in tables.iter_parquet_batches(cells_path, BLOCK_CELLS):
        rows, cols = batch["row"].to_numpy(), batch["col"].to_numpy()
        X = batch[names].to_numpy(np.float64)
        explanation = predictor.explain(X, num_threads=EXPLAIN_THREADS)
        _, drivers = driver_contributions(explanation.contributions, names, service)
        grids.contributions[:, rows, cols] = drivers.T
        grids.dominant[rows, cols] = dominant_driver(drivers, ranked) + 1  # NO_PUSH → 0
        grids.baseline.extend(explanation.baseline[:1].tolist())
    return grids


def _layer_id(ctx: PredictionContext, what: str) -> str:
    """``uhi-why-vegetation-city1`` (scenario parameters before the scene, like the prediction)."""
    suffix = param_suffix(ctx.spec, ctx.params)
    return layer_id(ctx.definition.name, "why", what, *suffix, ctx.scene)


def _symmetric_range(values: np.ndarray) -> tuple[float, float]:
    """±the 98th percentile of |value|: the palette's white sits on 0."""
    finite = np.abs(values[np.isfinite(values)])
    bound = float(np.percentile(finite, 98)) if finite.size else 1.0
    bound = max(round(bound, 3), 1e-3)
    return (-bound, bound)


def _stats(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return {"cells": 0}
    return {
        "cells": int(finite.size),
        "mean": round(float(finite.mean()), 4),
        "min": round(float(finite.min()), 4),
        "max": round(float(finite.max()), 4),
    }


def _driver_layer(
    ctx: PredictionContext, out: Path, driver: Any, values: np.ndarray, unit: str
) -> Layer:
    """One driver's diverging contribution COG."""
    lid = _layer_id(ctx, driver.key)
    path = out.with_name(f"{out.stem}.why-{driver.key}.tif")
    ctx.write_cog(lid, unit, values, path)
    return raster_layer(
        lid=lid,
        title=ctx.title(f"Why: {driver.label.lower()}"),
        group=ctx.spec.group,
        role="explanation",
        path=path,
        unit=unit,
        legend=f"How much {driver.label.lower()} moves the prediction ({unit}): "
        "red pushes it up, blue down, white no effect",
        colormap=DIVERGING,
        rescale=_symmetric_range(values),
        lineage=ctx.lineage,
        stats={**_stats(values), "driver": driver.key},
        created_at=ctx.created_at,
    )


def _write_layers(ctx: PredictionContext, out: Path, grids: _DriverGrids, unit: str) -> list[Layer]:
    """Every driver's COG and the dominant-driver COG, written side by side.

    Six small COGs cost more in GDAL's per-file work (create, tag, copy to COG,
    validate) than in pixels, and GDAL releases the GIL: threads overlap them.
    """
    drivers = service_drivers(ctx.definition.name).drivers
    with ThreadPoolExecutor(max_workers=max(1, min(len(drivers) + 1, os.cpu_count() or 1))) as pool:
        jobs = [
            pool.submit(_driver_layer, ctx, out, driver, values, unit)
            for driver, values in zip(drivers, grids.contributions, strict=True)
        ]
        jobs.append(pool.submit(_dominant_layer, ctx, out, grids))
        return [job.result() for job in jobs]


def _dominant_layer(ctx: PredictionContext, out: Path, grids: _DriverGrids) -> Layer:
    """The categorical dominant-driver COG (colour table embedded) and its legend."""
    classes = driver_legend(ctx.definition.name)
    lid = _layer_id(ctx, "dominant")
    path = out.with_name(f"{out.stem}.why-dominant.tif")
    rows, cols = grids.dominant.shape
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": 1,
        "dtype": "uint8",
        "crs": ctx.crs,
        "transform": ctx.transform,
        "nodata": DOMINANT_NODATA,
        "tiled": True,
        "blockxsize": cog.cog_block_size(cols, rows),
        "blockysize": cog.cog_block_size(cols, rows),
    }
    palette = {c["code"]: hex_rgba(c["colour"]) for c in classes}
    with cog.staged_output(path) as staging:
        with cog.open_staged_geotiff(staging, profile) as dst:
            dst.write(grids.dominant, 1)
            dst.write_colormap(1, {**palette, DOMINANT_NODATA: (0, 0, 0, 0)})
            dst.set_band_description(1, "dominant driver")
        cog.finish_cog(staging, path, tags=ctx.tags(lid, "class"))
    filled = grids.dominant[grids.dominant != DOMINANT_NODATA]
    total = max(1, filled.size)
    return raster_layer(
        lid=lid,
        title=ctx.title("Why: dominant driver"),
        group=ctx.spec.group,
        role="explanation-dominant",
        path=path,
        unit="class",
        legend="; ".join(f"{c['label']} {c['colour']}" for c in classes)
        + " — the driver that pushes the prediction up the most",
        colormap=None,
        rescale=None,
        lineage=ctx.lineage,
        stats={
            "categorical": True,
            "classes": {
                c["key"]: {
                    "code": c["code"],
                    "label": c["label"],
                    "colour": c["colour"],
                    "share": round(float((filled == c["code"]).sum()) / total, 4),
                }
                for c in classes
            },
        },
        created_at=ctx.created_at,
    )


def write_explanation_layers(
    ctx: PredictionContext,
    out: Path,
    predictor: Any,
    cells_path: Path,
    shape: tuple[int, int],
    *,
    scene_pixels: int,
) -> ExplanationLayers:
    """Explain every cell of a prediction and write its driver and dominant-driver layers."""
    started = time.perf_counter()
    unit = contribution_unit(ctx.definition.prediction_unit)
    grids = _explain_cells(predictor, ctx.definition.name, cells_path, shape)
    explained = time.perf_counter()
    layers = _write_layers(ctx, out, grids, unit)
    seconds = time.perf_counter() - started
    cells = int((grids.dominant != DOMINANT_NODATA).sum())
    return ExplanationLayers(
        layers,
        {
            "unit": unit,
            "baseline": round(grids.baseline[0], 4) if grids.baseline else None,
            "cells": cells,
            "seconds": round(seconds, 3),
            "explain_seconds": round(explained - started, 3),
            "cells_per_s": round(cells / max(seconds, 1e-9), 1),
            "megapixels_per_s": round(scene_pixels / 1e6 / max(seconds, 1e-9), 3),
        },
    )
