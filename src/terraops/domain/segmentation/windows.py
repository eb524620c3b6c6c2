"""Sliding windows over an image of any size, and seam-free blending of their predictions.

A segmentation network sees a fixed ``tile × tile`` chip; a scene is far
larger (and far larger than memory). So inference walks windows over the
image and stitches the per-window class probabilities back together:

- :func:`plan_windows` lays out the windows: stride ``tile − overlap``, the
  last row/column shifted back to end exactly at the image edge, so every
  pixel is seen and nothing is read beyond the image. Only an image smaller
  than a tile gets a single window smaller than the tile; :func:`pad_chip`
  pads that chip to the network's size and :func:`crop_to_window` cuts the
  prediction back.
- :func:`blend_weights` is the per-window weight: flat 1 in the middle, a
  squared-sine (half Hann) ramp across the overlap. Predictions near a
  chip's border are the least reliable (the network lacks context there;
  Ronneberger et al. 2015, "U-Net", §2 "overlap-tile strategy"), and a
  weighted average that fades one window out while the next fades in leaves
  no seam where a hard cut would.
- :class:`BlendAccumulator` accumulates weighted probability sums and weight
  sums and hands back finished row bands as soon as no remaining window can
  touch them, so the caller writes output rows while reading input rows and
  memory stays flat however tall the image is.

Pure numpy: nothing here reads or writes files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from terraops.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class Window:
    """A window of an image in pixel coordinates (rows down, columns right)."""

    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def row_end(self) -> int:
        return self.row_off + self.height

    @property
    def col_end(self) -> int:
        return self.col_off + self.width

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices: ``image[..., *window.slices]`` is the chip."""
        return slice(self.row_off, self.row_end), slice(self.col_off, self.col_end)


@dataclass(frozen=True, slots=True)
class RowBand:
    """Finished rows ``[row_off, row_off + rows)`` of the blended output.

    ``probs`` has shape ``(n_classes, rows, image_width)``: the weighted
    average of every window prediction that covers those rows.
    """

    row_off: int
    probs: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.probs.shape[1])


def _check_tiling(tile: int, overlap: int) -> None:
    if tile < 1:
        raise InvalidInputError(f"tile must be at least 1 pixel, got {tile}")
    if not 0 <= overlap < tile:
        raise InvalidInputError(
            f"overlap must be in [0, tile) = [0, {tile}), got {overlap}",
            hint="the stride is tile - overlap and must be at least one pixel",
        )


def axis_offsets(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the windows along one axis of ``length`` pixels.

    ``0, stride, 2·stride, …`` while a whole tile fits, then one last window
    shifted to end exactly at ``length`` (it overlaps its neighbour by at
    least ``overlap``). Shifting beats padding: the last window still sees
    real pixels, not invented ones. An axis shorter than a tile gets one
    offset, 0.
    """
    _check_tiling(tile, overlap)
    if length < 1:
        raise InvalidInputError(f"an image axis must have at least 1 pixel, got {length}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    offsets = list(range(0, length - tile + 1, stride))
    if offsets[-1] != length - tile:
        offsets.append(length - tile)
    return offsets


def plan_windows(height: int, width: int, tile: int, overlap: int) -> list[Window]:
    """The windows that cover a ``height × width`` image, in row-major order.

    Each window is ``min(tile, height) × min(tile, width)``: as big as the
    tile wherever the image allows. Row-major order (all windows of one
    window row, left to right, then the next) is what lets
    :class:`BlendAccumulator` finish the output top to bottom.
    """
    rows = axis_offsets(height, tile, overlap)
    cols = axis_offsets(width, tile, overlap)
    h, w = min(tile, height), min(tile, width)
    return [Window(r, c, h, w) for r in rows for c in cols]


def taper(length: int, overlap: int) -> np.ndarray:
    """1-D weights: 1 in the middle, a squared-sine ramp over ``overlap`` at both ends.

    ``w[i] = sin²(π/2 · (i + ½)/overlap)`` for the first ``overlap`` samples,
    mirrored at the far end. Two properties matter:

    - never exactly 0 (the ``+ ½`` samples the ramp at pixel centres), so a
      pixel at the image edge, which only one window covers, still gets a
      weight and is not divided by zero;
    - where a ramp falls and the next window's ramp rises over the same
      ``overlap`` pixels, ``sin² + cos² = 1``: the weights of neighbouring
      windows sum to one (the partition of unity behind overlap-add with a
      Hann window; Harris 1978, Proc. IEEE 66:51–83), so a regular tiling
      blends with no bump or dip. Where windows overlap more (the shifted
      last window) the weighted average is normalised by the weight sum.

    If ``2·overlap > length`` the two ramps meet and the profile is their
    minimum.
    """
    w = np.ones(length, dtype=np.float64)
    if overlap == 0:
        return w
    i = np.arange(length, dtype=np.float64)
    rise = np.sin(0.5 * math.pi * np.minimum((i + 0.5) / overlap, 1.0)) ** 2
    ramp: np.ndarray = np.minimum(rise, rise[::-1])
    return ramp


def blend_weights(tile: int, overlap: int) -> np.ndarray:
    """``tile × tile`` separable window weights: ``outer(taper, taper)`` (float64)."""
    _check_tiling(tile, overlap)
    t = taper(tile, overlap)
    return np.outer(t, t)


def pad_chip(chip: np.ndarray, tile: int) -> np.ndarray:
    """Pad a ``(bands, h, w)`` chip on the bottom/right to ``(bands, tile, tile)``.

    Only an image smaller than a tile yields a chip smaller than the tile.
    Padding mirrors the chip (numpy's ``reflect``) instead of adding zeros:
    a zero border is a hard edge the network would read as an object, while
    mirroring keeps the image's texture (the U-Net paper extrapolates missing
    context the same way). Crop the prediction back with
    :func:`crop_to_window`.
    """
    if chip.ndim != 3:
        raise InvalidInputError(f"a chip must be (bands, rows, cols), got shape {chip.shape}")
    _, h, w = chip.shape
    if h > tile or w > tile:
        raise InvalidInputError(f"chip {h}×{w} is larger than the tile {tile}")
    if (h, w) == (tile, tile):
        return chip
    return np.pad(chip, ((0, 0), (0, tile - h), (0, tile - w)), mode="reflect")


def crop_to_window(prediction: np.ndarray, window: Window) -> np.ndarray:
    """The ``(classes, window.height, window.width)`` top-left part of a padded prediction."""
    return prediction[..., : window.height, : window.width]


class BlendAccumulator:
    """Blends window predictions into finished row bands with bounded memory.

    Built for one image and tiling; :attr:`windows` is the plan. Feed every
    window's class probabilities to :meth:`add`, in any order; each call
    returns the row bands that became final (possibly none). A row is final
    once every window touching it has been added, i.e. every row above the
    first window row that still misses a window.

    Memory bound: the state is ``(n_classes + 1) × rows × width`` values,
    where ``rows`` spans from the first unfinished row to the lowest row an
    added window reaches. Added in the plan's row-major order, that is at
    most ``min(height, tile)`` rows (a window row starts where the previous
    band ended); if results of two consecutive window rows interleave (as
    parallel workers return them), at most ``tile + stride``; in general
    ``tile + (k − 1)·stride`` for ``k`` window rows open at once.
    :attr:`peak_rows` reports the largest buffer actually allocated.

    Sums are kept in ``dtype`` (float32 by default, half the memory of
    float64); the relative error of a blended value is then about
    ``k · 6e-8`` for ``k`` windows over a pixel, far below what a class
    probability needs.
    """

    def __init__(
        self,
        height: int,
        width: int,
        n_classes: int,
        *,
        tile: int,
        overlap: int,
        dtype: DTypeLike = np.float32,
    ) -> None:
        if n_classes < 1:
            raise InvalidInputError(f"n_classes must be at least 1, got {n_classes}")
        self.height, self.width, self.n_classes = height, width, n_classes
        self.windows = plan_windows(height, width, tile, overlap)
        first = self.windows[0]
        self._weights = np.outer(
            taper(first.height, overlap) if height >= tile else np.ones(height),
            taper(first.width, overlap) if width >= tile else np.ones(width),
        ).astype(dtype)
        self._pending = {(w.row_off, w.col_off) for w in self.windows}
        self._row_offsets = sorted({w.row_off for w in self.windows})
        per_row = len(self.windows) // len(self._row_offsets)
        self._left_in_row = dict.fromkeys(self._row_offsets, per_row)
        self._next_open = 0  # index into _row_offsets of the first unfinished window row
        self._top = 0  # first row not yet emitted
        self._dtype = dtype
        self._sums = np.zeros((n_classes, first.height, width), dtype=dtype)
        self._wsum = np.zeros((first.height, width), dtype=dtype)
        self.peak_rows = first.height

    @property
    def complete(self) -> bool:
        """Every window added and every row emitted."""
        return self._top == self.height

    @property
    def buffered_rows(self) -> int:
        """Rows currently allocated for the open windows."""
        return int(self._wsum.shape[0])

    def add(self, window: Window, probs: np.ndarray) -> list[RowBand]:
        """Accumulate one window's ``(n_classes, height, width)`` probabilities.

        Returns the bands that became final, top to bottom (usually zero or one).
        """
        key = (window.row_off, window.col_off)
        if key not in self._pending:
            raise InvalidInputError(
                f"window {window} is not in the plan or was already added",
                hint="add each window of BlendAccumulator.windows exactly once",
            )
        expected = (self.n_classes, window.height, window.width)
        if probs.shape != expected:
            raise InvalidInputError(
                f"prediction for {window} has shape {probs.shape}, expected {expected}",
                hint="crop a padded prediction with crop_to_window",
            )
        self._pending.remove(key)
        self._ensure_rows(window.row_end - self._top)
        r0 = window.row_off - self._top
        rows, cols = slice(r0, r0 + window.height), slice(window.col_off, window.col_end)
        self._sums[:, rows, cols] += probs * self._weights
        self._wsum[rows, cols] += self._weights
        self._left_in_row[window.row_off] -= 1
        return self._emit()

    def _ensure_rows(self, needed: int) -> None:
        have = self._wsum.shape[0]
        if needed <= have:
            return
        grow = needed - have
        self._sums = np.concatenate(
            [self._sums, np.zeros((self.n_classes, grow, self.width), self._dtype)], axis=1
        )
        self._wsum = np.concatenate([self._wsum, np.zeros((grow, self.width), self._dtype)])
        self.peak_rows = max(self.peak_rows, needed)

    def _emit(self) -> list[RowBand]:
        offsets = self._row_offsets
        while self._next_open < len(offsets) and self._left_in_row[offsets[self._next_open]] == 0:
            self._next_open += 1
        ready = offsets[self._next_open] if self._next_open < len(offsets) else self.height
        n = ready - self._top
        if n <= 0:
            return []
        band = RowBand(self._top, self._sums[:, :n] / self._wsum[:n])
        # Shift the open rows to the top of the buffer and clear what was freed.
        self._sums[:, :-n] = self._sums[:, n:].copy()
        self._wsum[:-n] = self._wsum[n:].copy()
        self._sums[:, -n:] = 0
        self._wsum[-n:] = 0
        self._top = ready
        if self.complete:  # release the buffer: nothing can arrive any more
            self._sums, self._wsum = self._sums[:, :0], self._wsum[:0]
        return [band]
