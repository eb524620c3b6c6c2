"""``TERRAOPS_DASK_SCHEDULER``: cell tables and predict-raster on real Dask workers.

A real ``dask scheduler`` and two ``dask worker`` processes (each under its
nanny) run on loopback. With the setting pointing at them:

- three scenes' cell tables are built as tasks on the workers — the scheduler's
  task stream shows one ``cell-table`` task per scene, on both workers, and the
  driver's own ``build_cell_table`` is made to fail, so nothing was built
  in-process — and the parquet tables equal the in-process ones exactly;
- ``terraops predict-raster`` (the CLI, in its own process, only the setting
  added) builds the scene's table on a worker and scores its three cell blocks
  there; the prediction and derived COGs and the cells parquet hold
  exactly the in-process values (same model, same rows, one thread: LightGBM
  gives the same doubles wherever it runs);
- a worker process SIGKILLed while it builds a table: the scheduler runs that
  task again on a live worker, the job completes, the tables equal the
  in-process ones, and no scene folder holds anything but the complete cache
  file under a ``*.parquet`` name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
from distributed import get_task_stream

from dask_support import DaskCluster, dask_cluster
from serving_support import TrainedHome, report, settings_env
from terraops.adapters.raster_io import read_scene
from terraops.adapters.registry import ModelRegistry
from terraops.pipelines.lifecycle.aliases import promote
from terraops.pipelines.maps.raster_predict import predict_raster
from terraops.pipelines.scenes import cell_tables
from terraops.pipelines.scenes.distributed import CELL_TABLE_TASK, prepare_cell_tables
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEEDS = (11, 12, 13)
SIZE = 192
"""Scene side (pixels of 4 m): a table takes about a second to build, long enough to kill."""
RASTER_CELL_M = 4.0
"""predict-raster's cell size here: one cell per pixel, 192² = 36 864 cells, i.e. three
blocks of 16 384 rows (``CELL_TABLE_ROW_GROUP``), so the block order matters."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    with dask_cluster(tmp_path_factory.mktemp("dask-logs")) as running:
        yield running


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small cities with no cell table yet (copied before each use)."""
    from terraops.pipelines.scenes.generate import generate_scene

    root = tmp_path_factory.mktemp("dask-scenes")
    scenes = []
    for seed in SEEDS:
        out = root / f"city{seed}"
        generate_scene(out, seed=seed, size=SIZE, resolution=4.0, morphology="dense")
        scenes.append(out)
    return scenes


def fresh_copies(pristine: list[Path], folder: Path) -> list[Path]:
    """Copies of the scenes without any cached table."""
    copies = []
    for scene in pristine:
        target = folder / scene.name
        shutil.copytree(scene, target, ignore=shutil.ignore_patterns("*.parquet*"))
        copies.append(target)
    return copies


@pytest.fixture(scope="module")
def single(pristine: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The in-process tables every cluster run is compared with, and how long they took."""
    scenes = fresh_copies(pristine, tmp_path_factory.mktemp("single"))
    started = time.perf_counter()
    tables = [cell_tables.scene_cell_table(read_scene(scene)) for scene in scenes]
    return {"tables": tables, "seconds": time.perf_counter() - started}


def refuse_to_build(*args: Any, **kwargs: Any) -> None:
    """Stands in for ``build_cell_table`` in the driver: a table built here fails the test."""
    raise AssertionError(f"build_cell_table ran in the driver process: {args}")


@pytest.fixture
def no_driver_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cell_tables, "build_cell_table", refuse_to_build)


def on_cluster(settings: Settings, cluster: DaskCluster) -> Settings:
    return settings.model_copy(update={"dask_scheduler": cluster.address})


def assert_tables_equal(scenes: list[Path], expected: list[pd.DataFrame]) -> None:
    for scene, table in zip(scenes, expected, strict=True):
        pd.testing.assert_frame_equal(
            cell_tables.scene_cell_table(read_scene(scene)), table, check_exact=True
        )
        assert [p.name for p in scene.glob("*.parquet")] == [
            cell_tables.cached_cell_table(read_scene(scene)).name  # type: ignore[union-attr]
        ], "only the complete cache file carries a .parquet name"


def tasks_named(stream: Any, prefix: str) -> list[dict[str, Any]]:
    return [t for t in stream.data if str(t["key"]).startswith(prefix)]


def test_cell_tables_are_built_on_the_workers_and_equal_in_process(
    cluster: DaskCluster,
    pristine: list[Path],
    single: dict[str, Any],
    tmp_path: Path,
    settings: Settings,
    no_driver_builds: None,
) -> None:
    scenes = fresh_copies(pristine, tmp_path)
    with cluster.client() as client, get_task_stream(client=client) as stream:
        started = time.perf_counter()
        ran = prepare_cell_tables(on_cluster(settings, cluster), [read_scene(s) for s in scenes])
        seconds = time.perf_counter() - started
    assert ran == {"scheduler": cluster.address, "workers": 2, "built": 3}
    tasks = tasks_named(stream, CELL_TABLE_TASK)
    assert len(tasks) == 3
    assert {t["worker"] for t in tasks} == set(cluster.worker_pids())
    assert_tables_equal(scenes, single["tables"])
    # Everything cached now: nothing to send, no connection.
    assert (
        prepare_cell_tables(on_cluster(settings, cluster), [read_scene(s) for s in scenes]) is None
    )
    report(
        f"dask_cell_tables_3x{SIZE}",
        {"in_process_s": round(single["seconds"], 2), "cluster2_s": round(seconds, 2)},
    )


def read_band(path: str | Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_predict_raster_on_the_workers_gives_the_in_process_rasters(
    cluster: DaskCluster,
    pristine: list[Path],
    home_settings: Settings,
    trained_home: TrainedHome,
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(home_settings)
    promote(home_settings, registry, "uhi", trained_home.uhi_versions[0], reason="test")
    settings = home_settings.model_copy(update={"cell_size_m": RASTER_CELL_M})
    uhi = get_service("uhi")
    local = fresh_copies(pristine[:1], tmp_path / "local")[0]
    alone = predict_raster(settings, uhi, local, out=tmp_path / "alone" / "uhi.tif")
    assert "dask" not in alone

    # The same command, only the setting added: the CLI in its own process.
    remote = fresh_copies(pristine[:1], tmp_path / "remote")[0]
    env = settings_env(
        settings, TERRAOPS_DASK_SCHEDULER=cluster.address, TERRAOPS_CELL_SIZE_M=str(RASTER_CELL_M)
    )
    command = [sys.executable, "-m", "terraops.cli.main", "predict-raster", "uhi", "--json"]
    command += ["--scene", str(remote), "--out", str(tmp_path / "spread" / "uhi.tif")]
    with cluster.client() as client, get_task_stream(client=client) as stream:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    spread = json.loads(done.stdout)
    assert spread["dask"] == {"scheduler": cluster.address, "workers": 2}
    assert len(tasks_named(stream, CELL_TABLE_TASK)) == 1
    blocks = tasks_named(stream, "predict-cells")
    assert spread["cells"] == SIZE * SIZE and len(blocks) == 3

    assert spread["cells"] == alone["cells"] and spread["evaluation"] == alone["evaluation"]
    pairs = zip(alone["layers"], spread["layers"], strict=True)
    rasters = [(a["path"], b["path"]) for a, b in pairs if a["path"].endswith(".tif")]
    rasters = [(a, b) for a, b in rasters if a != b]  # the scene's imagery layer is shared
    assert len(rasters) >= 2  # the prediction and the derived heat-island intensity
    for a, b in rasters:
        assert np.array_equal(read_band(a), read_band(b), equal_nan=True), (a, b)
    cells = Path(alone["out"]).with_name("uhi.cells.parquet")
    pd.testing.assert_frame_equal(
        pd.read_parquet(cells),
        pd.read_parquet(Path(spread["out"]).with_name("uhi.cells.parquet")),
        check_exact=True,
    )


def test_a_worker_killed_mid_build_is_replaced_and_the_tables_are_whole(
    cluster: DaskCluster,
    pristine: list[Path],
    single: dict[str, Any],
    tmp_path: Path,
    settings: Settings,
    no_driver_builds: None,
) -> None:
    scenes = fresh_copies(pristine, tmp_path)
    pids = cluster.worker_pids()
    with cluster.client() as client, ThreadPoolExecutor(1) as pool:
        job = pool.submit(
            prepare_cell_tables, on_cluster(settings, cluster), [read_scene(s) for s in scenes]
        )
        victim, key = _first_worker_building(client, job)
        os.kill(pids[victim], signal.SIGKILL)
        ran = job.result(timeout=120)
        story = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.story(key))
        client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker
    assert ran is not None and ran["built"] == 3
    # Transitions are (key, start, finish, ...): the task was handed to a worker twice.
    runs = [t for t in story if t[0] == key and t[2] == "processing"]
    assert len(runs) >= 2, f"{key} was not run again after the kill: {story}"
    assert_tables_equal(scenes, single["tables"])


def _first_worker_building(client: Any, job: Any) -> tuple[str, str]:
    """(worker address, task key) of the first cell-table task seen running."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not job.done():
        for worker, keys in client.processing().items():
            for key in keys:
                if str(key).startswith(CELL_TABLE_TASK):
                    return worker, str(key)
        time.sleep(0.02)
    raise AssertionError(f"no cell-table task seen running (job done: {job.done()})")
