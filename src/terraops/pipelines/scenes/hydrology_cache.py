"""A scene's hydrology, computed once and cached in its folder.

The terrain analysis is the one global step of the cell features: a pixel's
upstream area and drainage depend on the whole DEM. It runs on the hydrology
grid (at most 256² cells, :mod:`terraops.domain.hydrology_grid`), so what is
kept of it is a few MB whatever the scene's size
(:class:`terraops.domain.hydrology.CatchmentModel`); the windowed cell table
(:mod:`terraops.pipelines.scenes.windowed_cells`) reads pixel layers from it
window by window. The cache file is keyed by the scene's generator version,
:data:`HYDROLOGY_VERSION` and which land cover it was built on (the observed
one, per land-cover source, or a synthetic scene's true one), so every cell
size, every rebuild and every process reuses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from terraops.adapters import tables
from terraops.domain import features
from terraops.domain.hydrology import CatchmentModel, RiverInflow, TerrainAnalysis
from terraops.domain.scene_record import Scene

log = logging.getLogger(__name__)

HYDROLOGY_VERSION = "1"
"""Bumped whenever the same DEM and land cover would give another catchment model."""


def river_inflow(scene: Scene) -> RiverInflow | None:
    """The river entering the scene from outside, when the scene states one.

    It is hydrology a city knows (the upstream catchment's area and land cover,
    from a regional DEM and land-cover map), not something the imagery shows.
    """
    info = scene.river_inflow()
    return RiverInflow(**info) if info else None


def terrain_from(flood: Any) -> features.TerrainLayers:
    """The DEM-derived feature layers of a flood model built on the observed land cover."""
    return features.TerrainLayers(
        dem=flood.fine_dem,
        hand=flood.hand,
        drainage=flood.drainage,
        upstream_km2=flood.upstream_km2,
        drainage_upstream_km2=flood.drainage_upstream_km2,
        drainage_curve_number=flood.drainage_curve_number,
        depression_depth=flood.fill_depth,
    )


def cache_path(scene: Scene, which: str) -> Path:
    """The cache file of the catchment model built on land cover ``which``."""
    name = f"hydrology_g{scene.cache_version}_h{HYDROLOGY_VERSION}_{which}.npz"
    return scene.folder / name


def to_arrays(model: CatchmentModel) -> dict[str, np.ndarray]:
    """The model as named arrays (what the cache stores)."""
    out = {
        f"terrain.{f.name}": np.asarray(getattr(model.terrain, f.name))
        for f in fields(TerrainAnalysis)
    }
    for f in fields(CatchmentModel):
        if f.name != "terrain":
            out[f.name] = np.asarray(getattr(model, f.name))
    return out


def from_arrays(arrays: dict[str, np.ndarray]) -> CatchmentModel:
    """The model back from :func:`to_arrays`."""
    grids: dict[str, Any] = {f.name: arrays[f"terrain.{f.name}"] for f in fields(TerrainAnalysis)}
    grids["cell_size"] = float(arrays["terrain.cell_size"])  # the one scalar among the grids
    terrain = TerrainAnalysis(**grids)
    return CatchmentModel(
        terrain=terrain,
        class_curve_numbers=arrays["class_curve_numbers"],
        class_upstream_km2=arrays["class_upstream_km2"],
        factor=int(arrays["factor"]),
        scene_shape=(int(arrays["scene_shape"][0]), int(arrays["scene_shape"][1])),
        drain_elevation=arrays["drain_elevation"],
        depression_label=arrays["depression_label"],
        depression_capacity_m3=arrays["depression_capacity_m3"],
    )


def catchment(scene: Scene, which: str, build: Callable[[], CatchmentModel]) -> CatchmentModel:
    """The cached catchment model of ``scene`` on land cover ``which``, else ``build()`` cached.

    A read-only scene folder is simply not cached (as the cell table).
    """
    path = cache_path(scene, which)
    if path.is_file():
        try:
            model = from_arrays(tables.read_arrays(path))
            if model.scene_shape == (scene.height, scene.width):
                return model
        except (OSError, KeyError, ValueError) as exc:
            log.warning("ignoring unreadable hydrology cache %s: %s", path, exc)
    model = build()
    try:
        tables.write_arrays_atomic(to_arrays(model), path)
    except OSError as exc:
        log.warning("could not cache the hydrology at %s: %s", path, exc)
    return model
