"""``terraops scene``: make synthetic cities, import real imagery as scenes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from terraops.cli.common import console, handle_errors, print_json
from terraops.cli.scene_landsat7 import import_landsat7
from terraops.cli.scene_options import (
    BboxCrsOpt,
    BboxOpt,
    CorrectionOpt,
    DemOpt,
    JsonOpt,
    OutOpt,
    OverwriteOpt,
    print_imported,
    print_warnings,
)
from terraops.domain.scene.morphologies import MORPHOLOGIES


def generate(
    seed: int = typer.Option(..., "--seed", help="Random seed: same seed + options, same bytes."),
    out: Path = typer.Option(..., "--out", help="Output folder (must not exist or be empty)."),
    size: int = typer.Option(1024, "--size", help="Width = height in pixels."),
    resolution: float = typer.Option(2.0, "--resolution", help="Pixel size in metres."),
    morphology: str = typer.Option(
        "dense", "--morphology", help=f"City type: {' | '.join(MORPHOLOGIES)}."
    ),
    rainfall: float = typer.Option(50.0, "--rainfall", help="Storm total (mm) for flood_depth."),
    reference_temperature: float | None = typer.Option(
        None,
        "--reference-temperature",
        help="The day's rural background LST in °C (default: a summer day drawn in 24–40; "
        "e.g. 42 for a heat wave — same city, same imagery, hotter day).",
    ),
    physics: str = typer.Option(
        "varied",
        "--physics",
        help="LST coefficients: varied (drawn per city from published ranges) | nominal "
        "(the central published values, the same for every city).",
    ),
    scenario: Path | None = typer.Option(
        None,
        "--scenario",
        help="GeoJSON FeatureCollection of interventions (tree_planting, park, depave, "
        "cool_roof, green_roof, develop): renders the same city, same seed and noise, "
        "with them applied — the counterfactual truth a what-if is checked against.",
    ),
    random_interventions: int = typer.Option(
        0,
        "--random-interventions",
        min=0,
        max=200,
        help="Draw this many interventions (squares of every kind, placed where each makes "
        "sense, parameters drawn from the seed) and render the city with them: a city that "
        "shows a model cool-roof blocks, green roofs and new districts. Its parks and green "
        "roofs also lower the rural reference temperature read off the city, so a heat model "
        "trained on such cities runs hot on ordinary ones.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing scene."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Generate a physically grounded synthetic city: imagery, DEM, land cover, LST, flood."""
    from terraops.pipelines.scenes.generate import generate_scene, read_scenario_file

    with handle_errors():
        document = read_scenario_file(scenario) if scenario is not None else None
        manifest = generate_scene(
            out,
            seed=seed,
            size=size,
            resolution=resolution,
            morphology=morphology,
            rainfall_mm=rainfall,
            reference_temperature_c=reference_temperature,
            physics=physics,
            progress=True,
            overwrite=overwrite,
            scenario_document=document,
            random_interventions=random_interventions,
        )
    if as_json:
        print_json(manifest)
    else:
        stats = manifest["stats"]
        console.print(
            f"[green]scene[/] {manifest['name']} → {out} "
            f"({manifest['width']}×{manifest['height']} px, {manifest['crs']}; "
            f"LST {stats['lst_min_c']}–{stats['lst_max_c']} °C, "
            f"{100 * stats['flooded_fraction']:.1f}% flooded at {manifest['rainfall_mm']:g} mm)"
        )


def import_landsat(
    product: Annotated[
        Path,
        typer.Argument(
            help="Folder of a Landsat 8/9 product: the *_MTL.txt and one GeoTIFF per band."
        ),
    ],
    out: OutOpt,
    dem: DemOpt = None,
    bbox: BboxOpt = None,
    bbox_crs: BboxCrsOpt = "EPSG:4326",
    correction: CorrectionOpt = "dos1",
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import a Landsat 8/9 Level-1 or Level-2 product: reflectance, LST, cloud mask, DEM."""
    from terraops.pipelines.scenes.importing import import_landsat as run
    from terraops.pipelines.scenes.importing import parse_bbox

    with handle_errors():
        manifest = run(
            product,
            out,
            dem=dem,
            bbox=parse_bbox(bbox) if bbox is not None else None,
            bbox_crs=bbox_crs,
            correction=correction,
            overwrite=overwrite,
            progress=True,
        )
    print_warnings(manifest)
    print_imported(manifest, out, as_json)


def import_geotiff(
    bands: Annotated[
        Path, typer.Option("--bands", help="Multiband reflectance GeoTIFF (any CRS).")
    ],
    out: OutOpt,
    band_order: str | None = typer.Option(
        None,
        "--band-order",
        help="Names of the file's bands in order, e.g. red,green,blue,nir,swir "
        "(default: the band descriptions).",
    ),
    thermal: Path | None = typer.Option(
        None, "--thermal", help="Surface-temperature GeoTIFF (any CRS) → the lst layer."
    ),
    thermal_unit: str = typer.Option(
        "auto", "--thermal-unit", help="auto (kelvin when the median > 200) | celsius | kelvin."
    ),
    dem: DemOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import any multispectral GeoTIFF (Sentinel-2, aerial…) with optional thermal and DEM."""
    from terraops.pipelines.scenes.importing import import_geotiff as run

    order = [b.strip() for b in band_order.split(",")] if band_order else None
    with handle_errors():
        manifest = run(
            bands,
            out,
            band_order=order,
            thermal=thermal,
            thermal_unit=thermal_unit,
            dem=dem,
            overwrite=overwrite,
            progress=True,
        )
    print_imported(manifest, out, as_json)


def import_sentinel2(
    product: Annotated[
        Path,
        typer.Argument(
            help="A Sentinel-2 L2A .SAFE folder, or the JSON of a Sentinel-2 L2A STAC item "
            "(its per-band COGs)."
        ),
    ],
    out: OutOpt,
    thermal: Path | None = typer.Option(
        None,
        "--thermal",
        help="Folder of a Landsat 8/9 product of a near date: its land-surface temperature, "
        "resampled onto the 10 m grid, becomes the lst layer (the days between are recorded).",
    ),
    dem: DemOpt = None,
    bbox: BboxOpt = None,
    bbox_crs: BboxCrsOpt = "EPSG:4326",
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import a Sentinel-2 L2A product: 10 m reflectance, SCL cloud mask, Landsat LST, DEM."""
    from terraops.pipelines.scenes.importing import parse_bbox
    from terraops.pipelines.scenes.sentinel2 import import_sentinel2 as run
    from terraops.pipelines.scenes.stac import import_stac

    with handle_errors():
        box = parse_bbox(bbox) if bbox is not None else None
        options: dict[str, Any] = {"thermal": thermal, "dem": dem, "bbox": box}
        options |= {"bbox_crs": bbox_crs, "overwrite": overwrite, "progress": True}
        if product.suffix.lower() == ".json":
            manifest = import_stac(str(product), out, expect="sentinel2", **options)
        else:
            manifest = run(product, out, **options)
    print_warnings(manifest)
    print_imported(manifest, out, as_json)


def import_stac(
    item: Annotated[
        str,
        typer.Argument(
            help="A STAC Item JSON (file or URL) of Landsat Collection 2 or Sentinel-2 L2A."
        ),
    ],
    out: OutOpt,
    thermal: Path | None = typer.Option(
        None,
        "--thermal",
        help="Sentinel-2 items only: folder of a Landsat 8/9 product of a near date for LST.",
    ),
    dem: DemOpt = None,
    bbox: BboxOpt = None,
    bbox_crs: BboxCrsOpt = "EPSG:4326",
    correction: str = typer.Option(
        "dos1", "--correction", help="Landsat Level-1 items: dos1 | none (TOA)."
    ),
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import a STAC item's assets (local files or URLs) as a scene, the item in its lineage."""
    from terraops.pipelines.scenes.importing import parse_bbox
    from terraops.pipelines.scenes.stac import import_stac as run

    with handle_errors():
        manifest = run(
            item,
            out,
            thermal=thermal,
            dem=dem,
            bbox=parse_bbox(bbox) if bbox is not None else None,
            bbox_crs=bbox_crs,
            correction=correction,
            overwrite=overwrite,
            progress=True,
        )
    print_warnings(manifest)
    print_imported(manifest, out, as_json)


def register(app: typer.Typer) -> None:
    """Add the ``scene`` command group to the main CLI."""
    scene_app = typer.Typer(help="Synthetic scenes (cities) and scene data.", no_args_is_help=True)
    scene_app.command("generate")(generate)
    import_app = typer.Typer(
        help="Import real imagery (satellite products, GeoTIFFs) as scenes.", no_args_is_help=True
    )
    import_app.command("landsat")(import_landsat)
    import_app.command("geotiff")(import_geotiff)
    import_app.command("sentinel2")(import_sentinel2)
    import_app.command("stac")(import_stac)
    import_app.command("landsat7")(import_landsat7)
    scene_app.add_typer(import_app, name="import")
    app.add_typer(scene_app, name="scene")
