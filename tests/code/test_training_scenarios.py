"""Training cities that carry their own interventions (tiny synthetic land covers and cities)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from terraops.domain.landcover import LandCover
from terraops.domain.scene.generator import generate, scene_bounds, true_landcover
from terraops.domain.scene.spec import SceneSpec
from terraops.domain.scene.training_scenarios import KINDS, draw_parameters, random_scenario
from terraops.domain.whatif.scenario import Scenario, parse_scenario, rasterise
from terraops.errors import InvalidInputError
from terraops.pipelines.scenes.generate import generate_scene

X0, Y0, RES, N = 400_000.0, 5_500_000.0, 4.0, 96
BOUNDS = (X0, Y0 - N * RES, X0 + N * RES, Y0)


def blocks(n: int = N) -> np.ndarray:
    """Buildings in the top-left quarter, roads in the top-right, grass below."""
    lc = np.full((n, n), int(LandCover.GRASS), np.uint8)
    lc[: n // 2, : n // 2] = int(LandCover.BUILDING)
    lc[: n // 2, n // 2 :] = int(LandCover.ROAD)
    return lc


def scenario_of(lc: np.ndarray, seed: int, count: int) -> bytes:
    return random_scenario(lc, seed=seed, count=count, origin=(X0, Y0), resolution=RES, epsg=32633)


def parse_for(doc: bytes, n: int = N) -> Scenario:
    bounds = (X0, Y0 - n * RES, X0 + n * RES, Y0)
    return parse_scenario(doc, scene_crs="EPSG:32633", scene_bounds=bounds)


@given(st.integers(0, 2**31), st.integers(6, 30))
@hypothesis_settings(max_examples=25, deadline=None)
def test_a_drawn_scenario_is_valid_reproducible_and_holds_every_kind(seed: int, count: int) -> None:
    lc = blocks()
    doc = scenario_of(lc, seed, count)
    assert doc == scenario_of(lc, seed, count)
    scenario = parse_scenario(doc, scene_crs="EPSG:32633", scene_bounds=BOUNDS)
    kinds = [i.kind for i in scenario.interventions]
    assert len(kinds) == count and set(kinds) == set(KINDS)
    masks = rasterise(scenario, shape=lc.shape, origin=(X0, Y0), resolution=RES)
    assert all(m.any() for m in masks)  # every square lies inside the city


def test_squares_go_where_their_intervention_makes_sense() -> None:
    lc = blocks(400)  # a 1.6 km city: a district fits in a quarter
    on_roofs, on_green = [], []
    for seed in range(8):
        scenario = parse_for(scenario_of(lc, seed, 6), 400)
        masks = rasterise(scenario, shape=lc.shape, origin=(X0, Y0), resolution=RES)
        for intervention, mask in zip(scenario.interventions, masks, strict=True):
            share = np.isin(lc[mask], [int(LandCover.BUILDING)]).mean()
            if intervention.kind == "cool_roof":
                on_roofs.append(share)
            if intervention.kind == "develop":
                on_green.append((lc[mask] == int(LandCover.GRASS)).mean())
    # A quarter of the city is roofs, half is grass: the squares find them.
    assert np.mean(on_roofs) > 0.6 and np.mean(on_green) > 0.8


def test_drawn_parameters_are_valid_shares() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        develop = draw_parameters("develop", rng)
        assert develop["building_share"] + develop["sealed_share"] <= 0.95 + 1e-9
        assert 0.4 <= draw_parameters("cool_roof", rng)["albedo"] <= 0.85
    with pytest.raises(ValueError, match="unknown intervention"):
        draw_parameters("rewild", rng)
    with pytest.raises(ValueError, match="0 or more"):
        scenario_of(blocks(), 0, -1)


def test_a_training_city_carries_its_interventions(tmp_path: Path) -> None:
    """The city is the counterfactual of its drawn scenario: named and recorded as such,
    its land cover changed where the interventions say, the rest as drawn."""
    spec = SceneSpec(seed=9, size=96, resolution=4.0, morphology="dense")
    manifest = generate_scene(
        tmp_path / "city", seed=9, size=96, resolution=4.0, random_interventions=8
    )
    assert manifest["name"].startswith(spec.name + "-scenario-")
    assert len(manifest["scenario"]["interventions"]) == 8
    recorded = json.loads((tmp_path / "city" / "scene.json").read_text())["scenario"]
    doc = random_scenario(
        true_landcover(spec),
        seed=9,
        count=8,
        origin=(scene_bounds(spec)[0], scene_bounds(spec)[3]),
        resolution=4.0,
        epsg=32633,
    )
    scenario = parse_scenario(doc, scene_crs="EPSG:32633", scene_bounds=scene_bounds(spec))
    assert recorded["sha256"] == scenario.sha256
    drawn, intervened = generate(spec), generate(spec, scenario=scenario)
    assert np.array_equal(drawn.layers["landcover"], true_landcover(spec))
    assert not np.array_equal(drawn.layers["lst"], intervened.layers["lst"])
    with pytest.raises(InvalidInputError, match="not both"):
        generate_scene(
            tmp_path / "other",
            seed=9,
            size=96,
            resolution=4.0,
            scenario_document=doc,
            random_interventions=3,
        )
