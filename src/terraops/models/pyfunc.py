"""The MLflow ``pyfunc`` face of a segmentation bundle.

A registered ``segmentation`` version is an MLflow model directory whose
``artifacts/bundle`` folder is the terraops bundle (``model.pt``,
``model.onnx``, ``segmentation.json``; see
:mod:`terraops.adapters.segmentation_bundle`). terraops itself reads the
bundle directly; this class only makes the same directory usable through
``mlflow.pyfunc.load_model`` (and ``mlflow models serve``): input a float32
array ``(N, 5, H, W)`` of reflectance, output class probabilities
``(N, C, H, W)``, computed by ONNX Runtime on CPU.

The class lives in an importable module so MLflow pickles it by reference
(its name), not by value (its code). It runs the graph with ONNX Runtime
itself rather than through the bundle adapter, so that model code never
imports the adapters (which import it to log it); the chips are prepared as
:class:`terraops.adapters.segmentation_bundle.Segmenter` prepares them (no
data → the band's normalisation offset), which a test checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.pyfunc import PythonModel

from terraops.models.onnx_session import cpu_session

BUNDLE_ARTIFACT = "bundle"
"""The model artifact that holds the terraops bundle folder."""
BUNDLE_META_FILE = "segmentation.json"
BUNDLE_ONNX_FILE = "model.onnx"
"""The bundle's fp32 graph: input ``reflectance`` (N, 5, H, W), output ``probabilities``."""


class SegmentationPyfunc(PythonModel):
    """Reflectance chips → class probabilities through the bundle's ONNX graph."""

    # MLflow would read predict()'s type hints as an input schema (it knows lists
    # and dataframes, not 4-D arrays) and warn; the logged tensor signature is the
    # schema. This is the switch MLflow's own ChatModel uses to opt out.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        bundle = Path(context.artifacts[BUNDLE_ARTIFACT])
        meta = json.loads((bundle / BUNDLE_META_FILE).read_text(encoding="utf-8"))
        offset = np.asarray(meta["normalisation"]["offset"], np.float32)
        self._fill = offset[None, :, None, None]
        self._session = cpu_session(bundle / BUNDLE_ONNX_FILE, len(os.sched_getaffinity(0)))

    # Untyped on purpose: at logging time MLflow tries to turn predict()'s hints
    # into a signature and warns that an array is not list[...].
    def predict(self, context, model_input, params=None):
        if isinstance(model_input, dict):  # a named-tensor request: its only tensor
            (model_input,) = model_input.values()
        chips = np.asarray(model_input, dtype=np.float32)
        chips = np.ascontiguousarray(np.where(np.isfinite(chips), chips, self._fill), np.float32)
        (probabilities,) = self._session.run(None, {self._session.get_inputs()[0].name: chips})
        return np.asarray(probabilities, dtype=np.float32)
