"""Synthetic scenes: determinism, georeferencing, physical sanity, the cell table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from terraops.adapters.raster_io import read_manifest, read_scene_layers
from terraops.domain.features import CELL_FEATURES, CONTEXT_FEATURES
from terraops.domain.hydrology import DESIGN_STORMS_MM
from terraops.domain.landcover import LandCover
from terraops.pipelines.scenes import generate_scene, iter_cell_table, scene_cell_table


@pytest.fixture(scope="module")
def tables(tiny_scenes: list[Path]) -> list[pd.DataFrame]:
    return [scene_cell_table(d) for d in tiny_scenes]


def test_same_seed_gives_byte_identical_files(tiny_scenes: list[Path], tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_scene(again, seed=1, size=256, resolution=4.0, morphology="dense")
    original = tiny_scenes[0]
    names = sorted(p.name for p in original.iterdir() if not p.name.endswith(".parquet"))
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (original / name).read_bytes() == (again / name).read_bytes(), name


def test_different_seeds_and_morphologies_give_different_cities(tiny_scenes: list[Path]) -> None:
    _, dense = read_scene_layers(tiny_scenes[0], ["landcover"])
    _, sprawl = read_scene_layers(tiny_scenes[1], ["landcover"])
    assert (dense["landcover"] != sprawl["landcover"]).mean() > 0.3
    building = int(LandCover.BUILDING)
    assert (dense["landcover"] == building).mean() > 2 * (sprawl["landcover"] == building).mean()


def test_layers_are_georeferenced_like_the_manifest(tiny_scenes: list[Path]) -> None:
    manifest = read_manifest(tiny_scenes[0])
    assert manifest["crs"].startswith("EPSG:326")
    assert set(manifest["layers"]) >= {
        "red",
        "green",
        "blue",
        "nir",
        "swir",
        "dem",
        "landcover",
        "lst",
        "flood_depth",
    }
    for name, file_name in manifest["layers"].items():
        with rasterio.open(tiny_scenes[0] / file_name) as src:
            assert f"EPSG:{src.crs.to_epsg()}" == manifest["crs"], name
            assert src.res == (manifest["resolution"], manifest["resolution"])
            assert list(src.bounds) == pytest.approx(manifest["bounds"])
            assert (src.width, src.height) == (manifest["width"], manifest["height"])
            assert src.profile["tiled"] and src.compression.value == "DEFLATE"
            if name in manifest["reflectance"]["bands"]:
                assert src.dtypes[0] == "uint16" and src.nodata == 0
                assert src.scales[0] == pytest.approx(manifest["reflectance"]["scale"])
    assert manifest["landcover_legend"]["1"] == "building"
    assert "lst_ndvi" in manifest["physics"] and "flood_runoff" in manifest["physics"]


def test_reflectance_is_plausible(tiny_scenes: list[Path]) -> None:
    _, layers = read_scene_layers(tiny_scenes[1], ["red", "nir", "landcover"])
    red = layers["red"] / 1e4
    nir = layers["nir"] / 1e4
    ndvi = (nir - red) / (nir + red)
    lc = layers["landcover"]
    assert np.median(ndvi[lc == int(LandCover.TREE)]) > 0.7
    assert np.median(ndvi[lc == int(LandCover.WATER)]) < 0
    assert red.min() > 0 and red.max() < 1


def test_river_valley_is_lower_than_its_surroundings(tiny_scenes: list[Path]) -> None:
    for scene in tiny_scenes:
        _, layers = read_scene_layers(scene, ["dem", "landcover"])
        water = layers["landcover"] == int(LandCover.WATER)
        assert water.any()
        assert np.median(layers["dem"][water]) < np.percentile(layers["dem"][~water], 10)


def test_cell_table_has_the_contract_columns_and_ranges(tables: list[pd.DataFrame]) -> None:
    for table in tables:
        storms = [f"flood_{k}_p{p}" for p in DESIGN_STORMS_MM for k in ("depth", "frac")]
        expected = [
            *("scene", "row", "col", "x", "y"),
            *CELL_FEATURES,
            *CONTEXT_FEATURES,
            *("lst", "flood_depth"),
            *storms,
        ]
        assert set(expected) <= set(table.columns)
        assert table["scene"].nunique() == 1
        assert len(table) == (256 * 4 // 20) ** 2
        assert not table[expected[1:]].isna().any().any()
        for col in (
            "albedo",
            "building_density",
            "tree_cover",
            "imperviousness",
            "water_fraction",
            "imperviousness_500m",
            "tree_cover_200m",
            *[f"flood_frac_p{p}" for p in DESIGN_STORMS_MM],
        ):
            assert table[col].between(0, 1).all(), col
        assert table["ndvi"].between(-1, 1).all() and table["ndbi"].between(-1, 1).all()
        assert table["curve_number"].between(30, 98).all()
        assert table["drainage_curve_number"].between(30, 98).all()
        assert table["drainage_upstream_area"].min() >= 0
        assert table["depression_depth"].between(0, 10).all()
        assert (table["imperviousness"] >= table["building_density"]).all()
        assert table["hand"].min() >= 0 and table["slope"].between(0, 90).all()
        assert table["lst"].between(10, 50).all()
        assert table["flood_depth"].between(0, 10).all()
        # The scene's own storm is one of the design storms: same model, same depths.
        np.testing.assert_allclose(table["flood_depth"], table["flood_depth_p50"], atol=1e-6)


def test_neighbourhood_features_smooth_their_cell_values(tables: list[pd.DataFrame]) -> None:
    pairs = (("imperviousness", "imperviousness_500m"), ("tree_cover", "tree_cover_200m"))
    for table in tables:
        for cell, hood in pairs:
            # A local mean: about the same average, much less spread, still correlated.
            assert table[hood].mean() == pytest.approx(table[cell].mean(), abs=0.05), hood
            assert table[hood].std() < 0.7 * table[cell].std(), hood
            assert table[hood].corr(table[cell]) > 0.2, hood


def test_river_floods_come_from_large_catchments(tables: list[pd.DataFrame]) -> None:
    """Outside depressions a cell floods from the channel it drains to, so flooded
    cells drain to much larger catchments than dry ones."""
    for table in tables:
        fluvial = table[table["depression_depth"] < 0.05]
        wet = fluvial["flood_frac_p150"] >= 0.5
        assert wet.any() and (~wet).any()
        area = fluvial["drainage_upstream_area"]
        assert area[wet].median() > 5 * max(area[~wet].median(), 1e-3)


def test_cell_table_is_cached(tiny_scenes: list[Path], tables: list[pd.DataFrame]) -> None:
    cached = list(tiny_scenes[0].glob("cells_20m_*.parquet"))
    assert len(cached) == 1
    pd.testing.assert_frame_equal(scene_cell_table(tiny_scenes[0]), tables[0])


def test_trees_and_water_are_cooler_than_dense_built_cells(tables: list[pd.DataFrame]) -> None:
    table = pd.concat(tables)
    built = table.query("building_density > 0.5")["lst"].mean()
    trees = table.query("tree_cover > 0.7")["lst"].mean()
    water = table.query("water_fraction > 0.9")["lst"].mean()
    assert built - trees > 5.0
    assert built - water > 4.0


def test_lst_falls_as_ndvi_rises_at_the_published_rate(tables: list[pd.DataFrame]) -> None:
    for table in tables:
        land = table.query("water_fraction == 0")
        per_tenth_ndvi = np.polyfit(land["ndvi"], land["lst"], 1)[0] / 10
        per_tenth_ndbi = np.polyfit(land["ndbi"], land["lst"], 1)[0] / 10
        assert -1.2 < per_tenth_ndvi < -0.5  # published: -0.6 .. -0.9 K per 0.1 NDVI
        assert 0.9 < per_tenth_ndbi < 2.0  # published: +1.2 .. +1.5 K per 0.1 NDBI


def test_flooded_cells_have_low_hand_and_flooding_grows_with_rain(
    tables: list[pd.DataFrame],
) -> None:
    for table in tables:
        flooded = table.query("flood_frac_p100 > 0.5")
        assert len(flooded) > 0
        assert flooded["hand"].median() < table["hand"].median()
        assert flooded["hand"].median() < 2.0
        fractions = [table[f"flood_frac_p{p}"].mean() for p in DESIGN_STORMS_MM]
        assert fractions == sorted(fractions) and fractions[-1] > fractions[0]


def test_cell_table_streams_in_bounded_batches_equal_to_the_whole(tiny_scenes: list[Path]) -> None:
    """predict-raster holds one batch of cells at a time; the batches are the same table."""
    whole = scene_cell_table(tiny_scenes[0])
    batches = list(iter_cell_table(tiny_scenes[0], batch_rows=500))
    assert len(batches) > 1 and all(len(b) <= 500 for b in batches)
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), whole)
