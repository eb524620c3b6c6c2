"""Sliding windows and blending: coverage, stride, seam-free weights, bounded streaming."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terraops.domain.segmentation.windows import (
    BlendAccumulator,
    RowBand,
    Window,
    axis_offsets,
    blend_weights,
    crop_to_window,
    pad_chip,
    plan_windows,
    taper,
)
from terraops.errors import InvalidInputError


@st.composite
def tilings(draw: st.DrawFn, max_size: int = 90) -> tuple[int, int, int, int]:
    """(height, width, tile, overlap) with images both smaller and larger than the tile."""
    tile = draw(st.integers(1, 32))
    overlap = draw(st.integers(0, tile - 1))
    height = draw(st.integers(1, max_size))
    width = draw(st.integers(1, max_size))
    return height, width, tile, overlap


def _blend(
    acc: BlendAccumulator, predictions: dict[Window, np.ndarray], order: list[Window]
) -> tuple[np.ndarray, list[RowBand]]:
    bands = [band for w in order for band in acc.add(w, predictions[w])]
    return np.concatenate([b.probs for b in bands], axis=1), bands


def _whole_image_reference(
    height: int, width: int, tile: int, overlap: int, predictions: dict[Window, np.ndarray]
) -> np.ndarray:
    """Accumulate on a full-size canvas: the obvious, unbounded way."""
    n_classes = next(iter(predictions.values())).shape[0]
    sums = np.zeros((n_classes, height, width))
    weights = np.zeros((height, width))
    # Along an axis shorter than a tile there is one window: uniform weight.
    rows = taper(tile, overlap) if height >= tile else np.ones(height)
    cols = taper(tile, overlap) if width >= tile else np.ones(width)
    wt = np.outer(rows, cols)
    for w, p in predictions.items():
        sums[:, w.row_off : w.row_end, w.col_off : w.col_end] += wt * p
        weights[w.row_off : w.row_end, w.col_off : w.col_end] += wt
    return sums / weights


# --- plan -------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(tilings())
def test_windows_cover_every_pixel_and_stay_inside_the_image(t: tuple[int, int, int, int]) -> None:
    height, width, tile, overlap = t
    windows = plan_windows(height, width, tile, overlap)
    covered = np.zeros((height, width), dtype=int)
    for w in windows:
        assert w.row_off >= 0 and w.row_end <= height
        assert w.col_off >= 0 and w.col_end <= width
        assert (w.height, w.width) == (min(tile, height), min(tile, width))
        covered[w.slices] += 1
    assert covered.min() >= 1
    assert len(set(windows)) == len(windows)
    assert windows == sorted(windows, key=lambda w: (w.row_off, w.col_off))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 200), st.integers(1, 40), st.data())
def test_offsets_step_by_the_stride_and_the_last_window_ends_at_the_edge(
    length: int, tile: int, data: st.DataObject
) -> None:
    overlap = data.draw(st.integers(0, tile - 1))
    stride = tile - overlap
    offsets = axis_offsets(length, tile, overlap)
    assert offsets[0] == 0
    if length <= tile:
        assert offsets == [0]
        return
    assert offsets[-1] + tile == length
    steps = np.diff(offsets)
    assert (steps[:-1] == stride).all()
    assert 0 < steps[-1] <= stride
    # No window more than needed: one fewer would leave the edge uncovered.
    assert len(offsets) == -(-(length - tile) // stride) + 1


@pytest.mark.parametrize(("tile", "overlap"), [(0, 0), (-3, 0), (8, 8), (8, 9), (8, -1)], ids=str)
def test_impossible_tilings_are_refused(tile: int, overlap: int) -> None:
    with pytest.raises(InvalidInputError):
        plan_windows(10, 10, tile, overlap)


def test_an_empty_image_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        plan_windows(0, 10, 4, 1)


def test_an_image_smaller_than_a_tile_gets_one_window_padded_and_cropped_back() -> None:
    image = np.arange(2 * 5 * 3, dtype=float).reshape(2, 5, 3)
    (window,) = plan_windows(5, 3, 8, 2)
    assert window == Window(0, 0, 5, 3)
    chip = pad_chip(image[(slice(None), *window.slices)], 8)
    assert chip.shape == (2, 8, 8)
    np.testing.assert_array_equal(chip[:, :5, :3], image)
    np.testing.assert_array_equal(chip[:, 5, :3], image[:, 3, :])  # mirrored, not zeros
    np.testing.assert_array_equal(crop_to_window(chip, window), image)


def test_pad_chip_refuses_chips_larger_than_the_tile() -> None:
    with pytest.raises(InvalidInputError):
        pad_chip(np.zeros((1, 9, 4)), 8)


# --- weights ----------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 64), st.data())
def test_blend_weights_are_positive_flat_in_the_middle_and_symmetric(
    tile: int, data: st.DataObject
) -> None:
    overlap = data.draw(st.integers(0, tile - 1))
    w = blend_weights(tile, overlap)
    assert w.shape == (tile, tile)
    assert (w > 0).all() and (w <= 1).all()
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_allclose(w, w[::-1, ::-1])
    if 2 * overlap < tile:
        assert (w[overlap : tile - overlap, overlap : tile - overlap] == 1).all()
        assert w[0, 0] < w[overlap // 2, overlap // 2] or overlap < 2


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 64), st.data())
def test_neighbouring_ramps_sum_to_one_so_a_regular_tiling_has_no_bump(
    tile: int, data: st.DataObject
) -> None:
    overlap = data.draw(st.integers(1, tile // 2))
    t = taper(tile, overlap)
    stride = tile - overlap
    np.testing.assert_allclose(t[stride:] + t[:overlap], 1.0, atol=1e-12)


# --- blending ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(tilings(), st.integers(1, 4), st.integers(0, 10_000))
def test_blending_a_constant_prediction_gives_the_constant(
    t: tuple[int, int, int, int], n_classes: int, seed: int
) -> None:
    height, width, tile, overlap = t
    value = np.random.default_rng(seed).random(n_classes)
    acc = BlendAccumulator(height, width, n_classes, tile=tile, overlap=overlap)
    preds = {
        w: np.broadcast_to(value[:, None, None], (n_classes, w.height, w.width))
        for w in acc.windows
    }
    out, _ = _blend(acc, preds, acc.windows)
    assert out.shape == (n_classes, height, width)
    np.testing.assert_allclose(out, np.broadcast_to(value[:, None, None], out.shape), rtol=1e-4)


@settings(max_examples=60, deadline=None)
@given(tilings(), st.integers(0, 10_000))
def test_blending_crops_of_an_image_reconstructs_the_image(
    t: tuple[int, int, int, int], seed: int
) -> None:
    height, width, tile, overlap = t
    image = np.random.default_rng(seed).random((2, height, width))
    acc = BlendAccumulator(height, width, 2, tile=tile, overlap=overlap)
    preds = {w: image[(slice(None), *w.slices)] for w in acc.windows}
    out, _ = _blend(acc, preds, acc.windows)
    np.testing.assert_allclose(out, image, rtol=1e-4, atol=1e-6)


def test_windows_that_disagree_meet_without_a_seam() -> None:
    """Each window predicts its own constant (±1): the blend changes gradually.

    A hard cut (or an unweighted mean) jumps by half the disagreement or more
    between two neighbouring pixels; the squared-sine ramp spreads the change
    over the overlap (at most π/(2·overlap) of it per pixel).
    """
    tile, overlap, size = 32, 12, 100
    acc = BlendAccumulator(size, size, 1, tile=tile, overlap=overlap)
    rng = np.random.default_rng(3)
    preds = {w: np.full((1, w.height, w.width), rng.choice([-1.0, 1.0])) for w in acc.windows}
    out, _ = _blend(acc, preds, acc.windows)
    largest_step = max(np.abs(np.diff(out[0], axis=0)).max(), np.abs(np.diff(out[0], axis=1)).max())
    assert largest_step <= 2.0 * np.pi / (2 * overlap) * 1.05
    assert largest_step < 0.5  # well below a seam's jump of 1 to 2


@settings(max_examples=60, deadline=None)
@given(tilings(max_size=70), st.integers(0, 10_000))
def test_streaming_equals_whole_image_blending_with_at_most_a_tile_of_rows(
    t: tuple[int, int, int, int], seed: int
) -> None:
    height, width, tile, overlap = t
    rng = np.random.default_rng(seed)
    acc = BlendAccumulator(height, width, 3, tile=tile, overlap=overlap, dtype=np.float64)
    preds = {w: rng.random((3, w.height, w.width)) for w in acc.windows}
    out, bands = _blend(acc, preds, acc.windows)
    np.testing.assert_allclose(
        out, _whole_image_reference(height, width, tile, overlap, preds), rtol=1e-12
    )
    starts = [b.row_off for b in bands]
    assert starts == sorted(starts) and starts[0] == 0
    assert [b.row_off + b.rows for b in bands[:-1]] == starts[1:]  # contiguous, no row twice
    assert acc.complete and acc.buffered_rows == 0
    assert acc.peak_rows <= min(height, tile)


@settings(max_examples=40, deadline=None)
@given(tilings(max_size=70), st.integers(0, 10_000))
def test_two_interleaved_window_rows_stay_within_tile_plus_stride(
    t: tuple[int, int, int, int], seed: int
) -> None:
    """Parallel workers return two window rows mixed: still bounded, still exact."""
    height, width, tile, overlap = t
    rng = np.random.default_rng(seed)
    acc = BlendAccumulator(height, width, 2, tile=tile, overlap=overlap, dtype=np.float64)
    preds = {w: rng.random((2, w.height, w.width)) for w in acc.windows}
    row_offs = sorted({w.row_off for w in acc.windows})
    order: list[Window] = []
    for pair in range(0, len(row_offs), 2):
        group = [w for w in acc.windows if w.row_off in row_offs[pair : pair + 2]]
        order += [group[i] for i in rng.permutation(len(group))]
    out, _ = _blend(acc, preds, order)
    np.testing.assert_allclose(
        out, _whole_image_reference(height, width, tile, overlap, preds), rtol=1e-12
    )
    assert acc.peak_rows <= tile + (tile - overlap)


def test_rows_are_handed_back_as_soon_as_no_window_can_touch_them() -> None:
    acc = BlendAccumulator(40, 20, 1, tile=16, overlap=4)  # row offsets 0, 12, 24
    first_row = [w for w in acc.windows if w.row_off == 0]
    emitted = [b for w in first_row for b in acc.add(w, np.ones((1, 16, 16)))]
    assert [(b.row_off, b.rows) for b in emitted] == [(0, 12)]
    assert acc.buffered_rows <= 16


def test_shuffled_windows_give_the_same_result() -> None:
    rng = np.random.default_rng(7)
    acc = BlendAccumulator(50, 45, 2, tile=16, overlap=5, dtype=np.float64)
    preds = {w: rng.random((2, w.height, w.width)) for w in acc.windows}
    order = [acc.windows[i] for i in rng.permutation(len(acc.windows))]
    out, _ = _blend(acc, preds, order)
    np.testing.assert_allclose(out, _whole_image_reference(50, 45, 16, 5, preds), rtol=1e-12)


def test_a_window_added_twice_or_outside_the_plan_or_misshaped_is_refused() -> None:
    acc = BlendAccumulator(20, 20, 1, tile=16, overlap=4)
    w = acc.windows[0]
    acc.add(w, np.zeros((1, 16, 16)))
    with pytest.raises(InvalidInputError, match="already added"):
        acc.add(w, np.zeros((1, 16, 16)))
    with pytest.raises(InvalidInputError):
        acc.add(Window(1, 0, 16, 16), np.zeros((1, 16, 16)))
    with pytest.raises(InvalidInputError, match="shape"):
        acc.add(acc.windows[1], np.zeros((1, 17, 16)))
