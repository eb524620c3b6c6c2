"""``terraops evaluate-real``: a registered model judged on a scene, recorded for the card.

A tiny synthetic city stripped of its truth (no land cover, no physics, a
Landsat-like ``source`` block) stands in for an imported Landsat scene: its
cell table has the same columns. The model under test is a copy of the
session's uhi version registered on a run of its own, whose artifacts live in
this test's folder — the session's template home is never written to.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from click.testing import Result
from scipy import stats
from typer.testing import CliRunner

from serving_support import TrainedHome
from terraops.adapters.raster_io import read_scene
from terraops.cli import evaluate, training
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = ["--param", "n_estimators=40", "--param", "cv_folds=2"]
PRODUCT_ID = "LC08_L1TP_TEST_20210701_20210708_02_T1"
ACQUIRED = "2021-07-01T10:12:13Z"


def cli() -> typer.Typer:
    """The commands under test on an app of their own (main.py lists them once merged)."""
    app = typer.Typer()

    @app.callback()
    def _group() -> None:
        """terraops (test)"""

    evaluate.register(app)
    training.register(app)
    return app


def invoke(settings: Settings, *args: object) -> Result:
    return CliRunner().invoke(cli(), [str(a) for a in args], obj=settings)


def said(result: Result) -> str:
    """Everything printed, with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def real_like_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scene folder shaped like an imported one: bands, DEM, LST; no truth."""
    from terraops.pipelines.scenes.generate import generate_scene

    out = tmp_path_factory.mktemp("real") / "landsat-like"
    generate_scene(out, seed=5, size=256, resolution=4.0, morphology="coastal")
    manifest = json.loads((out / "scene.json").read_text())
    for truth in ("landcover", "flood_depth"):
        (out / manifest["layers"].pop(truth)).unlink()
    for key in ("physics", "generator_version", "landcover_legend", "seed", "morphology"):
        manifest.pop(key, None)
    manifest |= {
        "name": PRODUCT_ID,
        "kind": "landsat",
        "source": {"product_id": PRODUCT_ID, "acquired": ACQUIRED, "sensor": "OLI_TIRS"},
    }
    (out / "scene.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def no_lst_scene(real_like_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nolst") / "optical-only"
    shutil.copytree(real_like_scene, out, ignore=shutil.ignore_patterns("*.parquet"))
    manifest = json.loads((out / "scene.json").read_text())
    (out / manifest["layers"].pop("lst")).unlink()
    (out / "scene.json").write_text(json.dumps(manifest | {"name": "optical-only"}))
    return out


def own_run_version(settings: Settings, tmp: Path, source: int) -> int:
    """Register uhi ``source``'s model again, on a copy of its run stored under ``tmp``."""
    from mlflow.artifacts import download_artifacts
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    original = client.get_model_version("uhi", str(source))
    run = client.get_run(original.run_id)
    experiment = client.create_experiment(
        "real-eval-test", artifact_location=(tmp / "artifacts").as_uri()
    )
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    run_id = client.create_run(experiment, tags=tags).info.run_id
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in run.data.metrics.items()],
        params=[Param(k, v) for k, v in run.data.params.items()],
    )
    local = download_artifacts(
        run_id=original.run_id, dst_path=str(tmp / "copy"), tracking_uri=settings.tracking_uri
    )
    client.log_artifacts(run_id, local)
    client.set_terminated(run_id)
    return int(client.create_model_version("uhi", original.source, run_id=run_id).version)


def table_rows(section: str) -> dict[str, list[str]]:
    """``| label | a | b | ... |`` rows of a Markdown section, by label."""
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def expected_figures(settings: Settings, scene: Path, version: int) -> dict[str, float]:
    """The headline figures recomputed here with scipy, from the scene's cell table."""
    from terraops.adapters.model_bundle import load_predictor
    from terraops.adapters.registry import ModelRegistry
    from terraops.pipelines.scenes.cell_tables import scene_cell_table

    cells = scene_cell_table(read_scene(scene), settings.cell_size_m)
    cells = cells[np.isfinite(cells["lst"])]
    predictor = load_predictor(ModelRegistry(settings).fetch_model("uhi", version))
    inputs = cells[predictor.feature_names].to_numpy(np.float64)
    predicted = predictor.predict(inputs)
    inputs[:, predictor.feature_names.index("reference_temperature")] = np.nan
    hidden = predictor.predict(inputs)
    lst, ndvi = cells["lst"].to_numpy(), cells["ndvi"].to_numpy()
    line = stats.linregress(ndvi, lst)
    return {
        "n": len(cells),
        "offset": float(predicted.mean() - lst.mean()),
        "spearman": float(stats.spearmanr(predicted, lst).statistic),
        "offset_hidden": float(hidden.mean() - lst.mean()),
        "mae_hidden": float(np.mean(np.abs(hidden - lst - (hidden.mean() - lst.mean())))),
        "line_slope": float(line.slope),
        "line_spearman": abs(float(stats.spearmanr(ndvi, lst).statistic)),
    }


def test_evaluate_real_writes_logs_and_lands_in_the_card(
    home_settings: Settings,
    trained_home: TrainedHome,
    real_like_scene: Path,
    tmp_path: Path,
) -> None:
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    version = own_run_version(home_settings, tmp_path, trained_home.uhi_versions[0])
    started = time.perf_counter()
    args = ["evaluate-real", "uhi", "--scene", real_like_scene, "--version", version, *FAST]
    result = invoke(home_settings, *args, "--json")
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - started < 120
    printed = json.loads(result.stdout)
    path = home_settings.home_dir / "evaluation" / "real" / f"uhi-v{version}-{PRODUCT_ID}.json"
    assert printed["json_path"] == str(path)
    payload = json.loads(path.read_text())
    assert payload == {k: v for k, v in printed.items() if k != "json_path"}
    assert path.with_suffix(".png").stat().st_size > 10_000

    # lineage: which scene, which model
    scene, model = payload["scene"], payload["model"]
    assert (scene["name"], scene["kind"]) == (PRODUCT_ID, "landsat")
    assert (scene["product_id"], scene["acquired"]) == (PRODUCT_ID, ACQUIRED)
    uri = home_settings.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = client.get_model_version("uhi", str(version)).run_id
    assert model == {"name": "uhi", "version": version, "run_id": run_id, "alias": None}

    # the figures, recomputed independently
    expected = expected_figures(home_settings, real_like_scene, version)
    champion, line = payload["champion"], payload["ndvi_line"]
    assert champion["n"] == scene["n_cells"] == expected["n"] > 1000
    assert champion["offset"] == pytest.approx(expected["offset"], abs=1e-6)
    assert champion["spearman"] == pytest.approx(expected["spearman"], abs=1e-9)
    hidden = payload["champion_without_reference"]
    assert hidden["offset"] == pytest.approx(expected["offset_hidden"], abs=1e-6)
    assert hidden["mae_after_offset"] == pytest.approx(expected["mae_hidden"], abs=1e-6)
    assert line["slope"] == pytest.approx(expected["line_slope"])
    assert line["spearman"] == pytest.approx(expected["line_spearman"])
    margin = payload["verdict"]["spearman_margin"]
    assert margin == pytest.approx(champion["spearman"] - line["spearman"])
    assert payload["verdict"]["beats_ndvi_line"] == (margin > 0)
    local = payload["local_spatial_cv"]
    assert (local["block_size_m"], local["buffer_m"], local["folds"]) == (500.0, 100.0, 2)
    assert local["n"] == expected["n"] and 0 < local["mae_after_offset"] <= local["mae"] + 1e-9
    assert sum(r["n"] for r in payload["strata"]["rows"]) == expected["n"]

    # logged to the version's own run, not to the session's template
    names = {Path(a.path).name for a in client.list_artifacts(run_id, "real_data")}
    assert names == {f"{PRODUCT_ID}.json", f"{PRODUCT_ID}.png"}
    logged = download_artifacts(
        run_id=run_id,
        artifact_path=f"real_data/{PRODUCT_ID}.json",
        dst_path=str(tmp_path / "dl"),
        tracking_uri=home_settings.tracking_uri,
    )
    assert json.loads(Path(logged).read_text()) == payload
    template_uri = Settings(home=trained_home.path).tracking_uri
    template = MlflowClient(tracking_uri=template_uri, registry_uri=template_uri)
    original_run = template.get_model_version("uhi", str(trained_home.uhi_versions[0])).run_id
    assert template.list_artifacts(original_run, "real_data") == []

    check_card(home_settings, tmp_path, version, payload)


def check_card(
    settings: Settings,
    tmp_path: Path,
    version: int,
    payload: dict,
) -> None:
    out = tmp_path / "cards" / "uhi.md"
    result = invoke(settings, "card", "uhi", "--version", version, "--out", out)
    assert result.exit_code == 0, result.output
    card = out.read_text()
    section = card.split("## Real-data evaluation", 1)[1].split("\n## ", 1)[0]
    assert f"### {PRODUCT_ID}" in section
    assert f"product `{PRODUCT_ID}`" in section and f"acquired {ACQUIRED}" in section
    rows = table_rows(section)
    label = f"model v{version}"
    for row, key in (
        (label, "champion"),
        (f"{label} without reference temperature", "champion_without_reference"),
        ("NDVI line (in-sample)", "ndvi_line"),
        ("local spatial CV (trained on this scene)", "local_spatial_cv"),
    ):
        scores = payload[key]
        n, offset, mae, rho = rows[row]
        assert int(n) == scores["n"], row
        assert float(offset) == pytest.approx(scores.get("offset", 0.0), rel=1e-3, abs=1e-9)
        mae_expected = scores.get("mae_after_offset", scores.get("mae"))
        assert float(mae) == pytest.approx(mae_expected, rel=1e-3), row
        assert float(rho) == pytest.approx(scores["spearman"], rel=1e-3), row
    won = payload["verdict"]["beats_ndvi_line"]
    verdict = "ranks" if won else "does not rank"
    assert f"**{label} {verdict} LST better than the NDVI line**" in section
    margin = re.search(r"Spearman margin ([-+][0-9.e-]+)", section)
    assert margin and float(margin.group(1)) == pytest.approx(
        payload["verdict"]["spearman_margin"], rel=1e-3
    )
    for stratum in payload["strata"]["rows"]:
        assert int(rows[stratum["stratum"]][0]) == stratum["n"]
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", section)
    assert links == [f"uhi-real/{PRODUCT_ID}.png"]
    assert (out.parent / links[0]).is_file()


def test_a_card_without_real_data_has_no_such_section(
    home_settings: Settings,
    trained_home: TrainedHome,
    tmp_path: Path,
) -> None:
    version = own_run_version(home_settings, tmp_path, trained_home.uhi_versions[0])
    out = tmp_path / "uhi.md"
    result = invoke(home_settings, "card", "uhi", "--version", version, "--out", out)
    assert result.exit_code == 0, result.output
    assert "Real-data evaluation" not in out.read_text()


def nothing_written(settings: Settings) -> bool:
    folder = settings.home_dir / "evaluation" / "real"
    return not folder.exists() or not any(folder.iterdir())


def test_a_scene_without_lst_is_refused_clearly(
    home_settings: Settings, no_lst_scene: Path
) -> None:
    args = ["evaluate-real", "uhi", "--scene", no_lst_scene, *FAST]
    result = invoke(home_settings, *args)
    assert result.exit_code == 2, result.output
    assert "has no 'lst' layer" in said(result) and "thermal band" in said(result)
    assert nothing_written(home_settings)


@pytest.mark.parametrize(
    ("service", "code", "message"),
    [("heat", 3, "unknown service 'heat'"), ("flood", 2, "regression")],
)
def test_unknown_and_classification_services_are_refused(
    service: str,
    code: int,
    message: str,
    home_settings: Settings,
    real_like_scene: Path,
) -> None:
    args = ["evaluate-real", service, "--scene", real_like_scene]
    result = invoke(home_settings, *args)
    assert result.exit_code == code, result.output
    assert message in said(result)
    assert nothing_written(home_settings)


def test_without_a_champion_it_asks_for_one(home_settings: Settings, real_like_scene: Path) -> None:
    result = invoke(home_settings, "evaluate-real", "uhi", "--scene", real_like_scene)
    assert result.exit_code == 3, result.output
    assert "uhi has no champion" in said(result)
    assert nothing_written(home_settings)


def test_a_missing_scene_folder_is_not_found(home_settings: Settings, tmp_path: Path) -> None:
    result = invoke(home_settings, "evaluate-real", "uhi", "--scene", tmp_path / "no")
    assert result.exit_code == 3, result.output
    assert "no scene at" in said(result)
