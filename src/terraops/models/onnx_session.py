"""The ONNX Runtime CPU session every segmentation graph runs in (no MLflow, no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cpu_session(graph: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session as terraops runs every segmentation graph: ``threads``
    intra-op threads, sequential execution, all graph optimisations (constant
    folding, Conv+BatchNorm+ReLU fusion and the blocked NCHWc convolution layout,
    worth ~1.5× over the basic level on the U-Net), and no spinning.

    Spinning is ONNX Runtime's default: idle intra-op threads busy-wait for the
    next operator instead of sleeping. That pays only on cores nobody else
    wants; a server runs several workers (and vectorising, and I/O) on a few
    cores, where spinning threads steal the cores the work needs. Measured on
    a shared 2-core machine, no spinning ran the U-Net 1.1–1.4× faster (fp32 and
    INT8; ``bench/segmentation_cpu.py``).

    Shared by this pyfunc and :class:`terraops.adapters.segmentation_bundle.Segmenter`,
    so the two ways of serving a bundle run the same graph the same way.
    """
    import onnxruntime as ort  # the optional segment extra, needed only to predict

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
