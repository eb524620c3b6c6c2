"""Sliding-window inference over an image of any size, streamed in finished row bands.

The loop shared by whole-scene validation during training (an image in
memory) and ``terraops segment predict`` (an image on disk, read a window row
at a time): :func:`iter_label_rows` walks the windows of
:func:`~terraops.domain.segmentation.windows.plan_windows` in row-major
order, reads one *window row* (``tile`` rows × full width) through the
caller's ``read_rows``, predicts its chips in batches, blends them with
:class:`~terraops.domain.segmentation.windows.BlendAccumulator` and yields
each band of rows as soon as no later window can touch it.

What is held at once is one window row of input (5 × tile × width), one
batch of chips and their probabilities, and the accumulator's ≤ tile rows —
independent of the image's height, so memory stays flat as the image grows
(it grows with the width, which a column tiling could bound too).

Chip batches go through ``predict_batches`` (an iterator of batches → an
iterator of their probabilities, in order): by default ``predict_proba`` on
each in turn, in-process; :func:`terraops.adapters.dask_runner.batch_predictor`
runs them on a Dask cluster, a bounded number ahead, while this loop keeps the
reads, the blending and the yielded rows in the driver.

A row band comes out as class labels (argmax of the blended probabilities,
uint8), the winning probability as a per-pixel score, and no-data (255 /
NaN) wherever any input band is missing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby

import numpy as np

from terraops.domain.segmentation.classes import SEGMENTATION_NODATA
from terraops.domain.segmentation.windows import (
    BlendAccumulator,
    RowBand,
    Window,
    crop_to_window,
    pad_chip,
    plan_windows,
)

ReadRows = Callable[[int, int], np.ndarray]
"""``read_rows(row_off, rows)`` → float32 (bands, rows, width) reflectance, NaN = no data."""
PredictProba = Callable[[np.ndarray], np.ndarray]
"""float32 (N, bands, tile, tile) → float32 (N, classes, tile, tile) probabilities."""
PredictBatches = Callable[[Iterable[np.ndarray]], Iterator[np.ndarray]]
"""Chip batches → their probabilities, in the same order (lazily: a bounded number ahead)."""


@dataclass(frozen=True)
class LabelRows:
    """Finished rows ``[row_off, row_off + rows)`` of the label map."""

    row_off: int
    labels: np.ndarray  # uint8 (rows, width), 255 = no data
    scores: np.ndarray  # float32 (rows, width), probability of the label; NaN = no data

    @property
    def rows(self) -> int:
        return int(self.labels.shape[0])


def _labelled(band: RowBand, valid: np.ndarray) -> LabelRows:
    labels = band.probs.argmax(axis=0).astype(np.uint8)
    scores = band.probs.max(axis=0).astype(np.float32)
    labels[~valid] = SEGMENTATION_NODATA
    scores[~valid] = np.nan
    return LabelRows(band.row_off, labels, scores)


def iter_label_rows(
    read_rows: ReadRows,
    height: int,
    width: int,
    predict_proba: PredictProba,
    *,
    n_classes: int,
    tile: int,
    overlap: int,
    batch_size: int = 4,
    on_window_row: Callable[[int], None] | None = None,
    predict_batches: PredictBatches | None = None,
) -> Iterator[LabelRows]:
    """Label rows of the whole image, top to bottom, covering every row exactly once.

    ``on_window_row(n_windows)`` is called after each window row (progress).
    ``predict_batches`` replaces the in-process ``map(predict_proba, batches)``
    (e.g. by a Dask cluster); the batches and their order are the same either way.
    """
    acc = BlendAccumulator(height, width, n_classes, tile=tile, overlap=overlap)
    step = max(1, batch_size)
    # What each batch needs when its probabilities come back (in order): its
    # window row's offset and valid mask, its windows, and the row's size if it ends it.
    pending: deque[tuple[int, np.ndarray, list[Window], int]] = deque()

    def batches() -> Iterator[np.ndarray]:
        for row_off, group in groupby(acc.windows, key=lambda w: w.row_off):
            windows = list(group)
            strip = read_rows(row_off, windows[0].height)
            valid = np.asarray(np.isfinite(strip).all(axis=0))
            for start in range(0, len(windows), step):
                batch = windows[start : start + step]
                ends_row = len(windows) if start + step >= len(windows) else 0
                pending.append((row_off, valid, batch, ends_row))
                yield np.stack([_chip(strip, w, tile) for w in batch])

    predict = predict_batches or (lambda chips: map(predict_proba, chips))
    for probs in predict(batches()):
        row_off, valid, batch, ends_row = pending.popleft()
        for window, p in zip(batch, probs, strict=True):
            for band in acc.add(window, crop_to_window(p, window)):
                rows = slice(band.row_off - row_off, band.row_off - row_off + band.rows)
                yield _labelled(band, valid[rows])
        if ends_row and on_window_row is not None:
            on_window_row(ends_row)


def _chip(strip: np.ndarray, window: Window, tile: int) -> np.ndarray:
    return pad_chip(strip[:, :, window.col_off : window.col_end], tile)


def predict_array(
    image: np.ndarray,
    predict_proba: PredictProba,
    *,
    n_classes: int,
    tile: int,
    overlap: int,
    batch_size: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (uint8) and scores (float32) of an in-memory (bands, H, W) image."""
    _, height, width = image.shape
    labels = np.empty((height, width), dtype=np.uint8)
    scores = np.empty((height, width), dtype=np.float32)
    for part in iter_label_rows(
        lambda r, n: image[:, r : r + n, :],
        height,
        width,
        predict_proba,
        n_classes=n_classes,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
    ):
        labels[part.row_off : part.row_off + part.rows] = part.labels
        scores[part.row_off : part.row_off + part.rows] = part.scores
    return labels, scores


def windows_count(height: int, width: int, tile: int, overlap: int) -> int:
    """How many windows cover the image (for progress bars)."""
    return len(plan_windows(height, width, tile, overlap))
