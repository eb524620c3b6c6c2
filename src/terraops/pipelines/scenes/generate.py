"""Synthetic scenes on disk: generate a city folder.

``generate_scene`` = pure generator (:mod:`terraops.domain.scene`) + atomic
folder write (:mod:`terraops.adapters.raster_io`). Turning any scene into a
cell table is :mod:`terraops.pipelines.scenes.cell_tables`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rasterio.transform import Affine

from terraops.adapters import raster_io
from terraops.domain.landcover import LANDCOVER_LEGEND
from terraops.domain.scene.generator import (
    REFLECTANCE_NODATA,
    REFLECTANCE_SCALE,
    GeneratedScene,
    generate,
    physics_block,
)
from terraops.domain.scene.spec import GENERATOR_VERSION, SceneSpec
from terraops.domain.scene.spectra import BANDS
from terraops.domain.scene_record import Scene
from terraops.pipelines.progress import status_line

LAYER_UNITS: dict[str, str] = {
    **{b: f"surface reflectance x {REFLECTANCE_SCALE}" for b in BANDS},
    "dem": "m",
    "landcover": "class code",
    "lst": "degC",
    "flood_depth": "m",
}


def _transform(scene: GeneratedScene) -> Affine:
    res = scene.spec.resolution
    return Affine(res, 0.0, scene.origin[0], 0.0, -res, scene.origin[1])


def build_manifest(scene: GeneratedScene) -> dict[str, Any]:
    """The ``scene.json`` content (deterministic: no timestamps, no paths)."""
    spec = scene.spec
    t = _transform(scene)
    extent = spec.size * spec.resolution
    x0, y0 = scene.origin
    return {
        "name": spec.name,
        "crs": f"EPSG:{scene.epsg}",
        "resolution": spec.resolution,
        "width": spec.size,
        "height": spec.size,
        "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "bounds": [x0, y0 - extent, x0 + extent, y0],
        "seed": spec.seed,
        "morphology": spec.morphology,
        "rainfall_mm": spec.rainfall_mm,
        "generator_version": GENERATOR_VERSION,
        "reflectance": {
            "bands": list(BANDS),
            "scale": 1.0 / REFLECTANCE_SCALE,
            "offset": 0.0,
            "nodata": REFLECTANCE_NODATA,
        },
        "layers": {name: f"{name}.tif" for name in scene.layers},
        "units": {name: LAYER_UNITS[name] for name in scene.layers},
        "landcover_legend": {str(k): v for k, v in LANDCOVER_LEGEND.items()},
        "physics": physics_block(scene),
        "stats": scene.stats,
    }


def _write_layers(folder: Path, scene: GeneratedScene) -> None:
    t = _transform(scene)
    for name, array in scene.layers.items():
        if name in BANDS:
            nodata: float | None = REFLECTANCE_NODATA
            scale: float | None = 1.0 / REFLECTANCE_SCALE
        else:
            nodata = 0 if name == "landcover" else float("nan")
            scale = None
        raster_io.write_geotiff(
            folder / f"{name}.tif",
            array,
            epsg=scene.epsg,
            transform=t,
            nodata=nodata,
            description=name,
            scale=scale,
            offset=0.0 if scale else None,
            tags={"terraops_layer": name, "unit": LAYER_UNITS[name]},
        )


def generate_scene(
    out_dir: Path,
    *,
    seed: int,
    size: int = 1024,
    resolution: float = 2.0,
    morphology: str = "dense",
    rainfall_mm: float = 50.0,
    reference_temperature_c: float | None = None,
    physics: str = "varied",
    progress: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Generate one synthetic city into ``out_dir`` (atomically) and return its manifest.

    ``physics``: ``varied`` (the city draws its LST coefficients) or ``nominal``.
    """
    spec = SceneSpec(
        seed=seed,
        size=size,
        resolution=resolution,
        morphology=morphology,
        rainfall_mm=rainfall_mm,
        reference_temperature_c=reference_temperature_c,
        physics=physics,
    )
    with (
        raster_io.atomic_directory(Path(out_dir), overwrite=overwrite) as tmp,
        status_line(progress, "generating scene") as say,
    ):
        scene = generate(spec, progress=say)
        say("writing GeoTIFFs")
        _write_layers(tmp, scene)
        record = Scene.from_manifest(build_manifest(scene), Path(out_dir))
        raster_io.write_manifest(tmp, record)
    return record.to_manifest()
