"""INT8 static quantisation of a segmentation bundle's ONNX graph (ONNX Runtime, CPU).

:func:`quantize_bundle` turns the bundle's fp32 ``model.onnx`` into
``model.int8.onnx`` next to it:

- ``quant_pre_process`` first (ONNX Runtime's shape inference and graph
  optimisation, which folds what can be folded so the quantiser sees plain
  Conv nodes); skipped with a note if it fails on a graph;
- ``quantize_static`` in **QDQ** format (QuantizeLinear/DequantizeLinear pairs
  around each quantised operator; ONNX Runtime fuses them into integer kernels),
  **per-channel** symmetric int8 weights (one scale per output channel of each
  convolution) and asymmetric uint8 activations, whose ranges are calibrated
  (MinMax) on **real chips** of the training scenes — never random data, whose
  activation ranges say nothing about imagery;
- only the convolutional body is quantised (:data:`OP_TYPES`): the input
  normalisation (band standardisation, NDVI/NDWI ratios) and the final softmax
  stay in fp32, where 8 bits would cost accuracy and save no time;
- on x86 CPUs without VNNI the u8×s8 product can saturate, so weights use
  ``reduce_range`` (7 bits) there, as ONNX Runtime's documentation advises.

The bundle's ``segmentation.json`` records, under ``onnx.int8``: the file, the
method, the calibration size and source, and the operator types that were
actually quantised (read back from the written graph).

Cutting the calibration chips from the training scenes and measuring the
int8 graph's IoU cost is the training pipeline's part
(:mod:`terraops.pipelines.segmentation.int8`); :func:`upload_int8` records the result.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from terraops.adapters.segmentation_bundle import (
    INT8_FILE,
    META_FILE,
    ONNX_FILE,
    ONNX_INPUT,
    BundleMeta,
    locate_bundle,
    read_meta,
)
from terraops.adapters.tracked_run import registered_model_id
from terraops.adapters.tracking import mlflow_client
from terraops.errors import InvalidInputError, ModelNotFoundError

OP_TYPES = ("Conv", "Relu", "MaxPool", "Concat", "Resize")
"""Operator types handed to the quantiser (the U-Net's body)."""
CALIBRATION_BATCH = 4
DEFAULT_CALIBRATION_CHIPS = 32


def cpu_has_vnni() -> bool:
    """Whether this CPU has AVX-512 VNNI or AVX-VNNI (int8 dot products without saturation)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:  # pragma: no cover - not Linux
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


class ChipReader:
    """A ``CalibrationDataReader`` over (N, 5, H, W) float32 reflectance chips, in batches."""

    def __init__(self, chips: np.ndarray, fill: np.ndarray, batch: int = CALIBRATION_BATCH):
        x = np.asarray(chips, dtype=np.float32)
        x = np.where(np.isfinite(x), x, fill.reshape(1, -1, 1, 1)).astype(np.float32)
        self._batches: Iterator[np.ndarray] = iter(
            [np.ascontiguousarray(x[i : i + batch]) for i in range(0, len(x), batch)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {ONNX_INPUT: batch}

    def rewind(self) -> None:  # pragma: no cover - only some calibrators call it
        pass


def quantized_op_types(path: Path) -> list[str]:
    """Operator types wrapped in Q/DQ in the graph at ``path``: an input comes from a
    DequantizeLinear and an output goes to a QuantizeLinear (so ONNX Runtime can run
    them as integer kernels)."""
    import onnx

    graph = onnx.load(str(path)).graph
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    q_inputs = {i for n in graph.node if n.op_type == "QuantizeLinear" for i in n.input}
    return sorted(
        {
            n.op_type
            for n in graph.node
            if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
            and any(i in dq_outputs for i in n.input)
            and any(o in q_inputs for o in n.output)
        }
    )


def quantize_bundle(
    bundle_dir: Path,
    calibration_chips: np.ndarray,
    *,
    calibration_source: str = "training scenes",
    reduce_range: bool | None = None,
) -> Path:
    """Write ``model.int8.onnx`` into the bundle; returns its path.

    ``calibration_chips``: (N, 5, H, W) float32 reflectance (NaN allowed: filled
    as the network does) from real imagery. ``reduce_range`` defaults to ``True``
    on CPUs without VNNI. Raises ``ModelNotFoundError`` without an fp32 graph,
    ``InvalidInputError`` for unusable calibration data.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    bundle = locate_bundle(Path(bundle_dir))
    meta = read_meta(bundle)
    source = bundle / ONNX_FILE
    if not source.is_file():
        raise ModelNotFoundError(f"bundle {bundle} has no {ONNX_FILE} to quantise")
    chips = np.asarray(calibration_chips)
    if chips.ndim != 4 or chips.shape[1] != len(meta.bands) or len(chips) == 0:
        raise InvalidInputError(
            f"calibration chips must be (N≥1, {len(meta.bands)}, H, W), got {chips.shape}"
        )
    if reduce_range is None:
        reduce_range = not cpu_has_vnni()
    fill = np.asarray(meta.normalisation["offset"], np.float32)
    target = bundle / INT8_FILE
    preprocessed = True
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        except Exception:  # the optimiser is optional: quantise the raw graph
            preprocessed = False
            prepared = source
        quantize_static(
            str(prepared),
            str(target),
            ChipReader(chips, fill),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(OP_TYPES),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    facts = {
        "file": INT8_FILE,
        "method": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "per_channel": True,
        "weights": "int8 symmetric" + (" (reduce_range, 7 bit)" if reduce_range else ""),
        "activations": "uint8 asymmetric",
        "calibration": {
            "method": "MinMax",
            "chips": int(chips.shape[0]),
            "chip_shape": [int(chips.shape[2]), int(chips.shape[3])],
            "source": calibration_source,
        },
        "pre_processed": preprocessed,
        "op_types_requested": list(OP_TYPES),
        "op_types_quantized": quantized_op_types(target),
    }
    _record(bundle, meta, facts)
    return target


def _record(bundle: Path, meta: BundleMeta, facts: dict[str, Any]) -> None:
    onnx_facts = {**meta.onnx, "int8": facts}
    written = replace(meta, onnx=onnx_facts)
    (bundle / META_FILE).write_text(
        json.dumps(written.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def argmax_agreement(p_a: np.ndarray, p_b: np.ndarray) -> float:
    """Share of pixels whose most probable class is the same in both (N, C, H, W) arrays."""
    return float((p_a.argmax(axis=1) == p_b.argmax(axis=1)).mean())


def upload_int8(
    settings: Any,
    model_name: str,
    version: int,
    run_id: str,
    bundle: Path,
    metrics: dict[str, float],
) -> None:
    """Put a quantised bundle's int8 graph into the registered version; log its IoU cost.

    ``model.int8.onnx`` and the updated ``segmentation.json`` go into the registered
    model's ``artifacts/bundle`` (so every later fetch has the int8 graph); the finite
    ``metrics`` are logged to the training run ``run_id``.
    """
    client = mlflow_client(settings)
    mv = client.get_model_version(model_name, str(version))
    model_id = registered_model_id(client, mv)
    for name in (INT8_FILE, META_FILE):
        if model_id:  # into the registered model itself
            client.log_model_artifact(model_id, str(bundle / name), "artifacts/bundle")
        else:  # pragma: no cover - a run-sourced version (older MLflow): beside it in the run
            client.log_artifact(run_id, str(bundle / name), "int8")
    for key, value in metrics.items():
        if np.isfinite(value):
            client.log_metric(run_id, key, float(value))
