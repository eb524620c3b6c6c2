"""``terraops train uhi --scenes REAL...``: a city's own observations, and adaptation.

Two dates of one small synthetic city, stripped of their truth and marked as
imported Landsat scenes (the same shape as ``terraops scene import`` writes),
stand in for a real city: no download. Each test works on a private copy of the
session's trained home, under an experiment of its own so that its runs'
artifacts stay in that copy.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from serving_support import TrainedHome
from terraops.cli import evaluate, training
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = ["--param", "n_estimators=30", "--param", "cv_folds=2"]


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _group() -> None:
        """terraops (test)"""

    training.register(app)
    evaluate.register(app)
    return app


def invoke(settings: Settings, *args: object) -> Result:
    return CliRunner().invoke(cli(), [str(a) for a in args], obj=settings)


def as_imported(out: Path, name: str) -> Path:
    """Drop the generator's truth and record: the folder now reads as an imported scene."""
    manifest = json.loads((out / "scene.json").read_text())
    for truth in ("landcover", "flood_depth"):
        (out / manifest["layers"].pop(truth)).unlink()
    for key in ("physics", "generator_version", "landcover_legend", "seed", "morphology"):
        manifest.pop(key, None)
    manifest |= {"name": name, "kind": "landsat", "source": {"product_id": name}}
    (out / "scene.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def city_dates(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One coastal city on two days (different reference temperatures)."""
    from terraops.pipelines.scenes.generate import generate_scene

    root = tmp_path_factory.mktemp("city")
    dates = []
    for day, reference in (("20200601", 24.0), ("20200815", 31.0)):
        out = root / day
        generate_scene(
            out,
            seed=5,
            size=192,
            resolution=5.0,
            morphology="coastal",
            reference_temperature_c=reference,
        )
        dates.append(as_imported(out, f"LC08_TEST_{day}"))
    return dates


@pytest.fixture
def city_settings(home_settings: Settings, trained_home: TrainedHome) -> Settings:
    """The private home, with runs logged to an experiment whose artifacts live in it,
    and the session's first uhi version as its champion (the synthetic model)."""
    from terraops.adapters.registry import ModelRegistry
    from terraops.pipelines.lifecycle.aliases import promote

    settings = home_settings.model_copy(update={"experiment_prefix": "city"})
    promote(settings, ModelRegistry(settings), "uhi", trained_home.uhi_versions[0], force=True)
    return settings


def run_tags(settings: Settings, run_id: str) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    return dict(client.get_run(run_id).data.tags)


def booster(settings: Settings, version: int) -> lgb.Booster:
    from terraops.adapters.model_bundle import load_predictor
    from terraops.adapters.registry import ModelRegistry

    return load_predictor(ModelRegistry(settings).fetch_model("uhi", version)).booster


def test_observed_scenes_train_a_city_model_with_held_out_blocks(
    city_settings: Settings, city_dates: list[Path]
) -> None:
    result = invoke(city_settings, "train", "uhi", "--scenes", *city_dates, *FAST, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["kind"] == "from-scratch"
    assert printed["mae_spatial_cv"] == printed["metrics"]["mae_spatial_cv"] > 0
    assert -1 <= printed["spearman_spatial_cv"] <= 1
    assert printed["spearman_spatial_cv"] == printed["metrics"]["spearman_spatial_cv"]
    rows = {row["model"]: row for row in printed["held_out_comparison"]}
    assert set(rows) == {"from-scratch", "registered", "ndvi_line"}
    assert len({row["n"] for row in rows.values()}) == 1  # the same held-out cells
    assert all(row["land_n"] <= row["n"] for row in rows.values())

    tags = run_tags(city_settings, printed["run_id"])
    assert tags["terraops.training_kind"] == "from-scratch"
    assert tags["terraops.city_holdout"].startswith("uhi held-out blocks of LC08_TEST_20200601")
    from mlflow.tracking import MlflowClient

    params = MlflowClient(tracking_uri=city_settings.tracking_uri).get_run(printed["run_id"])
    block = float(params.data.params["cv_block_size_m"])
    extent = 192 * 5.0
    assert block < 500 and (extent / block) ** 2 >= 10  # blocks sized to the scene


def test_init_from_adapts_the_registered_model(
    city_settings: Settings, city_dates: list[Path], trained_home: TrainedHome, tmp_path: Path
) -> None:
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    base = trained_home.uhi_versions[0]
    args = ["train", "uhi", "--scenes", *city_dates, *FAST, "--init-from", base, "--json"]
    result = invoke(city_settings, *args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["kind"] == "adapted"

    # the adapted booster is the registered one, rescaled (the run records how), plus new trees
    run = MlflowClient(tracking_uri=city_settings.tracking_uri).get_run(printed["run_id"])
    share, slope, offset, added = (
        float(run.data.params[f"adapt_{k}"]) for k in ("share", "slope", "offset", "new_trees")
    )
    old, new = booster(city_settings, base), booster(city_settings, printed["version"])
    assert new.num_trees() == old.num_trees() + int(added)
    X = np.random.default_rng(0).uniform(0, 1, (50, old.num_feature()))
    head = new.predict(X, num_iteration=old.current_iteration())
    expected = share * slope * old.predict(X) + offset
    np.testing.assert_allclose(head, expected, rtol=1e-4, atol=1e-4)

    # the comparison on the held-out blocks, as an MLflow table and metrics
    tags = run_tags(city_settings, printed["run_id"])
    assert (tags["terraops.training_kind"], tags["terraops.init_from"]) == ("adapted", str(base))
    table = json.loads(
        Path(
            download_artifacts(
                run_id=printed["run_id"],
                artifact_path="city_comparison.json",
                dst_path=str(tmp_path),
                tracking_uri=city_settings.tracking_uri,
            )
        ).read_text()
    )
    models = [row[table["columns"].index("model")] for row in table["data"]]
    assert models == ["adapted", "from-scratch", "registered", "ndvi_line"]
    metrics = printed["metrics"]
    assert {"holdout_spearman_adapted", "holdout_mae_from_scratch"} <= set(metrics)
    assert {"holdout_mae_registered", "holdout_land_spearman_ndvi_line"} <= set(metrics)


def test_promotion_gates_score_both_on_the_city_held_out_blocks(
    city_settings: Settings, city_dates: list[Path], trained_home: TrainedHome
) -> None:
    from terraops.adapters.registry import ModelRegistry
    from terraops.pipelines.lifecycle.aliases import promote

    base = trained_home.uhi_versions[0]
    args = ["train", "uhi", "--scenes", *city_dates, *FAST, "--init-from", "champion", "--json"]
    result = invoke(city_settings, *args)
    assert result.exit_code == 0, result.output
    version = json.loads(result.stdout)["version"]
    outcome = promote(city_settings, ModelRegistry(city_settings), "uhi", version, force=True)
    vs = next(g for g in outcome.decision.gates if g.gate == "vs_champion")
    assert "on evaluation set uhi held-out blocks of LC08_TEST_20200601" in vs.detail
    assert f"champion v{base}" in vs.detail


def test_init_from_refuses_synthetic_scenes_and_bad_names(
    city_settings: Settings, tiny_scenes: list[Path]
) -> None:
    result = invoke(city_settings, "train", "uhi", "--scenes", tiny_scenes[0], "--init-from", "1")
    assert result.exit_code != 0
    assert "these scenes are all synthetic" in " ".join(result.output.split())
    result = invoke(city_settings, "train", "uhi", "--scenes", tiny_scenes[0], "--init-from", "x")
    assert result.exit_code != 0
    assert "neither 'champion' nor a version number" in " ".join(result.output.split())


def test_the_card_shows_the_city_rows_of_an_adapted_model(
    city_settings: Settings, city_dates: list[Path], trained_home: TrainedHome, tmp_path: Path
) -> None:
    base = trained_home.uhi_versions[0]
    args = ["train", "uhi", "--scenes", *city_dates, *FAST, "--init-from", base, "--json"]
    trained = invoke(city_settings, *args)
    assert trained.exit_code == 0, trained.output
    version = json.loads(trained.stdout)["version"]
    args = ["evaluate-real", "uhi", "--scene", city_dates[0], "--version", version, *FAST]
    result = invoke(city_settings, *args, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["city_rows"]
    assert rows["base_version"] == base  # the synthetic model it was adapted from
    for where in ("land", "all"):
        assert set(rows[where]) == {"synthetic", "adapted", "from_scratch", "ndvi_line"}
        assert all(-1 <= r["spearman"] <= 1 for r in rows[where].values())
    assert rows["land"]["adapted"]["n"] < rows["all"]["adapted"]["n"]  # the sea is masked
    assert not rows["land"]["synthetic"]["spatial_cv"] and rows["all"]["adapted"]["spatial_cv"]

    card = tmp_path / "uhi.md"
    made = invoke(city_settings, "card", "uhi", "--version", version, "--out", card)
    assert made.exit_code == 0, made.output
    text = card.read_text()
    for label in (
        f"| registered synthetic model v{base} (as is) |",
        f"| v{base} adapted to this city (spatial CV) |",
        "| trained from scratch on this city (spatial CV) |",
        "| NDVI line (spatial CV) |",
    ):
        assert label in text


def test_the_real_liverpool_crop_adapts_and_is_compared(
    city_settings: Settings,
    trained_home: TrainedHome,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The real Landsat 8 Level-2 crop (skipped when set-up has not fetched it): a 4 km
    square of its land side, imported as it ships, adapted and compared on held-out blocks."""
    from samples_support import cached_sample
    from terraops.adapters.samples import LIVERPOOL_SAMPLE
    from terraops.pipelines.scenes.importing import import_landsat

    product = cached_sample(LIVERPOOL_SAMPLE, tmp_path_factory.mktemp("liverpool"))
    scene = tmp_path_factory.mktemp("scene") / "liverpool"
    import_landsat(product, scene, bbox=(495990, 5924000, 499980, 5928000), bbox_crs="product")
    base = trained_home.uhi_versions[0]
    args = ["train", "uhi", "--scenes", scene, *FAST, "--init-from", base, "--json"]
    result = invoke(city_settings, *args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["kind"] == "adapted"
    rows = {row["model"]: row for row in printed["held_out_comparison"]}
    assert set(rows) == {"adapted", "from-scratch", "registered", "ndvi_line"}
    assert rows["registered"]["version"] == base
    assert all(-1 <= row["spearman"] <= 1 for row in rows.values())
    assert 0 < rows["adapted"]["n"] < 0.4 * 133 * 133  # a share of the blocks, not the scene
