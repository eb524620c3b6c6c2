"""Segmentation metrics: pixel IoU/F1/precision/recall per class, and object-level F1.

Pixel metrics say how much area is right; they can look fine while small
buildings are missed altogether and big ones are merged. Object F1 counts
footprints: a predicted polygon is a true positive when its IoU with a true
polygon is at least 0.5, one-to-one — the SpaceNet building-detection metric
(Van Etten et al. 2018, "SpaceNet: A Remote Sensing Dataset and Challenge
Series", arXiv:1807.01232, §4).

Empty cases are defined, not left as 0/0: when there is nothing to find and
nothing was found, every score is 1.0 (a perfect answer to an empty
question); when only one side is empty, precision, recall and F1 are 0.0.

Evaluation works on masks or vectors: :func:`mask_instances` turns a label
map into polygons (an instance is a 4-connected region), so either input
goes through :func:`object_f1`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import shapely
from rasterio import features as rio_features
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from terraops.errors import InvalidInputError

SPACENET_IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class ClassScores:
    """Pixel scores of one class (counts in pixels)."""

    iou: float
    f1: float
    precision: float
    recall: float
    support: int  # true pixels of the class
    tp: int
    fp: int
    fn: int


@dataclass(frozen=True)
class ObjectScores:
    """Object-level detection scores and the matches behind them."""

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    matches: tuple[tuple[int, int, float], ...]  # (pred index, true index, IoU)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("matches")
        return out


def _ratio(num: int, den: int, *, if_empty: float) -> float:
    return num / den if den else if_empty


def scores_from_counts(tp: int, fp: int, fn: int) -> tuple[float, float, float, float]:
    """(IoU, F1, precision, recall) from counts, with the empty cases defined.

    Nothing true and nothing predicted: all 1.0. Otherwise a 0/0 ratio (no
    predictions for precision, no truths for recall) is 0.0, because one side
    being empty while the other is not is a complete miss.
    """
    nothing_at_all = tp + fp + fn == 0
    empty = 1.0 if nothing_at_all else 0.0
    precision = _ratio(tp, tp + fp, if_empty=empty)
    recall = _ratio(tp, tp + fn, if_empty=empty)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, if_empty=1.0)
    iou = _ratio(tp, tp + fp + fn, if_empty=1.0)
    return iou, f1, precision, recall


def pixel_metrics(
    pred: np.ndarray,
    truth: np.ndarray,
    classes: Mapping[int, str] | Sequence[int],
    *,
    ignore: int | None = None,
) -> dict[int, ClassScores]:
    """Per-class pixel scores of a predicted label map against the truth.

    ``classes`` lists the class ids to score (a mapping's keys are used).
    Pixels where the *truth* equals ``ignore`` (its no-data value) are left
    out entirely. The prediction's own no-data is not excused: where the
    truth has a class and the prediction has none, that is a miss.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise InvalidInputError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    if ignore is not None:
        keep = truth != ignore
        pred, truth = pred[keep], truth[keep]
    out: dict[int, ClassScores] = {}
    for class_id in classes:
        p, t = pred == class_id, truth == class_id
        tp = int(np.count_nonzero(p & t))
        fp = int(np.count_nonzero(p)) - tp
        fn = int(np.count_nonzero(t)) - tp
        iou, f1, precision, recall = scores_from_counts(tp, fp, fn)
        out[int(class_id)] = ClassScores(iou, f1, precision, recall, tp + fn, tp, fp, fn)
    return out


def mean_iou(scores: Mapping[int, ClassScores]) -> float:
    """Unweighted mean IoU over the scored classes (mIoU)."""
    return float(np.mean([s.iou for s in scores.values()])) if scores else float("nan")


def polygon_iou(a: BaseGeometry, b: BaseGeometry) -> float:
    """Intersection over union of two areas; 0.0 when both are empty."""
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _valid(geoms: Sequence[BaseGeometry]) -> np.ndarray:
    arr = np.asarray(list(geoms), dtype=object)
    if arr.size == 0:
        return arr
    valid: np.ndarray = shapely.make_valid(arr)
    return valid


def object_f1(
    pred_polygons: Sequence[BaseGeometry],
    true_polygons: Sequence[BaseGeometry],
    *,
    iou_threshold: float = SPACENET_IOU_THRESHOLD,
) -> ObjectScores:
    """SpaceNet-style object precision, recall and F1.

    Candidate pairs are the (prediction, truth) pairs whose envelopes meet
    (an STRtree query, so large scenes do not cost n × m intersections).
    Pairs with IoU ≥ ``iou_threshold`` are matched greedily, best IoU first,
    each polygon used at most once. For a threshold of 0.5 or more the
    greedy matching is also the maximum one: a polygon cannot reach IoU > 0.5
    with two disjoint polygons (it would need more than half its area in
    each). One prediction covering two truths therefore matches at most one
    of them; the other is a miss.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise InvalidInputError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    pred, truth = _valid(pred_polygons), _valid(true_polygons)
    pairs: list[tuple[float, int, int]] = []
    if pred.size and truth.size:
        tree = shapely.STRtree(truth)
        pred_idx, true_idx = tree.query(pred, predicate="intersects")
        for i, j in zip(pred_idx.tolist(), true_idx.tolist(), strict=True):
            iou = polygon_iou(pred[i], truth[j])
            if iou >= iou_threshold:
                pairs.append((iou, i, j))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    used_pred: set[int] = set()
    used_true: set[int] = set()
    matches: list[tuple[int, int, float]] = []
    for iou, i, j in pairs:
        if i in used_pred or j in used_true:
            continue
        used_pred.add(i)
        used_true.add(j)
        matches.append((i, j, iou))
    tp = len(matches)
    fp, fn = int(pred.size) - tp, int(truth.size) - tp
    _, f1, precision, recall = scores_from_counts(tp, fp, fn)
    return ObjectScores(precision, recall, f1, tp, fp, fn, tuple(matches))


def mask_instances(
    labels: np.ndarray,
    class_id: int,
    *,
    transform: Affine | None = None,
    min_pixels: int = 1,
) -> list[BaseGeometry]:
    """One polygon (holes kept) per 4-connected region of ``class_id``.

    Coordinates are pixels (x right, y down) unless a ``transform`` is given;
    compare masks and vectors in the same coordinates. Regions of fewer than
    ``min_pixels`` pixels are left out. Touching objects merge into one
    region in a mask (a limit of mask inputs, not of the metric).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InvalidInputError(f"labels must be a 2-D array, got shape {labels.shape}")
    mask = labels == class_id
    components, count = ndimage.label(mask)
    if count == 0:
        return []
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    return [
        shape(geom)
        for geom, value in rio_features.shapes(
            components.astype(np.int32),
            mask=mask,
            connectivity=4,
            transform=transform if transform is not None else Affine.identity(),
        )
        if sizes[int(value)] >= min_pixels
    ]
