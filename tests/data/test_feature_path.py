"""One feature path: a cell's features come from the imagery and DEM, never from the generator.

The generator's truth (its land cover, its constants) may make targets and
nothing else; these tests tamper with the truth and check the features do not
move, and that an imported copy of the same imagery gets the same features.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from terraops.adapters import raster_io
from terraops.domain.features import CELL_FEATURES, reflectance_bands
from terraops.domain.landcover import LandCover, classify_spectral
from terraops.domain.rural_reference import rural_reference
from terraops.domain.scene_record import Scene
from terraops.pipelines.scenes.cell_tables import build_cell_table

FEATURES = [*CELL_FEATURES, "reference_temperature"]


@pytest.fixture(scope="module")
def table(tiny_scenes: list[Path]) -> pd.DataFrame:
    return build_cell_table(raster_io.read_scene(tiny_scenes[0]))


def _copy(scene: Path, dest: Path) -> Path:
    shutil.copytree(scene, dest, ignore=shutil.ignore_patterns("*.parquet"))
    return dest


def test_features_ignore_the_true_land_cover_and_the_generator_constants(
    tiny_scenes: list[Path], table: pd.DataFrame, tmp_path: Path
) -> None:
    tampered = _copy(tiny_scenes[0], tmp_path / "tampered")
    manifest = raster_io.read_scene(tampered).to_manifest()
    layers = raster_io.read_layers(raster_io.read_scene(tampered), ["landcover"])
    rng = np.random.default_rng(0)
    scrambled = rng.integers(1, 7, layers["landcover"].shape).astype(np.uint8)
    _, info = raster_io.read_geotiff(tampered / "landcover.tif")
    raster_io.write_geotiff(
        tampered / "landcover.tif",
        scrambled,
        epsg=int(info.epsg or 0),
        transform=info.transform,
        nodata=0,
    )
    manifest["physics"]["lst_reference_c"] = -99.0
    raster_io.write_manifest(tampered, Scene.from_manifest(manifest, tampered))

    again = build_cell_table(raster_io.read_scene(tampered))
    pd.testing.assert_frame_equal(again[FEATURES], table[FEATURES])
    # …while the flood targets, made from the true land cover, did change.
    assert not np.allclose(again["flood_depth_p100"], table["flood_depth_p100"])


def test_an_imported_copy_of_the_imagery_gets_the_same_features(
    tiny_scenes: list[Path], table: pd.DataFrame, tmp_path: Path
) -> None:
    imported = _copy(tiny_scenes[0], tmp_path / "imported")
    manifest = json.loads((imported / "scene.json").read_text())
    for truth in ("landcover", "flood_depth"):
        (imported / f"{truth}.tif").unlink()
        del manifest["layers"][truth]
    # The river entering from upstream is regional hydrology a city states, not truth.
    manifest["river_inflow"] = manifest["physics"]["river_inflow"]
    for key in ("physics", "generator_version", "seed", "morphology"):
        manifest.pop(key)
    manifest["kind"] = "geotiff"
    raster_io.write_manifest(imported, Scene.from_manifest(manifest, imported))

    again = build_cell_table(raster_io.read_scene(imported))
    pd.testing.assert_frame_equal(again[FEATURES], table[FEATURES])
    assert "lst" in again and not any(c.startswith("flood_") for c in again)


def test_land_cover_features_are_fractions_of_the_classified_imagery(
    tiny_scenes: list[Path], table: pd.DataFrame
) -> None:
    scene = raster_io.read_scene(tiny_scenes[0])
    layers = raster_io.read_layers(scene)
    classes = classify_spectral(**reflectance_bands(scene, layers))
    f = round(20.0 / float(scene.resolution))
    row, col = (int(v) for v in table.loc[len(table) // 2, ["row", "col"]])
    block = classes[row * f : (row + 1) * f, col * f : (col + 1) * f]
    cell = table.iloc[len(table) // 2]
    assert cell["tree_cover"] == pytest.approx((block == LandCover.TREE).mean())
    assert cell["imperviousness"] == pytest.approx(
        np.isin(block, [LandCover.BUILDING, LandCover.ROAD]).mean()
    )
    # The classification is imperfect but close to the truth at the cell level.
    truth = layers["landcover"]
    agree = (classes == truth) | (
        np.isin(classes, [LandCover.BUILDING, LandCover.ROAD])
        & np.isin(truth, [LandCover.BUILDING, LandCover.ROAD])
    )
    assert agree.mean() > 0.85


def test_reference_temperature_is_the_observed_rural_lst(table: pd.DataFrame) -> None:
    expected, _ = rural_reference(
        table["lst"].to_numpy(),
        table["imperviousness_500m"].to_numpy(),
        table["ndvi"].to_numpy(),
        table["water_fraction"].to_numpy(),
    )
    assert table["reference_temperature"].unique().tolist() == [pytest.approx(expected)]


def test_a_scene_without_thermal_has_an_unknown_reference(
    tiny_scenes: list[Path], table: pd.DataFrame, tmp_path: Path
) -> None:
    cold = _copy(tiny_scenes[0], tmp_path / "no-thermal")
    manifest = json.loads((cold / "scene.json").read_text())
    (cold / "lst.tif").unlink()
    del manifest["layers"]["lst"]
    raster_io.write_manifest(cold, Scene.from_manifest(manifest, cold))
    again = build_cell_table(raster_io.read_scene(cold))
    assert again["reference_temperature"].isna().all() and "lst" not in again
    pd.testing.assert_frame_equal(again[list(CELL_FEATURES)], table[list(CELL_FEATURES)])
