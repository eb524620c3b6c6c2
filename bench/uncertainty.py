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
over every cell with the raw band). Every variant is also measured on the
unseen cities, beside the kept one, so that the choice made on held-out
training cities can be checked on cities no part of training saw. Fifteen
unseen cities by default, also shown as three draws of five: a class's coverage
on five cities moves by several points with the cities drawn (its between-city
error dominates), so one draw of five is a noisy check of a ±5-point target.

Then the real cities with a thermal layer (the Liverpool Landsat 8 Level-2
crop and the Gulf-coast Landsat 8 strip, from ``.cache/samples``; skipped when
absent): coverage over every cell, on land (water cells left out), and inside
the area of applicability, with the share of cells inside it; and every
variant's coverage, per class, width and interval score there.

``python bench/uncertainty.py --out BENCHMARKS.md`` writes its section.
"""

from __future__ import annotations

import argparse
import itertools
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
from terraops.adapters.samples import LIVERPOOL_SAMPLE, is_intact  # noqa: E402
from terraops.adapters.uncertainty_bundle import load_uncertainty  # noqa: E402
from terraops.domain.uncertainty import (  # noqa: E402
    CELL_CLASSES,
    VARIANTS,
    cell_classes,
    coverage_table,
)
from terraops.pipelines.scenes.cell_tables import scene_cell_table  # noqa: E402
from terraops.pipelines.scenes.generate import generate_scene  # noqa: E402
from terraops.pipelines.scenes.importing import import_landsat  # noqa: E402
from terraops.pipelines.training.calibration import (  # noqa: E402
    calibrate,
    calibration_set,
    fit_variant,
)
from terraops.pipelines.training.cross_validation import evaluate, fit_final_model  # noqa: E402
from terraops.pipelines.training.real_city import scene_examples  # noqa: E402
from terraops.pipelines.training.train import resolve_params  # noqa: E402
from terraops.services import get_service  # noqa: E402

UHI = get_service("uhi")
CELL_M = 20.0
LEVEL = 0.9
MORPHOLOGIES = ("dense", "sprawl", "coastal")
#: Unseen cities per draw in the table of draws (the fewest the coverage target names).
DRAW = 5
SAMPLES = ROOT / ".cache" / "samples"
#: The real cities: (name, product folder, bbox in the product's CRS or None, cell size m).
REAL_CITIES = (
    ("Liverpool (Landsat 8 L2, 2020-09-27)", SAMPLES / LIVERPOOL_SAMPLE.name, None, 30.0),
    (
        "Gulf coast (Landsat 8 L1, 2015-08-04)",
        SAMPLES / "landsat8-LC80200392015216LGN00",
        (452475.0, 3390555.0, 471285.0, 3394245.0),  # the Makefile's REAL_BBOX
        30.0,
    ),
)


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


def _served(tmp: Path, examples: pd.DataFrame, seed: int) -> tuple[Any, dict[str, Any], dict]:
    """Train + calibrate like ``terraops train``; load back like a server does.

    Also every variant calibrated on the same held-out-city residuals (in memory),
    to measure each on the unseen cities beside the kept one.
    """
    model_params, training = resolve_params(UHI, {"seed": seed})
    evaluation = evaluate(UHI, examples, model_params, training, lambda _label: None)
    model = fit_final_model(UHI, examples, model_params, training)
    calibration = calibrate(
        UHI, examples, evaluation, model, seed, params=model_params, training=training
    )
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
    cal = calibration_set(UHI, examples, evaluation.held_out["scene_cv"])
    column = UHI.feature_names.index(str(UHI.baseline))
    variants = {v: fit_variant(cal, v, column, seed) for v in VARIANTS}
    return predictor, calibration.report, variants


def _variants_on(
    predictor: Any, variants: dict, X: np.ndarray, y: np.ndarray, centre: np.ndarray
) -> dict[str, Any]:
    """Every variant's coverage table on these cells (every cell, raw band)."""
    classes = cell_classes(X, UHI.feature_names)
    neighbours = predictor.uncertainty.domain.neighbour_residuals(X)
    members = predictor.member_predict(X)
    out = {}
    for variant, fitted in variants.items():
        d = np.ones(len(X)) if fitted.difficulty is None else fitted.difficulty(X)
        if fitted.cv_plus is not None:
            lower, upper = fitted.cv_plus.bounds(LEVEL, members, d, classes)
        else:
            half = fitted.scores.half_width(LEVEL, d, classes, neighbours)
            lower, upper = centre - half, centre + half
        out[variant] = coverage_table(y, lower, upper, LEVEL, classes)
    return out


def _draws(
    y: np.ndarray, lower: np.ndarray, upper: np.ndarray, classes: np.ndarray, city: np.ndarray
) -> list[dict[str, Any]]:
    """The coverage table of each successive draw of :data:`DRAW` unseen cities: how
    much a five-city measurement moves with the cities drawn."""
    tables = []
    for first in range(0, int(city.max()) + 1 - DRAW + 1, DRAW):
        pick = (city >= first) & (city < first + DRAW)
        tables.append(coverage_table(y[pick], lower[pick], upper[pick], LEVEL, classes[pick]))
    return tables


def _city_mean(covered: np.ndarray, classes: np.ndarray, city: np.ndarray) -> dict[str, float]:
    """Per class, the coverage of each unseen city averaged over the cities (each city
    weighs the same, whatever its number of cells of the class)."""
    out = {}
    for code, name in enumerate(CELL_CLASSES):
        per_city = [covered[(city == c) & (classes == code)] for c in np.unique(city)]
        out[name] = float(np.mean([c.mean() for c in per_city if len(c)]))
    return out


def _measure(predictor: Any, variants: dict, unseen: list[pd.DataFrame]) -> dict[str, Any]:
    X = np.vstack([t[UHI.feature_names].to_numpy(np.float64) for t in unseen])
    y = np.concatenate([t[UHI.target].to_numpy(np.float64) for t in unseen])
    city = np.concatenate([np.full(len(t), k) for k, t in enumerate(unseen)])
    centre = predictor.predict(X)
    lower, upper = predictor.uncertainty.bounds(X, LEVEL, centre)
    _, inside = predictor.applicability(X)
    classes = cell_classes(X, UHI.feature_names)
    claim = inside & predictor.uncertainty.claimed(X)
    claimed = np.where(claim, lower, np.nan), np.where(claim, upper, np.nan)
    covered = (y >= lower) & (y <= upper)
    bounds = np.cumsum([0] + [len(t) for t in unseen])
    per_city = [round(float(covered[a:b].mean()), 3) for a, b in itertools.pairwise(bounds)]
    return {
        "cells": len(y),
        "share_inside_domain": float(inside.mean()),
        "claimed": coverage_table(y, *claimed, LEVEL, classes),
        "all_cells": coverage_table(y, lower, upper, LEVEL, classes),
        "per_city_coverage": per_city,
        "city_mean_class_coverage": _city_mean(covered, classes, city),
        "draws": _draws(y, lower, upper, classes, city),
        "class_cells": {n: int((classes == c).sum()) for c, n in enumerate(CELL_CLASSES)},
        "variants_unseen": _variants_on(predictor, variants, X, y, centre),
    }


def _real_examples(cache: Path) -> list[tuple[str, pd.DataFrame]]:
    """Each real city's cells with an observed LST (imported once into ``cache``)."""
    out = []
    for name, product, bbox, cell_m in REAL_CITIES:
        if not is_intact(product):
            _say(f"{name}: no sample at {product} (run scripts/fetch_test_samples.py); skipped")
            continue
        scene_dir = cache / ("real-" + product.name)
        if not (scene_dir / "scene.json").exists():
            _say(f"importing {name}")
            import_landsat(product, scene_dir, bbox=bbox, bbox_crs="product", overwrite=True)
        out.append((name, scene_examples(UHI, read_scene(scene_dir), cell_m)))
    return out


def _measure_real(predictor: Any, variants: dict, examples: pd.DataFrame) -> dict[str, Any]:
    """Coverage of the kept variant over every cell, on land, inside the domain; and
    every variant's table over every cell."""
    X = np.column_stack(
        [
            examples[n].to_numpy(np.float64) if n in examples else np.full(len(examples), np.nan)
            for n in UHI.feature_names
        ]
    )
    y = examples[UHI.target].to_numpy(np.float64)
    centre = predictor.predict(X)
    per_variant = _variants_on(predictor, variants, X, y, centre)
    lower, upper = predictor.uncertainty.bounds(X, LEVEL, centre)
    _, inside = predictor.applicability(X)
    classes = cell_classes(X, UHI.feature_names)
    land = classes != CELL_CLASSES.index("water")
    covered = (y >= lower) & (y <= upper)

    def share(pick: np.ndarray) -> float:
        return float(covered[pick].mean()) if pick.any() else float("nan")

    return {
        "cells": len(y),
        "coverage_all": share(np.ones(len(y), dtype=bool)),
        "coverage_land": share(land),
        "share_inside_domain": float(inside.mean()),
        "share_inside_domain_land": float(inside[land].mean()) if land.any() else float("nan"),
        "coverage_inside_land": share(land & inside),
        "mean_width": float(np.mean(upper - lower)),
        "mean_offset": float(np.mean(y - centre)),
        "mae": float(np.mean(np.abs(y - centre))),
        "variants": per_variant,
    }


def _row(name: str, row: dict[str, Any], cells: int | None = None) -> str:
    if row["n"] == 0:
        return f"| {name} | {cells or 0} | no interval | | |"
    cov = row["coverage"]
    flag = "" if np.isnan(cov) or abs(cov - LEVEL) <= 0.05 else " ⚠"
    return (
        f"| {name} | {row['n']} | {cov:.3f}{flag} | {row['mean_width']:.2f} | "
        f"{row['interval_score']:.2f} |"
    )


def _variant_row(table: dict[str, Any]) -> str:
    """``coverage | per class | mean width | interval score`` (⚠: off by > 5 points)."""

    def mark(coverage: float) -> str:
        return "" if np.isnan(coverage) or abs(coverage - LEVEL) <= 0.05 else "⚠"

    classes = [table["classes"][c]["coverage"] for c in CELL_CLASSES]
    overall = table["overall"]
    return (
        f"{overall['coverage']:.3f} | "
        + " / ".join(f"{c:.2f}{mark(c)}" for c in classes)
        + f" | {overall['mean_width']:.2f} | {overall['interval_score']:.2f}"
    )


def _variant_lines(
    result: dict[str, Any], report: dict[str, Any], real: list[tuple[str, dict[str, Any]]]
) -> list[str]:
    places = [("held-out training cities", None), ("unseen cities", result["variants_unseen"])]
    places += [(name.split(" (")[0], r["variants"]) for name, r in real]
    lines = [
        "Every variant on the same residuals (coverage overall | per class "
        + " / ".join(CELL_CLASSES)
        + " | mean width (K) | interval score; ⚠ = a class off by more than 5 points; "
        "real cities: every cell):",
        "",
    ]
    for title, tables in places:
        held = tables is None  # the training comparison: also its city-averaged classes
        lines += [
            f"*{title}*",
            "",
            "| variant | coverage | per class | mean width | interval score |"
            + (" per class, averaged over the cities (what the choice looks at) |" if held else ""),
            "|---|---|---|---|---|" + ("---|" if held else ""),
        ]
        for variant in VARIANTS:
            if variant not in report["variants"]:
                continue
            compared = report["variants"][variant]
            table = compared["all_cells"] if tables is None else tables[variant]
            mark = " (kept)" if variant == report["variant"] else ""
            extra = ""
            if held:
                mean = compared.get("city_mean_classes", {})
                extra = " / ".join(f"{mean.get(c, float('nan')):.2f}" for c in CELL_CLASSES) + " |"
            lines.append(f"| {variant}{mark} | {_variant_row(table)} |{extra}")
        lines.append("")
    return lines


def _draw_lines(result: dict[str, Any]) -> list[str]:
    """The kept variant per draw of five unseen cities, and city-averaged per class."""
    lines = [
        f"Kept variant on each draw of {DRAW} unseen cities (how much a five-city "
        "measurement moves with the cities drawn):",
        "",
        "| cities | coverage | per class " + " / ".join(CELL_CLASSES) + " | mean width "
        "| interval score |",
        "|---|---|---|---|---|",
    ]
    for k, table in enumerate(result["draws"]):
        lines.append(f"| {k * DRAW + 1}–{(k + 1) * DRAW} | {_variant_row(table)} |")
    mean = result["city_mean_class_coverage"]
    lines += [
        "",
        "Per class, averaged over the unseen cities (each city weighs the same): "
        + ", ".join(f"{name} {mean[name]:.3f}" for name in CELL_CLASSES)
        + ".",
        "",
    ]
    return lines


def _real_lines(real: list[tuple[str, dict[str, Any]]]) -> list[str]:
    if not real:
        return ["Real cities: no sample in `.cache/samples` (run `scripts/fetch_test_samples.py`)."]
    lines = [
        "**Real cities** (Landsat land-surface temperature; the model trained on synthetic "
        "cities only; intervals with the scene's own reference temperature):",
        "",
        "| city | cells | coverage, every cell | on land | land inside the area of "
        "applicability | coverage there | mean width (K) | mean offset (K) | MAE (K) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in real:
        lines.append(
            f"| {name} | {r['cells']} | {r['coverage_all']:.3f} | {r['coverage_land']:.3f} | "
            f"{r['share_inside_domain_land']:.1%} | {r['coverage_inside_land']:.3f} | "
            f"{r['mean_width']:.2f} | {r['mean_offset']:+.2f} | {r['mae']:.2f} |"
        )
    return [*lines, ""]


def _without_line(report: dict[str, Any]) -> str:
    without = report.get("classes_without_interval") or []
    if not without:
        return "Every land-cover class gets an interval."
    return (
        f"No interval for {', '.join(without)} cells: on held-out training cities every "
        "variant fell more than 5 points short of 90 % for them (how the model errs "
        "there in a new city cannot be told from the others), so none is claimed; their "
        "cells are counted below, and each variant's band on them is in the variants table."
    )


def _markdown(
    result: dict[str, Any],
    report: dict[str, Any],
    real: list[tuple[str, dict[str, Any]]],
    args: argparse.Namespace,
) -> str:
    lines = [
        "## Calibrated intervals on unseen cities (UHI, 90 %)",
        "",
        f"Trained on {args.train} synthetic cities, measured on {args.unseen} others "
        f"({args.size}² px at 4 m, 20 m cells); {machine_description()}.  ",
        f"Command: `python bench/uncertainty.py --train {args.train} --unseen {args.unseen} "
        f"--size {args.size} --out BENCHMARKS.md` (in `make bench`).",
        f"Kept variant: **{report['variant']}** — {report['reason']}.",
        f"Cells inside the area of applicability: {result['share_inside_domain']:.1%}.",
        _without_line(report),
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
            *(
                _row(name, table["classes"][name], result["class_cells"][name])
                for name in CELL_CLASSES
            ),
            "",
        ]
    lines += [f"Coverage per unseen city: {result['per_city_coverage']}.", ""]
    lines += _draw_lines(result)
    lines += _variant_lines(result, report, real)
    lines += _real_lines(real)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--train", type=int, default=6)
    # 15 rather than 5: a class's coverage on five cities moves by several points with
    # the cities drawn (the table of draws shows it); fifteen measure it three times over.
    parser.add_argument("--unseen", type=int, default=15)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench-uncertainty")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    train = [_table(args.cache, seed, args.size) for seed in range(1, args.train + 1)]
    unseen = [_table(args.cache, 100 + seed, args.size) for seed in range(args.unseen)]
    real_examples = _real_examples(args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        _say("training and calibrating")
        predictor, report, variants = _served(Path(tmp), pd.concat(train, ignore_index=True), 0)
        result = _measure(predictor, variants, unseen)
        real = [(name, _measure_real(predictor, variants, t)) for name, t in real_examples]
    print(json.dumps({"variant": report["variant"], **result, "real": real}, indent=1, default=str))
    if args.out is not None:
        replace_section(args.out, "uncertainty", _markdown(result, report, real, args))


if __name__ == "__main__":
    main()
