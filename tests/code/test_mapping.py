"""Map products from a prediction grid: rural reference and area polygons (pure code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rasterio.transform import Affine
from scipy import ndimage

from terraops.domain.mapping import (
    area_feature,
    area_polygons,
    feature_collection,
    iter_area_polygons,
)
from terraops.domain.rural_reference import (
    RURAL_MIN_CELLS,
    percentile_threshold,
    rural_reference,
)

CELL = 20.0
TRANSFORM = Affine(CELL, 0.0, 500_000.0, 0.0, -CELL, 5_000_000.0)


def test_rural_reference_is_the_median_of_the_least_sealed_quarter_of_green_land() -> None:
    lst = np.full((10, 10), 35.0)
    sealed = np.full((10, 10), 0.8)
    ndvi = np.full((10, 10), 0.1)
    water = np.zeros((10, 10))
    ndvi[:8, :] = 0.6  # 80 green cells; the 20 least sealed are the rural ones
    sealed[:8, :] = np.linspace(0.05, 0.9, 80).reshape(8, 10)
    lst[:8, :] = 28.0 + 10 * sealed[:8, :]  # warmer with sealed surroundings
    lst[0, 0], water[0, 0] = 20.0, 0.5  # a green-looking river bank: not land
    value, method = rural_reference(lst, sealed, ndvi, water)
    rural = (ndvi > 0.3) & (water < 0.1)
    cut = np.quantile(sealed[rural], 0.25)
    assert value == pytest.approx(np.median(lst[rural & (sealed <= cut)]))
    assert value < 30.5 and "median" in method and "20 vegetated cells" in method


def test_rural_reference_falls_back_to_a_low_percentile_and_says_so() -> None:
    lst = np.linspace(25.0, 40.0, 100).reshape(10, 10)
    value, method = rural_reference(lst, np.full((10, 10), 0.9), np.full((10, 10), 0.1))
    assert value == pytest.approx(np.percentile(lst, 10))
    assert f"fewer than {RURAL_MIN_CELLS}" in method


def test_area_polygons_merge_connected_cells_and_drop_single_cells() -> None:
    values = np.zeros((6, 6))
    values[1:3, 1:4] = 5.0  # 6 connected cells
    values[5, 5] = 9.0  # one isolated cell: noise
    polygons = area_polygons(values, 1.0, TRANSFORM)
    assert len(polygons) == 1
    (area,) = polygons
    assert area.n_cells == 6
    assert area.area_m2 == pytest.approx(6 * CELL * CELL)
    assert area.geometry.area == pytest.approx(area.area_m2)
    assert area.mean == pytest.approx(5.0) and area.max == pytest.approx(5.0)


def test_area_polygons_keep_holes() -> None:
    values = np.zeros((7, 7))
    values[1:6, 1:6] = 1.0
    values[3, 3] = 0.0
    (ring,) = area_polygons(values, 0.5, TRANSFORM)
    assert len(ring.geometry.interiors) == 1
    assert ring.geometry.area == pytest.approx(24 * CELL * CELL)


grids = arrays(
    np.float64,
    st.tuples(st.integers(1, 12), st.integers(1, 12)),
    elements=st.one_of(st.floats(0, 10, allow_nan=False), st.just(np.nan)),
)


@settings(max_examples=60, deadline=None)
@given(values=grids, threshold=st.floats(0, 10), min_cells=st.integers(1, 4))
def test_area_polygons_cover_exactly_the_kept_components(
    values: np.ndarray, threshold: float, min_cells: int
) -> None:
    """Invariant: polygons are valid, disjoint, and cover exactly the above-threshold
    components of at least ``min_cells`` cells — no cell lost, none invented."""
    polygons = area_polygons(values, threshold, TRANSFORM, min_cells=min_cells)
    mask = np.isfinite(values) & (values >= threshold)
    labels, _ = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())[1:]
    expected = int(sizes[sizes >= min_cells].sum())
    assert sum(p.n_cells for p in polygons) == expected
    for p in polygons:
        assert p.geometry.is_valid
        assert p.geometry.area == pytest.approx(p.n_cells * CELL * CELL)
        assert p.mean >= threshold - 1e-9 and p.max >= p.mean - 1e-9
    for i, a in enumerate(polygons):
        for b in polygons[i + 1 :]:
            assert a.geometry.intersection(b.geometry).area == pytest.approx(0.0, abs=1e-6)


def test_percentile_threshold_ignores_nodata() -> None:
    values = np.array([1.0, 2.0, np.nan, 3.0, 4.0])
    assert percentile_threshold(values, 50) == pytest.approx(2.5)
    assert np.isnan(percentile_threshold(np.full(3, np.nan), 90))


def test_feature_collection_carries_lineage_and_per_area_figures() -> None:
    values = np.zeros((4, 4))
    values[:2, :2] = 3.0
    polygons = area_polygons(values, 1.0, TRANSFORM)
    collection = feature_collection(
        polygons,
        to_wgs84=lambda g: g,
        properties={"model_name": "uhi", "model_version": 3},
        value_name="value",
    )
    (feature,) = collection["features"]
    assert feature["properties"]["model_version"] == 3
    assert feature["properties"]["n_cells"] == 4
    assert feature["properties"]["mean_value"] == pytest.approx(3.0)
    assert feature["geometry"]["type"] == "Polygon"


def test_hot_spots_written_feature_by_feature_are_the_collection_as_one_document(
    tmp_path: Path,
) -> None:
    """A whole scene's hot spots are streamed into their GeoJSON file: the same bytes
    as the whole collection written at once, largest area first."""
    from terraops.adapters import atomic
    from terraops.pipelines.maps.layer_products import wgs84_transformer

    rng = np.random.default_rng(5)
    values = ndimage.gaussian_filter(rng.normal(size=(80, 90)), 2.0)
    threshold = percentile_threshold(values, 85.0)
    to_wgs84 = wgs84_transformer("EPSG:32630")
    polygons = area_polygons(values, threshold, TRANSFORM)
    assert len(polygons) > 3
    assert [p.area_m2 for p in polygons] == sorted((p.area_m2 for p in polygons), reverse=True)
    whole = feature_collection(polygons, to_wgs84=to_wgs84, properties={"a": 1}, value_name="v")
    atomic.atomic_write_json(tmp_path / "whole.json", whole, indent=None, separators=(",", ":"))
    streamed = (
        area_feature(rank, polygon, to_wgs84=to_wgs84, properties={"a": 1}, value_name="v")
        for rank, polygon in enumerate(iter_area_polygons(values, threshold, TRANSFORM), 1)
    )
    written = atomic.atomic_write_feature_collection(tmp_path / "streamed.json", streamed)
    assert written == len(polygons)
    assert (tmp_path / "streamed.json").read_bytes() == (tmp_path / "whole.json").read_bytes()
