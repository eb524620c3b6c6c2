"""Drift reports and drift maps on tiny synthetic cities (Evidently, real COGs).

Scenario figures are printed (``-s``) and kept by ``report`` when
``TERRAOPS_TEST_REPORT_DIR`` is set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from monitoring_support import make_scene
from typer.testing import CliRunner

from serving_support import TrainedHome, report
from terraops.adapters.raster_io import read_scene
from terraops.cli.main import app as cli
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scenes(tiny_scenes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("drift-scenes")
    return {
        "dense1": tiny_scenes[0],  # training city 1 (dense, seed 1)
        "dense3": make_scene(root, "dense3", 3, "dense"),  # training city 2
        "dense7": make_scene(root, "dense7", 7, "dense"),  # a new city, same morphology
        # A heat-wave afternoon: surfaces ~10 K above the hottest training day (LST, not air).
        "dense7_heatwave": make_scene(root, "dense7-hot", 7, "dense", reference_c=50.0),
        "sprawl2": tiny_scenes[1],  # another morphology
    }


@pytest.fixture(scope="module")
def reference(scenes: dict[str, Path]) -> pd.DataFrame:
    """The training reference of a model trained on two dense cities."""
    from terraops.pipelines.monitoring.drift_report import reference_sample, scene_examples

    uhi = get_service("uhi")
    examples = pd.concat(
        [scene_examples(uhi, read_scene(scenes[k]), 20.0) for k in ("dense1", "dense3")],
        ignore_index=True,
    )
    return reference_sample(uhi, examples)


def _report(settings: Settings, scene: Path, reference: pd.DataFrame, out: Path) -> dict[str, Any]:
    from terraops.pipelines.monitoring.drift_report import drift_report, scene_examples

    uhi = get_service("uhi")
    current = scene_examples(uhi, read_scene(scene), settings.cell_size_m)
    model = {"name": "uhi", "version": 0, "run_id": "test"}
    return drift_report(
        settings, uhi, current, out, source=str(scene), reference=reference, model=model
    )


@pytest.mark.parametrize(
    ("scenario", "drifted"),
    [("sprawl2", True), ("dense7_heatwave", True), ("dense7", False)],
    ids=["other-morphology", "heat-wave-day", "new-city-same-morphology"],
)
def test_drift_scenarios(
    scenario: str,
    drifted: bool,
    scenes: dict[str, Path],
    reference: pd.DataFrame,
    settings: Settings,
    tmp_path: Path,
) -> None:
    summary = _report(settings, scenes[scenario], reference, tmp_path / "report.html")
    figures = {
        "dataset_drift": summary["dataset_drift"],
        "share": summary["share_of_drifted_features"],
        "drifted": summary["drifted_features"],
        "scores": {k: round(v["score"], 3) for k, v in summary["features"].items()},
    }
    report(f"drift-{scenario}", figures)
    print(scenario, json.dumps(figures))
    assert summary["dataset_drift"] is drifted, summary["reasons"]
    assert (tmp_path / "report.html").stat().st_size > 10_000
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["drifted_features"] == summary["drifted_features"]
    # Evidently computed the very same per-feature numbers the summary reports.
    for name, score in summary["evidently_scores"].items():
        assert score == pytest.approx(summary["features"][name]["score"], rel=1e-6, abs=1e-9)
    if scenario == "sprawl2":
        assert summary["share_of_drifted_features"] >= 0.5
        assert {"ndvi", "building_density", "imperviousness"} <= set(summary["drifted_features"])
    elif scenario == "dense7_heatwave":
        assert "reference_temperature" in summary["drifted_features"]
        assert summary["share_of_drifted_features"] < 0.5  # the land looks the same ...
        assert any("critical feature reference_temperature" in r for r in summary["reasons"])
    else:
        assert summary["share_of_drifted_features"] <= 0.25  # mostly not flagged
        assert "reference_temperature" not in summary["drifted_features"]


@pytest.fixture
def champion_home(home_settings: Settings, trained_home: TrainedHome) -> Settings:
    """The trained home (uhi on a dense + a sprawl city) with v1 champion."""
    from terraops.adapters.registry import ModelRegistry
    from terraops.pipelines.lifecycle import aliases as lifecycle

    lifecycle.promote(
        home_settings, ModelRegistry(home_settings), "uhi", trained_home.uhi_versions[0]
    )
    return home_settings


def test_drift_cli_against_the_champions_logged_reference(
    champion_home: Settings, scenes: dict[str, Path], tmp_path: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "r" / "drift.html"
    result = runner.invoke(
        cli,
        [
            "monitor",
            "drift",
            "uhi",
            "--scene",
            str(scenes["dense7_heatwave"]),
            "--out",
            str(out),
            "--json",
        ],
        obj=champion_home,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["reference"]["model"]["version"] == 1
    assert summary["reference"]["n_rows"] > 1000  # the sample logged with the training run
    assert summary["dataset_drift"] and out.is_file() and out.with_suffix(".json").is_file()
    strict = runner.invoke(
        cli,
        ["monitor", "drift", "uhi", "--scene", str(scenes["dense7_heatwave"]), "--out", str(out),
         "--fail-on-drift"],
        obj=champion_home,
    )  # fmt: skip
    assert strict.exit_code == 1
    both = runner.invoke(
        cli,
        ["monitor", "drift", "uhi", "--scene", "x", "--from-log", "--out", str(out)],
        obj=champion_home,
    )
    assert both.exit_code == 2 and "exactly one" in both.output


def test_drift_from_the_prediction_log(
    champion_home: Settings, scenes: dict[str, Path], tmp_path: Path
) -> None:
    """Logged requests of a heat-wave day drift; old records fall outside --since."""
    from terraops.pipelines.monitoring.drift_report import scene_examples

    uhi = get_service("uhi")
    rows = scene_examples(uhi, read_scene(scenes["dense7_heatwave"]), 20.0).head(400)
    folder = champion_home.predictions_dir / "uhi"
    folder.mkdir(parents=True)
    with (folder / "2030-01-01-1-0.jsonl").open("w") as fh:
        for i, row in enumerate(rows.itertuples(index=False)):
            record = {
                "request_id": f"r{i}", "index": 0, "ts": "2030-01-01T12:00:00.000000+00:00",
                "service": "uhi", "version": 1, "prediction": 35.0, "latency_ms": 0.3,
                "status": 200, "features": {f: getattr(row, f) for f in uhi.feature_names},
            }  # fmt: skip
            fh.write(json.dumps(record) + "\n")
    runner = CliRunner()
    out = tmp_path / "log.html"
    args = ["monitor", "drift", "uhi", "--from-log", "--out", str(out), "--json"]
    result = runner.invoke(cli, args, obj=champion_home)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["current"]["n_rows"] == 400 and summary["dataset_drift"]
    late = runner.invoke(cli, [*args, "--since", "2031-01-01"], obj=champion_home)
    assert late.exit_code == 2 and "too few rows" in late.output


def test_drift_map_is_a_valid_cog_in_the_catalogue(
    champion_home: Settings, scenes: dict[str, Path], tmp_path: Path
) -> None:
    import numpy as np
    import rasterio

    from terraops.adapters.catalogue import LayerCatalogue
    from terraops.adapters.cog import validate_cog

    runner = CliRunner()
    maps = {}
    for key in ("dense1", "sprawl2", "dense7_heatwave"):
        out = tmp_path / f"{key}.tif"
        result = runner.invoke(
            cli,
            [
                "monitor",
                "drift-map",
                "uhi",
                "--scene",
                str(scenes[key]),
                "--out",
                str(out),
                "--json",
            ],
            obj=champion_home,
        )
        assert result.exit_code == 0, result.output
        maps[key] = json.loads(result.stdout)
        assert validate_cog(out) == []
        with rasterio.open(out) as src:
            tags = src.tags()
            values = src.read(1)
        assert tags["model_name"] == "uhi" and tags["model_version"] == "1"
        assert tags["scene"] == maps[key]["scene"] and "drift_tests" in tags
        assert np.nanmax(values) <= 1.0 and np.nanmin(values) >= 0.0
    report(
        "drift-map",
        {
            k: {"mean": v["mean_score"], "drifted_tiles": v["share_of_tiles_drifted"]}
            for k, v in maps.items()
        },
    )
    # training cities (the home's model saw dense1 and sprawl2) are inside the training
    # range almost everywhere; on a heat-wave day every cell is outside it
    assert maps["dense1"]["mean_score"] < 0.1 and maps["sprawl2"]["mean_score"] < 0.1
    assert maps["dense7_heatwave"]["share_of_tiles_drifted"] == 1.0
    layer = LayerCatalogue(champion_home.layers_dir).get(maps["sprawl2"]["layer"])
    assert layer.group == "drift" and layer.colormap == "reds" and layer.rescale == (0.0, 1.0)
    assert layer.model_version == 1 and layer.unit == "share of cells outside the training range"
