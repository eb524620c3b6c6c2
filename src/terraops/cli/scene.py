"""``terraops scene``: make synthetic cities, import real imagery as scenes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from terraops.cli.common import console, handle_errors, print_json
from terraops.cli.scene_landsat7 import import_landsat7
from terraops.domain.scene.spec import MORPHOLOGIES


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


_OUT_HELP = "Output scene folder (must not exist or be empty)."


def _print_imported(manifest: dict[str, Any], out: Path, as_json: bool) -> None:
    if as_json:
        print_json(manifest)
        return
    stats = manifest["stats"]
    lst = ""
    if stats.get("lst_median_c") is not None:
        lst = (
            f"; LST {stats['lst_min_c']}–{stats['lst_max_c']} °C, median {stats['lst_median_c']} °C"
        )
    console.print(
        f"[green]scene[/] {manifest['name']} → {out} "
        f"({manifest['width']}×{manifest['height']} px, {manifest['crs']}, "
        f"{manifest['resolution']:g} m; {100 * stats['clear_fraction']:.1f}% clear{lst})"
    )


def import_landsat(
    product: Path = typer.Argument(
        ..., help="Folder of a Landsat 8/9 product: the *_MTL.txt and one GeoTIFF per band."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output scene folder (must not exist or be empty)."
    ),
    dem: Path | None = typer.Option(
        None, "--dem", help="Elevation GeoTIFF (any CRS), resampled onto the scene grid."
    ),
    bbox: str | None = typer.Option(
        None, "--bbox", help="Crop to minx,miny,maxx,maxy (only this window is read)."
    ),
    bbox_crs: str = typer.Option(
        "EPSG:4326", "--bbox-crs", help="CRS of --bbox (EPSG:4326 lon/lat, or 'product')."
    ),
    correction: str = typer.Option(
        "dos1", "--correction", help="dos1 (dark-object subtraction → surface) | none (TOA)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing scene."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
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
    for warning in manifest["source"].get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    _print_imported(manifest, out, as_json)


def import_geotiff(
    bands: Path = typer.Option(..., "--bands", help="Multiband reflectance GeoTIFF (any CRS)."),
    out: Path = typer.Option(
        ..., "--out", help="Output scene folder (must not exist or be empty)."
    ),
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
    dem: Path | None = typer.Option(
        None, "--dem", help="Elevation GeoTIFF (any CRS), resampled onto the scene grid."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing scene."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
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
    _print_imported(manifest, out, as_json)


def _print_warnings(manifest: dict[str, Any]) -> None:
    for warning in manifest["source"].get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


def import_sentinel2(
    product: Path = typer.Argument(
        ...,
        help="A Sentinel-2 L2A .SAFE folder, or the JSON of a Sentinel-2 L2A STAC item "
        "(its per-band COGs).",
    ),
    out: Path = typer.Option(..., "--out", help=_OUT_HELP),
    thermal: Path | None = typer.Option(
        None,
        "--thermal",
        help="Folder of a Landsat 8/9 product of a near date: its land-surface temperature, "
        "resampled onto the 10 m grid, becomes the lst layer (the days between are recorded).",
    ),
    dem: Path | None = typer.Option(
        None, "--dem", help="Elevation GeoTIFF (any CRS), resampled onto the scene grid."
    ),
    bbox: str | None = typer.Option(
        None, "--bbox", help="Crop to minx,miny,maxx,maxy (only this window is read)."
    ),
    bbox_crs: str = typer.Option(
        "EPSG:4326", "--bbox-crs", help="CRS of --bbox (EPSG:4326 lon/lat, or 'product')."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing scene."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
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
    _print_warnings(manifest)
    _print_imported(manifest, out, as_json)


def import_stac(
    item: str = typer.Argument(
        ..., help="A STAC Item JSON (file or URL) of Landsat Collection 2 or Sentinel-2 L2A."
    ),
    out: Path = typer.Option(..., "--out", help=_OUT_HELP),
    thermal: Path | None = typer.Option(
        None,
        "--thermal",
        help="Sentinel-2 items only: folder of a Landsat 8/9 product of a near date for LST.",
    ),
    dem: Path | None = typer.Option(
        None, "--dem", help="Elevation GeoTIFF (any CRS), resampled onto the scene grid."
    ),
    bbox: str | None = typer.Option(
        None, "--bbox", help="Crop to minx,miny,maxx,maxy (only this window is read)."
    ),
    bbox_crs: str = typer.Option(
        "EPSG:4326", "--bbox-crs", help="CRS of --bbox (EPSG:4326 lon/lat, or 'product')."
    ),
    correction: str = typer.Option(
        "dos1", "--correction", help="Landsat Level-1 items: dos1 | none (TOA)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing scene."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
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
    _print_warnings(manifest)
    _print_imported(manifest, out, as_json)


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
