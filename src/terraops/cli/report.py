"""``terraops report``: reports computed by the tool from real runs (the case studies)."""

from __future__ import annotations

from pathlib import Path

import typer

from terraops.cli.common import console, handle_errors, print_json, settings_from

report_app = typer.Typer(help="Reports computed from runs of the models (case studies).")


@report_app.command("case-study")
def case_study(
    ctx: typer.Context,
    study: str = typer.Argument(..., help="heat (hot spots, why, a greening plan) or flood."),
    scene: Path = typer.Option(..., "--scene", help="Scene folder (scene.json + layers)."),
    out: Path = typer.Option(..., "--out", help="Folder for index.md, its figures, facts.json."),
    version: int | None = typer.Option(
        None, "--version", help="Model version (default: the champion)."
    ),
    city: str | None = typer.Option(
        None, "--city", help="The city's name in the page title (default: the scene's name)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run a case study on a city and write it as a page with figures.

    Every number and figure comes from this run: the map (with explanations and
    intervals), the hot spots or flood exposure, a plan drawn from the city by
    a fixed rule and its what-if. The layers it makes also appear on the map.
    """
    from terraops.pipelines.reports.case_study import run_case_study

    pinned = f" --version {version}" if version is not None else ""
    named = f" --city '{city}'" if city else ""
    command = f"terraops report case-study {study} --scene {scene} --out {out}{pinned}{named}"
    with handle_errors(ctx):
        summary = run_case_study(
            settings_from(ctx),
            study,
            scene,
            out,
            version=version,
            command=command,
            city=city,
            progress=not as_json,
        )
    if as_json:
        print_json(summary)
        return
    if not summary["applies"]:
        console.print(f"[yellow]the {study} model does not apply to this city; the page says why")
    console.print(f"case study: {summary['page']} ({len(summary['figures'])} figures)")
    console.print(f"numbers:    {summary['facts']}")


def register(app: typer.Typer) -> None:
    """Add ``report`` to the main CLI."""
    app.add_typer(report_app, name="report")
