"""Edited inputs → the cells whose model inputs changed, before and after.

Both sides come from the one feature path
(:func:`terraops.pipelines.scenes.cell_tables.cell_features_from_inputs`);
the *before* side is the scene's cached cell table — what the maps and the
models see — and a cell's *after* inputs differ from it only in the features
the edit really moved. A cell whose inputs did not change keeps its inputs,
so its Δ is exactly 0, not a rounding residue.

How much is recomputed depends on what the model reads:

- **a window** (UHI): every feature the model uses reaches at most
  :func:`feature_reach_m` from an edited pixel along each axis (the
  neighbourhood gaussians are truncated to a square; a cell's own cover, its 200 m
  canopy and 500 m sealed-share neighbourhoods; elevation and slope do not
  depend on land cover). Cells farther than that from every edited pixel keep
  *exactly* their features. So the features are recomputed, before and after,
  on the edited pixels' bounding box grown by the reach (the cells that can
  change) and by the reach again (the halo whose values those neighbourhoods
  average), and compared there. The distance to water is global, but no
  intervention moves water; an edit that does falls back to the whole scene.
- **the whole scene** (flood): the hydrology is global. Sealing or unsealing a
  block changes the curve number of every channel downstream of it (the
  drainage's catchment CN), which reaches cells kilometres away, and the
  drainage network itself is derived from the whole DEM; no window short of
  the catchment is right. The flood model is rebuilt on the edited land cover
  over the whole scene, as the cell table was built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from terraops.domain import features
from terraops.domain.landcover import LandCover
from terraops.pipelines.scenes.cell_tables import SceneInputs, cell_features_from_inputs

FLOW_FEATURES: frozenset[str] = frozenset(features.TERRAIN_FEATURES) - {"elevation", "slope"}
"""Features of the drainage network: global, so they need the whole scene's hydrology."""


def feature_reach_m(names: Sequence[str]) -> float:
    """How far (m) from an edited pixel the features ``names`` can change."""
    radii = [hood.radius_m for name, hood in features.NEIGHBOURHOODS.items() if name in names]
    return max(radii, default=0.0)


def needs_whole_scene(names: Sequence[str], before: np.ndarray, after: np.ndarray) -> bool:
    """Whether a window cannot hold the edit's effect (flow features, or water moved)."""
    if FLOW_FEATURES & set(names):
        return True
    water = int(LandCover.WATER)
    return bool(((before == water) != (after == water)).any())


@dataclass(frozen=True)
class ChangedCells:
    """The cells whose model inputs the edit changed, with their inputs before and after.

    ``before`` and ``after`` hold the cell table's columns (ids, features,
    reference temperature) in the same row order; ``window`` is the pixel
    window recomputed (None: the whole scene).
    """

    rows: np.ndarray
    cols: np.ndarray
    before: pd.DataFrame
    after: pd.DataFrame
    window: tuple[slice, slice] | None


def pixel_window(
    changed: np.ndarray, grid: features.CellGrid, margin_m: float
) -> tuple[slice, slice] | None:
    """Cell-aligned pixel window: the changed pixels' box grown by ``margin_m`` (None: none)."""
    rows, cols = np.nonzero(grid.crop(changed))
    if not rows.size:
        return None
    f = grid.factor
    pad = int(np.ceil(margin_m / grid.cell_size)) + 1
    r0, r1 = max(rows.min() // f - pad, 0), min(rows.max() // f + pad + 1, grid.rows)
    c0, c1 = max(cols.min() // f - pad, 0), min(cols.max() // f + pad + 1, grid.cols)
    return slice(r0 * f, r1 * f), slice(c0 * f, c1 * f)


def _cell_index(table: pd.DataFrame, grid: features.CellGrid) -> np.ndarray:
    """(rows, cols) array of each cell's row in ``table`` (−1: not in it)."""
    index = np.full((grid.rows, grid.cols), -1, np.int64)
    index[table["row"].to_numpy(), table["col"].to_numpy()] = np.arange(len(table))
    return index


def _moved(
    before: pd.DataFrame, after: pd.DataFrame, names: Sequence[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows where any of ``names`` differs, and each feature's own difference mask."""
    masks = {}
    for name in names:
        b, a = before[name].to_numpy(np.float64), after[name].to_numpy(np.float64)
        masks[name] = ~((b == a) | (np.isnan(b) & np.isnan(a)))
    any_moved = np.zeros(len(before), bool)
    for mask in masks.values():
        any_moved |= mask
    return any_moved, masks


def _local_features(
    observed: SceneInputs,
    edited: SceneInputs,
    window: tuple[slice, slice],
    cell_size_m: float,
    grid: features.CellGrid,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Window features before and after, aligned on the cells both keep (global row/col)."""
    rows, cols = window
    offset_r, offset_c = rows.start // grid.factor, cols.start // grid.factor
    tables = []
    for inputs in (observed, edited):
        cells = cell_features_from_inputs(inputs.window(rows, cols), cell_size_m, hydrology=False)
        table = cells.table.assign(row=cells.table["row"] + offset_r)
        tables.append(table.assign(col=table["col"] + offset_c).set_index(["row", "col"]))
    common = tables[0].index.intersection(tables[1].index)
    return tables[0].loc[common].reset_index(), tables[1].loc[common].reset_index()


def changed_cells(
    baseline: pd.DataFrame,
    observed: SceneInputs,
    edited_bands: Mapping[str, np.ndarray],
    edited_landcover: np.ndarray,
    changed_pixels: np.ndarray,
    *,
    names: Sequence[str],
    cell_size_m: float,
) -> ChangedCells:
    """Recompute the features the edit can reach and keep the cells whose inputs moved.

    ``baseline`` is the scene's cell table (the *before* inputs); ``names``
    the model's features. See the module doc for the window rule.
    """
    grid = features.cell_grid(observed.landcover.shape, observed.resolution, cell_size_m)
    edited = replace(observed, bands=dict(edited_bands), landcover=edited_landcover)
    features_used = [n for n in names if n in features.CELL_FEATURES]
    window = None
    if needs_whole_scene(features_used, observed.landcover, edited_landcover):
        recomputed = cell_features_from_inputs(edited, cell_size_m).table
        before_w = baseline[["row", "col", *features_used]]
        after_w = recomputed[["row", "col", *features_used]]
        compared = features_used
    else:
        reach = feature_reach_m(features_used)
        window = pixel_window(changed_pixels, grid, 2.0 * reach)
        if window is None:
            return _no_change(baseline, window)
        before_w, after_w = _local_features(observed, edited, window, cell_size_m, grid)
        # Global features keep the whole scene's values (see the module doc).
        compared = [n for n in features_used if n != "water_distance"]
    return _merge(baseline, before_w, after_w, compared, grid, window)


def _merge(
    baseline: pd.DataFrame,
    before_w: pd.DataFrame,
    after_w: pd.DataFrame,
    compared: Sequence[str],
    grid: features.CellGrid,
    window: tuple[slice, slice] | None,
) -> ChangedCells:
    """The baseline rows of the moved cells, with the moved features' new values."""
    index = _cell_index(baseline, grid)
    after_index = _cell_index(after_w, grid)
    before_rows = index[before_w["row"].to_numpy(), before_w["col"].to_numpy()]
    after_rows = after_index[before_w["row"].to_numpy(), before_w["col"].to_numpy()]
    ok = (before_rows >= 0) & (after_rows >= 0)
    before_w = before_w.iloc[np.nonzero(ok)[0]].reset_index(drop=True)
    after_w = after_w.iloc[after_rows[ok]].reset_index(drop=True)
    moved, masks = _moved(before_w, after_w, compared)
    if not moved.any():
        return _no_change(baseline, window)
    rows = before_w["row"].to_numpy()[moved]
    cols = before_w["col"].to_numpy()[moved]
    before = baseline.iloc[index[rows, cols]].reset_index(drop=True)
    after = before.copy()
    for name in compared:
        mask = masks[name][moved]
        new = after_w[name].to_numpy(np.float64)[moved]
        after[name] = np.where(mask, new, before[name].to_numpy(np.float64))
    return ChangedCells(rows, cols, before, after, window)


def _no_change(baseline: pd.DataFrame, window: tuple[slice, slice] | None) -> ChangedCells:
    empty = baseline.iloc[:0].reset_index(drop=True)
    none = np.zeros(0, np.int64)
    return ChangedCells(none, none.copy(), empty, empty.copy(), window)
