"""The counterfactual city: the same seed and noise, a scenario's interventions applied.

It is the truth what-if answers are checked against, so it must differ from
the baseline city only where the interventions (and the physics' reach from
them) can make it differ, and in the physically expected direction.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from terraops.adapters.raster_io import read_scene
from terraops.cli.main import app
from terraops.domain.landcover import LandCover
from terraops.domain.scene.generator import GeneratedScene, generate, scene_bounds
from terraops.domain.scene.lst import SUHI_SIGMA_M, TREE_NEIGHBOURHOOD_SIGMA_M
from terraops.domain.scene.spec import SceneSpec
from terraops.domain.scene.spectra import BANDS, SUN_ELEVATION_DEG
from terraops.domain.whatif.scenario import Scenario, parse_scenario, rasterise

SPEC = SceneSpec(seed=11, size=128, resolution=2.0, physics="nominal")
WIDE = SceneSpec(seed=11, size=128, resolution=8.0, physics="nominal")  # 1 km: room beyond reach
UTM = "urn:ogc:def:crs:EPSG::32633"
runner = CliRunner()


def scenario_doc(spec: SceneSpec, window: tuple[int, int, int], kind: str, **params: Any) -> dict:
    """One square polygon over pixel rows/cols [r, r+n) × [c, c+n) of ``spec``'s scene."""
    r, c, n = window
    x0, _, _, y1 = scene_bounds(spec)
    res = spec.resolution
    left, right, top, bottom = x0 + c * res, x0 + (c + n) * res, y1 - r * res, y1 - (r + n) * res
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": UTM}},
        "features": [
            {
                "type": "Feature",
                "properties": {"intervention": kind, **params},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        ],
    }


def counterfactual(spec: SceneSpec, doc: dict) -> tuple[GeneratedScene, np.ndarray]:
    scenario: Scenario = parse_scenario(
        doc, scene_crs="EPSG:32633", scene_bounds=scene_bounds(spec)
    )
    x0, _, _, y1 = scene_bounds(spec)
    mask = rasterise(
        scenario, shape=(spec.size, spec.size), origin=(x0, y1), resolution=spec.resolution
    )[0]
    return generate(spec, scenario=scenario), mask


@pytest.fixture(scope="module")
def baseline() -> GeneratedScene:
    return generate(SPEC)


@pytest.fixture(scope="module")
def wide_baseline() -> GeneratedScene:
    return generate(WIDE)


def greenest_window(
    landcover: np.ndarray, n: int, classes: tuple[LandCover, ...] = (LandCover.GRASS,)
) -> tuple[int, int, int]:
    """The n×n window with the largest share of ``classes`` (where trees or houses can go)."""
    open_ground = np.isin(landcover, [int(c) for c in classes]).astype(float)
    share = ndimage.uniform_filter(open_ground, n, mode="constant")
    half = n // 2
    inner = share[half : -half or None, half : -half or None]
    r, c = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(r), int(c), n


def delta_lst(scene: GeneratedScene, base: GeneratedScene) -> np.ndarray:
    return scene.layers["lst"].astype(np.float64) - base.layers["lst"]


def test_imagery_outside_the_polygons_reach_is_bit_identical(baseline: GeneratedScene) -> None:
    window = greenest_window(baseline.layers["landcover"], 30)
    doc = scenario_doc(SPEC, window, "develop", building_share=0.5, sealed_share=0.3)
    scene, mask = counterfactual(SPEC, doc)
    assert (scene.layers["landcover"] != baseline.layers["landcover"]).sum() > 100
    # Reach of the imagery: sensor blur (2 px) and the shadow of a 12 m building.
    shadow_px = int(np.ceil(12.0 / np.tan(np.radians(SUN_ELEVATION_DEG)) / SPEC.resolution)) + 1
    outside = ~ndimage.binary_dilation(mask, iterations=2 + shadow_px)
    for name in (*BANDS, "landcover", "dem"):
        assert np.array_equal(scene.layers[name][outside], baseline.layers[name][outside]), name


@pytest.mark.parametrize("kind", ["cool_roof", "green_roof"])
def test_a_roof_edit_changes_lst_inside_the_polygon_only(
    kind: str, baseline: GeneratedScene
) -> None:
    roofs = (baseline.layers["landcover"] == int(LandCover.BUILDING)).astype(float)
    share = ndimage.uniform_filter(roofs, 30, mode="constant")
    r, c = np.unravel_index(int(np.argmax(share[15:-15, 15:-15])), (98, 98))
    scene, mask = counterfactual(SPEC, scenario_doc(SPEC, (int(r), int(c), 30), kind))
    delta = delta_lst(scene, baseline)
    assert np.all(delta[~mask] == 0)
    assert np.array_equal(scene.layers["flood_depth"], baseline.layers["flood_depth"])
    assert delta[mask & (roofs > 0)].mean() < -0.5  # brighter or planted roofs are cooler


def test_lst_beyond_the_neighbourhood_reach_is_bit_identical(
    wide_baseline: GeneratedScene,
) -> None:
    doc = scenario_doc(WIDE, (4, 4, 12), "tree_planting", canopy="+0.4")
    scene, mask = counterfactual(WIDE, doc)
    delta = delta_lst(scene, wide_baseline)
    assert delta[mask].mean() < 0
    # The widest neighbourhood term: imperviousness smoothed over σ = 150 m on a
    # grid σ/4 coarse (gaussian truncated at 4 σ), plus a coarse cell either side.
    step_m = max(1, int(SUHI_SIGMA_M / WIDE.resolution / 4)) * WIDE.resolution
    reach_m = 4 * max(SUHI_SIGMA_M, TREE_NEIGHBOURHOOD_SIGMA_M) + 3 * step_m
    distance_m = np.asarray(ndimage.distance_transform_edt(~mask)) * WIDE.resolution
    beyond = distance_m > reach_m
    assert beyond.sum() > 1000
    assert np.all(delta[beyond] == 0)


def test_planting_trees_cools_inside(baseline: GeneratedScene) -> None:
    window = greenest_window(baseline.layers["landcover"], 30)
    scene, mask = counterfactual(SPEC, scenario_doc(SPEC, window, "tree_planting", canopy=0.8))
    planted = mask & (scene.layers["landcover"] != baseline.layers["landcover"])
    assert planted.sum() > 100
    assert delta_lst(scene, baseline)[mask].mean() < -1.0


def test_developing_green_ground_warms_inside(baseline: GeneratedScene) -> None:
    green = (LandCover.GRASS, LandCover.TREE)
    window = greenest_window(baseline.layers["landcover"], 30, green)
    doc = scenario_doc(SPEC, window, "develop", building_share=0.5, sealed_share=0.3)
    scene, mask = counterfactual(SPEC, doc)
    assert delta_lst(scene, baseline)[mask].mean() > 1.0


def cli_args(out: Path, scenario: Path) -> list[str]:
    return [
        *("scene", "generate", "--seed", "11", "--size", "128", "--resolution", "2"),
        *("--physics", "nominal", "--out", str(out), "--scenario", str(scenario), "--json"),
    ]


def test_cli_writes_the_counterfactual_city_with_the_scenario_recorded(
    tmp_path: Path, baseline: GeneratedScene
) -> None:
    window = greenest_window(baseline.layers["landcover"], 30)
    scenario = tmp_path / "trees.geojson"
    scenario.write_text(json.dumps(scenario_doc(SPEC, window, "tree_planting", canopy=0.6)))
    sha = hashlib.sha256(scenario.read_bytes()).hexdigest()
    out = tmp_path / "city"
    result = runner.invoke(app, cli_args(out, scenario))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "scene.json").read_text())
    assert manifest["name"] == f"{SPEC.name}-scenario-{sha[:8]}"
    assert manifest["scenario"]["sha256"] == sha
    assert manifest["scenario"]["interventions"][0]["intervention"] == "tree_planting"
    assert read_scene(out).to_manifest() == manifest  # the typed record round-trips it


def test_cli_refuses_a_bad_scenario_and_writes_nothing(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.geojson"
    doc = scenario_doc(SPEC, (10, 10, 20), "tree_planting", canopy=1.7)
    scenario.write_text(json.dumps(doc))
    out = tmp_path / "city"
    result = runner.invoke(app, cli_args(out, scenario))
    assert result.exit_code != 0
    assert "feature 0, field 'canopy'" in " ".join(result.output.split())
    assert not out.exists() and list(tmp_path.iterdir()) == [scenario]
