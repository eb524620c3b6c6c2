"""Strips finish their interior polygons where they are vectorised (worker processes),
and the answer's GeoJSON is written from arrays: both must give exactly what merging
the strips one by one and encoding each polygon on its own give."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import MultiPolygon, Polygon, box, mapping

from terraops.adapters.vector_files import (
    GeoJSONText,
    WGS84Features,
    feature_collection_json,
    geojson_geometries,
)
from terraops.domain.segmentation.geojson_coords import polygon_coordinates_text
from terraops.domain.segmentation.vectorise import DEFAULT_CLASSES, PolygonRecord, vectorise
from terraops.errors import InvalidInputError
from terraops.pipelines.segmentation.vector_pool import vector_pool
from terraops.pipelines.segmentation.vectors import (
    StripVectoriser,
    _merge_across_seam,
    finalise,
)
from terraops.pipelines.segmentation.window_inference import LabelRows

TRANSFORM = Affine(2.0, 0.0, 600_000.0, 0.0, -2.0, 5_345_000.0)  # UTM 32N, 2 m pixels
CRS = "EPSG:32632"
PROPS = {"model_name": "m", "model_version": 3}


@pytest.fixture(scope="module")
def pool() -> Iterator[Executor]:
    executor = vector_pool(2)
    assert executor is not None
    yield executor


def city(seed: int, height: int, width: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Blobs of classes 1–3 with holes and diagonal touches (many crossing any row), a
    little no-data, and a score map."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(height, width)), sigma)
    labels = np.digitize(field, np.quantile(field, [0.4, 0.6, 0.8])).astype(np.uint8)
    labels[rng.random(labels.shape) < 0.002] = 255
    scores = rng.uniform(0.3, 1.0, labels.shape).astype(np.float32)
    return labels, scores


def one_by_one(
    labels: np.ndarray, scores: np.ndarray, strip_rows: int, min_area_m2: float
) -> list[PolygonRecord]:
    """The reference: each strip vectorised whole, merged into the regions open on its top
    seam, and everything not on its bottom seam finished — in that order."""
    height, min_area_px = labels.shape[0], min_area_m2 / abs(TRANSFORM.determinant)
    open_: list[PolygonRecord] = []
    out: list[PolygonRecord] = []
    for row0 in range(0, height, strip_rows):
        row1 = min(height, row0 + strip_rows)
        strip = vectorise(
            labels[row0:row1],
            Affine.translation(0, row0),
            classes=DEFAULT_CLASSES,
            scores=scores[row0:row1],
            properties=PROPS,
        )
        top = [row0 > 0 and r.geometry.bounds[1] <= row0 for r in strip]
        at_top = [r for r, t in zip(strip, top, strict=True) if t]
        rest = [r for r, t in zip(strip, top, strict=True) if not t]
        merged = _merge_across_seam(open_, at_top) + rest
        still_open = [row1 < height and r.geometry.bounds[3] >= row1 for r in merged]
        open_ = [r for r, o in zip(merged, still_open, strict=True) if o]
        final = [r for r, o in zip(merged, still_open, strict=True) if not o]
        out += finalise(final, min_area_px, TRANSFORM)
    return out


def streamed(
    labels: np.ndarray,
    scores: np.ndarray,
    strip_rows: int,
    min_area_m2: float,
    executor: Executor | None,
    encode: Any = None,
) -> list[Any]:
    """What the vectoriser's sink receives, batch by batch, in order."""
    batches: list[Any] = []
    vec = StripVectoriser(
        TRANSFORM,
        labels.shape[0],
        DEFAULT_CLASSES,
        min_area_m2=min_area_m2,
        properties=PROPS,
        strip_rows=strip_rows,
        sink=batches.append,
        executor=executor,
        encode=encode,
    )
    for row in range(0, labels.shape[0], strip_rows):
        rows = slice(row, row + strip_rows)
        vec.add(LabelRows(row, labels[rows], scores[rows]))
    vec.finish()
    return batches


def assert_same(a: list[PolygonRecord], b: list[PolygonRecord]) -> None:
    assert [r.properties for r in a] == [r.properties for r in b]
    ga = np.array([r.geometry for r in a], dtype=object)
    gb = np.array([r.geometry for r in b], dtype=object)
    assert bool(np.all(shapely.equals_exact(ga, gb, tolerance=0)))


def old_features(records: list[PolygonRecord]) -> list[dict[str, Any]]:
    """Features made the plain way: the geometries in EPSG:4326 (reprojected, snapped,
    wound in arrays), then ``mapping`` and ``json.dumps`` polygon by polygon."""
    lonlat = WGS84Features(CRS).lonlat(records)
    return [
        {"type": "Feature", "geometry": mapping(g), "properties": r.properties}
        for r, g in zip(records, lonlat, strict=True)
    ]


def test_geojson_rings_follow_the_right_hand_rule_on_the_snapped_grid() -> None:
    """RFC 7946: exterior rings counterclockwise, holes clockwise; every vertex on the
    1e-7° grid; the same shapes as GEOS's topology-repairing snap gives."""
    labels, scores = city(11, 200, 160, 1.5)
    labels[40:90, 40:90] = 1
    labels[55:70, 55:70] = 0  # a building with a courtyard: a hole
    records = one_by_one(labels, scores, 200, 0.0)
    lonlat = WGS84Features(CRS).lonlat(records)
    assert shapely.is_valid(lonlat).all()
    parts = shapely.get_parts(lonlat)
    assert shapely.is_ccw(shapely.get_exterior_ring(parts)).all()
    holes = [h for p in parts for h in p.interiors]
    assert holes and not any(shapely.is_ccw(h) for h in holes)
    coords = shapely.get_coordinates(lonlat) * 1e7
    assert np.allclose(coords, np.round(coords), rtol=0, atol=1e-6)
    geoms = np.asarray([r.geometry for r in records], dtype=object)
    repaired = shapely.set_precision(shapely.transform(geoms, WGS84Features(CRS)._to_wgs84), 1e-7)
    assert shapely.equals(lonlat, repaired).all()


def test_a_vertex_that_snapping_moves_onto_an_edge_is_repaired() -> None:
    """A notch reaching to 0.4e-7° above the polygon's bottom edge: rounding each vertex
    puts its tip on that edge (a self-touching ring); the answer stays valid."""
    notch = Polygon([(0, 0), (10e-7, 0), (10e-7, 10e-7), (5e-7, 0.4e-7), (0, 10e-7)])
    assert notch.is_valid
    pointwise = shapely.set_precision(notch, 1e-7, mode="pointwise")
    assert not pointwise.is_valid  # what plain rounding would have given
    (snapped,) = WGS84Features("EPSG:4326").lonlat([PolygonRecord(notch, {})])
    assert snapped.is_valid and abs(snapped.area - notch.area) < 0.05 * notch.area


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    height=st.integers(20, 140),
    width=st.integers(8, 90),
    sigma=st.floats(0.8, 3.0),
    strip_rows=st.integers(3, 40),
    min_area_m2=st.sampled_from([0.0, 8.0, 40.0]),
)
def test_strips_finished_in_workers_give_the_one_by_one_polygons_in_order(
    pool: Executor,
    seed: int,
    height: int,
    width: int,
    sigma: float,
    strip_rows: int,
    min_area_m2: float,
) -> None:
    labels, scores = city(seed, height, width, sigma)
    expected = one_by_one(labels, scores, strip_rows, min_area_m2)
    for executor in (None, pool):
        batches = streamed(labels, scores, strip_rows, min_area_m2, executor)
        assert_same([r for batch in batches for r in batch], expected)


def test_the_answer_text_is_the_json_of_the_one_by_one_features(pool: Executor) -> None:
    labels, scores = city(7, 300, 160, 2.0)  # dozens of regions across each of 9 seams
    expected = one_by_one(labels, scores, 32, 8.0)
    rows = (TRANSFORM.yoff - shapely.bounds([r.geometry for r in expected])[:, [3, 1]]) / 2
    crossing = (rows[:, 0] // 32).astype(int) < ((rows[:, 1] - 0.5) // 32).astype(int)
    assert len(expected) > 300 and crossing.sum() > 50  # many regions merged across seams
    members = {"model": {"name": "m", "version": 3}, "crs_of_source": CRS}
    reference = json.dumps({"type": "FeatureCollection", "features": old_features(expected)})
    reference = reference[:-1] + ", " + json.dumps(members)[1:]
    for executor in (None, pool):
        chunks = streamed(labels, scores, 32, 8.0, executor, encode=GeoJSONText(CRS))
        assert all(isinstance(c, str) for c in chunks)
        assert feature_collection_json(chunks, members) == reference
    assert feature_collection_json([], {}) == json.dumps(
        {"type": "FeatureCollection", "features": []}
    )


def test_array_geojson_geometries_equal_mapping() -> None:
    ring = [(0.5, 0.25), (40.125, 0.0), (40.0, 40.0), (0.0, 40.0)]
    holed = Polygon(ring, [box(2, 2, 4, 4).exterior.coords, box(10, 10, 20, 20).exterior.coords])
    multi = MultiPolygon([holed, box(50, 50, 51.5, 51), box(60, 60, 61, 61)])
    polygons = np.array([box(-1e-5, 0, 3, 1e-12), multi, holed, box(1, 1, 2, 2)], dtype=object)
    got = geojson_geometries(polygons)
    assert [json.dumps(g) for g in got] == [json.dumps(mapping(p)) for p in polygons]


def test_an_encoder_needs_a_sink() -> None:
    with pytest.raises(InvalidInputError, match="sink"):
        StripVectoriser(TRANSFORM, 10, DEFAULT_CLASSES, encode=GeoJSONText(CRS))


GRID_INTEGERS = st.one_of(st.integers(-1_800_000_000, 1_800_000_000), st.integers(-20_000, 20_000))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(GRID_INTEGERS, GRID_INTEGERS), min_size=4, max_size=30))
def test_compiled_coordinates_text_is_what_json_dumps_writes(points: list[tuple[int, int]]) -> None:
    """Grid points k·1e-7 (as snapped output is) are written as ``repr`` writes them; any
    value where that is not guaranteed (|v| < 1e-3, off the grid) falls back (None)."""
    coords = np.array(points, dtype=np.float64) / 1e7
    ends = np.array([len(coords)])
    text = polygon_coordinates_text(coords, ends, np.array([1]), np.array([1]), [False], 7)
    if not bool(np.all(np.abs(coords) >= 1e-3)):
        assert text is None
        return
    assert text == [json.dumps([coords.tolist()])]
    multi = polygon_coordinates_text(coords, ends, np.array([1]), np.array([1]), [True], 7)
    assert multi == [json.dumps([[coords.tolist()]])]
    assert polygon_coordinates_text(coords + 1e-9, ends, [1], [1], [False], 7) is None
