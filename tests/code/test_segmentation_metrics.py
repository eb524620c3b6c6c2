"""Segmentation evaluation: pixel scores per class, SpaceNet object F1, and the label set."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.transform import Affine
from shapely.geometry import box
from sklearn import metrics as skm

from terraops.domain.landcover import NODATA_CODE, LandCover
from terraops.domain.segmentation.classes import (
    CLASS_COLOURS,
    SEGMENTATION_NODATA,
    SegClass,
    landcover_from_segmentation,
    segmentation_from_landcover,
    stands_in_for,
)
from terraops.domain.segmentation.metrics import (
    mask_instances,
    mean_iou,
    object_f1,
    pixel_metrics,
    polygon_iou,
)
from terraops.errors import InvalidInputError

# --- pixel metrics -------------------------------------------------------------


def test_pixel_metrics_of_a_hand_counted_case() -> None:
    truth = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [2, 2, 0, 0]])
    pred = np.array([[1, 1, 0, 1], [1, 1, 0, 0], [2, 0, 0, 0]])
    scores = pixel_metrics(pred, truth, [1, 2])
    building = scores[1]  # tp 3, fp 2, fn 1
    assert (building.tp, building.fp, building.fn, building.support) == (3, 2, 1, 4)
    assert building.iou == pytest.approx(3 / 6)
    assert building.precision == pytest.approx(3 / 5)
    assert building.recall == pytest.approx(3 / 4)
    assert building.f1 == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    water = scores[2]  # tp 1, fp 0, fn 1
    assert (water.iou, water.precision, water.recall) == (0.5, 1.0, 0.5)
    assert mean_iou(scores) == pytest.approx((0.5 + 0.5) / 2)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 30))
def test_pixel_metrics_match_sklearn(seed: int, size: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, (size, size))
    pred = np.where(rng.random((size, size)) < 0.6, truth, rng.integers(0, 4, (size, size)))
    truth.flat[:4] = pred.flat[:4] = [0, 1, 2, 3]  # every class present on both sides
    scores = pixel_metrics(pred, truth, [0, 1, 2, 3])
    t, p = truth.ravel(), pred.ravel()
    labels = [0, 1, 2, 3]
    for name, reference in {
        "iou": skm.jaccard_score(t, p, labels=labels, average=None),
        "f1": skm.f1_score(t, p, labels=labels, average=None),
        "precision": skm.precision_score(t, p, labels=labels, average=None),
        "recall": skm.recall_score(t, p, labels=labels, average=None),
    }.items():
        np.testing.assert_allclose([getattr(scores[c], name) for c in labels], reference)


def test_truth_nodata_is_ignored_but_prediction_nodata_is_a_miss() -> None:
    truth = np.array([[1, 1, 255, 255]])
    pred = np.array([[1, 255, 1, 1]])
    (building,) = pixel_metrics(pred, truth, {1: "building"}, ignore=255).values()
    assert (building.tp, building.fp, building.fn) == (1, 0, 1)
    unmasked = pixel_metrics(pred, truth, [1])[1]
    assert unmasked.fp == 2  # without `ignore` the no-data pixels count against the model


def test_empty_classes_have_defined_scores() -> None:
    zeros = np.zeros((3, 3), dtype=int)
    ones = np.ones((3, 3), dtype=int)
    both_empty = pixel_metrics(zeros, zeros, [1])[1]
    assert (both_empty.iou, both_empty.f1, both_empty.precision, both_empty.recall) == (1, 1, 1, 1)
    missed = pixel_metrics(zeros, ones, [1])[1]
    assert (missed.iou, missed.f1, missed.precision, missed.recall) == (0, 0, 0, 0)
    invented = pixel_metrics(ones, zeros, [1])[1]
    assert (invented.iou, invented.f1, invented.precision, invented.recall) == (0, 0, 0, 0)


def test_pixel_metrics_refuse_different_shapes() -> None:
    with pytest.raises(InvalidInputError):
        pixel_metrics(np.zeros((2, 2)), np.zeros((2, 3)), [1])


# --- object F1 -----------------------------------------------------------------

SQUARE = box(0, 0, 10, 10)


def shifted(dx: float) -> object:
    return box(dx, 0, 10 + dx, 10)


def test_squares_offset_to_iou_0_6_match_and_to_0_4_do_not() -> None:
    assert polygon_iou(SQUARE, shifted(2.5)) == pytest.approx(0.6)
    assert polygon_iou(SQUARE, shifted(30 / 7)) == pytest.approx(0.4)
    hit = object_f1([shifted(2.5)], [SQUARE])
    assert (hit.tp, hit.fp, hit.fn, hit.f1) == (1, 0, 0, 1.0)
    miss = object_f1([shifted(30 / 7)], [SQUARE])
    assert (miss.tp, miss.fp, miss.fn, miss.f1) == (0, 1, 1, 0.0)


def test_an_iou_of_exactly_the_threshold_counts() -> None:
    scores = object_f1([box(0, 0, 2, 1)], [box(0, 0, 1, 1)])  # IoU = 1/2 exactly
    assert scores.tp == 1


@pytest.mark.parametrize("threshold", [0.5, 0.1])
def test_one_prediction_covering_two_truths_matches_only_one(threshold: float) -> None:
    truths = [SQUARE, box(10.5, 0, 12, 10)]  # IoUs with the prediction: 0.83 and 0.125
    scores = object_f1([box(0, 0, 12, 10)], truths, iou_threshold=threshold)
    assert (scores.tp, scores.fp, scores.fn) == (1, 0, 1)
    assert scores.matches[0][:2] == (0, 0)
    assert (scores.precision, scores.recall) == (1.0, 0.5)


def test_the_best_overlapping_prediction_wins_and_the_other_is_a_false_positive() -> None:
    scores = object_f1([shifted(2.5), shifted(0.5)], [SQUARE])
    assert [(i, j) for i, j, _ in scores.matches] == [(1, 0)]
    assert (scores.tp, scores.fp, scores.fn) == (1, 1, 0)


def test_empty_inputs_have_defined_object_scores() -> None:
    nothing = object_f1([], [])
    assert (nothing.precision, nothing.recall, nothing.f1) == (1.0, 1.0, 1.0)
    missed = object_f1([], [SQUARE])
    assert (missed.f1, missed.fn, missed.precision, missed.recall) == (0.0, 1, 0.0, 0.0)
    invented = object_f1([SQUARE], [])
    assert (invented.f1, invented.fp, invented.precision, invented.recall) == (0.0, 1, 0.0, 0.0)
    assert invented.as_dict() == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "tp": 0,
        "fp": 1,
        "fn": 0,
    }


def test_a_threshold_outside_0_1_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        object_f1([SQUARE], [SQUARE], iou_threshold=0.0)


boxes = st.tuples(st.floats(0, 50), st.floats(0, 50), st.floats(0.5, 15), st.floats(0.5, 15)).map(
    lambda b: box(b[0], b[1], b[0] + b[2], b[1] + b[3])
)


@settings(max_examples=100, deadline=None)
@given(boxes, boxes)
def test_iou_is_symmetric_bounded_and_one_with_itself(a: object, b: object) -> None:
    assert polygon_iou(a, b) == pytest.approx(polygon_iou(b, a))
    assert 0.0 <= polygon_iou(a, b) <= 1.0 + 1e-12
    assert polygon_iou(a, a) == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(boxes, max_size=10), st.lists(boxes, max_size=10))
def test_the_tree_search_finds_the_same_matches_as_trying_every_pair(
    pred: list[object], truth: list[object]
) -> None:
    pairs = sorted(
        (
            (-polygon_iou(p, t), i, j)
            for (i, p), (j, t) in itertools.product(enumerate(pred), enumerate(truth))
            if polygon_iou(p, t) >= 0.5
        ),
    )
    used_p: set[int] = set()
    used_t: set[int] = set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    scores = object_f1(pred, truth)
    assert scores.tp == len(used_p)
    assert scores.tp + scores.fp == len(pred) and scores.tp + scores.fn == len(truth)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.randoms(use_true_random=False))
def test_a_perfect_prediction_scores_one_in_any_order(n: int, rnd: object) -> None:
    truth = [box(20 * k, 0, 20 * k + 5 + k, 8) for k in range(n)]
    order = list(range(n))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    scores = object_f1([truth[k] for k in order], truth)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)
    assert sorted((order[i], j) for i, j, _ in scores.matches) == [(k, k) for k in range(n)]


# --- masks as instances ----------------------------------------------------------


def test_each_connected_region_is_one_instance_with_its_holes() -> None:
    labels = np.zeros((12, 12), dtype=np.uint8)
    labels[1:6, 1:6] = 1
    labels[3, 3] = 0  # a hole
    labels[6:9, 6:9] = 1  # touches the first only at a corner: a separate instance
    labels[10, 10] = 1  # a single pixel
    labels[9:12, 0:3] = 2  # another class
    instances = mask_instances(labels, 1)
    assert sorted(g.area for g in instances) == [1, 9, 24]
    assert sum(len(g.interiors) for g in instances) == 1
    assert sorted(g.area for g in mask_instances(labels, 1, min_pixels=2)) == [9, 24]
    georeferenced = mask_instances(labels, 2, transform=Affine(2.0, 0, 100, 0, -2.0, 50))
    assert georeferenced[0].bounds == (100.0, 50 - 24.0, 106.0, 50 - 18.0)


def test_object_f1_from_masks() -> None:
    truth = np.zeros((30, 30), dtype=np.uint8)
    truth[2:12, 2:12] = 1
    truth[15:25, 15:25] = 1
    pred = np.zeros_like(truth)
    pred[3:13, 2:12] = 1  # one pixel down: IoU 90/110
    pred[20:22, 20:22] = 1  # too small for the second building
    scores = object_f1(mask_instances(pred, 1), mask_instances(truth, 1))
    assert (scores.tp, scores.fp, scores.fn) == (1, 1, 1)
    assert scores.matches[0][2] == pytest.approx(90 / 110)
    same = object_f1(mask_instances(truth, 1), mask_instances(truth, 1))
    assert same.f1 == 1.0


# --- label set -------------------------------------------------------------------


def test_landcover_becomes_building_water_tree_or_background() -> None:
    landcover = np.array([[int(c) for c in LandCover] + [NODATA_CODE, 99]], dtype=np.uint8)
    labels = segmentation_from_landcover(landcover)
    expected = {
        LandCover.BUILDING: SegClass.BUILDING,
        LandCover.ROAD: SegClass.BACKGROUND,
        LandCover.TREE: SegClass.TREE,
        LandCover.GRASS: SegClass.BACKGROUND,
        LandCover.WATER: SegClass.WATER,
        LandCover.BARE: SegClass.BACKGROUND,
    }
    assert labels[0, :6].tolist() == [int(expected[c]) for c in LandCover]
    assert labels[0, 6:].tolist() == [SEGMENTATION_NODATA, SEGMENTATION_NODATA]


def test_a_segmentation_stands_in_only_for_the_classes_it_predicts() -> None:
    assert stands_in_for() == {LandCover.BUILDING, LandCover.WATER, LandCover.TREE}
    assert stands_in_for([SegClass.BACKGROUND, SegClass.BUILDING]) == {LandCover.BUILDING}


def test_landcover_from_segmentation_trusts_the_model_and_demotes_what_it_rejects() -> None:
    B, R, T, G, W, X = (int(c) for c in LandCover)  # building road tree grass water bare
    fallback = np.array([[G, B, T, W, R, B, T]], dtype=np.uint8)
    labels = np.array([[1, 0, 0, 0, 0, SEGMENTATION_NODATA, 0]], dtype=np.uint8)
    out = landcover_from_segmentation(labels, fallback)
    assert out.tolist() == [[B, R, G, X, R, B, G]]
    buildings_only = landcover_from_segmentation(labels, fallback, model_classes=[1])
    assert buildings_only.tolist() == [[B, R, T, W, R, B, T]]


def test_every_class_has_a_map_colour_and_only_background_is_transparent() -> None:
    assert set(CLASS_COLOURS) == set(SegClass)
    assert CLASS_COLOURS[SegClass.BACKGROUND][3] == 0
    foreground = [CLASS_COLOURS[c] for c in SegClass if c != SegClass.BACKGROUND]
    assert all(c[3] == 255 for c in foreground) and len(set(foreground)) == len(foreground)
