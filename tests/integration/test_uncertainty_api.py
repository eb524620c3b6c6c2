"""``?interval=`` and ``?explain=`` on the prediction API, against a model trained here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving_support import FAST_TRAINING, TrainedHome
from terraops.adapters.model_bundle import load_predictor
from terraops.adapters.registry import ModelRegistry
from terraops.api.app import create_app
from terraops.pipelines.lifecycle.aliases import promote
from terraops.pipelines.maps.raster_predict import predict_raster
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = pytest.mark.integration

FULL = {
    "ndvi": 0.3,
    "building_density": 0.4,
    "water_distance": 400.0,
    "ndbi": 0.05,
    "albedo": 0.15,
    "tree_cover": 0.1,
    "imperviousness": 0.6,
    "water_fraction": 0.0,
    "elevation": 20.0,
    "imperviousness_500m": 0.5,
    "tree_cover_200m": 0.1,
    "reference_temperature": 30.0,
}


def _promote_both(settings: Settings, trained_home: TrainedHome) -> None:
    registry = ModelRegistry(settings)
    promote(settings, registry, "uhi", trained_home.uhi_versions[0], reason="t")
    promote(settings, registry, "flood", trained_home.flood_versions[0], reason="t")


def test_training_stores_a_calibration_with_the_model(
    home_settings: Settings, trained_home: TrainedHome
) -> None:
    registry = ModelRegistry(home_settings)
    predictor = load_predictor(registry.fetch_model("uhi", trained_home.uhi_versions[0]))
    assert predictor.has_uncertainty
    report = predictor.uncertainty.report if predictor.uncertainty else {}
    assert report["held_out_unit"] == "city" and report["variant"] in report["variants"]
    assert report["members"] == 2 == predictor.member_predict([list(FULL.values())]).shape[0]
    assert FAST_TRAINING["cv_folds"] == 2


def test_point_and_batch_predictions_carry_interval_and_explanation(
    home_settings: Settings, trained_home: TrainedHome
) -> None:
    _promote_both(home_settings, trained_home)
    with TestClient(create_app(home_settings)) as client:
        assert client.get("/readyz").status_code == 200
        plain = client.post("/v1/uhi/predict", json=FULL).json()
        assert set(plain) == {"prediction", "unit", "model"}

        both = client.post("/v1/uhi/predict?interval=0.9&explain=true", json=FULL).json()
        assert both["prediction"] == pytest.approx(plain["prediction"])
        interval = both["interval"]
        assert interval["level"] == 0.9 and isinstance(both["in_applicability_domain"], bool)
        if interval["lower"] is not None:  # claimed: inside the area, a calibrated class
            assert both["in_applicability_domain"]
            assert interval["lower"] < both["prediction"] < interval["upper"]
        else:  # outside the area, or a land-cover class no variant could calibrate
            assert interval["upper"] is None
        registry = ModelRegistry(home_settings)
        served = load_predictor(registry.fetch_model("uhi", trained_home.uhi_versions[0]))
        row = np.array([[FULL[name] for name in served.feature_names]])
        lower = served.interval_with_domain(row, 0.9)[0][0]  # NaN: not claimed
        assert (interval["lower"] is None) == bool(np.isnan(lower))
        total = both["baseline"] + sum(both["contributions"].values())
        assert total == pytest.approx(both["prediction"], abs=1e-6)
        assert set(both["contributions"]) == set(FULL)

        rows = [FULL, {"ndvi": 0.6, "building_density": 0.1, "water_distance": 50.0}]
        batch = client.post("/v1/uhi/predict/batch?interval=0.8", json={"instances": rows})
        body = batch.json()
        assert len(body["interval"]["lower"]) == 2 == len(body["in_applicability_domain"])
        assert "contributions" not in body

        for bad in ("interval=1.5", "interval=0", "interval=abc", "explain=maybe"):
            response = client.post(f"/v1/uhi/predict?{bad}", json=FULL)
            assert response.status_code == 422, (bad, response.text)


def test_a_model_without_calibration_answers_409_never_a_made_up_band(
    home_settings: Settings, trained_home: TrainedHome
) -> None:
    _promote_both(home_settings, trained_home)
    with TestClient(create_app(home_settings)) as client:
        assert client.get("/readyz").status_code == 200
        holder = client.app.state.holders["uhi"]  # type: ignore[attr-defined]
        holder.current.predictor.uncertainty = None  # as a version trained before calibration
        response = client.post("/v1/uhi/predict?interval=0.9", json=FULL)
        assert response.status_code == 409
        assert "no calibrated intervals" in response.json()["message"]
        assert client.post("/v1/uhi/predict?explain=true", json=FULL).status_code == 200
        flood = {f.name: f.example for f in get_service("flood").features if f.required}
        assert client.post("/v1/flood/predict?interval=0.9", json=flood).status_code == 409


def test_predict_raster_interval_writes_bounds_and_applicability(
    home_settings: Settings, trained_home: TrainedHome, tiny_scenes: list[Path]
) -> None:
    import rasterio

    _promote_both(home_settings, trained_home)
    result = predict_raster(home_settings, get_service("uhi"), tiny_scenes[0], interval=0.9)
    paths = {
        Path(layer["path"]).stem.rsplit(".", 1)[-1]: layer["path"] for layer in result["layers"]
    }
    grids = {}
    for key in ("lower", "upper", "applicability"):
        with rasterio.open(paths[key]) as dataset:
            grids[key] = dataset.read(1)
    with rasterio.open(result["out"]) as dataset:
        prediction = dataset.read(1)
    threshold = result["interval"]["dissimilarity_threshold"]
    claimed = np.isfinite(grids["lower"])
    assert claimed.any()
    assert (grids["lower"][claimed] <= prediction[claimed] + 1e-3).all()
    assert (grids["upper"][claimed] >= prediction[claimed] - 1e-3).all()
    outside = grids["applicability"] > threshold * (1 + 1e-4)
    assert not claimed[outside].any(), "no interval is claimed outside the applicability area"
