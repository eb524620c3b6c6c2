"""A full-size scene (1024² px) generates and reads back (no timing asserts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from terraops.adapters.raster_io import read_scene
from terraops.pipelines.scenes.cell_tables import scene_cell_table
from terraops.pipelines.scenes.generate import generate_scene


@pytest.mark.slow
def test_full_size_scene(tmp_path: Path) -> None:
    manifest = generate_scene(tmp_path / "big", seed=11, size=1024, morphology="coastal")
    assert (manifest["width"], manifest["height"]) == (1024, 1024)
    table = scene_cell_table(read_scene(tmp_path / "big"))
    assert len(table) == (1024 * 2 // 20) ** 2
    assert table["water_fraction"].max() == 1.0  # the sea
