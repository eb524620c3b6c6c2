"""``predict-raster --explain``: driver contribution COGs and the dominant-driver layer."""

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
from terraops.adapters.registry import ModelRegistry
from terraops.domain.explain import driver_legend
from terraops.pipelines.lifecycle.aliases import promote
from terraops.pipelines.maps.raster_predict import predict_raster
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = pytest.mark.integration


def _read(path: str) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return np.asarray(dataset.read(1))


def test_uhi_driver_layers_add_up_to_the_prediction(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path]
) -> None:
    promote(
        home_settings, ModelRegistry(home_settings), "uhi", trained_home.uhi_versions[0], reason="t"
    )
    result = predict_raster(home_settings, get_service("uhi"), tiny_scenes[0], explain=True)
    facts = result["explain"]
    assert facts["unit"] == "K" and facts["cells"] == result["cells"] > 0
    assert facts["cells_per_s"] > 0 and facts["megapixels_per_s"] > 0

    layers = {layer.id: layer for layer in LayerCatalogue(home_settings.layers_dir).layers()}
    explained = [layer for layer in layers.values() if layer.role == "explanation"]
    assert sorted(layer.stats["driver"] for layer in explained) == sorted(
        ["vegetation", "built", "water", "terrain", "reference"]
    )
    prediction = _read(result["out"])
    total = np.full(prediction.shape, facts["baseline"], np.float64)
    for layer in explained:
        assert validate_cog(Path(layer.path)) == []
        assert layer.unit == "K" and layer.colormap == "rdbu_r"
        lo, hi = layer.rescale or (0.0, 0.0)
        assert lo == -hi and hi > 0, "the diverging palette is centred on 0"
        assert layer.model_version == trained_home.uhi_versions[0]
        total += _read(layer.path)
    cells = np.isfinite(prediction)
    np.testing.assert_allclose(total[cells], prediction[cells], atol=2e-3)  # float32 COGs

    (dominant,) = [layer for layer in layers.values() if layer.role == "explanation-dominant"]
    assert validate_cog(Path(dominant.path)) == []
    with rasterio.open(dominant.path) as dataset:
        codes = dataset.read(1)
        palette = dataset.colormap(1)
    legend = driver_legend("uhi")
    assert set(np.unique(codes[cells])) <= {entry["code"] for entry in legend}
    assert (codes[~cells] == 255).all() and palette[255][3] == 0
    assert dominant.stats["categorical"] is True
    shares = [entry["share"] for entry in dominant.stats["classes"].values()]
    assert sum(shares) == pytest.approx(1.0, abs=1e-3)


def test_flood_explain_from_the_cli_names_the_storm_in_every_layer(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path]
) -> None:
    promote(
        home_settings,
        ModelRegistry(home_settings),
        "flood",
        trained_home.flood_versions[0],
        reason="t",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "terraops.cli.main",
            "predict-raster",
            "flood",
            "--scene",
            str(tiny_scenes[1]),
            "--param",
            "rainfall_mm=60",
            "--explain",
            "--json",
        ],
        env=settings_env(home_settings),
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["explain"]["unit"] == "probability"
    why = [layer["id"] for layer in result["layers"] if "-why-" in layer["id"]]
    assert len(why) == 5 and all("p60" in lid for lid in why)
    layers = {layer.id: layer for layer in LayerCatalogue(home_settings.layers_dir).layers()}
    storm = layers[next(lid for lid in why if "-why-storm-" in lid)]
    assert storm.lineage["params"] == {"rainfall_mm": 60.0}
