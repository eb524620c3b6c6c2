"""Shared makers of catalogue layers: raster entries, the scene's RGB imagery, GeoJSON files.

Used by every producer of map layers (raster prediction now; drift maps,
segmentation masks and imported scenes later), so a layer always carries the
same fields computed the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import shapely
from pyproj import Transformer
from rasterio.warp import transform_bounds

from terraops.adapters import raster_io, rgb_composite
from terraops.adapters.catalogue import LayerCatalogue, file_fingerprint
from terraops.domain.layers import Layer, layer_id
from terraops.domain.scene_record import Scene
from terraops.errors import InvalidInputError
from terraops.settings import Settings


def wgs84_bounds(
    crs: str, bounds: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """(west, south, east, north) in WGS 84, rounded to ~1 cm."""
    west, south, east, north = transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)
    return (round(west, 7), round(south, 7), round(east, 7), round(north, 7))


def wgs84_transformer(crs: str) -> Callable[[Any], Any]:
    """A function mapping a shapely geometry from ``crs`` to lon/lat."""
    forward = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform
    # interleaved=False: pyproj's transform takes and returns x and y arrays apart.
    return lambda geometry: shapely.transform(geometry, forward, interleaved=False)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def raster_layer(
    *,
    lid: str,
    title: str,
    group: str,
    role: str,
    path: Path,
    unit: str,
    legend: str,
    colormap: str | None,
    rescale: tuple[float, float] | None,
    lineage: Mapping[str, Any],
    stats: Mapping[str, Any],
    created_at: str | None = None,
    features_path: Path | None = None,
) -> Layer:
    """The catalogue entry of a COG already on disk (bounds and CRS read from it)."""
    crs, native_bounds = raster_io.raster_crs_and_bounds(path)
    bounds = wgs84_bounds(crs, native_bounds)
    return Layer(
        id=lid,
        title=title,
        kind="raster",
        group=group,
        role=role,
        path=str(Path(path).absolute()),
        unit=unit,
        legend=legend,
        bounds=bounds,
        crs=crs,
        fingerprint=file_fingerprint(path),
        created_at=created_at or now_iso(),
        colormap=colormap,
        rescale=rescale,
        lineage=dict(lineage),
        stats=dict(stats),
        features_path=str(Path(features_path).absolute()) if features_path else None,
    )


def _reflectance_nodata(scene: Scene) -> float:
    """The stored value that means no data in the bands (the composite's 0)."""
    nodata = scene.reflectance.nodata if scene.reflectance else None
    if nodata is None:
        raise InvalidInputError(
            f"scene {scene.name} declares no reflectance no-data value",
            hint="regenerate the scene (`terraops scene generate` / `terraops scene import`)",
        )
    return float(nodata)


def scene_imagery_layer(settings: Settings, scene: Scene) -> Layer:
    """The scene's RGB layer, made once per scene (reused while the file is there)."""
    scene_dir = str(scene.folder.resolve())
    lid = layer_id("scene", scene.name, "rgb")
    catalogue = LayerCatalogue(settings.layers_dir)
    existing = next((layer for layer in catalogue.layers() if layer.id == lid), None)
    if (
        existing is not None
        and catalogue.status(existing).available
        and existing.lineage.get("scene_dir") == scene_dir
    ):
        return existing
    out = settings.layers_dir / f"{lid}.tif"
    rgb_composite.write_rgb_composite(scene, out, _reflectance_nodata(scene))
    return raster_layer(
        lid=lid,
        title=f"Imagery (true colour) — {scene.name}",
        group="imagery",
        role="imagery",
        path=out,
        unit="reflectance (stretched)",
        legend="Red, green and blue bands, 2–98 % stretch",
        colormap=None,
        rescale=None,
        lineage={"scene": scene.name, "scene_dir": scene_dir},
        stats={"width": scene.width, "height": scene.height},
    )
