"""The land-cover source of the feature path when no segmentation model is registered.

With an empty registry ``auto`` means the spectral rules (and says why), and
``TERRAOPS_LANDCOVER_SOURCE=segmentation`` is refused with a message that says
what is missing and how to fix it — before anything is built, cached or
logged. The cases *with* a registered champion train a tiny U-Net and live in
``tests/integration/test_landcover_segmentation.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from terraops.adapters.raster_io import read_scene
from terraops.errors import ModelNotFoundError
from terraops.pipelines.scenes.cell_tables import _cache_path, ensure_cell_table
from terraops.pipelines.scenes.landcover_source import (
    LandcoverSource,
    landcover_of_model,
    resolve_landcover_source,
)
from terraops.settings import Settings


def test_auto_without_a_champion_is_the_spectral_rules(settings: Settings) -> None:
    source = resolve_landcover_source(settings)
    assert settings.landcover_source == "auto"
    assert source.kind == "spectral" and source.version is None
    assert "no segmentation champion" in source.reason
    assert source.cache_suffix == ""


def test_forcing_segmentation_without_a_champion_is_refused_clearly(
    tmp_path: Path, tiny_scenes: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from terraops.cli.main import app

    monkeypatch.setenv("TERRAOPS_LANDCOVER_SOURCE", "segmentation")
    monkeypatch.setenv("TERRAOPS_HOME", str(tmp_path / "home"))
    settings = Settings()
    with pytest.raises(ModelNotFoundError) as refused:
        resolve_landcover_source(settings)
    message = str(refused.value)
    assert "TERRAOPS_LANDCOVER_SOURCE=segmentation" in message and "no champion" in message
    assert "terraops promote segmentation" in message  # how to fix it
    scene = shutil.copytree(tiny_scenes[0], tmp_path / "scene")
    before = sorted(p.name for p in scene.iterdir())
    args = ["train", "uhi", "--scenes", str(scene), "--no-progress"]
    result = CliRunner().invoke(app, args, obj=settings)
    assert result.exit_code == 3, result.output  # not found, as for any missing model
    assert "no champion" in result.output and "TERRAOPS_LANDCOVER_SOURCE" in result.output
    assert sorted(p.name for p in scene.iterdir()) == before  # no cell table cached


def test_the_cache_key_names_the_source_and_its_model_version(
    settings: Settings, tiny_scenes: list[Path]
) -> None:
    scene = read_scene(tiny_scenes[0])
    spectral = resolve_landcover_source(settings, "spectral")
    v1, v2 = (
        LandcoverSource("segmentation", settings=settings, version=v, engine="onnx") for v in (1, 2)
    )
    names = {_cache_path(scene, 20.0, s.cache_suffix).name for s in (spectral, v1, v2)}
    assert len(names) == 3
    # The spectral table keeps the name every earlier release cached it under.
    assert ensure_cell_table(scene, 20.0, landcover=spectral) == _cache_path(scene, 20.0)


def test_a_model_keeps_the_land_cover_it_was_trained_with(tmp_path: Path) -> None:
    """Predicting, monitoring and scoring rebuild the features the model learnt from:
    the source recorded in its run's params (MLflow keeps them as strings), not whatever
    segmentation champion is registered now."""
    settings = Settings(home=tmp_path)
    trained = LandcoverSource(
        "segmentation", settings=settings, version=3, engine="onnx", forced=True
    )
    params = {k: str(v) for k, v in trained.lineage.items()}
    again = landcover_of_model(settings, params)
    assert (again.kind, again.version, again.forced) == ("segmentation", 3, True)
    assert again.cache_suffix == trained.cache_suffix == "_lcseg-v3"

    spectral = {
        k: str(v) for k, v in resolve_landcover_source(settings, "spectral").lineage.items()
    }
    assert landcover_of_model(settings, spectral).kind == "spectral"
    assert landcover_of_model(settings, {}).kind == "spectral"  # runs from before sources
