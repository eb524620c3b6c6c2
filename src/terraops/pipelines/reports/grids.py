"""What both case studies read back from a run: layer grids, the scene's frame, places, imagery.

The case studies never recompute what a command already wrote: the maps come
from ``predict-raster``'s COGs and the Δ from the what-if's, read here; only
summaries (areas, means, shares) are computed on top of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Transformer
from rasterio import features as rio_features
from rasterio.transform import Affine
from shapely.affinity import affine_transform
from shapely.geometry.base import BaseGeometry

from terraops.adapters import raster_io
from terraops.domain import features
from terraops.domain.layers import Layer
from terraops.domain.scene_record import Scene
from terraops.pipelines.reports.plans import SceneFrame

RGB_PERCENTILES = (2.0, 98.0)


def read_grid(path: Path | str) -> np.ndarray:
    """A single-band COG as float64 (its no-data as NaN)."""
    values, info = raster_io.read_geotiff(Path(path))
    grid = np.asarray(values, np.float64).squeeze()
    if info.nodata is not None and np.isfinite(info.nodata):
        grid[grid == info.nodata] = np.nan
    return grid


def sibling(out: Path | str, suffix: str) -> Path:
    """A file predict-raster wrote next to its prediction COG (``<stem>.<suffix>``)."""
    path = Path(out)
    return path.with_name(f"{path.stem}.{suffix}")


def frame_of(scene: Scene, cell_size_m: float) -> SceneFrame:
    resolution = float(scene.resolution)
    grid = features.cell_grid(scene.shape, resolution, cell_size_m)
    return SceneFrame(scene.origin, resolution, grid, scene.crs)


def cell_transform(frame: SceneFrame) -> Affine:
    x0, y0 = frame.origin
    size = frame.grid.cell_size
    return Affine(size, 0.0, x0, 0.0, -size, y0)


def to_km(frame: SceneFrame, geometry: BaseGeometry) -> BaseGeometry:
    """A scene-CRS geometry in km east / north of the scene's bottom-left corner (figures)."""
    x0, y0 = frame.origin
    bottom = y0 - frame.grid.rows * frame.grid.cell_size
    return affine_transform(geometry, [1e-3, 0.0, 0.0, 1e-3, -x0 / 1e3, -bottom / 1e3])


def extent_km(frame: SceneFrame) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) of the cell grid in km, as the figures' axes show it."""
    size = frame.grid.cell_size
    return (0.0, frame.grid.cols * size / 1e3, 0.0, frame.grid.rows * size / 1e3)


def lon_lat(crs: str, geometry: BaseGeometry) -> list[float]:
    """[longitude, latitude] of a geometry's representative point (5 decimals, about 1 m)."""
    point = geometry.representative_point()
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(point.x, point.y)
    return [round(float(lon), 5), round(float(lat), 5)]


def cells_of(frame: SceneFrame, geometry: BaseGeometry) -> np.ndarray:
    """Cells (of the model grid) whose centre lies in ``geometry``."""
    return np.asarray(
        rio_features.rasterize(
            [(geometry, 1)],
            out_shape=(frame.grid.rows, frame.grid.cols),
            transform=cell_transform(frame),
            fill=0,
            dtype="uint8",
        ).astype(bool)
    )


def rgb_image(bands: Mapping[str, np.ndarray], frame: SceneFrame) -> np.ndarray:
    """True colour at cell resolution, stretched 2–98 %, for a figure's background."""
    stacked = np.stack([features.cell_mean(frame.grid, bands[b]) for b in ("red", "green", "blue")])
    finite = stacked[np.isfinite(stacked)]
    lo, hi = np.percentile(finite, RGB_PERCENTILES) if finite.size else (0.0, 1.0)
    scaled = (stacked - lo) / max(float(hi - lo), 1e-9)
    return np.nan_to_num(np.moveaxis(scaled, 0, -1), nan=0.0)


def layer_by_key(layers: list[Layer], key: str) -> Layer:
    """The what-if layer whose id contains ``-{key}-`` (``delta``, ``delta-p100``)."""
    for layer in layers:
        if f"-{key}-" in f"{layer.id}-" and layer.kind == "raster":
            return layer
    raise LookupError(f"no what-if layer {key!r} among {[layer.id for layer in layers]}")


def rounded(value: Any, digits: int) -> float | None:
    """A JSON number rounded as the text prints it (None stays None)."""
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


@dataclass
class Study:
    """A case study's facts (the JSON beside the text) and the arrays its figures draw."""

    facts: dict[str, Any]
    grids: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, list[Any]] = field(default_factory=dict)
    frame: SceneFrame | None = None
