"""``terraops evaluate-real``: judge a registered model on a real scene (thin wrapper)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from terraops.cli.common import console, handle_errors, out, print_json, settings_from


def _num(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(float(value), spec)


def summary_table(payload: dict[str, Any]) -> Table:
    """Rows: what was scored; columns: n, offset, MAE after offset, Spearman."""
    unit = payload["unit"]
    model = payload["model"]
    version = f"{'champion ' if model.get('alias') == 'champion' else ''}v{model['version']}"
    table = Table(title=f"{payload['service']} {version} on {payload['scene']['name']}")
    for column in ("", "n", f"offset ({unit})", f"MAE after offset ({unit})", "Spearman"):
        table.add_column(column, justify="left" if not column else "right")
    rows = (
        (version, payload["champion"]),
        (f"{version}, no reference temperature", payload["champion_without_reference"]),
        ("NDVI line (in-sample)", payload["ndvi_line"] | {"offset": 0.0}),
        ("local spatial CV", payload["local_spatial_cv"]),
    )
    for label, scores in rows:
        mae = scores.get("mae_after_offset", scores.get("mae"))
        table.add_row(
            label,
            str(scores["n"]),
            _num(scores["offset"], "+.2f"),
            _num(mae),
            _num(scores["spearman"]),
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command("evaluate-real")
    def evaluate_real(
        ctx: typer.Context,
        service: str = typer.Argument(..., help="Regression service (uhi)."),
        scene: Path = typer.Option(
            ..., "--scene", help="Imported scene folder with the target layer (e.g. lst)."
        ),
        version: int | None = typer.Option(None, "--version", help="Version (default champion)."),
        param: list[str] = typer.Option(
            [], "--param", help="Local-CV override: name=value (model or training); repeatable."
        ),
        cell_size: float | None = typer.Option(None, "--cell-size", help="Cell size (m)."),
        block_size: float | None = typer.Option(
            None, "--block-size", help="Local-CV block side (m); default 500."
        ),
        buffer: float | None = typer.Option(
            None, "--buffer", help="Local-CV buffer (m); default 100 (Landsat TIRS pixel)."
        ),
        no_log: bool = typer.Option(False, "--no-log", help="Do not log to the model's run."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Champion vs a one-line NDVI regression on a real scene; logged for the model card."""
        from terraops.pipelines.training.real_city import evaluate_real as run
        from terraops.pipelines.training.train import parse_param_pairs
        from terraops.services import get_service

        with handle_errors(ctx):
            settings = settings_from(ctx)
            result = run(
                settings,
                get_service(service),
                scene,
                version=version,
                params=parse_param_pairs(param),
                cell_size_m=cell_size,
                block_size_m=block_size,
                buffer_m=buffer,
                log_to_run=not no_log,
                progress=not as_json,
            )
        payload = result.payload
        if as_json:
            print_json(payload | {"json_path": str(result.json_path)})
            return
        verdict = payload["verdict"]
        out.print(summary_table(payload))
        beats = "beats" if verdict["beats_ndvi_line"] else "does NOT beat"
        out.print(
            f"v{payload['model']['version']} {beats} the NDVI line on rank correlation "
            f"(margin {_num(verdict['spearman_margin'], '+.3f')})"
        )
        console.print(f"written to {result.json_path} and {result.plot_path.name}")
