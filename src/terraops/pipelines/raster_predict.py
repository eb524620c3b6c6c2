"""Predict a whole scene with a registered model → COGs, GeoJSON, catalogue layers.

The model sees exactly what training saw: the scene's cell table, built by the
one feature implementation and cached in the scene folder. The table is
streamed in row groups (:func:`terraops.pipelines.scenes.iter_cell_table`),
so what this step holds is one batch of cells plus the prediction grid at
cell resolution (a 20 m cell of a 2 m scene is 1/100 of its pixels).

Outputs, all carrying lineage (model name, version, run id, scene, parameters):
- the prediction COG (``--out``) with the model inputs of every cell beside it
  (``*.cells.parquet``, what a map click shows and sends to the live API);
- the service's derived rasters (UHI: heat-island intensity);
- the service's area polygons as GeoJSON in EPSG:4326 (UHI hot spots,
  flooded areas);
- one catalogue layer for each, plus the scene's RGB imagery.

When the scene carries the service's target (a synthetic city), the
prediction is scored against it and the metrics are returned and stored with
the layer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rasterio.transform import Affine

from terraops.adapters import cog, raster_io
from terraops.adapters.catalogue import LayerCatalogue, file_fingerprint
from terraops.domain import features
from terraops.domain.layers import Layer, layer_id
from terraops.domain.mapping import area_polygons, feature_collection
from terraops.errors import InvalidInputError, ModelNotFoundError
from terraops.pipelines.layer_products import (
    raster_layer,
    scene_imagery_layer,
    wgs84_bounds,
    wgs84_transformer,
    write_json_atomic,
)
from terraops.pipelines.progress import status_line
from terraops.pipelines.scenes import iter_cell_table
from terraops.services.base import MapSpec, RasterStyle, ServiceDefinition
from terraops.settings import Settings


@dataclass(frozen=True)
class ModelChoice:
    """The registered model version that predicts, and how it was chosen."""

    name: str
    version: int
    run_id: str
    alias: str | None
    predictor: Any

    @property
    def lineage(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "run_id": self.run_id}


def choose_model(
    settings: Settings, definition: ServiceDefinition, version: int | None
) -> ModelChoice:
    """The champion (or ``version``), fetched and verified like a server loads it."""
    from terraops.adapters.registry import ModelRegistry
    from terraops.pipelines.lifecycle import load_verified_predictor

    registry = ModelRegistry(settings)
    name = definition.name
    if version is None:
        version = registry.get_alias(name, "champion")
        if version is None:
            raise ModelNotFoundError(
                f"{name} has no champion",
                hint=f"promote one (terraops promote {name} --challenger) or pass --version N",
            )
    info = registry.get_version(name, version)
    try:
        _, predictor = load_verified_predictor(registry, definition, version)
    except ValueError as exc:
        raise ModelNotFoundError(f"model {name} v{version} cannot be used: {exc}") from exc
    alias = "champion" if "champion" in info.aliases else None
    return ModelChoice(name, version, info.run_id, alias, predictor)


def check_params(definition: ServiceDefinition, params: Mapping[str, float]) -> dict[str, float]:
    """Scenario parameters must be finite values of the service's own features."""
    checked: dict[str, float] = {}
    for name, value in params.items():
        if name not in definition.feature_names:
            raise InvalidInputError(
                f"{definition.name} has no input {name!r} to set",
                hint=f"inputs: {', '.join(definition.feature_names)}",
            )
        spec = definition.feature(name)
        if not (np.isfinite(value) and spec.minimum <= value <= spec.maximum):
            raise InvalidInputError(
                f"--param {name}={value:g} is outside "
                f"{spec.minimum:g} to {spec.maximum:g} {spec.unit}"
            )
        checked[name] = float(value)
    return checked


def _model_inputs(
    batch: pd.DataFrame, names: list[str], params: Mapping[str, float], service: str
) -> pd.DataFrame:
    """The batch's model inputs in the model's column order (params override columns)."""
    missing = [n for n in names if n not in batch.columns and n not in params]
    if missing:
        raise InvalidInputError(
            f"{service} needs {', '.join(missing)}, which the scene does not provide",
            hint="give them as scenario parameters: "
            + " ".join(f"--param {n}=VALUE" for n in missing),
        )
    inputs = pd.DataFrame({n: params[n] if n in params else batch[n] for n in names})
    return inputs.astype(np.float64)


def _evaluation_rows(
    definition: ServiceDefinition, batch: pd.DataFrame, params: Mapping[str, float]
) -> pd.DataFrame | None:
    """The batch's labelled examples under the same scenario (None: no target here)."""
    try:
        examples = definition.build_examples(batch)
    except (KeyError, ValueError):
        return None
    if definition.target not in examples.columns:
        return None
    for name, value in params.items():
        if name in examples.columns:
            examples = examples[np.isclose(examples[name].to_numpy(float), value)]
    return examples


@dataclass
class _Grids:
    """What one streamed pass fills: predictions and inputs at cell resolution."""

    prediction: np.ndarray
    inputs: dict[str, np.ndarray]
    truth: list[np.ndarray]
    predicted: list[np.ndarray]


def _stream_predictions(
    scene_dir: Path,
    settings: Settings,
    definition: ServiceDefinition,
    model: ModelChoice,
    params: Mapping[str, float],
    shape: tuple[int, int],
    cells_out: Path,
) -> _Grids:
    """One pass over the cell table: predict, fill the grids, write the cells parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert definition.map is not None
    names = list(model.predictor.feature_names)
    wanted = {n for d in definition.map.derived for n in d.inputs}
    grids = _Grids(
        np.full(shape, np.nan, np.float32),
        {n: np.full(shape, np.nan, np.float32) for n in wanted},
        [],
        [],
    )
    writer: Any = None
    try:
        for batch in iter_cell_table(scene_dir, settings.cell_size_m):
            inputs = _model_inputs(batch, names, params, definition.name)
            values = model.predictor.predict(inputs.to_numpy())
            rows, cols = batch["row"].to_numpy(), batch["col"].to_numpy()
            grids.prediction[rows, cols] = values
            for n in wanted:
                grids.inputs[n][rows, cols] = batch[n].to_numpy()
            cells = pa.Table.from_pandas(
                pd.concat([batch[["row", "col"]].reset_index(drop=True), inputs], axis=1),
                preserve_index=False,
            )
            writer = writer or pq.ParquetWriter(cells_out, cells.schema)
            writer.write_table(cells)
            examples = _evaluation_rows(definition, batch, params)
            if examples is not None and len(examples):
                grids.truth.append(examples[definition.target].to_numpy(float))
                grids.predicted.append(
                    grids.prediction[examples["row"].to_numpy(), examples["col"].to_numpy()]
                )
    finally:
        if writer is not None:
            writer.close()
    return grids


def _rescale(style: RasterStyle, values: np.ndarray) -> tuple[float, float]:
    if style.rescale is not None:
        return style.rescale
    finite = values[np.isfinite(values)]
    if not finite.size:
        return (0.0, 1.0)
    lo, hi = np.percentile(finite, [2, 98])
    return (round(float(lo), 2), round(float(max(hi, lo + 1e-3)), 2))


def _grid_stats(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return {"cells": 0}
    return {
        "cells": int(finite.size),
        "min": round(float(finite.min()), 4),
        "mean": round(float(finite.mean()), 4),
        "max": round(float(finite.max()), 4),
    }


def _param_suffix(spec: MapSpec, params: Mapping[str, float]) -> list[str]:
    return [spec.param_labels.get(k, k + "{:g}").format(v) for k, v in sorted(params.items())]


def _param_text(params: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(params.items()))


@dataclass(frozen=True)
class _Context:
    """Everything the layer writers share for one predict-raster call."""

    definition: ServiceDefinition
    spec: MapSpec
    model: ModelChoice
    scene: str
    scene_dir: Path
    params: dict[str, float]
    crs: str
    transform: Affine
    created_at: str

    @property
    def lineage(self) -> dict[str, Any]:
        return {
            "model": self.model.lineage,
            "scene": self.scene,
            "scene_dir": str(self.scene_dir),
            "params": dict(self.params),
            "cell_size_m": abs(self.transform.a),
        }

    def tags(self, layer: str, unit: str) -> dict[str, str]:
        """GeoTIFF metadata: lineage readable by gdalinfo / QGIS without terraops."""
        return {
            "terraops_layer": layer,
            "model_name": self.model.name,
            "model_version": str(self.model.version),
            "model_run_id": self.model.run_id,
            "scene": self.scene,
            "params": json.dumps(self.params, sort_keys=True),
            "unit": unit,
            "created_at": self.created_at,
        }

    def title(self, what: str) -> str:
        suffix = f" ({_param_text(self.params)})" if self.params else ""
        return f"{what} — {self.scene}{suffix} · {self.model.name} v{self.model.version}"


def _write_raster_layer(
    ctx: _Context,
    *,
    lid: str,
    role: str,
    what: str,
    unit: str,
    style: RasterStyle,
    values: np.ndarray,
    out: Path,
    stats: Mapping[str, Any],
    features_path: Path | None = None,
) -> Layer:
    cog.write_array_cog(
        values.astype(np.float32),
        out,
        crs=ctx.crs,
        transform=ctx.transform,
        nodata=float("nan"),
        tags=ctx.tags(lid, unit),
        descriptions=(lid,),
    )
    return raster_layer(
        lid=lid,
        title=ctx.title(what),
        group=ctx.spec.group,
        role=role,
        path=out,
        unit=unit,
        legend=style.legend,
        colormap=style.colormap,
        rescale=_rescale(style, values),
        lineage=ctx.lineage,
        stats={**_grid_stats(values), **stats},
        created_at=ctx.created_at,
        features_path=features_path,
    )


def _write_area_layers(
    ctx: _Context, base: str, out: Path, sources: Mapping[str, tuple[np.ndarray, str]]
) -> list[Layer]:
    """GeoJSON (EPSG:4326) of every area rule of the service, as vector layers."""
    layers = []
    to_wgs84 = wgs84_transformer(ctx.crs)
    for rule in ctx.spec.areas:
        values, unit = sources[rule.source]
        threshold = rule.threshold(values)
        polygons = area_polygons(values, threshold, ctx.transform)
        lid = layer_id(base, rule.key)
        path = out.with_name(f"{out.stem}.{rule.key}.geojson")
        properties = {
            "layer": lid,
            "class": rule.key,
            "model_name": ctx.model.name,
            "model_version": ctx.model.version,
            "model_run_id": ctx.model.run_id,
            "scene": ctx.scene,
            **{f"param_{k}": v for k, v in ctx.params.items()},
            "threshold": round(threshold, 4),
            "rule": rule.rule,
            "unit": unit,
        }
        collection = feature_collection(
            polygons, to_wgs84=to_wgs84, properties=properties, value_name="value"
        )
        write_json_atomic(path, collection)
        layers.append(
            Layer(
                id=lid,
                title=ctx.title(rule.title),
                kind="vector",
                group=ctx.spec.group,
                role=rule.key,
                path=str(path),
                unit=unit,
                legend=rule.rule,
                bounds=wgs84_bounds(ctx.crs, _grid_bounds(ctx.transform, values.shape)),
                crs="EPSG:4326",
                fingerprint=file_fingerprint(path),
                created_at=ctx.created_at,
                lineage=ctx.lineage,
                stats={
                    "polygons": len(polygons),
                    "area_m2": round(sum(p.area_m2 for p in polygons), 1),
                    "threshold": round(threshold, 4),
                },
            )
        )
    return layers


def _grid_bounds(transform: Affine, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    rows, cols = shape
    x0, y0 = transform.c, transform.f
    x1, y1 = x0 + cols * transform.a, y0 + rows * transform.e
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def predict_raster(
    settings: Settings,
    definition: ServiceDefinition,
    scene_dir: Path,
    *,
    out: Path | None = None,
    version: int | None = None,
    params: Mapping[str, float] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Predict every cell of a scene and register the map layers (see the module doc)."""
    if definition.map is None:
        raise InvalidInputError(f"service {definition.name!r} declares no map products")
    started = time.perf_counter()
    checked = check_params(definition, params or {})
    scene_dir = Path(scene_dir)
    manifest = raster_io.read_manifest(scene_dir)
    with status_line(progress, f"predict-raster {definition.name}") as say:
        say("loading the model")
        model = choose_model(settings, definition, version)
        grid = features.cell_grid(
            (int(manifest["height"]), int(manifest["width"])),
            float(manifest["resolution"]),
            settings.cell_size_m,
        )
        t = manifest["transform"]
        transform = Affine(grid.cell_size, 0.0, float(t[2]), 0.0, -grid.cell_size, float(t[5]))
        spec = definition.map
        scene = str(manifest["name"])
        base = layer_id(definition.name, spec.key, *_param_suffix(spec, checked), scene)
        out = Path(out) if out else settings.layers_dir / f"{base}.tif"
        ctx = _Context(
            definition,
            spec,
            model,
            scene,
            scene_dir.resolve(),
            checked,
            str(manifest["crs"]),
            transform,
            datetime.now(UTC).isoformat(timespec="seconds"),
        )
        say("predicting every cell")
        cells_path = out.with_name(f"{out.stem}.cells.parquet")
        staged_cells = cells_path.with_name(f".{cells_path.name}.tmp-{os.getpid()}")
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            grids = _stream_predictions(
                scene_dir,
                settings,
                definition,
                model,
                checked,
                (grid.rows, grid.cols),
                staged_cells,
            )
            staged_cells.replace(cells_path)
        finally:
            staged_cells.unlink(missing_ok=True)
        evaluation = _evaluate(definition, grids)
        say("writing COGs and vectors")
        layers = _write_layers(ctx, base, out, grids, cells_path, evaluation)
        say("registering layers")
        layers.append(scene_imagery_layer(settings, scene_dir))
        catalogue = LayerCatalogue(settings.layers_dir)
        for layer in layers:
            catalogue.add(layer)
    seconds = time.perf_counter() - started
    pixels = int(manifest["width"]) * int(manifest["height"])
    return {
        "service": definition.name,
        "scene": scene,
        "model": {**model.lineage, "alias": model.alias},
        "params": checked,
        "out": str(out),
        "cells": int(np.isfinite(grids.prediction).sum()),
        "grid": [grid.rows, grid.cols],
        "cell_size_m": grid.cell_size,
        "evaluation": evaluation,
        "layers": [{"id": layer.id, "kind": layer.kind, "path": layer.path} for layer in layers],
        "seconds": round(seconds, 3),
        "megapixels_per_s": round(pixels / 1e6 / seconds, 3),
    }


def _evaluate(definition: ServiceDefinition, grids: _Grids) -> dict[str, float] | None:
    """Metrics against the scene's own target, when it has one."""
    if not grids.truth:
        return None
    truth, predicted = np.concatenate(grids.truth), np.concatenate(grids.predicted)
    ok = np.isfinite(truth) & np.isfinite(predicted)
    if ok.sum() < 2:
        return None
    metrics = definition.metrics(truth[ok], predicted[ok])
    return {"n": int(ok.sum()), **{k: round(float(v), 5) for k, v in metrics.items()}}


def _write_layers(
    ctx: _Context,
    base: str,
    out: Path,
    grids: _Grids,
    cells_path: Path,
    evaluation: Mapping[str, float] | None,
) -> list[Layer]:
    spec, definition = ctx.spec, ctx.definition
    unit = definition.prediction_unit
    layers = [
        _write_raster_layer(
            ctx,
            lid=base,
            role="prediction",
            what=spec.title,
            unit=unit,
            style=spec.prediction,
            values=grids.prediction,
            out=out,
            stats={"evaluation": dict(evaluation)} if evaluation else {},
            features_path=cells_path,
        )
    ]
    sources: dict[str, tuple[np.ndarray, str]] = {"prediction": (grids.prediction, unit)}
    for derived in spec.derived:
        values, facts = derived.compute(grids.prediction, grids.inputs)
        derived_id = layer_id(
            definition.name, derived.key, *_param_suffix(spec, ctx.params), ctx.scene
        )
        sources[derived.key] = (values, derived.unit)
        layers.append(
            _write_raster_layer(
                ctx,
                lid=derived_id,
                role="derived",
                what=derived.title,
                unit=derived.unit,
                style=derived.style,
                values=values,
                out=out.with_name(f"{out.stem}.{derived.key}.tif"),
                stats=facts,
            )
        )
    layers.extend(_write_area_layers(ctx, base, out, sources))
    return layers


__all__ = ["ModelChoice", "check_params", "choose_model", "predict_raster"]
