"""``terraops segment train | predict | evaluate``: thin wrappers over the pipelines."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from terraops.adapters.atomic import atomic_write_text
from terraops.cli.common import console, handle_errors, out, print_json, settings_from
from terraops.extras import SEGMENT, require_extra

segment_app = typer.Typer(
    help="U-Net segmentation: buildings, water, trees → masks (COG) and polygons.",
    no_args_is_help=True,
)

_CLASS_ORDER = ("building", "water", "tree", "background")


def _metrics_table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    table = Table(title=title)
    table.add_column("class")
    for column in ("IoU", "F1", "precision", "recall"):
        table.add_column(column, justify="right")
    for name in _CLASS_ORDER:
        if name in rows:
            r = rows[name]
            table.add_row(name, *(f"{r[k]:.3f}" for k in ("iou", "f1", "precision", "recall")))
    return table


@segment_app.command("train")
def train(
    ctx: typer.Context,
    scenes: list[Path] = typer.Option(
        ..., "--scenes", help="Training scene folder(s): --scenes A B C (or repeat --scenes)."
    ),
    more_scenes: list[Path] | None = typer.Argument(
        None, hidden=True, help="Further scene folders after --scenes A."
    ),
    val_scenes: list[Path] = typer.Option(
        [], "--val-scenes", help="Held-out scene folder(s); default: the last --scenes."
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs (default 48)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    param: list[str] = typer.Option([], "--param", help="Override: name=value; repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Train the U-Net on scenes, validate on held-out scenes, register a challenger."""
    from terraops.pipelines.segmentation.train import train_segmentation
    from terraops.pipelines.training.train import parse_param_pairs
    from terraops.services.segmentation import SEGMENTATION

    with handle_errors(ctx):
        require_extra(SEGMENT)
        params: dict[str, object] = dict(parse_param_pairs(param))
        if epochs is not None:
            params["epochs"] = epochs
        result = train_segmentation(
            settings_from(ctx),
            SEGMENTATION,
            [*scenes, *(more_scenes or [])],
            val_scenes,
            params,
            device=device,
            progress=not (no_progress or as_json),
        )
    if as_json:
        print_json(
            {
                "service": result.service,
                "run_id": result.run_id,
                "version": result.version,
                "device": result.device,
                "n_parameters": result.n_parameters,
                "seconds": round(result.duration_s, 2),
                "metrics": result.metrics,
                "history": result.history,
            }
        )
        return
    m = result.metrics
    rows = {
        name: {k: m[f"{name}_{k}_val"] for k in ("iou", "f1", "precision", "recall")}
        for name in _CLASS_ORDER
    }
    out.print(_metrics_table(f"segmentation v{result.version} on held-out scenes", rows))
    out.print(
        f"run [cyan]{result.run_id}[/] → segmentation v{result.version} (challenger) in "
        f"{result.duration_s:.0f} s on {result.device}; building object F1 "
        f"{m['building_object_f1_val']:.3f}; {result.n_parameters:,} parameters"
    )


@segment_app.command("predict")
def predict(
    ctx: typer.Context,
    image: Path | None = typer.Option(None, "--image", help="Multiband GeoTIFF."),
    scene: Path | None = typer.Option(None, "--scene", help="Scene folder (scene.json + bands)."),
    out_mask: Path | None = typer.Option(
        None, "--out-mask", help="Mask COG (default TERRAOPS_HOME/layers/...)."
    ),
    out_vector: Path | None = typer.Option(
        None, "--out-vector", help="Polygons file (default TERRAOPS_HOME/layers/...geojson)."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="geojson (EPSG:4326) | gpkg | parquet (native CRS)."
    ),
    engine: str = typer.Option(
        "onnx",
        "--engine",
        help="onnx (ONNX Runtime CPU) | onnx-int8 (static INT8, made at registration) | torch.",
    ),
    device: str = typer.Option("auto", "--device", help="torch engine: auto | cpu | cuda."),
    version: int | None = typer.Option(None, "--version", min=1, help="Model version."),
    alias: str = typer.Option("champion", "--alias", help="Alias used without --version."),
    bundle: Path | None = typer.Option(
        None, "--bundle", help="A local bundle folder instead of the registry."
    ),
    band_order: str | None = typer.Option(
        None, "--band-order", help="Names of the GeoTIFF's bands in order, e.g. red,green,..."
    ),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Windows per model call."),
    no_layers: bool = typer.Option(False, "--no-layers", help="Do not add map layers."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    dask: str | None = typer.Option(
        None,
        "--dask",
        help="Run the model on a Dask cluster: tcp://HOST:PORT, or 'local' (2 worker "
        "processes); 'none' = in-process. Default: TERRAOPS_DASK_SCHEDULER, else in-process.",
    ),
) -> None:
    """Segment a scene or GeoTIFF → mask COG + polygons, registered as map layers."""
    from terraops.pipelines.segmentation.scene_predict import segment_image

    settings = settings_from(ctx)
    with handle_errors(ctx):
        require_extra(SEGMENT)
        result = segment_image(
            settings,
            scene=scene,
            image=image,
            band_order=band_order.split(",") if band_order else None,
            out_mask=out_mask,
            out_vector=out_vector,
            fmt=fmt,
            engine=engine,
            device=device,
            version=version,
            alias=alias,
            bundle=bundle,
            batch_size=batch_size,
            register=not no_layers,
            progress=not as_json,
            dask=dask if dask is not None else settings.dask_scheduler,
        )
    if as_json:
        print_json(result)
        return
    model = result["model"]
    polygons = ", ".join(f"{n} {k}" for k, n in result["polygons"].items())
    console.print(
        f"[green]{model['name']}[/] v{model['version'] or 'local'} ({result['engine']}) on "
        f"{result['source']}: {result['width']}×{result['height']} px in "
        f"{result['seconds']['total']:.1f} s ({result['megapixels_per_s']:.2f} MP/s inference)"
    )
    console.print(f"mask → {result['mask']}\npolygons ({polygons}) → {result['vector']}")
    for layer in result["layers"]:
        console.print(f"  layer [cyan]{layer['id']}[/] ({layer['kind']})")


@segment_app.command("evaluate")
def evaluate(
    pred: Path = typer.Option(..., "--pred", help="Predicted mask (.tif) or polygons."),
    truth: Path = typer.Option(..., "--truth", help="True mask (.tif) or polygons."),
    objects: str = typer.Option(
        "building", "--objects", help="Classes scored as objects (comma-separated)."
    ),
    default_class: str | None = typer.Option(
        None, "--default-class", help="Class of vector features without class/class_id."
    ),
    resolution: float = typer.Option(
        1.0, "--resolution", help="Grid (m) when both inputs are vectors."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Pixel IoU/F1/precision/recall per class and SpaceNet object F1 of PRED vs TRUTH."""
    from terraops.pipelines.segmentation.evaluate import evaluate as run

    with handle_errors():
        result = run(
            pred,
            truth,
            object_classes=[c.strip() for c in objects.split(",") if c.strip()],
            default_class=default_class,
            resolution=resolution,
        )
    if as_json:
        print_json(result)
        return
    out.print(_metrics_table(f"{result['compared']} on {result['grid']['crs']}", result["pixel"]))
    for name, o in result["objects"].items():
        out.print(
            f"{name} objects (IoU ≥ {o['iou_threshold']:g}): F1 {o['f1']:.3f}, precision "
            f"{o['precision']:.3f}, recall {o['recall']:.3f} (tp {o['tp']}, fp {o['fp']}, "
            f"fn {o['fn']})"
        )


@segment_app.command("evaluate-real")
def evaluate_real(
    ctx: typer.Context,
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs (default 40)."),
    param: list[str] = typer.Option([], "--param", help="Override: name=value; repeatable."),
    sample_dir: Path | None = typer.Option(
        None, "--sample-dir", help="A fetched solaris sample folder (default: fetch it)."
    ),
    card: Path | None = typer.Option(
        None, "--card", help="Also write the model-card section (markdown) here."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Adapt a U-Net on the left ⅔ of the real solaris 0.5 m image, score buildings on the
    right ⅓ (pixel IoU/F1, SpaceNet object F1) against all-background and threshold baselines."""
    from terraops.pipelines.segmentation.real_sample import evaluate_real, model_card_markdown
    from terraops.pipelines.training.train import parse_param_pairs

    with handle_errors(ctx):
        require_extra(SEGMENT)
        params: dict[str, object] = dict(parse_param_pairs(param))
        if epochs is not None:
            params["epochs"] = epochs
        report = evaluate_real(settings_from(ctx), sample_dir=sample_dir, params=params)
        if card is not None:
            atomic_write_text(card, model_card_markdown(report), parents=True)
    if as_json:
        print_json(report)
        return
    b, o = report["model"]["pixel"]["building"], report["model"]["objects"]["building"]
    out.print(
        f"right third: building IoU {b['iou']:.3f}, F1 {b['f1']:.3f}, object F1 {o['f1']:.3f} "
        f"(all-background IoU 0.000; threshold IoU "
        f"{report['baselines']['brightness_threshold']['pixel']['building']['iou']:.3f}) in "
        f"{report['seconds']['total']:.0f} s → {report['outputs']['report']}"
    )


@segment_app.command("card")
def card(
    ctx: typer.Context,
    out_path: Path = typer.Option(
        Path("docs/model_cards/segmentation.md"), "--out", help="Markdown file to write."
    ),
    version: int | None = typer.Option(None, "--version", help="Default: the champion."),
) -> None:
    """Write the model card of the segmentation champion (every figure read from MLflow)."""
    from terraops.pipelines.lifecycle.cards import write_model_card
    from terraops.services.segmentation import SEGMENTATION

    with handle_errors(ctx):
        settings = settings_from(ctx)
        path, written = write_model_card(settings, SEGMENTATION, out_path, version=version)
    out.print(f"segmentation version {written}: model card → {path}")


def register(app: typer.Typer) -> None:
    """Add ``terraops segment ...`` to the main CLI."""
    app.add_typer(segment_app, name="segment")
