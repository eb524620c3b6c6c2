"""What-if runs on tiny synthetic cities with real trained models (CLI, HTTP, the pipeline).

The scenes (256 px of 4 m) and models come from the session fixtures in
``tests/conftest.py``; polygons are drawn in the scene's own CRS.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import ndimage
from tests.serving_support import TrainedHome
from typer.testing import CliRunner

from terraops.adapters import raster_io
from terraops.adapters.catalogue import LayerCatalogue
from terraops.api.app import create_app
from terraops.cli.main import app as cli
from terraops.domain import features
from terraops.domain.whatif.interventions import apply_interventions
from terraops.domain.whatif.scenario import parse_scenario, rasterise
from terraops.pipelines.maps.layer_products import scene_imagery_layer
from terraops.pipelines.maps.raster_predict import choose_model
from terraops.pipelines.scenes.cell_tables import (
    SPECTRAL,
    cell_features_from_inputs,
    observed_inputs,
    scene_cell_table,
)
from terraops.pipelines.whatif.predict import model_inputs
from terraops.pipelines.whatif.recompute import changed_cells, feature_reach_m
from terraops.pipelines.whatif.run import run_whatif, scene_bounds
from terraops.services.uhi import UHI
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UHI_NAMES = [
    "ndvi",
    "building_density",
    "water_distance",
    "ndbi",
    "albedo",
    "tree_cover",
    "imperviousness",
    "water_fraction",
    "elevation",
    "imperviousness_500m",
    "tree_cover_200m",
]


def square(scene: Any, dx: float, dy: float, half: float, **properties: Any) -> dict[str, Any]:
    """A scenario of one square polygon centred (dx, dy) m from the scene's top-left."""
    x0, y0 = scene.origin
    cx, cy = x0 + dx, y0 - dy
    ring = [
        [cx - half, cy - half],
        [cx + half, cy - half],
        [cx + half, cy + half],
        [cx - half, cy + half],
        [cx - half, cy - half],
    ]
    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": scene.crs}},
        "features": [
            {
                "type": "Feature",
                "properties": {"id": "block", **properties},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        ],
    }


def run(
    settings: Settings,
    service: str,
    scene_dir: Path,
    doc: dict[str, Any],
    version: int,
    **kwargs: Any,
) -> Any:
    scene = raster_io.read_scene(scene_dir)
    return run_whatif(settings, service, scene, json.dumps(doc).encode(), version=version, **kwargs)


def delta_grid(settings: Settings, layer_id: str) -> np.ndarray:
    layer = LayerCatalogue(settings.layers_dir).get(layer_id)
    values, _ = raster_io.read_geotiff(Path(layer.path))
    return np.asarray(values, np.float64).squeeze()


def test_windowed_features_equal_the_whole_scene_recompute(tiny_scenes: list[Path]) -> None:
    """The window holds every change: the whole scene recomputed gives the same after-inputs,
    and every cell beyond the features' reach keeps its inputs exactly."""
    scene = raster_io.read_scene(tiny_scenes[0])
    doc = square(scene, 300, 300, 60, intervention="develop", building_share=0.6, sealed_share=0.3)
    scenario = parse_scenario(
        json.dumps(doc), scene_crs=scene.crs, scene_bounds=scene_bounds(scene)
    )
    observed = observed_inputs(scene, raster_io.read_layers(scene), SPECTRAL)
    masks = rasterise(scenario, shape=scene.shape, origin=scene.origin, resolution=scene.resolution)
    edited = apply_interventions(
        observed.bands, observed.landcover, scenario, masks, resolution=scene.resolution
    )
    baseline = scene_cell_table(scene, 20.0, landcover=SPECTRAL)
    cells = changed_cells(
        baseline,
        observed,
        edited.bands,
        edited.landcover,
        edited.changed,
        names=UHI_NAMES,
        cell_size_m=20.0,
    )
    assert cells.window is not None and len(cells.rows) > 0
    whole = cell_features_from_inputs(
        replace(observed, bands=edited.bands, landcover=edited.landcover), 20.0
    ).table.set_index(["row", "col"])
    local = [n for n in UHI_NAMES if n != "water_distance"]
    after = whole.loc[list(zip(cells.rows, cells.cols, strict=True)), local].to_numpy()
    np.testing.assert_allclose(cells.after[local].to_numpy(), after, rtol=0, atol=1e-9)
    # Every cell whose inputs moved lies within the reach of an edited pixel, along
    # each axis (the neighbourhoods' gaussians are truncated to a square).
    grid = features.cell_grid(scene.shape, scene.resolution, 20.0)
    chessboard = ndimage.distance_transform_cdt(~edited.changed, metric="chessboard")
    distance = features.cell_centre_value(grid, chessboard * scene.resolution)
    assert distance[cells.rows, cells.cols].max() <= feature_reach_m(UHI_NAMES) + 20.0


def test_cli_json_shape_and_tree_planting_cools_with_spillover(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path]
) -> None:
    scene = raster_io.read_scene(tiny_scenes[0])
    path = home_settings.home_dir / "trees.geojson"
    path.write_text(
        json.dumps(square(scene, 160, 160, 60, intervention="tree_planting", canopy=0.9))
    )
    result = CliRunner().invoke(
        cli,
        [
            "whatif",
            "uhi",
            "--scene",
            str(tiny_scenes[0]),
            "--scenario",
            str(path),
            "--version",
            str(trained_home.uhi_versions[0]),
            "--json",
        ],
        obj=home_settings,
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body) >= {"scenario", "service", "scene", "model", "interventions", "layers", "unit"}
    assert body["unit"] == "K" and len(body["scenario"]) == 64
    row = body["interventions"][0]
    for key in (
        "id",
        "intervention",
        "area_ha",
        "mean_delta",
        "min_delta",
        "max_delta",
        "ring_100m_mean_delta",
        "ring_250m_mean_delta",
        "mean_delta_interval",
        "drivers",
    ):
        assert key in row
    assert row["area_ha"] == pytest.approx(1.44, rel=0.01)
    assert row["mean_delta"] < 0  # trees cool
    assert row["ring_100m_mean_delta"] < 0  # ... and their surroundings (spillover)
    assert {d["driver"] for d in row["drivers"]} >= {"vegetation"}
    if row["mean_delta_interval"] is not None:
        lo, hi = row["mean_delta_interval"]
        assert lo <= row["mean_delta"] <= hi
    else:
        assert "interval_note" in row
    delta = delta_grid(home_settings, body["layers"][0])
    grid = features.cell_grid(scene.shape, scene.resolution, home_settings.cell_size_m)
    x, y = np.meshgrid(
        (np.arange(grid.cols) + 0.5) * grid.cell_size, (np.arange(grid.rows) + 0.5) * grid.cell_size
    )
    beyond = np.maximum(np.abs(x - 160), np.abs(y - 160)) > 60 + 500 + grid.cell_size
    assert beyond.any()
    finite = np.isfinite(delta)
    assert np.all(delta[beyond & finite] == 0.0)  # exactly 0 beyond the reach
    # The map after the scenario is today's prediction plus exactly the Δ.
    (after_id,) = [lid for lid in body["layers"] if "-whatif-after-" in lid]
    assert LayerCatalogue(home_settings.layers_dir).get(after_id).role == "whatif-after"
    after = delta_grid(home_settings, after_id)
    model = choose_model(home_settings, UHI, trained_home.uhi_versions[0])
    cells = scene_cell_table(scene, home_settings.cell_size_m)
    today = np.full(after.shape, np.nan)
    today[cells["row"], cells["col"]] = model.predictor.predict(
        model_inputs(cells, list(model.predictor.feature_names), {})
    )
    np.testing.assert_allclose(after[finite], (today + delta)[finite], atol=1e-4)


def test_develop_warms(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path]
) -> None:
    scene = raster_io.read_scene(tiny_scenes[1])
    doc = square(
        scene, 512, 512, 120, intervention="develop", building_share=0.6, sealed_share=0.35
    )
    result = run(home_settings, "uhi", tiny_scenes[1], doc, trained_home.uhi_versions[0])
    assert result.interventions[0]["mean_delta"] > 0


def test_depave_lowers_flood_probability(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path]
) -> None:
    scene = raster_io.read_scene(tiny_scenes[0])
    doc = square(scene, 512, 512, 200, intervention="depave")
    result = run(
        home_settings,
        "flood",
        tiny_scenes[0],
        doc,
        trained_home.flood_versions[0],
        params={"rainfall_mm": 100},
    )
    row = result.interventions[0]
    assert row["mean_delta"] is not None and row["mean_delta"] <= 0
    assert row["min_delta"] < 0
    assert row["storms"][0]["rainfall_mm"] == 100
    assert row["storms"][0]["flooded_area_delta_ha"] <= 0
    assert result.to_json()["unit"] == "probability"


def test_bad_scenario_exit_code_and_422_name_the_feature_and_field(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path]
) -> None:
    scene = raster_io.read_scene(tiny_scenes[0])
    bad = square(scene, 512, 512, 50, intervention="tree_planting", canopy=1.7)
    path = home_settings.home_dir / "bad.geojson"
    path.write_text(json.dumps(bad))
    catalogue = LayerCatalogue(home_settings.layers_dir)
    catalogue.add(scene_imagery_layer(home_settings, scene))
    before = {layer.id for layer in catalogue.layers()}
    result = CliRunner().invoke(
        cli,
        [
            "whatif",
            "uhi",
            "--scene",
            str(tiny_scenes[0]),
            "--scenario",
            str(path),
            "--json",
            "--version",
            str(trained_home.uhi_versions[0]),
        ],
        obj=home_settings,
    )
    assert result.exit_code != 0
    assert "feature 0" in result.output and "canopy" in result.output
    client = TestClient(create_app(home_settings, watch=False))
    response = client.post(
        "/v1/uhi/whatif",
        json={
            "scene": f"scene-{scene.name}-rgb",
            "scenario": bad,
            "version": trained_home.uhi_versions[0],
        },
    )
    assert response.status_code == 422, response.text
    assert "feature 0" in response.json()["message"]
    assert "canopy" in response.json()["message"]
    assert {layer.id for layer in LayerCatalogue(home_settings.layers_dir).layers()} == before


def test_http_whatif_adds_layers(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path]
) -> None:
    scene = raster_io.read_scene(tiny_scenes[0])
    LayerCatalogue(home_settings.layers_dir).add(scene_imagery_layer(home_settings, scene))
    client = TestClient(create_app(home_settings, watch=False))
    doc = square(scene, 400, 400, 60, intervention="cool_roof", albedo=0.7)
    response = client.post(
        "/v1/uhi/whatif",
        json={
            "scene": f"scene-{scene.name}-rgb",
            "scenario": doc,
            "version": trained_home.uhi_versions[0],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    ids = {layer.id for layer in LayerCatalogue(home_settings.layers_dir).layers()}
    assert set(body["layers"]) <= ids
    assert body["layer_links"][body["layers"][0]]["tiles"]
    too_big = client.post(
        "/v1/uhi/whatif",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert too_big.status_code == 413
