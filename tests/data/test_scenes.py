"""Synthetic scenes: determinism, georeferencing, physical sanity, the cell table,
and per-city LST physics drawn from the published ranges."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from scipy import ndimage
from typer.testing import CliRunner

from terraops.adapters.raster_io import read_layers, read_scene
from terraops.cli.main import app
from terraops.domain.features import CELL_FEATURES, CONTEXT_FEATURES, ndbi, ndvi
from terraops.domain.hydrology import DESIGN_STORMS_MM
from terraops.domain.landcover import LandCover
from terraops.domain.scene import lst as lst_model
from terraops.domain.scene.generator import STREAMS, generate, scene_physics
from terraops.domain.scene.lst import LSTPhysics
from terraops.domain.scene.spec import GENERATOR_VERSION, SceneSpec
from terraops.domain.scene.spectra import CLASS_REFLECTANCE, ROOF_MATERIALS
from terraops.errors import InvalidInputError
from terraops.pipelines.scenes.cell_tables import iter_cell_table, scene_cell_table
from terraops.pipelines.scenes.generate import generate_scene


@pytest.fixture(scope="module")
def tables(tiny_scenes: list[Path]) -> list[pd.DataFrame]:
    return [scene_cell_table(read_scene(d)) for d in tiny_scenes]


def test_same_seed_gives_byte_identical_files(tiny_scenes: list[Path], tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_scene(again, seed=1, size=256, resolution=4.0, morphology="dense")
    original = tiny_scenes[0]
    # Other tests may already have cached the cell table and hydrology in the shared scene.
    names = sorted(p.name for p in original.iterdir() if p.suffix not in (".parquet", ".npz"))
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (original / name).read_bytes() == (again / name).read_bytes(), name


def test_different_seeds_and_morphologies_give_different_cities(tiny_scenes: list[Path]) -> None:
    dense = read_layers(read_scene(tiny_scenes[0]), ["landcover"])
    sprawl = read_layers(read_scene(tiny_scenes[1]), ["landcover"])
    assert (dense["landcover"] != sprawl["landcover"]).mean() > 0.3
    building = int(LandCover.BUILDING)
    assert (dense["landcover"] == building).mean() > 2 * (sprawl["landcover"] == building).mean()


def test_layers_are_georeferenced_like_the_manifest(tiny_scenes: list[Path]) -> None:
    manifest = read_scene(tiny_scenes[0]).to_manifest()
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
    layers = read_layers(read_scene(tiny_scenes[1]), ["red", "nir", "landcover"])
    red = layers["red"] / 1e4
    nir = layers["nir"] / 1e4
    ndvi = (nir - red) / (nir + red)
    lc = layers["landcover"]
    assert np.median(ndvi[lc == int(LandCover.TREE)]) > 0.7
    assert np.median(ndvi[lc == int(LandCover.WATER)]) < 0
    assert red.min() > 0 and red.max() < 1


def test_river_valley_is_lower_than_its_surroundings(tiny_scenes: list[Path]) -> None:
    for scene in tiny_scenes:
        layers = read_layers(read_scene(scene), ["dem", "landcover"])
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
    pd.testing.assert_frame_equal(scene_cell_table(read_scene(tiny_scenes[0])), tables[0])


def test_trees_and_water_are_cooler_than_dense_built_cells(
    tiny_scenes: list[Path], tables: list[pd.DataFrame]
) -> None:
    # Each city has its own background temperature: compare what is above it.
    table = pd.concat(
        t.assign(lst=t["lst"] - read_scene(d).to_manifest()["physics"]["lst_reference_c"])
        for d, t in zip(tiny_scenes, tables, strict=True)
    )
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
    whole = scene_cell_table(read_scene(tiny_scenes[0]))
    batches = list(iter_cell_table(read_scene(tiny_scenes[0]), batch_rows=500))
    assert len(batches) > 1 and all(len(b) <= 500 for b in batches)
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), whole)


# --------------------------------------------------------------------------- city physics
PUBLISHED = {
    # name: (low, high) as published (see lst.py for the sources)
    "ndvi_k_per_tenth": (-0.9, -0.6),  # Landsat regressions, K per +0.1 NDVI
    "ndbi_k_per_tenth": (1.2, 1.5),  # Landsat regressions, K per +0.1 NDBI
    "reference_c": (24.0, 40.0),  # summer afternoons, maritime to arid
    "lapse_k_per_100m": (-0.7, -0.6),  # around the standard 0.65 K per 100 m
    "noise_correlated_k": (0.2, 0.6),
    "noise_white_k": (0.1, 0.5),
}


def _draws(n: int) -> list[LSTPhysics]:
    return [LSTPhysics.draw(np.random.default_rng(seed)) for seed in range(n)]


def _tree_minus_built(physics: LSTPhysics, stand_cover: float) -> float:
    """How much cooler canopy is than roofs and asphalt, from the spectra's endmembers."""

    def indices(refl: np.ndarray) -> tuple[float, float]:
        red, nir, swir = refl[0], refl[3], refl[4]
        return float(ndvi(red, nir)), float(ndbi(swir, nir))

    tree_v, tree_b = indices(np.asarray(CLASS_REFLECTANCE[LandCover.TREE]))
    built = [indices(m) for m in ROOF_MATERIALS[:3]] + [
        indices(np.asarray(CLASS_REFLECTANCE[LandCover.ROAD]))
    ]
    built_v, built_b = np.mean(built, axis=0)
    spectral = physics.ndvi_coef_k * (tree_v - built_v) + physics.ndbi_coef_k * (tree_b - built_b)
    return -(spectral + physics.canopy_k + physics.park_k * stand_cover)


def test_every_drawn_coefficient_stays_in_its_published_range() -> None:
    draws = _draws(2000)
    for name, (low, high) in PUBLISHED.items():
        values = np.array([getattr(p, name) for p in draws])
        assert values.min() >= low and values.max() <= high, name
        # Drawn over the whole range, not stuck at one value.
        margin = 0.05 * (high - low)
        assert values.min() < low + margin and values.max() > high - margin, name
    for p in draws:
        # Schwaab et al. 2021: tree cover 8-12 K cooler than dense urban fabric,
        # for a lone tree and a closed stand alike (endmember contrast, ±0.1 K).
        for cover in (0.0, 1.0):
            assert 7.9 <= _tree_minus_built(p, cover) <= 12.1, (p, cover)
        assert p.canopy_k < 0 and p.park_k <= 0
        assert 150 <= p.water_decay_m <= 450  # cooling faded to e^-2 by 300-900 m
        assert -4 <= p.water_cooling_k <= -2 and -8 <= p.shade_k <= -2
        assert -8 <= p.river_surface_k <= -6 and -10 <= p.sea_surface_k <= -8
        assert -30 <= p.albedo_k <= -10
        # Collinear share: the along-line NDVI slope stays inside the published range.
        along_line = p.ndvi_coef_k - 0.55 * p.ndbi_coef_k
        assert -9.0 <= along_line <= -6.0


def test_suhi_draws_follow_peng_et_al_truncated_to_positive() -> None:
    """Daytime SUHI over 419 cities: 1.5 ± 1.2 K; a normal cut at 0.1 and 5.1 K
    has mean 1.77 and sd 0.98."""
    suhi = np.array([p.suhi_k for p in _draws(4000)])
    assert suhi.min() >= 0.1 and suhi.max() <= 5.1
    assert suhi.mean() == pytest.approx(1.77, abs=0.06)
    assert suhi.std() == pytest.approx(0.98, abs=0.06)
    assert np.median(suhi) == pytest.approx(1.67, abs=0.08)
    p = LSTPhysics.nominal()
    assert p.suhi_amplitude_k * lst_model.SUHI_IMPERVIOUSNESS == pytest.approx(p.suhi_k)


def test_tree_endmember_constants_match_the_spectra() -> None:
    tree = np.asarray(CLASS_REFLECTANCE[LandCover.TREE])
    built = np.vstack([ROOF_MATERIALS[:3], np.asarray(CLASS_REFLECTANCE[LandCover.ROAD])])
    d_ndvi = ndvi(tree[0], tree[3]) - np.mean(ndvi(built[:, 0], built[:, 3]))
    d_ndbi = ndbi(tree[4], tree[3]) - np.mean(ndbi(built[:, 4], built[:, 3]))
    assert d_ndvi == pytest.approx(lst_model.TREE_MINUS_BUILT_NDVI, abs=0.01)
    assert d_ndbi == pytest.approx(lst_model.TREE_MINUS_BUILT_NDBI, abs=0.01)


def test_city_physics_is_deterministic_and_differs_between_seeds() -> None:
    first = scene_physics(SceneSpec(seed=11, size=256, resolution=4.0))
    assert first == scene_physics(SceneSpec(seed=11, size=256, resolution=4.0))
    other = scene_physics(SceneSpec(seed=12, size=256, resolution=4.0))
    assert all(a != b for a, b in zip(asdict(first).values(), asdict(other).values(), strict=True))
    # Another morphology is another city: its own physics too.
    assert first != scene_physics(SceneSpec(seed=11, size=256, resolution=4.0, morphology="sprawl"))


def test_appended_streams_leave_the_earlier_streams_as_they_were() -> None:
    """Appending a stream (physics, then roofs) keeps the draws of the earlier ones."""
    spec = SceneSpec(seed=3, size=256, resolution=4.0)
    old = spec.rngs("georef", "terrain", "layout", "imagery", "lst")
    new = spec.rngs(*STREAMS)
    assert STREAMS[: len(old)] == tuple(old) and STREAMS[len(old) :] == ("physics", "roofs")
    for name, rng in old.items():
        assert np.array_equal(rng.random(8), new[name].random(8)), name


def test_nominal_physics_is_the_published_midpoints() -> None:
    p = LSTPhysics.nominal()
    assert (p.ndvi_k_per_tenth, p.ndbi_k_per_tenth) == (-0.75, 1.35)
    assert (p.ndvi_coef_k, p.ndbi_coef_k) == (pytest.approx(-3.75), pytest.approx(6.75))
    assert p.suhi_k == 1.5 and p.suhi_amplitude_k == pytest.approx(3.0)  # Peng's mean
    assert p.reference_c == 32.0 and p.lapse_k_per_100m == -0.65
    assert p.tree_contrast_k == 9.5 and _tree_minus_built(p, 1.0) == pytest.approx(10.8, abs=0.3)
    assert (p.water_cooling_k, p.water_decay_m) == (-3.0, 300.0)
    assert (p.noise_correlated_k, p.noise_white_k) == (0.4, 0.3)
    a, b = (SceneSpec(seed=s, size=256, resolution=4.0, physics="nominal") for s in (1, 2))
    assert scene_physics(a) == scene_physics(b) == p
    assert a.name == "dense-s1-256px-4m-nominal"
    assert SceneSpec(seed=1, size=256, resolution=4.0).name == "dense-s1-256px-4m"
    with pytest.raises(InvalidInputError, match="physics"):
        SceneSpec(seed=1, physics="fixed")


def test_manifest_records_the_drawn_coefficients(tiny_scenes: list[Path]) -> None:
    drawn = []
    for scene_dir in tiny_scenes:
        manifest = read_scene(scene_dir).to_manifest()
        spec = SceneSpec(
            seed=manifest["seed"],
            size=manifest["width"],
            resolution=manifest["resolution"],
            morphology=manifest["morphology"],
        )
        physics = scene_physics(spec)
        record = manifest["physics"]
        assert manifest["generator_version"] == GENERATOR_VERSION != "1.0.0"
        assert record["lst_physics"] == "varied"
        assert record["lst_coefficients"]["drawn"] == pytest.approx(asdict(physics), abs=1e-4)
        assert record["lst_coefficients"]["applied"]["canopy_k"] == pytest.approx(
            physics.canopy_k, abs=1e-4
        )
        assert record["lst_reference_c"] == pytest.approx(physics.reference_c, abs=1e-3)
        assert "-0.6..-0.9" in record["lst_ndvi"] and "0.1-5.1" in record["lst_suhi"]
        drawn.append(record["lst_coefficients"]["drawn"])
    assert drawn[0] != drawn[1]


def test_reference_override_changes_only_the_temperature() -> None:
    spec = SceneSpec(seed=4, size=128, resolution=4.0, morphology="sprawl")
    base = generate(spec)
    hot = generate(replace(spec, reference_temperature_c=42.0))
    assert hot.physics == base.physics.with_reference(42.0)
    for name, layer in base.layers.items():
        if name != "lst":
            assert np.array_equal(layer, hot.layers[name]), name
    shift = hot.layers["lst"].astype(float) - base.layers["lst"].astype(float)
    np.testing.assert_allclose(shift, 42.0 - base.reference_c, atol=1e-4)
    assert hot.spec.name.endswith("-t42c")


def test_lst_follows_the_drawn_ndvi_slope() -> None:
    """The same city under a steep and a shallow published NDVI slope: over its
    grass, LST falls faster with NDVI under the steep one, by the collinear
    share of the difference (0.5 × 0.3 K per 0.1 NDVI). Not over trees too: the
    canopy term tops the spectral one up to the drawn tree contrast (Schwaab),
    so a steeper NDVI slope leaves trees vs grass (nearly) as it was."""
    spec = SceneSpec(seed=2, size=192, resolution=4.0, morphology="sprawl")
    physics = scene_physics(spec)
    steep = generate(spec, physics=replace(physics, ndvi_k_per_tenth=-0.9))
    shallow = generate(spec, physics=replace(physics, ndvi_k_per_tenth=-0.6))
    layers = steep.layers
    # Inside the lawns: the sensor blur mixes edge pixels with their neighbours.
    veg = ndimage.binary_erosion(layers["landcover"] == int(LandCover.GRASS), iterations=1)
    index = ndvi(layers["red"] / 1e4, layers["nir"] / 1e4)[veg]
    slopes = [np.polyfit(index, s.layers["lst"][veg], 1)[0] / 10 for s in (steep, shallow)]
    assert slopes[0] < slopes[1]
    assert slopes[1] - slopes[0] == pytest.approx(0.15, rel=0.15)
    for name in ("red", "nir", "landcover", "dem", "flood_depth"):
        assert np.array_equal(steep.layers[name], shallow.layers[name]), name


def test_water_surfaces_sit_at_the_drawn_offset_below_the_reference(
    tiny_scenes: list[Path],
) -> None:
    """Read back from the files: each city's river is as much below its own
    background temperature as its drawn coefficient says (the cities differ)."""
    offsets = []
    for scene_dir in tiny_scenes:
        manifest = read_scene(scene_dir).to_manifest()
        layers = read_layers(read_scene(scene_dir), ["lst", "landcover"])
        river = ndimage.binary_erosion(layers["landcover"] == int(LandCover.WATER), iterations=2)
        assert river.sum() > 100
        realised = float(np.median(layers["lst"][river])) - manifest["physics"]["lst_reference_c"]
        drawn = manifest["physics"]["lst_coefficients"]["drawn"]["river_surface_k"]
        assert realised == pytest.approx(drawn, abs=0.3)
        offsets.append(drawn)
    assert abs(offsets[0] - offsets[1]) > 0.3


def test_cli_generates_a_nominal_city(tmp_path: Path) -> None:
    out = tmp_path / "nominal"
    args = ["scene", "generate", "--seed", "1", "--out", str(out), "--size", "64"]
    result = CliRunner().invoke(app, [*args, "--resolution", "4", "--physics", "nominal"])
    assert result.exit_code == 0, result.output
    manifest = read_scene(out).to_manifest()
    assert manifest["name"] == "dense-s1-64px-4m-nominal"
    assert manifest["physics"]["lst_physics"] == "nominal"
    assert manifest["physics"]["lst_coefficients"]["drawn"] == asdict(LSTPhysics.nominal())
    bad = CliRunner().invoke(app, [*args[:-2], "--physics", "fixed"])
    assert bad.exit_code == 2 and "unknown physics" in " ".join(bad.output.split())


def test_cities_draw_their_white_roofs_across_the_cool_roof_albedos() -> None:
    """Each city draws its share of white roofs and each white roof its albedo, so the
    training cities span the albedos a cool-roof scenario asks for (up to ~0.8)."""
    from terraops.domain.scene.spectra import (
        WHITE_ROOF,
        WHITE_ROOF_ALBEDO_RANGE,
        WHITE_ROOF_SHARE_RANGE,
        RoofPalette,
    )

    palettes = [RoofPalette.draw(np.random.default_rng(s), 500) for s in range(20)]
    shares = np.array([p.shares[WHITE_ROOF] for p in palettes])
    assert all(np.isclose(p.shares.sum(), 1.0) for p in palettes)
    assert WHITE_ROOF_SHARE_RANGE[0] <= shares.min() < shares.max() <= WHITE_ROOF_SHARE_RANGE[1]
    albedo = np.concatenate([p.white_albedo for p in palettes])
    assert albedo.min() >= WHITE_ROOF_ALBEDO_RANGE[0] and albedo.max() <= WHITE_ROOF_ALBEDO_RANGE[1]
    assert albedo.max() > 0.75
    again = RoofPalette.draw(np.random.default_rng(3), 500)
    assert np.array_equal(again.white_albedo, palettes[3].white_albedo)
