"""MLflow tracking plumbing: where runs go, and how a service model is logged.

The rules this module enforces so no caller has to remember them:
- every call goes through an explicit ``MlflowClient`` built from ``Settings``
  (:func:`mlflow_client`; SQLite under the home by default) with the run id
  passed explicitly (:class:`TrackedRun`): MLflow's global tracking URI and
  "active run" are never used, so two stores can be used from two threads of
  one process; a local store's experiments get an artifact location under
  ``settings.artifact_root`` — never ``./mlruns`` in the working directory;
- a model is logged with an explicit signature, input example and pip
  requirements (MLflow's requirement inference takes seconds and guesses);
- a run records which process owns it, so a run whose process was killed
  (SIGKILL, OOM, power cut) — which MLflow leaves ``RUNNING`` forever — is
  closed as ``KILLED`` by the next training on the same host.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from terraops.adapters.model_bundle import TERRAOPS_METADATA_KEY
from terraops.adapters.tracked_run import TrackedRun
from terraops.errors import RegistryUnavailableError
from terraops.services.base import ServiceDefinition
from terraops.settings import Settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

#: Tag naming the process that owns a run, ``host:pid``.
OWNER_TAG = "terraops.owner"
#: Tag set on a run closed because its process died (says who closed it and why).
ABANDONED_TAG = "terraops.abandoned"

log = logging.getLogger(__name__)


def experiment_name(settings: Settings, service: str) -> str:
    return f"{settings.experiment_prefix}-{service}"


def _is_local_store(settings: Settings) -> bool:
    uri = settings.tracking_uri
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def mlflow_client(settings: Settings) -> MlflowClient:
    """A client of the settings' tracking store and model registry (the same URI)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def _unavailable(settings: Settings, exc: BaseException) -> RegistryUnavailableError:
    return RegistryUnavailableError(
        f"MLflow tracking store {settings.tracking_uri} unavailable: {exc}".splitlines()[0],
        hint="check TERRAOPS_MLFLOW_TRACKING_URI",
    )


def ensure_experiment(settings: Settings, service: str) -> str:
    """The id of the service's experiment in the settings' store (created if missing)."""
    settings.ensure_home()
    client = mlflow_client(settings)
    name = experiment_name(settings, service)
    try:
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            return str(existing.experiment_id)
        location = None
        if _is_local_store(settings):
            location = (settings.artifact_root / name).as_uri()
        return str(client.create_experiment(name, artifact_location=location))
    except Exception as exc:
        raise _unavailable(settings, exc) from exc


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def close_abandoned_runs(settings: Settings, experiment_id: str) -> list[str]:
    """Mark ``KILLED`` the experiment's ``RUNNING`` runs whose owning process on this
    host is gone (and ``FAILED`` the models they were still logging); return their ids.

    Why: a training process killed mid-run cannot end its run, and a run shown as
    running forever hides that it died. Only runs owned by a process on this host
    that no longer exists are touched — a live training elsewhere is left alone.
    """
    from mlflow.entities import LoggedModelStatus

    host = socket.gethostname()
    client = mlflow_client(settings)
    closed: list[str] = []
    try:
        running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'")
        for run in running:
            owner_host, _, pid = run.data.tags.get(OWNER_TAG, "").rpartition(":")
            if owner_host != host or not pid.isdigit() or _process_alive(int(pid)):
                continue
            why = f"process {pid} on {host} ended without closing the run"
            client.set_tag(run.info.run_id, ABANDONED_TAG, f"{why}; closed by the next training")
            logged = client.search_logged_models(
                [experiment_id], f"source_run_id = '{run.info.run_id}'"
            )  # (MLflow's SQL store cannot filter on status: it stores it as a number)
            for model in logged:  # killed inside log_model: never registered, mark it
                if model.status == LoggedModelStatus.PENDING:
                    client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
            client.set_terminated(run.info.run_id, status="KILLED")
            log.warning("closed run %s as KILLED: %s", run.info.run_id, why)
            closed.append(run.info.run_id)
    except Exception as exc:
        raise _unavailable(settings, exc) from exc
    return closed


@contextmanager
def owned_run(settings: Settings, experiment_id: str, run_name: str) -> Iterator[TrackedRun]:
    """A new run, ended ``FINISHED`` (``FAILED`` on an error) when the block ends.

    Like ``mlflow.start_run`` (same context tags), but the run is not made
    MLflow's process-wide "active run": the block logs through the yielded
    :class:`TrackedRun`. Runs abandoned by dead processes are closed first, and
    the new run is tagged with its owner (``host:pid``) so the next training
    can close it in turn.
    """
    from mlflow.entities import RunStatus
    from mlflow.tracking.context import registry as context_registry

    close_abandoned_runs(settings, experiment_id)
    client = mlflow_client(settings)
    owner = {OWNER_TAG: f"{socket.gethostname()}:{os.getpid()}"}
    tags = context_registry.resolve_tags({**owner, "mlflow.runName": run_name})
    try:
        created = client.create_run(experiment_id, tags=tags, run_name=run_name)
    except Exception as exc:
        raise _unavailable(settings, exc) from exc
    run = TrackedRun(client, created.info.run_id, experiment_id, settings.tracking_uri)
    status = RunStatus.FAILED
    try:
        yield run
        status = RunStatus.FINISHED
    finally:
        client.set_terminated(run.run_id, status=RunStatus.to_string(status))


def pip_requirements() -> list[str]:
    """Pinned runtime requirements of a logged LightGBM model."""
    import lightgbm

    return [
        f"lightgbm=={lightgbm.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]


def model_signature(service: ServiceDefinition) -> Any:
    """Named float inputs (optional features marked not required), one float output."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema([ColSpec("double", f.name, required=f.required) for f in service.features])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double")]))


def input_example(service: ServiceDefinition) -> pd.DataFrame:
    """One row of the features' documented example values."""
    return pd.DataFrame([{f.name: float(f.example) for f in service.features}])


def log_service_model(
    run: TrackedRun,
    booster: Any,
    service: ServiceDefinition,
    metadata: dict[str, Any],
    extra_artifacts: Mapping[str, Path] | None = None,
) -> tuple[str, int]:
    """Log the model to ``run``, register a new version; return (model_uri, version).

    Logged as the terraops pyfunc (:mod:`terraops.adapters.pyfunc_model`) with the
    booster as its artifact, so MLflow tooling predicts what the API predicts.
    ``extra_artifacts`` (name → file or folder) travel in the same model folder
    (the calibrated-uncertainty folder, :mod:`terraops.adapters.uncertainty_bundle`).
    """
    # lazy: MLflow's pyfunc, needed only to log a model
    from terraops.adapters.pyfunc_model import ServiceModel

    with tempfile.TemporaryDirectory() as tmp:
        booster_path = Path(tmp) / "model.lgb"
        booster.save_model(str(booster_path))
        return run.log_pyfunc_model(
            service.name,
            python_model=ServiceModel(),
            artifacts={
                "booster": str(booster_path),
                **{name: str(p) for name, p in (extra_artifacts or {}).items()},
            },
            model_config=metadata,
            signature=model_signature(service),
            input_example=input_example(service),
            pip_requirements=pip_requirements(),
            metadata={TERRAOPS_METADATA_KEY: metadata},
        )


def _download_run_artifact(settings: Settings, run_id: str, artifact: str, tmp: str) -> Path:
    """Download one artifact (file or folder) of a run into ``tmp``; map failures."""
    from mlflow.artifacts import download_artifacts

    try:
        return Path(
            download_artifacts(
                run_id=run_id,
                artifact_path=artifact,
                dst_path=tmp,
                tracking_uri=settings.tracking_uri,
            )
        )
    except Exception as exc:
        raise RegistryUnavailableError(
            f"cannot read {artifact} of run {run_id}: {exc}".splitlines()[0]
        ) from exc


def download_run_json(settings: Settings, run_id: str, artifact_file: str) -> dict[str, Any]:
    """Read a JSON artifact of a run (e.g. ``data_fingerprint.json``)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = _download_run_artifact(settings, run_id, artifact_file, tmp)
        loaded = json.loads(local.read_text())
    return loaded if isinstance(loaded, dict) else {"value": loaded}


def download_run_plots(settings: Settings, run_id: str, dest: Path) -> list[Path]:
    """Copy a run's ``plots/*.png`` into ``dest`` (replacing what was there)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = _download_run_artifact(settings, run_id, "plots", tmp)
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.glob("*.png"):
            old.unlink()
        copied = []
        for png in sorted(local.glob("*.png")):
            target = dest / png.name
            shutil.copyfile(png, target)
            copied.append(target)
    return copied


def download_run_file(settings: Settings, run_id: str, artifact_file: str, dest: Path) -> Path:
    """Copy one file artifact of a run (e.g. ``reference/reference.parquet``) to ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        local = _download_run_artifact(settings, run_id, artifact_file, tmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dest)
    return dest


def log_folder_to_run(settings: Settings, run_id: str, local_dir: Path, artifact_path: str) -> None:
    """Add a folder's files to an existing (possibly finished) run, e.g. a later evaluation.

    Results computed after training (a real-scene evaluation) belong to the
    run whose model they judge, so the card that reads the run shows them.
    """
    try:
        mlflow_client(settings).log_artifacts(run_id, str(local_dir), artifact_path)
    except Exception as exc:
        raise RegistryUnavailableError(
            f"cannot log {artifact_path} to run {run_id}: {exc}".splitlines()[0],
            hint="check TERRAOPS_MLFLOW_TRACKING_URI",
        ) from exc


def download_run_folder(
    settings: Settings, run_id: str, artifact_path: str, dest: Path
) -> list[Path]:
    """Copy a run's ``artifact_path/*`` files into ``dest``; [] when the run has none."""
    try:
        listed = mlflow_client(settings).list_artifacts(run_id, artifact_path)
    except Exception as exc:
        raise RegistryUnavailableError(
            f"cannot list {artifact_path} of run {run_id}: {exc}".splitlines()[0]
        ) from exc
    if not any(not f.is_dir for f in listed):
        return []
    with tempfile.TemporaryDirectory() as tmp:
        local = _download_run_artifact(settings, run_id, artifact_path, tmp)
        dest.mkdir(parents=True, exist_ok=True)
        copied = []
        for item in sorted(p for p in local.iterdir() if p.is_file()):
            copied.append(Path(shutil.copyfile(item, dest / item.name)))
    return copied
