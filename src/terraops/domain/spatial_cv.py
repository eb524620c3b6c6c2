"""Cross-validation splits for gridded (spatial) data.

Why not only a random K-fold: neighbouring cells of a raster share land cover,
shade, cooling from the same park or river, so a random split puts near-copies
of every test cell into the training set and reports an optimistic error.
Roberts et al. (2017, *Ecography* 40: 913–929, "Cross-validation strategies
for data with temporal, spatial, hierarchical, or phylogenetic structure")
recommend *blocking*: hold out whole spatial blocks at least as large as the
range of residual autocorrelation, optionally with a *buffer* that drops
training cells within a distance of the test blocks, and — where the data come
from several sites — leaving one site (here: one scene, one city) out.

Everything here is pure numpy/scipy: indices in, indices out. Rows may repeat a
location (the flood table has one row per cell *and* storm); rows at the same
location always land in the same block, and random folds accept ``groups`` so
that such rows stay together there too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from terraops.errors import InvalidInputError

DEFAULT_BLOCK_SIZE_M = 500.0


@dataclass(frozen=True)
class Fold:
    """Row indices (into the example table) to fit on and to test on."""

    train: np.ndarray
    test: np.ndarray


def _codes(values: Sequence[object] | np.ndarray | None, n_rows: int) -> np.ndarray:
    """Integer code per row (0 for every row when ``values`` is None)."""
    if values is None:
        return np.zeros(n_rows, dtype=np.int64)
    arr = np.asarray(values)
    if len(arr) != n_rows:
        raise InvalidInputError(f"expected {n_rows} labels, got {len(arr)}")
    _, inverse = np.unique(arr, return_inverse=True)
    return inverse.astype(np.int64).ravel()


def _balanced_assignment(group_sizes: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold number per group: shuffled, then largest group into the lightest fold.

    Like scikit-learn's GroupKFold (balanced row counts), but shuffled with a
    seed so that different seeds give different, reproducible partitions.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(group_sizes))
    order = order[np.argsort(-group_sizes[order], kind="stable")]
    fold_of_group = np.empty(len(group_sizes), dtype=np.int64)
    load = np.zeros(n_folds, dtype=np.int64)
    for g in order:
        k = int(np.argmin(load))
        fold_of_group[g] = k
        load[k] += group_sizes[g]
    return fold_of_group


def _folds_from_groups(groups: np.ndarray, n_folds: int, seed: int, what: str) -> list[Fold]:
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    if n_groups < 2:
        raise InvalidInputError(
            f"need at least 2 {what} for cross-validation, got {n_groups}",
            hint="use more or larger scenes, or a smaller block size",
        )
    n_folds = min(n_folds, n_groups)
    fold_of_group = _balanced_assignment(np.bincount(groups, minlength=n_groups), n_folds, seed)
    fold_of_row = fold_of_group[groups]
    rows = np.arange(len(groups))
    return [Fold(rows[fold_of_row != k], rows[fold_of_row == k]) for k in range(n_folds)]


def random_folds(
    n_rows: int,
    n_folds: int = 5,
    *,
    groups: Sequence[object] | np.ndarray | None = None,
    seed: int = 0,
) -> list[Fold]:
    """Ordinary K-fold over rows (or over ``groups``, e.g. one id per cell)."""
    codes = np.arange(n_rows) if groups is None else _codes(groups, n_rows)
    return _folds_from_groups(codes, n_folds, seed, "rows/groups")


def block_ids(
    x: np.ndarray,
    y: np.ndarray,
    block_size_m: float = DEFAULT_BLOCK_SIZE_M,
    scenes: Sequence[object] | np.ndarray | None = None,
) -> np.ndarray:
    """Id of the square block (side ``block_size_m``) holding each row.

    Blocks start at each scene's own lower-left cell, so every scene is tiled
    from its corner and blocks never span two scenes.
    """
    if block_size_m <= 0:
        raise InvalidInputError(f"block size must be positive, got {block_size_m}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    scene_codes = _codes(scenes, len(x))
    bx = np.empty(len(x), dtype=np.int64)
    by = np.empty(len(x), dtype=np.int64)
    for s in np.unique(scene_codes):
        m = scene_codes == s
        bx[m] = np.floor((x[m] - x[m].min()) / block_size_m).astype(np.int64)
        by[m] = np.floor((y[m] - y[m].min()) / block_size_m).astype(np.int64)
    keys = np.stack([scene_codes, bx, by], axis=1)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    return inverse.astype(np.int64).ravel()


def apply_buffer(
    folds: list[Fold],
    x: np.ndarray,
    y: np.ndarray,
    buffer_m: float,
    scenes: Sequence[object] | np.ndarray | None = None,
) -> list[Fold]:
    """Drop training rows within ``buffer_m`` of any test row of the same scene.

    Distances are between cell centres; a training cell survives only if it
    is *strictly* farther than ``buffer_m`` from every test cell.
    """
    if buffer_m <= 0:
        return folds
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    scene_codes = _codes(scenes, len(x))
    buffered = []
    for fold in folds:
        keep = np.ones(len(fold.train), dtype=bool)
        for s in np.unique(scene_codes[fold.test]):
            test_rows = fold.test[scene_codes[fold.test] == s]
            tree = cKDTree(np.column_stack([x[test_rows], y[test_rows]]))
            in_scene = scene_codes[fold.train] == s
            train_rows = fold.train[in_scene]
            dist, _ = tree.query(np.column_stack([x[train_rows], y[train_rows]]), k=1)
            keep[np.flatnonzero(in_scene)[dist <= buffer_m]] = False
        buffered.append(Fold(fold.train[keep], fold.test))
    return buffered


def spatial_block_folds(
    x: np.ndarray,
    y: np.ndarray,
    *,
    scenes: Sequence[object] | np.ndarray | None = None,
    n_folds: int = 5,
    block_size_m: float = DEFAULT_BLOCK_SIZE_M,
    buffer_m: float = 0.0,
    seed: int = 0,
) -> list[Fold]:
    """Spatial block K-fold: whole blocks are held out together, with an optional buffer.

    Fewer blocks than ``n_folds`` gives one fold per block.
    """
    blocks = block_ids(x, y, block_size_m, scenes)
    folds = _folds_from_groups(blocks, n_folds, seed, "spatial blocks")
    return apply_buffer(folds, x, y, buffer_m, scenes)


def leave_one_scene_out(scenes: Sequence[object] | np.ndarray) -> list[Fold]:
    """One fold per scene: fit on the other cities, test on this one."""
    codes = _codes(scenes, len(scenes))
    n_scenes = int(codes.max()) + 1 if len(codes) else 0
    if n_scenes < 2:
        raise InvalidInputError("leave-one-scene-out needs at least 2 scenes")
    rows = np.arange(len(codes))
    return [Fold(rows[codes != s], rows[codes == s]) for s in range(n_scenes)]
