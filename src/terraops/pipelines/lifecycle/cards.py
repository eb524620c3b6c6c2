"""Model cards (Mitchell et al. 2019, "Model Cards for Model Reporting") from the registry.

Every number in a card is read from the registered version's training run —
metrics, data fingerprint, scene manifests, aliases — so a card can never
drift from the model it describes; the prose comes from the service
definition. Regenerate with ``terraops card SERVICE`` after each promotion.

:func:`write_model_card` is the one builder of every service's card (UHI,
flood, segmentation): it finds the version and reads its record; the
sections specific to a kind of service come from the :class:`CardRecipe`
its definition names (tabular here, segmentation in
:mod:`terraops.pipelines.segmentation.card`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from terraops.adapters import atomic
from terraops.adapters.feedback_store import FeedbackStore
from terraops.adapters.registry import ModelRegistry
from terraops.adapters.tracking import download_run_folder, download_run_json, download_run_plots
from terraops.domain.explain import explanation_card_section
from terraops.pipelines.lifecycle.aliases import ModelService
from terraops.pipelines.lifecycle.card_real_city import city_rows_section
from terraops.pipelines.lifecycle.card_run import CardRecipe, CardRun
from terraops.pipelines.lifecycle.card_whatif import (
    read_whatif_validation,
    whatif_validation_section,
)
from terraops.pipelines.lifecycle.resolve import DEFAULT_HINT, resolve_version
from terraops.pipelines.lifecycle.uncertainty_card import uncertainty_section
from terraops.pipelines.segmentation.card import SEGMENTATION_CARD
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

_SCHEMES = (
    ("random_cv", "random K-fold"),
    ("spatial_cv", "spatial block CV"),
    ("scene_cv", "leave-one-scene-out"),
    ("spatial_cv_core_only", "spatial CV, required features only"),
    ("train", "in-sample"),
)
_MANIFEST_KEYS = ("seed", "morphology", "width", "resolution", "crs", "rainfall_mm")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _metrics_section(service: ServiceDefinition, metrics: dict[str, float]) -> list[str]:
    bases = sorted({k.removesuffix("_spatial_cv") for k in metrics if k.endswith("_spatial_cv")})
    head = "| metric | " + " | ".join(label for _, label in _SCHEMES) + " |"
    lines = [head, "|---" * (len(_SCHEMES) + 1) + "|"]
    for base in bases:
        cells = [
            _fmt(metrics[f"{base}_{s}"]) if f"{base}_{s}" in metrics else "–" for s, _ in _SCHEMES
        ]
        lines.append(f"| {base} | " + " | ".join(cells) + " |")
    primary = metrics.get(service.primary_metric)
    slo = service.slo
    met = primary is not None and (
        primary >= slo.metric_target
        if slo.metric_higher_is_better
        else primary <= slo.metric_target
    )
    lines += [
        "",
        f"- Primary metric: **{service.primary_metric} = {_fmt(primary)}** "
        f"({'higher' if service.primary_metric_higher_is_better else 'lower'} is better).",
        f"- Leakage gap (spatial − random CV of the primary metric): "
        f"**{_fmt(metrics.get('leakage_gap'))}** — how much a random split would flatter it.",
        f"- SLO target: {slo.metric} {'≥' if slo.metric_higher_is_better else '≤'} "
        f"{slo.metric_target} — {'met' if met else '**not met**'}; serving p95 ≤ "
        f"{slo.p95_latency_ms} ms, error budget {slo.error_budget:.2%}.",
    ]
    return lines


def _data_section(fingerprint: dict[str, Any], params: dict[str, str]) -> list[str]:
    lines = [
        f"{fingerprint.get('n_rows', '?')} examples from {len(fingerprint.get('scenes', []))} "
        f"synthetic scene(s), {params.get('cell_size_m', '?')} m cells.",
        "",
        "| scene | " + " | ".join(_MANIFEST_KEYS) + " | manifest sha256 |",
        "|---" * (len(_MANIFEST_KEYS) + 2) + "|",
    ]
    for scene in fingerprint.get("scenes", []):
        manifest = scene.get("manifest") or {}
        cells = [_fmt(manifest.get(k, "–")) for k in _MANIFEST_KEYS]
        lines.append(
            f"| {scene.get('name')} | "
            + " | ".join(cells)
            + f" | `{str(scene.get('sha256', ''))[:12]}` |"
        )
    scenes = fingerprint.get("scenes", [])
    for scene in scenes:
        stats = (scene.get("manifest") or {}).get("stats")
        if isinstance(stats, dict) and stats:
            summary = ", ".join(f"{k} {_fmt(v)}" for k, v in stats.items())
            lines.append(f"\n*{scene.get('name')}*: {summary}.")
    physics = next(
        (p for s in scenes if isinstance(p := (s.get("manifest") or {}).get("physics"), dict)),
        {},
    )
    relations = [f"- {k}: {v}" for k, v in physics.items() if isinstance(v, str)]
    if relations:
        lines += ["", "Physics of the scene generator (published relationships):", "", *relations]
    return lines


def _features_section(service: ServiceDefinition) -> list[str]:
    lines = [
        "| feature | unit | range | required | monotone | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for f in service.features:
        sign = {1: "↑", -1: "↓"}.get(service.monotone.get(f.name, 0), "")
        lines.append(
            f"| `{f.name}` | {f.unit} | {_fmt(f.minimum)} … {_fmt(f.maximum)} | "
            f"{'yes' if f.required else 'no'} | {sign} | {f.description} |"
        )
    lines.append(
        f"\nTarget: `{service.target}` ({service.target_unit}); the service returns "
        f"{service.prediction_unit}."
    )
    return lines


def _plots_section(plots: list[str]) -> list[str]:
    if not plots:
        return []
    lines = ["## Plots (from the training run)", ""]
    for plot in plots:
        title = plot.rsplit("/", 1)[-1].removesuffix(".png").replace("_", " ")
        lines += [f"![{title}]({plot})", ""]
    return lines


def _live_section(service: ServiceDefinition, live: dict[str, Any] | None) -> list[str]:
    """The live metric of this version, from ground truth sent back (none: no section)."""
    if not live or not live.get("n") or live.get("value") is None:
        return []
    slo = service.slo
    relation = ">=" if slo.metric_higher_is_better else "<="
    value = float(live["value"])
    ok = value >= slo.metric_target if slo.metric_higher_is_better else value <= slo.metric_target
    return [
        "## Live performance",
        "",
        f"- Live {live['metric']}: **{value:.4g}** over {live['n']} ground-truth rows received "
        f"since deployment (target {relation} {slo.metric_target:g}: "
        f"{'met' if ok else 'MISSED'}; see SLO.md).",
        "",
    ]


def _real_fmt(value: Any) -> str:
    """A number of a real-data report; JSON null (undefined, e.g. a constant stratum) is "–"."""
    return "–" if value is None else _fmt(value)


def _signed(value: Any) -> str:
    return "–" if value is None else f"{float(value):+.4g}"


_REAL_ROWS = (
    ("champion", "{model}"),
    ("champion_without_reference", "{model} without reference temperature"),
    ("ndvi_line", "NDVI line (in-sample)"),
    ("local_spatial_cv", "local spatial CV (trained on this scene)"),
)


def _real_heading(report: dict[str, Any]) -> list[str]:
    """Scene name, Landsat product id and acquisition, cells, when it was evaluated."""
    scene = report["scene"]
    source = ", ".join(
        part
        for part in (
            f"product `{scene['product_id']}`" if scene.get("product_id") else "",
            f"acquired {scene['acquired']}" if scene.get("acquired") else "",
            f"{scene.get('kind') or 'unknown'} scene",
        )
        if part
    )
    cells = f"{scene['n_cells']} cells of {_real_fmt(scene['cell_size_m'])} m"
    return [
        f"### {scene['name']}",
        "",
        f"{source}; {cells} with an observed `{report['target']}`; "
        f"evaluated {report['created_at']}.",
        "",
    ]


def _real_table(report: dict[str, Any], label: str) -> list[str]:
    unit = report.get("unit", "")
    lines = [
        f"| | n | offset ({unit}) | MAE after offset ({unit}) | Spearman |",
        "|---|---|---|---|---|",
    ]
    for key, row in _REAL_ROWS:
        scores = report[key]
        mae = scores.get("mae_after_offset", scores.get("mae"))
        cells = [scores["n"], scores.get("offset", 0.0), mae, scores["spearman"]]
        lines.append(f"| {row.format(model=label)} | " + " | ".join(map(_real_fmt, cells)) + " |")
    return [*lines, ""]


def _real_notes(report: dict[str, Any], label: str) -> list[str]:
    """The verdict, the line's slope, the local-CV set-up, and what each row means."""
    verdict, local, line = report["verdict"], report["local_spatial_cv"], report["ndvi_line"]
    won = "ranks" if verdict["beats_ndvi_line"] else "does not rank"
    sign = "−" if (line.get("slope") or 0.0) < 0 else "+"
    hidden = "better" if verdict["without_reference_beats_ndvi_line"] else "not better"
    return [
        f"- Verdict: **{label} {won} LST better than the NDVI line** (Spearman margin "
        f"{_signed(verdict['spearman_margin'])}; without the reference temperature "
        f"{_signed(verdict['without_reference_spearman_margin'])}, {hidden}).",
        f"- NDVI line: LST = {_real_fmt(line['intercept'])} {sign} "
        f"{_real_fmt(abs(line['slope']))}·NDVI, "
        f"{_real_fmt(line['slope_k_per_0_1_ndvi'])} K per +0.1 NDVI.",
        f"- Local spatial CV: {_real_fmt(local['block_size_m'])} m blocks, "
        f"{_real_fmt(local['buffer_m'])} m buffer, {local['folds']} folds; "
        f"R² {_real_fmt(local.get('r2_spatial_cv'))}, "
        f"random K-fold MAE {_real_fmt(local.get('mae_random_cv'))}.",
        "",
        f"Rows: *{label}* is the registered model applied to every cell with an observed LST, "
        "given the scene's own rural reference temperature; *without reference temperature* "
        "hides that input, as a user without a thermal image would call the API; the *NDVI "
        "line* is LST = a + b·NDVI fitted by least squares on the same cells (in-sample, "
        "which favours it; its Spearman is |Spearman(NDVI, LST)|); *local spatial CV* trains "
        "the same recipe on this scene alone and scores held-out blocks — what the features "
        "explain here when trained here. Offset = mean prediction − mean observation; MAE is "
        "taken after removing it, so it compares the spatial pattern, not the level.",
        "",
    ]


def _real_scene_section(report: dict[str, Any], plot: str | None) -> list[str]:
    """One real scene: the four rows, the verdict, the strata, what each row means."""
    model = report["model"]
    label = f"{'champion' if model.get('alias') == 'champion' else 'model'} v{model['version']}"
    lines = [
        *_real_heading(report),
        *_real_table(report, label),
        *_real_notes(report, label),
        *city_rows_section(report),
        *_strata_table(report, label),
    ]
    if plot:
        lines += [f"![{report['scene']['name']}: predicted vs observed, NDVI line]({plot})", ""]
    return lines


def _strata_table(report: dict[str, Any], label: str) -> list[str]:
    strata = report.get("strata") or {}
    rows = strata.get("rows") or []
    if not rows:
        return []
    lines = [
        f"Spearman by `{strata.get('by', 'stratum')}` (classified from the imagery; "
        "where the model wins or loses):",
        "",
        f"| {strata.get('by', 'stratum')} | n | {label} | without reference | NDVI line |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            row["n"],
            row.get("champion_spearman"),
            row.get("champion_without_reference_spearman"),
            row.get("ndvi_line_spearman"),
        ]
        lines.append(f"| {row['stratum']} | " + " | ".join(map(_real_fmt, cells)) + " |")
    return [*lines, ""]


def _real_data_section(reports: list[tuple[dict[str, Any], str | None]]) -> list[str]:
    """The real scenes this run was judged on (``terraops evaluate-real``); none: no section."""
    if not reports:
        return []
    lines = [
        "## Real-data evaluation",
        "",
        "The model applied to real scenes next to a one-line NDVI regression on the same "
        "pixels, logged to this run by `terraops evaluate-real`.",
        "",
    ]
    for report, plot in reports:
        lines += _real_scene_section(report, plot)
    return lines


def render_model_card(
    service: ServiceDefinition,
    info: Any,
    fingerprint: dict[str, Any],
    plots: list[str] | None = None,
    live: dict[str, Any] | None = None,
    real: list[tuple[dict[str, Any], str | None]] | None = None,
    whatif: dict[str, Any] | None = None,
) -> str:
    """Markdown card of one registered version (``info``: a ``ModelVersionInfo``).

    ``plots`` are image paths relative to the card, shown after the metrics;
    ``live`` is the version's error on ground truth received in production (the
    feedback store's ``live_error``), shown when there is any; ``real`` are the
    run's real-scene evaluations (``real_data/*.json``) with their plot paths;
    ``whatif`` is the version's what-if validation against counterfactual cities.
    """
    tags, params = info.tags, info.params
    lines = [
        f"# Model card — {service.title} (`{service.name}`), version {info.version}",
        "",
        f"{service.description} Generated by `terraops card {service.name}` from the MLflow "
        "registry; do not edit by hand.",
        "",
        "## Intended use",
        "",
        service.intended_use,
        "",
        "Out of scope:",
        "",
        *[f"- {x}" for x in service.out_of_scope],
        "",
        "## Model",
        "",
        f"LightGBM ({service.task}), monotone constraints {dict(service.monotone) or 'none'}; "
        "optional inputs may be omitted (trained with missing-value augmentation)."
        + (
            f" The model learns `{service.target}` relative to `{service.baseline}` and adds "
            "it back (the training mean stands in where it is unknown)."
            if service.baseline
            else ""
        ),
        "",
        "## Data",
        "",
        *_data_section(fingerprint, params),
        "",
        "## Features",
        "",
        *_features_section(service),
        "",
        "## Metrics",
        "",
        *_metrics_section(service, info.metrics),
        "",
        *uncertainty_section(service.task, info.metrics, params),
        *_live_section(service, live),
        *_real_data_section(real or []),
        *whatif_validation_section(service.name, whatif),
        *explanation_card_section(service.name, service.feature_names),
        *_plots_section(plots or []),
        "## Limitations",
        "",
        *[f"- {x}" for x in service.limitations],
        "",
        "## Ethical and operational notes",
        "",
        "- Synthetic cities contain no personal data; maps of real cities can reveal where "
        "vulnerable people live — publish at the cell level, not per address.",
        "- A model is served only after passing promotion gates (data quality, primary "
        "metric vs champion); roll back with `terraops rollback "
        f"{service.name}` (see RUNBOOK_ROLLBACK.md).",
        "- Every API response, COG and GeoJSON carries the model name and version below.",
        "",
        "## Lineage",
        "",
        f"- Registered model `{service.name}` version **{info.version}**, aliases: "
        f"{', '.join(info.aliases) or 'none'}; registered {info.created_at:%Y-%m-%d %H:%M} UTC",
        f"- Training run `{info.run_id}`; data quality: {tags.get('terraops.data_quality', '?')}",
        f"- Data fingerprint `{tags.get('terraops.data_fingerprint', '?')}` "
        f"(table `{fingerprint.get('table_sha256', '?')}`)",
        f"- Parameters: {', '.join(f'{k}={v}' for k, v in sorted(params.items()))}",
        "",
    ]
    return "\n".join(lines)


def tabular_card_markdown(run: CardRun) -> str:
    """The card of a tabular service's ``run``: plots, live error and real-scene reports."""
    settings, info, service = run.settings, run.info, run.service
    plot_dir = run.beside("plots")
    plots = [
        f"{plot_dir.name}/{p.name}" for p in download_run_plots(settings, info.run_id, plot_dir)
    ]
    live = None
    if settings.feedback_db.is_file():
        live = FeedbackStore(settings.feedback_db).live_error(service.name, version=info.version)
    real = _real_reports(settings, info.run_id, run.beside("real"))
    whatif = read_whatif_validation(settings, info.run_id, run.beside("whatif"))
    return render_model_card(service, info, run.fingerprint, plots, live, real, whatif)


TABULAR_CARD = CardRecipe(tabular_card_markdown, no_champion_hint=DEFAULT_HINT)

#: The card sections of each kind of service, by the name its definition declares (``model_card``).
CARD_RECIPES: dict[str, CardRecipe] = {"tabular": TABULAR_CARD, "segmentation": SEGMENTATION_CARD}


def write_model_card(
    settings: Settings, service: ModelService, out_path: Path, *, version: int | None = None
) -> tuple[Path, int]:
    """Render the champion's (or ``version``'s) card to ``out_path``; return (path, version).

    The one builder of every service's card: the version and its data
    fingerprint are read here, the sections come from the recipe the service
    declares (``service.model_card``).
    """
    recipe = CARD_RECIPES[service.model_card]
    registry = ModelRegistry(settings)
    info = resolve_version(registry, service.name, version, hint=recipe.no_champion_hint)
    fingerprint = download_run_json(settings, info.run_id, "data_fingerprint.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)  # the card's figures are written first
    run = CardRun(settings, service, info, fingerprint, out_path)
    atomic.atomic_write_text(out_path, recipe.markdown(run))
    return out_path, info.version


def _real_reports(
    settings: Settings, run_id: str, dest: Path
) -> list[tuple[dict[str, Any], str | None]]:
    """The run's ``real_data/*.json`` reports, each with its plot copied beside the card."""
    if dest.is_dir():
        for old in dest.iterdir():
            if old.is_file():
                old.unlink()
    files = {p.name: p for p in download_run_folder(settings, run_id, "real_data", dest)}
    reports = []
    for name in sorted(n for n in files if n.endswith(".json")):
        report = json.loads(files[name].read_text(encoding="utf-8"))
        plot = (report.get("artifacts") or {}).get("plot")
        reports.append((report, f"{dest.name}/{plot}" if plot in files else None))
    return reports
