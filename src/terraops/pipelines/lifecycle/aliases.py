"""Model lifecycle: the only code that moves registry aliases.

Every change goes through :func:`assign_alias`, which journals it write-ahead
(``pending`` → alias set → ``committed``) in the durable alias history, under a
file lock that serialises lifecycle operations on this home. Every operation
starts with :func:`reconcile`, which resolves intents left pending by a crash
and records alias changes made directly in MLflow, so the champion alias never
points at a version the history does not know.

The lock is a file under ``settings.home_dir``: it serialises operations on one
machine (CLI, admin API, training). With ``TERRAOPS_STATE_DB_URL`` set, the
history and the lock (a PostgreSQL advisory lock) live in one shared database
instead, so hosts sharing a tracking server see one history and their
promotions serialise (docs/scale-out.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from terraops.adapters import model_bundle, segmentation_bundle
from terraops.adapters.alias_history import AliasHistory
from terraops.adapters.registry import ModelRegistry
from terraops.adapters.state_db import PostgresDatabase
from terraops.domain.promotion import (
    CHALLENGER,
    CHAMPION,
    Action,
    CandidateFacts,
    GatePolicy,
    GateResult,
    HistoryEntry,
    PromotionDecision,
    decide_promotion,
    ever_champion,
    last_known_version,
    resolve_pending,
    rollback_target,
)
from terraops.errors import (
    ConflictError,
    InvalidInputError,
    NothingToRollBackError,
    PromotionRefusedError,
    RegistryUnavailableError,
)
from terraops.pipelines.lifecycle import evalset
from terraops.pipelines.lifecycle.evalset import evaluation_metric
from terraops.pipelines.training.city_holdout import city_holdout_set
from terraops.services.base import ServiceDefinition
from terraops.services.registered import ModelService, model_service
from terraops.services.segmentation import SegmentationService
from terraops.settings import Settings

"""What the lifecycle needs of a service: its name, primary metric, SLO target and
how to load a version. The segmentation service is not a tabular
:class:`ServiceDefinition` (no feature table), but spells these the same way."""

TRACKED_ALIASES = (CHAMPION, CHALLENGER)
EXTERNAL_ACTOR = "mlflow (outside terraops)"
LOCK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PromotionOutcome:
    entry: HistoryEntry
    decision: PromotionDecision


#: Name of the advisory lock that serialises lifecycle operations on a shared state database.
SHARED_LOCK_NAME = "terraops.lifecycle"


@contextmanager
def lifecycle_lock(settings: Settings, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Serialise lifecycle operations (CLI, admin API, training) on this home — or, with a
    shared state database, on every host that uses it. Busy after ``timeout``: ConflictError.
    """
    if settings.state_db_url is not None:
        database = PostgresDatabase(settings.state_db_url.get_secret_value())
        with database.advisory_lock(SHARED_LOCK_NAME, timeout):
            yield
        return
    settings.ensure_home()
    lock = FileLock(str(settings.home_dir / "lifecycle.lock"))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise ConflictError(
            "another lifecycle operation is in progress",
            hint=f"retry in a moment (lock: {lock.lock_file})",
        ) from None
    try:
        yield
    finally:
        lock.release()


def open_history(settings: Settings) -> AliasHistory:
    """The alias history: shared in PostgreSQL when configured, else SQLite under home."""
    if settings.state_db_url is not None:
        return AliasHistory(PostgresDatabase(settings.state_db_url.get_secret_value()))
    return AliasHistory(settings.history_db)


# ----- reconcile --------------------------------------------------------------


def reconcile(
    settings: Settings, registry: ModelRegistry, journal: AliasHistory, service: str
) -> list[HistoryEntry]:
    """Make the journal agree with the registry; call with the lifecycle lock held.

    Pending intents become committed when the alias reached their target, else
    aborted. An alias that differs from the journal's last committed value was
    moved outside terraops: that is recorded as an ``external`` entry. Returns
    the entries it wrote or resolved.
    """
    changed: list[HistoryEntry] = []
    actual = registry.get_aliases(service)
    for entry in journal.pending(service):
        status = resolve_pending(entry, actual.get(entry.alias))
        changed.append(journal.resolve(entry.id, status))
    entries = journal.entries(service)
    for alias in TRACKED_ALIASES:
        version = actual.get(alias)
        known = last_known_version(entries, alias)
        if version != known:
            changed.append(
                journal.begin(
                    service=service,
                    alias=alias,
                    action="external",
                    from_version=known,
                    to_version=version,
                    actor=EXTERNAL_ACTOR,
                    reason="alias changed directly in the registry; recorded by reconcile",
                    forced=False,
                    status="committed",
                )
            )
    return changed


# ----- the one way an alias moves ---------------------------------------------


def _apply_alias(
    settings: Settings,
    registry: ModelRegistry,
    journal: AliasHistory,
    service: str,
    alias: str,
    version: int,
    *,
    from_version: int | None,
    action: Action,
    reason: str | None,
    forced: bool,
    gates: tuple[GateResult, ...] = (),
) -> HistoryEntry:
    """Write-ahead: intent row (fsync'd) → set alias → mark committed.

    ``from_version`` is where the alias points now, as the caller read it
    under the lifecycle lock.
    """
    intent = journal.begin(
        service=service,
        alias=alias,
        action=action,
        from_version=from_version,
        to_version=version,
        actor=settings.actor,
        reason=reason,
        forced=forced,
        gates=gates,
    )
    try:
        registry.set_alias(service, alias, version)
    except BaseException:
        _resolve_after_failure(registry, journal, intent)
        raise
    return journal.resolve(intent.id, "committed")


def _resolve_after_failure(
    registry: ModelRegistry, journal: AliasHistory, intent: HistoryEntry
) -> None:
    """The set call failed: look where the alias is; if we cannot, leave it pending."""
    try:
        actual = registry.get_alias(intent.service, intent.alias)
    except RegistryUnavailableError:
        return  # the next reconcile resolves it
    journal.resolve(intent.id, resolve_pending(intent, actual))


def assign_alias(
    settings: Settings,
    registry: ModelRegistry,
    service: str,
    alias: str,
    version: int,
    *,
    reason: str,
    forced: bool = False,
    action: Action = "assign",
) -> HistoryEntry:
    """Point ``alias`` at ``version`` with a durable, crash-safe history entry.

    No gates: training uses this for ``challenger``; promotions go through
    :func:`promote`, which applies the gates first.
    """
    registry.get_version(service, version)  # raises ModelNotFoundError
    with lifecycle_lock(settings):
        journal = open_history(settings)
        reconcile(settings, registry, journal, service)
        return _apply_alias(
            settings,
            registry,
            journal,
            service,
            alias,
            version,
            from_version=registry.get_alias(service, alias),
            action=action,
            reason=reason,
            forced=forced,
        )


# ----- gates ------------------------------------------------------------------


def example_row(definition: ServiceDefinition, feature_names: list[str]) -> np.ndarray:
    """One row of the service's documented example values, in the model's order."""
    return np.array([[definition.feature(n).example for n in feature_names]], dtype=np.float64)


def load_and_verify(path: Path, definition: ModelService) -> Any:
    """Load a fetched model and warm it: it must predict the example row to a finite value.

    Any failure means the artifacts are unusable and is raised as ``ValueError``
    (with the cause), so callers can tell "bad model" from "registry down".
    A segmentation bundle must load in PyTorch and ONNX Runtime, give finite
    probabilities that sum to one on a fixed example chip, and the two engines
    must agree (:func:`terraops.adapters.segmentation_bundle.load_and_verify`).
    """
    if isinstance(definition, SegmentationService):
        return segmentation_bundle.load_and_verify(path)
    try:
        predictor = model_bundle.load_predictor(path)
        unknown = [n for n in predictor.feature_names if n not in definition.feature_names]
        if unknown:
            raise ValueError(f"model expects features the service lacks: {unknown}")
        value = float(predictor.predict(example_row(definition, predictor.feature_names))[0])
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    if not math.isfinite(value):
        raise ValueError(f"predicted {value} for the service's example row")
    return predictor


def load_verified_predictor(
    registry: ModelRegistry, definition: ModelService, version: int
) -> tuple[Path, Any]:
    """Fetch a version from the registry, then :func:`load_and_verify` it.

    Raises ``RegistryUnavailableError`` when the registry is down and
    ``ValueError`` when the version's artifacts are missing or unusable.
    """
    try:
        path = registry.fetch_model(definition.name, version)
    except RegistryUnavailableError:
        raise
    except Exception as exc:
        raise ValueError(f"cannot fetch artifacts: {type(exc).__name__}: {exc}") from exc
    return path, load_and_verify(path, definition)


EvaluationSet = tuple[Any, dict[str, Any]]  # (table, info) of pipelines.evalset


def _evaluation_set(
    settings: Settings, definition: ModelService, registry: ModelRegistry, version: int
) -> EvaluationSet | None:
    """The held-out city blocks the candidate's run kept (trained on an imported city),
    else the service's shared evaluation set."""
    if not isinstance(definition, ServiceDefinition):
        return None  # shared evaluation sets are feature tables (tabular services only)
    city = city_holdout_set(settings, registry, definition.name, version)
    return city or evalset.load_current(settings, definition.name)


def _scored(
    definition: ModelService, predictor: Any, evaluation: EvaluationSet | None
) -> tuple[dict[str, float] | None, str | None]:
    """Metrics of a loaded model on the shared evaluation set (None, None without one)."""
    if evaluation is None or predictor is None or not isinstance(definition, ServiceDefinition):
        return None, None
    table, info = evaluation
    return evalset.score(definition, predictor, table), info.get("label") or evalset.label(info)


def _candidate_facts(
    registry: ModelRegistry,
    definition: ModelService,
    version: int,
    evaluation: EvaluationSet | None = None,
) -> CandidateFacts:
    """Gather what the gates judge: run tags/metrics, artifacts, a real load, and its
    score on the shared evaluation set."""
    info = registry.get_version(definition.name, version)
    artifacts = set(registry.run_artifacts(definition.name, version))
    load_error: str | None = None
    predictor: Any = None
    try:
        path, predictor = load_verified_predictor(registry, definition, version)
        if (path / "MLmodel").is_file():
            artifacts.add("model")  # MLflow 3 keeps logged models outside the run folder
    except ValueError as exc:  # missing/corrupt artifacts, unloadable, non-finite output
        load_error = str(exc)
    scores, set_label = _scored(definition, predictor, evaluation)
    return CandidateFacts(
        version=version,
        tags=info.tags,
        metrics=info.metrics,
        artifacts=frozenset(artifacts),
        load_error=load_error,
        evaluation=scores,
        evaluation_set=set_label,
    )


def _champion_facts(
    registry: ModelRegistry,
    definition: ModelService,
    version: int | None,
    evaluation: EvaluationSet | None = None,
) -> CandidateFacts | None:
    if version is None:
        return None
    info = registry.get_version(definition.name, version)
    predictor: Any = None
    if evaluation is not None:
        try:
            _, predictor = load_verified_predictor(registry, definition, version)
        except ValueError:
            predictor = None  # an unloadable champion sets no bar on the shared set
    scores, set_label = _scored(definition, predictor, evaluation)
    return CandidateFacts(
        version=version,
        tags=info.tags,
        metrics=info.metrics,
        artifacts=frozenset(),
        evaluation=scores,
        evaluation_set=set_label,
    )


def gate_policy(settings: Settings, definition: ModelService) -> GatePolicy:
    return GatePolicy(
        primary_metric=definition.primary_metric,
        higher_is_better=definition.primary_metric_higher_is_better,
        tolerance=settings.promotion_tolerance,
        required_metrics=(definition.slo.metric,),
        target_metric=definition.slo.metric,
        metric_target=definition.slo.metric_target,
        target_higher_is_better=definition.slo.metric_higher_is_better,
        evaluation_metric=evaluation_metric(definition)
        if isinstance(definition, ServiceDefinition)
        else None,
    )


# ----- promote / rollback / history --------------------------------------------


def promote(
    settings: Settings,
    registry: ModelRegistry,
    service: str,
    version: int,
    *,
    reason: str | None = None,
    force: bool = False,
) -> PromotionOutcome:
    """Make ``version`` champion if it passes every gate (``force``: data/metric gates waived)."""
    definition = model_service(service)
    with lifecycle_lock(settings):
        journal = open_history(settings)
        reconcile(settings, registry, journal, service)
        current = registry.get_alias(service, CHAMPION)
        if current == version:
            raise InvalidInputError(
                f"{service} v{version} is already the champion", hint="nothing to promote"
            )
        evaluation = _evaluation_set(settings, definition, registry, version)
        candidate = _candidate_facts(registry, definition, version, evaluation)
        champion = _champion_facts(registry, definition, current, evaluation)
        decision = decide_promotion(
            candidate, champion, gate_policy(settings, definition), force=force
        )
        if not decision.allowed:
            raise PromotionRefusedError(
                f"promotion of {service} v{version} refused; champion "
                f"{'v' + str(current) if current else '(none)'} unchanged",
                reasons=decision.blocking,
                hint="fix the candidate"
                + (
                    "" if candidate.load_error else ", or use --force to override data/metric gates"
                ),
            )
        note = reason or "promoted"
        if decision.overridden:
            note += " [forced past: " + "; ".join(decision.overridden) + "]"
        entry = _apply_alias(
            settings,
            registry,
            journal,
            service,
            CHAMPION,
            version,
            from_version=current,
            action="promote",
            reason=note,
            forced=force,
            gates=tuple(decision.gates),
        )
    return PromotionOutcome(entry=entry, decision=decision)


def rollback(
    settings: Settings,
    registry: ModelRegistry,
    service: str,
    to_version: int | None = None,
    *,
    reason: str | None = None,
) -> HistoryEntry:
    """Restore the previous champion from the history (or ``to_version``, a former champion)."""
    definition = model_service(service)
    with lifecycle_lock(settings):
        journal = open_history(settings)
        reconcile(settings, registry, journal, service)
        entries = journal.entries(service)
        current = registry.get_alias(service, CHAMPION)
        target = to_version if to_version is not None else rollback_target(entries, current)
        if target is None:
            raise NothingToRollBackError(
                f"{service} has no earlier champion to roll back to"
                + (f" (champion is v{current})" if current else " (no champion)"),
                hint=f"see `terraops models history {service}`",
            )
        if target == current:
            raise InvalidInputError(f"{service} v{target} is already the champion")
        if not ever_champion(entries, target):
            raise InvalidInputError(
                f"{service} v{target} was never champion, so it cannot be rolled back to",
                hint=f"use `terraops promote {service} --version {target}` (gates apply)",
            )
        try:
            load_verified_predictor(registry, definition, target)
        except ValueError as exc:
            raise PromotionRefusedError(
                f"rollback of {service} to v{target} refused; champion unchanged",
                reasons=[f"model v{target} cannot be loaded: {exc}"],
                hint="roll back to another version with --to",
            ) from exc
        return _apply_alias(
            settings,
            registry,
            journal,
            service,
            CHAMPION,
            target,
            from_version=current,
            action="rollback",
            reason=reason or "rolled back",
            forced=False,
            gates=(
                GateResult(
                    "loadable",
                    True,
                    f"v{target} fetched, loaded and predicted a finite value",
                    overridable=False,
                ),
            ),
        )


def history(
    settings: Settings, service: str, *, registry: ModelRegistry | None = None
) -> list[HistoryEntry]:
    """The alias history of a service, newest first, reconciled when possible.

    Reading never blocks on a long operation and never fails because the
    registry is down: the journal is then returned as it stands (pending rows
    show as pending).
    """
    model_service(service)
    journal = open_history(settings)
    try:
        if registry is None:
            registry = ModelRegistry(settings, timeout_s=settings.registry_timeout_s)
        with lifecycle_lock(settings, timeout=2.0):
            reconcile(settings, registry, journal, service)
    except (RegistryUnavailableError, ConflictError):
        pass
    return list(reversed(journal.entries(service)))
