"""predict-raster end to end on a trained home: COGs, vectors, catalogue, lineage, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from serving_support import TrainedHome, settings_env
from terraops.adapters.catalogue import LayerCatalogue
from terraops.adapters.cog import validate_cog
from terraops.adapters.raster_io import read_scene
from terraops.adapters.registry import ModelRegistry
from terraops.pipelines.lifecycle.aliases import promote
from terraops.pipelines.maps.raster_predict import predict_raster
from terraops.pipelines.scenes.cell_tables import scene_cell_table
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = pytest.mark.integration


def _champions(settings: Settings, trained: TrainedHome) -> None:
    registry = ModelRegistry(settings)
    promote(settings, registry, "uhi", trained.uhi_versions[0], reason="test")
    promote(settings, registry, "flood", trained.flood_versions[0], reason="test")


def test_uhi_raster_matches_the_models_cell_predictions_and_carries_lineage(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path]
) -> None:
    _champions(home_settings, trained_home)
    scene = tiny_scenes[0]
    result = predict_raster(home_settings, get_service("uhi"), scene)
    out = Path(result["out"])
    assert validate_cog(out) == []
    version = trained_home.uhi_versions[0]
    with rasterio.open(out) as cog:
        tags = cog.tags()
        grid = cog.read(1)
        assert np.isnan(cog.nodata)
        assert cog.crs.to_epsg() is not None
    assert tags["model_name"] == "uhi" and tags["model_version"] == str(version)
    assert tags["model_run_id"] == result["model"]["run_id"] and tags["scene"] == result["scene"]

    # Every cell holds what the model answers for that cell's features (one feature path).
    table = scene_cell_table(read_scene(scene), home_settings.cell_size_m)
    from terraops.adapters.model_bundle import load_predictor

    predictor = load_predictor(ModelRegistry(home_settings).fetch_model("uhi", version))
    expected = predictor.predict(table[predictor.feature_names].to_numpy())
    got = grid[table["row"].to_numpy(), table["col"].to_numpy()]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert result["cells"] == len(table)
    # Scored against the synthetic city's own LST.
    assert result["evaluation"]["n"] == len(table)
    assert result["evaluation"]["mae"] == pytest.approx(
        float(np.mean(np.abs(expected - table["lst"]))), rel=1e-3
    )

    catalogue = LayerCatalogue(home_settings.layers_dir)
    by_role = {layer.role: layer for layer in catalogue.layers()}
    assert set(by_role) == {"prediction", "derived", "hotspots", "imagery"}
    assert by_role["prediction"].model_version == version
    assert (
        by_role["prediction"].features_path and Path(by_role["prediction"].features_path).is_file()
    )
    assert by_role["imagery"].colormap is None and by_role["imagery"].group == "imagery"
    with rasterio.open(by_role["imagery"].path) as rgb:
        assert rgb.count == 3 and rgb.dtypes[0] == "uint8"
    assert validate_cog(Path(by_role["derived"].path)) == []
    assert "rural_reference_c" in by_role["derived"].stats

    hotspots = json.loads(Path(by_role["hotspots"].path).read_text())
    assert hotspots["features"], "a city has hot spots"
    west, south, east, north = by_role["prediction"].bounds
    for feature in hotspots["features"]:
        props = feature["properties"]
        assert props["model_name"] == "uhi" and props["model_version"] == version
        assert props["area_m2"] > 0 and props["mean_value"] >= props["threshold"]
        lon, lat = feature["geometry"]["coordinates"][0][0]
        assert west - 1e-6 <= lon <= east + 1e-6 and south - 1e-6 <= lat <= north + 1e-6


def test_flood_storms_are_separate_layers_and_a_missing_storm_is_a_clear_error(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path], tmp_path: Path
) -> None:
    _champions(home_settings, trained_home)
    env = settings_env(home_settings)
    cli = [sys.executable, "-m", "terraops.cli.main", "predict-raster", "flood"]
    scene = str(tiny_scenes[1])
    failed = subprocess.run([*cli, "--scene", scene], env=env, capture_output=True, text=True)
    assert failed.returncode == 2
    assert "rainfall_mm" in failed.stderr and "--param rainfall_mm=" in failed.stderr
    assert not home_settings.layers_dir.exists() or not any(home_settings.layers_dir.iterdir())

    ids = []
    for storm in (30, 100):
        done = subprocess.run(
            [*cli, "--scene", scene, "--param", f"rainfall_mm={storm}", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(done.stdout)
        assert result["params"] == {"rainfall_mm": storm}
        assert 0.5 < result["evaluation"]["roc_auc"] <= 1.0
        ids.append(result["layers"][0]["id"])
    assert ids[0] != ids[1]
    layers = {layer.id: layer for layer in LayerCatalogue(home_settings.layers_dir).layers()}
    p30, p100 = (layers[i] for i in ids)
    assert p30.lineage["params"] == {"rainfall_mm": 30.0}
    assert p100.stats["mean"] >= p30.stats["mean"], "more rain never lowers flood risk"


def test_bad_arguments_exit_2_and_leave_the_catalogue_alone(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path], tmp_path: Path
) -> None:
    _champions(home_settings, trained_home)
    env = settings_env(home_settings)
    cli = [sys.executable, "-m", "terraops.cli.main", "predict-raster"]
    predict_raster(home_settings, get_service("uhi"), tiny_scenes[0])
    catalogue = home_settings.layers_dir / "catalogue.json"
    before = catalogue.read_bytes()
    cases = [
        (["uhi", "--scene", str(tmp_path / "nowhere")], 3, "no scene"),
        (["uhi", "--scene", str(tiny_scenes[0]), "--param", "rain=3"], 2, "no input 'rain'"),
        (["uhi", "--scene", str(tiny_scenes[0]), "--param", "ndvi=x"], 2, "not a number"),
        (["uhi", "--scene", str(tiny_scenes[0]), "--version", "99"], 3, "99"),
        (["nope", "--scene", str(tiny_scenes[0])], 3, "unknown service"),
        (["flood", "--scene", str(tiny_scenes[0]), "--param", "rainfall_mm=900"], 2, "outside"),
    ]
    for args, code, message in cases:
        done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True)
        assert done.returncode == code, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    assert catalogue.read_bytes() == before


def test_layers_list_reports_a_deleted_file(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path]
) -> None:
    _champions(home_settings, trained_home)
    result = predict_raster(home_settings, get_service("uhi"), tiny_scenes[0])
    Path(result["out"]).unlink()
    done = subprocess.run(
        [sys.executable, "-m", "terraops.cli.main", "layers", "list", "--json"],
        env=settings_env(home_settings),
        capture_output=True,
        text=True,
        check=True,
    )
    listed = {entry["id"]: entry for entry in json.loads(done.stdout)["layers"]}
    gone = listed[result["layers"][0]["id"]]
    assert gone["available"] is False and "missing" in gone["problem"]
    assert sum(entry["available"] for entry in listed.values()) == len(listed) - 1
