"""The ONNX Runtime CPU session every segmentation graph runs in (no MLflow, no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cpu_session(graph: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session as terraops runs every segmentation graph: ``threads``
    intra-op threads, sequential execution, all graph optimisations.

    Shared by this pyfunc and :class:`terraops.adapters.segmentation_bundle.Segmenter`,
    so the two ways of serving a bundle run the same graph the same way.
    """
    import onnxruntime as ort  # the optional segment extra, needed only to predict

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
