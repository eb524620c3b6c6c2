"""Registered model versions as typed records, and a fast read of them from a SQLite store.

Why read MLflow's SQLite file directly: listing versions is what people type most
(``terraops models list uhi``), and going through ``MlflowClient`` costs about
three seconds of imports and store set-up for a few rows. On the default store (a
SQLite file under the home) the same rows come from five small read-only queries
in milliseconds. The reader answers only when the file has the tables and columns
it expects; anything else (another schema version, a tracking server, PostgreSQL)
returns ``None`` and the registry asks MLflow as before. A test checks that both
answers are equal on a real store.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote

T = TypeVar("T")

#: MLflow marks a deleted model version with this stage; its searches leave it out.
_DELETED_STAGE = "Deleted_Internal"


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version plus what its training run recorded."""

    service: str
    version: int
    run_id: str
    source: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]  # the run's tags, overlaid with the version's own tags
    aliases: list[str]
    created_at: datetime


def sqlite_store_path(tracking_uri: str) -> Path | None:
    """The database file of a SQLAlchemy SQLite URI (``None`` for any other URI):
    ``sqlite:///relative.db`` or ``sqlite:////absolute/path.db``."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    return Path(unquote(tracking_uri[len(prefix) :].split("?", 1)[0]))


def _read_store(tracking_uri: str, read: Callable[[sqlite3.Connection], T], missing: T) -> T | None:
    """``read`` on a read-only connection to the store; ``missing`` when the file does not
    exist yet, ``None`` for a URI that is not a SQLite file or a schema ``read`` does not fit."""
    path = sqlite_store_path(tracking_uri)
    if path is None:
        return None
    if not path.exists():
        return missing
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
            return read(db)
    except sqlite3.Error:
        return None


def read_sqlite_versions(tracking_uri: str, service: str) -> list[ModelVersionInfo] | None:
    """Every live version of ``service`` in a SQLite store, oldest first.

    ``[]`` when the store or the model does not exist yet; ``None`` when the URI is
    not a SQLite file or its schema is not the one this reader knows (the caller
    then asks MLflow).
    """
    no_versions: list[ModelVersionInfo] = []
    return _read_store(tracking_uri, lambda db: _versions(db, service), no_versions)


def read_sqlite_aliases(tracking_uri: str, service: str) -> dict[str, int] | None:
    """The aliases of ``service`` and their versions (``None`` as for the versions)."""
    no_aliases: dict[str, int] = {}
    return _read_store(tracking_uri, lambda db: _aliases(db, service), no_aliases)


def _aliases(db: sqlite3.Connection, service: str) -> dict[str, int]:
    rows = db.execute(
        "SELECT alias, version FROM registered_model_aliases WHERE name = ?", (service,)
    )
    return {alias: int(version) for alias, version in rows}


def _versions(db: sqlite3.Connection, service: str) -> list[ModelVersionInfo]:
    rows = db.execute(
        "SELECT version, run_id, source, creation_time FROM model_versions"
        " WHERE name = ? AND current_stage != ? ORDER BY version",
        (service, _DELETED_STAGE),
    ).fetchall()
    aliases: dict[int, list[str]] = {}
    for alias, version in _aliases(db, service).items():
        aliases.setdefault(version, []).append(alias)
    version_tags: dict[int, dict[str, str]] = {}
    for version, key, value in db.execute(
        "SELECT version, key, value FROM model_version_tags WHERE name = ?", (service,)
    ):
        version_tags.setdefault(int(version), {})[key] = value
    return [
        _info(db, service, int(version), run_id or "", source or "", created, aliases, version_tags)
        for version, run_id, source, created in rows
    ]


def _info(
    db: sqlite3.Connection,
    service: str,
    version: int,
    run_id: str,
    source: str,
    created_ms: int | None,
    aliases: dict[int, list[str]],
    version_tags: dict[int, dict[str, str]],
) -> ModelVersionInfo:
    metrics: dict[str, float] = {}
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    if run_id:
        metrics = {
            key: math.nan if is_nan else float(value)
            for key, value, is_nan in db.execute(
                "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,)
            )
        }
        params = dict(db.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)))
        tags = {
            key: value
            for key, value in db.execute(
                "SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)
            )
            if not key.startswith("mlflow.")
        }
    tags.update(version_tags.get(version, {}))
    return ModelVersionInfo(
        service=service,
        version=version,
        run_id=run_id,
        source=source,
        metrics=metrics,
        params=params,
        tags=tags,
        aliases=sorted(aliases.get(version, [])),
        created_at=datetime.fromtimestamp((created_ms or 0) / 1000, tz=UTC),
    )
