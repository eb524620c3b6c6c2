"""Scene feature building on a Dask cluster: one task per missing cell table.

Training, ``evalset build`` and predict-raster read every scene's cell table
(:mod:`terraops.pipelines.scenes.cell_tables`), and building one is the slow part
(classifying land cover, the flood model on the DEM, the cell aggregates). When
``TERRAOPS_DASK_SCHEDULER`` names a cluster (``tcp://host:port`` or ``local``),
:func:`prepare_cell_tables` builds the *missing* tables first, as parallel
tasks on the workers; the caller then reads the cached parquet files exactly as
without a cluster, so the tables — and everything made from them — are the
same. Without the setting it does nothing and tables are built in-process
when first read.

Assumption: the workers see the scene folders at the same paths as the
driver (one machine, or shared storage). A worker writes its table into the
scene folder through a temporary file and a rename
(:func:`terraops.adapters.tables.write_parquet_atomic`), so a worker
killed mid-write never leaves a half-written parquet under the cache name;
the scheduler then runs the task again on another worker. The driver checks
that every table it waited for is really there before going on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from terraops.adapters import dask_runner
from terraops.domain.scene_record import Scene
from terraops.errors import InvalidInputError
from terraops.pipelines.scenes.cell_tables import cached_cell_table, ensure_cell_table
from terraops.pipelines.scenes.landcover_source import LandcoverSource
from terraops.settings import Settings

log = logging.getLogger(__name__)

CELL_TABLE_TASK = "cell-table"
"""Prefix of the cell-table task keys (what the scheduler's logs show)."""


def build_on_worker(
    cell_size_m: float, landcover: LandcoverSource | None, scene: Scene
) -> str | None:
    """Build (or find) one scene's cached table on a worker: its path, None if not cacheable."""
    cached = ensure_cell_table(scene, cell_size_m, landcover=landcover)
    return str(cached) if isinstance(cached, Path) else None


def build_cell_tables(
    runner: dask_runner.DaskRunner,
    scenes: Sequence[Scene],
    cell_size_m: float,
    landcover: LandcoverSource | None = None,
) -> list[Scene]:
    """Build the missing tables of ``scenes`` on the cluster; the scenes it built.

    Scenes already cached are not sent. All tasks are submitted at once (one
    per scene, the scheduler spreads them over the workers); a scene's error
    (not a scene, bad bands) is raised here with its own message.
    """
    missing = missing_cell_tables(scenes, cell_size_m, landcover)
    if not missing:
        return []
    # LandcoverSource pickles without a loaded model (__getstate__): each worker loads it.
    fn = partial(build_on_worker, cell_size_m, landcover)
    # Workers see the folders at the driver's paths: send each scene with its absolute folder.
    sent = [replace(scene, folder=scene.folder.resolve()) for scene in missing]
    started = time.perf_counter()
    results = list(runner.map_batches(fn, sent, max_in_flight=len(sent), name=CELL_TABLE_TASK))
    for scene, result in zip(missing, results, strict=True):
        if result is None:
            log.warning(
                "%s is read-only: its cell table is built in-process when read", scene.folder
            )
        elif not Path(result).is_file():
            raise InvalidInputError(
                f"a Dask worker built the cell table of {scene.folder} at {result}, "
                "but this process cannot see that file",
                hint="the workers must share the scene folders with this machine "
                "(same paths); or drop TERRAOPS_DASK_SCHEDULER to build in-process",
            )
    log.info(
        "built %d cell tables on %s in %.1f s",
        len(missing),
        runner.address,
        time.perf_counter() - started,
    )
    return list(missing)


def missing_cell_tables(
    scenes: Sequence[Scene], cell_size_m: float, landcover: LandcoverSource | None = None
) -> list[Scene]:
    """The distinct scenes of ``scenes`` whose table is not cached yet, in order."""
    suffix = landcover.cache_suffix if landcover is not None else ""
    seen: set[Path] = set()
    missing: list[Scene] = []
    for scene in scenes:
        resolved = scene.folder.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        if cached_cell_table(scene, cell_size_m, suffix=suffix) is None:
            missing.append(scene)
    return missing


def prepare_cell_tables(
    settings: Settings,
    scenes: Sequence[Scene],
    cell_size_m: float | None = None,
    landcover: LandcoverSource | None = None,
) -> dict[str, Any] | None:
    """Build the missing cell tables on ``settings.dask_scheduler``'s cluster, if one is set.

    Returns what ran where (``{"scheduler", "workers", "built"}``), or None
    when no cluster is configured or nothing was missing (then nothing connects).
    """
    cell_size = float(cell_size_m or settings.cell_size_m)
    address = settings.dask_scheduler
    if address is None or not dask_runner.wants_cluster(address):
        return None
    if not missing_cell_tables(scenes, cell_size, landcover):
        return None
    with dask_runner.connect(address) as runner:
        built = build_cell_tables(runner, scenes, cell_size, landcover)
        return {**runner.info(), "built": len(built)}


__all__ = [
    "CELL_TABLE_TASK",
    "build_cell_tables",
    "build_on_worker",
    "missing_cell_tables",
    "prepare_cell_tables",
]
