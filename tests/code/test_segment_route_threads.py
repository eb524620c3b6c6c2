"""How the upload route shares the cores between its model and its polygon workers."""

from __future__ import annotations

from terraops.api.routes_segment import inference_threads
from terraops.pipelines.segmentation.vector_pool import available_cores


def test_the_model_leaves_half_the_cores_to_the_polygon_workers() -> None:
    cores = available_cores()
    assert inference_threads(0) is None and inference_threads(1) is None  # polygons after it
    assert inference_threads(4) == max(1, cores // 2)
    assert inference_threads(None) == (max(1, cores // 2) if cores > 1 else None)
