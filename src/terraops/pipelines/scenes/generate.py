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
    UTM_EPSG,
    GeneratedScene,
    generate,
    physics_block,
    scene_bounds,
    scene_origin,
    true_landcover,
)
from terraops.domain.scene.spec import GENERATOR_VERSION, SceneSpec
from terraops.domain.scene.spectra import BANDS
from terraops.domain.scene.training_scenarios import random_scenario
from terraops.domain.scene_record import Scene
from terraops.domain.whatif.scenario import Scenario, parse_scenario
from terraops.errors import InvalidInputError
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


MAX_SCENARIO_BYTES = 5_000_000
"""A scenario file larger than this is refused (a few hundred polygons fit in 100 kB)."""
SCENARIO_SUFFIX_HEX = 8
"""A counterfactual city's name ends with this many hex digits of its scenario's sha256."""


def read_scenario_file(path: Path) -> bytes:
    """A scenario file's bytes as written (its sha256 identifies the scenario)."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_SCENARIO_BYTES:
            raise InvalidInputError(
                f"scenario file {path} is {size / 1e6:.1f} MB, more than the "
                f"{MAX_SCENARIO_BYTES / 1e6:g} MB allowed",
                hint="simplify the polygons or split the scenario",
            )
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read scenario file {path}: {exc.strerror or exc}",
            hint="give the path of a GeoJSON FeatureCollection",
        ) from None


def scene_name(scene: GeneratedScene) -> str:
    """The spec's name, plus ``-scenario-<sha256[:8]>`` for a counterfactual city."""
    if scene.scenario is None:
        return scene.spec.name
    return f"{scene.spec.name}-scenario-{scene.scenario.sha256[:SCENARIO_SUFFIX_HEX]}"


def scenario_block(scenario: Scenario) -> dict[str, Any]:
    """What the manifest says about the interventions a counterfactual city carries."""
    return {
        "sha256": scenario.sha256,
        "source_crs": scenario.source_crs,
        "interventions": [
            {
                "id": i.id,
                "intervention": i.kind,
                "params": dict(i.params),
                "area_m2": round(i.area_m2, 2),
            }
            for i in scenario.interventions
        ],
    }


def build_manifest(scene: GeneratedScene) -> dict[str, Any]:
    """The ``scene.json`` content (deterministic: no timestamps, no paths)."""
    spec = scene.spec
    t = _transform(scene)
    extent = spec.size * spec.resolution
    x0, y0 = scene.origin
    manifest: dict[str, Any] = {
        "name": scene_name(scene),
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
    if scene.scenario is not None:
        manifest["scenario"] = scenario_block(scene.scenario)
    return manifest


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
    scenario_document: bytes | None = None,
    random_interventions: int = 0,
) -> dict[str, Any]:
    """Generate one synthetic city into ``out_dir`` (atomically) and return its manifest.

    ``physics``: ``varied`` (the city draws its LST coefficients) or ``nominal``.
    ``scenario_document`` (a GeoJSON FeatureCollection of interventions, checked
    against the city's bounds before anything is written) makes the
    counterfactual city: the same seed and noise with the interventions applied.
    ``random_interventions`` (without a scenario file) draws that many from the
    seed instead (:mod:`terraops.domain.scene.training_scenarios`): a training
    city that carries its own what-ifs.
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
    scenario = None
    if random_interventions and scenario_document is not None:
        raise InvalidInputError(
            "give either a scenario file or a number of random interventions, not both",
            hint="drop --random-interventions to render the scenario file",
        )
    if random_interventions:
        scenario_document = random_scenario(
            true_landcover(spec),
            seed=seed,
            count=random_interventions,
            origin=scene_origin(spec),
            resolution=resolution,
            epsg=UTM_EPSG,
        )
    if scenario_document is not None:
        scenario = parse_scenario(
            scenario_document, scene_crs=f"EPSG:{UTM_EPSG}", scene_bounds=scene_bounds(spec)
        )
    with (
        raster_io.atomic_directory(Path(out_dir), overwrite=overwrite) as tmp,
        status_line(progress, "generating scene") as say,
    ):
        scene = generate(spec, progress=say, scenario=scenario)
        say("writing GeoTIFFs")
        _write_layers(tmp, scene)
        record = Scene.from_manifest(build_manifest(scene), Path(out_dir))
        raster_io.write_manifest(tmp, record)
    return record.to_manifest()
