"""Shared makers of catalogue layers: raster entries, the scene's RGB imagery, GeoJSON files.

Used by every producer of map layers (raster prediction now; drift maps,
segmentation masks and imported scenes later), so a layer always carries the
same fields computed the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from terraops.adapters import cog, raster_io
from terraops.adapters.catalogue import LayerCatalogue, file_fingerprint
from terraops.domain.layers import Layer, layer_id
from terraops.settings import Settings

RGB_STRETCH_PERCENTILES = (2.0, 98.0)
_STATS_SIDE = 1024
"""Side of the decimated read that gives the imagery stretch (memory flat in scene size)."""


def wgs84_bounds(
    crs: str, bounds: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """(west, south, east, north) in WGS 84, rounded to ~1 cm."""
    west, south, east, north = transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)
    return (round(west, 7), round(south, 7), round(east, 7), round(north, 7))


def wgs84_transformer(crs: str) -> Callable[[Any], Any]:
    """A function mapping a shapely geometry from ``crs`` to lon/lat."""
    from pyproj import Transformer
    from shapely.ops import transform

    forward = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform
    return lambda geometry: transform(forward, geometry)


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(payload, separators=(",", ":")) + "\n", encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


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
    with rasterio.open(path) as src:
        crs = src.crs.to_string()
        bounds = wgs84_bounds(crs, tuple(src.bounds))
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


def _stretch(scene_dir: Path, layers: Mapping[str, str], nodata: float) -> tuple[float, float]:
    """Common 2–98 % stretch of the RGB bands, from a decimated read."""
    samples = []
    for band in ("red", "green", "blue"):
        with rasterio.open(scene_dir / layers[band]) as src:
            side = min(_STATS_SIDE, src.width), min(_STATS_SIDE, src.height)
            data = src.read(1, out_shape=(side[1], side[0]), resampling=Resampling.nearest)
            samples.append(data[data != nodata])
    values = np.concatenate(samples).astype(np.float64)
    lo, hi = np.percentile(values, RGB_STRETCH_PERCENTILES) if values.size else (0.0, 1.0)
    return float(lo), float(max(hi, lo + 1))


def write_rgb_composite(scene_dir: Path, out: Path) -> Path:
    """The scene's true-colour composite as a 3-band uint8 COG (0 = no data).

    Read and stretched one block row at a time, so memory stays flat as the
    scene grows; the stretch is common to the three bands (colours keep their
    balance).
    """
    manifest = raster_io.read_manifest(scene_dir)
    layers = manifest["layers"]
    nodata = float(manifest["reflectance"]["nodata"])
    lo, hi = _stretch(scene_dir, layers, nodata)
    with rasterio.open(scene_dir / layers["red"]) as ref:
        profile = {
            "driver": "GTiff",
            "width": ref.width,
            "height": ref.height,
            "count": 3,
            "dtype": "uint8",
            "crs": ref.crs,
            "transform": ref.transform,
            "nodata": 0,
            "tiled": True,
            "blockxsize": cog.cog_block_size(ref.width, ref.height),
            "blockysize": cog.cog_block_size(ref.width, ref.height),
            "photometric": "RGB",
        }
        height, width = ref.height, ref.width
    sources = [rasterio.open(scene_dir / layers[b]) for b in ("red", "green", "blue")]
    try:
        with cog.staged_output(out) as staging:
            with rasterio.open(staging, "w", **profile) as dst:
                step = 256
                for row in range(0, height, step):
                    window = Window(0, row, width, min(step, height - row))
                    for band, src in enumerate(sources, start=1):
                        raw = src.read(1, window=window).astype(np.float32)
                        scaled = np.clip((raw - lo) / (hi - lo) * 254 + 1, 1, 255)
                        dst.write(
                            np.where(raw == nodata, 0, scaled).astype(np.uint8), band, window=window
                        )
            return cog.finish_cog(
                staging, out, tags={"terraops_layer": "rgb", "scene": str(manifest["name"])}
            )
    finally:
        for src in sources:
            src.close()


def scene_imagery_layer(settings: Settings, scene_dir: Path) -> Layer:
    """The scene's RGB layer, made once per scene (reused while the file is there)."""
    manifest = raster_io.read_manifest(scene_dir)
    scene = str(manifest["name"])
    lid = layer_id("scene", scene, "rgb")
    catalogue = LayerCatalogue(settings.layers_dir)
    existing = next((layer for layer in catalogue.layers() if layer.id == lid), None)
    if (
        existing is not None
        and catalogue.status(existing).available
        and existing.lineage.get("scene_dir") == str(Path(scene_dir).resolve())
    ):
        return existing
    out = settings.layers_dir / f"{lid}.tif"
    write_rgb_composite(Path(scene_dir), out)
    return raster_layer(
        lid=lid,
        title=f"Imagery (true colour) — {scene}",
        group="imagery",
        role="imagery",
        path=out,
        unit="reflectance (stretched)",
        legend="Red, green and blue bands, 2–98 % stretch",
        colormap=None,
        rescale=None,
        lineage={"scene": scene, "scene_dir": str(Path(scene_dir).resolve())},
        stats={"width": manifest["width"], "height": manifest["height"]},
    )
