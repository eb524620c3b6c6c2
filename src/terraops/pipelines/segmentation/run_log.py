"""The MLflow record of a segmentation training run, in the tabular services' conventions.

Same store, same experiment naming (``<prefix>-segmentation``), same tags
(``terraops.service``, ``terraops.data_fingerprint``, ``terraops.data_quality``,
``terraops.scenes``) and the same three artifacts the promotion gates require
(the model, ``feature_schema.json`` — here the input schema: bands,
normalisation, classes, tile — and ``data_fingerprint.json``), so the
lifecycle and the model card read a segmentation run like any other.
Metrics are logged once per epoch (``step`` = epoch); MLflow's latest value of
each is the final epoch's, which is what the registry and the gates read.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from terraops.adapters import tracking
from terraops.adapters.segmentation_bundle import BundleMeta, log_bundle, save_bundle
from terraops.services.segmentation import SegmentationService
from terraops.settings import Settings


def input_schema(service: SegmentationService, meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a caller must send and gets back (logged as ``feature_schema.json``)."""
    return {
        "service": service.name,
        "task": "semantic_segmentation",
        "input": {
            "shape": ["batch", len(service.bands), "height", "width"],
            "dtype": "float32",
            "bands": list(service.bands),
            "unit": "surface reflectance (0–1)",
            "normalisation": meta["normalisation"],
        },
        "output": {
            "shape": ["batch", service.n_classes, "height", "width"],
            "meaning": "class probabilities (softmax)",
            "classes": {str(k): v for k, v in service.classes.items()},
        },
        "tile": service.tile,
        "overlap": service.overlap,
    }


def _finite(values: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if math.isfinite(float(v))}


def log_training_run(
    settings: Settings,
    service: SegmentationService,
    model: Any,
    arch: Mapping[str, Any],
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    history: Sequence[Mapping[str, float]],
    quality: Mapping[str, Any],
    fingerprint: Mapping[str, Any],
) -> tuple[str, int]:
    """Log one run and register its bundle; returns (run id, registered version)."""
    # torch (the optional segment extra), only when a run is logged
    from terraops.models.unet import UNetConfig

    config = UNetConfig.from_dict({**arch, "n_classes": service.n_classes})
    scenes = fingerprint["scenes"]
    experiment_id = tracking.ensure_experiment(settings, service.name)
    with tracking.owned_run(settings, experiment_id, f"{service.name}-train") as run:
        run.set_tags(
            {
                "terraops.service": service.name,
                "terraops.data_fingerprint": fingerprint["sha256"],
                "terraops.data_quality": "passed" if quality["passed"] else "failed",
                "terraops.scenes": ",".join(s["name"] for s in scenes if s["role"] == "train"),
                "terraops.val_scenes": ",".join(s["name"] for s in scenes if s["role"] == "val"),
                "terraops.device": str(params.get("device", "")),
            }
        )
        run.log_params(dict(params))
        for record in history:
            step = int(record["epoch"])
            run.log_metrics(_finite({k: v for k, v in record.items() if k != "epoch"}), step)
        run.log_metrics(_finite(metrics))
        run.log_dict(dict(quality), "data_quality.json")
        run.log_dict(dict(fingerprint), "data_fingerprint.json")
        run.log_dict({"epochs": [dict(r) for r in history]}, "history.json")
        meta = BundleMeta.for_model(
            service, config, {"run_id": run.run_id, "metrics": _finite(metrics)}
        )
        run.log_dict(input_schema(service, meta.to_dict()), "feature_schema.json")
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp) / "bundle"
            written = save_bundle(bundle, model, meta)
            run.log_metric("onnx_max_abs_prob_diff", written.onnx["max_abs_prob_diff_on_example"])
            version = log_bundle(run, bundle, written, registered_name=service.name)
    return run.run_id, version
