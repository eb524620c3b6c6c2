"""Explanation stability and speed: do two UHI models agree on *why* a cell is hot?

1. **Stability.** Two UHI models are fitted on the same synthetic cities with
   the final-model code path of ``terraops train`` (missing-value augmentation
   included), differing only in their seed (LightGBM's ``random_state`` and the
   augmentation's draw). On cities neither saw, every cell is explained by both
   (:meth:`Predictor.explain`, TreeSHAP), the contributions are summed into
   drivers and the dominant driver (largest push up, see
   :mod:`terraops.domain.explain`) is compared: the share of cells where the
   two models name the same driver (target ≥ 80 %), also among cells that both
   say something pushes up, and the correlation of each driver's contribution.
2. **Speed.** The explanation layers of a 1024² scene at 2 m (≈ 10k cells of
   20 m): :func:`write_explanation_layers` from the cells parquet to the
   driver COGs and the dominant-driver COG, median of a few runs; cells/s and
   scene pixels/s (target ≥ 1 Mpx/s).

``python bench/explain_stability.py --out BENCHMARKS.md`` writes its section.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rasterio.transform import Affine  # noqa: E402

from bench.harness import machine_description, replace_section  # noqa: E402
from terraops.adapters import tables  # noqa: E402
from terraops.adapters.model_bundle import Baseline, Predictor  # noqa: E402
from terraops.adapters.raster_io import read_scene  # noqa: E402
from terraops.domain.explain import (  # noqa: E402
    dominant_driver,
    driver_contributions,
    ranked_mask,
    service_drivers,
)
from terraops.domain.features import cell_grid  # noqa: E402
from terraops.pipelines.maps.explanation_layers import write_explanation_layers  # noqa: E402
from terraops.pipelines.maps.prediction_layers import PredictionContext  # noqa: E402
from terraops.pipelines.scenes.cell_tables import scene_cell_table  # noqa: E402
from terraops.pipelines.scenes.generate import generate_scene  # noqa: E402
from terraops.pipelines.training.cross_validation import fit_final_model  # noqa: E402
from terraops.pipelines.training.train import resolve_params  # noqa: E402
from terraops.services import get_service  # noqa: E402

UHI = get_service("uhi")
CELL_M = 20.0
MORPHOLOGIES = ("dense", "sprawl", "coastal")


def _say(text: str) -> None:
    print(f"[explain] {text}", file=sys.stderr, flush=True)


def _scene(root: Path, seed: int, size: int) -> Path:
    morphology = MORPHOLOGIES[seed % len(MORPHOLOGIES)]
    out = root / f"{morphology}-s{seed}-{size}"
    if not (out / "scene.json").exists():
        _say(f"generating {out.name}")
        generate_scene(out, seed=seed, size=size, resolution=2.0, morphology=morphology)
    return out


def _table(scene: Path) -> pd.DataFrame:
    return scene_cell_table(read_scene(scene), CELL_M)


def fit_predictor(examples: pd.DataFrame, seed: int) -> Predictor:
    """The registered model's predictor, fitted in process with ``seed`` (no MLflow)."""
    model_params, training = resolve_params(UHI, {"random_state": seed, "seed": seed})
    model = fit_final_model(UHI, examples, model_params, training)
    names = list(UHI.feature_names)
    assert UHI.baseline is not None
    return Predictor(
        service="uhi",
        feature_names=names,
        task="regression",
        booster=model.booster_,
        path=Path("."),
        metadata={"prediction_unit": UHI.prediction_unit},
        baseline=Baseline(names.index(UHI.baseline), model.default),
    )


def agreement(first: Predictor, second: Predictor, X: np.ndarray) -> dict[str, Any]:
    """How far the two models' explanations of the same cells agree."""
    ranked = ranked_mask("uhi")
    keys = service_drivers("uhi").keys
    drivers = []
    for predictor in (first, second):
        explanation = predictor.explain(X)
        drivers.append(driver_contributions(explanation.contributions, UHI.feature_names, "uhi")[1])
    a, b = (dominant_driver(d, ranked) for d in drivers)
    both_push = (a >= 0) & (b >= 0)
    correlation = {
        key: round(float(np.corrcoef(drivers[0][:, i], drivers[1][:, i])[0, 1]), 3)
        for i, key in enumerate(keys)
        if ranked[i] and np.std(drivers[0][:, i]) > 0 and np.std(drivers[1][:, i]) > 0
    }
    shares = {key: round(float((a == i).mean()), 3) for i, key in enumerate(keys) if ranked[i]} | {
        "none": round(float((a < 0).mean()), 3)
    }
    return {
        "cells": len(X),
        "agree": round(float((a == b).mean()), 4),
        "agree_where_both_push": round(float((a == b)[both_push].mean()), 4)
        if both_push.any()
        else None,
        "driver_correlation": correlation,
        "dominant_shares": shares,
    }


def _depth(node: dict[str, Any]) -> int:
    if "split_feature" not in node:
        return 0
    return 1 + max(_depth(node["left_child"]), _depth(node["right_child"]))


def tree_shape(predictor: Predictor) -> dict[str, float]:
    """Trees, mean leaves and mean depth: what TreeSHAP's cost per cell grows with."""
    trees = predictor.booster.dump_model()["tree_info"]
    return {
        "trees": len(trees),
        "leaves": round(float(np.mean([t["num_leaves"] for t in trees])), 1),
        "depth": round(float(np.mean([_depth(t["tree_structure"]) for t in trees])), 1),
    }


def _percentiles_ms(call: Any, rows: np.ndarray) -> tuple[float, float]:
    """p50 and p95 of one-row calls, in ms."""
    times = []
    for row in rows:
        started = time.perf_counter()
        call(row[np.newaxis, :])
        times.append(time.perf_counter() - started)
    p50, p95 = np.percentile(times, [50, 95]) * 1000.0
    return round(float(p50), 3), round(float(p95), 3)


def engine_speed(predictor: Predictor, X: np.ndarray, runs: int) -> dict[str, Any]:
    """:meth:`Predictor.explain` against LightGBM's ``pred_contrib`` on the same cells.

    Both on every core, median of ``runs``; one-row latency over 500 cells on one
    thread (a server worker); the largest difference between the two.
    """
    fresh = dataclasses.replace(predictor)  # as just loaded: no TreeSHAP tables yet
    started = time.perf_counter()
    fresh.prepare_explanations()  # what a server does at start-up, or after a swap
    first_s = time.perf_counter() - started
    assert predictor.baseline is not None
    model_X = np.ascontiguousarray(np.delete(X, predictor.baseline.column, axis=1))
    rng = np.random.default_rng(1)
    holes = np.where(rng.uniform(size=model_X.shape) < 0.1, np.nan, model_X)
    holes_raw = predictor.booster.predict(holes, pred_contrib=True, num_threads=0)
    with_holes = predictor.explain(np.insert(holes, predictor.baseline.column, np.nan, axis=1))
    holes_part = np.delete(with_holes.contributions, predictor.baseline.column, axis=1)
    fast, reference = [], []
    for _ in range(runs):
        started = time.perf_counter()
        explanation = predictor.explain(X, num_threads=0)
        fast.append(time.perf_counter() - started)
        started = time.perf_counter()
        raw = predictor.booster.predict(model_X, pred_contrib=True, num_threads=0)
        reference.append(time.perf_counter() - started)
    model_part = np.delete(explanation.contributions, predictor.baseline.column, axis=1)
    column = predictor.baseline.column
    one_row = X[np.random.default_rng(0).integers(0, len(X), 500)]
    return {
        "cells": len(X),
        "nan_share": round(float(np.isnan(X).mean()), 3),
        "max_abs_difference": float(np.max(np.abs(model_part - raw[:, :-1]))),
        "max_abs_difference_with_holes": float(np.max(np.abs(holes_part - holes_raw[:, :-1]))),
        "first_call_s": round(first_s, 3),
        "fast_s": round(statistics.median(fast), 3),
        "lightgbm_s": round(statistics.median(reference), 3),
        "fast_one_row_ms": _percentiles_ms(predictor.explain, one_row),
        "lightgbm_one_row_ms": _percentiles_ms(
            lambda row: predictor.booster.predict(
                np.delete(row, column, axis=1), pred_contrib=True, num_threads=1
            ),
            one_row,
        ),
    }


_START = """
import json, sys, time
import lightgbm as lgb
import numpy as np
from terraops.domain.tree_shap import compile_model, tree_shap
booster = lgb.Booster(model_file=sys.argv[1])
t0 = time.perf_counter()
import terraops.domain.tree_shap_kernel
t1 = time.perf_counter()
tables = compile_model(booster.dump_model(), booster.num_feature())
t2 = time.perf_counter()
tree_shap(tables, np.zeros((1, booster.num_feature())))
tree_shap(tables, np.zeros((1000, booster.num_feature())), threads=2)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "tables_s": t2 - t1, "kernels_s": t3 - t2}))
"""


def start_costs(predictor: Predictor, workdir: Path) -> dict[str, Any]:
    """What a fresh process pays before its first explanation: the tables and the numba
    kernels, compiled (an empty numba cache) and then loaded from the cache."""
    model = workdir / "start-model.txt"
    predictor.booster.save_model(str(model))
    cache = Path(tempfile.mkdtemp(prefix="numba-cache-", dir=workdir))
    costs = {}
    for label in ("compiled", "cached"):
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
        done = subprocess.run(
            [sys.executable, "-c", _START, str(model)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        costs[label] = {k: round(v, 3) for k, v in json.loads(done.stdout).items()}
    return costs


def layer_speed(predictor: Predictor, scene_dir: Path, workdir: Path, runs: int) -> dict[str, Any]:
    """Median time of the explanation layers of one scene from its cells parquet."""
    scene = read_scene(scene_dir)
    table = _table(scene_dir)
    cells_path = workdir / "cells.parquet"
    tables.write_parquet(table[["row", "col", *UHI.feature_names]], cells_path)
    grid = cell_grid(scene.shape, float(scene.resolution), CELL_M)
    x0, y0 = scene.origin
    assert UHI.map is not None
    ctx = PredictionContext(
        UHI,
        UHI.map,
        {"name": "uhi", "version": 0, "run_id": "bench"},
        scene.name,
        scene.folder,
        {},
        scene.crs,
        Affine(grid.cell_size, 0.0, x0, 0.0, -grid.cell_size, y0),
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    X = table[UHI.feature_names].to_numpy(np.float64)
    predict_started = time.perf_counter()
    predictor.predict(X)
    predict_s = time.perf_counter() - predict_started
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        written = write_explanation_layers(
            ctx,
            workdir / "uhi.tif",
            predictor,
            cells_path,
            (grid.rows, grid.cols),
            scene_pixels=scene.width * scene.height,
        )
        results.append({**written.facts, "wall_s": time.perf_counter() - started})
    return {
        "scene": f"{scene.width}² px at {scene.resolution:g} m",
        "grid": f"{grid.rows}×{grid.cols}",
        "cells": results[0]["cells"],
        "layers": len(written.layers),
        "seconds": round(statistics.median(r["seconds"] for r in results), 3),
        "explain_seconds": round(statistics.median(r["explain_seconds"] for r in results), 3),
        "cells_per_s": round(statistics.median(r["cells_per_s"] for r in results)),
        "megapixels_per_s": round(statistics.median(r["megapixels_per_s"] for r in results), 2),
        "runs": runs,
        "predict_seconds": round(predict_s, 3),
        **tree_shape(predictor),
    }


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.1f} %"


def _row(city: str, r: dict[str, Any]) -> str:
    correlation = ", ".join(f"{k} {v:.2f}" for k, v in r["driver_correlation"].items())
    both = _percent(r["agree_where_both_push"])
    return f"| {city} | {r['cells']} | {_percent(r['agree'])} | {both} | {correlation} |"


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    speed = result["speed"]
    rows = "\n".join(_row(city, r) for city, r in result["cities"].items())
    command = (
        f"python bench/explain_stability.py --cities {args.cities} --train-size "
        f"{args.train_size} --unseen {args.unseen} --unseen-size {args.unseen_size}"
    )
    return f"""## Explanations: stability between seeds, and layer speed

Machine: {machine_description()}.<br>
Command: `{command}` ({result["date"]}); took {result["took_s"]:.0f} s; 1-minute load average
{result["load_before"]:.1f} before the run and {result["load_after"]:.1f} after it (other work
on the same cores).

Two UHI models fitted on the same {args.cities} synthetic cities ({args.train_size}² px at 2 m) by
the same code path as `terraops train`'s final model, seeds 0 and 1 (LightGBM's
`random_state` and the missing-value augmentation's draw). On cities neither saw, each
cell's TreeSHAP contributions are summed into drivers and the **dominant driver** (the driver
that pushes the cell's temperature up the most; the day's reference is not ranked) is
compared between the two models.

| unseen city | cells | same dominant driver | where both name one | driver correlation |
|---|---|---|---|---|
{rows}

Overall: the two models name the same dominant driver on **{100 * result["agree"]:.1f} %** of
{result["cells"]} unseen cells (target ≥ 80 %).

Layer speed (`predict-raster --explain`'s explanation step, from the cells parquet to the
driver COGs and the dominant-driver COG, median of {speed["runs"]} runs): {speed["scene"]}
({speed["grid"]} cells of 20 m, {speed["cells"]} cells, {speed["layers"]} layers) in
{speed["seconds"]:.2f} s, of which TreeSHAP and grouping {speed["explain_seconds"]:.2f} s:
**{speed["cells_per_s"]:,} cells/s, {speed["megapixels_per_s"]:.2f} Mpx/s** of scene (target
≥ 1 Mpx/s). Cells, not pixels, are what is explained: a 20 m cell covers 100 pixels of 2 m,
so Mpx/s is the scene's pixels over the step's seconds (cells/s × 100 / 10⁶), as it has been
since this benchmark was written.
{_engine_note(result["engine"], speed)}"""


def _engine_note(engine: dict[str, Any], speed: dict[str, Any]) -> str:
    fast_p50, fast_p95 = engine["fast_one_row_ms"]
    slow_p50, slow_p95 = engine["lightgbm_one_row_ms"]
    ratio = engine["lightgbm_s"] / max(engine["fast_s"], 1e-9)
    start = engine["start"]
    reached = (
        "goal ≥ 1 Mpx/s met"
        if speed["megapixels_per_s"] >= 1.0
        else "goal ≥ 1 Mpx/s **not met** on this machine under this load"
    )
    return f"""
Layer speed: {reached}.

TreeSHAP itself (`Predictor.explain`) on the same {engine["cells"]} cells, against
LightGBM's own `pred_contrib`, both on every core, median of {speed["runs"]} runs:
**{engine["fast_s"]:.2f} s against {engine["lightgbm_s"]:.2f} s ({ratio:.0f}× faster)**;
largest difference {engine["max_abs_difference"]:.1e} K, and
{engine["max_abs_difference_with_holes"]:.1e} K with 10 % of the inputs blanked out
(missing values). One cell on one thread (a server request), p50 / p95:
**{fast_p50:.2f} / {fast_p95:.2f} ms** against {slow_p50:.2f} / {slow_p95:.2f} ms (the p95s
move with the other work on the cores).

Start-up: a server builds the model's tables and loads the compiled kernels when it loads
the model ({engine["first_call_s"]:.2f} s in this process), not at the first request; after a
hot swap it builds them in the background, once the new version serves. A
fresh process imports numba in {start["cached"]["import_s"]:.2f} s and builds the tables in
{start["cached"]["tables_s"]:.2f} s; the numba kernels cost
{start["compiled"]["tables_s"] + start["compiled"]["kernels_s"]:.1f} s the very first time
they are compiled (an empty numba cache: the table builder and the walks) and
{start["cached"]["kernels_s"]:.2f} s once they are cached on disk (`cache=True`: every later
process and worker loads them).

How: the model ({speed["trees"]} trees of {speed["leaves"]:g} leaves, {speed["depth"]:g}
levels deep on average) is compiled once into a table per leaf holding its exact Shapley
values for every combination of "this cell satisfies / fails the path's conditions on each of
its features" (path-dependent TreeSHAP, computed by Gauss–Legendre quadrature of the Shapley
weights). A numba kernel walks each tree once per cell, carrying each node's "fails" bit mask
down the tree, and adds each leaf's table row for its mask. For a batch (the map), a tree's
contributions depend only on the cell's decisions at its splits, and neighbouring cells share
them: each tree keeps a table of the decision patterns it has seen and walks its leaves only
for a new one; the two cores share the trees. Missing inputs take LightGBM's routes (a split's
default direction), and the tests hold every value to `pred_contrib` within 1e-9. Models with
categorical splits or several outputs stay on `pred_contrib`.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md to update")
    parser.add_argument("--workdir", type=Path, default=None, help="reuse generated scenes")
    parser.add_argument("--cities", type=int, default=4, help="training cities")
    parser.add_argument("--train-size", type=int, default=768)
    parser.add_argument("--unseen", type=int, default=2, help="unseen cities")
    parser.add_argument("--unseen-size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3, help="layer-speed runs")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    root = args.workdir or Path(tempfile.mkdtemp(prefix="terraops-explain-"))
    root.mkdir(parents=True, exist_ok=True)
    train = [_scene(root, seed, args.train_size) for seed in range(101, 101 + args.cities)]
    unseen = [_scene(root, seed, args.unseen_size) for seed in range(201, 201 + args.unseen)]
    cells = pd.concat([_table(s) for s in train], ignore_index=True)
    examples = UHI.build_examples(cells)
    examples = examples[examples[UHI.target].notna()].reset_index(drop=True)
    _say(f"fitting two models on {len(examples)} cells")
    first, second = fit_predictor(examples, 0), fit_predictor(examples, 1)
    cities = {}
    for scene in unseen:
        X = _table(scene)[UHI.feature_names].to_numpy(np.float64)
        cities[scene.name] = agreement(first, second, X)
    total = sum(r["cells"] for r in cities.values())
    overall = sum(r["agree"] * r["cells"] for r in cities.values()) / total
    _say("timing TreeSHAP against LightGBM's pred_contrib")
    engine = engine_speed(
        first, _table(unseen[0])[UHI.feature_names].to_numpy(np.float64), args.runs
    )
    engine["start"] = start_costs(first, root)
    _say("timing the layers")
    speed = layer_speed(first, unseen[0], root, args.runs)
    result = {
        "cities": cities,
        "cells": total,
        "agree": round(overall, 4),
        "speed": speed,
        "engine": engine,
        "date": datetime.now(UTC).date().isoformat(),
        "took_s": time.perf_counter() - started,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        replace_section(args.out, "explain", render(result, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
