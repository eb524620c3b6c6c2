"""``terraops train --champion-if-none``: a fresh home gets something to serve from its first
training, through the promotion gates; later versions only ever become challengers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from terraops.adapters.registry import ModelRegistry
from terraops.cli.main import app
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = ["--param", "n_estimators=40", "--param", "cv_folds=2"]


def _train(settings: Settings, scenes: list[Path]) -> dict[str, Any]:
    args = ["train", "uhi", *(a for d in scenes for a in ("--scenes", str(d)))]
    result = CliRunner().invoke(app, [*args, *FAST, "--champion-if-none", "--json"], obj=settings)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_the_first_version_becomes_champion_through_the_gates_and_the_next_stays_challenger(
    tiny_scenes: list[Path], tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "home", user="tester")
    registry = ModelRegistry(settings)

    first = _train(settings, tiny_scenes)
    assert first["version"] == 1 and first["champion"] == 1
    assert registry.get_alias("uhi", "champion") == 1
    [promotion] = [e for e in lifecycle.history(settings, "uhi") if e.alias == "champion"]
    assert promotion.action == "promote" and promotion.to_version == 1
    assert promotion.reason == "first version that passed the gates" and not promotion.forced
    assert promotion.gates and all(gate.passed for gate in promotion.gates)

    second = _train(settings, tiny_scenes)
    assert second["version"] == 2 and second["champion"] is None
    assert registry.get_alias("uhi", "champion") == 1
    assert registry.get_alias("uhi", "challenger") == 2
