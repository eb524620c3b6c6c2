"""Streaming segmentation without a network: window rows → blended labels → strip polygons.

A fake ``predict_proba`` reads the class off band 0 of each chip (one-hot),
so the exact answer is known and every pixel can be checked; the windowed
readers are compared with the whole-scene reader of the training path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.transform import Affine

from terraops.domain.segmentation.classes import SEGMENTATION_NODATA
from terraops.domain.segmentation.vectorise import DEFAULT_CLASSES, vectorise
from terraops.errors import InvalidInputError
from terraops.pipelines.segmentation.vectors import StripVectoriser
from terraops.pipelines.segmentation.window_inference import (
    LabelRows,
    iter_label_rows,
    predict_array,
)


def oracle(chips: np.ndarray) -> np.ndarray:
    """One-hot probabilities of the class written in band 0 (NaN → background)."""
    classes = np.nan_to_num(chips[:, 0], nan=0).astype(int)
    probs = np.zeros((len(chips), 4, *chips.shape[2:]), dtype=np.float32)
    for c in range(4):
        probs[:, c] = classes == c
    return probs


def blobs(height: int, width: int, seed: int) -> np.ndarray:
    """A label map of random rectangles of classes 1–3 on background."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((height, width), dtype=np.uint8)
    for _ in range(max(1, height * width // 300)):
        r, c = rng.integers(0, height), rng.integers(0, width)
        labels[r : r + rng.integers(2, 12), c : c + rng.integers(2, 12)] = rng.integers(1, 4)
    return labels


def image_of(labels: np.ndarray) -> np.ndarray:
    return np.repeat(labels[None].astype(np.float32), 5, axis=0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(5, 90),
    width=st.integers(5, 90),
    tile=st.sampled_from([16, 32]),
    overlap=st.sampled_from([0, 4, 8]),
    batch=st.integers(1, 5),
)
def test_blended_labels_are_exact_for_any_image_size(
    height: int, width: int, tile: int, overlap: int, batch: int
) -> None:
    labels = blobs(height, width, height * 100 + width)
    image = image_of(labels)
    image[:, 0, 0] = np.nan  # one no-data pixel
    got, scores = predict_array(
        image, oracle, n_classes=4, tile=tile, overlap=overlap, batch_size=batch
    )
    expected = labels.copy()
    expected[0, 0] = SEGMENTATION_NODATA
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(scores[0, 0]) and np.allclose(np.delete(scores.ravel(), 0), 1.0)


def test_rows_stream_top_to_bottom_and_reads_are_window_rows() -> None:
    labels = blobs(200, 70, 1)
    image = image_of(labels)
    reads: list[tuple[int, int]] = []

    def read(row: int, rows: int) -> np.ndarray:
        reads.append((row, rows))
        return image[:, row : row + rows]

    parts = list(iter_label_rows(read, 200, 70, oracle, n_classes=4, tile=64, overlap=16))
    assert [p.row_off for p in parts] == list(np.cumsum([0] + [p.rows for p in parts[:-1]]))
    assert sum(p.rows for p in parts) == 200
    assert all(rows == 64 for _, rows in reads)  # never more than a window row at once


# --- strips --------------------------------------------------------------------------


def _rows(labels: np.ndarray, scores: np.ndarray, step: int) -> list[LabelRows]:
    return [
        LabelRows(r, labels[r : r + step], scores[r : r + step])
        for r in range(0, labels.shape[0], step)
    ]


def _by_class(records: list) -> dict[int, shapely.Geometry]:
    out: dict[int, list] = {}
    for r in records:
        out.setdefault(r.properties["class_id"], []).append(r.geometry)
    return {c: shapely.union_all(g) for c, g in out.items()}


@pytest.mark.parametrize("strip_rows", [7, 16, 33, 1000])
@pytest.mark.parametrize("simplify_m", [0.0, None])
def test_strips_give_the_whole_image_polygons(strip_rows: int, simplify_m: float | None) -> None:
    labels = blobs(120, 90, 3)
    labels[10:100, 40:46] = 1  # a tall building crossing many seams
    labels[30:60, 20:70] = 2  # a lake
    labels[40:50, 30:60] = 0  # ... with an island of background (a hole)
    scores = np.random.default_rng(0).uniform(0.4, 1.0, labels.shape).astype(np.float32)
    transform = Affine(2.0, 0, 500_000.0, 0, -2.0, 5_000_000.0)
    whole = vectorise(labels, transform, scores=scores, min_area_m2=12.0, simplify_m=simplify_m)
    vec = StripVectoriser(
        transform,
        120,
        DEFAULT_CLASSES,
        min_area_m2=12.0,
        simplify_m=simplify_m,
        strip_rows=strip_rows,
    )
    for part in _rows(labels, scores, 5):
        vec.add(part)
    strips = vec.finish()
    assert len(strips) == len(whole)
    a, b = _by_class(strips), _by_class(whole)
    assert a.keys() == b.keys()
    for c in a:
        # Exact pixel edges: identical areas. Simplified: only seams differ slightly.
        tolerance = 1e-6 if simplify_m == 0.0 else 0.02
        assert a[c].symmetric_difference(b[c]).area <= tolerance * b[c].area + 1e-9
    assert sum(r.properties["pixels"] for r in strips) == sum(r.properties["pixels"] for r in whole)
    by_pixels = sorted((r.properties["pixels"], round(r.properties["score"], 5)) for r in strips)
    assert by_pixels == sorted(
        (r.properties["pixels"], round(r.properties["score"], 5)) for r in whole
    )
    assert all(r.geometry.is_valid for r in strips)


def test_a_region_cut_into_small_parts_by_seams_is_not_dropped() -> None:
    labels = np.zeros((40, 20), dtype=np.uint8)
    labels[8:12, 5:8] = 1  # 12 px, split 3 + 9 by a seam at row 9
    scores = np.ones(labels.shape, np.float32)
    vec = StripVectoriser(
        Affine(1, 0, 0, 0, -1, 40),
        40,
        DEFAULT_CLASSES,
        min_area_m2=10.0,
        simplify_m=0.0,
        strip_rows=9,
    )
    for part in _rows(labels, scores, 9):
        vec.add(part)
    records = vec.finish()
    assert [r.properties["pixels"] for r in records] == [12]
    assert records[0].properties["area_m2"] == pytest.approx(12.0)


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "parquet"])
def test_streamed_polygons_reach_the_file_in_the_right_crs(fmt: str, tmp_path: Path) -> None:
    """A sink gets every polygon the in-memory path returns; files hold them in their CRS."""
    import geopandas as gpd
    from pyproj import Transformer

    from terraops.adapters.vector_files import Writers, open_writer

    labels = blobs(150, 60, 9)
    scores = np.full(labels.shape, 0.75, np.float32)
    transform = Affine(2.0, 0, 500_000.0, 0, -2.0, 5_000_000.0)

    def run(sink=None):  # type: ignore[no-untyped-def]
        vec = StripVectoriser(
            transform, 150, DEFAULT_CLASSES, min_area_m2=8.0, strip_rows=20, sink=sink
        )
        for part in _rows(labels, scores, 7):
            vec.add(part)
        return vec, vec.finish()

    _, expected = run()
    path = tmp_path / f"out.{fmt}"
    with Writers([open_writer(path, fmt, "EPSG:32633")]) as sink:
        vec, returned = run(sink.write)
        sink.close()
    assert returned == [] and sum(vec.counts.values()) == len(expected)
    frame = gpd.read_parquet(path) if fmt == "parquet" else gpd.read_file(path)
    assert len(frame) == len(expected)
    assert frame.crs.to_epsg() == (4326 if fmt == "geojson" else 32633)
    assert sorted(frame["pixels"]) == sorted(r.properties["pixels"] for r in expected)
    assert {"class", "class_id", "score", "area_m2"} <= set(frame.columns)
    if fmt == "geojson":
        largest = max(expected, key=lambda r: r.properties["area_m2"])
        x, y = largest.geometry.centroid.coords[0]
        lon, lat = Transformer.from_crs(32633, 4326, always_xy=True).transform(x, y)
        found = frame.loc[frame["pixels"] == largest.properties["pixels"]].geometry
        centres = [g.centroid for g in found]  # lon/lat centroids: fine at this tolerance
        assert min(abs(c.x - lon) + abs(c.y - lat) for c in centres) < 1e-5
    assert not list(tmp_path.glob(".*tmp*"))  # nothing left behind


def test_rows_out_of_order_are_refused() -> None:
    vec = StripVectoriser(Affine(1, 0, 0, 0, -1, 10), 10, DEFAULT_CLASSES)
    with pytest.raises(InvalidInputError, match="order"):
        vec.add(LabelRows(3, np.zeros((2, 4), np.uint8), np.zeros((2, 4), np.float32)))


# --- readers ---------------------------------------------------------------------------


def test_window_readers_give_the_training_reflectance(
    tiny_scenes: list[Path], tmp_path: Path
) -> None:
    """Scene folder and multiband GeoTIFF rows equal the whole-scene training arrays."""
    import rasterio

    from terraops.adapters.image_windows import GeoTiffSource, SceneSource, open_reflectance
    from terraops.pipelines.segmentation.data import load_scene

    truth = load_scene(tiny_scenes[0])
    with SceneSource(tiny_scenes[0]) as src:
        assert (src.grid.height, src.grid.width) == truth.shape
        np.testing.assert_array_equal(src.read_rows(17, 40), truth.image[:, 17:57])
    tif = tmp_path / "image.tif"
    _write_multiband(tif, truth, ["nir", "red", "green", "blue", "swir"])
    with open_reflectance(image=tif) as src:
        assert isinstance(src, GeoTiffSource)
        assert src.grid.transform == truth.transform
        np.testing.assert_allclose(src.read_rows(5, 30), truth.image[:, 5:35], atol=1e-4)
    with rasterio.open(tif, "r+") as dst:  # unnamed bands: --band-order names them
        for i in range(1, 6):
            dst.set_band_description(i, "")
    with GeoTiffSource(tif, ["nir", "red", "green", "blue", "swir"]) as src:
        np.testing.assert_allclose(src.read_rows(0, 8), truth.image[:, :8], atol=1e-4)


def test_a_three_band_image_is_refused_with_the_missing_bands(
    tiny_scenes: list[Path], tmp_path: Path
) -> None:
    from terraops.adapters.image_windows import GeoTiffSource
    from terraops.pipelines.segmentation.data import load_scene

    rgb = tmp_path / "rgb.tif"
    _write_multiband(rgb, load_scene(tiny_scenes[0]), ["red", "green", "blue"])
    with pytest.raises(InvalidInputError, match=r"cannot find bands \['nir', 'swir'\]"):
        GeoTiffSource(rgb)


def _write_multiband(path: Path, scene, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Integer reflectance × 10 000 without scale tags (the common real-file convention)."""
    import rasterio

    order = ["red", "green", "blue", "nir", "swir"]
    data = np.stack([scene.image[order.index(n)] for n in names])
    h, w = scene.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=len(names),
        dtype="uint16",
        crs=scene.crs,
        transform=scene.transform,
    ) as dst:
        dst.write(np.round(data * 10_000).astype("uint16"))
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
