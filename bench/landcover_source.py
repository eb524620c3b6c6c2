"""Spectral rules vs the segmentation champion as the land cover under the UHI and flood features.

Same scenes, same seeds, same model parameters; only the land-cover source
changes. Prints markdown tables:

1. land-cover accuracy against the synthetic scenes' true land cover — IoU per
   class pooled over the scenes, imperviousness (building ∪ road) IoU and
   pixel accuracy — for the spectral rules and the segmentation source;
2. the UHI (LST, °C) and flood (flooded cell, Brier) errors of the training
   pipeline's own cross-validation (:func:`terraops.pipelines.training.cross_validation.evaluate`:
   spatial-block CV and leave-one-scene-out CV) on cell tables built with each
   source, plus the true land cover as the ceiling;
3. with ``--real DIR`` (an imported scene, no land-cover truth): the class shares
   under each source, their agreement, and the UHI spatial-CV error.

The scenes must be ones the U-Net never saw in training (its land cover on
its own training cities is memorised, not measured). Usage::

    TERRAOPS_HOME=HOME python bench/landcover_source.py --scenes S1 S2 S3 \
        [--real .terraops/real/landsat8-gulf-coast] [--cell-size 20] [--n-estimators 200]

HOME must hold a ``segmentation`` champion. Nothing is cached in the scene
folders (tables are built in memory); ``--real`` is read from a temporary copy.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from terraops.adapters import raster_io
from terraops.adapters.raster_io import read_scene
from terraops.domain.features import reflectance_bands
from terraops.domain.landcover import NODATA_CODE, LandCover
from terraops.pipelines.scenes.cell_tables import build_cell_table
from terraops.pipelines.scenes.landcover_source import LandcoverSource, resolve_landcover_source
from terraops.pipelines.training.cross_validation import evaluate
from terraops.pipelines.training.train import resolve_params
from terraops.services import get_service
from terraops.settings import Settings

IMPERVIOUS = (int(LandCover.BUILDING), int(LandCover.ROAD))


class TruthSource(LandcoverSource):
    """The synthetic scene's true land cover: the ceiling of what any classifier can give."""

    def __init__(self, truth: np.ndarray) -> None:
        super().__init__("spectral", reason="true land cover (bench only)")
        self._truth = truth

    def classify(self, bands: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._truth


def markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a markdown table (index as the first column), numbers rounded."""
    header = ["", *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        cells = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join([str(index), *cells]) + " |")
    return "\n".join(lines)


def _iou(pred: np.ndarray, truth: np.ndarray, classes: Sequence[int]) -> tuple[int, int]:
    p, t = np.isin(pred, classes), np.isin(truth, classes)
    return int((p & t).sum()), int((p | t).sum())


def landcover_accuracy(
    scenes: Sequence[Path], sources: Mapping[str, LandcoverSource]
) -> tuple[pd.DataFrame, dict[str, float], dict[str, Any]]:
    """Pooled IoU per class / imperviousness / accuracy per source; seconds per source."""
    counts: dict[str, dict[str, list[int]]] = {n: {} for n in sources}
    seconds = dict.fromkeys(sources, 0.0)
    rejected_water = np.zeros(256, dtype=np.int64)
    for scene in scenes:
        record = raster_io.read_scene(scene)
        layers = raster_io.read_layers(record)
        bands = reflectance_bands(record, layers)
        truth = layers["landcover"]
        valid = truth != NODATA_CODE
        maps = {}
        for name, source in sources.items():
            started = time.perf_counter()
            maps[name] = source.classify(bands)
            seconds[name] += time.perf_counter() - started
            pred = maps[name]
            groups = {c.name.lower(): (int(c),) for c in LandCover} | {"impervious": IMPERVIOUS}
            for label, classes in groups.items():
                i, u = _iou(pred[valid], truth[valid], classes)
                tally = counts[name].setdefault(label, [0, 0])
                tally[0] += i
                tally[1] += u
            ok = counts[name].setdefault("accuracy", [0, 0])
            ok[0] += int((pred[valid] == truth[valid]).sum())
            ok[1] += int(valid.sum())
        if "segmentation" in maps:  # what the rules' water is where the U-Net says "not water"
            demoted = (maps["spectral"] == int(LandCover.WATER)) & (
                maps["segmentation"] != int(LandCover.WATER)
            )
            rejected_water += np.bincount(truth[demoted & valid], minlength=256)
    table = pd.DataFrame(
        {
            name: {k: v[0] / v[1] if v[1] else float("nan") for k, v in c.items()}
            for name, c in counts.items()
        }
    )
    names = {int(c): c.name.lower() for c in LandCover}
    water_truth = {names[c]: int(n) for c, n in enumerate(rejected_water) if n and c in names}
    return table, seconds, water_truth


def cv_errors(
    scenes: Sequence[Path],
    tables: Mapping[str, list[pd.DataFrame]],
    overrides: Mapping[str, Any],
) -> pd.DataFrame:
    """Spatial-block and leave-one-scene-out CV metrics of UHI and flood per land-cover source."""
    rows: dict[str, dict[str, float]] = {}
    wanted = {
        "uhi": ("mae_spatial_cv", "rmse_spatial_cv", "mae_scene_cv", "rmse_scene_cv"),
        "flood": ("brier_spatial_cv", "roc_auc_spatial_cv", "brier_scene_cv", "roc_auc_scene_cv"),
    }
    for name, frames in tables.items():
        cells = pd.concat(frames, ignore_index=True)
        row: dict[str, float] = {}
        for service_name, metrics in wanted.items():
            service = get_service(service_name)
            examples = service.build_examples(cells)
            examples = examples[examples[service.target].notna()].reset_index(drop=True)
            if examples.empty or examples["scene"].nunique() < min(2, len(scenes)):
                continue
            params, training = resolve_params(service, dict(overrides))
            result = evaluate(service, examples, params, training, lambda _label: None)
            row |= {f"{service_name} {m}": result.metrics.get(m, float("nan")) for m in metrics}
        rows[name] = row
    return pd.DataFrame(rows)


def real_city(
    scene: Path, sources: Mapping[str, LandcoverSource], cell_size_m: float, overrides: Any
) -> pd.DataFrame:
    """Class shares under each source and the UHI spatial-CV error, on an imported scene."""
    record = raster_io.read_scene(scene)
    layers = raster_io.read_layers(record)
    bands = reflectance_bands(record, layers)
    maps = {name: s.classify(bands) for name, s in sources.items()}
    valid = maps["spectral"] != NODATA_CODE
    out: dict[str, dict[str, float]] = {}
    for name, lc in maps.items():
        shares = {f"share {c.name.lower()}": float((lc[valid] == int(c)).mean()) for c in LandCover}
        out[name] = shares | {
            "share impervious": float(np.isin(lc[valid], IMPERVIOUS).mean()),
            "pixel agreement with spectral": float((lc[valid] == maps["spectral"][valid]).mean()),
        }
        service = get_service("uhi")
        cells = build_cell_table(read_scene(scene), cell_size_m, landcover=sources[name])
        examples = service.build_examples(cells)
        examples = examples[examples[service.target].notna()].reset_index(drop=True)
        params, training = resolve_params(service, dict(overrides))
        metrics = evaluate(service, examples, params, training, lambda _label: None).metrics
        out[name] |= {f"uhi {m}": metrics[m] for m in ("mae_spatial_cv", "rmse_spatial_cv")}
    return pd.DataFrame(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", nargs="+", type=Path, required=True)
    parser.add_argument("--real", type=Path, default=None)
    parser.add_argument("--cell-size", type=float, default=20.0)
    parser.add_argument("--n-estimators", type=int, default=200)
    args = parser.parse_args(argv)
    settings = Settings()
    segmentation = resolve_landcover_source(settings, "segmentation")
    spectral = resolve_landcover_source(settings, "spectral")
    sources: dict[str, LandcoverSource] = {"spectral": spectral, "segmentation": segmentation}
    overrides = {"n_estimators": args.n_estimators}
    print(f"segmentation source: {segmentation!r}; scenes: {[s.name for s in args.scenes]}\n")

    accuracy, seconds, water_truth = landcover_accuracy(args.scenes, sources)
    print("## Land cover against the truth (IoU pooled over the scenes)\n")
    print(markdown(accuracy))
    print(f"\nclassify seconds (all scenes): { {k: round(v, 1) for k, v in seconds.items()} }")
    print(f"truth under the rules' water the U-Net rejects (pixels): {water_truth}\n")

    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in [*sources, "truth"]}
    for scene in args.scenes:
        truth = raster_io.read_layer(read_scene(scene), "landcover")
        per_source = {**sources, "truth": TruthSource(truth)}
        for name, source in per_source.items():
            tables[name].append(
                build_cell_table(read_scene(scene), args.cell_size, landcover=source)
            )
    print(
        f"## UHI and flood cross-validation ({args.cell_size:g} m cells, "
        f"n_estimators={args.n_estimators})\n"
    )
    print(markdown(cv_errors(args.scenes, tables, overrides), 4))

    if args.real is not None:
        with tempfile.TemporaryDirectory() as tmp:
            scene = Path(shutil.copytree(args.real, Path(tmp) / args.real.name))
            for stale in scene.glob("cells_*.parquet"):
                stale.unlink()
            print(f"\n## Imported scene {args.real.name} (no land-cover truth)\n")
            print(markdown(real_city(scene, sources, args.cell_size, overrides), 4))


if __name__ == "__main__":
    main()
