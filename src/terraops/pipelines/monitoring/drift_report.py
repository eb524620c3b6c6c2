"""Drift: current data vs the champion's training reference → Evidently report, JSON, map.

The **reference** is a bounded random sample of the training features, logged
with every training run (``reference/reference.parquet``), so a drift check
needs the registry only — never the training scenes. **Current** data is a
scene (its cell table, the one feature path), a table of features (parquet or
CSV), or the prediction log.

The statistics and the dataset decision live in :mod:`terraops.domain.drift`;
Evidently is handed the very same tests (the context-feature test is
registered with it as ``abs_wasserstein`` / ``beyond_range``) and renders the HTML report, so the
report, the JSON summary and the drift map always show the same numbers.
Evidently is slow to import (~10 s): it is imported inside the report function
only, never by the CLI's start-up or the server.
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rasterio.transform import Affine

from terraops.adapters import atomic, cog, raster_io, tables, tracking
from terraops.adapters.catalogue import LayerCatalogue
from terraops.adapters.prediction_log import read_predictions
from terraops.adapters.registry import ModelRegistry
from terraops.adapters.tracked_run import TrackedRun
from terraops.domain import drift
from terraops.domain import features as feature_math
from terraops.domain.drift import DriftPolicy, FeatureRule
from terraops.domain.layers import layer_id
from terraops.domain.scene_record import MANIFEST_NAME, Scene
from terraops.errors import InvalidInputError, NotFoundError, RegistryUnavailableError
from terraops.pipelines.lifecycle.resolve import resolve_version
from terraops.pipelines.maps.layer_products import now_iso, raster_layer
from terraops.pipelines.scenes.cell_tables import scene_cell_table
from terraops.pipelines.scenes.landcover_source import LandcoverSource, landcover_of_version
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

log = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "reference/reference.parquet"
REFERENCE_MAX_ROWS = 5_000
"""Rows kept as the training reference (a random sample: enough for distances
to be stable to ~0.02 σ, small enough to log with every run)."""
CURRENT_MAX_ROWS = 20_000
"""Current rows handed to Evidently (a larger input is sampled, deterministically)."""
DRIFT_TILE_CELLS = 10
"""Drift-map tile side in cells (10 × 20 m = 200 m: a few city blocks)."""

#: Per-service drift tests (see :mod:`terraops.domain.drift` for why).
POLICIES: dict[str, DriftPolicy] = {
    "uhi": DriftPolicy(
        per_feature={
            "reference_temperature": FeatureRule(
                method="beyond_range",
                threshold=3.0,
                critical=True,
                why="constant over a scene (the day's background, the model's baseline): "
                "drifted when >= 3 K beyond the training days' range; a heat wave is "
                ">= 5 K above normal (WMO HWDI)",
            )
        }
    ),
}


def policy_for(service: ServiceDefinition) -> DriftPolicy:
    return POLICIES.get(service.name, DriftPolicy())


# ----- the training reference ----------------------------------------------------


def reference_sample(service: ServiceDefinition, examples: pd.DataFrame) -> pd.DataFrame:
    """The features (plus ``scene``) of at most ``REFERENCE_MAX_ROWS`` training rows."""
    columns = [c for c in ("scene", *service.feature_names) if c in examples.columns]
    return drift.sample_rows(examples.loc[:, columns], REFERENCE_MAX_ROWS, seed=0)


def log_reference(run: TrackedRun, service: ServiceDefinition, examples: pd.DataFrame) -> int:
    """Log the reference sample to the training ``run``; returns its row count."""
    sample = reference_sample(service, examples)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        tables.write_parquet(sample, path)
        run.log_artifact(path, str(Path(REFERENCE_ARTIFACT).parent))
    return len(sample)


def champion_reference(
    settings: Settings, service: ServiceDefinition, version: int | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The reference sample of the champion (or ``version``) and its lineage."""
    registry = ModelRegistry(settings)
    info = resolve_version(
        registry,
        service.name,
        version,
        purpose="to compare against",
        hint=f"promote one, or pass --version N (terraops models list {service.name})",
    )
    version = info.version
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = tracking.download_run_file(
                settings, info.run_id, REFERENCE_ARTIFACT, Path(tmp) / "reference.parquet"
            )
        except RegistryUnavailableError as exc:
            raise NotFoundError(
                f"{service.name} v{version} (run {info.run_id}) has no training reference",
                hint="versions trained before drift monitoring have none: retrain to get one",
            ) from exc
        reference = tables.read_parquet_table(path)
    lineage = {"name": service.name, "version": version, "run_id": info.run_id}
    return reference, lineage


# ----- current data ----------------------------------------------------------------


def read_scene_folder(scene_dir: Path) -> Scene:
    """The scene at ``scene_dir``, read once for the monitoring commands to pass down.

    A folder without a manifest is named as "not a scene folder": monitoring
    is often pointed at the wrong folder, and that is what the user needs to hear.
    """
    if not (Path(scene_dir) / MANIFEST_NAME).is_file():
        raise NotFoundError(f"{scene_dir} is not a scene folder (no scene.json)")
    return raster_io.read_scene(Path(scene_dir))


def scene_examples(
    service: ServiceDefinition,
    scene: Scene,
    cell_size_m: float,
    landcover: LandcoverSource | None = None,
) -> pd.DataFrame:
    """The service's examples of a scene (ids + features), via the one feature path.

    ``landcover``: the source the compared model was trained with
    (:func:`~terraops.pipelines.scenes.landcover_source.landcover_of_version`); default the rules.
    """
    cells = scene_cell_table(scene, cell_size_m, landcover=landcover)
    return service.build_examples(cells)


def log_features(
    settings: Settings, service: ServiceDefinition, since: datetime | None
) -> pd.DataFrame:
    """The inputs of every logged prediction of ``service`` since ``since`` (NaN = not sent)."""
    rows = [
        record.get("features") or record.get("inputs") or {}
        for record in read_predictions(settings.predictions_dir, service.name, since=since)
    ]
    table = pd.DataFrame.from_records(rows, columns=service.feature_names)
    return table.apply(pd.to_numeric, errors="coerce")


def parse_since(text: str | None) -> datetime | None:
    """An ISO time (``2025-06-01T12:00``) or a duration back from now (``30m``, ``6h``, ``2d``)."""
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        from datetime import timedelta

        return datetime.now(UTC) - timedelta(seconds=float(text[:-1]) * units[text[-1]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"cannot read --since {text!r}", hint="use an ISO time (2025-06-01T12:00) or 6h / 2d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ----- the report ------------------------------------------------------------------


_CONTEXT_TESTS = {
    "abs_wasserstein": "Wasserstein distance (in the feature's unit)",
    "beyond_range": "Distance beyond the training range (in the feature's unit)",
}


def _register_evidently_tests() -> None:
    """Give Evidently the context-feature tests (idempotent), computed by our own code."""
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    for name, title in _CONTEXT_TESTS.items():

        def test(
            reference: pd.Series,
            current: pd.Series,
            _type: Any,
            threshold: float,
            method: str = name,
        ) -> tuple[float, bool]:
            value = drift.score(method, reference.to_numpy(float), current.to_numpy(float))
            return value, value >= threshold

        register_stattest(
            StatTest(
                name=name,
                display_name=title,
                allowed_feature_types=[ColumnType.Numerical],
                default_threshold=1.0,
            ),
            test,
        )


def _evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    policy: DriftPolicy,
    out: Path,
) -> dict[str, float]:
    """Write the Evidently HTML report; return Evidently's score per column."""
    import warnings

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    _register_evidently_tests()
    definition = DataDefinition(numerical_columns=columns)
    preset = DataDriftPreset(
        columns=columns,
        method=policy.default.method,
        threshold=policy.default.threshold,
        drift_share=policy.drift_share,
        per_column_method={c: policy.rule(c).method for c in columns},
        per_column_threshold={c: policy.rule(c).threshold for c in columns},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # correlations of constant columns
        snapshot = Report([preset]).run(
            Dataset.from_pandas(current.loc[:, columns], data_definition=definition),
            Dataset.from_pandas(reference.loc[:, columns], data_definition=definition),
        )
    with atomic.atomic_path(out, parents=True) as staging:
        snapshot.save_html(str(staging))
    scores: dict[str, float] = {}
    for metric in snapshot.dict().get("metrics", []):
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            scores[str(config["column"])] = float(metric["value"])
    return scores


def drift_report(
    settings: Settings,
    service: ServiceDefinition,
    current: pd.DataFrame,
    out: Path,
    *,
    source: str,
    reference: pd.DataFrame | None = None,
    model: dict[str, Any] | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Evidently HTML report at ``out`` and its JSON summary beside it (returned).

    ``reference`` defaults to the champion's (or ``version``'s) training reference.
    """
    if reference is None:
        reference, model = champion_reference(settings, service, version)
    policy = policy_for(service)
    features = service.feature_names
    missing = [f for f in service.required_features if f not in current.columns]
    if missing:
        raise InvalidInputError(
            f"current data lacks required features of {service.name}: {', '.join(missing)}"
        )
    current = drift.sample_rows(current, CURRENT_MAX_ROWS, seed=0)
    summary = drift.compare(reference, current, features, policy)
    tested = [f.feature for f in summary.features if f.score is not None]
    if not tested:
        raise InvalidInputError(
            f"too few rows to test drift ({len(current)}; at least {policy.min_rows} per feature)"
        )
    out = Path(out)
    evidently_scores = _evidently_report(reference, current, tested, policy, out)
    for name in tested:
        ours = summary.features[features.index(name)].score
        theirs = evidently_scores.get(name)
        if theirs is None or ours is None or not np.isclose(ours, theirs, rtol=1e-6, atol=1e-9):
            log.warning("drift score of %s differs: ours %s, Evidently %s", name, ours, theirs)
    payload: dict[str, Any] = {
        "service": service.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reference": {
            "model": model,
            "n_rows": len(reference),
            "scenes": sorted({str(s) for s in reference.get("scene", pd.Series([])).unique()}),
        },
        "current": {"source": source, "n_rows": len(current)},
        **summary.as_dict(),
        "evidently_scores": {k: round(v, 6) for k, v in evidently_scores.items()},
        "policy": policy.describe(),
        "report_html": str(out.absolute()),
    }
    json_path = out.with_suffix(".json")
    atomic.atomic_write_json(json_path, payload, indent=2, default=str)
    payload["report_json"] = str(json_path.absolute())
    return payload


# ----- the drift map -----------------------------------------------------------------


def drift_map(
    settings: Settings,
    service: ServiceDefinition,
    scene_dir: Path,
    out: Path | None = None,
    *,
    version: int | None = None,
    tile_cells: int = DRIFT_TILE_CELLS,
) -> dict[str, Any]:
    """Drift score per tile of a scene → validated COG with lineage → catalogue layer.

    The raster is at cell resolution; every cell carries its tile's score (the
    share of the tile's cells with a feature outside the training range, see
    :func:`terraops.domain.drift.tile_drift_scores`), so the map lines up with
    the prediction layers of the same scene.
    """
    if tile_cells < 2:
        raise InvalidInputError("a drift tile needs at least 2 × 2 cells")
    scene_record = read_scene_folder(Path(scene_dir))
    landcover = landcover_of_version(settings, service.name, version)
    examples = scene_examples(service, scene_record, settings.cell_size_m, landcover)
    reference, model = champion_reference(settings, service, version)
    assert model is not None
    policy = policy_for(service)
    grid = feature_math.cell_grid(
        scene_record.shape, float(scene_record.resolution), settings.cell_size_m
    )
    tiles, flags = drift.tile_drift_scores(
        reference,
        examples,
        service.feature_names,
        policy,
        shape=(grid.rows, grid.cols),
        tile_cells=tile_cells,
    )
    cells = np.kron(tiles, np.ones((tile_cells, tile_cells), dtype=np.float32))
    cells = cells[: grid.rows, : grid.cols].astype(np.float32)
    x0, y0 = scene_record.origin
    cell = grid.factor * float(scene_record.resolution)
    transform = Affine(cell, 0.0, x0, 0.0, -cell, y0)
    scene = scene_record.name
    lid = layer_id(service.name, "drift", scene)
    out = Path(out) if out else settings.layers_dir / f"{lid}.tif"
    created = now_iso()
    summary = drift.compare(reference, examples, service.feature_names, policy)
    unit = "share of cells outside the training range"
    cog.write_array_cog(
        cells,
        out,
        crs=scene_record.crs,
        transform=transform,
        nodata=float("nan"),
        tags={
            "terraops_layer": lid,
            "model_name": service.name,
            "model_version": str(model["version"]),
            "model_run_id": str(model["run_id"]),
            "scene": scene,
            "unit": unit,
            "drift_tile_cells": str(tile_cells),
            "drift_tests": json.dumps(policy.describe(), sort_keys=True),
            "created_at": created,
        },
        descriptions=(lid,),
    )
    finite = tiles[np.isfinite(tiles)]
    stats = {
        "tiles": int(finite.size),
        "tile_cells": tile_cells,
        "mean_score": round(float(finite.mean()), 4) if finite.size else None,
        "max_score": round(float(finite.max()), 4) if finite.size else None,
        "share_of_tiles_drifted": round(float(flags.sum() / max(finite.size, 1)), 4),
        "scene_dataset_drift": summary.dataset_drift,
        "scene_share_of_drifted_features": round(summary.drift_share, 4),
    }
    layer = raster_layer(
        lid=lid,
        title=f"Drift vs training — {scene} · {service.name} v{model['version']}",
        group="drift",
        role="drift",
        path=out,
        unit=unit,
        legend=f"Share of cells with a {service.name} input outside the training range, "
        f"per {tile_cells}×{tile_cells}-cell tile (0 = like training, 1 = all cells new)",
        colormap="reds",
        rescale=(0.0, 1.0),
        lineage={
            "model": model,
            "scene": scene,
            "scene_dir": str(scene_record.folder.resolve()),
            "tile_cells": tile_cells,
        },
        stats=stats,
        created_at=created,
    )
    LayerCatalogue(settings.layers_dir).add(layer)
    return {
        "service": service.name,
        "scene": scene,
        "model": model,
        "out": str(Path(out).absolute()),
        "layer": lid,
        "grid": [grid.rows, grid.cols],
        **stats,
        "tile_scores": [[None if np.isnan(v) else round(float(v), 4) for v in r] for r in tiles],
    }
