"""Latency of ``POST /v1/segment`` on a 1 MP (1024²) GeoTIFF through the real app.

Needs a home whose ``segmentation`` champion is the model to time, and a scene to
tile the upload from (both as arguments)::

    TERRAOPS_HOME=HOME python bench/segment_upload_latency.py --scene SCENE_DIR

The app runs in-process (ASGI, TestClient): multipart parsing, the GeoTIFF
checks, windows, blending, polygons and the GeoJSON answer are all timed; the
socket is not. Median of ``--rounds`` after one warm-up request.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient

from bench.segmentation import BAND_ORDER, UPLOAD_SIZE, write_image
from terraops.api.app import create_app
from terraops.pipelines.segmentation.data import load_scene
from terraops.settings import Settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engine", default="onnx")
    args = parser.parse_args()
    # A float32 1 MP upload is ~11 MB: above the 8 MB default, so the limit is raised.
    settings = Settings(services=[], segment_max_upload_mb=64)
    path = Path(tempfile.mkdtemp()) / "upload_1mp.tif"
    write_image(path, load_scene(args.scene).image, UPLOAD_SIZE)
    times: list[float] = []
    with TestClient(create_app(settings)) as client:
        for r in range(args.rounds + 1):
            with path.open("rb") as f:
                started = time.perf_counter()
                response = client.post(
                    f"/v1/segment?engine={args.engine}",
                    files={"image": (path.name, f, "image/tiff")},
                    data={"band_order": ",".join(BAND_ORDER)},
                )
                elapsed = time.perf_counter() - started
            response.raise_for_status()
            if r:
                times.append(elapsed)
    result = {
        "engine": args.engine,
        "upload_mb": round(path.stat().st_size / 2**20, 1),
        "median_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
        "features": len(response.json()["features"]),
        "rounds": len(times),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
