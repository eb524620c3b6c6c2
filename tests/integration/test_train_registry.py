"""Training end to end on a real MLflow SQLite store: CLI → run → registry → predictor."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from terraops.adapters.model_bundle import load_predictor
from terraops.adapters.registry import ModelRegistry
from terraops.cli.main import app
from terraops.errors import ModelNotFoundError, RegistryUnavailableError
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = ["--param", "n_estimators=40", "--param", "cv_folds=3"]
LEGACY = {"ndvi": 0.5, "building_density": 0.7, "water_distance": 1000}


def run_cli(settings: Settings, args: list[str]) -> Any:
    return CliRunner().invoke(app, args, obj=settings)


@pytest.fixture(scope="module")
def cli_trained(
    tiny_scenes: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, dict[str, Any], Path, list[Path]]:
    """``terraops train uhi --json`` run from an empty working directory."""
    cwd = tmp_path_factory.mktemp("cwd")
    settings = Settings(home=tmp_path_factory.mktemp("train") / "home")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        scenes = [a for d in tiny_scenes for a in ("--scenes", str(d))]
        result = run_cli(settings, ["train", "uhi", *scenes, *FAST, "--json"])
    assert result.exit_code == 0, result.output
    return settings, json.loads(result.stdout), cwd, tiny_scenes


def test_train_registers_a_challenger_and_logs_everything(cli_trained: tuple) -> None:
    settings, payload, cwd, _ = cli_trained
    assert payload["service"] == "uhi" and payload["version"] == 1
    assert payload["data_quality"] == "passed"
    registry = ModelRegistry(settings)
    assert registry.get_alias("uhi", "challenger") == 1
    assert registry.get_alias("uhi", "champion") is None
    info = registry.get_version("uhi", 1)
    assert info.run_id == payload["run_id"] and "challenger" in info.aliases
    for name in (
        "mae_random_cv",
        "mae_spatial_cv",
        "mae_scene_cv",
        "rmse_spatial_cv",
        "r2_spatial_cv",
        "mae_spatial_cv_core_only",
        "mae_train",
        "leakage_gap",
    ):
        assert info.metrics[name] == pytest.approx(payload["metrics"][name]), name
    gap = info.metrics["mae_spatial_cv"] - info.metrics["mae_random_cv"]
    assert info.metrics["leakage_gap"] == pytest.approx(gap)
    assert info.tags["terraops.service"] == "uhi"
    assert info.tags["terraops.data_quality"] == "passed"
    assert len(info.tags["terraops.data_fingerprint"]) == 64
    names = [json.loads((d / "scene.json").read_text())["name"] for d in cli_trained[3]]
    assert info.tags["terraops.scenes"] == ",".join(names)
    assert info.params["n_estimators"] == "40" and info.params["cv_folds"] == "3"
    # nothing written to the working directory; artifacts under the home
    assert list(cwd.iterdir()) == []
    assert (settings.artifact_root / "terraops-uhi").is_dir()


def test_run_artifacts(cli_trained: tuple) -> None:
    from mlflow.tracking import MlflowClient

    settings, payload, _, _ = cli_trained
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    names = {a.path for a in client.list_artifacts(payload["run_id"])}
    assert {"feature_schema.json", "data_quality.json", "data_fingerprint.json", "plots"} <= names
    plots = {Path(a.path).name for a in client.list_artifacts(payload["run_id"], "plots")}
    assert plots == {"predicted_vs_observed.png", "residual_map.png", "feature_importance.png"}
    schema = json.loads(
        Path(client.download_artifacts(payload["run_id"], "feature_schema.json")).read_text()
    )
    required = [f["name"] for f in schema["features"] if f["required"]]
    assert required == ["ndvi", "building_density", "water_distance"]


def test_fetched_model_predicts_like_mlflow_pyfunc(cli_trained: tuple) -> None:
    import mlflow.pyfunc

    settings, _, _, _ = cli_trained
    registry = ModelRegistry(settings)
    path = registry.fetch_model("uhi", 1)
    assert path == settings.model_cache_dir / "uhi" / "1" and (path / "MLmodel").is_file()
    assert registry.fetch_model("uhi", 1) == path  # cached
    predictor = load_predictor(path)
    assert predictor.service == "uhi" and predictor.task == "regression"
    row = np.array([[LEGACY.get(n, np.nan) for n in predictor.feature_names]])
    ours = predictor.predict(row)
    # MLflow's pyfunc refuses int64 -> double and does not add omitted optional
    # columns, so it gets every feature as a float, NaN where not given
    frame = pd.DataFrame(row, columns=predictor.feature_names)
    theirs = mlflow.pyfunc.load_model(str(path)).predict(frame)
    assert ours.shape == (1,) and 10 < ours[0] < 60  # °C
    assert ours[0] == pytest.approx(float(np.asarray(theirs).ravel()[0]))
    # a cached model is served even when the registry is unreachable
    offline = Settings(home=settings.home, mlflow_tracking_uri="http://127.0.0.1:9")
    assert ModelRegistry(offline, timeout_s=1).fetch_model("uhi", 1) == path


def test_missing_versions_and_models(cli_trained: tuple) -> None:
    registry = ModelRegistry(cli_trained[0])
    assert registry.list_versions("flood") == []
    assert [v.version for v in registry.list_versions("uhi")] == [1]
    with pytest.raises(ModelNotFoundError):
        registry.get_version("uhi", 99)


def test_unreachable_registry_fails_fast(tmp_path: Path) -> None:
    from serving_support import free_port

    settings = Settings(home=tmp_path / "h", mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")
    registry = ModelRegistry(settings, timeout_s=1.0)
    for call in (
        registry.ping,
        lambda: registry.list_versions("uhi"),
        lambda: registry.fetch_model("uhi", 1),
    ):
        started = time.perf_counter()
        with pytest.raises(RegistryUnavailableError):
            call()
        assert time.perf_counter() - started < 5
    assert not (settings.model_cache_dir / "uhi" / "1").exists()


def test_unknown_param_exits_2(tiny_scenes: list[Path], settings: Settings) -> None:
    args = ["train", "uhi", "--scenes", str(tiny_scenes[0]), "--param", "trees=3"]
    result = run_cli(settings, args)
    assert result.exit_code == 2
    assert "unknown parameter 'trees'" in result.output
    assert not settings.home_dir.joinpath("mlflow.db").exists()


def test_failing_data_is_refused_before_training(
    tiny_scenes: list[Path], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training refuses data that fails the Great Expectations suite: no run, no version,
    a readable report naming the failed expectation."""
    from terraops.pipelines.monitoring.quality import DataQualityError
    from terraops.pipelines.training import train
    from terraops.services import get_service

    real = train.build_example_table

    def corrupted(*args: Any, **kwargs: Any) -> pd.DataFrame:
        examples = real(*args, **kwargs)
        examples.loc[:9, "building_density"] = 1.7  # outside [0, 1]
        return examples

    monkeypatch.setattr(train, "build_example_table", corrupted)
    params = {"n_estimators": 20, "cv_folds": 2}
    with pytest.raises(DataQualityError) as refused:
        train.train_service(settings, get_service("uhi"), tiny_scenes[:1], params, progress=False)
    assert any(
        "expect_column_values_to_be_between(building_density" in r for r in refused.value.reasons
    )
    assert ModelRegistry(settings).list_versions("uhi") == []
    reports = list((settings.reports_dir / "quality").glob("uhi-*.md"))
    assert reports and "**FAIL**" in reports[0].read_text()
