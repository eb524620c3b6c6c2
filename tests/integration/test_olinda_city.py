"""The dense real city without thermal data: Olinda/Recife (Landsat 7) → heat and flood maps
with registered models, and a what-if on it.

The crop and its DEM come from the samples cache (skipped without it); the models are
the session's tiny trained ones (``tests/conftest.py``). There is no observed
temperature here, so the heat layer carries no evaluation and says so on the map.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from samples_support import cached_sample
from serving_support import TrainedHome
from terraops.adapters import raster_io
from terraops.adapters.catalogue import LayerCatalogue
from terraops.adapters.cog import validate_cog
from terraops.adapters.samples import OLINDA_SAMPLE
from terraops.pipelines.maps.raster_predict import predict_raster
from terraops.pipelines.scenes.landsat7_import import import_landsat7_dn
from terraops.pipelines.whatif.run import run_whatif
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def olinda(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sample = cached_sample(OLINDA_SAMPLE, tmp_path_factory.mktemp("olinda"))
    out = tmp_path_factory.mktemp("scenes") / "olinda-recife"
    import_landsat7_dn(
        sample / "L7_ETMs.tif", out, dem=sample / "olinda_dem_utm25s.tif", name="olinda-recife"
    )
    return out


def _tree_planting(scene_dir: Path, size_m: float = 300.0) -> bytes:
    """One square of tree planting in the middle of the scene (its own CRS)."""
    scene = raster_io.read_scene(scene_dir)
    west, south, east, north = scene.extra["bounds"]
    cx, cy, half = (west + east) / 2, (south + north) / 2, size_m / 2
    ring = [[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half],
            [cx - half, cy + half], [cx - half, cy - half]]  # fmt: skip
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": scene.crs}},
        "features": [
            {
                "type": "Feature",
                "properties": {"id": "park", "intervention": "tree_planting", "canopy": 0.9},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        ],
    }
    return json.dumps(doc).encode()


def test_heat_and_flood_maps_of_olinda_without_an_observation(
    olinda: Path, home_settings: Settings, trained_home: TrainedHome
) -> None:
    heat = predict_raster(
        home_settings, get_service("uhi"), olinda, version=trained_home.uhi_versions[0]
    )
    assert heat["evaluation"] is None  # no LST in the scene: nothing to compare with
    out = Path(heat["out"])
    assert validate_cog(out) == []
    with rasterio.open(out) as cog:
        assert cog.crs.to_epsg() == 31985 and cog.tags()["scene"] == "olinda-recife"
        values = cog.read(1)
    assert np.isfinite(values).mean() > 0.95 and np.nanstd(values) > 0  # it varies in the city

    flood = predict_raster(
        home_settings,
        get_service("flood"),
        olinda,
        version=trained_home.flood_versions[0],
        params={"rainfall_mm": 50.0},
    )
    assert flood["cells"] > 0  # the DEM makes flood apply
    layers = LayerCatalogue(home_settings.layers_dir).layers()
    predictions = [
        x for x in layers if x.role == "prediction" and x.lineage["scene"] == "olinda-recife"
    ]
    assert {x.group for x in predictions} == {"heat", "flood"}
    heat_layer = next(x for x in predictions if x.group == "heat")
    assert "evaluation" not in heat_layer.stats  # the map says "not compared" from this
    west, south, east, north = heat_layer.bounds
    assert -35.0 < west < east < -34.8 and -8.1 < south < north < -7.9  # Olinda/Recife


def test_a_what_if_runs_on_olinda(
    olinda: Path, home_settings: Settings, trained_home: TrainedHome
) -> None:
    result = run_whatif(
        home_settings,
        "uhi",
        raster_io.read_scene(olinda),
        _tree_planting(olinda),
        version=trained_home.uhi_versions[0],
    )
    (row,) = result.interventions
    assert row["area_ha"] == pytest.approx(9.0, rel=0.05)
    assert np.isfinite(row["mean_delta"])
    assert result.scene == "olinda-recife" and result.unit == "K"
