"""``terraops monitor`` (drift report, drift map), ``quality check``, ``evalset``, ``slo``.

Heavy libraries (Evidently, Great Expectations, MLflow) are imported inside the
commands, never at CLI start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from terraops.adapters.atomic import atomic_write_text
from terraops.cli.common import console, handle_errors, out, print_json, settings_from
from terraops.errors import InvalidInputError

ServiceArg = Annotated[str, typer.Argument(help="Service name, e.g. uhi or flood.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
VersionOpt = Annotated[
    int | None,
    typer.Option("--version", "-v", min=1, help="Compare against this version, not the champion."),
]


# ----- monitor ---------------------------------------------------------------------------


def drift(
    ctx: typer.Context,
    service: ServiceArg,
    out_path: Annotated[Path, typer.Option("--out", help="HTML report (JSON summary beside).")],
    scene: Annotated[Path | None, typer.Option("--scene", help="A scene folder.")] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="A feature table (.parquet/.csv).")
    ] = None,
    from_log: Annotated[bool, typer.Option("--from-log", help="The prediction log.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="With --from-log: ISO time or 6h / 2d back.")
    ] = None,
    version: VersionOpt = None,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit 1 when the dataset drifted.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Evidently drift report of current data vs the champion's training reference."""
    from terraops.adapters.tables import read_feature_table
    from terraops.pipelines.monitoring import drift_report as pipeline
    from terraops.pipelines.scenes.landcover_source import landcover_of_version
    from terraops.services import get_service

    with handle_errors(ctx):
        if sum([scene is not None, data is not None, from_log]) != 1:
            raise InvalidInputError("give exactly one of --scene, --data, --from-log")
        if since and not from_log:
            raise InvalidInputError("--since goes with --from-log")
        settings = settings_from(ctx)
        definition = get_service(service)
        if scene is not None:
            landcover = landcover_of_version(settings, definition.name, version)
            scene_record = pipeline.read_scene_folder(scene)
            current = pipeline.scene_examples(
                definition, scene_record, settings.cell_size_m, landcover
            )
            source = f"scene {scene}"
        elif data is not None:
            current = read_feature_table(data)
            source = f"data {data}"
        else:
            moment = pipeline.parse_since(since)
            current = pipeline.log_features(settings, definition, moment)
            source = "prediction log" + (f" since {moment.isoformat()}" if moment else "")
        summary = pipeline.drift_report(
            settings, definition, current, out_path, source=source, version=version
        )
    if as_json:
        print_json(summary)
    else:
        verdict = "[red]DRIFT[/]" if summary["dataset_drift"] else "[green]no dataset drift[/]"
        console.print(
            f"{verdict}: {summary['n_drifted_features']} of {summary['n_features_tested']} "
            f"features drifted ({', '.join(summary['drifted_features']) or 'none'})"
        )
        for reason in summary["reasons"]:
            console.print(f"  - {reason}")
        console.print(f"report: {summary['report_html']}  summary: {summary['report_json']}")
    if fail_on_drift and summary["dataset_drift"]:
        raise typer.Exit(1)


def drift_map(
    ctx: typer.Context,
    service: ServiceArg,
    scene: Annotated[Path, typer.Option("--scene", help="A scene folder.")],
    out_path: Annotated[
        Path | None, typer.Option("--out", help="COG path (default: under the home's layers).")
    ] = None,
    tile_cells: Annotated[
        int, typer.Option("--tile-cells", min=2, help="Tile side in cells.")
    ] = 10,
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drift score per tile of a scene → validated COG → layer catalogue (group "drift")."""
    from terraops.pipelines.monitoring import drift_report as pipeline
    from terraops.services import get_service

    with handle_errors(ctx):
        result = pipeline.drift_map(
            settings_from(ctx), get_service(service), scene, out_path,
            version=version, tile_cells=tile_cells,
        )  # fmt: skip
    if as_json:
        print_json(result)
    else:
        console.print(
            f"[green]drift map[/] {result['out']} → layer {result['layer']} "
            f"(mean tile score {result['mean_score']}, "
            f"{100 * result['share_of_tiles_drifted']:.0f}% of tiles drifted)"
        )


# ----- quality ----------------------------------------------------------------------------


def quality_check(
    ctx: typer.Context,
    service: ServiceArg,
    data: Annotated[Path, typer.Argument(help="A scene folder or a feature table.")],
    as_json: JsonOpt = False,
) -> None:
    """Run the Great Expectations suites; exit 1 naming every failed expectation."""
    from terraops.pipelines.monitoring.quality import check_data
    from terraops.services import get_service

    with handle_errors(ctx):
        results = check_data(settings_from(ctx), get_service(service), data)
    if as_json:
        print_json([r.as_dict() for r in results])
    for result in results:
        mark = "[green]passed[/]" if result.passed else "[red]FAILED[/]"
        console.print(
            f"{result.suite}: {mark} ({result.n_rows} rows) — report {result.report_path}"
        )
        for name in result.failed:
            console.print(f"  - failed: {name}")
    if not all(r.passed for r in results):
        raise typer.Exit(1)


# ----- evaluation set ---------------------------------------------------------------------


def evalset_build(
    ctx: typer.Context,
    service: ServiceArg,
    scenes: Annotated[list[Path], typer.Option("--scenes", help="Held-out scene folders.")],
    as_json: JsonOpt = False,
) -> None:
    """Build a new version of SERVICE's shared held-out evaluation set (promotion gates)."""
    from terraops.pipelines.lifecycle import evalset
    from terraops.services import get_service

    with handle_errors(ctx):
        info = evalset.build(settings_from(ctx), get_service(service), scenes)
    if as_json:
        print_json(info)
    else:
        console.print(f"[green]evaluation set[/] {evalset.label(info)}: {info['n_rows']} rows")


def evalset_show(ctx: typer.Context, service: ServiceArg, as_json: JsonOpt = False) -> None:
    """The evaluation set in force for SERVICE."""
    from terraops.pipelines.lifecycle import evalset

    info = evalset.current_info(settings_from(ctx), service)
    if as_json:
        print_json(info)
    elif info is None:
        console.print(f"{service}: no evaluation set (gates compare run metrics)")
    else:
        out.print(f"{evalset.label(info)}: {info['n_rows']} rows from {', '.join(info['scenes'])}")


# ----- SLOs -----------------------------------------------------------------------------------


def slo_check(
    ctx: typer.Context,
    service: Annotated[
        str | None, typer.Argument(help="One service (default: every served service).")
    ] = None,
    window: Annotated[str, typer.Option("--window", help="e.g. 15m, 1h, 1d.")] = "1h",
    rollback_on_breach: Annotated[
        bool,
        typer.Option(
            "--rollback-on-breach",
            help="Roll the champion back on a model-quality breach, or a latency/5xx breach "
            "it causes (recorded); a breach the host causes only alerts.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check SLO.md's objectives from the prediction log, feedback and the last drift check;
    exit 1 on breach. Only a model-quality breach, or a latency/5xx breach the new version
    is shown to cause, rolls back (the report says which and why)."""
    from terraops.pipelines.monitoring import slo
    from terraops.services import get_service

    with handle_errors(ctx):
        settings = settings_from(ctx)
        names = [service] if service else list(settings.services)
        reports = slo.check(
            settings,
            [get_service(n) for n in names],
            slo.parse_window(window),
            rollback_on_breach=rollback_on_breach,
        )
    if as_json:
        print_json([r.as_dict() for r in reports])
    else:
        _print_slo(reports, rollback_on_breach)
    if any(r.breached for r in reports):
        raise typer.Exit(1)


def _print_slo(reports: list[Any], rollback_on_breach: bool) -> None:
    colours = {"ok": "green", "breach": "red", "no_data": "yellow"}
    for report in reports:
        version = f"v{report.version}" if report.version is not None else "(no champion)"
        console.print(f"[bold]{report.service}[/] {version}")
        for o in report.objectives:
            console.print(f"  [{colours[o.status]}]{o.status:8}[/] {o.objective}: {o.detail}")
        if report.decision is not None:
            decided = report.decision.decision
            console.print(
                f"  decision [{'red' if decided == 'rollback' else 'yellow'}]{decided}[/]: "
                f"{escape(report.decision.reason)}",
                highlight=False,
            )
            if decided == "rollback" and report.rollback is None and not rollback_on_breach:
                console.print("  [dim](not applied: run with --rollback-on-breach)[/]")
        if report.rollback:
            done = report.rollback.get("done")
            console.print(
                f"  [{'green' if done else 'red'}]rollback[/] "
                + (
                    f"v{report.rollback['from_version']} → v{report.rollback['to_version']}"
                    if done
                    else str(report.rollback.get("error"))
                )
            )
        for error in report.errors:
            console.print(f"  [yellow]note:[/] {error}")


def slo_rules(
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write the rules file here (default: stdout).")
    ] = None,
) -> None:
    """Prometheus recording rules and multi-window burn-rate alerts for SLO.md."""
    from terraops.pipelines.monitoring.slo import write_rules
    from terraops.services import all_services

    text = write_rules(list(all_services().values()))
    if out_path is None:
        out.print(text, end="", markup=False, highlight=False)
        return
    atomic_write_text(out_path, text, parents=True)
    console.print(f"rules written to {out_path} (check: promtool check rules {out_path})")


def register(app: typer.Typer) -> None:
    monitor_app = typer.Typer(help="Drift reports and drift maps.", no_args_is_help=True)
    monitor_app.command("drift")(drift)
    monitor_app.command("drift-map")(drift_map)
    app.add_typer(monitor_app, name="monitor")
    quality_app = typer.Typer(help="Great Expectations data-quality suites.", no_args_is_help=True)
    quality_app.command("check")(quality_check)
    app.add_typer(quality_app, name="quality")
    evalset_app = typer.Typer(help="Shared held-out evaluation sets.", no_args_is_help=True)
    evalset_app.command("build")(evalset_build)
    evalset_app.command("show")(evalset_show)
    app.add_typer(evalset_app, name="evalset")
    slo_app = typer.Typer(help="Service-level objectives (SLO.md).", no_args_is_help=True)
    slo_app.command("check")(slo_check)
    slo_app.command("rules")(slo_rules)
    app.add_typer(slo_app, name="slo")
