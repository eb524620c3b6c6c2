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
(its name), not by value (its code).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mlflow.pyfunc import PythonModel

BUNDLE_ARTIFACT = "bundle"


class SegmentationPyfunc(PythonModel):
    """Reflectance chips → class probabilities through the bundle's ONNX graph."""

    # MLflow would read predict()'s type hints as an input schema (it knows lists
    # and dataframes, not 4-D arrays) and warn; the logged tensor signature is the
    # schema. This is the switch MLflow's own ChatModel uses to opt out.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        from pathlib import Path

        from terraops.adapters.segmentation_bundle import Segmenter

        self._segmenter = Segmenter.from_dir(
            Path(context.artifacts[BUNDLE_ARTIFACT]), engine="onnx"
        )

    # Untyped on purpose: at logging time MLflow tries to turn predict()'s hints
    # into a signature and warns that an array is not list[...].
    def predict(self, context, model_input, params=None):
        if isinstance(model_input, dict):  # a named-tensor request: its only tensor
            (model_input,) = model_input.values()
        return self._segmenter.predict_proba(np.asarray(model_input, dtype=np.float32))
