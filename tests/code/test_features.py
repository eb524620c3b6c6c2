"""Per-cell feature extraction: indices, aggregation, the cell table contract, BYO GeoTIFF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rasterio.transform import Affine

from terraops.adapters.raster_io import read_scene
from terraops.domain import features as ft
from terraops.domain.landcover import LandCover, classify_spectral
from terraops.errors import InvalidInputError
from terraops.pipelines.scenes.cell_tables import build_cell_table
from terraops.pipelines.scenes.importing import import_geotiff

VEGETATION = {"red": 0.03, "green": 0.06, "blue": 0.03, "nir": 0.40, "swir": 0.16}
ROOF = {"red": 0.24, "green": 0.14, "blue": 0.10, "nir": 0.31, "swir": 0.40}
WATER = {"red": 0.025, "green": 0.04, "blue": 0.05, "nir": 0.012, "swir": 0.006}


def test_indices_have_the_textbook_signs() -> None:
    assert ft.ndvi(np.array(0.03), np.array(0.40)) == pytest.approx(0.860, abs=1e-3)
    assert ft.ndbi(np.array(0.40), np.array(0.31)) == pytest.approx(0.127, abs=1e-3)
    albedo = ft.broadband_albedo({k: np.array(v) for k, v in ROOF.items()})
    assert 0.1 < float(albedo) < 0.4


@settings(max_examples=30, deadline=None)
@given(
    pixels=arrays(np.float64, (12, 12), elements=st.floats(-100, 100)),
    factor=st.sampled_from([1, 2, 3, 4, 6]),
)
def test_cell_means_preserve_the_mean(pixels: np.ndarray, factor: int) -> None:
    grid = ft.cell_grid(pixels.shape, 1.0, float(factor))
    cells = ft.cell_mean(grid, pixels)
    assert cells.shape == (12 // factor, 12 // factor)
    assert cells.mean() == pytest.approx(pixels.mean(), abs=1e-9)
    np.testing.assert_allclose(cells[0, 0], pixels[:factor, :factor].mean())


def test_cell_grid_rejects_a_raster_smaller_than_a_cell() -> None:
    with pytest.raises(InvalidInputError, match="smaller than one"):
        ft.cell_grid((3, 3), 2.0, 20.0)


def _bands(layout: np.ndarray) -> dict[str, np.ndarray]:
    """Reflectance bands from a map of 0 = vegetation, 1 = roof, 2 = water."""
    materials = [VEGETATION, ROOF, WATER]
    return {b: np.choose(layout, [m[b] for m in materials]).astype(np.float64) for b in ROOF}


def test_feature_table_fractions_distances_and_dropped_nodata() -> None:
    layout = np.zeros((20, 20), int)
    layout[:10, :10] = 1  # a built quarter
    layout[:, 19] = 2  # water on the east edge
    bands = _bands(layout)
    bands["red"][15, 2] = np.nan  # a no-data pixel
    landcover = np.choose(
        layout, [int(LandCover.TREE), int(LandCover.BUILDING), int(LandCover.WATER)]
    ).astype(np.uint8)
    table, grid, keep = ft.cell_feature_table(
        bands=bands, landcover=landcover, resolution=2.0, cell_size_m=10.0, origin=(500.0, 900.0)
    )
    assert (grid.rows, grid.cols) == (4, 4)
    assert len(table) == 15 and not keep[3, 0]  # the cell with no data is gone
    first = table.iloc[0]
    assert (first["x"], first["y"]) == (505.0, 895.0)
    assert first["building_density"] == 1.0 and first["imperviousness"] == 1.0
    assert first["ndbi"] > 0 > table.query("tree_cover == 1")["ndbi"].max()
    east = table.query("col == 3")
    assert np.allclose(east["water_fraction"], 0.2)
    # cell centre (x = 5 m) to the first water pixel centre (x = 39 m)
    assert table["water_distance"].max() == pytest.approx(34.0)
    assert table[list(ft.TERRAIN_FEATURES)].isna().all().all()  # no DEM given
    assert list(table.columns[:4]) == ["row", "col", "x", "y"]
    assert set(ft.CELL_FEATURES) <= set(table.columns)
    # Neighbourhood composition: 10 m cells, so the whole 40 m tile is "nearby".
    assert first["imperviousness_500m"] < first["imperviousness"]
    far_corner = table.query("row == 3 and col == 2").iloc[0]
    assert 0 < far_corner["imperviousness_500m"] < first["imperviousness_500m"]
    assert table["tree_cover_200m"].between(0, 1).all()


def test_terrain_features_aggregate_the_drainage_catchment_per_cell() -> None:
    shape = (20, 20)  # 2 m pixels, 20 m cells → 2×2 cells of 10×10 px
    drainage_km2 = np.zeros(shape)
    drainage_km2[:, 10:] = 0.3
    drainage_km2[4, 14] = 12.0  # one pixel of the NE cell drains to a big river
    depression = np.zeros(shape)
    depression[10:, :5] = 0.4  # half the SW cell
    terrain = ft.TerrainLayers(
        dem=np.full(shape, 5.0),
        hand=np.full(shape, 1.0),
        drainage=np.zeros(shape, bool),
        upstream_km2=np.full(shape, 1e-4),
        drainage_upstream_km2=drainage_km2,
        drainage_curve_number=np.where(np.indices(shape)[0] < 10, 98.0, 60.0),
        depression_depth=depression,
    )
    table, _, _ = ft.cell_feature_table(
        bands=_bands(np.zeros(shape, int)),
        landcover=np.full(shape, int(LandCover.TREE), np.uint8),
        resolution=2.0,
        cell_size_m=20.0,
        origin=(0.0, 40.0),
        terrain=terrain,
    )
    cells = table.set_index(["row", "col"])
    # The largest channel any part of the cell drains to (like upstream_area).
    assert cells.loc[(0, 1), "drainage_upstream_area"] == 12.0
    assert cells.loc[(1, 1), "drainage_upstream_area"] == 0.3
    assert cells.loc[(0, 0), "drainage_upstream_area"] == 0.0
    assert cells["drainage_curve_number"].tolist() == [98.0, 98.0, 60.0, 60.0]
    assert cells.loc[(1, 0), "depression_depth"] == pytest.approx(0.2)
    assert cells.loc[(1, 1), "depression_depth"] == 0.0


def test_focal_mean_keeps_a_uniform_field_uniform_up_to_edges_and_holes() -> None:
    field = np.full((30, 40), 0.7)
    valid = np.ones(field.shape)
    valid[10:14, 5:9] = 0  # a no-data hole whose (garbage) values must not vote
    field[10:14, 5:9] = 99.0
    smoothed = ft.focal_mean(field, valid, sigma_cells=7.5, radius_cells=25.0)
    np.testing.assert_allclose(smoothed, 0.7, rtol=1e-12)
    # Zero padding without normalisation would pull the corner down to ~1/4.
    assert smoothed[0, 0] == pytest.approx(0.7)


def test_focal_mean_spreads_a_block_with_the_gaussian_scale() -> None:
    field = np.zeros((41, 41))
    field[20, 20] = 1.0
    smoothed = ft.focal_mean(field, np.ones(field.shape), sigma_cells=3.0, radius_cells=10.0)
    assert smoothed[20, 20] == smoothed.max() < 1.0
    # Gaussian falloff: one σ away is exp(-1/2) of the centre; past the radius nothing.
    assert smoothed[20, 23] / smoothed[20, 20] == pytest.approx(np.exp(-0.5), rel=1e-6)
    assert smoothed[20, 31] == 0.0
    assert smoothed.sum() == pytest.approx(1.0, rel=1e-3)


def test_focal_mean_without_any_valid_cell_is_nan() -> None:
    smoothed = ft.focal_mean(np.ones((5, 5)), np.zeros((5, 5)), 2.0, 6.0)
    assert np.isnan(smoothed).all()


@settings(max_examples=40, deadline=None)
@given(
    values=arrays(np.float64, (9, 11), elements=st.floats(-1, 1)),
    valid=arrays(bool, (9, 11)),
    sigma=st.floats(0.3, 6.0),
)
def test_focal_mean_stays_within_the_valid_inputs(
    values: np.ndarray, valid: np.ndarray, sigma: float
) -> None:
    valid[4, 5] = True
    smoothed = ft.focal_mean(values, valid.astype(float), sigma, 3.3 * sigma)
    lo, hi = values[valid].min(), values[valid].max()
    finite = np.isfinite(smoothed)
    assert finite[valid].all()  # every valid cell is its own neighbour
    assert (smoothed[finite] >= lo).all() and (smoothed[finite] <= hi).all()


def test_spectral_classification_finds_water_vegetation_and_built() -> None:
    layout = np.array([[0, 1, 2]])
    bands = _bands(layout)
    classes = classify_spectral(**bands)
    assert classes.tolist() == [[LandCover.TREE, LandCover.BUILDING, LandCover.WATER]]


def _write_byo(path: Path, *, geographic: bool) -> None:
    layout = np.zeros((40, 40), int)
    layout[:, :20] = 1
    layout[:, 35:] = 2
    bands = _bands(layout)
    order = ["nir", "red", "green", "blue", "swir"]  # deliberately not RGB order
    data = np.stack([np.round(bands[b] * 10000).astype(np.uint16) for b in order])
    data[:, 0, 0] = 65535  # no data
    if geographic:
        crs, transform = "EPSG:4326", Affine(0.0003, 0, 13.40, 0, -0.0002, 52.52)
    else:
        crs, transform = "EPSG:32633", Affine(5.0, 0, 390000, 0, -5.0, 5820000)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=40,
        height=40,
        count=5,
        dtype="uint16",
        crs=crs,
        transform=transform,
        nodata=65535,
    ) as dst:
        dst.write(data)
        for i, name in enumerate(order, start=1):
            dst.set_band_description(i, name.upper())
        dst.scales = (0.0001,) * 5
        dst.offsets = (0.0,) * 5


def geotiff_cell_table(path: Path, cell_size_m: float = 20.0) -> pd.DataFrame:
    """A user's GeoTIFF as it reaches a model: imported as a scene, then the one feature path."""
    scene = path.with_suffix("")
    import_geotiff(path, scene)
    return build_cell_table(read_scene(scene), cell_size_m)


def test_bring_your_own_geotiff_in_utm(tmp_path: Path) -> None:
    path = tmp_path / "mine.tif"
    _write_byo(path, geographic=False)
    table = geotiff_cell_table(path, cell_size_m=20.0)
    assert len(table) == 100 - 1  # 10×10 cells of 4×4 px, the no-data corner dropped
    west = table.query("col < 5")
    assert west["building_density"].min() == 1.0 and west["ndbi"].min() > 0
    assert table.query("col > 8")["water_fraction"].min() > 0.9
    assert table["scene"].unique().tolist() == ["mine"]
    assert set(ft.CELL_FEATURES) <= set(table.columns)  # same columns as a scene's table
    assert table[list(ft.TERRAIN_FEATURES)].isna().all().all()  # no DEM in a user's image
    assert west["imperviousness_500m"].between(0.3, 1).all()


def test_bring_your_own_geotiff_in_lat_lon_is_warped_to_utm(tmp_path: Path) -> None:
    path = tmp_path / "geo.tif"
    _write_byo(path, geographic=True)
    table = geotiff_cell_table(path, cell_size_m=20.0)
    assert len(table) > 0
    assert 300_000 < table["x"].min() < 500_000  # UTM 33N eastings near Berlin
    assert table["ndvi"].between(-1, 1).all()


def test_byo_without_the_needed_bands_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rgb.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=Affine(10, 0, 0, 0, -10, 80),
    ) as dst:
        dst.write(np.ones((3, 8, 8), np.uint8))
    with pytest.raises(InvalidInputError, match="needs all five bands"):
        geotiff_cell_table(path)
