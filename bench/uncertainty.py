"""Calibrated UHI intervals on cities the model never saw: coverage, width, interval score.

UHI models are trained the way ``terraops train`` trains them (the same
example tables, CV, final model and calibration, :mod:`terraops.pipelines.
training.calibration`) on a few synthetic cities; then on at least five
*unseen* synthetic cities (other seeds and morphologies) every cell gets its
prediction and its 90 % interval from the stored calibration, read back as a
served model reads it. Reported, overall and per land-cover class: empirical
coverage (target 0.88–0.93, every class within ±5 points), mean width, mean
interval score (Gneiting & Raftery 2007), and the share of cells inside the area
of applicability (coverage is counted where an interval is claimed, and also
over every cell with the raw band).

``python bench/uncertainty.py --out BENCHMARKS.md`` writes its section.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import machine_description, replace_section  # noqa: E402
from terraops.adapters.model_bundle import predictor_from  # noqa: E402
from terraops.adapters.raster_io import read_scene  # noqa: E402
from terraops.adapters.uncertainty_bundle import load_uncertainty  # noqa: E402
from terraops.domain.uncertainty import CELL_CLASSES, cell_classes, coverage_table  # noqa: E402
from terraops.pipelines.scenes.cell_tables import scene_cell_table  # noqa: E402
from terraops.pipelines.scenes.generate import generate_scene  # noqa: E402
from terraops.pipelines.training.calibration import calibrate  # noqa: E402
from terraops.pipelines.training.cross_validation import evaluate, fit_final_model  # noqa: E402
from terraops.pipelines.training.train import resolve_params  # noqa: E402
from terraops.services import get_service  # noqa: E402

UHI = get_service("uhi")
CELL_M = 20.0
LEVEL = 0.9
MORPHOLOGIES = ("dense", "sprawl", "coastal")


def _say(text: str) -> None:
    print(f"[uncertainty] {text}", file=sys.stderr, flush=True)


def _table(root: Path, seed: int, size: int) -> pd.DataFrame:
    morphology = MORPHOLOGIES[seed % len(MORPHOLOGIES)]
    out = root / f"{morphology}-s{seed}-{size}"
    if not (out / "scene.json").exists():
        _say(f"generating {out.name}")
        generate_scene(out, seed=seed, size=size, resolution=4.0, morphology=morphology)
    cells = scene_cell_table(read_scene(out), CELL_M)
    examples = UHI.build_examples(cells)
    return examples[examples[UHI.target].notna()].reset_index(drop=True)


def _served(tmp: Path, examples: pd.DataFrame, seed: int) -> tuple[Any, dict[str, Any]]:
    """Train + calibrate like ``terraops train``; load back like a server does."""
    model_params, training = resolve_params(UHI, {"seed": seed})
    evaluation = evaluate(UHI, examples, model_params, training, lambda _label: None)
    model = fit_final_model(UHI, examples, model_params, training)
    calibration = calibrate(UHI, examples, evaluation, model, seed)
    booster = tmp / "model.lgb"
    model.booster_.save_model(str(booster))
    meta = {
        "service": UHI.name,
        "task": UHI.task,
        "feature_names": UHI.feature_names,
        "baseline": {"feature": model.baseline, "default": model.default},
    }
    predictor = predictor_from(booster, meta, tmp)
    folder = calibration.write(tmp / "uncertainty")
    predictor.uncertainty = load_uncertainty(
        folder, UHI.feature_names, lambda f: predictor_from(f, meta, tmp).predict
    )
    return predictor, calibration.report


def _measure(predictor: Any, unseen: list[pd.DataFrame]) -> dict[str, Any]:
    X = np.vstack([t[UHI.feature_names].to_numpy(np.float64) for t in unseen])
    y = np.concatenate([t[UHI.target].to_numpy(np.float64) for t in unseen])
    centre = predictor.predict(X)
    half = predictor.uncertainty.half_width(X, LEVEL)
    _, inside = predictor.applicability(X)
    classes = cell_classes(X, UHI.feature_names)
    lower, upper = centre - half, centre + half
    claimed = np.where(inside, lower, np.nan), np.where(inside, upper, np.nan)
    per_city = []
    start = 0
    for table in unseen:
        stop = start + len(table)
        pick = slice(start, stop)
        covered = (y[pick] >= lower[pick]) & (y[pick] <= upper[pick])
        per_city.append(round(float(covered.mean()), 3))
        start = stop
    return {
        "cells": len(y),
        "share_inside_domain": float(inside.mean()),
        "claimed": coverage_table(y, *claimed, LEVEL, classes),
        "all_cells": coverage_table(y, lower, upper, LEVEL, classes),
        "per_city_coverage": per_city,
    }


def _row(name: str, row: dict[str, Any]) -> str:
    cov = row["coverage"]
    flag = "" if np.isnan(cov) or abs(cov - LEVEL) <= 0.05 else " ⚠"
    return (
        f"| {name} | {row['n']} | {cov:.3f}{flag} | {row['mean_width']:.2f} | "
        f"{row['interval_score']:.2f} |"
    )


def _markdown(result: dict[str, Any], report: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "## Calibrated intervals on unseen cities (UHI, 90 %)",
        "",
        f"Trained on {args.train} synthetic cities, measured on {args.unseen} others "
        f"({args.size}² px at 4 m, 20 m cells); {machine_description()}.",
        f"Kept variant: **{report['variant']}** — {report['reason']}.",
        f"Cells inside the area of applicability: {result['share_inside_domain']:.1%}.",
        "",
    ]
    for key, title in (("claimed", "cells with a claimed interval"), ("all_cells", "every cell")):
        table = result[key]
        lines += [
            f"**{title}** (coverage target 0.88–0.93; ⚠ = a class off by more than 5 points)",
            "",
            "| class | cells | coverage | mean width (K) | interval score |",
            "|---|---|---|---|---|",
            _row("overall", table["overall"]),
            *(_row(name, table["classes"][name]) for name in CELL_CLASSES),
            "",
        ]
    lines.append(f"Coverage per unseen city: {result['per_city_coverage']}.")
    lines.append("")
    lines.append("Variant comparison on held-out training cities (coverage / interval score):")
    for variant, table in report["variants"].items():
        overall = table["all_cells"]["overall"]
        lines.append(
            f"- {variant}: {overall['coverage']:.3f} / {overall['interval_score']:.2f}; "
            f"required fields only {table['required_fields_only']['coverage']:.3f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--train", type=int, default=4)
    parser.add_argument("--unseen", type=int, default=5)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench-uncertainty")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    train = [_table(args.cache, seed, args.size) for seed in range(1, args.train + 1)]
    unseen = [_table(args.cache, 100 + seed, args.size) for seed in range(args.unseen)]
    with tempfile.TemporaryDirectory() as tmp:
        _say("training and calibrating")
        predictor, report = _served(Path(tmp), pd.concat(train, ignore_index=True), 0)
        result = _measure(predictor, unseen)
    print(json.dumps({"variant": report["variant"], **result}, indent=1, default=str))
    if args.out is not None:
        replace_section(args.out, "uncertainty", _markdown(result, report, args))


if __name__ == "__main__":
    main()
