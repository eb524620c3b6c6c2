"""The real-data check of the segmenter on the solaris 0.5 m building sample.

The sample comes from the cache that set-up (``make install``) fills; without it
the tests skip and name the command that fetches it. The evaluation runs with a
tiny network and very few epochs: these tests check the protocol (split, schema,
baselines, bounds, outputs), not the accuracy the default run reaches.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from samples_support import kept_distribution
from terraops.adapters.samples import SOLARIS_SAMPLE, fetch_sample, is_intact
from terraops.errors import InvalidInputError
from terraops.pipelines.segmentation.real_sample import (
    SPLIT_COLUMN,
    evaluate_real,
    model_card_markdown,
)
from terraops.settings import Settings

TINY = {"epochs": 2, "base_width": 4, "depth": 2, "chip": 64, "chips_per_epoch": 8}


@pytest.fixture(scope="module")
def report(solaris_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings(home=tmp_path_factory.mktemp("real") / "home")
    return evaluate_real(settings, sample_dir=solaris_sample, params=TINY, threads=2)


def _metric_values(node: Any) -> list[float]:
    if isinstance(node, dict):
        return [v for k, child in node.items() if k != "rule" for v in _metric_values(child)]
    return [node] if isinstance(node, float) else []


@pytest.mark.integration
@pytest.mark.slow
def test_report_schema_split_and_bounds(report: dict[str, Any]) -> None:
    assert {"sample", "split", "params", "model", "baselines", "seconds", "outputs"} <= set(report)
    sample, split = report["sample"], report["split"]
    assert (sample["width"], sample["height"], sample["bands"]) == (900, 900, 1)
    assert sample["crs"] == "EPSG:32616" and sample["resolution_m"] == 0.5
    assert sample["footprints"] == 43
    train, test = split["train_columns"], split["test_columns"]
    assert train == [0, SPLIT_COLUMN] and test == [SPLIT_COLUMN, 900]
    assert train[1] <= test[0]  # half-open ranges: no column in both
    assert 0 < split["test_footprints_by_centroid"] < 43
    assert split["test_true_instances"] > 0 and split["test_building_pixels"] > 0
    assert report["params"]["epochs"] == TINY["epochs"]
    for result in (report["model"], *report["baselines"].values()):
        assert set(result["pixel"]) == {"background", "building"}
        assert {"iou", "f1", "precision", "recall"} <= set(result["pixel"]["building"])
        assert {"f1", "precision", "recall", "tp", "fp", "fn"} <= set(result["objects"]["building"])
        values = _metric_values({"pixel": result["pixel"], "objects": result["objects"]})
        assert values and all(0.0 <= v <= 1.0 for v in values)
    empty = report["baselines"]["all_background"]
    assert empty["pixel"]["building"]["iou"] == 0.0
    assert empty["objects"]["building"]["f1"] == 0.0
    assert empty["objects"]["building"]["fn"] == split["test_true_instances"]


@pytest.mark.integration
@pytest.mark.slow
def test_outputs_are_written_and_card_comes_from_the_json(report: dict[str, Any]) -> None:
    saved = json.loads(Path(report["outputs"]["report"]).read_text(encoding="utf-8"))
    assert saved["model"] == report["model"]
    assert Path(report["outputs"]["preview"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(Path(report["outputs"]["report"]).parent.glob(".*tmp*"))
    card = model_card_markdown(saved)
    building = saved["model"]["pixel"]["building"]
    assert f"| U-Net (adapted) | {building['iou']:.3f} |" in card


@pytest.mark.integration
@pytest.mark.slow
def test_cli_evaluate_real_json(solaris_sample: Path, tmp_path: Path) -> None:
    import typer

    from terraops.cli import segment

    app = typer.Typer()
    segment.register(app)
    args = ["segment", "evaluate-real", "--sample-dir", str(solaris_sample), "--epochs", "1"]
    args += ["--param", "base_width=4", "--param", "depth=2", "--param", "chip=64"]
    args += ["--param", "chips_per_epoch=4", "--json", "--card", str(tmp_path / "card.md")]
    result = CliRunner().invoke(app, args, env={"TERRAOPS_HOME": str(tmp_path / "home")})
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["params"]["epochs"] == 1 and payload["params"]["base_width"] == 4
    assert (tmp_path / "home" / "evaluation" / "segmentation-real" / "report.json").is_file()
    assert "## Real data" in (tmp_path / "card.md").read_text(encoding="utf-8")


@pytest.mark.integration
@pytest.mark.slow
def test_a_tampered_sample_file_is_detected_and_refetched(
    solaris_sample: Path, tmp_path: Path
) -> None:
    """The stamp's sha256 catches a changed file; fetching again (from the wheel set-up
    kept) restores the original."""
    import shutil

    copy = tmp_path / SOLARIS_SAMPLE.name
    shutil.copytree(solaris_sample, copy)
    assert is_intact(copy)
    original = (copy / "sample_fp_mask_from_geojson.tif").read_bytes()
    (copy / "sample_fp_mask_from_geojson.tif").write_bytes(
        original[:-1] + bytes([original[-1] ^ 0xFF])
    )
    assert not is_intact(copy)
    assert fetch_sample(tmp_path, SOLARIS_SAMPLE, wheel=kept_distribution(SOLARIS_SAMPLE)) == copy
    assert is_intact(copy)
    assert (copy / "sample_fp_mask_from_geojson.tif").read_bytes() == original


def test_a_tampered_wheel_is_refused(tmp_path: Path) -> None:
    """A wheel whose sha256 differs from the pinned one is never opened or unpacked."""
    fake = tmp_path / SOLARIS_SAMPLE.wheel_file
    with zipfile.ZipFile(fake, "w") as archive:
        for member in SOLARIS_SAMPLE.members:
            archive.writestr(member, b"not the real file")
    with pytest.raises(InvalidInputError, match=f"expected {SOLARIS_SAMPLE.wheel_sha256}"):
        fetch_sample(tmp_path / "samples", SOLARIS_SAMPLE, wheel=fake)
    assert not (tmp_path / "samples" / SOLARIS_SAMPLE.name).exists()
