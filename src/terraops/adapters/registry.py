"""The model registry: MLflow behind a small, typed, failure-aware interface.

Why wrap MLflow: callers (lifecycle, serving, cards) need four things MLflow
does not give directly — typed version records that include the training run's
metrics and tags, a local cache of model files that survives registry outages,
one error type for "the registry is down" (``RegistryUnavailableError``), and
calls that fail *fast* when asked to (the serving poller must not hang for
minutes of MLflow's default retries while requests wait).

Aliases: ``set_alias`` / ``delete_alias`` are raw MLflow operations; only
``terraops.pipelines.lifecycle.aliases`` calls them, so that every move is journaled.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from terraops.errors import ModelNotFoundError, RegistryUnavailableError
from terraops.settings import Settings

_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}
_ENV_LOCK = threading.RLock()


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


def _error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", "") or "")


def _is_not_found(exc: BaseException) -> bool:
    code = _error_code(exc)
    text = str(exc).lower()
    return code in _NOT_FOUND_CODES and (
        code != "INVALID_PARAMETER_VALUE" or "not found" in text or "does not exist" in text
    )


class ModelRegistry:
    """MLflow model registry for one terraops home (or tracking server)."""

    def __init__(self, settings: Settings, *, timeout_s: float | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.settings = settings
        self.timeout_s = timeout_s
        self.uri = settings.tracking_uri
        if self.uri.startswith("sqlite:"):
            settings.ensure_home()
        self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    # ----- plumbing ---------------------------------------------------------
    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Run an MLflow call with this registry's timeout; map failures to our errors.

        MLflow reads its HTTP timeout/retry settings from the environment on
        every request, so a fail-fast registry sets them for the duration of
        the call (under a lock: the variables are process-global).
        """
        overrides: dict[str, str] = {}
        if self.timeout_s is not None:
            overrides = {
                "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(self.timeout_s))),
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            }
        with _ENV_LOCK:
            saved = {k: os.environ.get(k) for k in overrides}
            os.environ.update(overrides)
            try:
                yield
            except (ModelNotFoundError, RegistryUnavailableError):
                raise
            except Exception as exc:
                if _is_not_found(exc):
                    raise ModelNotFoundError(
                        f"{what}: not found", hint="list versions with `terraops models list`"
                    ) from exc
                raise RegistryUnavailableError(
                    f"model registry at {self.uri} unavailable ({what}): {exc}".splitlines()[0],
                    hint="check TERRAOPS_MLFLOW_TRACKING_URI and that the server is running",
                ) from exc
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

    def ping(self) -> None:
        """Raise ``RegistryUnavailableError`` unless the registry answers."""
        with self._call("ping"):
            self._client.search_registered_models(max_results=1)

    # ----- aliases ----------------------------------------------------------
    def get_alias(self, service: str, alias: str) -> int | None:
        """Version the alias points at, or None (also when the model does not exist)."""
        try:
            with self._call(f"alias {service}@{alias}"):
                return int(self._client.get_model_version_by_alias(service, alias).version)
        except ModelNotFoundError:
            return None

    def get_aliases(self, service: str) -> dict[str, int]:
        """Every alias of the service's model in one registry call ({} if no model).

        One snapshot, so champion and challenger are read consistently (and a
        server's poll costs one round trip, not one per alias).
        """
        try:
            with self._call(f"aliases of {service}"):
                aliases = self._client.get_registered_model(service).aliases
        except ModelNotFoundError:
            return {}
        return {alias: int(version) for alias, version in aliases.items()}

    def set_alias(self, service: str, alias: str, version: int) -> None:
        """Raw alias move. Only ``terraops.pipelines.lifecycle.aliases`` may call this."""
        with self._call(f"set alias {service}@{alias} -> v{version}"):
            self._client.set_registered_model_alias(service, alias, str(version))

    def delete_alias(self, service: str, alias: str) -> None:
        """Raw alias removal (a missing alias is not an error)."""
        try:
            with self._call(f"delete alias {service}@{alias}"):
                self._client.delete_registered_model_alias(service, alias)
        except ModelNotFoundError:
            return

    # ----- versions ---------------------------------------------------------
    def _info(self, mv: Any) -> ModelVersionInfo:
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        tags: dict[str, str] = {}
        if mv.run_id:
            run = self._client.get_run(mv.run_id)
            metrics = {k: float(v) for k, v in run.data.metrics.items()}
            params = dict(run.data.params)
            tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        tags.update(dict(mv.tags or {}))
        return ModelVersionInfo(
            service=mv.name,
            version=int(mv.version),
            run_id=mv.run_id or "",
            source=mv.source or "",
            metrics=metrics,
            params=params,
            tags=tags,
            aliases=sorted(mv.aliases or []),
            created_at=datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, tz=UTC),
        )

    def list_versions(self, service: str) -> list[ModelVersionInfo]:
        """Every version of the service's registered model, oldest first ([] if none).

        MLflow's version search leaves ``aliases`` empty on SQL stores, so the
        aliases come from the registered model itself.
        """
        with self._call(f"list versions of {service}"):
            found = self._client.search_model_versions(f"name = '{service}'")
            if not found:
                return []
            by_version: dict[int, list[str]] = {}
            for alias, version in self.get_aliases(service).items():
                by_version.setdefault(version, []).append(alias)
            versions = [
                replace(info, aliases=sorted({*info.aliases, *by_version.get(info.version, [])}))
                for info in map(self._info, found)
            ]
        return sorted(versions, key=lambda v: v.version)

    def get_version(self, service: str, version: int) -> ModelVersionInfo:
        with self._call(f"model {service} v{version}"):
            return self._info(self._client.get_model_version(service, str(version)))

    def run_artifacts(self, service: str, version: int) -> list[str]:
        """Top-level artifact names of the version's training run (promotion gates).

        Added by the lifecycle (helper C): the gates check that a candidate's run
        logged ``feature_schema.json`` and ``data_fingerprint.json``.
        """
        info = self.get_version(service, version)
        if not info.run_id:
            return []
        with self._call(f"artifacts of run {info.run_id}"):
            return sorted(f.path for f in self._client.list_artifacts(info.run_id))

    # ----- model files ------------------------------------------------------
    def fetch_model(self, service: str, version: int) -> Path:
        """Local copy of a version's MLflow model directory (cached; atomic).

        Registered versions are immutable, so a complete cached copy is reused
        without asking the registry — serving keeps starting during an outage.
        The copy is downloaded into a temporary sibling and renamed into place,
        so a crash never leaves a half-written model where a loader looks.
        """
        target = self.settings.model_cache_dir / service / str(version)
        if (target / "MLmodel").is_file():
            return target
        from mlflow.artifacts import download_artifacts

        # A per-file progress bar on stderr is noise in server logs.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            with self._call(f"download model {service} v{version}"):
                uri = self._client.get_model_version_download_uri(service, str(version))
                local = Path(
                    download_artifacts(
                        artifact_uri=uri,
                        dst_path=str(tmp),
                        tracking_uri=self.uri,
                        registry_uri=self.uri,
                    )
                )
            if not (local / "MLmodel").is_file():
                raise RegistryUnavailableError(
                    f"model {service} v{version} has no MLmodel file at {uri}"
                )
            if target.exists():  # debris of a copy made outside this code path
                shutil.rmtree(target, ignore_errors=True)
            try:
                local.rename(target)
            except OSError:  # another process won the race: its copy is as good
                if not (target / "MLmodel").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target
