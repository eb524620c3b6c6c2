"""Predict a whole scene with a registered model → COGs, GeoJSON, catalogue layers.

The model sees exactly what training saw: the scene's cell table, built by the
one feature implementation and cached in the scene folder. The table is
streamed in row groups (:func:`terraops.pipelines.scenes.cell_tables.iter_cell_table`),
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

With ``TERRAOPS_DASK_SCHEDULER`` set, the scene's missing cell table is built
on a worker (:mod:`terraops.pipelines.scenes.distributed`) and the cell blocks are
scored by the workers (:func:`terraops.adapters.dask_runner.cell_predictor`:
the model is loaded once per worker process). The driver still reads the
blocks, fills the grids and writes every file in block order, and a block's
predictions do not depend on where they were computed, so the outputs hold
the same values as without a cluster.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rasterio.transform import Affine

from terraops.adapters import dask_runner, raster_io, tables
from terraops.adapters.catalogue import LayerCatalogue
from terraops.adapters.registry import ModelRegistry
from terraops.domain import features
from terraops.domain.layers import layer_id
from terraops.domain.scene_record import Scene
from terraops.errors import InvalidInputError, ModelNotFoundError
from terraops.pipelines.lifecycle.aliases import load_verified_predictor
from terraops.pipelines.lifecycle.resolve import resolve_version
from terraops.pipelines.maps.explanation_layers import write_explanation_layers
from terraops.pipelines.maps.layer_products import (
    scene_imagery_layer,
)
from terraops.pipelines.maps.prediction_layers import (
    PredictionContext,
    derive_grids,
    param_suffix,
    write_prediction_layers,
)
from terraops.pipelines.maps.uncertainty_layers import write_uncertainty_layers
from terraops.pipelines.progress import status_line
from terraops.pipelines.scenes.cell_tables import ensure_cell_table, iter_cell_table
from terraops.pipelines.scenes.distributed import build_cell_tables
from terraops.pipelines.scenes.landcover_source import LandcoverSource, landcover_of_model
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings


@dataclass(frozen=True)
class ModelChoice:
    """The registered model version that predicts, and how it was chosen."""

    name: str
    version: int
    run_id: str
    alias: str | None
    predictor: Any
    params: Mapping[str, Any]
    """The training run's parameters (what its features were built with)."""

    @property
    def lineage(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "run_id": self.run_id}


def choose_model(
    settings: Settings, definition: ServiceDefinition, version: int | None
) -> ModelChoice:
    """The champion (or ``version``), fetched and verified like a server loads it."""
    registry = ModelRegistry(settings)
    name = definition.name
    hint = f"promote one (terraops promote {name} --challenger) or pass --version N"
    info = resolve_version(registry, name, version, hint=hint)
    version = info.version
    try:
        _, predictor = load_verified_predictor(registry, definition, version)
    except ValueError as exc:
        raise ModelNotFoundError(f"model {name} v{version} cannot be used: {exc}") from exc
    alias = "champion" if "champion" in info.aliases else None
    return ModelChoice(name, version, info.run_id, alias, predictor, info.params)


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
    columns = {n: params[n] if n in params else batch[n].to_numpy() for n in names}
    return pd.DataFrame(columns, index=pd.RangeIndex(len(batch))).astype(np.float64)


def _evaluation_rows(
    definition: ServiceDefinition, batch: pd.DataFrame, params: Mapping[str, float]
) -> pd.DataFrame | None:
    """The batch's labelled examples under the same scenario (None: no target here).

    A parameter that overrides one of the scene's own inputs (a what-if, e.g. a
    hotter reference day) makes the scene's truth the answer to another question,
    so nothing is scored then.
    """
    if any(name in batch.columns for name in params):
        return None
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
    lattice: int
    """Cells scored against the scene's target: every ``lattice``-th row and column."""


EVALUATION_CELLS = 1 << 20
"""At most about this many cells are scored against a scene's own target."""


def evaluation_lattice(shape: tuple[int, int]) -> int:
    """The step of the regular lattice of scored cells: 1 (every cell) up to
    :data:`EVALUATION_CELLS` cells, sparser beyond, so that scoring a whole
    Landsat scene (60 M cells) holds about a million pairs, not 60 M — a metric
    over a regular million-cell sample differs from the full one in its third
    decimal, and the ranks a classifier's AUC needs stay cheap."""
    cells = shape[0] * shape[1]
    return max(1, math.ceil(math.sqrt(cells / EVALUATION_CELLS)))


PredictBlocks = Callable[[Iterable[np.ndarray]], Iterator[np.ndarray]]
"""Model-input blocks → one prediction array per block, in the same order."""


def _in_process(model: ModelChoice) -> PredictBlocks:
    return lambda blocks: (model.predictor.predict(block) for block in blocks)


def _blocks_with_predictions(
    blocks: Iterable[tuple[pd.DataFrame, pd.DataFrame]], predict_blocks: PredictBlocks
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, np.ndarray]]:
    """Each (batch, inputs) block with its predictions, in block order.

    ``predict_blocks`` may draw a few blocks ahead (a cluster keeps several in
    flight); the drawn blocks wait in a queue until their predictions come back.
    """
    drawn: deque[tuple[pd.DataFrame, pd.DataFrame]] = deque()

    def arrays() -> Iterator[np.ndarray]:
        for batch, inputs in blocks:
            drawn.append((batch, inputs))
            yield inputs.to_numpy()

    for values in predict_blocks(arrays()):
        batch, inputs = drawn.popleft()
        yield batch, inputs, values


def _stream_predictions(
    scene: Scene,
    settings: Settings,
    definition: ServiceDefinition,
    model: ModelChoice,
    params: Mapping[str, float],
    shape: tuple[int, int],
    cells_out: tables.ParquetRows,
    *,
    landcover: LandcoverSource,
    predict_blocks: PredictBlocks,
) -> _Grids:
    """One pass over the cell table: predict, fill the grids, write the cells parquet."""
    assert definition.map is not None
    names = list(model.predictor.feature_names)
    wanted = {n for d in definition.map.derived for n in d.inputs}
    grids = _Grids(
        np.full(shape, np.nan, np.float32),
        {n: np.full(shape, np.nan, np.float32) for n in wanted},
        [],
        [],
        evaluation_lattice(shape),
    )
    blocks = (
        (batch, _model_inputs(batch, names, params, definition.name))
        for batch in iter_cell_table(scene, settings.cell_size_m, landcover=landcover)
    )
    for batch, inputs, values in _blocks_with_predictions(blocks, predict_blocks):
        rows, cols = batch["row"].to_numpy(), batch["col"].to_numpy()
        grids.prediction[rows, cols] = values
        for n in wanted:
            grids.inputs[n][rows, cols] = batch[n].to_numpy()
        cells_out.write(pd.concat([batch[["row", "col"]].reset_index(drop=True), inputs], axis=1))
        examples = _evaluation_rows(definition, batch, params)
        if examples is not None and grids.lattice > 1:
            on = (examples["row"].to_numpy() % grids.lattice == 0) & (
                examples["col"].to_numpy() % grids.lattice == 0
            )
            examples = examples[on]
        if examples is not None and len(examples):
            # Copies, not views: a view of one column keeps the batch's whole block alive.
            grids.truth.append(np.array(examples[definition.target], dtype=np.float32))
            grids.predicted.append(
                grids.prediction[examples["row"].to_numpy(), examples["col"].to_numpy()]
            )
    return grids


def predict_raster(
    settings: Settings,
    definition: ServiceDefinition,
    scene_dir: Path,
    *,
    out: Path | None = None,
    version: int | None = None,
    params: Mapping[str, float] | None = None,
    progress: bool = False,
    explain: bool = False,
    interval: float | None = None,
) -> dict[str, Any]:
    """Predict every cell of a scene and register the map layers (see the module doc).

    ``explain``: also the per-driver contribution layers and the dominant-driver
    layer (:mod:`terraops.pipelines.maps.explanation_layers`). ``interval``: a
    level (0–1) for the calibrated lower and upper bound layers and the
    applicability layer (:mod:`terraops.pipelines.maps.uncertainty_layers`).
    """
    if interval is not None and not 0.0 < interval < 1.0:
        raise InvalidInputError(
            f"--interval must be between 0 and 1 (exclusive), got {interval}",
            hint="e.g. --interval 0.9 for a 90 % interval",
        )
    if definition.map is None:
        raise InvalidInputError(f"service {definition.name!r} declares no map products")
    started = time.perf_counter()
    checked = check_params(definition, params or {})
    scene = raster_io.read_scene(Path(scene_dir))
    with status_line(progress, f"predict-raster {definition.name}") as say, ExitStack() as stack:
        say("loading the model")
        model = choose_model(settings, definition, version)
        landcover = landcover_of_model(settings, model.params)
        runner = stack.enter_context(dask_runner.cluster_for(settings.dask_scheduler))
        predict_blocks = _in_process(model)
        if runner is not None:
            say(f"building the cell table on {runner.address}")
            build_cell_tables(runner, [scene], settings.cell_size_m, landcover)
            predict_blocks = dask_runner.cell_predictor(
                runner, model.predictor, model.version, model.run_id
            )
        grid = features.cell_grid(scene.shape, float(scene.resolution), settings.cell_size_m)
        x0, y0 = scene.origin
        transform = Affine(grid.cell_size, 0.0, x0, 0.0, -grid.cell_size, y0)
        spec = definition.map
        base = layer_id(definition.name, spec.key, *param_suffix(spec, checked), scene.name)
        out = Path(out) if out else settings.layers_dir / f"{base}.tif"
        ctx = PredictionContext(
            definition,
            spec,
            model.lineage,
            scene.name,
            scene.folder.resolve(),
            checked,
            scene.crs,
            transform,
            datetime.now(UTC).isoformat(timespec="seconds"),
        )
        if runner is None:
            ensure_cell_table(
                scene,
                settings.cell_size_m,
                landcover=landcover,
                progress=lambda step, done, total: say(f"{step}: window {done}/{total}"),
            )
        say("predicting every cell")
        cells_path = out.with_name(f"{out.stem}.cells.parquet")
        with tables.atomic_parquet_rows(cells_path, parents=True) as cells_out:
            grids = _stream_predictions(
                scene,
                settings,
                definition,
                model,
                checked,
                (grid.rows, grid.cols),
                cells_out,
                landcover=landcover,
                predict_blocks=predict_blocks,
            )
        evaluation = _evaluate(definition, grids)
        cluster = runner.info() if runner is not None else None
        stack.close()  # the cluster's work is done: release it before writing
        derived = derive_grids(spec, grids.prediction, grids.inputs)
        grids.inputs = {}  # a whole scene's input grids are GBs: gone before the COGs
        say("writing COGs and vectors")
        layers = write_prediction_layers(
            ctx, base, out, grids.prediction, derived, cells_path, evaluation
        )
        del derived
        explained = None
        if explain:
            say("explaining every cell")
            explained = write_explanation_layers(
                ctx,
                out,
                model.predictor,
                cells_path,
                (grid.rows, grid.cols),
                scene_pixels=scene.width * scene.height,
            )
            layers.extend(explained.layers)
        uncertain = None
        if interval is not None:
            say("calibrated intervals and applicability")
            bands, uncertain = write_uncertainty_layers(
                ctx, out, model.predictor, cells_path, grids.prediction, interval
            )
            layers.extend(bands)
        say("registering layers")
        layers.append(scene_imagery_layer(settings, scene))
        catalogue = LayerCatalogue(settings.layers_dir)
        catalogue.add(*layers)
    seconds = time.perf_counter() - started
    pixels = scene.width * scene.height
    return {
        **({"dask": cluster} if cluster is not None else {}),
        "service": definition.name,
        "scene": scene.name,
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
        **({"explain": explained.facts} if explained is not None else {}),
        **({"interval": uncertain} if uncertain is not None else {}),
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
    sampled = {"lattice_step": grids.lattice} if grids.lattice > 1 else {}
    return {
        "n": int(ok.sum()),
        **sampled,
        **{k: round(float(v), 5) for k, v in metrics.items()},
    }


__all__ = ["ModelChoice", "check_params", "choose_model", "predict_raster"]
