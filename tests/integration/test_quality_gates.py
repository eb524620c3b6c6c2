"""Great Expectations suites (CLI) and promotion gates on a shared evaluation set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monitoring_support import make_scene, register_shifted_copy
from typer.testing import CliRunner

from serving_support import TrainedHome
from terraops.adapters.raster_io import read_scene
from terraops.adapters.registry import ModelRegistry
from terraops.cli.main import app as cli
from terraops.errors import PromotionRefusedError
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def run_cli(home_settings: Settings) -> Any:
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, [str(a) for a in args], obj=home_settings)


def test_quality_check_passes_good_data_and_names_what_fails(
    run_cli: Any, home_settings: Settings, tiny_scenes: list[Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import rasterio

    from terraops.pipelines.monitoring.drift_report import scene_examples
    from terraops.services import get_service

    monkeypatch.chdir(tmp_path)  # Great Expectations must leave no project folder behind
    good = run_cli("quality", "check", "uhi", tiny_scenes[0], "--json")
    assert good.exit_code == 0, good.output
    results = json.loads(good.stdout)
    assert [r["suite"] for r in results] == ["scene.inputs", "uhi.examples"]
    assert all(r["passed"] for r in results)

    table = scene_examples(get_service("flood"), read_scene(tiny_scenes[0]), 20.0)
    table.loc[:20, "hand"] = -5.0  # below its physical minimum
    table.loc[:, "slope"] = 3.0  # a fill value: constant over the whole table
    table.loc[:3, "flooded"] = 0.5  # not a 0/1 label
    bad_file = tmp_path / "bad.parquet"
    table.to_parquet(bad_file)
    bad = run_cli("quality", "check", "flood", bad_file)
    assert bad.exit_code == 1
    for name in (
        "expect_column_values_to_be_between(hand",
        "expect_column_stdev_to_be_between(slope",
        "expect_column_values_to_be_in_set(flooded",
    ):
        assert name in bad.output
    reports = (home_settings.reports_dir / "quality").glob("flood-*.md")
    report = max(reports, key=lambda p: p.stat().st_mtime_ns).read_text()  # the newest
    assert "FAILED (3 expectation(s))" in report

    broken = tmp_path / "broken-scene"
    shutil.copytree(tiny_scenes[0], broken)
    with rasterio.open(broken / "red.tif", "r+") as dst:
        data = dst.read(1)
        data[:40, :] = 0  # 16 % of the band lost to no-data
        dst.write(data, 1)
    scene = run_cli("quality", "check", "uhi", broken)
    assert scene.exit_code == 1
    assert "expect_column_values_to_be_between(nodata_share" in scene.output
    assert not (tmp_path / "gx").exists() and not (tmp_path / "great_expectations").exists()


def test_gates_compare_on_the_shared_evaluation_set_and_are_recorded(
    run_cli: Any, home_settings: Settings, trained_home: TrainedHome, tmp_path: Path
) -> None:
    held_out = make_scene(tmp_path, "held-out", 7, "dense")
    built = run_cli("evalset", "build", "uhi", "--scenes", held_out, "--json")
    assert built.exit_code == 0, built.output
    info = json.loads(built.stdout)
    assert info["version"] == 1 and len(info["sha256"]) == 64 and info["n_rows"] > 1000

    v1 = trained_home.uhi_versions[0]
    registry = ModelRegistry(home_settings)
    first = lifecycle.promote(home_settings, registry, "uhi", v1)
    gates = {g.gate: g for g in first.entry.gates}
    assert gates["metric_target"].passed and "<= 1" in gates["metric_target"].detail
    assert "vs_champion" not in gates  # nothing to compare the first champion with

    # Same run metrics, 3 K hotter everywhere: only the shared set can tell.
    hot = register_shifted_copy(home_settings, "uhi", v1, tmp_path, shift=3.0)
    with pytest.raises(PromotionRefusedError) as refused:
        lifecycle.promote(home_settings, registry, "uhi", hot)
    (reason,) = refused.value.reasons
    assert f"worse than champion v{v1}'s" in reason and "on evaluation set uhi v1" in reason

    forced = run_cli("promote", "uhi", "--version", hot, "--force", "--reason", "drill")
    assert forced.exit_code == 0, forced.output
    history = json.loads(run_cli("models", "history", "uhi", "--json").stdout)
    latest = history[0]
    assert latest["forced"] and latest["to_version"] == hot
    failed = [g for g in latest["gates"] if not g["passed"]]
    assert [g["gate"] for g in failed] == ["vs_champion"]
    rolled = run_cli("rollback", "uhi")
    assert rolled.exit_code == 0
    back = json.loads(run_cli("models", "history", "uhi", "--json").stdout)[0]
    assert back["gates"][0]["gate"] == "loadable" and back["gates"][0]["passed"]

    # a tampered evaluation set is refused, never silently used
    parquet = next((home_settings.home_dir / "evaluation" / "uhi").glob("v1-*.parquet"))
    import pandas as pd

    frame = pd.read_parquet(parquet)
    frame.loc[0, "lst"] = np.float64(99.0)
    frame.to_parquet(parquet)
    tampered = run_cli("promote", "uhi", "--version", hot)
    assert tampered.exit_code == 2
    assert "does not match its fingerprint" in " ".join(tampered.output.split())


def test_a_wholly_absent_optional_feature_passes_but_a_half_filled_one_fails(
    home_settings: Settings, tiny_scenes: list[Path]
) -> None:
    """A scene without a DEM has no elevation at all (fine); a gap in a column is not."""
    from terraops.pipelines.monitoring.drift_report import scene_examples
    from terraops.pipelines.monitoring.quality import check_examples
    from terraops.services import get_service

    uhi = get_service("uhi")
    table = scene_examples(uhi, read_scene(tiny_scenes[0]), 20.0)
    table["elevation"] = np.nan
    assert check_examples(home_settings, uhi, table, source="no DEM", save=False).passed
    table.loc[: len(table) // 2, "elevation"] = 40.0
    half = check_examples(home_settings, uhi, table, source="half", save=False)
    assert "expect_column_values_to_not_be_null(elevation)" in half.failed
    table["ndvi"] = np.nan  # a required feature is never allowed to be absent
    assert not check_examples(home_settings, uhi, table, source="no NDVI", save=False).passed
