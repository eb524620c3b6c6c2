"""``terraops scene generate``: bad arguments fail clearly and leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from terraops.cli.main import app

runner = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def generate_args(seed: int, out: Path, *extra: str) -> list[str]:
    """``scene generate`` on a small 64 px, 4 m scene."""
    args = ["scene", "generate", "--seed", str(seed), "--out", str(out)]
    return [*args, "--size", "64", "--resolution", "4", *extra]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--morphology", "medieval"], "unknown morphology"),
        (["--size", "0"], "size must be between"),
        (["--size", "-5"], "size must be between"),
        (["--size", "16"], "size must be between"),
        (["--resolution", "0"], "resolution must be"),
        (["--resolution", "-2"], "resolution must be"),
        (["--size", "64", "--resolution", "1"], "scene too small"),
        (["--rainfall", "-1"], "rainfall must be"),
    ],
)
def test_bad_arguments_exit_non_zero_with_a_message(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    out = tmp_path / "scene"
    result = runner.invoke(app, ["scene", "generate", "--seed", "1", "--out", str(out), *extra])
    assert result.exit_code == 2
    assert message in flat(result.output)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left either


def test_unwritable_output_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = blocker / "scene"
    result = runner.invoke(app, generate_args(1, out))
    assert result.exit_code == 2
    assert "cannot create output folder" in flat(result.output)
    assert not out.exists()


def test_generate_prints_the_manifest_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "scene"
    args = generate_args(5, out, "--morphology", "coastal", "--rainfall", "75", "--json")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["morphology"] == "coastal" and manifest["rainfall_mm"] == 75.0
    assert json.loads((out / "scene.json").read_text()) == manifest
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already exists" in flat(again.output)
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]
