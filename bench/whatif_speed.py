"""What-if speed: a 40 ha intervention on a 1024² scene → Δ map and table, end to end.

The UHI champion of the benchmark home answers a tree-planting scenario of one
632 m square (40 ha) in the middle of a 1024 × 1024 px scene (2 m pixels,
about 4.2 km²), ``--whatif-runs`` times in one process. Each run does what
``POST /v1/uhi/whatif`` does with its model already loaded: validate the
scenario, read the scene and its cached cell table, edit the inputs,
recompute the features in the window the edit can reach, predict the moved
cells before and after, summarise (rings, member interval, drivers), write
the Δ COG and the GeoJSON and register them. The median and the split
(read, features, predict, write) are reported; the one-off costs — loading
the model (once per server process) and building the scene's cell table (once
per scene, then cached) — are reported apart.

``python bench/whatif_speed.py --home H`` runs it alone; ``bench/run.py``
runs it as the ``whatif`` section.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TARGET_S = 5.0
SIDE_M = 632.0  # 632 m × 632 m ≈ 40 ha


def _scenario(scene: Any, shift_m: float) -> bytes:
    x0, y0 = scene.origin
    size = scene.width * float(scene.resolution)
    cx, cy = x0 + size / 2 + shift_m, y0 - size / 2
    h = SIDE_M / 2
    ring = [
        [cx - h, cy - h],
        [cx + h, cy - h],
        [cx + h, cy + h],
        [cx - h, cy + h],
        [cx - h, cy - h],
    ]
    return json.dumps(
        {
            "type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": scene.crs}},
            "features": [
                {
                    "type": "Feature",
                    "properties": {
                        "id": "district",
                        "intervention": "tree_planting",
                        "canopy": 0.6,
                    },
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            ],
        }
    ).encode()


def measure(home: Path, runs: int, version: int | None) -> dict[str, Any]:
    from terraops.adapters import raster_io
    from terraops.pipelines.maps.raster_predict import choose_model
    from terraops.pipelines.scenes.cell_tables import ensure_cell_table
    from terraops.pipelines.scenes.generate import generate_scene
    from terraops.pipelines.scenes.landcover_source import landcover_of_model
    from terraops.pipelines.whatif.run import run_whatif
    from terraops.services import get_service
    from terraops.settings import Settings

    settings = Settings(home=home)
    scene_dir = home / "scenes" / "whatif-1024"
    if not (scene_dir / "scene.json").exists():
        generate_scene(scene_dir, seed=7, size=1024, resolution=2.0, morphology="dense")
    scene = raster_io.read_scene(scene_dir)
    started = time.perf_counter()
    model = choose_model(settings, get_service("uhi"), version)
    model_s = time.perf_counter() - started
    started = time.perf_counter()
    ensure_cell_table(
        scene, settings.cell_size_m, landcover=landcover_of_model(settings, model.params)
    )
    table_s = time.perf_counter() - started
    totals, splits, cells = [], [], 0
    for run in range(runs):
        started = time.perf_counter()
        result = run_whatif(settings, "uhi", scene, _scenario(scene, 40.0 * (run % 3)), model=model)
        totals.append(time.perf_counter() - started)
        splits.append(result.timings_s)
        cells = int(result.interventions[0]["cells_inside"])
    names = ("read", "features", "predict", "write")
    return {
        "runs": runs,
        "median_s": statistics.median(totals),
        "all_s": totals,
        "split_s": {n: statistics.median(s.get(n, 0.0) for s in splits) for n in names},
        "model_load_s": model_s,
        "cell_table_build_s": table_s,
        "cells_inside": cells,
        "model_version": model.version,
    }


def render(result: dict[str, Any]) -> str:
    split = result["split_s"]
    verdict = "meets" if result["median_s"] <= TARGET_S else "misses"
    return "\n".join(
        [
            "## What-if speed (UHI, 40 ha tree planting on a 1024² scene)",
            "",
            f"Median of {result['runs']} runs, end to end (Δ COG + GeoJSON + table, "
            f"model loaded): **{result['median_s']:.2f} s** ({verdict} the "
            f"{TARGET_S:g} s target); runs: "
            + ", ".join(f"{s:.2f}" for s in result["all_s"])
            + " s.",
            "",
            "| step | median s |",
            "|---|---:|",
            *(f"| {name} | {value:.3f} |" for name, value in split.items()),
            "",
            f"One-off costs, not in the runs: loading UHI v{result['model_version']} "
            f"{result['model_load_s']:.1f} s (once per server process), building the scene's "
            f"cell table {result['cell_table_build_s']:.1f} s (once per scene, then cached). "
            f"Cells inside the polygon: {result['cells_inside']}.",
        ]
    )


def run_whatif_speed(
    home: Path, args: argparse.Namespace, header: Callable[[float], str], emit: Callable[..., None]
) -> None:
    """The ``whatif`` section of ``bench/run.py``."""
    started = time.monotonic()
    result = measure(home, args.whatif_runs, None)
    emit("whatif", header(time.monotonic() - started) + "\n\n" + render(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="a home with a UHI model")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--version", type=int, default=None, help="default: the champion")
    args = parser.parse_args()
    result = measure(args.home.resolve(), args.runs, args.version)
    print(render(result))
    print(json.dumps(result, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
