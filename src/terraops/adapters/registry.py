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

import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from terraops.adapters.atomic import temp_sibling_directory
from terraops.adapters.model_versions import (
    ModelVersionInfo,
    read_sqlite_aliases,
    read_sqlite_versions,
)
from terraops.errors import ModelNotFoundError, RegistryUnavailableError
from terraops.settings import Settings
from terraops.timing import phase

_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}
MAX_UNANSWERED_CALLS = 4
"""Calls of a fail-fast registry left running past their deadline before new ones fail at once."""

T = TypeVar("T")


def _error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", "") or "")


def _is_not_found(exc: BaseException) -> bool:
    code = _error_code(exc)
    text = str(exc).lower()
    return code in _NOT_FOUND_CODES and (
        code != "INVALID_PARAMETER_VALUE" or "not found" in text or "does not exist" in text
    )


class _Deadline:
    """Waits at most ``timeout_s`` for each call, which runs on a daemon thread.

    Why: MLflow has no per-client HTTP timeout — it reads
    ``MLFLOW_HTTP_REQUEST_TIMEOUT``/``_MAX_RETRIES`` from the process environment on
    every request — so a fail-fast registry cannot make MLflow give up sooner; it
    stops *waiting* instead. A call past its deadline keeps running until MLflow
    gives up; once :data:`MAX_UNANSWERED_CALLS` such calls are pending, further
    calls fail at once rather than pile threads onto a hung server.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()  # guards the counter only, never an MLflow call
        self._unanswered = 0

    def run(self, action: Callable[[], T]) -> T:
        with self._lock:
            if self._unanswered >= MAX_UNANSWERED_CALLS:
                raise TimeoutError(f"{self._unanswered} earlier calls are still unanswered")
        future: Future[T] = Future()

        def work() -> None:
            try:
                future.set_result(action())
            except BaseException as exc:  # handed to the waiting caller
                future.set_exception(exc)

        threading.Thread(target=work, name="terraops-registry-call", daemon=True).start()
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            with self._lock:
                self._unanswered += 1
            future.add_done_callback(self._answered_late)  # at once if it just ended
            raise TimeoutError(f"no answer within {self.timeout_s:g} s") from None

    def _answered_late(self, _: Future[Any]) -> None:
        with self._lock:
            self._unanswered -= 1


class ModelRegistry:
    """MLflow model registry for one terraops home (or tracking server)."""

    def __init__(self, settings: Settings, *, timeout_s: float | None = None) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self.uri = settings.tracking_uri
        if self.uri.startswith("sqlite:"):
            settings.ensure_home()
        self._mlflow: Any = None
        self._mlflow_lock = threading.Lock()
        self._deadline = _Deadline(timeout_s) if timeout_s is not None else None

    # ----- plumbing ---------------------------------------------------------
    @property
    def _client(self) -> Any:
        """MLflow's client, made on first use: importing MLflow and opening its store
        take seconds that a command answered from :func:`read_sqlite_versions` skips."""
        with self._mlflow_lock:
            if self._mlflow is None:
                # MLflow's plumbing (pandas, the model bundle) loads with the first call
                from terraops.adapters.tracking import mlflow_client

                self._mlflow = mlflow_client(self.settings)
            return self._mlflow

    def _call(self, what: str, action: Callable[[], T], *, bounded: bool = True) -> T:
        """Run one registry operation; map MLflow's failures to our two errors.

        A fail-fast registry (``timeout_s``) gives a ``bounded`` operation that
        long: see :class:`_Deadline`. A model download is not bounded (a large
        model may take longer than a poll is allowed to). Nothing here touches
        process-wide state, so calls from many threads (the server's poller,
        requests, a model download) run side by side.
        """
        try:
            if self._deadline is None or not bounded:
                return action()
            return self._deadline.run(action)
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

    def ping(self) -> None:
        """Raise ``RegistryUnavailableError`` unless the registry answers."""
        self._call("ping", lambda: self._client.search_registered_models(max_results=1))

    # ----- aliases ----------------------------------------------------------
    def get_alias(self, service: str, alias: str) -> int | None:
        """Version the alias points at, or None (also when the model does not exist)."""
        fast = read_sqlite_aliases(self.uri, service)
        if fast is not None:
            return fast.get(alias)
        try:
            found = self._call(
                f"alias {service}@{alias}",
                lambda: self._client.get_model_version_by_alias(service, alias),
            )
        except ModelNotFoundError:
            return None
        return int(found.version)

    def get_aliases(self, service: str) -> dict[str, int]:
        """Every alias of the service's model in one registry call ({} if no model).

        One snapshot, so champion and challenger are read consistently (and a
        server's poll costs one round trip, not one per alias).
        """
        fast = read_sqlite_aliases(self.uri, service)
        if fast is not None:
            return fast
        try:
            return self._call(f"aliases of {service}", lambda: self._aliases(service))
        except ModelNotFoundError:
            return {}

    def _aliases(self, service: str) -> dict[str, int]:
        aliases = self._client.get_registered_model(service).aliases
        return {alias: int(version) for alias, version in aliases.items()}

    def set_alias(self, service: str, alias: str, version: int) -> None:
        """Raw alias move. Only ``terraops.pipelines.lifecycle.aliases`` may call this."""
        self._call(
            f"set alias {service}@{alias} -> v{version}",
            lambda: self._client.set_registered_model_alias(service, alias, str(version)),
        )

    def delete_alias(self, service: str, alias: str) -> None:
        """Raw alias removal (a missing alias is not an error)."""
        try:
            self._call(
                f"delete alias {service}@{alias}",
                lambda: self._client.delete_registered_model_alias(service, alias),
            )
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

        Read straight from the SQLite file of a local store when its schema is known
        (milliseconds, no MLflow import); from MLflow otherwise."""
        fast = read_sqlite_versions(self.uri, service)
        if fast is not None:
            return fast
        versions = self._call(f"list versions of {service}", lambda: self._versions(service))
        return sorted(versions, key=lambda v: v.version)

    def _versions(self, service: str) -> list[ModelVersionInfo]:
        """MLflow's version search leaves ``aliases`` empty on SQL stores, so the
        aliases come from the registered model itself."""
        found = self._client.search_model_versions(f"name = '{service}'")
        if not found:
            return []
        by_version: dict[int, list[str]] = {}
        for alias, version in self._aliases(service).items():
            by_version.setdefault(version, []).append(alias)
        return [
            replace(info, aliases=sorted({*info.aliases, *by_version.get(info.version, [])}))
            for info in map(self._info, found)
        ]

    def get_version(self, service: str, version: int) -> ModelVersionInfo:
        fast = read_sqlite_versions(self.uri, service)
        if fast is not None:
            for info in fast:
                if info.version == version:
                    return info
            raise ModelNotFoundError(
                f"model {service} v{version}: not found",
                hint="list versions with `terraops models list`",
            )
        return self._call(
            f"model {service} v{version}",
            lambda: self._info(self._client.get_model_version(service, str(version))),
        )

    def run_artifacts(self, service: str, version: int) -> list[str]:
        """Top-level artifact names of the version's training run (promotion gates).

        Added by the lifecycle (helper C): the gates check that a candidate's run
        logged ``feature_schema.json`` and ``data_fingerprint.json``.
        """
        info = self.get_version(service, version)
        if not info.run_id:
            return []
        listed = self._call(
            f"artifacts of run {info.run_id}", lambda: self._client.list_artifacts(info.run_id)
        )
        return sorted(f.path for f in listed)

    # ----- model files ------------------------------------------------------
    @phase("fetch model")
    def fetch_model(self, service: str, version: int) -> Path:
        """Local copy of a version's MLflow model directory (cached; atomic).

        Registered versions are immutable, so a complete cached copy is reused
        without asking the registry — serving keeps starting during an outage.
        The copy is downloaded into a temporary sibling (named with the pid and a
        random token) and renamed into place, so a crash never leaves a
        half-written model where a loader looks. Only the look-up of the
        download location is a (fail-fast) registry call: the download itself
        holds nothing that other registry calls wait for.
        """
        target = self.settings.model_cache_dir / service / str(version)
        if (target / "MLmodel").is_file():
            return target
        what = f"download model {service} v{version}"
        uri = self._call(
            what, lambda: self._client.get_model_version_download_uri(service, str(version))
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        with temp_sibling_directory(target, label="download") as tmp:
            local = self._call(what, lambda: self._download(uri, tmp), bounded=False)
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
        return target

    def _download(self, artifact_uri: str, into: Path) -> Path:
        """Download by URI with this registry's own URIs (no global MLflow state)."""
        from mlflow.artifacts import download_artifacts

        return Path(
            download_artifacts(
                artifact_uri=artifact_uri,
                dst_path=str(into),
                tracking_uri=self.uri,
                registry_uri=self.uri,
            )
        )
