"""The held-out city blocks a training run kept, as the promotion gates read them.

A model trained on an imported city (``terraops train --scenes REAL_DIR``) never
sees a share of that city's spatial blocks; its run keeps them
(``city_holdout/holdout.parquet``, fingerprinted in the ``terraops.city_holdout``
tag). When such a version is the candidate, the gates score it and the champion
on those cells instead of the service's shared evaluation set: the comparison a
user of that city cares about, on cells neither model was fitted to (unless the
champion itself was trained on them).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from terraops.adapters import tables, tracking
from terraops.adapters.registry import ModelRegistry
from terraops.errors import InvalidInputError
from terraops.settings import Settings

HOLDOUT_TAG = "terraops.city_holdout"
HOLDOUT_ARTIFACT = "city_holdout/holdout.parquet"


def fingerprint(table: pd.DataFrame) -> str:
    return hashlib.sha256(
        pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()
    ).hexdigest()


def holdout_label(service: str, scenes: Sequence[str], digest: str) -> str:
    return f"{service} held-out blocks of {', '.join(scenes)} (sha256 {digest[:12]})"


def city_holdout_set(
    settings: Settings, registry: ModelRegistry, service: str, version: int
) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The held-out city blocks a candidate's run kept (None: it kept none), for the
    gates to score champion and candidate on; a table that no longer matches its
    fingerprint is refused."""
    info = registry.get_version(service, version)
    label = info.tags.get(HOLDOUT_TAG)
    if not label:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = tracking.download_run_file(
            settings, info.run_id, HOLDOUT_ARTIFACT, Path(tmp) / "holdout.parquet"
        )
        table = tables.read_parquet_table(path)
    if not label.endswith(f"(sha256 {fingerprint(table)[:12]})"):
        raise InvalidInputError(
            f"the held-out blocks of {service} v{version} do not match their fingerprint",
            hint="retrain the candidate; its run's city_holdout artifact was changed",
        )
    return table, {"label": label, "service": service, "version": version}
