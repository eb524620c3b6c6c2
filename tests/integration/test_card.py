"""Model cards: every number comes from the registered run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from terraops.adapters.registry import ModelRegistry
from terraops.cli.main import app
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCHEMES = ("random_cv", "spatial_cv", "scene_cv", "spatial_cv_core_only", "train")


def metric_rows(markdown: str) -> dict[str, list[str]]:
    """``| base | v1 | v2 | ... |`` rows of the card's metrics table."""
    section = markdown.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if (
            len(cells) == len(SCHEMES) + 1
            and re.fullmatch(r"[a-z_0-9]+", cells[0])
            and cells[0] != "metric"
        ):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize("service", ["uhi", "flood"])
def test_card_numbers_equal_the_run_metrics(
    service: str, home_settings: Settings, tmp_path: Path
) -> None:
    registry = ModelRegistry(home_settings)
    version = registry.list_versions(service)[0].version
    info = registry.get_version(service, version)
    out = tmp_path / f"{service}.md"
    args = ["card", service, "--version", str(version), "--out", str(out)]
    result = CliRunner().invoke(app, args, obj=home_settings)
    assert result.exit_code == 0, result.output
    card = out.read_text()
    rows = metric_rows(card)
    assert get_service(service).primary_metric.removesuffix("_spatial_cv") in rows
    checked = 0
    for base, cells in rows.items():
        for scheme, cell in zip(SCHEMES, cells, strict=True):
            name = f"{base}_{scheme}"
            if name in info.metrics:
                assert float(cell) == pytest.approx(info.metrics[name], rel=1e-3), name
                checked += 1
            else:
                assert cell == "–", name
    assert checked >= 15
    assert f"{info.metrics['leakage_gap']:.4g}" in card
    assert info.run_id in card and info.tags["terraops.data_fingerprint"] in card
    assert "## Limitations" in card and "synthetic" in card.lower()
    # the run's plots travel with the card, and every image link resolves
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)
    assert links, "the card shows the training run's plots"
    for link in links:
        assert (out.parent / link).is_file(), link


def test_card_without_champion_is_a_clear_not_found(
    home_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "c.md"
    result = CliRunner().invoke(app, ["card", "flood", "--out", str(out)], obj=home_settings)
    assert result.exit_code == 3
    assert "no champion" in result.output
    assert not (tmp_path / "c.md").exists()


def test_flood_run_logs_a_reliability_diagram(home_settings: Settings) -> None:
    from mlflow.tracking import MlflowClient

    info = ModelRegistry(home_settings).list_versions("flood")[0]
    client = MlflowClient(tracking_uri=home_settings.tracking_uri)
    plots = {Path(a.path).name for a in client.list_artifacts(info.run_id, "plots")}
    assert plots == {"reliability.png", "residual_map.png", "feature_importance.png"}
    for name in ("brier_spatial_cv", "roc_auc_spatial_cv", "pr_auc_random_cv", "f1_spatial_cv"):
        assert 0 <= info.metrics[name] <= 1
    assert info.metrics["leakage_gap"] == pytest.approx(
        info.metrics["brier_spatial_cv"] - info.metrics["brier_random_cv"]
    )
