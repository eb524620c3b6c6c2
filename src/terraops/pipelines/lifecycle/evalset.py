"""The shared held-out evaluation set of a service: versioned, fingerprinted, on disk.

Why: two versions trained on different scenes report cross-validation numbers
on *different* data, so comparing them says little. Promotion gates score the
candidate **and** the champion on the same table — built from held-out scenes
(cities no candidate should train on), checked by the data-quality suite,
sampled to at most ``EVAL_MAX_ROWS`` rows and fingerprinted (SHA-256 of its
values). Each build is a new version under
``TERRAOPS_HOME/evaluation/<service>/``; ``current.json`` names the one in force.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from terraops.adapters import atomic, tables
from terraops.errors import InvalidInputError
from terraops.pipelines.monitoring.drift_report import read_scene_folder, scene_examples
from terraops.pipelines.monitoring.quality import check_examples, refuse_unless_passed
from terraops.pipelines.scenes.distributed import prepare_cell_tables
from terraops.services.base import ID_COLUMNS, ServiceDefinition
from terraops.settings import Settings

EVAL_MAX_ROWS = 20_000
CURRENT = "current.json"


def folder(settings: Settings, service: str) -> Path:
    return settings.home_dir / "evaluation" / service


def fingerprint(table: pd.DataFrame) -> str:
    values = pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()
    return hashlib.sha256(values).hexdigest()


def evaluation_metric(service: ServiceDefinition) -> str:
    """The primary metric's base name (``mae_spatial_cv`` → ``mae``)."""
    return service.primary_metric.removesuffix("_spatial_cv")


def build(
    settings: Settings, service: ServiceDefinition, scene_dirs: Sequence[Path]
) -> dict[str, Any]:
    """Make a new version of the service's evaluation set from held-out scenes."""
    if not scene_dirs:
        raise InvalidInputError("no scenes given", hint="pass --scenes DIR (held-out cities)")
    scenes = [read_scene_folder(Path(d)) for d in scene_dirs]
    prepare_cell_tables(settings, scenes)  # on Dask, if set
    examples = pd.concat(
        [scene_examples(service, scene, settings.cell_size_m) for scene in scenes],
        ignore_index=True,
    )
    result = check_examples(settings, service, examples, source="evaluation set")
    refuse_unless_passed([result], f"evaluation set of {service.name}")
    columns = [c for c in (*ID_COLUMNS, *service.feature_names, service.target) if c in examples]
    table = examples.loc[examples[service.target].notna(), columns]
    if len(table) > EVAL_MAX_ROWS:
        table = table.sample(n=EVAL_MAX_ROWS, random_state=0)
    table = table.reset_index(drop=True)
    digest = fingerprint(table)
    root = folder(settings, service.name)
    previous = current_info(settings, service.name)
    version = int(previous["version"]) + 1 if previous else 1
    path = root / f"v{version}-{digest[:12]}.parquet"
    tables.write_parquet_atomic(table, path, parents=True)
    info = {
        "service": service.name,
        "version": version,
        "sha256": digest,
        "path": path.name,
        "n_rows": len(table),
        "scenes": sorted({str(s) for s in table["scene"].unique()}) if "scene" in table else [],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metric": evaluation_metric(service),
    }
    atomic.atomic_write_json(root / CURRENT, info, indent=2)
    return info


def current_info(settings: Settings, service: str) -> dict[str, Any] | None:
    path = folder(settings, service) / CURRENT
    if not path.is_file():
        return None
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else None


def label(info: dict[str, Any]) -> str:
    return f"{info['service']} v{info['version']} (sha256 {str(info['sha256'])[:12]})"


def load_current(settings: Settings, service: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The evaluation set in force and its info, or None; a tampered file is refused."""
    info = current_info(settings, service)
    if info is None:
        return None
    table = tables.read_parquet_table(folder(settings, service) / str(info["path"]))
    if fingerprint(table) != info["sha256"]:
        raise InvalidInputError(
            f"evaluation set {label(info)} does not match its fingerprint",
            hint=f"rebuild it: terraops evalset build {service} --scenes ...",
        )
    return table, info


def score(service: ServiceDefinition, predictor: Any, table: pd.DataFrame) -> dict[str, float]:
    """The service's metrics of one loaded model on the evaluation table."""
    names = list(predictor.feature_names)
    X = np.column_stack(
        [
            table[n].to_numpy(np.float64) if n in table else np.full(len(table), np.nan)
            for n in names
        ]
    )
    predicted = np.asarray(predictor.predict(X), dtype=np.float64)
    y = table[service.target].to_numpy(np.float64)
    return {k: float(v) for k, v in service.metrics(y, predicted).items()}
