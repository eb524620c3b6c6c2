"""The cell table built window by window equals the table built on whole arrays, exactly."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terraops.adapters import raster_io
from terraops.domain import hydrology
from terraops.domain.scene_record import Scene
from terraops.pipelines.scenes import windowed_cells
from terraops.pipelines.scenes.cell_tables import build_cell_table, scene_cell_table
from terraops.pipelines.scenes.generate import generate_scene


@pytest.fixture(scope="module")
def coastal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """A small coastal city (sea, river, DEM, LST, true land cover), 10 m pixels."""
    folder = tmp_path_factory.mktemp("windowed") / "coast"
    generate_scene(folder, seed=5, size=72, resolution=10.0, morphology="coastal")
    yield raster_io.read_scene(folder)


def _assert_same(got: pd.DataFrame, whole: pd.DataFrame) -> None:
    assert list(got.columns) == list(whole.columns)
    assert got.attrs == whole.attrs
    assert len(got) == len(whole) > 0
    for name in whole.columns:
        a, b = whole[name].to_numpy(), got[name].to_numpy()
        same = np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        assert same, f"{name} differs"


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    window_pixels=st.integers(72, 72 * 80),
    cell_size=st.sampled_from([10.0, 20.0, 30.0, 50.0]),
)
def test_windows_equal_the_whole_scene(
    coastal: Scene, tmp_path: Path, window_pixels: int, cell_size: float
) -> None:
    whole = build_cell_table(coastal, cell_size)
    out = tmp_path / f"cells-{window_pixels}-{cell_size:g}.parquet"
    original = windowed_cells.WINDOW_PIXELS
    windowed_cells.WINDOW_PIXELS = window_pixels  # one row of cells … the whole scene
    try:
        windowed_cells.write_cell_table(coastal, cell_size, out)
    finally:
        windowed_cells.WINDOW_PIXELS = original
    _assert_same(pd.read_parquet(out), whole)


def test_scene_with_holes_and_no_truth(coastal: Scene, tmp_path: Path) -> None:
    """No-data pixels (dropped cells) and a scene without true land cover or flood layers."""
    folder = tmp_path / "holes"
    shutil.copytree(coastal.folder, folder, ignore=shutil.ignore_patterns("*.npz", "*.parquet"))
    red, info = raster_io.read_geotiff(folder / "red.tif")
    manifest = raster_io.read_scene(folder).to_manifest()
    nodata = manifest["reflectance"]["nodata"]
    red[5:9, 10:30] = nodata
    red[40, :] = nodata
    raster_io.write_geotiff(
        folder / "red.tif", red, epsg=info.epsg, transform=info.transform, nodata=nodata
    )
    for name in ("landcover", "flood_depth"):
        manifest["layers"].pop(name, None)
    raster_io.write_manifest(folder, Scene.from_manifest(manifest, folder))
    scene = raster_io.read_scene(folder)
    whole = build_cell_table(scene, 20.0)
    assert "flood_depth_p50" not in whole
    original = windowed_cells.WINDOW_PIXELS
    windowed_cells.WINDOW_PIXELS = 72 * 6
    try:
        windowed_cells.write_cell_table(scene, 20.0, tmp_path / "cells.parquet")
    finally:
        windowed_cells.WINDOW_PIXELS = original
    _assert_same(pd.read_parquet(tmp_path / "cells.parquet"), whole)


def test_hydrology_is_computed_once_per_scene_and_cached(
    coastal: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "scene"
    shutil.copytree(coastal.folder, folder, ignore=shutil.ignore_patterns("*.npz", "*.parquet"))
    scene = raster_io.read_scene(folder)
    calls: list[tuple[int, int]] = []
    analyse = hydrology.analyse_terrain

    def counting(dem: np.ndarray, *args: object, **kwargs: object) -> object:
        calls.append(dem.shape)
        return analyse(dem, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hydrology, "analyse_terrain", counting)
    first = scene_cell_table(scene, 20.0)
    assert len(calls) == 2  # on the observed land cover (features) and the true one (targets)
    assert len(list(folder.glob("hydrology_*.npz"))) == 2
    again = scene_cell_table(scene, 30.0)  # another cell size: same hydrology, from the cache
    assert len(calls) == 2
    assert len(again) and len(first)
    _assert_same(again, build_cell_table(scene, 30.0))
