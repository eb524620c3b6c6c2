"""The segmentation champion as the land-cover source of the UHI and flood features.

A small U-Net is trained through the CLI into a real MLflow store and forced
champion (it is far too small to be good: these tests check that the feature
path really uses it, records it and never reuses a table of another version —
what it does to the errors is measured by ``bench/landcover_source.py``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from segmentation_support import invoke
from serving_support import FAST_TRAINING, register_copy_of
from terraops.adapters.raster_io import read_scene
from terraops.adapters.registry import ModelRegistry
from terraops.pipelines.scenes.cell_tables import ensure_cell_table
from terraops.pipelines.scenes.landcover_source import resolve_landcover_source
from terraops.settings import Settings

pytestmark = pytest.mark.slow

LAND_COVER_COLUMNS = ("building_density", "imperviousness", "tree_cover", "water_fraction")


#: ``TINY_TRAINING`` (one epoch of 8 chips) leaves the U-Net labelling every pixel
#: "building": a constant land cover, which the UHI data-quality suite rightly refuses.
#: Five epochs of 32 chips (measured: ~55 CPU s) give one that varies.
LANDCOVER_TRAINING = [
    "--epochs", "5",
    "--param", "block=standard",  # as in segmentation_support.TINY_TRAINING
    "--param", "base_width=4",
    "--param", "depth=2",
    "--param", "chips_per_epoch=32",
    "--param", "chip=64",
    "--param", "batch_size=4",
]  # fmt: skip


@pytest.fixture(scope="module")
def champion(tiny_scenes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home whose ``segmentation`` champion is v1 (a small U-Net), and a private scene copy."""
    root = tmp_path_factory.mktemp("lc")
    settings = Settings(home=root / "home", user="tester")
    train_dir, val_dir = tiny_scenes
    trained = invoke(
        settings,
        "segment", "train", "--scenes", str(train_dir), "--val-scenes", str(val_dir),
        *LANDCOVER_TRAINING, "--device", "cpu", "--json",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    promoted = invoke(settings, "promote", "segmentation", "--challenger", "--force")
    assert promoted.exit_code == 0, promoted.output
    scene = Path(shutil.copytree(val_dir, root / "scene"))
    return {"settings": settings, "scene": scene}


def _table(path: Path | pd.DataFrame) -> pd.DataFrame:
    assert isinstance(path, Path), "the scene copy is writable: the table must be cached"
    return pd.read_parquet(path)


def test_auto_takes_the_champion_and_the_table_records_it(champion: dict[str, Any]) -> None:
    settings, scene = champion["settings"], champion["scene"]
    source = resolve_landcover_source(settings)
    assert (source.kind, source.version, source.engine) == ("segmentation", 1, "onnx")
    cached = ensure_cell_table(read_scene(scene), 20.0, landcover=source)
    assert isinstance(cached, Path) and cached.name.endswith("_lcseg-v1.parquet")
    table = _table(cached)
    lineage = table.attrs["landcover"]
    assert lineage["landcover_source"] == "segmentation"
    assert (lineage["landcover_model"], lineage["landcover_model_version"]) == ("segmentation", 1)
    # Same imagery, other land cover: the spectral indices agree, the land-cover fractions don't.
    spectral = _table(
        ensure_cell_table(
            read_scene(scene), 20.0, landcover=resolve_landcover_source(settings, "spectral")
        )
    )
    assert spectral.attrs["landcover"]["landcover_source"] == "spectral"
    np.testing.assert_array_equal(table["ndvi"].to_numpy(), spectral["ndvi"].to_numpy())
    differs = [c for c in LAND_COVER_COLUMNS if not np.allclose(table[c], spectral[c])]
    assert differs, "the segmentation source changed no land-cover feature"


def test_a_new_champion_never_reuses_the_old_versions_tables(champion: dict[str, Any]) -> None:
    settings, scene = champion["settings"], champion["scene"]
    old = ensure_cell_table(read_scene(scene), 20.0, landcover=resolve_landcover_source(settings))
    assert isinstance(old, Path)
    old_mtime = old.stat().st_mtime_ns
    version = register_copy_of(settings, "segmentation", 1)
    promoted = invoke(settings, "promote", "segmentation", "--version", str(version), "--force")
    assert promoted.exit_code == 0, promoted.output
    source = resolve_landcover_source(settings)
    assert source.version == version == 2
    new = ensure_cell_table(read_scene(scene), 20.0, landcover=source)
    assert isinstance(new, Path) and new != old and new.name.endswith("_lcseg-v2.parquet")
    assert _table(new).attrs["landcover"]["landcover_model_version"] == 2
    assert old.stat().st_mtime_ns == old_mtime  # the v1 table is left as it was


@pytest.mark.integration
def test_uhi_trains_on_land_cover_from_the_champion(champion: dict[str, Any]) -> None:
    from terraops.pipelines.training.train import train_service
    from terraops.services import get_service

    settings, scene = champion["settings"], champion["scene"]
    champion_version = ModelRegistry(settings).get_alias("segmentation", "champion")
    result = train_service(
        settings, get_service("uhi"), [scene], dict(FAST_TRAINING), progress=False
    )
    assert np.isfinite(result.metrics["mae_spatial_cv"])
    params = ModelRegistry(settings).get_version("uhi", result.version).params
    assert params["landcover_source"] == "segmentation"
    assert params["landcover_model_version"] == str(champion_version)
    assert list(scene.glob(f"cells_*_lcseg-v{champion_version}.parquet"))


def test_auto_keeps_the_rules_on_pixels_coarser_than_the_unet_resolves(
    champion: dict[str, Any], tmp_path: Path
) -> None:
    from terraops.pipelines.scenes.cell_tables import build_cell_table
    from terraops.pipelines.scenes.generate import generate_scene

    settings = champion["settings"]
    coarse = tmp_path / "coarse"
    generate_scene(coarse, seed=3, size=128, resolution=8.0, morphology="sprawl")
    auto = build_cell_table(read_scene(coarse), 40.0, landcover=resolve_landcover_source(settings))
    assert auto.attrs["landcover"]["landcover_source"] == "spectral"
    assert "coarser" in auto.attrs["landcover"]["landcover_reason"]
    forced = resolve_landcover_source(settings, "segmentation")
    table = build_cell_table(read_scene(coarse), 40.0, landcover=forced)
    assert table.attrs["landcover"]["landcover_source"] == "segmentation"
