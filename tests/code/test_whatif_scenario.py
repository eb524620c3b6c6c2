"""Scenario files and the shared pixel choice of interventions.

A bad scenario must be refused naming the feature's index and the field; a
good one must be reprojected to the scene, rasterised faithfully, and applied
to the same pixels every time, reaching the asked shares without touching water.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pyproj import Transformer
from scipy import ndimage

from terraops.domain.features import broadband_albedo
from terraops.domain.landcover import LandCover
from terraops.domain.whatif.interventions import (
    apply_interventions,
    choose_pixels,
    edit_surface,
    selection_field,
    selection_seed,
    sunlit_spectrum,
)
from terraops.domain.whatif.scenario import (
    INTERVENTION_KINDS,
    ScenarioLimits,
    parse_scenario,
    rasterise,
)
from terraops.errors import InvalidScenarioError

SCENE_CRS = "EPSG:32633"
X0, Y0, RES, N = 500_000.0, 5_600_000.0, 2.0, 128  # top-left, pixel size, pixels per side
BOUNDS = (X0, Y0 - N * RES, X0 + N * RES, Y0)
UTM_NAME = "urn:ogc:def:crs:EPSG::32633"


def square(x: float, y: float, side: float) -> list[list[list[float]]]:
    """A closed square ring with its lower-left corner at (x, y)."""
    ring = [[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]
    return [ring]


def feature(kind: str = "tree_planting", coords: Any = None, **params: Any) -> dict[str, Any]:
    geometry = {"type": "Polygon", "coordinates": coords or square(X0 + 20, Y0 - 200, 100)}
    params = params or ({"canopy": 0.5} if kind == "tree_planting" else {})
    return {
        "type": "Feature",
        "properties": {"intervention": kind, **params},
        "geometry": geometry,
    }


def collection(*features: dict[str, Any], crs: str | None = UTM_NAME) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": list(features)}
    if crs is not None:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return doc


def parse(doc: Any, limits: ScenarioLimits | None = None) -> Any:
    return parse_scenario(doc, scene_crs=SCENE_CRS, scene_bounds=BOUNDS, limits=limits)


BOW_TIE = [[[X0 + 10, Y0 - 10], [X0 + 90, Y0 - 90], [X0 + 90, Y0 - 10], [X0 + 10, Y0 - 90]]]


@pytest.mark.parametrize(
    ("bad_feature", "field", "message"),
    [
        (feature("rewild"), "intervention", "unknown intervention 'rewild'"),
        (feature("tree_planting", canopy=1.4), "canopy", "between 0 and 1"),
        (feature("tree_planting", canopy=-0.1), "canopy", "between 0 and 1"),
        (feature("tree_planting", canopy="lots"), "canopy", "signed change"),
        (feature("tree_planting", canopy="+1.5"), "canopy", "signed change"),
        (feature("depave", share=2), "share", "between 0 and 1"),
        (feature("cool_roof", albedo=True), "albedo", "between 0 and 1"),
        (feature("cool_roof", colour="white"), "colour", "unknown parameter"),
        (feature("develop", building_share=0.3), "sealed_share", "needs 'sealed_share'"),
        (feature("develop", building_share=0.7, sealed_share=0.5), "sealed_share", "exceed 1"),
        (feature("develop", building_share=0, sealed_share=0, height_m=900), "height_m", "2 and"),
        (feature(coords=BOW_TIE), "geometry", "not a valid polygon"),
        (feature(coords=[[]]), "geometry", "empty"),
        (feature(coords=square(X0 + 5000, Y0 + 5000, 50)), "geometry", "outside the scene"),
        (feature() | {"geometry": {"type": "Point", "coordinates": [X0, Y0]}}, "geometry", "Point"),
        (feature() | {"geometry": None}, "geometry", "Polygon or MultiPolygon"),
        (feature() | {"properties": None}, "properties", "intervention"),
    ],
)
def test_each_bad_feature_is_refused_naming_its_index_and_field(
    bad_feature: dict[str, Any], field: str, message: str
) -> None:
    doc = collection(feature(), bad_feature)
    with pytest.raises(InvalidScenarioError, match=message) as refused:
        parse(doc)
    assert refused.value.feature_index == 1 and refused.value.field == field
    assert f"feature 1, field {field!r}" in refused.value.message


@pytest.mark.parametrize(
    ("doc", "field", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        ({"type": "Feature"}, "type", "FeatureCollection"),
        ({"type": "FeatureCollection", "features": []}, "features", "non-empty"),
        (collection(feature(), crs="EPSG:999999"), "crs", "unknown CRS"),
    ],
)
def test_a_bad_document_is_refused_naming_the_field(
    doc: Any, field: str | None, message: str
) -> None:
    with pytest.raises(InvalidScenarioError, match=message) as refused:
        parse(doc)
    assert refused.value.field == field


def test_limits_on_feature_count_and_total_area_name_the_feature() -> None:
    with pytest.raises(InvalidScenarioError, match="more than the 2") as refused:
        parse(collection(feature(), feature(), feature()), ScenarioLimits(max_features=2))
    assert refused.value.field == "features"
    big = ScenarioLimits(max_area_m2=15_000.0)  # each square is 10 000 m²
    with pytest.raises(InvalidScenarioError, match=r"more than the 1\.5 ha") as refused:
        parse(collection(feature(), feature()), big)
    assert (refused.value.feature_index, refused.value.field) == (1, "geometry")


def test_a_lon_lat_file_is_reprojected_and_a_partly_outside_polygon_clipped() -> None:
    to_lonlat = Transformer.from_crs(SCENE_CRS, "EPSG:4326", always_xy=True)
    ring = [list(to_lonlat.transform(x, y)) for x, y in square(X0 + 20, Y0 - 200, 100)[0]]
    scenario = parse(collection(feature(coords=[ring]), crs=None))
    only = scenario.interventions[0]
    assert scenario.source_crs == "EPSG:4326"
    assert only.area_m2 == pytest.approx(10_000, rel=1e-3)
    assert only.geometry.bounds[0] == pytest.approx(X0 + 20, abs=0.05)
    half_out = parse(collection(feature(coords=square(X0 - 50, Y0 - 200, 100))))
    assert half_out.interventions[0].area_m2 == pytest.approx(5_000)


def test_params_get_defaults_ids_and_relative_canopy() -> None:
    doc = collection(
        feature("park"),
        feature("tree_planting", canopy="+0.3", id="street-7"),
        feature("develop", building_share=0.4, sealed_share=0.2),
    )
    park, trees, develop = parse(doc).interventions
    assert dict(park.params) == {"canopy": 0.3} and park.id == "0"
    assert dict(trees.params) == {"canopy_change": 0.3} and trees.id == "street-7"
    assert develop.params["height_m"] == 12.0
    assert {p.kind for p in (park, trees, develop)} <= set(INTERVENTION_KINDS)


def test_sha256_is_of_the_bytes_as_given_or_canonical_json() -> None:
    doc = collection(feature())
    text = json.dumps(doc, indent=2).encode()
    assert parse(text).sha256 == hashlib.sha256(text).hexdigest()
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert parse(doc).sha256 == hashlib.sha256(canonical).hexdigest()


# ----------------------------------------------------------------------- properties
corner = st.tuples(st.floats(0, 200), st.floats(0, 200))
sides = st.tuples(st.floats(12, 120), st.floats(12, 120))
angle = st.floats(0, np.pi / 2)


def rotated_rectangle(corner_xy: tuple[float, float], size: tuple[float, float], theta: float):
    cx, cy = X0 + corner_xy[0] + 20, Y0 - corner_xy[1] - 20
    w, h = size
    pts = np.array([[0, 0], [w, 0], [w, h], [0, h]]) - [w / 2, h / 2]
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    ring = (pts @ rot.T + [cx, cy]).tolist()
    return [[*ring, ring[0]]]


@given(corner, sides, angle)
@hypothesis_settings(max_examples=40, deadline=None)
def test_rasterised_area_matches_the_polygon_area(
    at: tuple[float, float], size: tuple[float, float], theta: float
) -> None:
    scenario = parse(collection(feature(coords=rotated_rectangle(at, size, theta))))
    geometry = scenario.interventions[0].geometry
    mask = rasterise(scenario, shape=(N, N), origin=(X0, Y0), resolution=RES)[0]
    # Centre-inside sampling errs by at most about half a pixel along the outline.
    tolerance = 0.5 * geometry.length * RES + 4 * RES * RES
    assert abs(mask.sum() * RES * RES - geometry.area) <= tolerance


def random_landcover(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lc = rng.choice([1, 2, 3, 4, 5, 6], size=(N, N), p=[0.25, 0.2, 0.15, 0.2, 0.1, 0.1])
    return lc.astype(np.uint8)


def bands_for(lc: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {b: rng.uniform(0.01, 0.5, lc.shape) for b in ("red", "green", "blue", "nir", "swir")}


def share_scenario(kind: str, params: dict[str, Any]) -> Any:
    return parse(collection(feature(kind, coords=square(X0 + 30, Y0 - 220, 150), **params)))


def masks_of(scenario: Any) -> list[np.ndarray]:
    return rasterise(scenario, shape=(N, N), origin=(X0, Y0), resolution=RES)


@given(st.integers(0, 2**16), st.floats(0, 1))
@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_tree_planting_reaches_the_asked_canopy_within_a_pixel(seed: int, canopy: float) -> None:
    lc = random_landcover(seed)
    scenario = share_scenario("tree_planting", {"canopy": canopy})
    mask = masks_of(scenario)[0]
    after = edit_surface(lc, scenario, [mask], resolution=RES).landcover
    plantable = mask & ~np.isin(lc, [int(LandCover.BUILDING), int(LandCover.WATER)])
    reached = (after[plantable] == int(LandCover.TREE)).mean()
    assert abs(reached - canopy) <= 0.5 / plantable.sum() + 1e-12
    assert np.array_equal(after[~mask], lc[~mask])


@given(st.integers(0, 2**16), st.floats(0, 1), st.floats(0, 1))
@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_develop_reaches_its_building_and_sealed_shares_within_a_pixel(
    seed: int, built: float, sealed_part: float
) -> None:
    lc = random_landcover(seed)
    sealed = (1 - built) * sealed_part
    scenario = share_scenario("develop", {"building_share": built, "sealed_share": sealed})
    mask = masks_of(scenario)[0]
    edit = edit_surface(lc, scenario, [mask], resolution=RES)
    ground = mask & np.isin(lc, [3, 4, 6])
    n = int(ground.sum())
    assert abs((edit.landcover[ground] == 1).mean() - built) <= 0.5 / n + 1e-12
    assert abs((edit.landcover[ground] == 2).mean() - sealed) <= 1.0 / n + 1e-12
    assert np.all(edit.new_building_height[edit.landcover != lc] != 0)


@given(
    st.integers(0, 2**16),
    st.sampled_from(INTERVENTION_KINDS),
    st.floats(0, 1),
)
@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_water_never_changes(seed: int, kind: str, share: float) -> None:
    lc = random_landcover(seed)
    params = {
        "tree_planting": {"canopy": share},
        "park": {"canopy": share},
        "depave": {"share": share},
        "cool_roof": {"albedo": share},
        "green_roof": {"share": share},
        "develop": {"building_share": share / 2, "sealed_share": share / 2},
    }[kind]
    scenario = share_scenario(kind, params)
    bands = bands_for(lc, seed)
    edited = apply_interventions(bands, lc, scenario, masks_of(scenario), resolution=RES)
    water = lc == int(LandCover.WATER)
    assert np.all(edited.landcover[water] == int(LandCover.WATER))
    assert not edited.changed[water].any()
    for name, values in bands.items():
        assert np.array_equal(edited.bands[name][water], values[water])
        assert np.array_equal(edited.bands[name][~edited.changed], values[~edited.changed])


def test_the_pixel_choice_is_deterministic_and_the_same_in_a_window() -> None:
    lc = random_landcover(3)
    scenario = share_scenario("tree_planting", {"canopy": 0.6})
    mask = masks_of(scenario)[0]
    first = edit_surface(lc, scenario, [mask], resolution=RES).landcover
    again = edit_surface(lc, scenario, [mask], resolution=RES).landcover
    assert np.array_equal(first, again)
    window = (slice(5, 120), slice(8, 110))  # a caller holding only part of the scene
    in_window = edit_surface(lc[window], scenario, [mask[window]], resolution=RES).landcover
    assert np.array_equal(in_window, first[window])
    other = parse(collection(feature(coords=square(X0 + 30, Y0 - 220, 150)), feature()))
    seeds = [selection_seed(other.sha256, i).entropy for i in (0, 1)]
    assert seeds[0] != seeds[1]


def test_planted_pixels_form_crown_sized_clumps() -> None:
    mask = np.ones((64, 64), bool)
    field = selection_field(mask, seed=selection_seed("ab" * 32, 0), scale_px=2.0)
    chosen = choose_pixels(mask, 64 * 64 // 4, field)
    # Neighbours of a chosen pixel are mostly chosen too (salt-and-pepper would give ~25 %).
    same = (chosen[:, 1:] & chosen[:, :-1]).sum() / chosen[:, :-1].sum()
    assert same > 0.6


def test_cool_and_green_roofs_repaint_roofs_only() -> None:
    lc = random_landcover(11)
    bands = bands_for(lc, 11)
    scenario = parse(
        collection(
            feature("cool_roof", coords=square(X0 + 30, Y0 - 220, 150), albedo=0.7),
            feature("green_roof", coords=square(X0 + 30, Y0 - 120, 50)),
        )
    )
    cool_mask, green_mask = masks_of(scenario)
    edited = apply_interventions(bands, lc, scenario, masks_of(scenario), resolution=RES)
    roofs = lc == int(LandCover.BUILDING)
    repainted = roofs & (cool_mask | green_mask)
    # The roofs, and the pixels beside them the sensor's blur reaches (never water).
    assert np.all(edited.changed[repainted])
    near = ndimage.binary_dilation(repainted, np.ones((3, 3), bool), iterations=2)
    assert not edited.changed[~near].any()
    assert not edited.changed[lc == int(LandCover.WATER)].any()
    # What the land-cover classification sees after the edit: a planted roof is grass.
    planted = roofs & green_mask
    assert np.array_equal(edited.landcover[~planted], lc[~planted])
    assert np.all(edited.landcover[planted] == int(LandCover.GRASS))
    # ... but it is still a building for whoever counts buildings (flood exposure).
    assert np.array_equal(edited.buildings_landcover(lc), lc)
    cool = roofs & cool_mask & ~green_mask
    # Scattered one-pixel roofs share the sensor's blur with their neighbours: on average
    # they reach most of the asked albedo, up from ~0.3.
    before, after = (
        broadband_albedo(bands)[cool].mean(),
        broadband_albedo(edited.bands)[cool].mean(),
    )
    assert before < 0.35 and 0.5 < after < 0.7


def test_roofs_come_from_the_footprints_a_scene_carries() -> None:
    """Dark roofs that imagery calls paving are repainted where footprints show them,
    and are then seen as (bright) buildings; paving outside the footprints is untouched."""
    lc = random_landcover(5)
    bands = bands_for(lc, 5)
    road = lc == int(LandCover.ROAD)
    footprints = (lc == int(LandCover.BUILDING)) | (road & (np.indices(lc.shape)[0] % 2 == 0))
    scenario = parse(
        collection(feature("cool_roof", coords=square(X0 + 30, Y0 - 220, 150), albedo=0.7))
    )
    mask = masks_of(scenario)[0]
    plain = apply_interventions(bands, lc, scenario, [mask], resolution=RES)
    edited = apply_interventions(bands, lc, scenario, [mask], resolution=RES, footprints=footprints)
    dark_roofs = mask & road & footprints
    assert dark_roofs.any() and not plain.roofs[dark_roofs].any()
    assert np.array_equal(edited.roofs, mask & footprints)
    assert np.all(edited.landcover[dark_roofs] == int(LandCover.BUILDING))
    assert np.all(edited.landcover[mask & road & ~footprints] == int(LandCover.ROAD))
    # Ground interventions leave the roofs the footprints show, even where imagery sees paving.
    depave = parse(collection(feature("depave", coords=square(X0 + 30, Y0 - 220, 150))))
    unsealed = apply_interventions(bands, lc, depave, [mask], resolution=RES, footprints=footprints)
    assert np.all(unsealed.landcover[dark_roofs] == int(LandCover.ROAD))
    assert np.all(unsealed.landcover[mask & road & ~footprints] == int(LandCover.GRASS))


# ----------------------------------------------------------------------- what the sensor sees
def test_a_planted_roof_is_painted_with_the_sunlit_grass() -> None:
    """A fifth of the grass lies in a building's shadow (a third as bright): new ground
    takes the median of all the grass, a planted roof (above the shadows) the sunlit one."""
    lc = np.full((N, N), int(LandCover.GRASS), np.uint8)
    lc[:, : N // 2] = int(LandCover.BUILDING)
    shade = np.ones((N, N))
    shade[50:75, :] = 0.35  # a shadow across the lawns
    sunlit_grass = np.array([0.06, 0.09, 0.05, 0.30, 0.25])
    roof = np.array([0.20, 0.20, 0.20, 0.25, 0.30])
    grass_here = lc[None] == int(LandCover.GRASS)
    spectrum = np.where(grass_here, sunlit_grass[:, None, None] * shade[None], roof[:, None, None])
    bands = dict(zip(("red", "green", "blue", "nir", "swir"), spectrum, strict=True))
    assert np.allclose(sunlit_spectrum(bands, lc, int(LandCover.GRASS)), sunlit_grass)
    green = parse(collection(feature("green_roof", coords=square(X0, Y0 - N * RES, N * RES))))
    edited = apply_interventions(bands, lc, green, masks_of(green), resolution=RES)
    interior = np.zeros((N, N), bool)
    interior[5:-5, 5 : N // 2 - 5] = True
    for i, band in enumerate(("red", "green", "blue", "nir", "swir")):
        assert np.allclose(edited.bands[band][interior], sunlit_grass[i])


def test_the_sensor_blur_moves_the_pixels_beside_an_edit_and_no_farther() -> None:
    """Inside a large repainted block the asked albedo is reached; its rim and the one or
    two pixels outside share the change (as the sensor mixes neighbours); beyond, nothing."""
    lc = np.full((N, N), int(LandCover.ROAD), np.uint8)
    lc[40:80, 40:80] = int(LandCover.BUILDING)
    bands = {b: np.full((N, N), 0.1) for b in ("red", "green", "blue", "nir", "swir")}
    roof = parse(
        collection(feature("cool_roof", coords=square(X0, Y0 - N * RES, N * RES), albedo=0.7))
    )
    edited = apply_interventions(bands, lc, roof, masks_of(roof), resolution=RES)
    albedo = broadband_albedo(edited.bands)
    assert np.allclose(albedo[45:75, 45:75], 0.7, atol=1e-6)
    before = broadband_albedo(bands)[0, 0]
    assert before < albedo[40, 60] < 0.7 and before < albedo[39, 60] < albedo[40, 60]
    far = ~ndimage.binary_dilation(
        lc == int(LandCover.BUILDING), np.ones((3, 3), bool), iterations=2
    )
    assert np.allclose(albedo[far], before) and not edited.changed[far].any()
    assert edited.changed[39, 60] and edited.landcover[39, 60] == int(LandCover.ROAD)


def test_pixels_the_blur_does_not_reach_keep_what_was_recorded_even_out_of_range() -> None:
    """A real product records slightly negative reflectance (deep shadow) and above one
    (glint): an edit elsewhere leaves those pixels as they were, not clipped nor counted
    as changed, while the pixels it does reach are clipped to [0, 1]."""
    lc = np.full((N, N), int(LandCover.ROAD), np.uint8)
    lc[40:60, 40:60] = int(LandCover.BUILDING)
    bands = {b: np.full((N, N), 0.1) for b in ("red", "green", "blue", "nir", "swir")}
    bands["blue"][5, 5] = -0.02
    bands["swir"][-3, -3] = 1.04
    bands["red"][41, 41] = -0.01  # on the edited roof: repainted, so it moves
    roof = parse(
        collection(feature("cool_roof", coords=square(X0, Y0 - N * RES, N * RES), albedo=0.7))
    )
    edited = apply_interventions(bands, lc, roof, masks_of(roof), resolution=RES)
    assert edited.bands["blue"][5, 5] == -0.02 and edited.bands["swir"][-3, -3] == 1.04
    assert not edited.changed[5, 5] and not edited.changed[-3, -3]
    assert edited.changed[41, 41] and edited.bands["red"][41, 41] > 0.1
    for band in edited.bands.values():
        reached = edited.changed
        assert ((band[reached] >= 0.0) & (band[reached] <= 1.0)).all()


def test_the_pixels_beside_an_edit_are_classified_again_and_no_others() -> None:
    """Grass planted on roofs greens the one-pixel lanes between them through the blur:
    those lanes take the class the rules now give them; the roofs keep the edit's class."""
    from terraops.domain.landcover import classify_spectral
    from terraops.pipelines.scenes.landcover_source import SPECTRAL
    from terraops.pipelines.whatif.run import reobserved_landcover

    lc = np.full((N, N), int(LandCover.BUILDING), np.uint8)
    lc[:, ::3] = int(LandCover.ROAD)  # a dark lane every third column
    roof = np.array([0.30, 0.30, 0.30, 0.33, 0.38])
    asphalt = np.array([0.08, 0.08, 0.07, 0.11, 0.14])
    spectrum = np.where(
        lc[None] == int(LandCover.ROAD), asphalt[:, None, None], roof[:, None, None]
    )
    bands = dict(zip(("red", "green", "blue", "nir", "swir"), spectrum, strict=True))
    before = classify_spectral(**bands)
    green = parse(collection(feature("green_roof", coords=square(X0, Y0 - N * RES, N * RES))))
    edited = apply_interventions(bands, before, green, masks_of(green), resolution=RES)
    seen = reobserved_landcover(SPECTRAL, before, edited)
    rim = edited.changed & ~edited.roofs & (edited.landcover == before)
    assert rim.any()
    assert np.array_equal(seen[~rim], edited.landcover[~rim])
    assert np.array_equal(seen[rim], classify_spectral(**edited.bands)[rim])
