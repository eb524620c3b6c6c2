"""A real city's LST: the synthetic champion, it adapted to the city, from scratch, the NDVI line.

On one imported scene (default: the Liverpool Landsat 8 Level-2 crop the demo
imports), with the UHI champion of ``--home`` (or ``--version``) as the registered synthetic model:

1. the champion as is and the one-line NDVI fit (in-sample, which favours it) on
   every land cell (open water masked) and on every cell;
2. two training regimes, each over ``--seeds`` draws of held-out blocks
   (``--block-size`` m squares, 20 % of them held out, a ``--buffer`` m strip
   around them dropped from training): **few** — train on a random
   ``--few-shares`` of the scene's blocks (3 % and 15 % by default) — and **many** —
   train on every other block. In each, a model trained from scratch and the champion adapted
   (``terraops train --init-from``: recalibrated, shrunk toward the city's mean and
   boosted on the city's cells, its number of new trees chosen by early stopping on an
   inner split of those cells — :mod:`terraops.pipelines.training.adaptation`) are fitted to the
   same training cells and scored on the same held-out cells (Spearman; MAE
   after removing the mean offset), beside the champion as is and the NDVI line
   fitted on the same training cells (on their land cells for the land scores).
   Medians over the seeds.

Usage::

    python bench/real_city.py --home .terraops --real .terraops/real/liverpool \
        [--seeds 6] [--few-shares 0.03 0.15] [--out BENCHMARKS.md]

Nothing is written into the scene folder (its cell table is built in memory).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.harness import machine_description, replace_section  # noqa: E402
from terraops.adapters.raster_io import read_scene  # noqa: E402
from terraops.domain import real_eval, spatial_cv  # noqa: E402
from terraops.pipelines.maps.raster_predict import choose_model  # noqa: E402
from terraops.pipelines.scenes.cell_tables import build_cell_table  # noqa: E402
from terraops.pipelines.scenes.landcover_source import landcover_of_model  # noqa: E402
from terraops.pipelines.training.adaptation import fit_adapted  # noqa: E402
from terraops.pipelines.training.city import land_cells, model_inputs  # noqa: E402
from terraops.pipelines.training.cross_validation import (  # noqa: E402
    fit_final_model,
    predict,
    to_arrays,
)
from terraops.pipelines.training.train import resolve_params  # noqa: E402
from terraops.services import get_service  # noqa: E402
from terraops.settings import Settings  # noqa: E402

SERVICE = get_service("uhi")
MODELS = ("synthetic model as is", "NDVI line", "from scratch", "adapted")


def city_examples(settings: Settings, scene_dir: Path, params: Mapping[str, Any]) -> pd.DataFrame:
    """The scene's cells with an observed LST and NDVI, land cover as the champion's."""
    landcover = landcover_of_model(settings, params)
    cells = build_cell_table(read_scene(scene_dir), settings.cell_size_m, landcover=landcover)
    examples = SERVICE.build_examples(cells)
    keep = np.isfinite(examples["lst"].to_numpy()) & np.isfinite(examples["ndvi"].to_numpy())
    return examples[keep].reset_index(drop=True)


def scores(observed: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """(Spearman, MAE after removing the mean offset)."""
    s = real_eval.offset_scores(observed, predicted)
    return s.spearman, s.mae_after_offset


def split(
    examples: pd.DataFrame, args: argparse.Namespace, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Held-out rows and the training rows of each regime (buffered off the held-out ones)."""
    x, y = examples["x"].to_numpy(), examples["y"].to_numpy()
    blocks = spatial_cv.block_ids(x, y, args.block_size)
    ids = np.unique(blocks)
    rng = np.random.default_rng(seed)
    order = rng.permutation(ids)
    n_test = round(0.2 * len(ids))
    test = np.isin(blocks, order[:n_test])
    rows = np.arange(len(examples))
    fold = spatial_cv.Fold(rows[~test], rows[test])
    (buffered,) = spatial_cv.apply_buffer([fold], x, y, args.buffer)
    pool = np.zeros(len(examples), dtype=bool)
    pool[buffered.train] = True
    regimes = {}
    for share in args.few_shares:  # the first blocks after the held-out ones: nested draws
        few_blocks = order[n_test : n_test + max(1, round(share * len(ids)))]
        regimes[f"{share:.0%} of blocks"] = pool & np.isin(blocks, few_blocks)
    return test, regimes | {"every other block": pool}


def one_draw(
    examples: pd.DataFrame,
    champion: Any,
    args: argparse.Namespace,
    seed: int,
) -> list[dict[str, Any]]:
    """Every model of both regimes on one draw of held-out blocks."""
    model_params, training = resolve_params(SERVICE, {"seed": seed})
    test, regimes = split(examples, args, seed)
    held = examples[test].reset_index(drop=True)
    observed = held["lst"].to_numpy(np.float64)
    land = land_cells(held)
    data = to_arrays(SERVICE, held)
    booster = champion.booster
    as_is = champion.predict(model_inputs(champion.feature_names, held))
    rows = []
    for regime, train in regimes.items():
        fit_on = examples[train].reset_index(drop=True)
        predictions = {"synthetic model as is": as_is, "NDVI line": line_of(fit_on, held, False)}
        for name in ("from scratch", "adapted"):
            started = time.perf_counter()
            if name == "adapted":
                model, chosen = fit_adapted(SERVICE, fit_on, model_params, training, booster)
                rows.append({"regime": regime, "chosen": seed, **chosen.record()})
            else:
                model = fit_final_model(SERVICE, fit_on, model_params, training)
            predictions[name] = predict(SERVICE, model, data.X, data.names)
            rows.append({"regime": regime, "model": name, "fit_s": time.perf_counter() - started})
        for name, predicted in predictions.items():
            on_land = line_of(fit_on, held, True) if name == "NDVI line" else predicted
            land_rho, land_mae = scores(observed[land], on_land[land])
            all_rho, all_mae = scores(observed, predicted)
            rows.append(
                {
                    "regime": regime,
                    "model": name,
                    "seed": seed,
                    "train_share": float(train.mean()),
                    "land_spearman": land_rho,
                    "land_mae": land_mae,
                    "all_spearman": all_rho,
                    "all_mae": all_mae,
                }
            )
    return rows


def line_of(fit_on: pd.DataFrame, held: pd.DataFrame, land_only: bool) -> np.ndarray:
    """The NDVI line fitted on the training cells (their land cells only with
    ``land_only``: a line across a cold sea has the wrong slope on land)."""
    fit = fit_on[land_cells(fit_on)] if land_only else fit_on
    line = real_eval.fit_ndvi_line(fit["ndvi"].to_numpy(), fit["lst"].to_numpy())
    return line.predict(held["ndvi"].to_numpy(np.float64))


def whole_scene(examples: pd.DataFrame, champion: Any) -> pd.DataFrame:
    """The champion as is and the in-sample NDVI line on every land cell and every cell."""
    observed = examples["lst"].to_numpy(np.float64)
    as_is = champion.predict(model_inputs(champion.feature_names, examples))
    land = land_cells(examples)
    out = {}
    for where, mask in (("land cells", land), ("all cells", np.ones_like(land))):
        line = real_eval.fit_ndvi_line(examples["ndvi"].to_numpy()[mask], observed[mask])
        rho, mae = scores(observed[mask], as_is[mask])
        out[where] = {
            "n": int(mask.sum()),
            "synthetic model Spearman": rho,
            "synthetic model MAE": mae,
            "NDVI line Spearman": line.spearman,
            "NDVI line MAE": line.mae,
        }
    frame = pd.DataFrame(out).T
    frame["n"] = frame["n"].astype(int)
    return frame


def fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        return f"{value:.3f}"
    return str(int(value)) if isinstance(value, (float, np.floating, np.integer)) else str(value)


def table(frame: pd.DataFrame) -> str:
    header = ["", *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join([str(index), *map(fmt, row)]) + " |")
    return "\n".join(lines)


def summarise(rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, dict[str, float]]:
    scored = pd.DataFrame([r for r in rows if "land_spearman" in r])
    fits = pd.DataFrame([r for r in rows if "fit_s" in r])
    cols = ["train_share", "land_spearman", "land_mae", "all_spearman", "all_mae"]
    medians = scored.groupby(["regime", "model"], sort=False)[cols].median()
    medians.index = [f"{regime}: {model}" for regime, model in medians.index]
    fit_s = {
        f"{r}: {m}": float(g.median()) for (r, m), g in fits.groupby(["regime", "model"])["fit_s"]
    }
    return medians, fit_s


def choices(rows: list[dict[str, Any]]) -> str:
    """What the adaptation chose on each draw: the share of the recalibrated slope kept,
    that slope, and the number of new trees."""
    picked: dict[str, list[str]] = {}
    for r in rows:
        if "adapt_share" in r:
            text = f"{r['adapt_share']:g} × {r['adapt_slope']:.2f}, {r['adapt_new_trees']} trees"
            picked.setdefault(str(r["regime"]), []).append(text)
    parts = [f"{regime}: {'; '.join(texts)}" for regime, texts in picked.items()]
    return (
        "\nWhat the adaptation chose on each draw (share kept × least-squares slope of "
        "the city on the synthetic model, new trees): " + " — ".join(parts) + ".\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="Home with a uhi champion.")
    parser.add_argument("--real", type=Path, required=True, help="Imported scene folder.")
    parser.add_argument(
        "--version", type=int, help="The synthetic model's version (default: the champion)."
    )
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--block-size", type=float, default=500.0)
    parser.add_argument("--buffer", type=float, default=100.0)
    parser.add_argument("--few-shares", type=float, nargs="+", default=[0.03, 0.15])
    parser.add_argument("--out", type=Path, help="Markdown file to write the section into.")
    args = parser.parse_args()
    settings = Settings(home=args.home)
    choice = choose_model(settings, SERVICE, args.version)
    examples = city_examples(settings, args.real, choice.params)
    started = time.perf_counter()
    rows = [
        r for seed in range(args.seeds) for r in one_draw(examples, choice.predictor, args, seed)
    ]
    medians, fit_s = summarise(rows)
    body = section(args, choice.version, examples, whole_scene(examples, choice.predictor), medians)
    body += choices(rows)
    body += f"\nMedian fit time (s): {', '.join(f'{k} {v:.1f}' for k, v in fit_s.items())}; "
    body += f"whole bench {time.perf_counter() - started:.0f} s.\n"
    print(body)
    if args.out:
        replace_section(args.out, "real-city", body)


MATCH_SPEARMAN = 0.02
"""'Matches': land Spearman within this of the from-scratch model's."""


def goals(scene: pd.DataFrame, medians: pd.DataFrame, many: str) -> list[str]:
    """The stated goals, each with its figures and whether it is met."""

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    land = scene.loc["land cells"]
    rho, line = float(land["synthetic model Spearman"]), float(land["NDVI line Spearman"])
    lines = [
        f"- Synthetic model on land cells: Spearman {rho:.3f} (goal ≥ 0.75 {met(rho >= 0.75)}); "
        f"NDVI line {line:.3f} (goal: beat it, {met(rho > line)}).",
    ]
    regimes = list(dict.fromkeys(i.split(": ")[0] for i in medians.index))
    for regime in regimes:
        adapted = float(medians.loc[f"{regime}: adapted", "land_spearman"])
        scratch = float(medians.loc[f"{regime}: from scratch", "land_spearman"])
        share = float(medians.loc[f"{regime}: adapted", "train_share"])
        if regime == many:
            ok = abs(adapted - scratch) <= MATCH_SPEARMAN
            goal = f"goal: match it within {MATCH_SPEARMAN} {met(ok)}"
        else:
            goal = f"goal with ≤ 20 % of the scene: beat it, {met(adapted > scratch)}"
        lines.append(
            f"- {regime} ({share:.1%} of the cells): adapted land Spearman {adapted:.3f} vs "
            f"from scratch {scratch:.3f} ({goal})."
        )
    return lines


def section(
    args: argparse.Namespace,
    version: int,
    examples: pd.DataFrame,
    scene: pd.DataFrame,
    medians: pd.DataFrame,
) -> str:
    name = read_scene(args.real).name
    return "\n".join(
        [
            "## A real city: synthetic model, adapted, from scratch, NDVI line",
            "",
            f"Machine: {machine_description()} (shared with other jobs while measured). "
            f"Command: `python bench/real_city.py --home HOME --real {args.real.name}"
            f"{f' --version {args.version}' if args.version else ''} --seeds {args.seeds}`. "
            f"Scene `{name}`, {len(examples)} cells with an observed LST "
            f"({int(land_cells(examples).sum())} land cells); registered synthetic model: uhi "
            f"v{version}, trained on the demo's six synthetic cities.",
            "",
            "The registered synthetic model as is on the whole scene, beside the one-line "
            "NDVI fit (in-sample):",
            "",
            table(scene),
            "",
            f"Held-out blocks ({args.block_size:g} m, 20 % of the blocks, {args.buffer:g} m "
            f"buffer), medians over {args.seeds} draws; each regime trains on a share of the "
            "scene's blocks (or on every block not held out); `train_share` is the share of "
            "the scene's cells trained on; MAE after removing the mean offset (°C):",
            "",
            table(medians),
            "",
            *goals(scene, medians, "every other block"),
            "",
        ]
    )


if __name__ == "__main__":
    main()
