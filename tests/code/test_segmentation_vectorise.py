"""Label maps → polygons: valid, non-overlapping, faithful to the mask, holes kept, slivers gone."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio import features
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import Polygon, box

from terraops.domain.segmentation.vectorise import (
    PolygonRecord,
    repair_polygonal,
    vectorise,
)
from terraops.errors import InvalidInputError

PIXEL = 0.5
PIXEL_AREA = PIXEL * PIXEL
TRANSFORM = Affine(PIXEL, 0.0, 500_000.0, 0.0, -PIXEL, 5_000_000.0)
CLASSES = {1: "building", 2: "water", 3: "tree"}


def random_map(seed: int, size: int, sigma: float, nodata: bool = False) -> np.ndarray:
    """Smooth random field cut into classes 0–3: blobs, holes, diagonal touches."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma)
    labels = np.digitize(field, np.quantile(field, [0.4, 0.6, 0.8])).astype(np.uint8)
    if nodata:
        labels[: size // 4, : size // 4] = 255
    return labels


def blobs(seed: int, size: int = 64) -> np.ndarray:
    """A few separate ellipses of a few hundred pixels, random class and orientation."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(float)
    labels = np.zeros((size, size), dtype=np.uint8)
    for cy, cx in ((16, 16), (16, 48), (48, 16), (48, 48)):
        a, b = rng.uniform(7, 13), rng.uniform(7, 13)
        theta = rng.uniform(0, np.pi)
        dy, dx = yy - cy - rng.uniform(-2, 2), xx - cx - rng.uniform(-2, 2)
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        labels[(u / a) ** 2 + (v / b) ** 2 <= 1] = rng.integers(1, 4)
    return labels


def rasterise(records: list[PolygonRecord], class_id: int, shape: tuple[int, int]) -> np.ndarray:
    geoms = [(r.geometry, 1) for r in records if r.properties["class_id"] == class_id]
    if not geoms:
        return np.zeros(shape, dtype=bool)
    return features.rasterize(geoms, out_shape=shape, transform=TRANSFORM).astype(bool)


def overlap_area(records: list[PolygonRecord]) -> float:
    geoms = np.array([r.geometry for r in records], dtype=object)
    if geoms.size < 2:
        return 0.0
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = left < right
    return float(shapely.area(shapely.intersection(geoms[left[pairs]], geoms[right[pairs]])).sum())


# --- properties ---------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(12, 40),
    st.floats(0.6, 3.0),
    st.sampled_from([0.0, 1.0, 2.5, 6.0]),
    st.booleans(),
)
def test_polygons_are_valid_and_never_overlap_within_or_across_classes(
    seed: int, size: int, sigma: float, min_area_px: float, nodata: bool
) -> None:
    labels = random_map(seed, size, sigma, nodata)
    records = vectorise(labels, TRANSFORM, classes=CLASSES, min_area_m2=min_area_px * PIXEL_AREA)
    assert all(r.geometry.is_valid and not r.geometry.is_empty for r in records)
    assert overlap_area(records) < 1e-6
    assert all(r.properties["area_m2"] >= min_area_px * PIXEL_AREA for r in records)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(8, 40), st.floats(0.6, 3.0))
def test_without_simplification_the_polygons_rasterise_back_to_the_exact_mask(
    seed: int, size: int, sigma: float
) -> None:
    labels = random_map(seed, size, sigma, nodata=True)
    records = vectorise(labels, TRANSFORM, classes=CLASSES, simplify_m=0.0)
    for class_id in CLASSES:
        np.testing.assert_array_equal(
            rasterise(records, class_id, labels.shape), labels == class_id
        )
    for r in records:  # exact pixel edges: area is the pixel count
        assert r.properties["area_m2"] == pytest.approx(r.properties["pixels"] * PIXEL_AREA)
    n_regions = sum(ndimage.label(labels == c)[1] for c in CLASSES)
    assert len(records) == n_regions


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_simplified_blobs_keep_their_area_and_shape(seed: int) -> None:
    labels = blobs(seed)
    records = vectorise(labels, TRANSFORM, classes=CLASSES)
    for class_id in CLASSES:
        truth = labels == class_id
        if not truth.any():
            continue
        back = rasterise(records, class_id, labels.shape)
        assert (back & truth).sum() / (back | truth).sum() >= 0.97
        area = sum(r.properties["area_m2"] for r in records if r.properties["class_id"] == class_id)
        assert area == pytest.approx(truth.sum() * PIXEL_AREA, rel=0.03)
    raw_vertices = sum(
        len(r.geometry.exterior.coords)
        for r in vectorise(labels, TRANSFORM, classes=CLASSES, simplify_m=0.0)
    )
    assert sum(len(r.geometry.exterior.coords) for r in records) < raw_vertices


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(10, 36))
def test_classes_that_fill_the_image_stay_a_gapless_coverage_after_simplification(
    seed: int, size: int
) -> None:
    """Neighbouring polygons keep their shared border: no gap, no overlap."""
    labels = random_map(seed, size, 2.0) % 3 + 1  # classes 1–3 only, no background
    records = vectorise(labels, TRANSFORM, classes=CLASSES, simplify_m=2 * PIXEL)
    total = sum(r.geometry.area for r in records)
    assert total == pytest.approx(size * size * PIXEL_AREA, rel=1e-9)
    assert overlap_area(records) < 1e-6
    # Edge-matched: every shared border has the same vertices on both sides.
    assert shapely.coverage_is_valid(np.array([r.geometry for r in records], dtype=object))


# --- holes and slivers --------------------------------------------------------


def ring_with_hole(hole: int) -> np.ndarray:
    labels = np.zeros((20, 20), dtype=np.uint8)
    labels[2:18, 2:18] = 1
    start = 10 - hole // 2
    labels[start : start + hole, start : start + hole] = 0
    return labels


def test_holes_survive() -> None:
    (record,) = vectorise(ring_with_hole(4), TRANSFORM, min_area_m2=10 * PIXEL_AREA)
    assert len(record.geometry.interiors) == 1
    assert Polygon(record.geometry.interiors[0]).area == pytest.approx(16 * PIXEL_AREA, rel=0.1)
    assert record.properties["pixels"] == 16 * 16 - 16


def test_holes_smaller_than_the_minimum_area_are_filled_and_what_was_inside_goes_too() -> None:
    labels = ring_with_hole(4)
    labels[9, 9] = 3  # a tree pixel inside the hole
    records = vectorise(labels, TRANSFORM, min_area_m2=20 * PIXEL_AREA)
    (record,) = records
    assert len(record.geometry.interiors) == 0
    assert record.properties["area_m2"] == pytest.approx(16 * 16 * PIXEL_AREA)
    assert record.properties["pixels"] == 16 * 16 - 16  # the filled hole is not the class


def test_slivers_vanish_and_regions_at_the_minimum_stay() -> None:
    labels = np.zeros((12, 12), dtype=np.uint8)
    labels[1, 1:3] = 1  # 2 pixels
    labels[6:9, 6:9] = 1  # 9 pixels
    kept = vectorise(labels, TRANSFORM, min_area_m2=3 * PIXEL_AREA, simplify_m=0.0)
    assert [r.properties["pixels"] for r in kept] == [9]
    both = vectorise(labels, TRANSFORM, min_area_m2=2 * PIXEL_AREA, simplify_m=0.0)
    assert sorted(r.properties["pixels"] for r in both) == [2, 9]


def test_regions_touching_at_a_corner_are_two_polygons_that_do_not_overlap() -> None:
    labels = np.zeros((8, 8), dtype=np.uint8)
    labels[1:4, 1:4] = 1
    labels[4:7, 4:7] = 1
    records = vectorise(labels, TRANSFORM)
    assert len(records) == 2
    assert overlap_area(records) == 0.0


# --- properties and georeferencing --------------------------------------------


def test_properties_carry_class_mean_score_area_and_lineage() -> None:
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[2:5, 2:6] = 1  # 12 pixels
    labels[7:9, 7:9] = 2  # 4 pixels
    scores = np.full((10, 10), 0.2)
    scores[2:5, 2:6] = np.linspace(0.5, 0.9, 12).reshape(3, 4)
    scores[7, 7] = np.nan  # no score for one pixel: averaged over the others
    lineage = {"model": "segmentation", "version": "3"}
    building, water = vectorise(labels, TRANSFORM, scores=scores, properties=lineage)
    assert building.properties == {
        "class": "building",
        "class_id": 1,
        "score": pytest.approx(0.7),
        "area_m2": pytest.approx(12 * PIXEL_AREA),
        "pixels": 12,
        **lineage,
    }
    assert water.properties["class"] == "water"
    assert water.properties["score"] == pytest.approx(0.2)
    assert building.__geo_interface__["type"] == "Feature"
    assert building.__geo_interface__["properties"]["version"] == "3"


def test_without_a_score_map_the_score_is_none() -> None:
    labels = np.zeros((6, 6), dtype=np.uint8)
    labels[1:4, 1:4] = 3
    (record,) = vectorise(labels, TRANSFORM)
    assert record.properties["score"] is None and record.properties["class"] == "tree"


def test_polygons_sit_where_the_transform_puts_the_pixels() -> None:
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[2:5, 3:8] = 1  # rows 2–4, columns 3–7
    (record,) = vectorise(labels, TRANSFORM)
    x0, y0 = TRANSFORM @ (3, 2)
    x1, y1 = TRANSFORM @ (8, 5)
    assert record.geometry.equals(box(x0, y1, x1, y0))


def test_background_nodata_and_unlisted_classes_are_not_vectorised() -> None:
    labels = np.full((8, 8), 255, dtype=np.uint8)
    labels[:4] = 0
    labels[5:, :3] = 2
    labels[5:, 5:] = 3
    records = vectorise(labels, TRANSFORM, classes={3: "tree"})
    assert [r.properties["class"] for r in records] == ["tree"]
    assert vectorise(np.zeros((5, 5), dtype=np.uint8), TRANSFORM) == []


def test_bad_inputs_are_refused() -> None:
    labels = np.ones((4, 4), dtype=np.uint8)
    with pytest.raises(InvalidInputError, match="computed per polygon"):
        vectorise(labels, TRANSFORM, properties={"class": "mine"})
    with pytest.raises(InvalidInputError, match="shape"):
        vectorise(labels, TRANSFORM, scores=np.ones((3, 4)))
    with pytest.raises(InvalidInputError):
        vectorise(np.ones(4, dtype=np.uint8), TRANSFORM)
    with pytest.raises(InvalidInputError, match="degenerate"):
        vectorise(labels, Affine(0.0, 0.0, 0.0, 0.0, 0.0, 0.0))


def test_repair_turns_a_bow_tie_into_its_two_triangles_and_leaves_valid_shapes_alone() -> None:
    bow_tie = Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])
    assert not bow_tie.is_valid
    fixed = repair_polygonal(bow_tie)
    assert fixed is not None and fixed.is_valid
    assert fixed.area == pytest.approx(2.0)
    square = box(0, 0, 1, 1)
    assert repair_polygonal(square) is square
    assert repair_polygonal(Polygon([(0, 0), (1, 1), (2, 2)])) is None
