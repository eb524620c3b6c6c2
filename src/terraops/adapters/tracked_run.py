"""The MLflow run being logged: every call bound to one run id on one explicit client.

Why not MLflow's fluent API (``mlflow.log_params``, ``mlflow.pyfunc.log_model``,
``mlflow.register_model``): it logs to a process-wide "active run" and resolves
a process-wide tracking URI, so a training and a server's registry poller (or
two stores) in one process would race on that state. A :class:`TrackedRun` is
handed to the pipeline by :func:`terraops.adapters.tracking.owned_run`; what it
logs goes to its own run through its own client, from any thread.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.entities import LoggedModel
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

#: Name of a logged model inside its run (``models:/<model_id>`` is its URI).
MODEL_NAME = "model"

log = logging.getLogger(__name__)


def _is_rest_store(uri: str) -> bool:
    """A tracking server (REST API) rather than a database or folder MLflow opens itself."""
    return uri.split(":", 1)[0] in {"http", "https", "databricks"}


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested keys joined with ``/``: how MLflow logs a model's config as run params."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


@dataclass(frozen=True)
class TrackedRun:
    """One run of one tracking store; logging methods as MLflow's fluent ones."""

    client: MlflowClient
    run_id: str
    experiment_id: str
    tracking_uri: str

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self.log_metrics({key: value}, step)

    def log_dict(self, payload: Mapping[str, Any], artifact_file: str) -> None:
        """A JSON (or YAML, by the file's suffix) artifact, as ``mlflow.log_dict``."""
        self.client.log_dict(self.run_id, dict(payload), artifact_file)

    def log_artifact(self, local_path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_artifacts(self, files: Iterable[Path], artifact_path: str | None = None) -> None:
        for path in files:
            self.log_artifact(path, artifact_path)

    def log_pyfunc_model(self, registered_name: str, **save_kwargs: Any) -> tuple[str, int]:
        """Log a pyfunc model to this run and register a new version of ``registered_name``;
        return (model URI, version). ``save_kwargs`` go to ``mlflow.pyfunc.save_model``.

        The steps of ``mlflow.pyfunc.log_model`` + ``mlflow.register_model`` (MLflow
        3.x), through this run's client: a logged model is created (``PENDING``) and
        linked to the run with the run's step-0 metrics; the pyfunc is saved to a
        temporary folder and uploaded as the model's artifacts; the model is marked
        ``READY`` (``FAILED`` on any error); its config is logged as run params;
        then a version is registered. (MLflow's check that the input example can be
        served is not repeated: it only warns.)
        """
        from mlflow.entities import LoggedModelStatus
        from mlflow.tracking.context import registry as context_registry

        run_params = self.client.get_run(self.run_id).data.params
        model = self.client.create_logged_model(
            self.experiment_id,
            name=MODEL_NAME,
            source_run_id=self.run_id,
            tags=context_registry.resolve_tags(),
            params={k: str(v) for k, v in run_params.items()},
        )
        try:
            self._link_model(model.model_id)
            self._upload_model(model, save_kwargs)
        except BaseException:
            self.client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
            raise
        self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        return f"models:/{model.model_id}", self._register(registered_name, model)

    def _link_model(self, model_id: str) -> None:
        """Record the model as the run's output at step 0, with the metrics of that step."""
        from mlflow.entities import LoggedModelOutput, Metric

        self.client.log_outputs(self.run_id, [LoggedModelOutput(model_id, step=0)])
        linked = [
            Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id, run_id=self.run_id)
            for key in self.client.get_run(self.run_id).data.metrics
            for m in self.client.get_metric_history(self.run_id, key)
            if m.step == 0 and m.model_id is None
        ]
        if linked:
            self.client.log_batch(self.run_id, metrics=linked)

    def _upload_model(self, model: LoggedModel, save_kwargs: Mapping[str, Any]) -> None:
        import mlflow.pyfunc
        from mlflow.models import Model

        description = Model(
            artifact_path=model.artifact_location,
            model_uuid=model.model_id,
            run_id=self.run_id,
            metadata=save_kwargs.get("metadata"),
            model_id=model.model_id,
        )
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / MODEL_NAME
            mlflow.pyfunc.save_model(path=str(local), mlflow_model=description, **save_kwargs)
            self.client.log_model_artifacts(model.model_id, str(local))
        config = save_kwargs.get("model_config")
        if isinstance(config, Mapping) and config:
            try:
                self.log_params(_flatten(config))
            except Exception as exc:  # as MLflow: a clash with a run param only warns
                log.warning("model config not logged as run params: %s", exc)

    def _register(self, registered_name: str, model: LoggedModel) -> int:
        """A new version of ``registered_name`` (created if missing) from the logged model.

        Its source is ``models:/<model_id>`` on a tracking server, as MLflow's
        own registration; a store MLflow opens in-process (SQLite) would resolve
        that URI through the *global* tracking URI, so there the source is the
        model's artifact location (the version's storage location either way).
        """
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(registered_name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        if _is_rest_store(self.tracking_uri):
            source, run_id = f"models:/{model.model_id}", None
        else:
            source, run_id = model.artifact_location, self.run_id
        version = self.client.create_model_version(
            registered_name, source, run_id=run_id, model_id=model.model_id
        )
        return int(version.version)


def registered_model_id(client: MlflowClient, version: ModelVersion) -> str | None:
    """The logged model a registered version was made from, or None (a run-sourced version).

    An in-process (SQLite) registry keeps no model id: it reads it back from a
    ``models:/<model_id>`` source, which :meth:`TrackedRun._register` cannot
    give it there; the training run's recorded model output names it instead.
    """
    if version.model_id:
        return str(version.model_id)
    source = str(version.source or "")
    if source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/", 1)[0]
    if not version.run_id:
        return None
    outputs = client.get_run(version.run_id).outputs
    models = outputs.model_outputs if outputs is not None else []
    return str(models[-1].model_id) if models else None
