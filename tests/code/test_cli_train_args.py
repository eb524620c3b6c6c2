"""`terraops train SERVICE --scenes A B C` (the documented form) and the repeated form agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from terraops.cli.main import app


@pytest.mark.parametrize(
    "args",
    [
        ["--scenes", "a", "b", "c"],
        ["--scenes", "a", "--scenes", "b", "--scenes", "c"],
        ["--scenes", "a", "--scenes", "b", "c"],
    ],
)
def test_scene_folders_are_collected_in_order(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_train(settings: Any, definition: Any, scenes: list[Path], *a: Any, **k: Any) -> Any:
        seen["scenes"] = scenes
        raise SystemExit(0)

    monkeypatch.setattr("terraops.pipelines.training.train.train_service", fake_train)
    result = CliRunner().invoke(app, ["train", "uhi", *args, "--json"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in seen["scenes"]] == ["a", "b", "c"]
