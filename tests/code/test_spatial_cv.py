"""Spatial CV splits: the invariants that make a block CV honest."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from terraops.domain import spatial_cv
from terraops.errors import InvalidInputError


def grid(n_rows: int, n_cols: int, cell: float, scenes: int) -> tuple[np.ndarray, ...]:
    """Cell centres of ``scenes`` grids (the same local coordinates, different scenes)."""
    r, c = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    x = np.tile(c.ravel() * cell + cell / 2, scenes)
    y = np.tile(r.ravel() * cell + cell / 2, scenes)
    scene = np.repeat([f"s{i}" for i in range(scenes)], r.size)
    return x, y, scene


grids = st.tuples(
    st.integers(3, 18),  # rows
    st.integers(3, 18),  # cols
    st.sampled_from([10.0, 20.0, 30.0]),  # cell size
    st.integers(1, 2),  # scenes
    st.sampled_from([40.0, 60.0, 100.0]),  # block size
    st.integers(2, 6),  # folds
    st.sampled_from([0.0, 20.0, 45.0]),  # buffer
    st.integers(0, 3),  # seed
)


@settings(max_examples=60, deadline=None)
@given(grids)
def test_block_folds_invariants(case: tuple) -> None:
    n_rows, n_cols, cell, n_scenes, block, n_folds, buffer, seed = case
    x, y, scene = grid(n_rows, n_cols, cell, n_scenes)
    blocks = spatial_cv.block_ids(x, y, block, scene)
    if blocks.max() + 1 < 2:
        with pytest.raises(InvalidInputError):
            spatial_cv.spatial_block_folds(x, y, scenes=scene, n_folds=n_folds, block_size_m=block)
        return
    folds = spatial_cv.spatial_block_folds(
        x, y, scenes=scene, n_folds=n_folds, block_size_m=block, buffer_m=buffer, seed=seed
    )
    assert len(folds) == min(n_folds, blocks.max() + 1)
    # every cell is tested exactly once
    tested = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(len(x)))
    seen_blocks: set[int] = set()
    for fold in folds:
        test_blocks = set(blocks[fold.test].tolist())
        # no block is in two folds' test sets, and none is split across train/test
        assert not test_blocks & seen_blocks
        seen_blocks |= test_blocks
        assert not test_blocks & set(blocks[fold.train].tolist())
        assert not set(fold.train.tolist()) & set(fold.test.tolist())
        # buffer: every remaining training cell is farther than buffer_m from the test
        # cells of its own scene
        for s in np.unique(scene[fold.test]):
            tr = fold.train[scene[fold.train] == s]
            te = fold.test[scene[fold.test] == s]
            if len(tr):
                d = cdist(np.c_[x[tr], y[tr]], np.c_[x[te], y[te]]).min(axis=1)
                assert (d > buffer).all()


def test_buffer_drops_exactly_the_cells_within_the_distance() -> None:
    x, y, scene = grid(10, 10, 10.0, 1)
    plain = spatial_cv.spatial_block_folds(x, y, scenes=scene, n_folds=4, block_size_m=50.0)
    buffered = spatial_cv.apply_buffer(plain, x, y, 15.0, scene)
    for a, b in zip(plain, buffered, strict=True):
        d = cdist(np.c_[x[a.train], y[a.train]], np.c_[x[a.test], y[a.test]]).min(axis=1)
        assert np.array_equal(b.train, a.train[d > 15.0])
        assert len(b.train) < len(a.train)  # 15 m > one cell: neighbours are dropped


def test_blocks_are_squares_from_each_scene_corner() -> None:
    x, y, scene = grid(4, 4, 25.0, 2)  # 100 m scenes, 50 m blocks: 4 blocks per scene
    blocks = spatial_cv.block_ids(x, y, 50.0, scene)
    assert blocks.max() + 1 == 8
    assert np.bincount(blocks).tolist() == [4] * 8
    # the two scenes share coordinates but never a block
    assert not set(blocks[scene == "s0"]) & set(blocks[scene == "s1"])


def test_folds_are_deterministic_and_balanced() -> None:
    x, y, scene = grid(20, 20, 10.0, 1)
    a = spatial_cv.spatial_block_folds(x, y, scenes=scene, n_folds=4, block_size_m=50.0, seed=1)
    b = spatial_cv.spatial_block_folds(x, y, scenes=scene, n_folds=4, block_size_m=50.0, seed=1)
    c = spatial_cv.spatial_block_folds(x, y, scenes=scene, n_folds=4, block_size_m=50.0, seed=2)
    assert all(np.array_equal(f.test, g.test) for f, g in zip(a, b, strict=True))
    assert any(not np.array_equal(f.test, g.test) for f, g in zip(a, c, strict=True))
    assert [len(f.test) for f in a] == [100, 100, 100, 100]  # 16 equal blocks into 4 folds


def test_random_folds_keep_groups_together() -> None:
    groups = np.repeat(np.arange(30), 7)  # e.g. one cell, seven storms
    folds = spatial_cv.random_folds(len(groups), 5, groups=groups, seed=0)
    for fold in folds:
        assert not set(groups[fold.test]) & set(groups[fold.train])
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(groups)))


def test_leave_one_scene_out() -> None:
    scenes = np.array(["a", "b", "a", "c", "b"])
    folds = spatial_cv.leave_one_scene_out(scenes)
    assert [sorted(f.test.tolist()) for f in folds] == [[0, 2], [1, 4], [3]]
    assert all(set(scenes[f.train]).isdisjoint(set(scenes[f.test])) for f in folds)
    with pytest.raises(InvalidInputError):
        spatial_cv.leave_one_scene_out(np.array(["a", "a"]))
