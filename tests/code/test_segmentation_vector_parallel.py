"""Strips vectorised in worker processes give exactly the polygons of serial vectorising,
and the array versions of the cleaning steps equal their one-polygon-at-a-time originals."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.transform import Affine
from scipy import ndimage
from shapely import affinity
from shapely.geometry import Polygon, box

from terraops.domain.segmentation.vectorise import (
    DEFAULT_CLASSES,
    PolygonRecord,
    affine_all,
    fill_small_holes,
    fill_small_holes_all,
    repair_all,
    repair_polygonal,
)
from terraops.pipelines.segmentation.vector_pool import vector_pool
from terraops.pipelines.segmentation.vectors import StripVectoriser
from terraops.pipelines.segmentation.window_inference import LabelRows

TRANSFORM = Affine(2.0, 0.0, 600_000.0, 0.0, -2.0, 5_345_000.0)


@pytest.fixture(scope="module")
def pool() -> Iterator[Executor]:
    executor = vector_pool(2)
    assert executor is not None
    yield executor


def random_mask(seed: int, height: int, width: int, sigma: float) -> np.ndarray:
    """Smooth random field cut into classes 0–3 (blobs, holes, diagonal touches), some no-data."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(height, width)), sigma)
    labels = np.digitize(field, np.quantile(field, [0.4, 0.6, 0.8])).astype(np.uint8)
    labels[rng.random(labels.shape) < 0.002] = 255
    return labels


def strips(
    labels: np.ndarray,
    rows_per_part: int,
    strip_rows: int,
    min_area_m2: float,
    executor: Executor | None,
    max_pending: int | None = None,
) -> list[PolygonRecord]:
    scores = np.linspace(0.3, 1.0, labels.size, dtype=np.float32).reshape(labels.shape)
    vec = StripVectoriser(
        TRANSFORM,
        labels.shape[0],
        DEFAULT_CLASSES,
        min_area_m2=min_area_m2,
        properties={"model_name": "m", "model_version": 3},
        strip_rows=strip_rows,
        executor=executor,
        max_pending=max_pending,
    )
    for row in range(0, labels.shape[0], rows_per_part):
        vec.add(
            LabelRows(row, labels[row : row + rows_per_part], scores[row : row + rows_per_part])
        )
    return vec.finish()


def assert_identical(a: list[PolygonRecord], b: list[PolygonRecord]) -> None:
    assert [r.properties for r in a] == [r.properties for r in b]
    ga = np.array([r.geometry for r in a], dtype=object)
    gb = np.array([r.geometry for r in b], dtype=object)
    assert bool(np.all(shapely.equals_exact(ga, gb, tolerance=0)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    height=st.integers(8, 120),
    width=st.integers(8, 90),
    sigma=st.floats(0.6, 3.0),
    rows_per_part=st.integers(1, 40),
    strip_rows=st.integers(3, 50),
    min_area_m2=st.sampled_from([0.0, 8.0, 40.0]),
    max_pending=st.sampled_from([None, 1]),
)
def test_parallel_strips_give_exactly_the_serial_polygons(
    pool: Executor,
    seed: int,
    height: int,
    width: int,
    sigma: float,
    rows_per_part: int,
    strip_rows: int,
    min_area_m2: float,
    max_pending: int | None,
) -> None:
    labels = random_mask(seed, height, width, sigma)
    serial = strips(labels, rows_per_part, strip_rows, min_area_m2, None)
    parallel = strips(labels, rows_per_part, strip_rows, min_area_m2, pool, max_pending)
    assert_identical(serial, parallel)


def test_one_worker_or_none_means_the_calling_process() -> None:
    assert vector_pool(0) is None
    assert vector_pool(1) is None


def _polygons_with_holes() -> np.ndarray:
    outer = [(0, 0), (40, 0), (40, 40), (0, 40)]
    small, big = box(2, 2, 4, 4), box(10, 10, 20, 20)  # 4 and 100 units²
    return np.array(
        [
            Polygon(outer, [small.exterior.coords, big.exterior.coords]),
            Polygon(outer, [big.exterior.coords]),
            Polygon(outer, [small.exterior.coords]),
            box(50, 50, 51, 51),
            Polygon([(0, 0), (2, 2), (2, 0), (0, 2)]),  # a bow-tie: invalid
        ],
        dtype=object,
    )


@pytest.mark.parametrize("min_area", [0.0, 4.0, 5.0, 150.0])
def test_array_hole_filling_equals_one_by_one(min_area: float) -> None:
    polygons = _polygons_with_holes()
    expected = [fill_small_holes(p, min_area) for p in polygons]
    got = fill_small_holes_all(polygons, min_area)
    assert all(shapely.equals_exact(g, e, tolerance=0) for g, e in zip(got, expected, strict=True))


def test_array_repair_and_mapping_equal_one_by_one() -> None:
    polygons = _polygons_with_holes()
    repaired = repair_all(polygons)
    for got, p in zip(repaired, polygons, strict=True):
        assert shapely.equals_exact(got, repair_polygonal(p), tolerance=0)
    assert repaired[0] is polygons[0]  # valid polygons pass through untouched
    matrix = [TRANSFORM.a, TRANSFORM.b, TRANSFORM.d, TRANSFORM.e, TRANSFORM.xoff, TRANSFORM.yoff]
    for got, p in zip(affine_all(repaired, TRANSFORM), repaired, strict=True):
        assert shapely.equals_exact(got, affinity.affine_transform(p, matrix), tolerance=0)
