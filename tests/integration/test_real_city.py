"""A real city end to end: Landsat 8 product → scene → trained model → map layers with lineage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from serving_support import LANDSAT_SAMPLE_CLEAR_BBOX, settings_env
from terraops.adapters.catalogue import LayerCatalogue
from terraops.adapters.cog import validate_cog
from terraops.adapters.raster_io import read_scene
from terraops.pipelines.maps.raster_predict import predict_raster
from terraops.pipelines.scenes.cell_tables import scene_cell_table
from terraops.pipelines.training.train import train_service
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_landsat_product_imports_trains_predicts_and_lands_on_the_map(
    landsat_sample: Path, settings: Settings, tmp_path: Path
) -> None:
    scene = tmp_path / "gulf-coast"
    imported = subprocess.run(
        [sys.executable, "-m", "terraops.cli.main", "scene", "import", "landsat",
         str(landsat_sample), "--bbox", LANDSAT_SAMPLE_CLEAR_BBOX, "--bbox-crs", "product",
         "--out", str(scene), "--json"],
        capture_output=True, text=True, env=settings_env(settings), timeout=300,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    manifest = json.loads((scene / "scene.json").read_text())
    assert manifest["kind"] == "landsat" and manifest["stats"]["clear_fraction"] > 0.8

    # Features from the imagery alone; the target is the product's own LST.
    table = scene_cell_table(read_scene(scene), settings.cell_size_m)
    assert len(table) > 50_000 and table["lst"].between(5, 45).all()
    assert table["reference_temperature"].nunique() == 1
    assert table["tree_cover"].mean() > 0.3  # a forested coastal plain

    uhi = get_service("uhi")
    trained = train_service(
        settings, uhi, [scene], {"n_estimators": 40, "cv_folds": 2}, progress=False
    )
    assert trained.metrics["mae_spatial_cv"] < table["lst"].std()  # learns something real

    result = predict_raster(settings, uhi, scene, version=trained.version)
    out = Path(result["out"])
    assert validate_cog(out) == []
    with rasterio.open(out) as cog:
        tags = cog.tags()
        assert cog.crs.to_epsg() == 32616  # the product's own UTM zone
        values = cog.read(1)
    assert tags["model_version"] == str(trained.version) and tags["scene"] == manifest["name"]
    assert np.isfinite(values).mean() > 0.8
    assert result["evaluation"]["n"] == len(table)

    layers = {layer.role: layer for layer in LayerCatalogue(settings.layers_dir).layers()}
    assert layers["prediction"].model_version == trained.version
    assert "LC80200392015216LGN00" in json.dumps(dict(layers["prediction"].lineage))
    west, south, east, north = layers["prediction"].bounds
    assert -88 < west < east < -86 and 30 < south < north < 31  # Florida panhandle
