"""Adapting a registered model to a city: recalibrate it, shrink it, boost what it misses.

Continuing to boost the synthetic model as it is (LightGBM ``init_model``) ranked
Liverpool's held-out land cells *worse* than a model trained from scratch on the
same cells (BENCHMARKS.md, real-city section): the synthetic trees answer land
cover about twice as strongly as that city does, and the new trees, bound by the
same monotone constraints (more NDVI never warmer), cannot take back an
over-stated slope. So adaptation here is three steps, and still one LightGBM
booster, so that serving, the compiled forest, TreeSHAP and intervals stay as they are:

1. **recalibrate**: the registered model's raw output ``f`` is fitted to the
   city's pixels by least squares, ``a + b·f`` (its level and its scale on this city);
2. **shrink** toward the city's mean: only :data:`PRIOR_SHARE` ``w`` of that slope is
   kept, ``mean + w·b·(f − mean f)``; the booster is rewritten so that it predicts
   exactly that (:func:`scaled_booster`: every leaf times ``w·b``, the constant in
   the first tree);
3. **boost the rest**: new trees continue from that booster on the city's pixels
   (``init_model``) — as many as early stopping keeps on an inner spatial split (a
   quarter of the blocks of the city's own training cells, never its held-out blocks).

Why a fixed, small share: the city's own blocks could not choose it. Choosing it
among 0–1 by the Spearman rank on land cells of an inner split, or of a 3-fold
inner CV, ranked Liverpool's held-out land worse than from scratch when 15 % of
the blocks trained; a tenth did best on the draws it was chosen on and ties with from
scratch over more draws (BENCHMARKS.md, real-city section). So the registered model is
a weak guide: where the city has cells, the new trees decide; its shape is left where
they are silent.

A run's own spatial CV reuses the number of trees chosen on all of its training
cells; the held-out blocks a run is compared and promoted on, and the model card's
spatial-CV rows (each fold adapts on its own training blocks), never see the cells
they score. Classification services keep the registered model's scale (a log-odds
slope fitted by least squares means nothing) and only choose the number of new trees.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from terraops.domain import spatial_cv
from terraops.pipelines.training.cross_validation import fit_final_model
from terraops.services.base import ServiceDefinition

PRIOR_SHARE = 0.1
"""Share of the recalibrated slope the adapted model starts from (1: recalibrated only)."""

INNER_SHARE = 0.25
"""Share of the training cells' blocks the inner split validates on."""

MAX_NEW_TREES = 1000
PATIENCE = 50
"""Early stopping: at most this many new trees; stop after this many without gain."""


@dataclass(frozen=True)
class Adaptation:
    """How a registered booster is adapted to a city (what the run records)."""

    booster: Any  # the rewritten registered booster the new trees continue from
    share: float  # w: the share of the recalibrated slope kept
    slope: float  # b: the least-squares slope of the city's pixels on the raw output
    offset: float  # the constant added to the first tree
    new_trees: int  # trees boosted on top (early stopping on the inner split)

    def params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The model parameters with the number of new trees set."""
        return {**params, "n_estimators": self.new_trees}

    def record(self) -> dict[str, float | int]:
        """Run parameters: what the adaptation chose."""
        return {
            "adapt_share": self.share,
            "adapt_slope": round(self.slope, 6),
            "adapt_offset": round(self.offset, 6),
            "adapt_new_trees": self.new_trees,
        }


def scaled_booster(booster: Any, scale: float, offset: float) -> Any:
    """A LightGBM booster predicting ``scale·raw + offset`` of ``booster`` (raw score).

    Every leaf value (and internal value, which TreeSHAP reads) is multiplied by
    ``scale``; ``offset`` is added to every leaf of the first tree, which every row
    reaches exactly once. The size index (``tree_sizes``) is dropped: LightGBM
    then parses the trees one by one.
    """
    import lightgbm

    text = booster.model_to_string()
    head, sep, rest = text.partition("\nTree=0\n")
    trees, end, tail = rest.partition("\nend of trees")
    if not sep or not end:
        raise ValueError("not a LightGBM text model with trees")
    head = "\n".join(line for line in head.split("\n") if not line.startswith("tree_sizes="))
    blocks = ("Tree=0\n" + trees).split("\n\n\n")
    out = []
    for index, block in enumerate(blocks):
        add = offset if index == 0 else 0.0
        out.append(_scale_values(block, scale, add))
    return lightgbm.Booster(model_str=head + "\n" + "\n\n\n".join(out) + end + tail)


_VALUES = re.compile(r"^(leaf_value|internal_value)=(.*)$", re.MULTILINE)


def _scale_values(block: str, scale: float, add: float) -> str:
    def rewrite(match: re.Match[str]) -> str:
        values = np.array(match.group(2).split(), dtype=np.float64) * scale + add
        return f"{match.group(1)}=" + " ".join(repr(float(v)) for v in values)

    return _VALUES.sub(rewrite, block)


def _relative_target(service: ServiceDefinition, frame: pd.DataFrame) -> np.ndarray:
    """What the booster itself fits: the target less the service's baseline (if any)."""
    target = frame[service.target].to_numpy(np.float64)
    if service.baseline is None:
        return target
    base = frame[service.baseline].to_numpy(np.float64)
    return target - np.where(np.isfinite(base), base, np.nanmean(base))


def _raw(booster: Any, service: ServiceDefinition, frame: pd.DataFrame) -> np.ndarray:
    inputs = frame[service.model_inputs].to_numpy(np.float64)
    return np.asarray(booster.predict(inputs, raw_score=True, num_threads=1), dtype=np.float64)


def inner_split(frame: pd.DataFrame, block_size_m: float, seed: int) -> np.ndarray | None:
    """Validation rows: :data:`INNER_SHARE` of the training cells' blocks (None: fewer
    than two blocks, nothing to validate on). Blocks are places, not scenes: two
    dates of one city put a place in the same block, so no date of it trains."""
    x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
    blocks = spatial_cv.block_ids(x, y, block_size_m)
    ids = np.unique(blocks)
    if len(ids) < 2:
        return None
    n = min(len(ids) - 1, max(1, round(INNER_SHARE * len(ids))))
    picked = np.random.default_rng(seed).choice(ids, size=n, replace=False)
    return np.isin(blocks, picked)


def _early_stopped(
    service: ServiceDefinition,
    params: Mapping[str, Any],
    frame: pd.DataFrame,
    target: np.ndarray,
    start: np.ndarray,
    val: np.ndarray,
) -> int:
    """How many new trees, boosted from ``start`` (raw scores) on the inner training
    rows, early stopping keeps on the validation rows."""
    import lightgbm

    inputs = frame[service.model_inputs]
    model = service.model_factory({**params, "n_estimators": MAX_NEW_TREES})
    model.fit(
        inputs[~val],
        target[~val],
        init_score=start[~val],
        eval_X=(inputs[val],),
        eval_y=(target[val],),
        eval_init_score=[start[val]],
        callbacks=[lightgbm.early_stopping(PATIENCE, verbose=False)],
    )
    return max(1, int(model.best_iteration_ or MAX_NEW_TREES))


def start_score(raw: np.ndarray, target: np.ndarray, share: float, slope: float) -> np.ndarray:
    """The rewritten booster's output: the city's mean plus ``share`` of the
    recalibrated deviation (``slope·(raw − mean raw)``)."""
    return float(target.mean()) + share * slope * (raw - raw.mean())


def adapt(
    service: ServiceDefinition,
    frame: pd.DataFrame,
    params: Mapping[str, Any],
    training: Mapping[str, Any],
    booster: Any,
) -> Adaptation:
    """Recalibrate and shrink ``booster`` on ``frame`` (the city's training cells),
    choose the number of new trees there (see the module docstring)."""
    raw, target = _raw(booster, service, frame), _relative_target(service, frame)
    share, slope, offset, start, rewritten = 1.0, 1.0, 0.0, raw, booster
    if service.task == "regression":
        if np.ptp(raw) > 0:
            slope = float(np.cov(raw, target)[0, 1] / np.var(raw, ddof=1))
        share = PRIOR_SHARE
        start = start_score(raw, target, share, slope)
        offset = float(target.mean() - share * slope * raw.mean())
        rewritten = scaled_booster(booster, share * slope, offset)
    val = inner_split(frame, float(training["cv_block_size_m"]) / 2, int(training["seed"]))
    trees = (  # nothing to validate on: the usual number of trees
        int(params["n_estimators"])
        if val is None
        else _early_stopped(service, params, frame, target, start, val)
    )
    return Adaptation(rewritten, share, slope, offset, trees)


def fit_adapted(
    service: ServiceDefinition,
    frame: pd.DataFrame,
    params: Mapping[str, Any],
    training: Mapping[str, Any],
    booster: Any,
) -> tuple[Any, Adaptation]:
    """The registered ``booster`` adapted to the city cells of ``frame`` (:func:`adapt`),
    then fitted on all of them as a final model is (missing-value augmentation)."""
    adaptation = adapt(service, frame, params, training, booster)
    model = fit_final_model(service, frame, adaptation.params(params), training, adaptation.booster)
    return model, adaptation
