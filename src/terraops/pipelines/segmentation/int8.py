"""The INT8 graph of a just-registered segmentation version: calibrate, quantise, measure, record.

The quantiser itself is an adapter (:mod:`terraops.adapters.onnx_quantize`: files
in, files out); this pipeline gives it what only the training pipeline has —
calibration chips cut from the *training* scenes (never random data, whose
activation ranges say nothing about imagery) — and measures what the int8
graph costs in building IoU on the held-out scenes, predicted exactly as
production predicts (windowed, blended: :func:`predict_array`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from terraops.adapters.onnx_quantize import DEFAULT_CALIBRATION_CHIPS, quantize_bundle, upload_int8
from terraops.adapters.registry import ModelRegistry
from terraops.adapters.segmentation_bundle import Segmenter, locate_bundle, read_meta
from terraops.domain.segmentation.classes import SEGMENTATION_NODATA, SegClass
from terraops.pipelines.segmentation.data import SceneArrays, random_chips
from terraops.pipelines.segmentation.window_inference import predict_array


def calibration_chips(
    scenes: Sequence[SceneArrays],
    n: int = DEFAULT_CALIBRATION_CHIPS,
    chip: int = 256,
    seed: int = 0,
) -> np.ndarray:
    """``n`` random ``chip``² crops of the (training) scenes, as calibration input."""
    side = min(chip, *(min(s.shape) for s in scenes))
    x, _ = random_chips(scenes, n, side, np.random.default_rng(seed))
    return x


def building_iou(segmenter: Any, scenes: Sequence[SceneArrays], tile: int, overlap: int) -> float:
    """Pixel IoU of the building class over whole scenes (pooled), predicted as in production."""
    building = int(SegClass.BUILDING)
    inter = union = 0
    for scene in scenes:
        labels, _ = predict_array(
            scene.image,
            segmenter.predict_proba,
            n_classes=segmenter.n_classes,
            tile=tile,
            overlap=overlap,
        )
        valid = scene.labels != SEGMENTATION_NODATA
        pred, true = (labels == building) & valid, (scene.labels == building) & valid
        inter += int((pred & true).sum())
        union += int((pred | true).sum())
    return inter / union if union else float("nan")


def int8_iou_cost(bundle: Path, val: Sequence[SceneArrays]) -> dict[str, float]:
    """Building IoU of the fp32 and int8 ONNX graphs on held-out scenes, and the loss in points."""
    meta = read_meta(bundle)
    fp32 = building_iou(Segmenter(bundle, engine="onnx"), val, meta.tile, meta.overlap)
    int8 = building_iou(Segmenter(bundle, engine="onnx-int8"), val, meta.tile, meta.overlap)
    return {
        "building_iou_val_onnx": fp32,
        "building_iou_val_int8": int8,
        "int8_iou_loss_points": 100.0 * (fp32 - int8),
    }


def quantize_registered_version(
    settings: Any,
    service: Any,
    run_id: str,
    version: int,
    train: Sequence[SceneArrays],
    val: Sequence[SceneArrays],
    *,
    n_chips: int = DEFAULT_CALIBRATION_CHIPS,
) -> dict[str, float]:
    """Registration hook: quantise a just-registered version, measure and record its IoU cost.

    The version's bundle is fetched (the registry's local cache), quantised with
    ``n_chips`` chips of the training scenes, and ``model.int8.onnx`` plus the
    updated ``segmentation.json`` are uploaded into the registered model's
    ``artifacts/bundle`` (so every later fetch has the int8 graph). Building IoU
    of fp32 vs int8 ONNX on the held-out scenes is logged to the training run as
    ``building_iou_val_int8`` and ``int8_iou_loss_points``; returns those metrics.
    """
    bundle = locate_bundle(ModelRegistry(settings).fetch_model(service.name, version))
    chips = calibration_chips(train, n=n_chips, chip=int(service.tile))
    names = ", ".join(s.name for s in train)
    quantize_bundle(bundle, chips, calibration_source=f"training scenes: {names}")
    metrics = int8_iou_cost(bundle, val)
    upload_int8(settings, service.name, version, run_id, bundle, metrics)
    return metrics
