"""``terraops scene``: make synthetic cities (and, later, inspect scenes)."""

from __future__ import annotations

from pathlib import Path

import typer

from terraops.cli.common import console, handle_errors, print_json
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
        help="The day's rural background LST in °C (default: a normal day drawn in 30–34; "
        "e.g. 42 for a heat wave — same city, same imagery, hotter day).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing scene."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Generate a physically grounded synthetic city: imagery, DEM, land cover, LST, flood."""
    from terraops.pipelines.scenes import generate_scene

    with handle_errors():
        manifest = generate_scene(
            out,
            seed=seed,
            size=size,
            resolution=resolution,
            morphology=morphology,
            rainfall_mm=rainfall,
            reference_temperature_c=reference_temperature,
            progress=True,
            overwrite=overwrite,
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


def register(app: typer.Typer) -> None:
    """Add the ``scene`` command group to the main CLI."""
    scene_app = typer.Typer(help="Synthetic scenes (cities) and scene data.", no_args_is_help=True)
    scene_app.command("generate")(generate)
    app.add_typer(scene_app, name="scene")
