"""Alias history journal and lifecycle operations against an in-memory registry.

The real MLflow registry is exercised in tests/integration; here a fake with
the same interface makes every crash/branch cheap to reach.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from terraops.adapters import model_bundle
from terraops.adapters.alias_history import AliasHistory
from terraops.domain.promotion import CHALLENGER, CHAMPION
from terraops.errors import (
    ConflictError,
    InvalidInputError,
    ModelNotFoundError,
    NothingToRollBackError,
    PromotionRefusedError,
    RegistryUnavailableError,
)
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.settings import Settings


@dataclass
class FakeVersion:
    version: int
    metrics: dict[str, float]
    tags: dict[str, str]
    run_id: str = "run"


@dataclass
class FakeRegistry:
    """The ModelRegistry interface the lifecycle uses, in memory."""

    root: Path
    versions: dict[int, FakeVersion] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    down: bool = False
    fail_set: bool = False
    artifacts: tuple[str, ...] = ("feature_schema.json", "data_fingerprint.json", "plots")

    def add(self, version: int, mae: float = 1.0, quality: str = "passed") -> None:
        self.versions[version] = FakeVersion(
            version, {"mae_spatial_cv": mae}, {"terraops.data_quality": quality}
        )
        model_dir = self.root / str(version)
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "MLmodel").write_text(f"version: {version}\n")

    def _check(self) -> None:
        if self.down:
            raise RegistryUnavailableError("registry down")

    def get_alias(self, service: str, alias: str) -> int | None:
        return self.get_aliases(service).get(alias)

    def get_aliases(self, service: str) -> dict[str, int]:
        self._check()
        return {alias: v for alias, v in self.aliases.items() if v is not None}

    def set_alias(self, service: str, alias: str, version: int) -> None:
        self._check()
        if self.fail_set:
            raise RegistryUnavailableError("set failed")
        self.aliases[alias] = version

    def get_version(self, service: str, version: int) -> Any:
        self._check()
        if version not in self.versions:
            raise ModelNotFoundError(f"{service} v{version}: not found")
        return self.versions[version]

    def run_artifacts(self, service: str, version: int) -> list[str]:
        return list(self.artifacts)

    def fetch_model(self, service: str, version: int) -> Path:
        self._check()
        return self.root / str(version)


class FakePredictor:
    feature_names: ClassVar[list[str]] = ["ndvi", "building_density", "water_distance"]
    service = "uhi"

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.value)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    """Versions 1–3 registered; a version whose MLmodel says 'broken' predicts NaN."""

    def fake_load(path: Path) -> FakePredictor:
        text = (Path(path) / "MLmodel").read_text()
        if "corrupt" in text:
            raise ValueError("cannot parse model.lgb")
        return FakePredictor(float("nan") if "broken" in text else 30.0)

    monkeypatch.setattr(model_bundle, "load_predictor", fake_load)
    reg = FakeRegistry(tmp_path / "models")
    for v in (1, 2, 3):
        reg.add(v)
    return reg


def kinds(
    settings: Settings, registry: FakeRegistry
) -> list[tuple[str, str, int | None, int | None, str]]:
    """History (reconciled) oldest first, as (alias, action, from, to, status)."""
    entries = reversed(lifecycle.history(settings, "uhi", registry=registry))  # type: ignore[arg-type]
    return [(e.alias, e.action, e.from_version, e.to_version, e.status) for e in entries]


# ----- the journal itself ----------------------------------------------------------


def test_journal_is_durable_wal_and_ordered(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    journal = AliasHistory(path)
    first = journal.begin(
        service="uhi",
        alias=CHAMPION,
        action="promote",
        from_version=None,
        to_version=1,
        actor="ana",
        reason="first",
        forced=False,
    )
    assert first.status == "pending" and first.resolved_at is None
    done = journal.resolve(first.id, "committed")
    assert done.status == "committed" and done.resolved_at is not None
    assert journal.resolve(first.id, "aborted").status == "committed"  # only pending rows move
    reopened = AliasHistory(path)
    [entry] = reopened.entries("uhi")
    assert (entry.actor, entry.reason, entry.to_version) == ("ana", "first", 1)
    assert entry.created_at.tzinfo is not None and entry.created_at <= datetime.now(UTC)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert reopened.entries("flood") == []


# ----- assign / promote / rollback -------------------------------------------------


def test_assign_alias_records_who_when_and_why(settings: Settings, registry: FakeRegistry) -> None:
    settings.user = "trainer"
    entry = lifecycle.assign_alias(settings, registry, "uhi", CHALLENGER, 1, reason="trained")
    assert registry.aliases[CHALLENGER] == 1
    assert (entry.action, entry.actor, entry.status, entry.reason) == (
        "assign",
        "trainer",
        "committed",
        "trained",
    )
    with pytest.raises(ModelNotFoundError):
        lifecycle.assign_alias(settings, registry, "uhi", CHALLENGER, 99, reason="x")


def test_promote_then_rollback_round_trip(settings: Settings, registry: FakeRegistry) -> None:
    lifecycle.promote(settings, registry, "uhi", 1, reason="first release")
    outcome = lifecycle.promote(settings, registry, "uhi", 2)
    assert outcome.entry.from_version == 1 and registry.aliases[CHAMPION] == 2
    back = lifecycle.rollback(settings, registry, "uhi", reason="v2 regressed")
    assert (back.action, back.from_version, back.to_version) == ("rollback", 2, 1)
    assert registry.aliases[CHAMPION] == 1
    with pytest.raises(NothingToRollBackError, match="no earlier champion"):
        lifecycle.rollback(settings, registry, "uhi")
    assert kinds(settings, registry) == [
        (CHAMPION, "promote", None, 1, "committed"),
        (CHAMPION, "promote", 1, 2, "committed"),
        (CHAMPION, "rollback", 2, 1, "committed"),
    ]


def test_rollback_to_requires_a_former_champion(settings: Settings, registry: FakeRegistry) -> None:
    lifecycle.promote(settings, registry, "uhi", 1)
    lifecycle.promote(settings, registry, "uhi", 2)
    with pytest.raises(InvalidInputError, match="never champion"):
        lifecycle.rollback(settings, registry, "uhi", to_version=3)
    with pytest.raises(InvalidInputError, match="already the champion"):
        lifecycle.rollback(settings, registry, "uhi", to_version=2)
    assert lifecycle.rollback(settings, registry, "uhi", to_version=1).to_version == 1


def test_refused_promotion_leaves_champion_and_history_untouched(
    settings: Settings, registry: FakeRegistry
) -> None:
    lifecycle.promote(settings, registry, "uhi", 1)
    registry.add(4, mae=2.0, quality="failed")
    with pytest.raises(PromotionRefusedError) as refused:
        lifecycle.promote(settings, registry, "uhi", 4)
    assert len(refused.value.reasons) == 3  # data quality + service target + regression
    assert registry.aliases[CHAMPION] == 1
    assert len(kinds(settings, registry)) == 1
    forced = lifecycle.promote(settings, registry, "uhi", 4, force=True, reason="hotfix")
    assert forced.entry.forced and "forced past" in (forced.entry.reason or "")
    assert forced.decision.overridden == refused.value.reasons


@pytest.mark.parametrize("content", ["corrupt", "broken"])
def test_unloadable_candidate_is_refused_even_forced(
    settings: Settings, registry: FakeRegistry, content: str
) -> None:
    registry.add(5)
    (registry.root / "5" / "MLmodel").write_text(content)
    with pytest.raises(PromotionRefusedError) as refused:
        lifecycle.promote(settings, registry, "uhi", 5, force=True)
    assert "cannot be loaded" in refused.value.reasons[0]
    assert CHAMPION not in registry.aliases


def test_missing_run_artifacts_are_refused(settings: Settings, registry: FakeRegistry) -> None:
    registry.artifacts = ("plots",)
    with pytest.raises(PromotionRefusedError, match="refused") as refused:
        lifecycle.promote(settings, registry, "uhi", 1)
    assert "feature_schema.json" in refused.value.reasons[0]


# ----- crash safety and reconcile --------------------------------------------------


def _intent(settings: Settings, to: int, frm: int | None) -> None:
    lifecycle.open_history(settings).begin(
        service="uhi",
        alias=CHAMPION,
        action="promote",
        from_version=frm,
        to_version=to,
        actor="crashed",
        reason=None,
        forced=False,
    )


def test_crash_after_alias_set_is_committed_by_reconcile(
    settings: Settings, registry: FakeRegistry
) -> None:
    lifecycle.promote(settings, registry, "uhi", 1)
    _intent(settings, 2, 1)
    registry.aliases[CHAMPION] = 2  # the alias moved, then the process died
    assert kinds(settings, registry)[-1] == (CHAMPION, "promote", 1, 2, "committed")
    assert lifecycle.rollback(settings, registry, "uhi").to_version == 1


def test_crash_before_alias_set_is_aborted_by_reconcile(
    settings: Settings, registry: FakeRegistry
) -> None:
    lifecycle.promote(settings, registry, "uhi", 1)
    _intent(settings, 2, 1)  # died before touching MLflow
    lifecycle.promote(settings, registry, "uhi", 3)
    assert kinds(settings, registry) == [
        (CHAMPION, "promote", None, 1, "committed"),
        (CHAMPION, "promote", 1, 2, "aborted"),
        (CHAMPION, "promote", 1, 3, "committed"),
    ]


def test_alias_moved_directly_in_mlflow_is_recorded(
    settings: Settings, registry: FakeRegistry
) -> None:
    lifecycle.promote(settings, registry, "uhi", 1)
    registry.aliases[CHAMPION] = 3  # someone used the MLflow UI
    history = kinds(settings, registry)
    assert history[-1] == (CHAMPION, "external", 1, 3, "committed")
    assert lifecycle.rollback(settings, registry, "uhi").to_version == 1


def test_failed_alias_call_leaves_no_committed_change(
    settings: Settings, registry: FakeRegistry
) -> None:
    registry.fail_set = True
    with pytest.raises(RegistryUnavailableError):
        lifecycle.promote(settings, registry, "uhi", 1)
    assert kinds(settings, registry) == [(CHAMPION, "promote", None, 1, "aborted")]


def test_history_reads_without_the_registry(settings: Settings, registry: FakeRegistry) -> None:
    lifecycle.promote(settings, registry, "uhi", 1)
    _intent(settings, 2, 1)
    registry.down = True
    entries = lifecycle.history(settings, "uhi", registry=registry)  # type: ignore[arg-type]
    assert [e.status for e in entries] == ["pending", "committed"]


def test_concurrent_operation_is_a_conflict(settings: Settings, registry: FakeRegistry) -> None:
    with (
        lifecycle.lifecycle_lock(settings),
        pytest.raises(ConflictError, match="in progress"),
        lifecycle.lifecycle_lock(settings, timeout=0.1),
    ):
        pass


def test_state_db_url_must_be_postgresql_and_is_never_printed_with_its_password(
    tmp_path: Path,
) -> None:
    """A wrong TERRAOPS_STATE_DB_URL is bad input (exit 2), named without its secret."""
    from pydantic import SecretStr

    from terraops.adapters.state_db import PostgresDatabase

    wrong = Settings(home=tmp_path, state_db_url=SecretStr("mysql://me:hunter2@db:3306/x"))
    with pytest.raises(InvalidInputError, match="PostgreSQL URL") as raised:
        lifecycle.open_history(wrong)
    assert "hunter2" not in str(raised.value) and "me:***@db:3306" in str(raised.value)
    sqlalchemy_spelling = PostgresDatabase("postgresql+psycopg://me:hunter2@db:5432/terraops")
    assert sqlalchemy_spelling.url == "postgresql://me:hunter2@db:5432/terraops"
    assert sqlalchemy_spelling.description == "postgresql://me:***@db:5432/terraops"
    assert not (tmp_path / "lifecycle.db").exists()
